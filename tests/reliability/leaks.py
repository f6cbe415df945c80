"""Leak checks for the reliability tier: everything a container or a runtime could leave behind.

Processes are found by a tag in their environment (the runtime, its intermediate, the init before
its exec, hooks and the container's processes all carry it), so containers of other tests running
on the same host at the same time are never mistaken for leaks.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pyruntime_tests_conftest import cgroup_dirs

TAG_VAR = "PRT_LEAK_TAG"


def new_tag() -> str:
    return uuid.uuid4().hex


def tag_config(config: dict[str, Any], tag: str) -> None:
    """Tag the container's process and every hook."""
    config["process"].setdefault("env", []).append(f"{TAG_VAR}={tag}")
    for hooks in (config.get("hooks") or {}).values():
        for hook in hooks:
            hook.setdefault("env", []).append(f"{TAG_VAR}={tag}")


def tagged_env(tag: str, **extra: str) -> dict[str, str]:
    return dict(os.environ, **{TAG_VAR: tag}, **extra)


def _proc_status(pid: str) -> dict[str, str]:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            k, _, v = line.partition(":")
            out[k] = v.strip()
    except OSError:
        pass
    return out


def tagged_processes(tag: str) -> list[str]:
    """'pid (name, state)' of every live process carrying the tag, and of zombies whose parent does."""
    needle = f"{TAG_VAR}={tag}".encode()
    found, tagged = [], set()
    me = os.getpid()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if needle in env.split(b"\0"):
            tagged.add(pid)
            st = _proc_status(pid)
            found.append(f"{pid} ({st.get('Name')}, {st.get('State')})")
    return found


def zombies_of(parents: Iterable[int]) -> list[int]:
    """Zombie children of the given pids (a zombie's environ is unreadable, so the tag cannot find it)."""
    parents = {str(p) for p in parents}
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            st = _proc_status(pid)
            if st.get("State", "").startswith("Z") and st.get("PPid") in parents:
                out.append(int(pid))
    return out


def cgroup_leftovers(cgroup_parent: str) -> list[str]:
    return [str(d) for d in cgroup_dirs(cgroup_parent) if d.name != cgroup_parent.lstrip("/")]


def mount_leftovers(*paths: str | os.PathLike) -> list[str]:
    """Lines of our mountinfo naming any of the paths (a container's mounts live in its own mount
    namespace; nothing of them may appear in the host's)."""
    needles = [str(p) for p in paths]
    with open("/proc/self/mountinfo") as f:
        return [line.strip() for line in f if any(n in line for n in needles)]


def assert_clean(rt: Any, tag: str, cgroup_parent: str, *paths: str | os.PathLike, wait: float = 5.0) -> None:
    """Nothing left: state dirs, cgroups in any hierarchy, mounts, tagged processes. Processes get a
    short grace period: a killed process is reaped by its (sub)reaper asynchronously."""
    deadline = time.monotonic() + wait
    while True:
        problems = {"state dirs": rt.ids(), "cgroups": cgroup_leftovers(cgroup_parent),
                    "mounts": mount_leftovers(rt.root, *paths), "processes": tagged_processes(tag)}
        problems = {k: v for k, v in problems.items() if v}
        if not problems:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"left behind: {problems}")
        time.sleep(0.05)
