"""Python face of the C extension: each call raises OSError (with errno) instead of returning -1."""

from __future__ import annotations

import os

from ._native import ffi, lib

NULL = ffi.NULL


def _check(rc: int, what: str, target: str | None = None) -> int:
    if rc < 0:
        err = ffi.errno
        raise OSError(err, f"{what}: {os.strerror(err)}", target)
    return rc


def _b(s: str | None):  # noqa: ANN202 - cffi char* or NULL
    return NULL if s is None else s.encode()


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(lib.pr_mount(_b(source), target.encode(), _b(fstype), flags, _b(data)), "mount", target)


def umount2(target: str, flags: int) -> None:
    _check(lib.pr_umount2(target.encode(), flags), "umount", target)


def unshare(flags: int) -> None:
    _check(lib.pr_unshare(flags), "unshare")


def setns(fd: int, nstype: int) -> None:
    _check(lib.pr_setns(fd, nstype), "setns")


def pivot_root(new_root: str, put_old: str) -> None:
    _check(lib.pr_pivot_root(new_root.encode(), put_old.encode()), "pivot_root", new_root)


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    return _check(lib.pr_openat2(dirfd, path.encode(), flags | os.O_CLOEXEC, mode, resolve), "openat2", path)


def setdomainname(name: str) -> None:
    data = name.encode()
    _check(lib.pr_setdomainname(data, len(data)), "setdomainname")


def loopback_up() -> None:
    _check(lib.pr_loopback_up(), "bring up lo")


def cap_ambient_raise(cap: int) -> None:
    _check(lib.pr_cap_ambient(lib.PR_CAP_AMBIENT_RAISE, cap), "raise ambient capability")


def cap_ambient_clear() -> None:
    _check(lib.pr_cap_ambient(lib.PR_CAP_AMBIENT_CLEAR_ALL, 0), "clear ambient capabilities")


def join_session_keyring(name: str | None) -> None:
    _check(lib.pr_join_session_keyring(_b(name)), "join session keyring")


def personality(persona: int) -> None:
    _check(lib.pr_personality(persona), "personality")


def close_range_cloexec(first: int) -> None:
    _check(lib.pr_close_range_cloexec(first), "close_range")


def capset(effective: set[int], permitted: set[int], inheritable: set[int]) -> None:
    def mask(caps: set[int]) -> int:
        return sum(1 << c for c in caps)

    _check(lib.pr_capset(mask(effective), mask(permitted), mask(inheritable)), "capset")


def open_tree(dfd: int, path: str, flags: int) -> int:
    return _check(lib.pr_open_tree(dfd, path.encode(), flags), "open_tree", path)


def mount_setattr(dfd: int, path: str, flags: int, attr_set: int = 0, attr_clr: int = 0,
                  propagation: int = 0, userns_fd: int = -1) -> None:
    _check(lib.pr_mount_setattr(dfd, path.encode(), flags, attr_set, attr_clr, propagation, userns_fd),
           "mount_setattr", path)


def move_mount(from_dfd: int, from_path: str, to_dfd: int, to_path: str, flags: int) -> None:
    _check(lib.pr_move_mount(from_dfd, from_path.encode(), to_dfd, to_path.encode(), flags), "move_mount", to_path)


def fork_into_cgroup(cgroup_fd: int) -> int:
    """os.fork() with the child born in that cgroup v2 directory (clone3 CLONE_INTO_CGROUP): no
    write to cgroup.procs, so no wait for an RCU grace period. OSError if the kernel refuses."""
    return _check(lib.pr_fork_into_cgroup(cgroup_fd), "clone3")
