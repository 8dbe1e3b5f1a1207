/* Requests written in ways that test the answer given in the caller's
 * thread: `caller_thread MODE HOST`, connecting to HOST port 80.
 *
 *   pipelined  three requests in one write
 *   bytewise   a POST written one byte per write
 *   lagging    a non-blocking client writes 72 pipelined POSTs whose
 *              answers (4 MiB) far exceed the socket buffers, and reads
 *              them slowly
 *   signal     a timer's signal handler writes requests while the main
 *              thread writes others and a second thread reads every answer
 *   fork       a request, then fork: the child reads the answer, writes a
 *              request of its own and reads that answer; then the parent
 *              asks again
 *   single     one request and its answer, then how many threads the
 *              process has
 *   stdio      one request written and its answer read through stdio
 *              (fdopen), whose reads and writes are libc's own
 *
 * "immediate" means the answer was in the socket when write returned. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <dirent.h>
#include <unistd.h>

static const char GET[] = "GET /echo/x HTTP/1.1\r\nHost: h\r\n\r\n";

static int dial(const char *host) {
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
    int rc = getaddrinfo(host, "80", &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "getaddrinfo: %s\n", gai_strerror(rc));
        exit(1);
    }
    int fd = socket(res->ai_family, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
        perror("connect");
        exit(1);
    }
    freeaddrinfo(res);
    return fd;
}

static void put(int fd, const char *bytes, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, bytes, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            perror("write");
            exit(1);
        }
        bytes += n;
        len -= (size_t)n;
    }
}

/* Whether an answer is waiting in the socket right now. */
static int waiting(int fd) {
    char c;
    return recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK) == 1;
}

static size_t count(const char *text, size_t len, const char *what) {
    size_t n = 0, w = strlen(what);
    for (size_t i = 0; i + w <= len; i++)
        if (memcmp(text + i, what, w) == 0)
            n++;
    return n;
}

/* Whether the text ends with the end of an echo answer (its JSON). */
static int ends_answer(const char *text, size_t len) {
    return len >= 2 && text[len - 2] == '}' && text[len - 1] == '\n';
}

/* Reads until `answers` 200s and their last body are in; returns the text. */
static char *read_answers(int fd, size_t answers, size_t *len) {
    size_t cap = 1 << 16;
    char *buf = malloc(cap);
    *len = 0;
    for (;;) {
        if (count(buf, *len, "HTTP/1.1 200 OK") == answers && ends_answer(buf, *len))
            return buf;
        if (*len + 4096 > cap)
            buf = realloc(buf, cap *= 2);
        ssize_t n = read(fd, buf + *len, 4096);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "read ended after %zu bytes: %s\n", *len, n ? strerror(errno) : "end of file");
            exit(1);
        }
        *len += (size_t)n;
    }
}

static int pipelined(const char *host) {
    int fd = dial(host);
    char three[3 * sizeof GET];
    size_t len = 0;
    for (int i = 0; i < 3; i++) {
        memcpy(three + len, GET, sizeof GET - 1);
        len += sizeof GET - 1;
    }
    put(fd, three, len);
    int immediate = waiting(fd);
    size_t got;
    char *text = read_answers(fd, 3, &got);
    printf("%s answers: %zu\n", immediate ? "immediate" : "later", count(text, got, "HTTP/1.1 200 OK"));
    return 0;
}

static int bytewise(const char *host) {
    int fd = dial(host);
    const char req[] = "POST /echo/one-byte HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello";
    for (size_t i = 0; i < sizeof req - 1; i++)
        put(fd, req + i, 1);
    int immediate = waiting(fd);
    size_t got;
    char *text = read_answers(fd, 1, &got);
    printf("%s body: %s\n", immediate ? "immediate" : "later", strstr(text, "\"body\": \"hello\"") ? "hello" : "missing");
    return 0;
}

static int lagging(const char *host) {
    enum { REQUESTS = 72, BODY = 60000 };
    int fd = dial(host);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    char head[128];
    int head_len = snprintf(head, sizeof head, "POST /echo/big HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n", BODY);
    size_t one = (size_t)head_len + BODY, total = one * REQUESTS, sent = 0;
    char *out = malloc(total);
    for (int i = 0; i < REQUESTS; i++) {
        memcpy(out + i * one, head, (size_t)head_len);
        memset(out + i * one + head_len, 'a' + i % 26, BODY);
    }
    size_t cap = 8 << 20, got = 0;
    char *in = malloc(cap);
    /* Write as fast as the socket takes it; read 4 KiB at a time, late. */
    while (count(in, got, "HTTP/1.1 200 OK") < REQUESTS || !ends_answer(in, got)) {
        if (sent < total) {
            ssize_t n = write(fd, out + sent, total - sent < one ? total - sent : one);
            if (n > 0)
                sent += (size_t)n;
            else if (errno != EAGAIN) {
                perror("write");
                return 1;
            }
        }
        usleep(200);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, sent < total ? 0 : 5000) < 0 || (sent == total && !(p.revents & POLLIN))) {
            fprintf(stderr, "no answer after %zu bytes\n", got);
            return 1;
        }
        if (!(p.revents & POLLIN))
            continue;
        ssize_t n = read(fd, in + got, got + 4096 <= cap ? 4096 : cap - got);
        if (n <= 0) {
            fprintf(stderr, "read ended after %zu bytes\n", got);
            return 1;
        }
        got += (size_t)n;
    }
    /* Every answer carries its own request's body, in order. */
    size_t in_order = 0;
    char *at = in;
    for (int i = 0; i < REQUESTS; i++) {
        char *body = memmem(at, got - (size_t)(at - in), "\"body\": \"", 9);
        if (!body || body[9] != 'a' + i % 26 || body[9 + BODY - 1] != 'a' + i % 26 || body[9 + BODY] != '"')
            break;
        in_order++;
        at = body + 9 + BODY;
    }
    printf("answers: %zu in order: %zu bytes over 4 MiB: %s\n", count(in, got, "HTTP/1.1 200 OK"), in_order, got > (4u << 20) ? "yes" : "no");
    return 0;
}

