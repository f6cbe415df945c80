"""The commands that work on a container's cgroup: pause, resume, update, events, ps (as runc has them)."""

from __future__ import annotations

import os
import select
import sys
import time

from . import cgroups, fastjson, freezer
from .errors import RuntimeFailure
from .state import Container

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any


def pause(c: Container) -> None:
    status = c.status()
    if status not in ("running", "created"):  # runc pauses a created container too
        raise RuntimeFailure(f"container {c.id} is not running (it is {status})")
    cgroups.set_frozen(c.cgroup_paths, True)


def resume(c: Container) -> None:
    status = c.status()
    if status == "stopped" or not freezer.is_paused(c.cgroup_paths):  # a paused created one reads "created"
        raise RuntimeFailure(f"container {c.id} is not paused (it is {status})")
    cgroups.set_frozen(c.cgroup_paths, False)


# -- update ---------------------------------------------------------------------------------------
_SIZE = r"^\s*(-?\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?\s*$"  # compiled on use: pause/resume need no `re`

# runc update's individual flags: (flag name, JSON path under linux.resources, kind)
FLAGS: list[tuple[str, tuple[str, str], str]] = [
    ("memory", ("memory", "limit"), "size"),
    ("memory_reservation", ("memory", "reservation"), "size"),
    ("memory_swap", ("memory", "swap"), "size"),
    ("kernel_memory", ("memory", "kernel"), "size"),
    ("kernel_memory_tcp", ("memory", "kernelTCP"), "size"),
    ("cpu_shares", ("cpu", "shares"), "int"),
    ("cpu_quota", ("cpu", "quota"), "int"),
    ("cpu_period", ("cpu", "period"), "int"),
    ("cpu_burst", ("cpu", "burst"), "int"),
    ("cpu_rt_runtime", ("cpu", "realtimeRuntime"), "int"),
    ("cpu_rt_period", ("cpu", "realtimePeriod"), "int"),
    ("cpu_idle", ("cpu", "idle"), "int"),
    ("cpuset_cpus", ("cpu", "cpus"), "str"),
    ("cpuset_mems", ("cpu", "mems"), "str"),
    ("pids_limit", ("pids", "limit"), "int"),
    ("blkio_weight", ("blockIO", "weight"), "int"),
]


def refuse_rdt(l3_cache_schema: str | None, mem_bw_schema: str | None) -> None:
    """Intel RDT is not supported: refused with runc's words for a host without it (not ignored)."""
    if l3_cache_schema:
        raise RuntimeFailure("Intel RDT/CAT: l3 cache schema is not enabled")
    if mem_bw_schema:
        raise RuntimeFailure("Intel RDT/MBA: memory bandwidth schema is not enabled")


def parse_size(text: str, flag: str) -> int:
    """docker/runc memory sizes: bytes or k/m/g/t/p suffixes (binary), -1 = unlimited."""
    import re

    m = re.match(_SIZE, text, re.IGNORECASE)
    if not m:
        raise RuntimeFailure(f"--{flag.replace('_', '-')}: invalid size {text!r}")
    return int(float(m.group(1)) * 1024 ** " kmgtp".index(m.group(2).lower() or " "))


