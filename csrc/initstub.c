/* The container's init between `create` and `start`, and the last image before the user's program.
 *
 * pyruntime's Python init execs this static binary from a sealed memfd once the container is set up,
 * so that no host binary is ever /proc/self/exe of a process inside the container (CVE-2019-5736),
 * and so that the process waiting for `start` costs a few hundred KB instead of a Python interpreter.
 *
 * usage: initstub LISTEN_FD[:HOOKS_FD[:SECCOMP_FD:FLAGS[:CHAN_FD]]] PATH ARGV0 [ARGS...]
 *   (environment: the container process's env; any fd may be -1)
 *   LISTEN_FD >= 0: accept one connection on that listening socket (sent by `start`), run the
 *     startContainer hooks described by HOOKS_FD (if given), answer "s" (or "e" + an error line), exec;
 *   LISTEN_FD == -1: exec at once (used by `exec` and by inits that already waited).
 * HOOKS_FD: a memfd written by the init (pyruntime/process/stub.py::hooks_memfd), NUL-separated:
 *   STATE_JSON N { TIMEOUT PATH ARGC ARG... ENVC ENV... } x N      (TIMEOUT 0: none; ENVC -1: no
 *   `env` in the hook, which gets the stub's environment, as runc's hooks get runc init's)
 * SECCOMP_FD: a sealed memfd holding the container's classic BPF program (linux.seccomp, compiled by
 *   the runtime), FLAGS its seccomp(2) flags. It is loaded here, as the very last step before the
 *   program's execve, so the stub's own accept/hooks/answer are never filtered (a profile need not
 *   allow them); each startContainer hook loads it too, before its execve (runc runs them under it).
 *   With SECCOMP_FILTER_FLAG_NEW_LISTENER the listener fd goes, with the answer "s", to `start`
 *   (over the accepted connection) or, for `exec`, to the runtime over CHAN_FD as the JSON message
 *   {"seccomp_fd": true}: they hand it to linux.seccomp.listenerPath. After the load this stub makes
 *   one sendmsg (notify only; the runtime refuses SCMP_ACT_NOTIFY on sendmsg and write) and execve:
 *   every other fd it holds is close-on-exec.
 * Namespaces, mounts and credentials are applied before this runs. Signal dispositions and the mask
 * are reset to the defaults just before the filter is loaded. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* Every signal back to its default and none blocked, whatever the runtime's caller ignored or
 * blocked. Raw system calls, because libc refuses to touch the signals it reserves (32, 33), which
 * a caller may still have ignored. An all-zero kernel sigaction is SIG_DFL with no flags on every
 * architecture, whatever the struct's layout; the kernel's sigset is (NSIG - 1) / 8 bytes. */
static void reset_signals(void)
{
    unsigned long long zero[8];
    memset(zero, 0, sizeof(zero));
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            syscall(SYS_rt_sigaction, sig, zero, NULL, (NSIG - 1) / 8);
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, zero, NULL, (NSIG - 1) / 8);
}

/* The seccomp filter, read once from its memfd (NULL: none). */
static struct sock_fprog filter;
static unsigned long filter_flags;

static int read_filter(int fd, unsigned long flags)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -1;
    if (st.st_size <= 0 || st.st_size % (off_t)sizeof(struct sock_filter) != 0 ||
        st.st_size / (off_t)sizeof(struct sock_filter) > BPF_MAXINSNS) {
        errno = EINVAL;
        return -1;
    }
    struct sock_filter *insns = malloc((size_t)st.st_size);
    if (!insns)
        return -1;
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = pread(fd, (char *)insns + got, (size_t)st.st_size - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            free(insns);
            errno = EIO;
            return -1;
        }
        got += (size_t)n;
    }
    close(fd);
    filter.len = (unsigned short)(st.st_size / (off_t)sizeof(struct sock_filter));
    filter.filter = insns;
    filter_flags = flags;
    return 0;
}

