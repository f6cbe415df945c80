"""linux.memoryPolicy (runtime-spec 1.3): the NUMA memory policy of the container's process."""

from __future__ import annotations

import os

from .._native import ffi, lib
from ..errors import ConfigError, RuntimeFailure
from .sched import check_flags, parse_cpu_list

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# -1: not known to the kernel headers this was built against (refused as unsupported).
MODES = {"MPOL_DEFAULT": lib.PR_MPOL_DEFAULT, "MPOL_PREFERRED": lib.PR_MPOL_PREFERRED,
         "MPOL_BIND": lib.PR_MPOL_BIND, "MPOL_INTERLEAVE": lib.PR_MPOL_INTERLEAVE,
         "MPOL_LOCAL": lib.PR_MPOL_LOCAL, "MPOL_PREFERRED_MANY": lib.PR_MPOL_PREFERRED_MANY,
         "MPOL_WEIGHTED_INTERLEAVE": lib.PR_MPOL_WEIGHTED_INTERLEAVE}
FLAGS = {"MPOL_F_NUMA_BALANCING": lib.PR_MPOL_F_NUMA_BALANCING,
         "MPOL_F_RELATIVE_NODES": lib.PR_MPOL_F_RELATIVE_NODES,
         "MPOL_F_STATIC_NODES": lib.PR_MPOL_F_STATIC_NODES}
NO_NODES = ("MPOL_DEFAULT", "MPOL_LOCAL")
MAX_NODES = 1024  # the kernel's MAX_NUMNODES is at most 1 << 10


def check(mp: dict[str, Any] | None, file: str, path: str) -> None:
    if mp is None:
        return
    mode = mp["mode"]
    if mode not in MODES:
        raise ConfigError(file, f"{path}.mode", f"unknown memory policy mode {mode!r}")
    if MODES[mode] < 0:
        raise ConfigError(file, f"{path}.mode", f"{mode} is not supported by this build")
    check_flags(FLAGS, mp.get("flags"), "memory policy flag", file, f"{path}.flags")
    nodes = mp.get("nodes") or ""
    if mode in NO_NODES:
        if nodes:
            raise ConfigError(file, f"{path}.nodes", f"must be empty for {mode}")
        return
    if not nodes and mode != "MPOL_PREFERRED":
        raise ConfigError(file, f"{path}.nodes", f"{mode} needs a set of nodes")
    if nodes:
        try:
            found = parse_cpu_list(nodes)
        except ValueError as e:
            raise ConfigError(file, f"{path}.nodes", f"invalid node list {nodes!r}: {e}") from None
        if max(found) >= MAX_NODES:
            raise ConfigError(file, f"{path}.nodes", f"node {max(found)} is out of range")


def apply(mp: dict[str, Any] | None) -> None:
    """set_mempolicy(2) for this process; kept across execve."""
    if mp is None:
        return
    mode = MODES[mp["mode"]]
    for flag in mp.get("flags") or []:
        mode |= FLAGS[flag]
    bits = lib.pr_ulong_bits()
    nodes = parse_cpu_list(mp["nodes"]) if mp.get("nodes") else set()
    words = [0] * (MAX_NODES // bits)
    for n in nodes:
        words[n // bits] |= 1 << (n % bits)
    mask = ffi.new("unsigned long[]", words)
    if lib.pr_set_mempolicy(mode, mask if nodes else ffi.NULL, MAX_NODES + 1 if nodes else 0) < 0:
        raise RuntimeFailure(f"cannot set linux.memoryPolicy {mp['mode']} nodes {mp.get('nodes') or '-'}: "
                             f"{os.strerror(ffi.errno).lower()}")
