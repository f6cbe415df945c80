"""Concurrency (issue 8): many runtime processes on the same containers at once.

Every command takes the container's lock (state and list read without it, but state.json is only
ever replaced by rename, so they see the old or the new state, never half of one).
"""

from __future__ import annotations

import json
import random
import threading
from concurrent.futures import ThreadPoolExecutor

from leaks import assert_clean, new_tag, tag_config, tagged_env

RACERS = 8


def _one_line(proc):
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") <= 1, proc.stderr


def test_create_same_id_from_many_processes(rt, make_bundle, cid, cgroup_parent, tmp_path):
    tag = new_tag()
    bundle = make_bundle(["sleep", "1000"], edit=lambda c: tag_config(c, tag))
    env = tagged_env(tag)
    barrier = threading.Barrier(RACERS)

    def create(_):
        barrier.wait()
        return rt("create", "--bundle", str(bundle), cid, env=env, check=False)

    with ThreadPoolExecutor(RACERS) as pool:
        results = list(pool.map(create, range(RACERS)))
    ok = [p for p in results if p.returncode == 0]
    failed = [p for p in results if p.returncode != 0]
    assert len(ok) == 1, [p.stderr for p in results]
    for p in failed:
        _one_line(p)
        assert p.returncode == 1 and "already exists" in p.stderr, p.stderr
    assert rt.state(cid)["status"] == "created"
    rt("start", cid, env=env)
    assert rt.state(cid)["status"] == "running"
    rt("delete", "--force", cid)
    assert_clean(rt, tag, cgroup_parent, tmp_path)


def test_delete_force_from_many_processes_at_once(rt, make_bundle, cid, cgroup_parent, tmp_path):
    tag = new_tag()
    bundle = make_bundle(["sleep", "1000"], edit=lambda c: tag_config(c, tag))
    rt("run", "--detach", "--bundle", str(bundle), cid, env=tagged_env(tag))
    barrier = threading.Barrier(RACERS)

    def delete(_):
        barrier.wait()
        return rt("delete", "--force", cid, check=False)

    with ThreadPoolExecutor(RACERS) as pool:
        results = list(pool.map(delete, range(RACERS)))
    for p in results:
        _one_line(p)
        assert p.returncode == 0, p.stderr
    assert_clean(rt, tag, cgroup_parent, tmp_path)


def test_readers_during_creates_and_deletes(rt, make_bundle, cgroup_parent, tmp_path):
    """Lifecycles churn on a few IDs while state/list/kill/delete hammer the same IDs: every answer is
    either valid JSON or one clear line, never a traceback; at the end nothing is left."""
    tag = new_tag()
    env = tagged_env(tag)
    ids = [f"churn-{tag[:6]}-{i}" for i in range(4)]
    bundles = {i: make_bundle(["sleep", "1000"], edit=lambda c: tag_config(c, tag), name=i) for i in ids}
    stop = threading.Event()
    errors: list[str] = []
    seen: set[str] = set()

    def churn(cid):
        for _ in range(4):
            p = rt("create", "--bundle", str(bundles[cid]), cid, env=env, check=False)
            _check(p, "create", ok_words=("already exists",))
            rt("start", cid, env=env, check=False)
            p = rt("delete", "--force", cid, env=env, check=False)
            _check(p, "delete --force")

    def _check(p, what, ok_words=()):
        try:
            _one_line(p)
            if p.returncode != 0 and not any(w in p.stderr for w in ok_words):
                errors.append(f"{what}: {p.returncode} {p.stderr.strip()}")
        except AssertionError as e:
            errors.append(f"{what}: {e}")

    def reader(seed):
        r = random.Random(seed)
        while not stop.is_set():
            cid = r.choice(ids)
            op = r.choice(["state", "list", "kill", "delete"])
            if op == "state":
                p = rt("state", cid, check=False)
                _check(p, "state", ok_words=("does not exist",))
                if p.returncode == 0:
                    st = json.loads(p.stdout)
                    seen.add(st["status"])
                    if st["status"] in ("created", "running"):
                        assert st["pid"] > 0, st
            elif op == "list":
                p = rt("list", "--format", "json", check=False)
                _check(p, "list")
                if p.returncode == 0:
                    for c in json.loads(p.stdout) or []:  # runc: null when empty
                        seen.add(c["status"])
            elif op == "kill":
                p = rt("kill", cid, "KILL", check=False)
                _check(p, "kill", ok_words=("does not exist", "not running"))
            else:  # a plain delete races the churn: refused while running, fine otherwise
                p = rt("delete", cid, check=False)
                _check(p, "delete", ok_words=("does not exist", "not stopped"))

    with ThreadPoolExecutor(len(ids) + 3) as pool:
        readers = [pool.submit(reader, s) for s in range(3)]
        list(pool.map(churn, ids))
        stop.set()
        for f in readers:
            f.result()
    assert not errors, errors
    assert seen & {"created", "running", "stopped"}, seen
    for cid in ids:
        rt("delete", "--force", cid)
    assert_clean(rt, tag, cgroup_parent, tmp_path)


