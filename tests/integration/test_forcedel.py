"""delete --force ends clean whatever was done to the container's cgroups, and cgroup ownership:
processes moved into someone else's frozen v1 freezer cgroup (or left in the container's own one,
renamed and frozen) are killed and everything is removed; a stopped, undeleted container's cgroup
is not taken by a new container; delete holds the cgroup's claim as create does (issue #15).

The tests make their freezer cgroups at the hierarchy's root under unique names, thaw them before
removing them and end their own processes by pid.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from pyruntime_tests_conftest import cgroup_dirs, wait_until

FREEZER = Path("/sys/fs/cgroup/freezer")
V1_FREEZER = (FREEZER / "freezer.state").exists() or (FREEZER / "cgroup.procs").exists()
needs_v1_freezer = pytest.mark.skipif(not V1_FREEZER, reason="needs a cgroup v1 freezer hierarchy")


def _procs(d: Path) -> list[int]:
    return [int(x) for x in (d / "cgroup.procs").read_text().split()]


def _freeze(d: Path) -> None:
    (d / "freezer.state").write_text("FROZEN")
    wait_until(lambda: (d / "freezer.state").read_text().strip() == "FROZEN", what=f"{d} to freeze")


def _gone(pidfd: int) -> bool:
    return bool(select.select([pidfd], [], [], 0)[0])  # readable once the process has exited


def _start_two(rt, make_bundle, cid: str, cgroup_parent: str) -> tuple[Path, list[int]]:  # noqa: ANN001
    """A detached container with an init and a child; (its freezer cgroup, both pids)."""
    bundle = make_bundle(["sh", "-c", "sleep 1000 & sleep 1000"], name="c")
    rt("run", "--detach", "--bundle", str(bundle), cid)
    own = FREEZER / cgroup_parent.lstrip("/") / "c"
    return own, wait_until(lambda: len(_procs(own)) == 2 and _procs(own), what="the container's two processes")


def _cleanup(frozen_dir: Path, pidfds: dict[int, int], bystander: subprocess.Popen | None = None) -> None:
    """Thaw first (a frozen task dies only once thawed), then end what is left by pid, then rmdir."""
    if frozen_dir.is_dir():
        (frozen_dir / "freezer.state").write_text("THAWED")
    for pid, fd in pidfds.items():
        if not _gone(fd):
            os.kill(pid, 9)
        os.close(fd)
    if bystander is not None:
        bystander.kill()
        bystander.wait()
    if frozen_dir.is_dir():
        wait_until(lambda: not _procs(frozen_dir), what=f"{frozen_dir} to empty")
        frozen_dir.rmdir()


@needs_v1_freezer
def test_force_delete_kills_processes_frozen_in_a_foreign_freezer_cgroup(rt, make_bundle, cid, cgroup_parent):
    """Moved into another freezer cgroup and frozen there, the container's processes would never get
    SIGKILL (runc 1.1.5 gives up: "container init still running"). delete --force takes them back
    into the container's own (thawed) freezer cgroup, kills them and removes everything; the other
    cgroup is left as it was: still frozen, with its own process in it."""
    own, pids = _start_two(rt, make_bundle, cid, cgroup_parent)
    foreign = FREEZER / f"pyruntime-test-foreign-{uuid.uuid4().hex[:12]}"
    foreign.mkdir()
    bystander = subprocess.Popen(["sleep", "1000"])
    pidfds = {pid: os.pidfd_open(pid) for pid in pids}
    try:
        for pid in [*pids, bystander.pid]:
            (foreign / "cgroup.procs").write_text(str(pid))
        _freeze(foreign)
        rt("delete", "--force", cid)
        assert cid not in rt.ids()
        assert all(_gone(fd) for fd in pidfds.values()), "the container's processes survived delete --force"
        assert not cgroup_dirs(f"{cgroup_parent}/c"), "the container's cgroups were left"
        assert (foreign / "freezer.state").read_text().strip() == "FROZEN"  # not ours to thaw
        assert _procs(foreign) == [bystander.pid]
    finally:
        _cleanup(foreign, pidfds, bystander)


@needs_v1_freezer
def test_force_delete_kills_processes_frozen_in_its_own_renamed_freezer_cgroup(rt, make_bundle, cid, cgroup_parent):
    """The container's own freezer cgroup renamed (v1 allows it within the parent) and frozen: its
    recorded path is gone; delete finds it by its inode (recorded at create), thaws it after the
    kill as for a paused container, and removes it."""
    own, pids = _start_two(rt, make_bundle, cid, cgroup_parent)
    moved = own.with_name("c-moved")
    own.rename(moved)
    pidfds = {pid: os.pidfd_open(pid) for pid in pids}
    try:
        _freeze(moved)
        rt("delete", "--force", cid)
        assert cid not in rt.ids()
        assert all(_gone(fd) for fd in pidfds.values()), "the container's processes survived delete --force"
        assert not cgroup_dirs(f"{cgroup_parent}/c"), "the container's cgroups were left"
        assert not moved.exists(), "the renamed cgroup was left"
    finally:
        _cleanup(moved, pidfds)


def _same_cgroup(cgroup_parent: str) -> Any:
    def edit(config: dict[str, Any]) -> None:
        config["linux"]["cgroupsPath"] = f"{cgroup_parent}/same"
    return edit


def test_a_stopped_undeleted_containers_cgroup_is_not_taken(rt, make_bundle, cid, cgroup_parent):
    """Its delete would kill what is in the cgroup and remove it under the new container: create
    refuses, naming the other container, and leaves nothing (the cgroup stays the other's)."""
    first = make_bundle(["true"], edit=_same_cgroup(cgroup_parent), name="first")
    rt("run", "--detach", "--bundle", str(first), cid)
    wait_until(lambda: rt.state(cid)["status"] == "stopped", what="the first container to stop")
    second = make_bundle(["sleep", "1000"], edit=_same_cgroup(cgroup_parent), name="second")
    proc = rt("create", "--bundle", str(second), f"{cid}-2", check=False)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and cid in lines[0] and "stopped but not deleted" in lines[0], proc.stderr
    assert rt.ids() == [cid]
    assert cgroup_dirs(f"{cgroup_parent}/same")  # the first one's, still there for its delete
    rt("delete", cid)
    rt("create", "--bundle", str(second), f"{cid}-2")  # free now
    rt("delete", "--force", f"{cid}-2")


def _blocked_flock_waiters(inodes: set[int]) -> set[int]:
    """pids waiting in /proc/locks for a flock on one of these inodes."""
    found = set()
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if len(fields) > 6 and fields[1] == "->" and fields[2] == "FLOCK":
            if int(fields[6].rsplit(":", 1)[1]) in inodes:
                found.add(int(fields[5]))
    return found


def test_delete_waits_for_the_cgroup_claim(rt, make_bundle, cid, cgroup_parent):
    """delete takes the claim create takes on the container's cgroup (a flock on its directory), so
    a create with the same cgroupsPath never interleaves with it. Held here by the test, as by a
    create in progress: delete waits (seen in /proc/locks) and goes on once it is let go."""
    bundle = make_bundle(["sleep", "1000"], name="c")
    rt("create", "--bundle", str(bundle), cid)
    state = json.loads((Path(rt.root) / cid / "state.json").read_text())
    fds = [os.open(p, os.O_RDONLY | os.O_DIRECTORY) for p in state["cgroup_paths"].values()]
    try:
        for fd in fds:
            fcntl.flock(fd, fcntl.LOCK_EX)
        inodes = {os.fstat(fd).st_ino for fd in fds}
        proc = subprocess.Popen(rt.argv("delete", "--force", cid), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        try:
            wait_until(lambda: proc.pid in _blocked_flock_waiters(inodes), what="delete to wait for the claim")
            assert rt.state(cid)["status"] == "created"  # nothing killed nor removed meanwhile
        finally:
            for fd in fds:
                os.close(fd)
            fds = []
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert cid not in rt.ids()
    finally:
        for fd in fds:
            os.close(fd)



@pytest.mark.skipif(not Path("/sys/fs/cgroup/cpu/cgroup.procs").exists(), reason="needs a cgroup v1 cpu hierarchy")
def test_delete_knows_its_cgroup_by_inode_not_by_path(rt, make_bundle, cid, cgroup_parent):
    """The container's cpu cgroup renamed, and a new cgroup made at its old path by someone else:
    delete removes the renamed one (its own) and leaves the new one and its process alone."""
    _own, pids = _start_two(rt, make_bundle, cid, cgroup_parent)
    cpu = Path("/sys/fs/cgroup/cpu") / cgroup_parent.lstrip("/")
    (cpu / "c").rename(cpu / "c-moved")
    other = cpu / "c"
    other.mkdir()
    bystander = subprocess.Popen(["sleep", "1000"])
    pidfds = {pid: os.pidfd_open(pid) for pid in pids}
    try:
        (other / "cgroup.procs").write_text(str(bystander.pid))
        rt("delete", "--force", cid)
        assert all(_gone(fd) for fd in pidfds.values())
        assert not (cpu / "c-moved").exists()
        assert _procs(other) == [bystander.pid] and bystander.poll() is None
    finally:
        for pid, fd in pidfds.items():
            if not _gone(fd):
                os.kill(pid, 9)
            os.close(fd)
        bystander.kill()
        bystander.wait()
        wait_until(lambda: not _procs(other), what=f"{other} to empty")
        other.rmdir()
        if (cpu / "c-moved").exists():
            wait_until(lambda: not _procs(cpu / "c-moved"), what="c-moved to empty")
            (cpu / "c-moved").rmdir()


def _hierarchy_roots() -> dict[str, Path]:
    """{mount point name: mount point} of every cgroup hierarchy but the freezer."""
    roots = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        if right.split()[0] in ("cgroup", "cgroup2"):
            mp = Path(left.split()[4])
            if mp != FREEZER:
                roots[mp.name] = mp
    return roots


@needs_v1_freezer
@pytest.mark.parametrize("left", ["pids-and-unified", "every-hierarchy"])
def test_force_delete_finds_a_frozen_process_that_left_its_cgroups(rt, make_bundle, cid, cgroup_parent, left):
    """The container's second process leaves its cgroups (to the hierarchies' roots: some of them,
    or all, then only its pid namespace says it is the container's) and is frozen in a foreign
    freezer cgroup. delete --force still kills it and removes everything."""
    own, pids = _start_two(rt, make_bundle, cid, cgroup_parent)
    init = rt.state(cid)["pid"]
    child = next(p for p in pids if p != init)
    roots = _hierarchy_roots()
    if left != "every-hierarchy":
        roots = {k: v for k, v in roots.items() if k in ("pids", "unified")}
    foreign = FREEZER / f"pyruntime-test-foreign-{uuid.uuid4().hex[:12]}"
    foreign.mkdir()
    pidfds = {pid: os.pidfd_open(pid) for pid in pids}
    try:
        for root in roots.values():
            (root / "cgroup.procs").write_text(str(child))
        (foreign / "cgroup.procs").write_text(str(child))
        _freeze(foreign)
        rt("delete", "--force", cid)
        assert cid not in rt.ids()
        wait_until(lambda: all(_gone(fd) for fd in pidfds.values()), what="the container's processes to die")
        assert not cgroup_dirs(f"{cgroup_parent}/c"), "the container's cgroups were left"
    finally:
        _cleanup(foreign, pidfds)


@needs_v1_freezer
def test_force_delete_refuses_a_freezer_frozen_by_an_ancestor(rt, make_bundle, cid, cgroup_parent):
    """A parent cgroup frozen by someone else (e.g. a pod's) holds the container's own freezer frozen:
    thawing it is not the container's to do. delete fails at once with one line naming it, and
    goes through once it is thawed."""
    _own, pids = _start_two(rt, make_bundle, cid, cgroup_parent)
    parent = FREEZER / cgroup_parent.lstrip("/")
    pidfds = {pid: os.pidfd_open(pid) for pid in pids}
    try:
        _freeze(parent)
        proc = rt("delete", "--force", cid, check=False)
        assert proc.returncode == 1
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and str(parent) in lines[0] and "ancestor" in lines[0], proc.stderr
        assert rt.ids() == [cid] and not any(_gone(fd) for fd in pidfds.values())
        (parent / "freezer.state").write_text("THAWED")
        rt("delete", "--force", cid)
        assert all(_gone(fd) for fd in pidfds.values())
    finally:
        (parent / "freezer.state").write_text("THAWED")
        for pid, fd in pidfds.items():
            if not _gone(fd):
                os.kill(pid, 9)
            os.close(fd)
