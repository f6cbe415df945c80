"""Where a container's freezer is and whether it is frozen: read by every status() (state, start,
kill, ps...), so it lives outside the cgroups package, whose import costs several times more.
Freezing and thawing (cgroups.set_frozen) stay in the package."""

import os


def locate(paths: dict[str, str]) -> tuple[str, str] | None:
    """("v1" or "v2", the cgroup directory) of the freezer among a container's cgroup paths."""
    for mount_point, path in paths.items():
        if mount_point.endswith("/freezer"):
            return "v1", path
    for path in paths.values():
        if os.path.exists(f"{path}/cgroup.freeze"):
            return "v2", path
    return None


def is_paused(paths: dict[str, str], freezing: bool = False) -> bool:
    """Frozen (v1 FROZEN, v2 cgroup.freeze 1); with freezing, a v1 freezer still FREEZING counts too."""
    fz = locate(paths)
    if fz is None:
        return False
    kind, path = fz
    try:
        if kind == "v1":
            with open(f"{path}/freezer.state") as f:
                return f.read().strip() in (("FROZEN", "FREEZING") if freezing else ("FROZEN",))
        with open(f"{path}/cgroup.freeze") as f:
            return f.read().strip() == "1"
    except OSError:  # gone (ENOENT), or being removed by a delete (ENODEV): not frozen
        return False
