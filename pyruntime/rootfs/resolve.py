"""Resolve paths inside the rootfs without ever leaving it (openat2 RESOLVE_IN_ROOT).

Every operation on a path inside the container's rootfs goes through an fd obtained here, so a
symlink planted in the image (or swapped in during setup) cannot redirect it to the host.
Mounts are then made onto /proc/self/fd/N of that fd, which names exactly the resolved dentry.
"""

from __future__ import annotations

import os
import stat

from .. import native
from .._native import lib

IN_ROOT = lib.RESOLVE_IN_ROOT | lib.RESOLVE_NO_MAGICLINKS
O_PATH_DIR = os.O_PATH | os.O_DIRECTORY


def fd_path(fd: int) -> str:
    """The magic path naming an fd's file; valid while the host's /proc is this process's /proc."""
    return f"/proc/self/fd/{fd}"


def _parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p and p != "."]


def open_in_root(root_fd: int, path: str, flags: int = os.O_PATH) -> int:
    rel = "/".join(_parts(path)) or "."
    return native.openat2(root_fd, rel, flags, IN_ROOT)


def mkdirs_in_root(root_fd: int, path: str, mode: int = 0o755) -> int:
    """Create path (and parents) inside the rootfs; return an O_PATH fd of the directory."""
    parts = _parts(path)
    fd = os.dup(root_fd)
    try:
        for i, part in enumerate(parts):
            try:
                nfd = native.openat2(root_fd, "/".join(parts[: i + 1]), O_PATH_DIR, IN_ROOT)
            except FileNotFoundError:
                try:
                    os.mkdir(part, mode, dir_fd=fd)
                except FileExistsError:
                    pass  # a dangling symlink: resolved again below, inside the root
                nfd = native.openat2(root_fd, "/".join(parts[: i + 1]), O_PATH_DIR, IN_ROOT)
            os.close(fd)
            fd = nfd
        return fd
    except BaseException:
        os.close(fd)
        raise


def mkfile_in_root(root_fd: int, path: str) -> int:
    """Create an empty file at path if nothing is there; return an O_PATH fd of what is there."""
    parts = _parts(path)
    parent = mkdirs_in_root(root_fd, "/".join(parts[:-1]))
    try:
        try:
            return native.openat2(root_fd, "/".join(parts), os.O_PATH, IN_ROOT)
        except FileNotFoundError:
            pass
        try:
            os.close(os.open(parts[-1], os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                             0o644, dir_fd=parent))
        except FileExistsError:
            pass
        return native.openat2(root_fd, "/".join(parts), os.O_PATH, IN_ROOT)
    finally:
        os.close(parent)


def is_dir(fd: int) -> bool:
    return stat.S_ISDIR(os.fstat(fd).st_mode)
