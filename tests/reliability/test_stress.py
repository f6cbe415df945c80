"""Stress (issue 8): many full lifecycles in parallel, repeated, then a leak check.

Each lifecycle is create, start, exec, kill, delete (plain delete, after the init is seen stopped).
PYRUNTIME_STRESS_N (default 50) lifecycles run at once, PYRUNTIME_STRESS_REPEATS (default 2) times.
The container's init must hold only its stdio (no runtime fd leaks in), and afterwards nothing may
be left: state dirs, cgroups in any hierarchy, mounts, processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from leaks import assert_clean, new_tag, tag_config, tagged_env
from pyruntime_tests_conftest import ROOTFS, RUNTIME

N = int(os.environ.get("PYRUNTIME_STRESS_N", "50"))
REPEATS = int(os.environ.get("PYRUNTIME_STRESS_REPEATS", "2"))


def _has_exec() -> bool:
    return subprocess.run([RUNTIME, "exec", "--help"], capture_output=True).returncode == 0


def _lifecycle(rt, bundle, cid, env, use_exec):
    steps = []

    def call(*args, **kw):
        p = rt(*args, env=env, check=False, timeout=120, **kw)
        steps.append(args[0])
        if p.returncode != 0:
            raise AssertionError(f"{cid}: {' '.join(args)} exited {p.returncode}: {p.stderr.strip()}")
        return p

    call("create", "--bundle", str(bundle), cid)
    call("start", cid)
    if use_exec:
        out = call("exec", cid, "ls", "/proc/1/fd").stdout.split()
        # the init (sleep) holds exactly its stdio: nothing of the runtime leaked into the container
        assert sorted(out) == ["0", "1", "2"], f"{cid}: init fds {out}"
    call("kill", cid, "KILL")
    deadline = time.monotonic() + 30
    while json.loads(call("state", cid).stdout)["status"] != "stopped":
        assert time.monotonic() < deadline, f"{cid} did not stop"
        time.sleep(0.02)
    call("delete", cid)
    return cid


@pytest.mark.slow
def test_parallel_lifecycles_leave_nothing_behind(rt, make_bundle, cgroup_parent, tmp_path):
    use_exec = _has_exec()
    if not use_exec:
        print("STRESS: `pyruntime exec` not available: the exec step is SKIPPED")
    tag = new_tag()
    env = tagged_env(tag)
    bundles = [make_bundle(["sleep", "1000"], edit=lambda c: tag_config(c, tag), name=f"s{i}") for i in range(N)]
    started = time.monotonic()
    with ThreadPoolExecutor(N) as pool:
        for r in range(REPEATS):
            futures = [pool.submit(_lifecycle, rt, b, f"stress-{tag[:6]}-{r}-{i}", env, use_exec)
                       for i, b in enumerate(bundles)]
            errors = []
            for f in futures:
                try:
                    f.result()
                except AssertionError as e:
                    errors.append(str(e))
            if errors:  # clean up what the failed lifecycles left before reporting
                for cid in rt.ids():
                    rt("delete", "--force", cid, check=False)
            assert not errors, errors[:5]
    elapsed = time.monotonic() - started
    print(f"STRESS: {N * REPEATS} lifecycles ({N} in parallel) in {elapsed:.1f}s")
    assert_clean(rt, tag, cgroup_parent, tmp_path, ROOTFS)  # nothing propagated onto the shared rootfs
