/* Starts `busybox wget -q -O - URL` the way MODE says and passes on what
 * it printed: each of libc's ways to start a program, for the tests of
 * which programs the supervisor takes. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int wait_for(pid_t pid) {
    int status;
    if (waitpid(pid, &status, 0) < 0) {
        perror("waitpid");
        return 1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: start MODE URL\n");
        return 2;
    }
    const char *mode = argv[1], *url = argv[2];
    char *args[] = {"busybox", "wget", "-q", "-O", "-", (char *)url, NULL};
    char line[1024];
    snprintf(line, sizeof line, "busybox wget -q -O - '%s'", url);
    fflush(stdout);
    if (strcmp(mode, "posix_spawn") == 0 || strcmp(mode, "posix_spawnp") == 0) {
        pid_t pid;
        int rc = mode[11] == 'p' ? posix_spawnp(&pid, "busybox", NULL, NULL, args, environ)
                                 : posix_spawn(&pid, "/bin/busybox", NULL, NULL, args, environ);
        if (rc != 0) {
            fprintf(stderr, "%s: %s\n", mode, strerror(rc));
            return 1;
        }
        return wait_for(pid);
    }
    if (strcmp(mode, "system") == 0)
        return WEXITSTATUS(system(line));
    if (strcmp(mode, "popen") == 0) {
        FILE *from = popen(line, "r");
        if (from == NULL) {
            perror("popen");
            return 1;
        }
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, from)) > 0)
            fwrite(buf, 1, n, stdout);
        return WEXITSTATUS(pclose(from));
    }
    /* The exec family, in a child: vfork, as Python's subprocess does. */
    pid_t pid = strcmp(mode, "vfork-execv") == 0 ? vfork() : fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        if (strcmp(mode, "execl") == 0)
            execl("/bin/busybox", "busybox", "wget", "-q", "-O", "-", url, (char *)NULL);
        else if (strcmp(mode, "execlp") == 0)
            execlp("busybox", "busybox", "wget", "-q", "-O", "-", url, (char *)NULL);
        else if (strcmp(mode, "execle") == 0)
            execle("/bin/busybox", "busybox", "wget", "-q", "-O", "-", url, (char *)NULL, environ);
        else if (strcmp(mode, "execv") == 0 || strcmp(mode, "vfork-execv") == 0)
            execv("/bin/busybox", args);
        else if (strcmp(mode, "execvp") == 0)
            execvp("busybox", args);
        else if (strcmp(mode, "fexecve") == 0) {
            int fd = open("/bin/busybox", O_RDONLY | O_CLOEXEC);
            fexecve(fd, args, environ);
        } else if (strcmp(mode, "execveat") == 0) {
            int dir = open("/bin", O_PATH | O_DIRECTORY);
            execveat(dir, "busybox", args, environ, 0);
        } else {
            fprintf(stderr, "start: unknown mode %s\n", mode);
            _exit(2);
        }
        perror(mode);
        _exit(127);
    }
    return wait_for(pid);
}
