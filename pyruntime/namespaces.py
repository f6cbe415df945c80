"""User namespace id maps, written by the runtime while the child waits."""

from __future__ import annotations

from typing import Any

from .errors import RuntimeFailure


def _map_text(entries: list[dict[str, int]]) -> bytes:
    return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in entries).encode()


def write_id_maps(pid: int, config: dict[str, Any]) -> None:
    linux = config.get("linux") or {}
    try:
        if linux.get("gidMappings"):
            with open(f"/proc/{pid}/gid_map", "wb") as f:
                f.write(_map_text(linux["gidMappings"]))
        if linux.get("uidMappings"):
            with open(f"/proc/{pid}/uid_map", "wb") as f:
                f.write(_map_text(linux["uidMappings"]))
    except OSError as e:
        raise RuntimeFailure(f"cannot write the user namespace id maps of {pid}: {e.strerror.lower()}") from None
