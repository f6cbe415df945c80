"""Switching the process's root to the prepared rootfs: pivot_root, or MS_MOVE + chroot (--no-pivot)."""

from __future__ import annotations

import errno
import os

from .. import native
from .._native import lib
from .mounts import remount_bind


def make_rootfs_mount(rootfs: str, propagation: int) -> None:
    """Set the propagation of our copy of the host's mounts (default rslave, so nothing we mount
    reaches the host), make the rootfs its own mount, and its parent private (pivot_root needs it)."""
    native.mount(None, "/", None, propagation)
    # Private parent *before* the bind: a bind of a shared (or unbindable) mount would be shared
    # (or fail), and pivot_root refuses a shared new root. The wanted propagation is applied to the
    # new root after the pivot (apply_root_propagation), as runc does.
    parent = os.path.dirname(rootfs)
    while True:  # the mount that holds rootfs's parent: walk up until mount(MS_PRIVATE) succeeds
        try:
            native.mount(None, parent, None, lib.MS_PRIVATE)
            break
        except OSError:
            if parent == "/":
                raise
            parent = os.path.dirname(parent)
    native.mount(rootfs, rootfs, None, lib.MS_BIND | lib.MS_REC)


def apply_root_propagation(propagation: int) -> None:
    """linux.rootfsPropagation on the container's / (after the pivot; private needs nothing more)."""
    if not propagation & lib.MS_PRIVATE:
        native.mount(None, "/", None, propagation)


def pivot(rootfs: str) -> None:
    """pivot_root(".", ".") then detach the old root: no directory is needed for it."""
    os.chdir(rootfs)
    native.pivot_root(".", ".")
    native.mount(None, ".", None, lib.MS_SLAVE | lib.MS_REC)  # unmounting must not propagate to the host
    native.umount2(".", lib.MNT_DETACH)
    os.chdir("/")


def move_root(rootfs: str) -> None:
    """--no-pivot: for a rootfs on ramfs, where pivot_root is impossible. The host's mounts stay in
    the namespace, under the chroot: every full procfs and sysfs among them is unmounted (or covered)
    first, as runc does, or the kernel would let the container mount a fresh, unmasked procfs."""
    _hide_host_proc_and_sys(rootfs)
    os.chdir(rootfs)
    native.mount(rootfs, "/", None, lib.MS_MOVE)
    os.chroot(".")
    os.chdir("/")


def remount_root_readonly() -> None:
    remount_bind("/", lib.MS_RDONLY)


def _unescape(field: str) -> str:
    """mountinfo octal escapes (\\040 for a space...)."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _hide_host_proc_and_sys(rootfs: str) -> None:
    with open("/proc/self/mountinfo") as f:  # still the host's /proc: read before anything goes
        lines = f.read().splitlines()
    inside = rootfs.rstrip("/") + "/"
    for line in lines:
        fields = line.split()
        sep = fields.index("-")
        root, mount_point, fstype = _unescape(fields[3]), _unescape(fields[4]), fields[sep + 1]
        if root != "/" or fstype not in ("proc", "sysfs") or (mount_point + "/").startswith(inside):
            continue
        try:
            native.mount(None, mount_point, None, lib.MS_SLAVE | lib.MS_REC)  # the unmount must not propagate
        except FileNotFoundError:
            continue  # under a mount already gone
        try:
            native.umount2(mount_point, lib.MNT_DETACH)
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.EPERM):
                raise
            native.mount("tmpfs", mount_point, "tmpfs", 0, None)  # locked (user namespace): covered
