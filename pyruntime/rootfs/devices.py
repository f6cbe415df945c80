"""/dev inside the container: the default devices, linux.devices, and the standard symlinks."""

from __future__ import annotations

import os
import stat

from .. import native
from .._native import lib
from . import resolve

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_DEVICES = [  # (path, type, major, minor): what runtime-spec requires in every container
    ("/dev/null", "c", 1, 3), ("/dev/zero", "c", 1, 5), ("/dev/full", "c", 1, 7),
    ("/dev/random", "c", 1, 8), ("/dev/urandom", "c", 1, 9), ("/dev/tty", "c", 5, 0),
]
SYMLINKS = [("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"),
            ("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr"), ("pts/ptmx", "/dev/ptmx")]
_TYPES = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def needs_dev_setup(config: dict[str, Any]) -> bool:
    """runc's rule: populate /dev unless config.json bind-mounts the host's /dev there."""
    for m in config.get("mounts") or []:
        if m.get("destination", "").rstrip("/") == "/dev":
            opts = m.get("options") or []
            return not (m.get("type") == "bind" or "bind" in opts or "rbind" in opts)
    return True


def create_devices(root_fd: int, config: dict[str, Any], userns: bool) -> None:
    wanted = {p: (t, ma, mi, 0o666, 0, 0) for p, t, ma, mi in DEFAULT_DEVICES}
    for dev in (config.get("linux") or {}).get("devices") or []:
        wanted[dev["path"]] = (dev["type"], dev.get("major", 0), dev.get("minor", 0),
                               dev.get("fileMode", 0o666), dev.get("uid", 0), dev.get("gid", 0))
    for path, spec in wanted.items():
        _make_node(root_fd, path, *spec, userns=userns)
    for target, link in SYMLINKS:
        resolve.symlink_in_root(root_fd, target, link)


def _make_node(root_fd: int, path: str, dtype: str, major: int, minor: int, mode: int, uid: int, gid: int,
               userns: bool) -> None:
    parent_path, name = os.path.split(path)
    parent = resolve.mkdirs_in_root(root_fd, parent_path)
    try:
        _remove_unless(parent, name, dtype, major, minor)
        if userns:  # mknod is not allowed in a user namespace: bind the host's node instead
            fd = resolve.mkfile_in_root(root_fd, path)
            try:
                native.mount(path, resolve.fd_path(fd), None, lib.MS_BIND)
            finally:
                os.close(fd)
            return
        try:
            os.mknod(name, _TYPES[dtype] | (mode & 0o7777), os.makedev(major, minor), dir_fd=parent)
        except FileExistsError:
            pass
        os.chown(name, uid, gid, dir_fd=parent, follow_symlinks=False)
    finally:
        os.close(parent)


def bind_console(root_fd: int, pty_fd: int) -> None:
    """/dev/console as a bind mount of the container's pty (pty_fd: the process's stdio by now), as
    runc does; whatever the image has there that is neither a file nor a device (a planted symlink)
    is removed, never followed."""
    parent = resolve.mkdirs_in_root(root_fd, "/dev")
    try:
        try:
            st = os.stat("console", dir_fd=parent, follow_symlinks=False)
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISCHR(st.st_mode)):
                os.unlink("console", dir_fd=parent)
        except FileNotFoundError:
            pass
    finally:
        os.close(parent)
    target = resolve.mkfile_in_root(root_fd, "/dev/console")
    try:
        native.mount(resolve.fd_path(pty_fd), resolve.fd_path(target), None, lib.MS_BIND)
    finally:
        os.close(target)


def _remove_unless(parent: int, name: str, dtype: str, major: int, minor: int) -> None:
    """Something at the device's path that is not that device (a planted symlink, a file) is removed,
    never followed."""
    try:
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_IFMT(st.st_mode) == _TYPES[dtype] and (dtype == "p" or st.st_rdev == os.makedev(major, minor)):
        return
    if stat.S_ISDIR(st.st_mode):
        os.rmdir(name, dir_fd=parent)
    else:
        os.unlink(name, dir_fd=parent)
