"""config.json `mounts`: option parsing and fd-based mounting inside the rootfs."""

from __future__ import annotations

import os
import stat

from .. import native
from .._native import lib
from ..errors import ConfigError, RuntimeFailure
from ..record import dataclass  # dataclasses without its start-up cost (see record.py)
from . import idmap, resolve

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# option -> (clear these flags, set these flags)
_FLAGS: dict[str, tuple[int, int]] = {
    "ro": (0, lib.MS_RDONLY), "rw": (lib.MS_RDONLY, 0),
    "nosuid": (0, lib.MS_NOSUID), "suid": (lib.MS_NOSUID, 0),
    "nodev": (0, lib.MS_NODEV), "dev": (lib.MS_NODEV, 0),
    "noexec": (0, lib.MS_NOEXEC), "exec": (lib.MS_NOEXEC, 0),
    "sync": (0, lib.MS_SYNCHRONOUS), "async": (lib.MS_SYNCHRONOUS, 0),
    "dirsync": (0, lib.MS_DIRSYNC),
    "remount": (0, lib.MS_REMOUNT),
    "mand": (0, lib.MS_MANDLOCK), "nomand": (lib.MS_MANDLOCK, 0),
    "atime": (lib.MS_NOATIME, 0), "noatime": (0, lib.MS_NOATIME),
    "diratime": (lib.MS_NODIRATIME, 0), "nodiratime": (0, lib.MS_NODIRATIME),
    "relatime": (0, lib.MS_RELATIME), "norelatime": (lib.MS_RELATIME, 0),
    "strictatime": (0, lib.MS_STRICTATIME), "nostrictatime": (lib.MS_STRICTATIME, 0),
    "lazytime": (0, lib.MS_LAZYTIME), "nolazytime": (lib.MS_LAZYTIME, 0),
    "silent": (0, lib.MS_SILENT), "loud": (lib.MS_SILENT, 0),
    "bind": (0, lib.MS_BIND), "rbind": (0, lib.MS_BIND | lib.MS_REC),
}
PROPAGATION: dict[str, int] = {
    "private": lib.MS_PRIVATE, "rprivate": lib.MS_PRIVATE | lib.MS_REC,
    "shared": lib.MS_SHARED, "rshared": lib.MS_SHARED | lib.MS_REC,
    "slave": lib.MS_SLAVE, "rslave": lib.MS_SLAVE | lib.MS_REC,
    "unbindable": lib.MS_UNBINDABLE, "runbindable": lib.MS_UNBINDABLE | lib.MS_REC,
}
# Options handled elsewhere or meaningless to mount(2): accepted, not passed as data.
_IGNORED = {"defaults", "auto", "noauto", "user", "nouser", "_netdev", "tmpcopyup", "notmpcopyup", "copy-symlink"}
_ATIME = lib.MS_NOATIME | lib.MS_RELATIME | lib.MS_STRICTATIME | lib.MS_NODIRATIME


@dataclass
class MountSpec:
    """One entry of config.json `mounts`, parsed."""

    destination: str
    source: str
    type: str
    flags: int
    propagation: list[int]
    data: str
    is_bind: bool
    rec_set: int = 0  # recursive attributes (rro, rnosuid, ...) applied with mount_setattr
    rec_clr: int = 0


def parse(entry: dict[str, Any], index: int, bundle: str, file: str) -> MountSpec:
    flags, propagation, data = 0, [], []
    for opt in entry.get("options") or []:
        if opt in _FLAGS:
            clear, set_ = _FLAGS[opt]
            flags = (flags & ~clear) | set_
        elif opt in PROPAGATION:
            propagation.append(PROPAGATION[opt])
        elif opt in ("idmap", "ridmap") or opt in idmap.RECURSIVE_ATTRS:
            pass  # new mount API, below
        elif opt not in _IGNORED:
            data.append(opt)
    mtype = entry.get("type") or ""
    is_bind = bool(flags & lib.MS_BIND) or mtype == "bind"
    if is_bind:
        flags |= lib.MS_BIND
    source = entry.get("source") or mtype or "none"
    if is_bind and not os.path.isabs(source):
        source = os.path.join(bundle, source)
    destination = entry["destination"]
    if not destination.startswith("/"):
        destination = "/" + destination
    if ".." in destination.split("/"):
        # Resolved inside the root anyway; refused so config mistakes are loud.
        raise ConfigError(file, f"mounts[{index}].destination", "must not contain '..'")
    rec_set, rec_clr = idmap.recursive_attrs(entry.get("options") or [])
    return MountSpec(destination, source, mtype, flags, propagation, ",".join(data), is_bind, rec_set, rec_clr)


