"""delete: find every process of a container wherever it now is, and make it killable.

Anyone may move a container's process into another cgroup (a write to that cgroup's cgroup.procs)
and freeze it there with a v1 freezer. A frozen task gets SIGKILL only once it is thawed, so a
delete that just signals leaves it alive, and the container's cgroups can never be removed.

The container's processes are those in its own cgroups, in every hierarchy (a process moved in one
hierarchy stays in the others), and, when it has a pid namespace of its own, every process of that
namespace (found through /proc/<pid>/ns/pid). One held in a frozen v1 freezer cgroup that is not the
container's is moved back into the container's own freezer cgroup: the kernel thaws a task that
joins a thawed freezer cgroup. The other cgroup's freezer.state is never written, so whatever else
it holds stays frozen. (runc 1.1.5 gives up here after 10 s, "container init still running", and
leaves the container; cgroup v2 needs none of this: a frozen v2 task dies of SIGKILL.)
"""

from __future__ import annotations

import os

from ..errors import RuntimeFailure

_FROZEN = ("FROZEN", "FREEZING")


def members(paths: dict[str, str], init_pid: int, own_pid_ns: bool, cgroups: bool = True) -> set[int]:
    """The pids of the container: its cgroups' (every hierarchy, sub-cgroups too) when cgroups is
    true, and its pid namespace's when own_pid_ns and the init (init_pid > 0) is alive."""
    from . import _subtree

    found: set[int] = set()
    if cgroups:
        for top in paths.values():
            if not os.path.isdir(top):
                continue
            for d in _subtree(top):
                try:
                    with open(f"{d}/cgroup.procs", "rb") as f:
                        found.update(int(x) for x in f.read().split())
                except (FileNotFoundError, ValueError):
                    continue
    if own_pid_ns and init_pid > 0:
        found.update(pid_namespace_members(init_pid))
    return found


def pid_namespace_members(init_pid: int) -> list[int]:
    """Every process whose pid namespace is the one init_pid is PID 1 of (a /proc scan)."""
    try:
        st = os.stat(f"/proc/{init_pid}/ns/pid")
    except OSError:
        return []
    ns = (st.st_dev, st.st_ino)
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            other = os.stat(f"/proc/{name}/ns/pid")
        except OSError:
            continue  # gone, or a kernel thread
        if (other.st_dev, other.st_ino) == ns:
            found.append(int(name))
    return found


def freezer_cgroup(pid: int, mount_point: str) -> str | None:
    """The v1 freezer cgroup directory pid is in (None: gone, or no freezer hierarchy)."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            for line in f:
                _id, controllers, rel = line.rstrip("\n").split(":", 2)
                if "freezer" in controllers.split(","):
                    return mount_point + rel if rel != "/" else mount_point
    except (OSError, ValueError):
        return None
    return None


def _state(path: str) -> str:
    try:
        with open(f"{path}/freezer.state") as f:
            return f.read().strip()
    except OSError:
        return "THAWED"  # the root (no freezer.state), or gone


def release_frozen(paths: dict[str, str], pids: set[int]) -> list[str]:
    """Move each of pids held frozen in a v1 freezer cgroup other than the container's own back
    into the container's own freezer cgroup (paths: as cgroups.resolve found them). Returns
    the foreign frozen cgroups that held them (for the message of a delete that still fails)."""
    own = next(((m, p) for m, p in paths.items() if m.endswith("/freezer")), None)
    if own is None:
        return []  # no freezer cgroup of its own left: delete fails on the busy cgroups, naming one
    mount_point, own_path = own
    held: list[str] = []
    for pid in sorted(pids):
        where = freezer_cgroup(pid, mount_point)
        if where is None or where == own_path or where.startswith(own_path + "/"):
            continue  # the container's own freezer (pause): the caller thaws it after the kill
        if _state(where) not in _FROZEN and not _ancestor_frozen(mount_point, where):
            continue
        held.append(where)
        _move(mount_point, own_path, pid, where)
    return held


def _ancestor_frozen(_mount_point: str, path: str) -> bool:
    try:
        with open(f"{path}/freezer.parent_freezing") as f:
            return f.read().strip() == "1"
    except OSError:
        return False


def _move(mount_point: str, own_path: str, pid: int, where: str) -> None:
    from . import _mkdir_p

    # Made again if it went meanwhile (delete removes it). If the container is paused, the task
    # stays frozen there until the caller thaws it after the kill.
    _mkdir_p(mount_point, own_path)
    try:
        with open(f"{own_path}/cgroup.procs", "w") as f:
            f.write(str(pid))
    except ProcessLookupError:
        return  # exited meanwhile
    except OSError as e:
        raise RuntimeFailure(f"process {pid} of the container is frozen in {where} (not its cgroup) "
                             f"and cannot be moved back to {own_path}: {(e.strerror or str(e)).lower()}; "
                             "thaw that cgroup and delete again") from None


def frozen_ancestor(paths: dict[str, str]) -> str | None:
    """An ancestor freezer cgroup that holds the container's own one frozen (someone froze a
    parent, e.g. a pod's): thawing it is not the container's to do, so delete refuses, naming it."""
    own = next(((m, p) for m, p in paths.items() if m.endswith("/freezer")), None)
    if own is None or not _ancestor_frozen(*own):
        return None
    mount_point, d = own
    while d != mount_point:
        d = os.path.dirname(d)
        try:
            with open(f"{d}/freezer.self_freezing") as f:
                if f.read().strip() == "1":
                    return d
        except OSError:
            return None
    return None
