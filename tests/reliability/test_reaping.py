"""Reaping, fds and delete speed (issue 8).

- The runtime's own children (the intermediate, hooks) are reaped: a foreground `run` has no zombie.
- The container's init belongs to the subreaper (conmon's role): pyruntime never reaps it.
- A foreground `run` holds no fds beyond stdio and what it needs; the container's init gets only its
  stdio.
- `delete --force` kills through the cgroup and waits with poll: fast even with many processes that
  ignore SIGTERM, and after a create killed half-way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from leaks import assert_clean, new_tag, tag_config, tagged_env, zombies_of
from pyruntime_tests_conftest import RUNTIME, wait_until

SUBREAPER = r"""
import ctypes, json, os, subprocess, sys, time
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER, like conmon
runtime, root, bundle, cid = sys.argv[1:5]
def rt(*a):
    with open(os.devnull, "w") as null:
        return subprocess.run([runtime, "--root", root, *a], stdout=subprocess.PIPE if a[0] == "state" else null,
                              stderr=null, check=True)
rt("create", "--bundle", bundle, cid)
rt("start", cid)
pid = json.loads(rt("state", cid).stdout)["pid"]
ppid = int([l for l in open(f"/proc/{pid}/status") if l.startswith("PPid:")][0].split()[1])
os.kill(pid, 9)
time.sleep(0.2)
status_after = json.loads(rt("state", cid).stdout)["status"]   # the zombie is not "running"
rt("kill", "--all", cid, "KILL")
got, status = os.waitpid(pid, 0)  # ours to reap: pyruntime must not have done it
rt("delete", cid)
print(json.dumps({"me": os.getpid(), "ppid": ppid, "reaped": got, "signaled": os.WIFSIGNALED(status),
                  "status_after": status_after}))
