/* Connects with the raw system call, around libc's connect (and so around
 * any LD_PRELOAD hook), sends a request and prints the answer. */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: raw_connect HOST PORT\n");
        return 2;
    }
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res;
    int rc = getaddrinfo(argv[1], argv[2], &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "getaddrinfo: %s\n", gai_strerror(rc));
        return 1;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (syscall(SYS_connect, fd, res->ai_addr, res->ai_addrlen) != 0) {
        perror("connect");
        return 1;
    }
    char request[512];
    int n = snprintf(request, sizeof request, "GET /raw HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", argv[1]);
    if (write(fd, request, n) != n) {
        perror("write");
        return 1;
    }
    char buf[4096];
    ssize_t got;
    while ((got = read(fd, buf, sizeof buf)) > 0) {
        fwrite(buf, 1, got, stdout);
    }
    return 0;
}
