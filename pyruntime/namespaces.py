"""User namespace id maps, written by the runtime while the child waits.

As root the maps are written directly. An unprivileged caller may write only a single mapping of
its own id (after denying setgroups); anything more goes through the setuid helpers newuidmap and
newgidmap (package uidmap), which check /etc/subuid and /etc/subgid, as runc and crun do.
"""

from __future__ import annotations

import os
import subprocess

from .errors import RuntimeFailure

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _map_text(entries: list[dict[str, int]]) -> bytes:
    return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in entries).encode()


def _only_own_id(entries: list[dict[str, int]], own: int) -> bool:
    return len(entries) == 1 and entries[0]["hostID"] == own and entries[0]["size"] == 1


def write_id_maps(pid: int, config: dict[str, Any]) -> None:
    linux = config.get("linux") or {}
    uid_maps, gid_maps = linux.get("uidMappings") or [], linux.get("gidMappings") or []
    if os.geteuid() == 0:
        _write(pid, "gid_map", gid_maps)
        _write(pid, "uid_map", uid_maps)
        return
    if _only_own_id(gid_maps, os.getegid()) and _only_own_id(uid_maps, os.geteuid()):
        _write(pid, "setgroups", None)
        _write(pid, "gid_map", gid_maps)
        _write(pid, "uid_map", uid_maps)
        return
    _helper("newgidmap", pid, gid_maps)
    _helper("newuidmap", pid, uid_maps)


def _write(pid: int, name: str, entries: list[dict[str, int]] | None) -> None:
    if entries == []:
        return
    data = b"deny" if entries is None else _map_text(entries)
    try:
        with open(f"/proc/{pid}/{name}", "wb") as f:
            f.write(data)
    except OSError as e:
        raise RuntimeFailure(f"cannot write /proc/{pid}/{name}: {e.strerror.lower()}") from None


def _helper(tool: str, pid: int, entries: list[dict[str, int]]) -> None:
    if not entries:
        return
    args = [tool, str(pid)]
    for m in entries:
        args += [str(m["containerID"]), str(m["hostID"]), str(m["size"])]
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise RuntimeFailure(f"{tool} not found: install the uidmap package to map more than your own id") from None
    if proc.returncode != 0:
        detail = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        raise RuntimeFailure(f"{tool}: {detail} (check /etc/sub{tool[3:6]})")
