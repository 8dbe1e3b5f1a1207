/* The pass-through connect path in isolation: N rounds of socket, connect
 * to a real loopback server (PORT) and close. Timed with and without the
 * shim by bench.py; the difference divided by N is the cost the hooks add
 * to a connection that is not routed. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    long rounds = atol(argv[1]);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    for (long i = 0; i < rounds; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&to, sizeof to) != 0 || close(fd) != 0) return 1;
    }
    return 0;
}
