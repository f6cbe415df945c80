"""cgroup v1 driver (legacy and hybrid hosts): one directory per controller hierarchy."""

from __future__ import annotations

import os

from .. import log
from ..errors import ConfigError
from . import devices as devices_mod
from .base import Manager, Write, read_file, read_int, read_kv, run_writes, write_file

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_THROTTLES = {"throttleReadBpsDevice": "blkio.throttle.read_bps_device",
              "throttleWriteBpsDevice": "blkio.throttle.write_bps_device",
              "throttleReadIOPSDevice": "blkio.throttle.read_iops_device",
              "throttleWriteIOPSDevice": "blkio.throttle.write_iops_device"}


class V1Manager(Manager):
    version = 1

    def __init__(self, paths: dict[str, str], controllers: dict[str, str]) -> None:
        super().__init__(paths)
        self.ctl = controllers  # {controller name: cgroup dir}

    def _dir(self, controller: str, path: str, *, required: bool = True) -> str | None:
        d = self.ctl.get(controller)
        if d is None and required:
            log.warning(f"{path}: the {controller} controller is not mounted on this host; ignored")
        return d

    # -- resources ------------------------------------------------------------------------------
    def apply(self, resources: dict[str, Any], file: str, *, update: bool = False,
              devices: list[dict[str, Any]] | None = None) -> None:
        r, P = resources, "linux.resources"
        if r.get("unified"):  # before anything is written ("invalid configuration": runc's words)
            raise ConfigError(file, f"{P}.unified", "invalid configuration: unified (cgroup v2) resources "
                              "cannot be set on a cgroup v1 host")
        mem = r.get("memory") or {}
        if mem:
            self._memory(mem, file, update)
        writes: list[Write] = []
        cpu = r.get("cpu") or {}
        if cpu:
            self._cpu(cpu, file)
        for key, name in (("cpus", "cpuset.cpus"), ("mems", "cpuset.mems")):
            if cpu.get(key) and (d := self._dir("cpuset", f"{P}.cpu.{key}")):
                writes.append(Write(f"{P}.cpu.{key}", d, name, cpu[key]))
        pids = r.get("pids")
        if pids and pids.get("limit") is not None and (d := self._dir("pids", f"{P}.pids")):
            writes.append(Write(f"{P}.pids.limit", d, "pids.max", str(pids["limit"]) if pids["limit"] > 0 else "max"))
        writes += self._blkio(r.get("blockIO") or {})
        for i, h in enumerate(r.get("hugepageLimits") or []):
            if d := self._dir("hugetlb", f"{P}.hugepageLimits"):
                writes.append(Write(f"{P}.hugepageLimits[{i}]", d, f"hugetlb.{h['pageSize']}.limit_in_bytes",
                                    str(h["limit"])))
        for dev, lim in (r.get("rdma") or {}).items():
            if d := self._dir("rdma", f"{P}.rdma"):
                parts = [f"hca_handle={lim.get('hcaHandles', 'max')}", f"hca_object={lim.get('hcaObjects', 'max')}"]
                writes.append(Write(f"{P}.rdma.{dev}", d, "rdma.max", f"{dev} {' '.join(parts)}"))
        net = r.get("network") or {}
        if net.get("classID") is not None and (d := self._dir("net_cls", f"{P}.network.classID")):
            writes.append(Write(f"{P}.network.classID", d, "net_cls.classid", str(net["classID"])))
        for i, p in enumerate(net.get("priorities") or []):
            if d := self._dir("net_prio", f"{P}.network.priorities"):
                writes.append(Write(f"{P}.network.priorities[{i}]", d, "net_prio.ifpriomap",
                                    f"{p['name']} {p['priority']}"))
        run_writes(writes, file)
        if not update and os.geteuid() == 0 and (d := self.ctl.get("devices")):
            devices_mod.apply_v1(d, devices_mod.rules(r, devices, file), file)

    def _memory(self, mem: dict[str, Any], file: str, update: bool) -> None:
        P = "linux.resources.memory"
        d = self._dir("memory", P)
        if d is None:
            return
        limit, swap = mem.get("limit"), mem.get("swap")
        if mem.get("checkBeforeUpdate") and update and limit is not None and limit > 0:
            usage = read_int(d, "memory.usage_in_bytes")
            if limit < usage:
                raise ConfigError(file, f"{P}.limit", f"{limit} is below the current usage {usage}")
        lw = Write(f"{P}.limit", d, "memory.limit_in_bytes", str(limit)) if limit else None
        sw = Write(f"{P}.swap", d, "memory.memsw.limit_in_bytes", str(swap)) if swap else None
        order = [lw, sw]
        if lw and sw:
            # memsw must stay >= the memory limit at every step: raise memsw first when growing
            current_memsw = read_int(d, "memory.memsw.limit_in_bytes", -1)
            if limit == -1 or (swap != -1 and current_memsw != -1 and limit > current_memsw):
                order = [sw, lw]
        elif limit == -1 and not sw and os.path.exists(os.path.join(d, "memory.memsw.limit_in_bytes")):
            # unlimited memory with swap unset: unlimited swap too (runc), else the write is refused
            order = [Write(f"{P}.limit", d, "memory.memsw.limit_in_bytes", "-1"), lw]
        if lw and not sw and limit > 0:
            memsw = read_int(d, "memory.memsw.limit_in_bytes", -1)
            if 0 < memsw < limit:
                raise ConfigError(file, f"{P}.limit", f"{limit} is above the memory+swap limit {memsw} "
                                  "(memory.memsw.limit_in_bytes): set the swap limit too")
        writes = [w for w in order if w]
        if mem.get("reservation"):
            writes.append(Write(f"{P}.reservation", d, "memory.soft_limit_in_bytes", str(mem["reservation"])))
        for key in ("kernel", "kernelTCP"):
            if mem.get(key):
                log.warning(f"{P}.{key}: kernel memory limits are not supported by this kernel; ignored")
        if mem.get("swappiness") is not None and mem["swappiness"] <= 100:
            writes.append(Write(f"{P}.swappiness", d, "memory.swappiness", str(mem["swappiness"])))
        if mem.get("disableOOMKiller"):
            writes.append(Write(f"{P}.disableOOMKiller", d, "memory.oom_control", "1"))
        if mem.get("useHierarchy"):
            writes.append(Write(f"{P}.useHierarchy", d, "memory.use_hierarchy", "1", optional=True))
        run_writes(writes, file)

    def _cpu(self, cpu: dict[str, Any], file: str) -> None:
        P = "linux.resources.cpu"
        needs_cpu = any(cpu.get(k) is not None for k in ("shares", "quota", "period", "burst", "realtimeRuntime",
                                                         "realtimePeriod", "idle"))
        d = self._dir("cpu", P, required=needs_cpu)
        if d is None or not needs_cpu:
            return
        writes: list[Write] = []
        if cpu.get("shares"):
            writes.append(Write(f"{P}.shares", d, "cpu.shares", str(cpu["shares"])))
        run_writes(writes, file)
        if cpu.get("shares") and read_int(d, "cpu.shares") != cpu["shares"]:
            raise ConfigError(file, f"{P}.shares", f"the kernel clamped cpu.shares {cpu['shares']} to "
                              f"{read_int(d, 'cpu.shares')}")
        period, quota = cpu.get("period"), cpu.get("quota")
        pw = Write(f"{P}.period", d, "cpu.cfs_period_us", str(period)) if period else None
        qw = Write(f"{P}.quota", d, "cpu.cfs_quota_us", str(quota)) if quota else None
        _ordered_pair(pw, qw, file)
        if cpu.get("burst") is not None:
            run_writes([Write(f"{P}.burst", d, "cpu.cfs_burst_us", str(cpu["burst"]))], file)
        rp, rr = cpu.get("realtimePeriod"), cpu.get("realtimeRuntime")
        _ordered_pair(Write(f"{P}.realtimePeriod", d, "cpu.rt_period_us", str(rp)) if rp else None,
                      Write(f"{P}.realtimeRuntime", d, "cpu.rt_runtime_us", str(rr)) if rr else None, file)
        if cpu.get("idle") is not None:
            run_writes([Write(f"{P}.idle", d, "cpu.idle", str(cpu["idle"]))], file)

    def _blkio(self, b: dict[str, Any]) -> list[Write]:
        P = "linux.resources.blockIO"
        if not b:
            return []
        d = self._dir("blkio", P)
        if d is None:
            return []
        w: list[Write] = []
        bfq = os.path.exists(os.path.join(d, "blkio.bfq.weight"))
        weight_file = "blkio.bfq.weight" if bfq else "blkio.weight"
        if b.get("weight"):
            w.append(Write(f"{P}.weight", d, weight_file, str(b["weight"])))
        if b.get("leafWeight"):
            w.append(Write(f"{P}.leafWeight", d, "blkio.leaf_weight", str(b["leafWeight"])))
        for i, wd in enumerate(b.get("weightDevice") or []):
            dev = f"{wd['major']}:{wd['minor']}"
            if wd.get("weight"):
                w.append(Write(f"{P}.weightDevice[{i}]", d, weight_file + ("" if bfq else "_device"),
                               f"{dev} {wd['weight']}"))
            if wd.get("leafWeight"):
                w.append(Write(f"{P}.weightDevice[{i}]", d, "blkio.leaf_weight_device", f"{dev} {wd['leafWeight']}"))
        for key, name in _THROTTLES.items():
            for i, t in enumerate(b.get(key) or []):
                w.append(Write(f"{P}.{key}[{i}]", d, name, f"{t['major']}:{t['minor']} {t['rate']}"))
        return w

    # -- stats ----------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"cpu": {}, "cpuset": {}, "memory": {}, "pids": {}, "blkio": {}, "hugetlb": {},
                               "intel_rdt": {}, "network_interfaces": None}
        if d := self.ctl.get("cpuacct"):
            total = read_int(d, "cpuacct.usage")
            percpu = [int(x) for x in _read(d, "cpuacct.usage_percpu").split()]
            st = read_kv(d, "cpuacct.stat")  # clock ticks
            tick = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
            out["cpu"]["usage"] = {"total": total, "percpu": percpu, "kernel": st.get("system", 0) * tick,
                                   "user": st.get("user", 0) * tick}
        if d := self.ctl.get("cpu"):
            cs = read_kv(d, "cpu.stat")
            out["cpu"]["throttling"] = {"periods": cs.get("nr_periods", 0), "throttled_periods":
                                        cs.get("nr_throttled", 0), "throttled_time": cs.get("throttled_time", 0)}
        if d := self.ctl.get("cpuset"):
            from .v2 import _ranges

            out["cpuset"] = {"cpus": _ranges(_read(d, "cpuset.cpus")), "mems": _ranges(_read(d, "cpuset.mems"))}
        if d := self.ctl.get("memory"):
            def entry(prefix: str) -> dict[str, int]:
                return {"limit": read_int(d, f"{prefix}.limit_in_bytes"), "usage": read_int(d, f"{prefix}.usage_in_bytes"),
                        "max": read_int(d, f"{prefix}.max_usage_in_bytes"), "failcnt": read_int(d, f"{prefix}.failcnt")}

            ms = read_kv(d, "memory.stat")
            out["memory"] = {"cache": ms.get("cache", 0), "usage": entry("memory"), "swap": entry("memory.memsw"),
                             "kernel": entry("memory.kmem"), "kernelTCP": entry("memory.kmem.tcp"), "raw": ms}
        if d := self.ctl.get("pids"):
            lim = _read(d, "pids.max")
            out["pids"] = {"current": read_int(d, "pids.current"), "limit": 0 if lim == "max" else int(lim or 0)}
        if d := self.ctl.get("blkio"):
            out["blkio"] = {"ioServiceBytesRecursive": _blkio_entries(d, "blkio.throttle.io_service_bytes_recursive"),
                            "ioServicedRecursive": _blkio_entries(d, "blkio.throttle.io_serviced_recursive")}
        return out

    def oom_kills(self) -> int | None:
        d = self.ctl.get("memory")
        return read_kv(d, "memory.oom_control").get("oom_kill") if d else None  # the counter: Linux 4.13+

    def oom_watch_fd(self) -> tuple[int, str]:
        """An eventfd the kernel signals on OOM (cgroup.event_control + memory.oom_control)."""
        d = self.ctl.get("memory")
        if not d:
            return -1, ""
        efd = os.eventfd(0, os.EFD_CLOEXEC)
        ofd = os.open(os.path.join(d, "memory.oom_control"), os.O_RDONLY | os.O_CLOEXEC)
        try:
            write_file(d, "cgroup.event_control", f"{efd} {ofd}")
        except OSError:
            os.close(efd)
            return -1, ""
        finally:
            os.close(ofd)
        return efd, "in"


def _ordered_pair(first: Write | None, second: Write | None, file: str) -> None:
    """Two values the kernel checks against each other (period/quota, rt period/runtime): try one
    order, and on a refusal the other."""
    pair = [w for w in (first, second) if w]
    try:
        run_writes(pair, file)
    except ConfigError:
        if len(pair) < 2:
            raise
        run_writes(pair[::-1], file)


def _read(d: str, name: str) -> str:
    try:
        return read_file(d, name)
    except OSError:
        return ""


def _blkio_entries(d: str, name: str) -> list[dict[str, Any]]:
    out = []
    for line in _read(d, name).splitlines():
        parts = line.split()
        if len(parts) == 3 and ":" in parts[0]:
            major, minor = (int(x) for x in parts[0].split(":"))
            out.append({"major": major, "minor": minor, "op": parts[1], "value": int(parts[2])})
    return out
