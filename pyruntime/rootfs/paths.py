"""linux.maskedPaths and linux.readonlyPaths, applied through fds resolved inside the rootfs."""

from __future__ import annotations

import os
import stat

from .. import native
from .._native import lib
from . import resolve
from .mounts import remount_bind


def mask(root_fd: int, path: str) -> None:
    """Hide path: an empty read-only tmpfs over a directory, /dev/null over anything else."""
    try:
        fd = resolve.open_in_root(root_fd, path)
    except (FileNotFoundError, NotADirectoryError):
        return
    try:
        if resolve.is_dir(fd):
            native.mount("tmpfs", resolve.fd_path(fd), "tmpfs", lib.MS_RDONLY, None)
        else:
            null = _container_null(root_fd)
            try:
                native.mount(resolve.fd_path(null) if null >= 0 else "/dev/null", resolve.fd_path(fd), None,
                             lib.MS_BIND)
            finally:
                if null >= 0:
                    os.close(null)
    finally:
        os.close(fd)


def _container_null(root_fd: int) -> int:
    """An fd of the container's own /dev/null when it is the real device (then the host's devtmpfs does
    not show in the container's mountinfo, as with runc), else -1 for the host's."""
    try:
        null = resolve.open_in_root(root_fd, "/dev/null")
    except OSError:
        return -1
    st = os.fstat(null)
    if stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3):
        return null
    os.close(null)
    return -1


def make_readonly(root_fd: int, path: str) -> None:
    try:
        fd = resolve.open_in_root(root_fd, path)
    except (FileNotFoundError, NotADirectoryError):
        return
    try:
        native.mount(resolve.fd_path(fd), resolve.fd_path(fd), None, lib.MS_BIND | lib.MS_REC)
    finally:
        os.close(fd)
    top = resolve.open_in_root(root_fd, path)
    try:
        remount_bind(resolve.fd_path(top), lib.MS_RDONLY | lib.MS_NOSUID | lib.MS_NODEV | lib.MS_NOEXEC)
    finally:
        os.close(top)
