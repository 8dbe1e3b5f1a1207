/* Connects to a listener of its own on 127.0.0.1 around libc's connect:
 * `int80` with the i386 connect system call (int 0x80, an address below
 * 4 GiB), `fastopen` with sendto(MSG_FASTOPEN). Prints "connected" or
 * "refused: REASON". Brings the loopback up first (it runs as root in a
 * network namespace of its own). Built statically, so only the
 * supervisor can see it. */
#define _GNU_SOURCE
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

static void loopback_up(void) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct ifreq ifr = {0};
    strcpy(ifr.ifr_name, "lo");
    if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
        ifr.ifr_flags |= IFF_UP;
        ioctl(s, SIOCSIFFLAGS, &ifr);
    }
    close(s);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: hostile_connect int80|fastopen\n");
        return 2;
    }
    loopback_up();
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in at = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof at;
    if (bind(listener, (struct sockaddr *)&at, sizeof at) != 0 || listen(listener, 4) != 0 ||
        getsockname(listener, (struct sockaddr *)&at, &len) != 0) {
        perror("listen");
        return 1;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    long rc;
    if (strcmp(argv[1], "int80") == 0) {
#if defined(__x86_64__)
        struct sockaddr_in *low = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
        *low = at;
        /* i386's connect is system call 362. */
        __asm__ volatile("int $0x80" : "=a"(rc) : "a"(362), "b"(fd), "c"(low), "d"(sizeof at) : "memory");
        if (rc < 0) {
            errno = (int)-rc;
            rc = -1;
        }
#else
        fprintf(stderr, "int80: x86-64 only\n");
        return 2;
#endif
    } else {
        rc = sendto(fd, "hi", 2, MSG_FASTOPEN, (struct sockaddr *)&at, sizeof at);
    }
    if (rc < 0)
        printf("refused: %s\n", strerror(errno));
    else
        printf("connected\n");
    return 0;
}
