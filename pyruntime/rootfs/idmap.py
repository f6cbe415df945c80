"""Idmapped mounts (mount options idmap/ridmap, mount uidMappings/gidMappings, runtime-spec 1.2) and
recursive mount attributes (rro, rnosuid, ...), through the new mount API.

Before it forks, the runtime makes a user namespace per distinct mapping (a child unshares, the maps
are written, its /proc/<pid>/ns/user is opened), clones each source tree with open_tree and marks it
idmapped with mount_setattr; the init then moves the detached tree onto its target with move_mount.
"""

from __future__ import annotations

import os

from .. import native
from .._native import lib
from ..errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# option -> (clear?, attribute); atime attributes also clear the whole atime field (kernel rule).
RECURSIVE_ATTRS: dict[str, tuple[bool, int]] = {
    "rro": (False, lib.MOUNT_ATTR_RDONLY), "rrw": (True, lib.MOUNT_ATTR_RDONLY),
    "rnosuid": (False, lib.MOUNT_ATTR_NOSUID), "rsuid": (True, lib.MOUNT_ATTR_NOSUID),
    "rnodev": (False, lib.MOUNT_ATTR_NODEV), "rdev": (True, lib.MOUNT_ATTR_NODEV),
    "rnoexec": (False, lib.MOUNT_ATTR_NOEXEC), "rexec": (True, lib.MOUNT_ATTR_NOEXEC),
    "rnodiratime": (False, lib.MOUNT_ATTR_NODIRATIME), "rdiratime": (True, lib.MOUNT_ATTR_NODIRATIME),
    "rrelatime": (False, lib.MOUNT_ATTR_RELATIME), "rnorelatime": (True, lib.MOUNT_ATTR_RELATIME),
    "rnoatime": (False, lib.MOUNT_ATTR_NOATIME), "ratime": (True, lib.MOUNT_ATTR_NOATIME),
    "rstrictatime": (False, lib.MOUNT_ATTR_STRICTATIME), "rnostrictatime": (True, lib.MOUNT_ATTR_STRICTATIME),
    "rnosymfollow": (False, lib.MOUNT_ATTR_NOSYMFOLLOW), "rsymfollow": (True, lib.MOUNT_ATTR_NOSYMFOLLOW),
}
_ATIME_ATTRS = (lib.MOUNT_ATTR_RELATIME, lib.MOUNT_ATTR_NOATIME, lib.MOUNT_ATTR_STRICTATIME)


def recursive_attrs(options: list[str]) -> tuple[int, int]:
    """(attr_set, attr_clr) for the r* options among options."""
    attr_set = attr_clr = 0
    for opt in options:
        if opt not in RECURSIVE_ATTRS:
            continue
        clear, attr = RECURSIVE_ATTRS[opt]
        if attr in _ATIME_ATTRS:  # one atime mode: clear the field, then set the mode (relatime is 0)
            attr_clr |= lib.MOUNT_ATTR__ATIME
            attr_set &= ~lib.MOUNT_ATTR__ATIME
            if not clear:
                attr_set |= attr
        elif clear:
            attr_set &= ~attr
            attr_clr |= attr
        else:
            attr_set |= attr
            attr_clr &= ~attr
    return attr_set, attr_clr


def wanted_mappings(config: dict[str, Any], file: str) -> dict[int, tuple[list, list]]:
    """{mount index: (uid maps, gid maps)} for every mount that asks for an idmapped mount."""
    linux = config.get("linux") or {}
    out = {}
    for i, m in enumerate(config.get("mounts") or []):
        opts = m.get("options") or []
        explicit = m.get("uidMappings") or m.get("gidMappings")
        if not explicit and "idmap" not in opts and "ridmap" not in opts:
            continue
        uid_maps = m.get("uidMappings") or linux.get("uidMappings") or []
        gid_maps = m.get("gidMappings") or linux.get("gidMappings") or []
        if not uid_maps or not gid_maps:
            raise ConfigError(file, f"mounts[{i}]", "an idmapped mount needs uidMappings and gidMappings "
                              "(on the mount or in linux)")
        if not (m.get("type") == "bind" or "bind" in opts or "rbind" in opts):
            raise ConfigError(file, f"mounts[{i}].type", "only bind mounts can be idmapped")
        out[i] = (uid_maps, gid_maps)
    return out


