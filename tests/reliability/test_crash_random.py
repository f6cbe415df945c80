"""Crash safety with random timing (issue 8): SIGKILL the runtime at a random moment of create,
start, exec, run (detached and foreground) and delete (exec needs no checkpoints of its own this
way), then check that `state`/`list` answer and `delete --force` leaves a clean host. PYRUNTIME_CRASH_ROUNDS sets the
rounds per command (default 6); the seed is printed so a failure can be replayed.
"""

from __future__ import annotations

import json
import os
import random
import subprocess

import pytest
from leaks import assert_clean, new_tag, tag_config, tagged_env

ROUNDS = int(os.environ.get("PYRUNTIME_CRASH_ROUNDS", "6"))
SEED = int(os.environ.get("PYRUNTIME_CRASH_SEED", str(random.randrange(1 << 30))))


def _kill_after(rt, args, env, delay):
    proc = subprocess.Popen(rt.argv(*args), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.kill()
    return proc.wait()


def _sane(rt, cid):
    proc = rt("state", cid, check=False)
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    if proc.returncode == 0:
        assert json.loads(proc.stdout)["status"] in ("creating", "created", "running", "stopped")
    else:
        assert "does not exist" in proc.stderr, proc.stderr
    listed = rt("list", "--format", "json", check=False)
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
    json.loads(listed.stdout)


@pytest.mark.parametrize("command", ["create", "run", "run-foreground", "start", "exec", "delete"])
def test_runtime_killed_at_a_random_moment(rt, make_bundle, cgroup_parent, tmp_path, command):
    rng = random.Random(f"{SEED}-{command}")
    print(f"PYRUNTIME_CRASH_SEED={SEED}")
    tag = new_tag()
    env = tagged_env(tag)
    hook = {"path": "/bin/true", "args": ["true"]}

    def edit(c):
        c["hooks"] = {"prestart": [hook], "poststart": [hook], "poststop": [hook]}
        tag_config(c, tag)

    bundle = make_bundle(["sleep", "1000"], edit=edit)
    for n in range(ROUNDS):
        cid = f"rnd-{tag[:6]}-{n}"
        delay = rng.uniform(0.0, 0.4)
        if command in ("create", "run", "run-foreground"):
            extra = ["--detach"] if command == "run" else []
            if command == "run-foreground":
                delay *= 2  # the whole create happens first: kill mostly while it waits
            _kill_after(rt, [command.split("-")[0], *extra, "--bundle", str(bundle), cid], env, delay)
        else:
            rt("create", "--bundle", str(bundle), cid, env=env)
            if command != "start":
                rt("start", cid, env=env)
            args = {"start": ["start", cid], "exec": ["exec", cid, "sleep", "1000"],
                    "delete": ["delete", "--force", cid]}[command]
            _kill_after(rt, args, env, delay)
        _sane(rt, cid)
        for _ in range(2):
            p = rt("delete", "--force", cid, check=False)
            assert p.returncode == 0, f"round {n} (delay {delay:.3f}s): {p.stderr}"
        assert_clean(rt, tag, cgroup_parent, tmp_path)
