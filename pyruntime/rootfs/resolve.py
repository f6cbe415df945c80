"""Resolve paths inside the rootfs without ever leaving it (openat2 RESOLVE_IN_ROOT).

Every operation on a path inside the container's rootfs goes through an fd obtained here, so a
symlink planted in the image (or swapped in during setup) cannot redirect it to the host.
Mounts are then made onto /proc/self/fd/N of that fd, which names exactly the resolved dentry.
"""

from __future__ import annotations

import errno
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


MAX_SYMLINKS = 40  # the kernel's limit on symlinks followed in one lookup


def mkdirs_in_root(root_fd: int, path: str, mode: int = 0o755) -> int:
    """Create path (and parents) inside the rootfs; return an O_PATH fd of the directory.

    Symlinks on the way are followed as if the rootfs were /, so a dangling one (even to an absolute
    host path) makes its target be created inside the rootfs, never outside (runc's MkdirAllInRoot)."""
    todo = _parts(path)
    done: list[str] = []
    links = 0
    fd = os.dup(root_fd)
    try:
        while todo:
            part = todo.pop(0)
            rel = "/".join([*done, part])
            try:
                nfd = native.openat2(root_fd, rel, O_PATH_DIR, IN_ROOT)
            except FileNotFoundError:
                try:
                    os.mkdir(part, mode, dir_fd=fd)
                except FileExistsError:
                    target = _dangling_target(fd, part)  # raises if it is not a symlink
                    links += 1
                    if links > MAX_SYMLINKS:
                        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path) from None
                    if target.startswith("/"):
                        done = []
                        os.close(fd)
                        fd = os.dup(root_fd)
                    todo = _parts(target) + todo
                    continue
                nfd = native.openat2(root_fd, rel, O_PATH_DIR, IN_ROOT)
            done.append(part)
            os.close(fd)
            fd = nfd
        return fd
    except BaseException:
        os.close(fd)
        raise


def symlink_in_root(root_fd: int, target: str, link: str) -> None:
    """Create the symlink link -> target inside the rootfs (parents too); an existing entry is kept."""
    parent_path, name = os.path.split(link)
    parent = mkdirs_in_root(root_fd, parent_path)
    try:
        os.symlink(target, name, dir_fd=parent)
    except FileExistsError:
        pass
    finally:
        os.close(parent)


def _dangling_target(dir_fd: int, name: str) -> str:
    """The target of the symlink name in dir_fd (which resolved to nothing)."""
    try:
        return os.readlink(name, dir_fd=dir_fd)
    except OSError:
        raise OSError(errno.ENOTDIR, "exists but is not a directory", name) from None


def mkfile_in_root(root_fd: int, path: str, _depth: int = 0) -> int:
    """Create an empty file at path if nothing is there (following a dangling symlink inside the
    rootfs, as mkdirs_in_root does); return an O_PATH fd of what is there."""
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
            try:
                return native.openat2(root_fd, "/".join(parts), os.O_PATH, IN_ROOT)
            except FileNotFoundError:
                pass
            target = _dangling_target(parent, parts[-1])
            if _depth >= MAX_SYMLINKS:
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path) from None
            base = "" if target.startswith("/") else "/".join(parts[:-1])
            return mkfile_in_root(root_fd, f"{base}/{target}", _depth + 1)
        return native.openat2(root_fd, "/".join(parts), os.O_PATH, IN_ROOT)
    finally:
        os.close(parent)


def is_dir(fd: int) -> bool:
    return stat.S_ISDIR(os.fstat(fd).st_mode)
