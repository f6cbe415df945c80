"""Every process-security check that can be made before anything exists (issue 3), in one place.

create calls check_config() before it makes the state dir, the cgroup or a process, so a bad value is
one clear line (file, JSON path, cause) and leaves nothing behind. exec calls check_process() for its
--process file.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


# Each module is imported only when the config uses its feature: the runtime imports nothing the
# init will not need (process/init.py: preload).


def check_process(process: dict[str, Any], file: str, path: str = "process") -> None:
    if any(process.get(k) is not None for k in ("scheduler", "ioPriority", "execCPUAffinity")):
        from . import sched

        sched.check_scheduler(process.get("scheduler"), file, f"{path}.scheduler")
        sched.check_io_priority(process.get("ioPriority"), file, f"{path}.ioPriority")
        sched.check_cpu_affinity(process.get("execCPUAffinity"), file, f"{path}.execCPUAffinity")
    if process.get("apparmorProfile") or process.get("selinuxLabel"):
        from . import lsm

        lsm.check_process(process, file, path)


def check_config(config: dict[str, Any], namespaces: dict[str, str | None], file: str) -> None:
    check_process(config["process"], file)
    linux = config.get("linux") or {}
    if "user" in namespaces and not namespaces["user"]:  # a new one: nothing would be mapped (bare EINVAL)
        from ..errors import ConfigError

        for key, ids in (("uidMappings", "uid"), ("gidMappings", "gid")):
            if not linux.get(key):
                raise ConfigError(file, f"linux.{key}", f"user namespaces enabled, but no {ids} mappings found "
                                  f"(a new user namespace needs linux.uidMappings and linux.gidMappings)")
    if linux.get("sysctl"):
        from . import sysctl

        sysctl.check(config, namespaces, file)
    if linux.get("personality") is not None:
        from . import personality

        personality.check(linux["personality"], file, "linux.personality")
    if linux.get("memoryPolicy") is not None:
        from . import numa

        numa.check(linux["memoryPolicy"], file, "linux.memoryPolicy")
    if linux.get("mountLabel"):
        from . import lsm

        lsm.check_mount_label(linux, file)
