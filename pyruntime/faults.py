"""Test-only fault injection (issue 8): PYRUNTIME_TEST_DIE_AT=<step> SIGKILLs the process at that step.

The steps are named "<command>:<point>" (see STEPS). The crash tests run a command with one step
set and check that `delete --force` restores a clean host afterwards. Without the variable a
checkpoint is one string comparison.
"""

from __future__ import annotations

import os

_DIE_AT = os.environ.get("PYRUNTIME_TEST_DIE_AT")

# Every checkpoint in the code, in the order a create/start/delete passes them.
STEPS = (
    "create:saved",            # state.json written, no cgroup yet
    "create:cgroup",           # cgroup made, nothing forked
    "spawn:forked",            # runtime, right after forking the intermediate
    "intermediate:joined",     # the intermediate, after joining the cgroup (dies itself)
    "spawn:init-pid",          # runtime, the init's pid received, init still setting up
    "init:mounted",            # the init, mounts done (dies itself: an init killed during its setup)
    "spawn:hooks",             # runtime, before running prestart/createRuntime hooks (init waits)
    "spawn:hooks-done",        # runtime, hooks ran, the init not yet told to go on
    "spawn:ready",             # runtime, the init reported ready (about to exec the stub)
    "create:spawned",          # init waiting in accept(), its pid not yet in state.json
    "create:done",             # state.json complete, before the pid file / exit
    "start:before-connect",
    "start:connected",         # the stub accepted: the user's program is starting, start.sock still there
    "start:acked",
    "delete:loaded",           # lock held, nothing killed yet
    "delete:killed",           # processes killed, cgroup still there
    "delete:cgroup-removed",   # cgroup gone, state dir still there
)


def checkpoint(step: str) -> None:
    if _DIE_AT == step:
        os.kill(os.getpid(), 9)  # SIGKILL (signal.py would import enum)
        os._exit(137)  # PID 1 of a pid namespace (the init) cannot SIGKILL itself: die as abruptly