/* Install the filter: the listener fd with SECCOMP_FILTER_FLAG_NEW_LISTENER, else 0; -1 on error. */
static long load_filter(unsigned long flags)
{
    return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &filter);
}

/* The flags for a startContainer hook: its own copy of the filter, with no listener (a notified
 * syscall of a hook gets ENOSYS: only the container's process is handed to listenerPath). */
static unsigned long hook_filter_flags(void)
{
    unsigned long flags = filter_flags;
#ifdef SECCOMP_FILTER_FLAG_NEW_LISTENER
    flags &= ~(unsigned long)SECCOMP_FILTER_FLAG_NEW_LISTENER;
#endif
#ifdef SECCOMP_FILTER_FLAG_TSYNC_ESRCH
    flags &= ~(unsigned long)SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
#endif
#ifdef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
    flags &= ~(unsigned long)SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
#endif
    return flags;
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* The next NUL-terminated string of the hooks blob, or NULL past its end. */
static char *next_str(char **cur, char *end)
{
    char *s = *cur;
    if (s >= end)
        return NULL;
    char *nul = memchr(s, '\0', (size_t)(end - s));
    if (!nul)
        return NULL;
    *cur = nul + 1;
    return s;
}

/* Run one hook with the state on its stdin; 0 on success, else -1 with err filled in. */
static int run_hook(int index, long timeout_s, char *path, char **args, char **envs, const char *state,
                    char *err, size_t errlen)
{
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "startContainer hook #%d (%s): pipe: %s", index, path, strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "startContainer hook #%d (%s): fork: %s", index, path, strerror(errno));
        return -1;
    }
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(out[1], 2);
        reset_signals();
        /* Only stdio reaches a hook (as with runc): not the preserved fds, not ours. */
#ifdef SYS_close_range
        if (syscall(SYS_close_range, 3, ~0U, 0) < 0)
#endif
            for (int fd = 3; fd < 1024; fd++)
                close(fd);
        if (filter.filter && load_filter(hook_filter_flags()) < 0) {
            dprintf(2, "cannot load the seccomp filter: %s\n", strerror(errno));
            _exit(126);
        }
        execve(path, args, envs);
        dprintf(2, "cannot execute %s: %s\n", path, strerror(errno));
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    const char *p = state;
    size_t left = strlen(state);
    while (left > 0) { /* a hook may ignore its stdin: EPIPE (SIGPIPE is ignored here) ends this */
        ssize_t n = write(in[1], p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        p += n;
        left -= (size_t)n;
    }
    close(in[1]);

    char tail[256] = "";
    size_t tail_len = 0;
    int out_open = 1, status = 0, timed_out = 0;
    long deadline = timeout_s > 0 ? now_ms() + timeout_s * 1000L : 0;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
        if (deadline && now_ms() >= deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            timed_out = 1;
            break;
        }
        struct pollfd pfd = {.fd = out[0], .events = POLLIN};
        if (poll(&pfd, out_open ? 1 : 0, 10) > 0) {
            char buf[512];
            ssize_t n = read(out[0], buf, sizeof buf);
            if (n <= 0) {
                out_open = 0;
            } else { /* keep the last bytes: the error line is usually at the end */
                if ((size_t)n >= sizeof tail - 1) {
                    memcpy(tail, buf + n - (sizeof tail - 1), sizeof tail - 1);
                    tail_len = sizeof tail - 1;
                } else {
                    if (tail_len + (size_t)n > sizeof tail - 1) {
                        size_t drop = tail_len + (size_t)n - (sizeof tail - 1);
                        memmove(tail, tail + drop, tail_len - drop);
                        tail_len -= drop;
                    }
                    memcpy(tail + tail_len, buf, (size_t)n);
                    tail_len += (size_t)n;
                }
                tail[tail_len] = '\0';
            }
        }
    }
    if (out_open) { /* what the hook wrote just before it exited */
        fcntl(out[0], F_SETFL, O_NONBLOCK);
        char buf[256];
        ssize_t n;
        while ((n = read(out[0], buf, sizeof buf - 1)) > 0) {
            if (tail_len + (size_t)n > sizeof tail - 1)
                tail_len = 0;
            memcpy(tail + tail_len, buf, (size_t)n);
            tail_len += (size_t)n;
            tail[tail_len] = '\0';
        }
    }
    close(out[0]);
    while (tail_len > 0 && (tail[tail_len - 1] == '\n' || tail[tail_len - 1] == '\r'))
        tail[--tail_len] = '\0';
    char *last = strrchr(tail, '\n');
    last = last ? last + 1 : tail;
    for (char *c = last; *c; c++)
        if (*c < ' ')
            *c = ' ';
    const char *sep = *last ? ": " : "";
    /* runc's wording ("error running hook", "signal: bad system call"), which callers match */
    if (timed_out) {
        snprintf(err, errlen, "startContainer hook #%d (%s): error running hook: timed out after %lds", index, path,
                 timeout_s);
        return -1;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
        snprintf(err, errlen, "startContainer hook #%d (%s): error running hook: exit status %d%s%s", index, path,
                 WEXITSTATUS(status), sep, last);
        return -1;
    }
    if (WIFSIGNALED(status)) {
        char sig[64];
        snprintf(sig, sizeof sig, "%s", strsignal(WTERMSIG(status)));
        for (char *c = sig; *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c - 'A' + 'a');
        snprintf(err, errlen, "startContainer hook #%d (%s): error running hook: signal: %s%s%s", index, path, sig, sep,
                 last);
        return -1;
    }
    return 0;
}

