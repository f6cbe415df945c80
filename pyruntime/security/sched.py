"""process.scheduler, process.ioPriority, process.execCPUAffinity and process.oomScoreAdj.

check_*() run in the runtime before it forks (errors name the JSON path); apply_*() run in the process
that will exec the container's program, while it still has the capabilities they may need
(CAP_SYS_NICE for real-time policies and negative nice values, CAP_SYS_ADMIN for IOPRIO_CLASS_RT).
"""

from __future__ import annotations

import errno
import os

from .._native import ffi, lib
from ..errors import ConfigError, RuntimeFailure

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# -1: not defined by the kernel headers this was built against (refused as unsupported).
POLICIES = {"SCHED_OTHER": lib.SCHED_OTHER, "SCHED_FIFO": lib.SCHED_FIFO, "SCHED_RR": lib.SCHED_RR,
            "SCHED_BATCH": lib.SCHED_BATCH, "SCHED_ISO": lib.PR_SCHED_ISO, "SCHED_IDLE": lib.SCHED_IDLE,
            "SCHED_DEADLINE": lib.PR_SCHED_DEADLINE}
SCHED_FLAGS = {
    "SCHED_FLAG_RESET_ON_FORK": lib.PR_SCHED_FLAG_RESET_ON_FORK, "SCHED_FLAG_RECLAIM": lib.PR_SCHED_FLAG_RECLAIM,
    "SCHED_FLAG_DL_OVERRUN": lib.PR_SCHED_FLAG_DL_OVERRUN, "SCHED_FLAG_KEEP_POLICY": lib.PR_SCHED_FLAG_KEEP_POLICY,
    "SCHED_FLAG_KEEP_PARAMS": lib.PR_SCHED_FLAG_KEEP_PARAMS,
    "SCHED_FLAG_UTIL_CLAMP_MIN": lib.PR_SCHED_FLAG_UTIL_CLAMP_MIN,
    "SCHED_FLAG_UTIL_CLAMP_MAX": lib.PR_SCHED_FLAG_UTIL_CLAMP_MAX,
}
IO_CLASSES = {"IOPRIO_CLASS_RT": lib.IOPRIO_CLASS_RT, "IOPRIO_CLASS_BE": lib.IOPRIO_CLASS_BE,
              "IOPRIO_CLASS_IDLE": lib.IOPRIO_CLASS_IDLE}
REALTIME = ("SCHED_FIFO", "SCHED_RR")


def check_flags(table: dict[str, int], flags: list[str] | None, what: str, file: str, path: str) -> None:
    """Each flag must be in table (-1 there: unknown to the headers this was built against)."""
    for i, flag in enumerate(flags or []):
        if flag not in table:
            raise ConfigError(file, f"{path}[{i}]", f"unknown {what} {flag!r}")
        if table[flag] < 0:
            raise ConfigError(file, f"{path}[{i}]", f"{flag} is not supported by this build")


# -- scheduler ---------------------------------------------------------------------------------------

def check_scheduler(s: dict[str, Any] | None, file: str, path: str) -> None:
    if s is None:
        return
    policy = s["policy"]
    if policy not in POLICIES:
        raise ConfigError(file, f"{path}.policy", f"unknown scheduler policy {policy!r}")
    if policy == "SCHED_ISO" or POLICIES[policy] < 0:
        raise ConfigError(file, f"{path}.policy", f"{policy} is not implemented by this kernel")
    check_flags(SCHED_FLAGS, s.get("flags"), "scheduler flag", file, f"{path}.flags")
    prio = s.get("priority", 0)
    if policy in REALTIME:
        lo, hi = os.sched_get_priority_min(POLICIES[policy]), os.sched_get_priority_max(POLICIES[policy])
        if not lo <= prio <= hi:
            raise ConfigError(file, f"{path}.priority", f"{policy} needs a priority in {lo}..{hi}, got {prio}")
    elif prio:
        raise ConfigError(file, f"{path}.priority", f"can only be set for SCHED_FIFO or SCHED_RR, not {policy}")
    dl = [k for k in ("runtime", "deadline", "period") if s.get(k)]
    if policy == "SCHED_DEADLINE":
        runtime, deadline = s.get("runtime", 0), s.get("deadline", 0)
        period = s.get("period") or deadline
        if not runtime or not deadline:
            raise ConfigError(file, path, "SCHED_DEADLINE needs runtime and deadline")
        if not runtime <= deadline <= period:
            raise ConfigError(file, path, "SCHED_DEADLINE needs runtime <= deadline <= period")
    elif dl:
        raise ConfigError(file, f"{path}.{dl[0]}", f"can only be set for SCHED_DEADLINE, not {policy}")


