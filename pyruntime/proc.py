"""Process helpers shared by create, run, exec and the terminal proxy: the pid file, the exit code.

Kept apart from container.py so console.py and exec_.py need not import it (no import cycle).
"""

from __future__ import annotations

import os


def write_pid_file(path: str, pid: int) -> None:
    """The bare pid, no newline (conmon reads it as is), written atomically."""
    path = os.path.abspath(path)
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.pyruntime-tmp")
    # Whatever sits at the temporary name (a hard link to a file someone wants clobbered, a symlink,
    # a fifo to hang us) is unlinked, never opened: the new file must be ours (O_EXCL).
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    try:
        os.write(fd, str(pid).encode())
    finally:
        os.close(fd)
    os.rename(tmp, path)


def wait_exit(pid: int) -> int:
    """Exit code of a child (the init, reparented to us in `run`), 128+N for a signal."""
    while True:
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            return 255
        except InterruptedError:
            continue
        if os.WIFEXITED(status):
            return os.WEXITSTATUS(status)
        if os.WIFSIGNALED(status):
            return 128 + os.WTERMSIG(status)
