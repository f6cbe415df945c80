"""Keep the host's Python out of reach of a container that can see the runtime's processes.

The process that joins a running container's pid namespace (`exec`, or `create` into a shared pid
namespace) runs host Python inside the container until it execs the init stub. Its mm names the
host interpreter (/proc/<pid>/exe) and every library it maps (/proc/<pid>/map_files): a container
whose root holds CAP_SYS_PTRACE in the host's user namespace passes the non-dumpable check and can
reopen those for writing (the CVE-2019-5736 class, with libc and libpython as targets).

The remedy: before forking anything into the container, the runtime re-executes itself once in a
private mount namespace in which every directory it maps code from is a read-only bind mount. The
mm then names files through read-only mounts: reopening them for writing fails with EROFS, and the
container cannot remount mounts that are not in its namespace. It costs one Python start-up, and
is only paid when such a container could reach us (see `exposed`).
"""

from __future__ import annotations

import os
import sys

from .. import native
from .._native import lib
from ..errors import RuntimeFailure

_MARK = "PYRUNTIME_SEALED_REEXEC"
# False in a process that is not the runtime's own command line (pyruntime.api's helper, forked from
# the caller's program): there is no command line to re-execute, so `ensure` refuses instead.
reexec_allowed = True


def exposed(bounding_sets: list[list[str] | None], user_namespace: bool) -> bool:
    """Whether processes of the container could reach a host process's exe and map_files: only with
    CAP_SYS_PTRACE in the host's user namespace (the non-dumpable check stops everyone else).
    A set of None means "unknown" (a pid namespace shared with processes we know nothing of)."""
    if user_namespace:
        return False
    for caps in bounding_sets:
        if caps is None:
            return True
        if any(c.upper().removeprefix("CAP_") == "SYS_PTRACE" for c in caps):
            return True
    return False


def _mapped_files() -> set[str]:
    files = {os.path.realpath(sys.executable)}
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) == 6:
                path = parts[5].rstrip("\n")
                if path.startswith("/") and not path.endswith(" (deleted)"):
                    files.add(path)
    return files


def _code_dirs() -> list[str]:
    """Directories the runtime maps code from now or may later (extension modules)."""
    import sysconfig  # only when the code must be sealed (~0.4 ms; exec imports this module every time)

    dirs = {os.path.dirname(p) for p in _mapped_files()}
    for key in ("platlib", "purelib", "stdlib", "platstdlib"):
        path = sysconfig.get_path(key)
        if path:
            dirs.add(path)
    dirs.add(os.path.join(sysconfig.get_path("platstdlib") or "", "lib-dynload"))
    dirs.add(os.path.dirname(os.path.abspath(native.__file__)))
    dirs = {os.path.realpath(d) for d in dirs if os.path.isdir(d)}
    top = []
    for d in sorted(dirs):  # parents first; a bind of a parent covers its subdirectories
        if not any(d == t or d.startswith(t.rstrip("/") + "/") for t in top):
            top.append(d)
    return top


def _all_readonly() -> bool:
    for path in _mapped_files():
        try:
            if not os.statvfs(path).f_flag & os.ST_RDONLY:
                return False
        except OSError:
            return False
    return True


def ensure(is_exposed: bool) -> None:
    """Return if the runtime's code cannot be reached for writing; otherwise re-execute the runtime
    (same arguments, same fds) from read-only mounts. Fails closed if that did not work."""
    if not is_exposed or _all_readonly():
        return
    if not reexec_allowed:
        raise RuntimeFailure("the container's processes could reach the runtime's code (CAP_SYS_PTRACE "
                             "without a user namespace): only the command line can re-execute itself "
                             "from read-only mounts; use `pyruntime` for this container")
    if os.environ.get(_MARK):
        raise RuntimeFailure("cannot map the runtime's code read-only; refusing to enter a container "
                             "whose processes could reach it")
    try:
        native.unshare(lib.CLONE_NEWNS)
        native.mount(None, "/", None, lib.MS_SLAVE | lib.MS_REC)  # nothing of ours reaches the host
        for d in _code_dirs():
            native.mount(d, d, None, lib.MS_BIND | lib.MS_REC)
            flags = lib.MS_REMOUNT | lib.MS_BIND | lib.MS_RDONLY
            st = os.statvfs(d)  # keep the flags the kernel locks on the original mount
            for st_flag, ms in ((os.ST_NOSUID, lib.MS_NOSUID), (os.ST_NODEV, lib.MS_NODEV),
                                (os.ST_NOEXEC, lib.MS_NOEXEC)):
                if st.f_flag & st_flag:
                    flags |= ms
            native.mount(None, d, None, flags)
    except OSError as e:
        raise RuntimeFailure(f"cannot map the runtime's code read-only: {e.strerror}") from None
    env = dict(os.environ, **{_MARK: "1"})
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-I", "-m", "pyruntime", *sys.argv[1:]], env)
