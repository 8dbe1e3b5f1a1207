/* A reference for in-process answers on this machine: one thread writes an
 * 18-byte request into a socketpair and waits for the echo with epoll_wait
 * (as wrk does), another thread, asleep in read(2) between messages, echoes
 * it back. No HTTP at all. Prints round trips per second. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int pair[2];

static void *echo(void *unused) {
    char buf[512];
    (void)unused;
    for (;;) {
        ssize_t n = read(pair[1], buf, sizeof buf);
        if (n <= 0 || write(pair[1], buf, (size_t)n) != n) return NULL;
    }
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 50000;
    char buf[512];
    pthread_t thread;
    struct epoll_event ev = {.events = EPOLLIN};
    struct timespec start, end;
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) != 0 || pthread_create(&thread, NULL, echo, NULL) != 0) return 1;
    int ep = epoll_create1(0);
    ev.data.fd = pair[0];
    epoll_ctl(ep, EPOLL_CTL_ADD, pair[0], &ev);
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (int i = 0; i < rounds; i++) {
        if (write(pair[0], "GET / HTTP/1.1\r\n\r\n", 18) != 18) return 1;
        epoll_wait(ep, &ev, 1, -1);
        if (read(pair[0], buf, sizeof buf) <= 0) return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    double seconds = (double)(end.tv_sec - start.tv_sec) + (double)(end.tv_nsec - start.tv_nsec) / 1e9;
    printf("%.0f\n", rounds / seconds);
    return 0;
}
