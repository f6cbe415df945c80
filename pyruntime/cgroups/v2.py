"""cgroup v2 driver: linux.resources -> unified-hierarchy files (with runc's v1->v2 conversions)."""

from __future__ import annotations

import os
import re

from .. import log
from ..errors import ConfigError
from . import devices as devices_mod
from .base import (
    Manager,
    Write,
    blkio_weight_to_io_weight,
    num,
    read_file,
    read_int,
    read_kv,
    run_writes,
    shares_to_weight,
    swap_to_v2,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_UNIFIED_KEY = re.compile(r"^[a-z][a-z0-9_]*\.[A-Za-z0-9_.-]+$")
_UNIFIED_FORBIDDEN = {"cgroup.procs", "cgroup.threads", "cgroup.kill", "cgroup.subtree_control"}
_THROTTLES = {"throttleReadBpsDevice": "rbps", "throttleWriteBpsDevice": "wbps",
              "throttleReadIOPSDevice": "riops", "throttleWriteIOPSDevice": "wiops"}


class V2Manager(Manager):
    version = 2

    def __init__(self, paths: dict[str, str], path: str) -> None:
        super().__init__(paths)
        self.path = path

    # -- resources ------------------------------------------------------------------------------
    def apply(self, resources: dict[str, Any], file: str, *, update: bool = False,
              devices: list[dict[str, Any]] | None = None) -> None:
        run_writes(self._writes(resources, file, update), file)
        if not update and os.geteuid() == 0:  # rootless: no device control, as runc
            devices_mod.apply_v2(self.path, devices_mod.rules(resources, devices, file))

    def _writes(self, r: dict[str, Any], file: str, update: bool) -> list[Write]:
        d, P = self.path, "linux.resources"
        w: list[Write] = []
        mem = r.get("memory") or {}
        limit = mem.get("limit")
        if mem.get("checkBeforeUpdate") and update and limit is not None and 0 < limit:
            usage = read_int(d, "memory.current")
            if limit < usage:
                raise ConfigError(file, f"{P}.memory.limit", f"{limit} is below the current usage {usage}")
        if "swap" in mem:
            cur = limit if limit is not None else _current_limit(d)
            try:
                swap = swap_to_v2(mem["swap"], cur if cur is not None else -1)
            except ValueError as e:
                raise ConfigError(file, f"{P}.memory.swap", str(e)) from None
            if swap is not None:
                # memory.swap.max first when shrinking memory.max below it would be refused: harmless order
                w.append(Write(f"{P}.memory.swap", d, "memory.swap.max", num(swap)))
        if limit is not None and limit != 0:
            w.insert(0, Write(f"{P}.memory.limit", d, "memory.max", num(limit)))
        if mem.get("reservation"):
            w.append(Write(f"{P}.memory.reservation", d, "memory.low", num(mem["reservation"])))
        for key in ("kernel", "kernelTCP"):
            if mem.get(key):
                log.warning(f"{P}.memory.{key}: kernel memory limits do not exist on cgroup v2; ignored")
        if mem.get("swappiness") is not None and mem["swappiness"] != 2**64 - 1:
            log.warning(f"{P}.memory.swappiness: not supported on cgroup v2; ignored")
        if mem.get("disableOOMKiller"):
            log.warning(f"{P}.memory.disableOOMKiller: not supported on cgroup v2; ignored")

        cpu = r.get("cpu") or {}
        if cpu.get("shares"):
            w.append(Write(f"{P}.cpu.shares", d, "cpu.weight", str(shares_to_weight(cpu["shares"]))))
        quota, period = cpu.get("quota") or 0, cpu.get("period") or 0
        if quota or period:
            value = str(quota) if quota > 0 else "max"
            if period:
                value += f" {period}"
            w.append(Write(f"{P}.cpu.quota", d, "cpu.max", value))
        if cpu.get("burst") is not None:
            w.append(Write(f"{P}.cpu.burst", d, "cpu.max.burst", str(cpu["burst"])))
        if cpu.get("realtimeRuntime") or cpu.get("realtimePeriod"):
            raise ConfigError(file, f"{P}.cpu.realtimeRuntime", "realtime CPU limits are not supported on cgroup v2")
        if cpu.get("idle") is not None:
            w.append(Write(f"{P}.cpu.idle", d, "cpu.idle", str(cpu["idle"])))
        if cpu.get("cpus"):
            w.append(Write(f"{P}.cpu.cpus", d, "cpuset.cpus", cpu["cpus"]))
        if cpu.get("mems"):
            w.append(Write(f"{P}.cpu.mems", d, "cpuset.mems", cpu["mems"]))

        pids = r.get("pids")
        if pids and pids.get("limit") is not None:
            w.append(Write(f"{P}.pids.limit", d, "pids.max", str(pids["limit"]) if pids["limit"] > 0 else "max"))

        w += self._io_writes(r.get("blockIO") or {})
        for i, h in enumerate(r.get("hugepageLimits") or []):
            w.append(Write(f"{P}.hugepageLimits[{i}]", d, f"hugetlb.{h['pageSize']}.max", str(h["limit"])))
        for dev, lim in (r.get("rdma") or {}).items():
            parts = [f"hca_handle={lim['hcaHandles']}" if lim.get("hcaHandles") is not None else "hca_handle=max",
                     f"hca_object={lim['hcaObjects']}" if lim.get("hcaObjects") is not None else "hca_object=max"]
            w.append(Write(f"{P}.rdma.{dev}", d, "rdma.max", f"{dev} {' '.join(parts)}"))
        if r.get("network"):
            log.warning(f"{P}.network: net_cls/net_prio do not exist on cgroup v2; ignored")
        for key, value in (r.get("unified") or {}).items():
            w.append(Write(f"{P}.unified.{key}", d, _unified_key(key, file, d), value))
        return w

    def _io_writes(self, b: dict[str, Any]) -> list[Write]:
        d, P = self.path, "linux.resources.blockIO"
        w: list[Write] = []
        bfq = os.path.exists(os.path.join(d, "io.bfq.weight"))
        if b.get("weight"):
            if bfq:
                w.append(Write(f"{P}.weight", d, "io.bfq.weight", str(b["weight"])))
            else:
                w.append(Write(f"{P}.weight", d, "io.weight", str(blkio_weight_to_io_weight(b["weight"]))))
        if b.get("leafWeight"):
            log.warning(f"{P}.leafWeight: not supported on cgroup v2; ignored")
        for i, wd in enumerate(b.get("weightDevice") or []):
            if wd.get("weight"):
                dev = f"{wd['major']}:{wd['minor']}"
                value = wd["weight"] if bfq else blkio_weight_to_io_weight(wd["weight"])
                w.append(Write(f"{P}.weightDevice[{i}]", d, "io.bfq.weight" if bfq else "io.weight", f"{dev} {value}"))
        for key, name in _THROTTLES.items():
            for i, t in enumerate(b.get(key) or []):
                rate = t["rate"] if t["rate"] > 0 else "max"
                w.append(Write(f"{P}.{key}[{i}]", d, "io.max", f"{t['major']}:{t['minor']} {name}={rate}"))
        return w

    # -- stats ----------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        d = self.path
        cs = read_kv(d, "cpu.stat")
        cpu: dict[str, Any] = {"usage": {"total": cs.get("usage_usec", 0) * 1000,
                                         "kernel": cs.get("system_usec", 0) * 1000,
                                         "user": cs.get("user_usec", 0) * 1000}}
        if "nr_periods" in cs:
            cpu["throttling"] = {"periods": cs.get("nr_periods", 0), "throttled_periods": cs.get("nr_throttled", 0),
                                 "throttled_time": cs.get("throttled_usec", 0) * 1000}
        ms = read_kv(d, "memory.stat")
        ev = read_kv(d, "memory.events")
        memory: dict[str, Any] = {
            "cache": ms.get("file", 0),
            "usage": {"limit": read_int(d, "memory.max"), "usage": read_int(d, "memory.current"),
                      "max": read_int(d, "memory.peak"), "failcnt": ev.get("max", 0)},
            "swap": {"limit": read_int(d, "memory.swap.max"), "usage": read_int(d, "memory.swap.current"),
                     "failcnt": 0},
            "raw": ms,
        }
        pids = {"current": read_int(d, "pids.current"), "limit": read_int(d, "pids.max")}
        blkio: dict[str, Any] = {}
        entries_b, entries_i = [], []
        try:
            for line in read_file(d, "io.stat").splitlines():
                dev, *kvs = line.split()
                major, minor = (int(x) for x in dev.split(":"))
                kv = dict(x.split("=", 1) for x in kvs)
                for op, key in (("Read", "rbytes"), ("Write", "wbytes")):
                    entries_b.append({"major": major, "minor": minor, "op": op, "value": int(kv.get(key, 0))})
                for op, key in (("Read", "rios"), ("Write", "wios")):
                    entries_i.append({"major": major, "minor": minor, "op": op, "value": int(kv.get(key, 0))})
        except (OSError, ValueError):
            pass
        if entries_b:
            blkio = {"ioServiceBytesRecursive": entries_b, "ioServicedRecursive": entries_i}
        hugetlb: dict[str, Any] = {}
        for name in _listdir(d):
            m = re.match(r"^hugetlb\.([^.]+)\.current$", name)
            if m:
                size = m.group(1)
                hugetlb[size] = {"usage": read_int(d, name), "max": read_int(d, f"hugetlb.{size}.max"),
                                 "failcnt": read_kv(d, f"hugetlb.{size}.events").get("max", 0)}
        cpuset = {}
        try:
            cpuset = {"cpus": _ranges(read_file(d, "cpuset.cpus.effective")),
                      "mems": _ranges(read_file(d, "cpuset.mems.effective"))}
        except OSError:
            pass
        return {"cpu": cpu, "cpuset": cpuset, "memory": memory, "pids": pids, "blkio": blkio,
                "hugetlb": hugetlb, "intel_rdt": {}, "network_interfaces": None}

    def oom_kills(self) -> int | None:
        return read_kv(self.path, "memory.events").get("oom_kill")

    def oom_watch_fd(self) -> tuple[int, str]:
        try:
            return os.open(os.path.join(self.path, "memory.events"), os.O_RDONLY | os.O_CLOEXEC), "pri"
        except OSError:
            return -1, ""


def _current_limit(d: str) -> int | None:
    try:
        v = read_file(d, "memory.max")
    except OSError:
        return None
    return -1 if v == "max" else int(v)


def _unified_key(key: str, file: str, d: str) -> str:
    """A raw v2 key must name an existing interface file of this very cgroup: no path separators,
    no '..', no process moves."""
    path = f"linux.resources.unified.{key}"
    if not _UNIFIED_KEY.match(key) or "/" in key or ".." in key or "\0" in key:
        raise ConfigError(file, path, f"invalid cgroup v2 file name {key!r}")
    if key in _UNIFIED_FORBIDDEN:
        raise ConfigError(file, path, f"{key} cannot be set through resources")
    try:
        st = os.stat(os.path.join(d, key), follow_symlinks=False)
    except FileNotFoundError:
        controller = key.split(".", 1)[0]
        raise ConfigError(file, path, f"{key} does not exist in {d} (is the {controller} controller enabled?)") from None
    import stat

    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(file, path, f"{key} is not a cgroup interface file")
    return key


def _listdir(d: str) -> list[str]:
    try:
        return os.listdir(d)
    except OSError:
        return []


def _ranges(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            out += range(int(a), int(b) + 1)
        elif part:
            out.append(int(part))
    return out