def deferred_readonly(m: MountSpec) -> bool:
    """A read-only tmpfs or /dev is mounted read-write, then made read-only once what goes in it
    (mount points, device nodes, symlinks) is made: remount_deferred (runc's finalizeRootfs)."""
    return bool(m.flags & lib.MS_RDONLY) and not m.is_bind and (m.type == "tmpfs" or m.destination.rstrip("/") == "/dev")


def remount_deferred(root_fd: int, m: MountSpec) -> None:
    try:
        top = resolve.open_in_root(root_fd, m.destination, os.O_PATH | os.O_DIRECTORY)
        try:
            remount_bind(resolve.fd_path(top), lib.MS_RDONLY | (m.flags & ~(lib.MS_REMOUNT | lib.MS_BIND | lib.MS_REC)))
        finally:
            os.close(top)
    except OSError as e:
        raise RuntimeFailure(f"remount {m.destination} read-only: {os.strerror(e.errno).lower()}") from None


def mount_into(root_fd: int, m: MountSpec, label: str | None = None, idmapped_tree: int = -1) -> None:
    """Mount m at its destination inside the rootfs, through an fd of the resolved target."""
    if m.type in ("proc", "sysfs"):
        _check_ordinary_dir(root_fd, m)
    if deferred_readonly(m):
        m = MountSpec(m.destination, m.source, m.type, m.flags & ~lib.MS_RDONLY, m.propagation, m.data, m.is_bind,
                      m.rec_set, m.rec_clr)
    keep_mode = -1  # a tmpfs without mode= over an existing directory keeps its mode (runc, crun)
    if m.type == "tmpfs" and not any(o.startswith("mode=") for o in m.data.split(",")):
        try:
            existing = resolve.open_in_root(root_fd, m.destination, os.O_PATH | os.O_DIRECTORY)
        except OSError:
            pass
        else:
            keep_mode = os.fstat(existing).st_mode & 0o7777
            os.close(existing)
    if m.is_bind and idmapped_tree >= 0:  # opened by the runtime (idmapped, or for a user namespace)
        src_is_dir = stat.S_ISDIR(os.fstat(idmapped_tree).st_mode)
    elif m.is_bind:
        try:
            src_is_dir = os.path.isdir(m.source)
            os.stat(m.source)
        except OSError as e:
            raise RuntimeFailure(f"mount {m.destination}: source {m.source}: {e.strerror.lower()}") from None
    try:
        target = resolve.mkfile_in_root(root_fd, m.destination) if m.is_bind and not src_is_dir \
            else resolve.mkdirs_in_root(root_fd, m.destination)
    except OSError as e:
        raise RuntimeFailure(f"mount {m.destination}: cannot make the mount point inside the rootfs: "
                             f"{e.strerror.lower()}") from None
    try:
        where = resolve.fd_path(target)
        data = m.data
        if label and m.type not in ("bind", "proc", "sysfs", "cgroup", "cgroup2"):
            data = f"{data},context=\"{label}\"" if data else f"context=\"{label}\""
        try:
            if m.is_bind and idmapped_tree >= 0:
                idmap.attach(idmapped_tree, target)
            elif m.is_bind:
                native.mount(m.source, where, None, m.flags & (lib.MS_BIND | lib.MS_REC))
            else:
                native.mount(m.source, where, m.type, m.flags & ~lib.MS_REMOUNT, data or None)
            extra = m.flags & ~(lib.MS_BIND | lib.MS_REC | lib.MS_REMOUNT)
            if keep_mode >= 0:
                top = resolve.open_in_root(root_fd, m.destination, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    os.fchmod(top, keep_mode)
                finally:
                    os.close(top)
            if (m.is_bind and extra) or m.propagation or m.rec_set or m.rec_clr:
                # The fd still names the covered mount: act on the new one through a fresh fd.
                top = resolve.open_in_root(root_fd, m.destination)
                try:
                    if m.is_bind and extra:
                        remount_bind(resolve.fd_path(top), extra)
                    for prop in m.propagation:
                        native.mount(None, resolve.fd_path(top), None, prop)
                    if m.rec_set or m.rec_clr:
                        idmap.apply_recursive(top, m.rec_set, m.rec_clr)
                finally:
                    os.close(top)
        except OSError as e:
            raise RuntimeFailure(f"mount {m.type or 'bind'} {m.source} on {m.destination}: "
                                 f"{os.strerror(e.errno).lower()}") from None
    finally:
        os.close(target)


def _check_ordinary_dir(root_fd: int, m: MountSpec) -> None:
    """procfs and sysfs go on a plain directory (runc's rule): a symlink planted at /proc would
    move them, and with them the masked and read-only paths and sysctl writes the runtime makes.
    RESOLVE_NO_SYMLINKS fails on any symlink on the way, dangling or not; ENOENT means a plain
    missing directory, which is then made."""
    rel = "/".join(p for p in m.destination.split("/") if p and p != ".") or "."
    try:
        os.close(native.openat2(root_fd, rel, os.O_PATH | os.O_DIRECTORY, resolve.IN_ROOT | lib.RESOLVE_NO_SYMLINKS))
    except FileNotFoundError:
        return
    except OSError:
        raise RuntimeFailure(f"mount {m.type} on {m.destination}: must be mounted on ordinary directory "
                             "(the rootfs has a symlink or a non-directory there)") from None


def remount_bind(where: str, flags: int) -> None:
    """Apply flags to a bind mount, keeping the flags the kernel locks (nosuid, nodev, noexec, atime)
    of the mount it came from."""
    current = _statvfs_flags(where)
    if not flags & _ATIME:
        flags |= current & _ATIME
    flags |= current & (lib.MS_NOSUID | lib.MS_NODEV | lib.MS_NOEXEC)
    native.mount(None, where, None, lib.MS_REMOUNT | lib.MS_BIND | flags)


def _statvfs_flags(path: str) -> int:
    st = os.statvfs(path)
    table = ((os.ST_RDONLY, lib.MS_RDONLY), (os.ST_NOSUID, lib.MS_NOSUID), (os.ST_NODEV, lib.MS_NODEV),
             (os.ST_NOEXEC, lib.MS_NOEXEC), (os.ST_NOATIME, lib.MS_NOATIME),
             (os.ST_NODIRATIME, lib.MS_NODIRATIME), (os.ST_RELATIME, lib.MS_RELATIME))
    return sum(ms for st_flag, ms in table if st.f_flag & st_flag)


def mount_cgroupfs(root_fd: int, m: MountSpec, cgroup_paths: dict[str, str], new_cgroupns: bool) -> None:
    """The `cgroup` mount type. On a pure v2 host: cgroup2 itself. On v1/hybrid hosts: a tmpfs holding
    one bind mount per hierarchy of the container's own cgroup (what runc shows a container)."""
    ro = m.flags & lib.MS_RDONLY
    base = m.flags & (lib.MS_NOSUID | lib.MS_NODEV | lib.MS_NOEXEC)
    unified_only = list(cgroup_paths) and all(os.path.basename(mp) == "cgroup" for mp in cgroup_paths)
    if unified_only and new_cgroupns:
        mount_into(root_fd, MountSpec(m.destination, "cgroup2", "cgroup2", m.flags, m.propagation, "", False))
        return
    mount_into(root_fd, MountSpec(m.destination, "tmpfs", "tmpfs", base, [], "mode=755", False))
    for mount_point, path in cgroup_paths.items():
        name = os.path.basename(mount_point)
        dest = m.destination.rstrip("/") + "/" + name
        mount_into(root_fd, MountSpec(dest, path, "bind", lib.MS_BIND | lib.MS_REC | base | ro, [], "", True))
        if "," in name:  # cpu,cpuacct is also reachable as cpu and cpuacct
            for alias in name.split(","):
                resolve.symlink_in_root(root_fd, name, m.destination.rstrip("/") + "/" + alias)
    if ro:
        target = resolve.open_in_root(root_fd, m.destination, os.O_PATH | os.O_DIRECTORY)
        try:
            remount_bind(resolve.fd_path(target), lib.MS_RDONLY | base)
        finally:
            os.close(target)


def mount_sysfs_in_userns(root_fd: int, m: MountSpec) -> None:
    """sysfs can be mounted in a user namespace only with a network namespace it owns; otherwise bind
    the host's /sys read-only (runc's fallback)."""
    try:
        mount_into(root_fd, m)
    except RuntimeFailure:
        flags = lib.MS_BIND | lib.MS_REC | lib.MS_RDONLY | lib.MS_NOSUID | lib.MS_NODEV | lib.MS_NOEXEC
        mount_into(root_fd, MountSpec(m.destination, "/sys", "bind", flags, [], "", True))