"""


def test_init_is_left_to_the_subreaper(rt, make_bundle, cid, cgroup_parent, tmp_path):
    tag = new_tag()
    bundle = make_bundle(["sleep", "1000"], edit=lambda c: tag_config(c, tag))
    out = subprocess.run([sys.executable, "-c", SUBREAPER, RUNTIME, rt.root, str(bundle), cid],
                         capture_output=True, text=True, timeout=60, env=tagged_env(tag))
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["ppid"] == r["me"], r  # reparented to the subreaper, not kept by the runtime
    assert r["signaled"] and r["reaped"] > 0, r
    assert r["status_after"] == "stopped", r
    assert_clean(rt, tag, cgroup_parent, tmp_path)


def _fds(pid: int) -> dict[str, str]:
    out = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out[fd] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            pass
    return out


def test_foreground_run_reaps_its_children_and_leaks_no_fds(rt, make_bundle, cid, cgroup_parent, tmp_path):
    tag = new_tag()
    hook = {"path": "/bin/sh", "args": ["sh", "-c", "cat >/dev/null"]}

    def edit(c):
        c["hooks"] = {"prestart": [hook], "createRuntime": [hook], "poststart": [hook], "poststop": [hook]}
        tag_config(c, tag)

    bundle = make_bundle(["sh", "-c", "ls /proc/1/fd; exec sleep 1000"], edit=edit)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(rt.argv("run", "--bundle", str(bundle), cid), stdin=subprocess.DEVNULL,
                                stdout=out, stderr=err, env=tagged_env(tag))
        try:
            wait_until(lambda: os.path.isdir(os.path.join(rt.root, cid)) and
                       json.loads(rt("state", cid).stdout)["status"] == "running", what="running")
            wait_until(lambda: out.tell() or os.fstat(out.fileno()).st_size, what="container output")
            time.sleep(0.3)  # poststart hooks done
            assert zombies_of([proc.pid]) == [], "the runtime left zombies"
            fds = _fds(proc.pid)
            extra = {k: v for k, v in fds.items() if k not in ("0", "1", "2")}
            # a foreground run may hold a few fds of its own (e.g. a signalfd); none of the container's
            # state dir, its sockets or the stub memfd
            assert not any("memfd:pyruntime-init" in v or rt.root in v for v in extra.values()), extra
            print("foreground run fds beyond stdio:", extra)
            assert len(extra) <= 3, extra
            rt("kill", cid, "KILL")
            assert proc.wait(timeout=30) == 128 + 9
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        out.seek(0)
        init_fds = out.read().decode().split()
    assert sorted(init_fds) == ["0", "1", "2"], init_fds
    assert_clean(rt, tag, cgroup_parent, tmp_path)


def _delete_force_within(rt, cid: str, limit: float, what: str = "") -> None:
    """delete --force, timed: it must take less than limit seconds."""
    t0 = time.monotonic()
    rt("delete", "--force", cid)
    took = time.monotonic() - t0
    print(f"delete --force{' ' + what if what else ''}: {took * 1000:.0f} ms")
    assert took < limit, f"delete --force took {took:.2f}s"


def test_delete_force_is_fast_and_idempotent(rt, make_bundle, cid, cgroup_parent, tmp_path):
    tag = new_tag()
    script = "trap '' TERM HUP INT; for i in 1 2 3 4 5 6 7 8; do sleep 1000 & done; wait"
    bundle = make_bundle(["sh", "-c", script], edit=lambda c: tag_config(c, tag))
    rt("run", "--detach", "--bundle", str(bundle), cid, env=tagged_env(tag))
    wait_until(lambda: len(_cgroup_pids(cgroup_parent)) >= 9, what="9 processes in the container")
    _delete_force_within(rt, cid, 1.5)
    for _ in range(3):
        rt("delete", "--force", cid)
    assert_clean(rt, tag, cgroup_parent, tmp_path)


def test_delete_force_after_a_killed_create_is_fast(rt, make_bundle, cid, cgroup_parent, tmp_path):
    """pid 0 in state.json (killed before recording it): only the cgroup knows the init."""
    tag = new_tag()
    bundle = make_bundle(["sleep", "1000"], edit=lambda c: tag_config(c, tag))
    proc = rt("create", "--bundle", str(bundle), cid, env=tagged_env(tag, PYRUNTIME_TEST_DIE_AT="create:spawned"),
              check=False)
    assert proc.returncode == -9
    assert len(_cgroup_pids(cgroup_parent)) == 1  # the stub, waiting in accept(), now an orphan
    _delete_force_within(rt, cid, 1.5)
    assert_clean(rt, tag, cgroup_parent, tmp_path)


def _cgroup_pids(cgroup_parent: str) -> list[str]:
    pids = []
    base = f"/sys/fs/cgroup/pids{cgroup_parent}"
    for d, _dirs, files in os.walk(base):
        if "cgroup.procs" in files:
            with open(os.path.join(d, "cgroup.procs")) as f:
                pids += f.read().split()
    return pids


def test_delete_force_with_an_orphaned_exec_process_is_fast(rt, make_bundle, cid, cgroup_parent, tmp_path):
    """An exec whose runtime was killed leaves its process a child of the host's init: the container's
    init (PID 1 of its namespace) then cannot finish exiting until that init reaps it. delete must
    not wait for that: the cgroup being empty is what counts."""
    tag = new_tag()
    bundle = make_bundle(["sleep", "1000"], edit=lambda c: tag_config(c, tag))
    rt("run", "--detach", "--bundle", str(bundle), cid, env=tagged_env(tag))
    execer = subprocess.Popen(rt.argv("exec", cid, "sleep", "1000"), stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=tagged_env(tag))
    try:
        wait_until(lambda: len(_cgroup_pids(cgroup_parent)) >= 2, what="the exec'd process")
    finally:
        execer.kill()
        execer.wait()
    _delete_force_within(rt, cid, 1.0, "with an orphaned exec child")
    assert_clean(rt, tag, cgroup_parent, tmp_path)


def test_init_that_died_on_its_own_reads_stopped(rt, make_bundle, cid, cgroup_parent, tmp_path):
    tag = new_tag()
    bundle = make_bundle(["sh", "-c", "exit 3"], edit=lambda c: tag_config(c, tag))
    rt("create", "--bundle", str(bundle), cid, env=tagged_env(tag))
    rt("start", cid)
    wait_until(lambda: rt.state(cid)["status"] == "stopped", what="stopped")
    st = rt.state(cid)
    assert st["pid"] == 0, st
    listed = {c["id"]: c["status"] for c in json.loads(rt("list", "--format", "json").stdout)}
    assert listed[cid] == "stopped"
    p = rt("kill", cid, "TERM", check=False)
    assert p.returncode == 1 and "not running" in p.stderr and p.stderr.count("\n") == 1, p.stderr
    rt("delete", cid)  # no --force needed
    assert_clean(rt, tag, cgroup_parent, tmp_path)


def test_delete_force_stops_a_fork_loop(rt, make_bundle, cid, cgroup_parent, tmp_path):
    """Processes forking as fast as they can (bounded by a pids limit) are all gone after one delete."""
    tag = new_tag()

    def edit(c):
        c["linux"]["resources"] = {"pids": {"limit": 200}}
        tag_config(c, tag)

    bundle = make_bundle(["sh", "-c", "trap '' TERM; while :; do (sleep 1000 &) 2>/dev/null; done"], edit=edit)
    rt("run", "--detach", "--bundle", str(bundle), cid, env=tagged_env(tag))
    wait_until(lambda: len(_cgroup_pids(cgroup_parent)) >= 150, what="150 processes")
    _delete_force_within(rt, cid, 3.0, "of a fork loop")
    assert_clean(rt, tag, cgroup_parent, tmp_path)


def test_delete_force_of_a_paused_container(rt, make_bundle, cid, cgroup_parent, tmp_path):
    tag = new_tag()
    bundle = make_bundle(["sh", "-c", "trap '' TERM; sleep 1000 & sleep 1000 & wait"],
                         edit=lambda c: tag_config(c, tag))
    rt("run", "--detach", "--bundle", str(bundle), cid, env=tagged_env(tag))
    rt("pause", cid)
    assert rt.state(cid)["status"] == "paused"
    _delete_force_within(rt, cid, 1.5, "of a paused container")
    assert_clean(rt, tag, cgroup_parent, tmp_path)


def test_delete_force_removes_sub_cgroups_the_container_made(rt, make_bundle, cid, cgroup_parent, tmp_path):
    """systemd or a nested runtime inside a container makes sub-cgroups and moves processes there:
    delete kills and removes the whole subtree."""
    from pathlib import Path

    from pyruntime_tests_conftest import cgroup_dirs

    tag = new_tag()
    bundle = make_bundle(["sh", "-c", "sleep 1000 & sleep 1000 & wait"], edit=lambda c: tag_config(c, tag),
                         name="nest")
    rt("run", "--detach", "--bundle", str(bundle), cid, env=tagged_env(tag))
    wait_until(lambda: len(_cgroup_pids(cgroup_parent)) >= 3, what="3 processes")
    moved = _cgroup_pids(cgroup_parent)[1:]
    for top in cgroup_dirs(f"{cgroup_parent}/nest"):
        (top / "sub" / "inner").mkdir(parents=True)
    for h in ("pids", "memory", "unified"):  # v1 and v2: processes live in the sub-cgroups now
        sub = Path(f"/sys/fs/cgroup/{h}{cgroup_parent}/nest/sub/inner")
        for pid in moved:
            (sub / "cgroup.procs").write_text(pid)
    _delete_force_within(rt, cid, 1.5, "with sub-cgroups")
    assert_clean(rt, tag, cgroup_parent, tmp_path)
