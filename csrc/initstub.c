/* The container's init between `create` and `start`, and the last image before the user's program.
 *
 * pyruntime's Python init execs this static binary from a sealed memfd once the container is set up,
 * so that no host binary is ever /proc/self/exe of a process inside the container (CVE-2019-5736),
 * and so that the process waiting for `start` costs a few hundred KB instead of a Python interpreter.
 *
 * usage: initstub LISTEN_FD PATH ARGV0 [ARGS...]   (environment: the container process's env)
 *   LISTEN_FD >= 0: accept one connection on that listening socket (sent by `start`), then exec;
 *   LISTEN_FD == -1: exec at once (used by `exec` and by inits that already waited).
 * Policy (namespaces, mounts, credentials, seccomp) is all applied before this runs. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "initstub: usage: initstub LISTEN_FD PATH ARGV0 [ARGS...]\n");
        return 125;
    }
    int listen_fd = atoi(argv[1]);
    if (listen_fd >= 0) {
        int conn;
        do {
            conn = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        } while (conn < 0 && errno == EINTR);
        if (conn < 0) {
            fprintf(stderr, "initstub: waiting for start: %s\n", strerror(errno));
            return 125;
        }
        close(listen_fd);
        /* Tell `start` we are about to exec; it then runs poststart hooks. */
        (void)!write(conn, "s", 1);
        close(conn);
    }
    execve(argv[2], &argv[3], environ);
    int err = errno;
    fprintf(stderr, "exec %s: %s\n", argv[2], strerror(err));
    return (err == ENOENT) ? 127 : 126;
}