def apply_scheduler(s: dict[str, Any] | None) -> None:
    if s is None:
        return
    flags = 0
    for flag in s.get("flags") or []:
        flags |= SCHED_FLAGS[flag]
    rc = lib.pr_sched_setattr(0, POLICIES[s["policy"]], flags, s.get("nice", 0), s.get("priority", 0),
                              s.get("runtime", 0), s.get("deadline", 0), s.get("period", 0))
    if rc < 0:
        err = ffi.errno
        why = os.strerror(err).lower()
        if err == errno.EPERM and s["policy"] in REALTIME:
            why += " (real-time policies need CAP_SYS_NICE and, with cgroup v1 RT group scheduling, " \
                   "cpu.rt_runtime_us in the container's cgroup)"
        elif err == errno.EBUSY and s["policy"] == "SCHED_DEADLINE":
            why += " (not enough SCHED_DEADLINE bandwidth)"
        raise RuntimeFailure(f"cannot set process.scheduler {s['policy']}: {why}")


# -- I/O priority ------------------------------------------------------------------------------------

def check_io_priority(io: dict[str, Any] | None, file: str, path: str) -> None:
    if io is not None and io["class"] not in IO_CLASSES:
        raise ConfigError(file, f"{path}.class", f"unknown I/O priority class {io['class']!r}")


def apply_io_priority(io: dict[str, Any] | None) -> None:
    if io is None:
        return
    if lib.pr_ioprio_set(lib.IOPRIO_WHO_PROCESS, 0, IO_CLASSES[io["class"]], io.get("priority", 0)) < 0:
        raise RuntimeFailure(f"cannot set process.ioPriority {io['class']}/{io.get('priority', 0)}: "
                             f"{os.strerror(ffi.errno).lower()}")


# -- CPU affinity (execCPUAffinity: for processes joining a container, not for its init) ----------------

def parse_cpu_list(text: str) -> set[int]:
    """"0-3,7" -> {0, 1, 2, 3, 7}; ValueError with the reason for anything else."""
    cpus: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise ValueError("empty element")
        lo, sep, hi = part.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise ValueError(f"{part!r} is not a CPU number or range")
        a, b = int(lo), int(hi) if sep else int(lo)
        if a > b:
            raise ValueError(f"range {part!r} goes backwards")
        if b >= 8192:
            raise ValueError(f"CPU {b} is out of range")
        cpus.update(range(a, b + 1))
    return cpus


def check_cpu_affinity(aff: dict[str, Any] | None, file: str, path: str) -> None:
    for key in ("initial", "final"):
        if aff and aff.get(key):
            try:
                parse_cpu_list(aff[key])
            except ValueError as e:
                raise ConfigError(file, f"{path}.{key}", f"invalid CPU list {aff[key]!r}: {e}") from None


def apply_cpu_affinity(cpus: str | None, pid: int = 0) -> None:
    """Set the affinity of pid (0: this process) to a spec CPU list (empty/None: leave it)."""
    if not cpus:
        return
    try:
        os.sched_setaffinity(pid, parse_cpu_list(cpus))
    except OSError as e:
        raise RuntimeFailure(f"cannot set CPU affinity to {cpus!r}: {e.strerror.lower()}") from None


# -- OOM score ---------------------------------------------------------------------------------------

def apply_oom_score_adj(value: int | None) -> None:
    if value is None:
        return
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(value))
    except OSError as e:
        why = e.strerror.lower()
        if e.errno == errno.EACCES:
            why += " (lowering it below the runtime's own value needs CAP_SYS_RESOURCE)"
        raise RuntimeFailure(f"cannot set process.oomScoreAdj to {value}: {why}") from None
