"""runc's `events` JSON (its types.Event and types.Stats): field names, and Go's `omitempty`.

The cgroup drivers report statistics in one dict per controller; this module gives them the exact
shape runc prints, so tools written for runc (and runc's own tests, which match the raw text)
read ours: compact JSON, runc's key names and order, zero values left out where runc leaves them out.
"""

from __future__ import annotations

from . import fastjson

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# (key, omitempty) per object, in runc's order; keys the driver does not report are not invented.
_USAGE = [("total", True), ("percpu", True), ("percpu_kernel", True), ("percpu_user", True),
          ("kernel", False), ("user", False)]
_THROTTLING = [("periods", True), ("throttledPeriods", True), ("throttledTime", True)]
_CPUSET = [("cpus", True), ("cpu_exclusive", False), ("mems", True), ("mem_hardwall", False),
           ("mem_exclusive", False), ("memory_migrate", False), ("memory_spread_page", False),
           ("memory_spread_slab", False), ("memory_pressure", False), ("sched_load_balance", False),
           ("sched_relax_domain_level", False)]
_MEMORY_ENTRY = [("limit", False), ("usage", True), ("max", True), ("failcnt", False)]
_PIDS = [("current", True), ("limit", True)]
_HUGETLB = [("usage", True), ("max", True), ("failcnt", False)]
_BLKIO_ENTRY = [("major", True), ("minor", True), ("op", True), ("value", True)]
_BLKIO = ["ioServiceBytesRecursive", "ioServicedRecursive", "ioQueueRecursive", "ioServiceTimeRecursive",
          "ioWaitTimeRecursive", "ioMergedRecursive", "ioTimeRecursive", "sectorsRecursive"]
# names some drivers use for the same values
_ALIASES = {"throttled_periods": "throttledPeriods", "throttled_time": "throttledTime",
            "ioQueuedRecursive": "ioQueueRecursive"}


def _empty(value: Any) -> bool:
    return value is None or value == 0 or value == "" or value == [] or value == {}


def _pick(src: dict[str, Any] | None, fields: list[tuple[str, bool]]) -> dict[str, Any]:
    src = {_ALIASES.get(k, k): v for k, v in (src or {}).items()}
    return {k: src[k] for k, omit in fields if k in src and not (omit and _empty(src[k]))}


def stats(raw: dict[str, Any]) -> dict[str, Any]:
    """A driver's stats dict in runc's types.Stats shape."""
    cpu = raw.get("cpu") or {}
    mem = raw.get("memory") or {}
    memory: dict[str, Any] = {}
    if not _empty(mem.get("cache")):
        memory["cache"] = mem["cache"]
    for key in ("usage", "swap", "kernel", "kernelTCP"):  # structs: never left out by Go
        memory[key] = _pick(mem.get(key), _MEMORY_ENTRY) or {"limit": 0, "failcnt": 0}
    if mem.get("raw"):
        memory["raw"] = dict(sorted(mem["raw"].items()))  # Go writes a map's keys sorted
    blkio_src = {_ALIASES.get(k, k): v for k, v in (raw.get("blkio") or {}).items()}
    blkio = {k: [_pick(e, _BLKIO_ENTRY) for e in blkio_src[k]] for k in _BLKIO if blkio_src.get(k)}
    return {
        "cpu": {"usage": _pick(cpu.get("usage"), _USAGE) or {"kernel": 0, "user": 0},
                "throttling": _pick(cpu.get("throttling"), _THROTTLING)},
        "cpuset": _pick(raw.get("cpuset"), _CPUSET),
        "memory": memory,
        "pids": _pick(raw.get("pids"), _PIDS),
        "blkio": blkio,
        "hugetlb": {size: _pick(h, _HUGETLB) for size, h in sorted((raw.get("hugetlb") or {}).items())},
        "intel_rdt": raw.get("intel_rdt") or {},
        "network_interfaces": raw.get("network_interfaces"),
    }


def event(kind: str, container_id: str, data: dict[str, Any] | None = None) -> str:
    """One line of `events` output: runc's {"type","id","data"?} in compact JSON (Go's encoder)."""
    ev: dict[str, Any] = {"type": kind, "id": container_id}
    if data:
        ev["data"] = data
    return fastjson.dumps(ev, compact=True) + "\n"