/* Run every startContainer hook in the blob of fd, in order; stop at the first failure. */
static int run_hooks(int fd, char *err, size_t errlen)
{
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_size <= 0 || st.st_size > (64 << 20)) {
        snprintf(err, errlen, "startContainer hooks: unreadable description");
        return -1;
    }
    char *blob = malloc((size_t)st.st_size + 1);
    if (!blob) {
        snprintf(err, errlen, "startContainer hooks: out of memory");
        return -1;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = pread(fd, blob + got, (size_t)st.st_size - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    blob[got] = '\0';
    char *cur = blob, *end = blob + got;
    char *state = next_str(&cur, end), *count = next_str(&cur, end);
    if (!state || !count)
        goto bad;
    struct sigaction ign = {.sa_handler = SIG_IGN}, old_pipe;
    sigaction(SIGPIPE, &ign, &old_pipe);
    int rc = 0;
    for (int i = 0, n = atoi(count); i < n && rc == 0; i++) {
        char *timeout = next_str(&cur, end), *path = next_str(&cur, end), *argc_s = next_str(&cur, end);
        if (!timeout || !path || !argc_s)
            goto bad;
        int argc = atoi(argc_s);
        if (argc < 0 || argc > 100000)
            goto bad;
        char **args = calloc((size_t)argc + 1, sizeof *args);
        for (int a = 0; args && a < argc; a++)
            if (!(args[a] = next_str(&cur, end)))
                goto bad;
        char *envc_s = next_str(&cur, end);
        int envc = envc_s ? atoi(envc_s) : -2;
        if (!args || envc < -1 || envc > 100000)
            goto bad;
        char **envs = NULL; /* envc -1: the hook has no `env`, it gets ours (the process's) */
        if (envc >= 0) {
            envs = calloc((size_t)envc + 1, sizeof *envs);
            for (int e = 0; envs && e < envc; e++)
                if (!(envs[e] = next_str(&cur, end)))
                    goto bad;
            if (!envs)
                goto bad;
        }
        rc = run_hook(i, atol(timeout), path, args, envs ? envs : environ, state, err, errlen);
        free(args);
        free(envs);
    }
    sigaction(SIGPIPE, &old_pipe, NULL);
    free(blob);
    return rc;
bad:
    snprintf(err, errlen, "startContainer hooks: malformed description");
    return -1;
}

/* Send one byte string with one fd attached (SCM_RIGHTS); errors are left to the receiver. */
static void send_fd(int sock, const char *msg, int fd)
{
    struct iovec iov = {.iov_base = (void *)msg, .iov_len = strlen(msg)};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof u);
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    while (sendmsg(sock, &mh, MSG_NOSIGNAL) < 0 && errno == EINTR)
        ;
}

