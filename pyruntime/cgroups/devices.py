"""Device access rules: the spec's linux.resources.devices, then runc's default allow-list appended
(so, as with runc, those stay usable whatever the rules before them say). As with runc, linux.devices
only creates nodes: access to them is what linux.resources.devices grants.

v1 writes them to devices.deny/devices.allow; v2 compiles them into a BPF_PROG_TYPE_CGROUP_DEVICE
program (csrc/ebpf.c) attached to the cgroup.
"""

from __future__ import annotations

import os

from ..errors import ConfigError, RuntimeFailure
from ..record import dataclass  # dataclasses without its start-up cost (see record.py)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ANY = -1


@dataclass(frozen=True)
class Rule:
    """One device-cgroup rule."""

    allow: bool
    type: str  # 'a', 'b' or 'c'
    major: int  # -1: any
    minor: int
    access: str  # subset of "rwm"

    def v1(self) -> str:
        if self.type == "a":
            return "a"
        mj = "*" if self.major < 0 else str(self.major)
        mn = "*" if self.minor < 0 else str(self.minor)
        return f"{self.type} {mj}:{mn} {self.access}"


# runc's libcontainer/specconv AllowedDevices
DEFAULT_ALLOW = [
    Rule(True, "c", ANY, ANY, "m"), Rule(True, "b", ANY, ANY, "m"),
    Rule(True, "c", 1, 3, "rwm"),    # /dev/null
    Rule(True, "c", 1, 8, "rwm"),    # /dev/random
    Rule(True, "c", 1, 7, "rwm"),    # /dev/full
    Rule(True, "c", 5, 0, "rwm"),    # /dev/tty
    Rule(True, "c", 1, 5, "rwm"),    # /dev/zero
    Rule(True, "c", 1, 9, "rwm"),    # /dev/urandom
    Rule(True, "c", 136, ANY, "rwm"),  # /dev/pts/*
    Rule(True, "c", 5, 2, "rwm"),    # /dev/ptmx
    Rule(True, "c", 10, 200, "rwm"),  # /dev/net/tun
]


def rules(resources: dict[str, Any], linux_devices: list[dict[str, Any]] | None, file: str) -> list[Rule]:
    out: list[Rule] = []
    for i, d in enumerate(resources.get("devices") or []):
        path = f"linux.resources.devices[{i}]"
        dtype = d.get("type") or "a"
        if dtype not in ("a", "b", "c"):
            raise ConfigError(file, path + ".type", f"device type must be a, b or c, not {dtype!r}")
        access = d.get("access") or "rwm"
        if not set(access) & set("rwm"):
            raise ConfigError(file, path + ".access", f"access must be letters of 'rwm', not {access!r}")
        if set(access) - set("rwm"):  # runc ignores them too (its tests use "rwa")
            from .. import log

            log.warning(f"{file}: {path}.access: {access!r}: only r, w and m are device permissions; "
                        "the other letters are ignored")
        major, minor = d.get("major", ANY), d.get("minor", ANY)
        for name, v in (("major", major), ("minor", minor)):
            if v is not None and not ANY <= v < 2**31:
                raise ConfigError(file, f"{path}.{name}", f"invalid device number {v}")
        out.append(Rule(bool(d["allow"]), dtype, ANY if major is None else major,
                        ANY if minor is None else minor, "".join(c for c in "rwm" if c in access)))
    return out + DEFAULT_ALLOW


def apply_v1(directory: str, rule_list: list[Rule], file: str) -> None:
    from .base import Write, run_writes

    writes = [Write("linux.resources.devices", directory, "devices.deny", "a")]
    writes += [Write("linux.resources.devices", directory, "devices.allow" if r.allow else "devices.deny", r.v1())
               for r in rule_list]
    run_writes(writes, file)


def apply_v2(directory: str, rule_list: list[Rule]) -> None:
    """Load the rules as a cgroup device program and attach it to the cgroup."""
    from .._native import ffi, lib

    arr = ffi.new("struct pr_dev_rule[]", max(len(rule_list), 1))
    bits = {"r": lib.PR_DEV_R, "w": lib.PR_DEV_W, "m": lib.PR_DEV_M}
    for i, r in enumerate(rule_list):
        arr[i].type = ord(r.type)
        arr[i].major, arr[i].minor = r.major, r.minor
        arr[i].access = sum(bits[c] for c in r.access)
        arr[i].allow = 1 if r.allow else 0
    logbuf = ffi.new("char[]", 16384)
    prog = lib.pr_devcg_prog_load(arr, len(rule_list), logbuf, 16384)
    if prog < 0:
        err = ffi.errno
        verifier = ffi.string(logbuf).decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise RuntimeFailure(f"cannot load the device filter for {directory}: {os.strerror(err).lower()}"
                             + (f" ({verifier[0]})" if verifier[0] else ""))
    try:
        cg = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            if lib.pr_devcg_attach(cg, prog) < 0:
                err = ffi.errno
                raise RuntimeFailure(f"cannot attach the device filter to {directory}: {os.strerror(err).lower()}")
        finally:
            os.close(cg)
    finally:
        os.close(prog)  # the cgroup holds its own reference
