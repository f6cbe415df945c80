/* os.fork(), but the child starts in the cgroup v2 directory cgroup_fd (clone3 CLONE_INTO_CGROUP, Linux
 * 5.7). Moving a process with a write to cgroup.procs takes cgroup_threadgroup_rwsem for writing, which
 * waits for an RCU grace period (5-20 ms here) on every create and exec; being born there takes it
 * only for reading, like any fork. The interpreter is told about the fork as os.fork tells it
 * (PyOS_BeforeFork, PyOS_AfterFork_*); cffi calls us without the GIL, so it is taken back first.
 * Returns the pid (0 in the child) or -1 with errno (ENOSYS, EINVAL, EBUSY...: the caller forks
 * the usual way). The child has a single thread, as after os.fork. */
#include <signal.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

struct pr_clone_args {  /* struct clone_args of <linux/sched.h>, up to CLONE_ARGS_SIZE_VER2 */
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid,
        set_tid_size, cgroup;
};

int pr_fork_into_cgroup(int cgroup_fd)
{
    struct pr_clone_args args;
    memset(&args, 0, sizeof(args));
    args.flags = CLONE_INTO_CGROUP;
    args.exit_signal = SIGCHLD;
    args.cgroup = (uint64_t)cgroup_fd;
    PyGILState_STATE gil = PyGILState_Ensure();
    PyOS_BeforeFork();
    long pid = syscall(SYS_clone3, &args, sizeof(args));
    int saved = errno;
    if (pid == 0)
        PyOS_AfterFork_Child();
    else
        PyOS_AfterFork_Parent();
    PyGILState_Release(gil);
    errno = saved;
    return (int)pid;
}
