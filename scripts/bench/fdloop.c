/* The pass-through fast path in isolation: N rounds of dup, fcntl and close
 * on an fd that is not intercepted. Timed with and without the shim by
 * bench.py; the difference divided by 3N is the cost per hooked call. */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    long rounds = argc > 1 ? atol(argv[1]) : 1000000;
    for (long i = 0; i < rounds; i++) {
        int fd = dup(2);
        if (fd < 0 || fcntl(fd, F_GETFL) < 0 || close(fd) != 0) return 1;
    }
    return 0;
}