/* A load failure, told to whoever waits: `start` ("e" + why) or exec's runtime (a JSON error). */
static int load_failed(int conn, int chan, int err)
{
    char msg[256];
    int len;
    if (conn >= 0)
        len = snprintf(msg, sizeof msg, "ecannot load the seccomp filter (linux.seccomp): %s", strerror(err));
    else
        len = snprintf(msg, sizeof msg, "{\"error\": \"cannot load the seccomp filter (linux.seccomp): %s\"}",
                       strerror(err));
    int out = conn >= 0 ? conn : chan;
    if (out >= 0)
        (void)!write(out, msg, (size_t)(len < (int)sizeof msg ? len : (int)sizeof msg - 1));
    else
        fprintf(stderr, "initstub: %s\n", msg);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "initstub: usage: initstub LISTEN_FD[:HOOKS_FD[:SECCOMP_FD:FLAGS[:CHAN_FD]]] PATH ARGV0 [ARGS...]\n");
        return 125;
    }
    long fds[5] = {-1, -1, -1, 0, -1};
    char *cur = argv[1];
    for (int i = 0; i < 5 && *cur; i++) {
        fds[i] = strtol(cur, &cur, 10);
        if (*cur == ':')
            cur++;
    }
    int listen_fd = (int)fds[0], hooks_fd = (int)fds[1], seccomp_fd = (int)fds[2], chan_fd = (int)fds[4];
    unsigned long flags = (unsigned long)fds[3];
    if (chan_fd >= 0) /* inherited for this stub only: closed by the program's execve */
        fcntl(chan_fd, F_SETFD, FD_CLOEXEC);
    if (seccomp_fd >= 0 && read_filter(seccomp_fd, flags) < 0) {
        fprintf(stderr, "initstub: reading the seccomp filter: %s\n", strerror(errno));
        return 125;
    }
#ifdef SECCOMP_FILTER_FLAG_NEW_LISTENER
    int notify = filter.filter && (flags & SECCOMP_FILTER_FLAG_NEW_LISTENER);
#else
    int notify = 0;
#endif
    int conn = -1;
    if (listen_fd >= 0) {
        do {
            conn = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        } while (conn < 0 && errno == EINTR);
        if (conn < 0) {
            fprintf(stderr, "initstub: waiting for start (accept4 on the start socket): %s\n", strerror(errno));
            return 125;
        }
        close(listen_fd);
        if (hooks_fd >= 0) {
            char err[512];
            if (run_hooks(hooks_fd, err, sizeof err) != 0) {
                char msg[520];
                int len = snprintf(msg, sizeof msg, "e%s", err);
                (void)!write(conn, msg, (size_t)(len < (int)sizeof msg ? len : (int)sizeof msg - 1));
                close(conn);
                return 1;
            }
            close(hooks_fd);
        }
        /* Tell `start` we are about to exec (it then runs poststart hooks); the connection stays
         * open (close-on-exec) so that a failed load can still be reported after the "s". */
        if (!notify)
            (void)!write(conn, "s", 1);
    } else if (hooks_fd >= 0) {
        close(hooks_fd);
    }
    reset_signals();
    if (filter.filter) {
        long lfd = load_filter(flags);
        if (lfd < 0)
            return load_failed(conn, chan_fd, errno);
        if (notify) /* close-on-exec (kernel): the receiver holds the only copy after our execve */
            send_fd(conn >= 0 ? conn : chan_fd, conn >= 0 ? "s" : "{\"seccomp_fd\": true}", (int)lfd);
    }
    execve(argv[2], &argv[3], environ);
    int err = errno;
    fprintf(stderr, "exec %s: %s\n", argv[2], strerror(err));
    return (err == ENOENT) ? 127 : 126;
}
