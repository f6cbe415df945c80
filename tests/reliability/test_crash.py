"""Crash safety (issue 8): the runtime SIGKILLed at every checkpoint of create/start/delete.

PYRUNTIME_TEST_DIE_AT=<step> (pyruntime/faults.py) makes the runtime kill itself at that step. After
each crash, `state` and `list` must answer sensibly (no traceback), and `delete --force` (twice:
it is idempotent) must leave no state dir, cgroup, mount or process behind.
"""

from __future__ import annotations

import json
import signal
import time

import pytest
from leaks import assert_clean, new_tag, tag_config, tagged_env

from pyruntime.faults import STEPS

# What `state` must say right after the runtime died at each step ("gone": the state dir is gone).
EXPECTED = {
    "create:saved": "stopped", "create:cgroup": "stopped", "spawn:forked": "stopped",
    "spawn:init-pid": "stopped", "spawn:hooks": "stopped", "spawn:hooks-done": "stopped",
    "spawn:ready": "stopped", "create:spawned": "stopped", "create:done": "created",
    "start:before-connect": "created", "start:connected": "running", "start:acked": "running",
    "delete:loaded": "running", "delete:killed": "stopped", "delete:cgroup-removed": "stopped",
    # a child of the runtime dies: the runtime reports it (exit 1) and cleans up itself
    "intermediate:joined": "gone", "init:mounted": "gone",
}
CHILD_STEPS = ("intermediate:joined", "init:mounted")


def _bundle(make_bundle, tag):
    def edit(config):
        # A prestart hook makes the hooks round trip (spawn:hooks*) happen.
        config["hooks"] = {"prestart": [{"path": "/bin/true", "args": ["true"]}]}
        tag_config(config, tag)
    return make_bundle(["sleep", "1000"], edit=edit)


def _no_traceback(proc):
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") <= 1, proc.stderr


def _wait_status(rt, cid, want, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        proc = rt("state", cid, check=False)
        _no_traceback(proc)
        if want == "gone":
            if proc.returncode == 1 and "does not exist" in proc.stderr:
                return
        elif proc.returncode == 0 and json.loads(proc.stdout)["status"] == want:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"state of {cid} after the crash: {proc.stdout or proc.stderr}, want {want}")
        time.sleep(0.02)


def test_every_step_is_covered():
    assert set(EXPECTED) == set(STEPS)


@pytest.mark.parametrize("step", STEPS)
def test_runtime_killed_at_step_is_cleaned_by_delete_force(rt, make_bundle, cid, cgroup_parent, tmp_path, step):
    tag = new_tag()
    bundle = _bundle(make_bundle, tag)
    env = tagged_env(tag)
    die = tagged_env(tag, PYRUNTIME_TEST_DIE_AT=step)
    command = step.split(":")[0]
    if command in ("create", "spawn", "intermediate", "init"):
        proc = rt("create", "--bundle", str(bundle), cid, env=die, check=False)
    else:
        rt("create", "--bundle", str(bundle), cid, env=env)
        if command == "delete":
            rt("start", cid, env=env)
        proc = rt(command, *(["--force"] if command == "delete" else []), cid, env=die, check=False)
    if step in CHILD_STEPS:
        assert proc.returncode == 1 and "exited before it was set up" in proc.stderr, proc.stderr
        _no_traceback(proc)
    else:
        assert proc.returncode == -signal.SIGKILL, f"{step} not reached: {proc.returncode} {proc.stderr}"

    _wait_status(rt, cid, EXPECTED[step])
    listed = rt("list", "--format", "json", check=False)
    _no_traceback(listed)
    assert listed.returncode == 0
    statuses = {c["id"]: c["status"] for c in json.loads(listed.stdout) or []}  # runc: null when empty
    assert statuses.get(cid, "gone") == EXPECTED[step]

    for _ in range(2):  # idempotent
        proc = rt("delete", "--force", cid, env=env, check=False)
        _no_traceback(proc)
        assert proc.returncode == 0, proc.stderr
    assert_clean(rt, tag, cgroup_parent, tmp_path)
