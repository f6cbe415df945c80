"""Every process-security check that can be made before anything exists (issue 3), in one place.

create calls check_config() before it makes the state dir, the cgroup or a process, so a bad value is
one clear line (file, JSON path, cause) and leaves nothing behind. exec calls check_process() for its
--process file.
"""

from __future__ import annotations

from typing import Any

from . import lsm, numa, personality, sched, sysctl


def check_process(process: dict[str, Any], file: str, path: str = "process") -> None:
    sched.check_scheduler(process.get("scheduler"), file, f"{path}.scheduler")
    sched.check_io_priority(process.get("ioPriority"), file, f"{path}.ioPriority")
    sched.check_cpu_affinity(process.get("execCPUAffinity"), file, f"{path}.execCPUAffinity")
    lsm.check_process(process, file, path)


def check_config(config: dict[str, Any], namespaces: dict[str, str | None], file: str) -> None:
    check_process(config["process"], file)
    linux = config.get("linux") or {}
    sysctl.check(config, namespaces, file)
    personality.check(linux.get("personality"), file, "linux.personality")
    numa.check(linux.get("memoryPolicy"), file, "linux.memoryPolicy")
    lsm.check_mount_label(linux, file)