def prepare_trees(config: dict[str, Any], bundle: str, file: str) -> dict[int, int]:
    """{mount index: detached, idmapped mount tree fd}. Made by the runtime in the host's user namespace:
    idmapping a mount needs CAP_SYS_ADMIN over the filesystem's namespace, which the init lacks."""
    trees: dict[int, int] = {}
    userns: dict[str, int] = {}
    try:
        for index, (uid_maps, gid_maps) in wanted_mappings(config, file).items():
            m = config["mounts"][index]
            opts = m.get("options") or []
            source = m.get("source") or ""
            source = source if os.path.isabs(source) else os.path.join(bundle, source)
            key = repr((uid_maps, gid_maps))
            if key not in userns:
                userns[key] = _userns_fd(uid_maps, gid_maps)
            recursive_tree = "rbind" in opts
            flags = lib.OPEN_TREE_CLONE | lib.OPEN_TREE_CLOEXEC | (lib.AT_RECURSIVE if recursive_tree else 0)
            try:
                tree = native.open_tree(lib.AT_FDCWD, source, flags)
                trees[index] = tree
                native.mount_setattr(tree, "", lib.AT_EMPTY_PATH | (lib.AT_RECURSIVE if "ridmap" in opts else 0),
                                     attr_set=lib.MOUNT_ATTR_IDMAP, userns_fd=userns[key])
            except OSError as e:
                raise ConfigError(file, f"mounts[{index}]", f"cannot make an idmapped mount of {source}: "
                                  f"{e.strerror.lower()}") from None
        _plain_bind_trees(config, bundle, file, trees)
    except BaseException:
        for fd in trees.values():
            os.close(fd)
        raise
    finally:
        for fd in userns.values():
            os.close(fd)
    return trees


def _plain_bind_trees(config: dict[str, Any], bundle: str, file: str, trees: dict[int, int]) -> None:
    """In a new user namespace the init is the container's root, which may not reach a bind mount's
    source (a directory only the host's root can enter): as runc does, the runtime opens each source
    first (a detached clone of it), and the init moves that onto the target."""
    linux = config.get("linux") or {}
    if os.geteuid() != 0:  # rootless: the mapped root is the caller, who reaches what it names
        return
    if not any(ns.get("type") == "user" and not ns.get("path") for ns in linux.get("namespaces") or []):
        return
    for index, m in enumerate(config.get("mounts") or []):
        opts = m.get("options") or []
        if index in trees or not (m.get("type") == "bind" or "bind" in opts or "rbind" in opts):
            continue
        source = m.get("source") or ""
        source = source if os.path.isabs(source) else os.path.join(bundle, source)
        flags = lib.OPEN_TREE_CLONE | lib.OPEN_TREE_CLOEXEC | (lib.AT_RECURSIVE if "rbind" in opts else 0)
        try:
            trees[index] = native.open_tree(lib.AT_FDCWD, source, flags)
        except OSError:
            continue  # the init mounts it by path, and says why it cannot


def _userns_fd(uid_maps: list, gid_maps: list) -> int:
    from ..namespaces import write_id_maps

    go_r, go_w = os.pipe2(os.O_CLOEXEC)
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(go_w)
            native.unshare(lib.CLONE_NEWUSER)
            os.write(ready_w, b"1")
            os.read(go_r, 1)
        finally:
            os._exit(0)
    os.close(go_r)
    os.close(ready_w)
    try:
        if os.read(ready_r, 1) != b"1":
            raise OSError("cannot create a user namespace for an idmapped mount")
        write_id_maps(pid, {"linux": {"uidMappings": uid_maps, "gidMappings": gid_maps}})
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(go_w)
        os.close(ready_r)
        os.waitpid(pid, 0)


def attach(tree_fd: int, target_fd: int) -> None:
    """Move a prepared idmapped tree onto the target (inside the container's mount namespace)."""
    native.move_mount(tree_fd, "", target_fd, "", lib.MOVE_MOUNT_F_EMPTY_PATH | lib.MOVE_MOUNT_T_EMPTY_PATH)


def apply_recursive(target_fd: int, attr_set: int, attr_clr: int) -> None:
    native.mount_setattr(target_fd, "", lib.AT_EMPTY_PATH | lib.AT_RECURSIVE, attr_set=attr_set, attr_clr=attr_clr)
