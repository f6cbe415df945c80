"""`list`: every container under --root, as runc prints them (table or JSON)."""

from __future__ import annotations

import os

from . import fastjson, state
from .errors import NotFound, RuntimeFailure

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def collect(root: str) -> list[dict[str, Any]]:
    out = []
    for cid in state.list_ids(root):
        try:
            c = state.load(root, cid, lock=False)
        except NotFound:
            continue  # deleted while we listed
        except RuntimeFailure:
            continue  # unreadable (not ours to show); `state ID` reports why
        try:
            status = c.status()  # a half-made container reads "creating" or "stopped", never fails
            out.append({"ociVersion": "1.3.0", "id": cid, "pid": c.pid if status != "stopped" else 0,
                        "status": status, "bundle": c.bundle, "rootfs": _rootfs(c), "created": c.created,
                        "annotations": c.annotations, "owner": c.owner})
        finally:
            c.close()
    return out


def _rootfs(c: state.Container) -> str:
    path = (c.config.get("root") or {}).get("path", "")
    return os.path.join(c.bundle, path) if path else ""


def render(root: str, fmt: str, quiet: bool) -> str:
    items = collect(root)
    if quiet:
        return "".join(f"{i['id']}\n" for i in items)
    if fmt == "json":
        return fastjson.dumps(items) + "\n"
    rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
    rows += [(i["id"], str(i["pid"]), i["status"], i["bundle"], i["created"], i["owner"]) for i in items]
    widths = [max(len(r[k]) for r in rows) for k in range(6)]
    return "".join("   ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() + "\n" for r in rows)
