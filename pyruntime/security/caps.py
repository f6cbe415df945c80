"""process.capabilities: the five sets, kept across the change to the container's user."""

from __future__ import annotations

from typing import Any

import _prctl  # the C module: prctl.py costs ~0.7 ms to import (it generates its wrappers)

from .. import log, native
from ..errors import ConfigError, RuntimeFailure

# Capability numbers are part of the kernel ABI and the same on every architecture.
CAPS = {name: i for i, name in enumerate((
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN",
    "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE"))}
SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")


_last_cap: int | None = None


def last_cap() -> int:
    """Read once, in the runtime (resolve_sets): later calls in a process that has entered the
    container (exec) must not trust the container's /proc, which it can mount over."""
    global _last_cap
    if _last_cap is None:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            _last_cap = int(f.read())
    return _last_cap


def resolve_sets(caps: dict[str, Any] | None, file: str, path: str) -> dict[str, set[int]] | None:
    """Names -> numbers, checked against what this kernel and this host's bounding set allow."""
    if caps is None:
        return None
    top = last_cap()
    bounding_now = _current_bounding(top)
    out: dict[str, set[int]] = {}
    for kind in SETS:
        nums = set()
        for i, name in enumerate(caps.get(kind) or []):
            num = CAPS.get(name.upper() if name.upper().startswith("CAP_") else "CAP_" + name.upper())
            if num is None:
                raise ConfigError(file, f"{path}.{kind}[{i}]", f"unknown capability {name!r}")
            if num > top:
                raise ConfigError(file, f"{path}.{kind}[{i}]", f"{name} is not known to this kernel")
            if num not in bounding_now and kind != "bounding":
                raise ConfigError(file, f"{path}.{kind}[{i}]",
                                  f"{name} cannot be granted: it is not in this host's bounding set")
            nums.add(num)
        out[kind] = nums
    _check_subsets(caps, out, file, path)
    return out


def _check_subsets(caps: dict[str, Any], sets: dict[str, set[int]], file: str, path: str) -> None:
    """What capset(2) would refuse with a bare EPERM, named here instead. An ambient capability the
    kernel cannot raise (not in both permitted and inheritable) is skipped with a warning, as runc
    skips it silently: Buildah, for one, lists its default capabilities as ambient with an empty
    inheritable set."""
    rules = (("effective", sets["permitted"], "permitted"),
             ("inheritable", sets["bounding"], "bounding"))
    for kind, allowed, where in rules:
        for i, name in enumerate(caps.get(kind) or []):
            if _number(name) not in allowed:
                raise ConfigError(file, f"{path}.{kind}[{i}]", f"{name} must also be in {where}")
    raisable = sets["permitted"] & sets["inheritable"]
    skipped = [name for name in caps.get("ambient") or [] if _number(name) not in raisable]
    if skipped:
        sets["ambient"] &= raisable
        log.warning(f"{file}: {path}.ambient: {', '.join(skipped)} skipped: not in both permitted and "
                    "inheritable, the kernel cannot raise them (as runc)")


def _number(name: str) -> int:
    return CAPS[name.upper() if name.upper().startswith("CAP_") else "CAP_" + name.upper()]


def _current_bounding(top: int) -> set[int]:
    return {c for c in range(top + 1) if _prctl.prctl(_prctl.PR_CAPBSET_READ, c)}


def drop_bounding(sets: dict[str, set[int]]) -> None:
    """Needs CAP_SETPCAP: done while still root, before the user change."""
    keep = sets["bounding"]
    for cap in range(last_cap() + 1):
        if cap not in keep and _prctl.prctl(_prctl.PR_CAPBSET_READ, cap):
            _prctl.prctl(_prctl.PR_CAPBSET_DROP, cap)


def apply(sets: dict[str, set[int]]) -> None:
    """After the user change (with keepcaps): set effective/permitted/inheritable, then ambient."""
    try:
        native.capset(sets["effective"], sets["permitted"], sets["inheritable"])
        native.cap_ambient_clear()
        for cap in sorted(sets["ambient"]):
            native.cap_ambient_raise(cap)
    except OSError as e:
        raise RuntimeFailure(f"cannot set capabilities: {e.strerror}") from None
