"""The init stub (csrc/initstub.c) as a sealed, executable memfd.

Executing it from a memfd means the process that runs inside the container never has a host file
as /proc/self/exe, so the container cannot reopen the runtime's binary (or the host's Python) for
writing; the seals make the memfd itself immutable.
"""

from __future__ import annotations

import fcntl
import os

from .. import fastjson

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

STUB_PATH = os.path.join(os.path.dirname(__file__), os.pardir, "_initstub")
_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE


def _sealed(name: str, data: bytes) -> int:
    """A close-on-exec memfd holding data, sealed against any change."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
    return fd


def sealed_memfd() -> int:
    """The stub in a sealed memfd, copied by the kernel (sendfile: no pass through Python's memory)."""
    src = os.open(STUB_PATH, os.O_RDONLY | os.O_CLOEXEC)
    fd = -1
    try:
        fd = os.memfd_create("pyruntime-init", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        size, done = os.fstat(src).st_size, 0
        while done < size:
            sent = os.sendfile(fd, src, done, size - done)
            if sent == 0:
                raise OSError(f"{STUB_PATH}: short read")
            done += sent
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        raise
    finally:
        os.close(src)
    return fd


def hooks_memfd(state: dict[str, Any], hooks: list[dict[str, Any]]) -> int:
    """The startContainer hooks for the stub to run after `start` (format: csrc/initstub.c)."""
    parts = [fastjson.dumps(state), str(len(hooks))]
    for hook in hooks:
        args, env = hook.get("args") or [hook["path"]], hook.get("env")
        envc = "-1" if env is None else str(len(env))  # -1: the stub's own environment (runc's too)
        parts += [str(hook.get("timeout") or 0), hook["path"], str(len(args)), *args, envc, *(env or [])]
    return _sealed("pyruntime-hooks", b"".join(p.encode() + b"\0" for p in parts))


def filter_memfd(bpf: bytes) -> int:
    """linux.seccomp's compiled BPF for the stub to load right before the program's execve."""
    return _sealed("pyruntime-seccomp", bpf)


def stub_fds_arg(listen_fd: int, hooks_fd: int = -1, seccomp_fd: int = -1, flags: int = 0, chan_fd: int = -1) -> str:
    """The stub's first argument (format: csrc/initstub.c)."""
    if seccomp_fd < 0 and chan_fd < 0:
        return f"{listen_fd}:{hooks_fd}" if hooks_fd >= 0 else str(listen_fd)
    return f"{listen_fd}:{hooks_fd}:{seccomp_fd}:{flags}:{chan_fd}"
