"""The import budget of the hot commands: what a well-formed call of each imports (sys.modules at its
exit, recorded by PYRUNTIME_TRACE, pyruntime/trace.py) on a real container.

A container costs several runtime calls (create, start, state, kill, delete), and importing click
with typing, enum and re, json's decoder (re), dataclasses, socket.py, signal.py (enum) or inspect
costs more than the work of state/start/kill/delete. None of them may come back unnoticed: a module
outside a command's budget fails here with its name (add it to the budget only if the command
really needs it, and say why).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

# Never on these paths.
HEAVY = {"click", "re", "enum", "typing", "json", "json.decoder", "json.encoder", "dataclasses", "socket",
         "inspect", "signal", "selectors", "collections", "functools", "copy", "array", "subprocess",
         "threading", "contextlib", "ast", "dis", "tokenize", "locale", "gettext", "weakref", "platform",
         "datetime", "uuid", "prctl", "importlib", "importlib.metadata", "warnings", "sysconfig"}

# What `python -I -S` has loaded before the runtime's first line.
INTERPRETER = {"__main__", "_abc", "_codecs", "_frozen_importlib", "_frozen_importlib_external", "_imp", "_io",
               "_signal", "_thread", "_warnings", "_weakref", "abc", "builtins", "codecs", "encodings",
               "encodings.aliases", "encodings.utf_8", "io", "marshal", "posix", "sys", "time", "zipimport"}

# os (and its os.path, stat, _collections_abc), the C modules behind fastjson, flock, gc (start-up),
# `from __future__` (a real import).
BASE = {"__future__", "_collections_abc", "_json", "_stat", "fcntl", "gc", "genericpath", "os", "os.path",
        "posixpath", "stat"}
# pause/resume/delete: the cgroups package (errno; select to wait for a freezer or an empty cgroup).
CGROUPS = BASE | {"errno", "select"}
# create/run/exec: the start socket (_socket), the C extension (cffi's backend), prctl's C module,
# rlimits, fd passing (_struct).
SPAWN = CGROUPS | {"_socket", "_cffi_backend", "_prctl", "resource", "_struct"}

# state: runc's containerState names its owner (pwd, a C module: getpwuid). kill reads the freezer
# (pyruntime.freezer) but never imports the cgroups package; start connects to the init (_socket).
BUDGET = {
    "state": BASE | {"pwd"}, "start": BASE | {"_socket"}, "kill": BASE, "delete": CGROUPS, "pause": CGROUPS,
    "resume": CGROUPS, "create": SPAWN, "run": SPAWN, "exec": SPAWN,
}
# pyruntime's own modules that a command must not import (its work does not need them).
NOT_FOR = {"kill": {"pyruntime.cgroups"}, "state": {"pyruntime.cgroups", "pyruntime.container"},
           "start": {"pyruntime.cgroups"}}


def _calls(trace: Path) -> dict[str, set[str]]:
    out = {}
    for line in trace.read_text().splitlines():
        call = json.loads(line)
        argv = call["argv"]
        out[argv[argv.index("--root") + 2]] = set(call["modules"])
    return out


@pytest.mark.skipif(os.geteuid() != 0, reason="creates containers")
def test_hot_commands_stay_within_their_import_budget(rt, make_bundle, cid, tmp_path: Path) -> None:  # noqa: ANN001
    trace = tmp_path / "trace.jsonl"
    env = dict(os.environ, PYRUNTIME_TRACE=str(trace))
    env = {k: v for k, v in env.items() if not k.startswith("PYTHON")}
    bundle = make_bundle(["sleep", "100"])
    for args in (["create", "--bundle", str(bundle), cid], ["state", cid], ["start", cid], ["pause", cid],
                 ["resume", cid], ["exec", cid, "true"], ["kill", cid, "KILL"]):
        rt(*args, env=env)
    for _ in range(100):  # wait for the init to be gone, then delete
        if rt.state(cid)["status"] == "stopped":
            break
        import time

        time.sleep(0.05)
    rt("delete", cid, env=env)
    rt("run", "--bundle", str(make_bundle(["true"])), cid + "r", env=env)
    calls = _calls(trace)
    assert set(calls) == set(BUDGET)
    for command, modules in calls.items():
        assert not modules & HEAVY, f"{command} imports {sorted(modules & HEAVY)}"
        extra = {m for m in modules - INTERPRETER - BUDGET[command] if not m.startswith("pyruntime")}
        assert not extra, f"{command} imports {sorted(extra)}, outside its budget"
        assert "pyruntime.cli" not in modules and "pyruntime._argtable" in modules, command
        assert not modules & NOT_FOR.get(command, set()), f"{command} imports {sorted(modules & NOT_FOR[command])}"