def test_state_and_list_during_a_slow_create_read_creating(rt, make_bundle, cid, cgroup_parent, tmp_path):
    """While create works (here: a slow prestart hook) the container has no pid yet: state and list
    say "creating" (the creator holds the lock), never fail; afterwards "created"."""
    import subprocess
    import time

    from pyruntime_tests_conftest import wait_until

    tag = new_tag()

    def edit(c):
        c["hooks"] = {"prestart": [{"path": "/bin/sleep", "args": ["sleep", "1.5"]}]}
        tag_config(c, tag)

    bundle = make_bundle(["sleep", "1000"], edit=edit)
    creator = subprocess.Popen(rt.argv("create", "--bundle", str(bundle), cid), stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=tagged_env(tag))
    try:
        wait_until(lambda: rt("state", cid, check=False).returncode == 0, what="the state dir")
        st = rt.state(cid)
        assert st["status"] == "creating" and st["pid"] == 0, st
        listed = {c["id"]: c["status"] for c in json.loads(rt("list", "--format", "json").stdout)}
        assert listed[cid] == "creating"
        p = rt("start", cid, check=False)  # waits for the lock, then finds it created
        assert creator.wait(timeout=30) == 0
        _one_line(p)
        assert p.returncode == 0, p.stderr
        time.sleep(0.1)
        assert rt.state(cid)["status"] == "running"
    finally:
        if creator.poll() is None:
            creator.kill()
            creator.wait()
    rt("delete", "--force", cid)
    assert_clean(rt, tag, cgroup_parent, tmp_path)


def test_a_cgroup_another_container_uses_is_shared_with_a_warning(rt, make_bundle, cid, cgroup_parent, tmp_path):
    """Two containers in one cgroup (runc 1.1 warns and goes on): deleting one, even the first
    (marked by the second's create), leaves the other running."""
    tag = new_tag()

    def same_cgroup(c):
        c["linux"]["cgroupsPath"] = f"{cgroup_parent}/shared"
        tag_config(c, tag)

    first = make_bundle(["sleep", "1000"], edit=same_cgroup)
    second = make_bundle(["sleep", "1000"], edit=same_cgroup)
    rt("run", "--detach", "--bundle", str(first), cid, env=tagged_env(tag))
    proc = rt("run", "--detach", "--bundle", str(second), f"{cid}-2", env=tagged_env(tag))
    assert "container's cgroup is not empty" in proc.stderr, proc.stderr
    assert rt.ids() == sorted([cid, f"{cid}-2"])
    rt("delete", "--force", cid)
    assert rt.state(f"{cid}-2")["status"] == "running"  # untouched by the other's delete
    rt("delete", "--force", f"{cid}-2")
    assert_clean(rt, tag, cgroup_parent, tmp_path)


def test_parallel_creates_sharing_a_cgroup_all_see_the_others(rt, make_bundle, cid, cgroup_parent, tmp_path):
    """Different IDs, one cgroupsPath, all at the same instant: the in-use check and the init's
    join are one step for each of them (a flock on the cgroup), so exactly one finds it empty and
    every other one warns."""
    tag = new_tag()

    def same_cgroup(c):
        c["linux"]["cgroupsPath"] = f"{cgroup_parent}/shared"
        tag_config(c, tag)

    bundle = make_bundle(["sleep", "1000"], edit=same_cgroup)
    env = tagged_env(tag)
    racers = 12
    barrier = threading.Barrier(racers)

    def create(i):
        barrier.wait()
        return rt("create", "--bundle", str(bundle), f"{cid}-{i}", env=env, check=False)

    try:
        with ThreadPoolExecutor(racers) as pool:
            results = list(pool.map(create, range(racers)))
        assert all(p.returncode == 0 for p in results), [p.stderr for p in results]
        warned = sorted(int(p.stderr.split("not empty: ")[1].split()[0]) for p in results if "not empty" in p.stderr)
        assert warned == list(range(1, racers)), [p.stderr for p in results]
        assert len(rt.ids()) == racers
    finally:
        for other in rt.ids():
            rt("delete", "--force", other)
    assert_clean(rt, tag, cgroup_parent, tmp_path)


def test_start_from_many_processes_at_once(rt, make_bundle, cid, cgroup_parent, tmp_path):
    tag = new_tag()
    bundle = make_bundle(["sleep", "1000"], edit=lambda c: tag_config(c, tag))
    rt("create", "--bundle", str(bundle), cid, env=tagged_env(tag))
    barrier = threading.Barrier(RACERS)

    def start(_):
        barrier.wait()
        return rt("start", cid, check=False)

    with ThreadPoolExecutor(RACERS) as pool:
        results = list(pool.map(start, range(RACERS)))
    assert sum(p.returncode == 0 for p in results) == 1, [p.stderr for p in results]
    for p in results:
        if p.returncode:
            _one_line(p)
            assert p.returncode == 1 and "running" in p.stderr, p.stderr
    assert rt.state(cid)["status"] == "running"
    rt("delete", "--force", cid)
    assert_clean(rt, tag, cgroup_parent, tmp_path)