static int signal_fd;
static volatile sig_atomic_t handler_writes;

static void on_alarm(int sig) {
    (void)sig;
    int saved = errno;
    if (handler_writes < 200) { /* HANDLER_WRITES */
        const char *p = GET;
        size_t left = sizeof GET - 1;
        while (left > 0) {
            ssize_t n = write(signal_fd, p, left);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                _exit(3);
            p += n;
            left -= (size_t)n;
        }
        handler_writes++;
    }
    errno = saved;
}

static size_t expected_answers, answers_read;

/* Counts status lines until every answer expected is in; polls, so it
 * sees the final count however late it is set. */
static void *reader(void *arg) {
    (void)arg;
    static char buf[65536 + 16];
    size_t tail = 0;
    int quiet = 0;
    while (answers_read < __atomic_load_n(&expected_answers, __ATOMIC_SEQ_CST)) {
        struct pollfd p = {.fd = signal_fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0) {
            if (++quiet == 200)
                break; /* 20 s with nothing: answers were lost */
            continue;
        }
        quiet = 0;
        ssize_t n = read(signal_fd, buf + tail, sizeof buf - tail);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        /* A status line split across two reads is counted once: the last
         * 14 bytes are kept in front of the next read. */
        size_t len = tail + (size_t)n;
        answers_read += count(buf, len, "HTTP/1.1 200 OK");
        tail = len < 14 ? len : 14;
        memmove(buf, buf + len - tail, tail);
    }
    return NULL;
}

static int signals(const char *host) {
    enum { MAIN_WRITES = 2000, HANDLER_WRITES = 200 };
    signal_fd = dial(host);
    __atomic_store_n(&expected_answers, (size_t)-1, __ATOMIC_SEQ_CST);
    pthread_t t;
    sigset_t alarm_only, old;
    sigemptyset(&alarm_only);
    sigaddset(&alarm_only, SIGALRM);
    /* The reader never takes the signal: the writing thread does. */
    pthread_sigmask(SIG_BLOCK, &alarm_only, &old);
    pthread_create(&t, NULL, reader, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    struct sigaction sa = {.sa_handler = on_alarm};
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval every = {{0, 100}, {0, 100}};
    setitimer(ITIMER_REAL, &every, NULL);
    for (int i = 0; i < MAIN_WRITES; i++)
        put(signal_fd, GET, sizeof GET - 1);
    while (handler_writes < HANDLER_WRITES)
        usleep(100);
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    size_t written = (size_t)MAIN_WRITES + handler_writes;
    __atomic_store_n(&expected_answers, written, __ATOMIC_SEQ_CST);
    pthread_join(t, NULL);
    printf("written: %zu answered: %zu\n", written, answers_read);
    return 0;
}

static int forked(const char *host) {
    int fd = dial(host);
    put(fd, GET, sizeof GET - 1);
    pid_t child = fork();
    if (child == 0) {
        size_t got;
        char *text = read_answers(fd, 1, &got);
        const char again[] = "GET /echo/from-child HTTP/1.1\r\nHost: h\r\n\r\n";
        put(fd, again, sizeof again - 1);
        char *second = read_answers(fd, 1, &got);
        printf("child: %s %s\n", strstr(text, "/echo/x") ? "first" : "missing", strstr(second, "/echo/from-child") ? "second" : "missing");
        fflush(stdout);
        _exit(0);
    }
    int status;
    waitpid(child, &status, 0);
    const char last[] = "GET /echo/from-parent HTTP/1.1\r\nHost: h\r\n\r\n";
    put(fd, last, sizeof last - 1);
    size_t got;
    char *text = read_answers(fd, 1, &got);
    printf("parent: %s\n", strstr(text, "/echo/from-parent") ? "third" : "missing");
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

static int single(const char *host) {
    int fd = dial(host);
    put(fd, GET, sizeof GET - 1);
    size_t got;
    char *text = read_answers(fd, 1, &got);
    close(fd);
    DIR *tasks = opendir("/proc/self/task");
    int threads = 0;
    for (struct dirent *d; tasks && (d = readdir(tasks));)
        threads += d->d_name[0] != '.';
    printf("answers: %zu threads: %d\n", count(text, got, "HTTP/1.1 200 OK"), threads);
    return 0;
}

static int stdio(const char *host) {
    FILE *f = fdopen(dial(host), "r+");
    if (!f || fputs(GET, f) < 0 || fflush(f) != 0) {
        perror("stdio");
        return 1;
    }
    char line[256];
    if (!fgets(line, sizeof line, f)) {
        perror("fgets");
        return 1;
    }
    printf("stdio: %s", line);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: caller_thread pipelined|bytewise|lagging|signal|fork|single|stdio HOST\n");
        return 2;
    }
    const char *mode = argv[1], *host = argv[2];
    if (!strcmp(mode, "pipelined"))
        return pipelined(host);
    if (!strcmp(mode, "bytewise"))
        return bytewise(host);
    if (!strcmp(mode, "lagging"))
        return lagging(host);
    if (!strcmp(mode, "signal"))
        return signals(host);
    if (!strcmp(mode, "fork"))
        return forked(host);
    if (!strcmp(mode, "single"))
        return single(host);
    if (!strcmp(mode, "stdio"))
        return stdio(host);
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
}