def _int(text: str, flag: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise RuntimeFailure(f"--{flag.replace('_', '-')}: invalid number {text!r}") from None


def build_update(resources_file: str | None, flags: dict[str, str | None]) -> tuple[dict[str, Any], str]:
    """The resources to change (a linux.resources object) and the name used in error messages."""
    res: dict[str, Any] = {}
    source = "update flags"
    if resources_file:
        source = "<stdin>" if resources_file == "-" else os.path.abspath(resources_file)
        try:
            if resources_file == "-":
                text = sys.stdin.read()
            else:
                with open(resources_file) as f:
                    text = f.read()
            res = fastjson.loads(text)
        except OSError as e:
            raise RuntimeFailure(f"cannot read {source}: {(e.strerror or str(e)).lower()}") from None
        except ValueError as e:
            raise RuntimeFailure(f"{source}: invalid JSON: {e}") from None
        return checked_resources(res, source), source  # as runc: with --resources, the other flags are ignored
    for flag, (group, key), kind in FLAGS:
        text = flags.get(flag)
        if text is None:
            continue
        value: Any = parse_size(text, flag) if kind == "size" else _int(text, flag) if kind == "int" else text
        if value in (0, "") and flag not in ("cpu_idle", "cpu_burst"):  # runc: 0 (or empty) leaves the value unchanged
            continue
        res.setdefault(group, {})[key] = value
    return res, source


def checked_resources(res: Any, source: str) -> dict[str, Any]:
    """A linux.resources object (runc's --resources file, or the Python API's dict), keys folded as
    Go decodes them and validated; errors name source and the JSON path."""
    from . import schema

    if not isinstance(res, dict):
        raise RuntimeFailure(f"{source}: the resources must be a JSON object")
    res = fold_keys(res, schema.RESOURCES)
    schema.validate(res, schema.RESOURCES, source, "linux.resources")
    return res


def fold_keys(value: Any, node: Any) -> Any:
    """Object keys matched case-insensitively when not exact (Go's encoding/json, which decodes
    runc's --resources: {"CPU": {"Cpus": "1"}} is {"cpu": {"cpus": "1"}}); a later duplicate of an
    object merges into the earlier one, of a scalar replaces it, as Go decodes them."""
    from . import schema

    if isinstance(node, schema.ListOf) and isinstance(value, list):
        return [fold_keys(v, node.item) for v in value]
    if isinstance(node, schema.MapOf) and isinstance(value, dict):
        return {k: fold_keys(v, node.value) for k, v in value.items()}
    if not (isinstance(node, schema.Obj) and isinstance(value, dict)):
        return value
    lower = {k.lower(): k for k in node.fields}
    out: dict[str, Any] = {}
    for k, v in value.items():
        name = k if k in node.fields else lower.get(k.lower(), k)
        v = fold_keys(v, node.fields.get(name))
        if isinstance(v, dict) and isinstance(out.get(name), dict):
            v = _merge(out[name], v)
        out[name] = v
    return out


def _merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    out = dict(old)
    for k, v in new.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def update(c: Container, resources: dict[str, Any], source: str) -> None:
    status = c.status()
    if status == "stopped":
        raise RuntimeFailure(f"container {c.id} is not running")
    if not resources:
        return
    mem = resources.get("memory") or {}
    if "limit" in mem and "swap" not in mem:
        # like runc: when the old swap limit equalled the old memory limit (no swap), keep it so
        old = ((c.config.get("linux") or {}).get("resources") or {}).get("memory") or {}
        if old.get("swap") and old.get("swap") == old.get("limit") and mem["limit"] > 0:
            mem["swap"] = mem["limit"]
    manager = cgroups.manager(c.cgroup_paths)
    manager.apply(resources, source, update=True)
    linux = c.config.setdefault("linux", {})
    linux["resources"] = _merge(linux.get("resources") or {}, resources)
    c.save()


# -- events ---------------------------------------------------------------------------------------
def stats(c: Container) -> dict[str, Any]:
    """runc's types.Stats of the container's cgroup (runc_types: its JSON shape)."""
    from . import runc_types

    return runc_types.stats(cgroups.manager(c.cgroup_paths).stats())


def stats_event(c: Container) -> str:
    """A "stats" event line, as runc prints it."""
    from . import runc_types

    return runc_types.event("stats", c.id, stats(c))


def events(c: Container, interval: float, once: bool) -> None:
    """--stats: one stats object. Otherwise a JSON event per line: stats every interval, and an
    "oom" event as soon as the kernel reports one, until the container stops."""
    if once:
        if c.status() == "stopped":
            raise RuntimeFailure(f"container {c.id} is not running")
        _emit(stats_event(c))
        return
    try:
        for line in event_stream(c, interval):
            _emit(line)
    except BrokenPipeError:
        pass


def event_stream(c: Container, interval: float) -> Iterator[str]:
    """The event lines (JSON, newline-terminated) of a running container: stats every interval, "oom"
    as soon as the kernel reports one; ends when the container does (or when the caller stops)."""
    if c.status() == "stopped":
        raise RuntimeFailure(f"container {c.id} is not running")
    if c.locked:  # a stream may last the container's lifetime: do not hold the state lock meanwhile
        import fcntl

        fcntl.flock(c.dir_fd, fcntl.LOCK_UN)
        c.locked = False
    manager = cgroups.manager(c.cgroup_paths)
    fd, how = manager.oom_watch_fd()
    poller = select.poll()
    if fd >= 0:
        poller.register(fd, select.POLLPRI if how == "pri" else select.POLLIN)
    # Only the kill counter's growth is an OOM: the v1 eventfd also fires when the cgroup is removed
    # (a delete), and v2's memory.events changes on mere memory.high/max pressure.
    counted = manager.oom_kills() is not None
    seen = manager.oom_kills() or 0
    next_stats = time.monotonic() + interval
    try:
        while c.init_alive():
            wait = max(0.0, min(next_stats - time.monotonic(), 0.5))
            ready = poller.poll(int(wait * 1000))
            if ready and how == "in":
                os.read(fd, 8)
            new, seen = _new_ooms(manager, seen, counted, bool(ready) and how == "in")
            for _ in range(new):
                yield _oom_event(c)
            if time.monotonic() >= next_stats and c.init_alive():
                yield stats_event(c)
                next_stats += interval
        new, seen = _new_ooms(manager, seen, counted, False)  # a kill that ended the container
        for _ in range(new):
            yield _oom_event(c)
    finally:
        if fd >= 0:
            os.close(fd)


def _new_ooms(manager: cgroups.Manager, seen: int, counted: bool, signalled: bool) -> tuple[int, int]:
    """(OOM kills new since `seen`, the kill count seen so far)."""
    kills = manager.oom_kills()
    if kills is None:  # the cgroup is gone, or (pre-4.13 v1) no counter: trust the eventfd while it exists
        return (1 if not counted and signalled and manager.exists() else 0), seen
    return max(0, kills - seen), max(seen, kills)


def _oom_event(c: Container) -> str:
    from . import runc_types

    return runc_types.event("oom", c.id)


def _emit(line: str) -> None:
    sys.stdout.write(line)
    sys.stdout.flush()


def parse_interval(text: str) -> float:
    """Go durations as runc takes them: 5s, 500ms, 1m, 1.5s."""
    import re

    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)?", text.strip())
    if not m:
        raise RuntimeFailure(f"--interval: invalid duration {text!r}")
    scale = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]
    value = float(m.group(1)) * scale
    if value <= 0:
        raise RuntimeFailure("--interval: duration must be greater than 0")
    return value


# -- ps -------------------------------------------------------------------------------------------
def ps(c: Container, fmt: str, ps_args: list[str]) -> str:
    import subprocess

    pids = cgroups.pids(c.cgroup_paths)
    if fmt == "json":
        if ps_args:
            raise RuntimeFailure("ps arguments cannot be used with --format json")
        return fastjson.dumps(pids, compact=True) + "\n"  # Go's encoder: compact
    args = ps_args or ["-ef"]
    try:
        out = subprocess.run(["ps", *args], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise RuntimeFailure("ps(1) is not installed") from None
    if out.returncode != 0:
        raise RuntimeFailure(f"ps {' '.join(args)} failed: {out.stderr.strip() or out.returncode}")
    lines = out.stdout.splitlines()
    if not lines:
        return ""
    header = lines[0]
    try:
        col = header.split().index("PID")
    except ValueError:
        raise RuntimeFailure("ps output has no PID column (add -o pid or use the default -ef)") from None
    wanted = set(pids)
    kept = [header]
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > col and fields[col].isdigit() and int(fields[col]) in wanted:
            kept.append(line)
    return "\n".join(kept) + "\n"
