"""`list` and `state` output as runc prints them: its containerState object, table or JSON."""

from __future__ import annotations

import os

from . import SPEC_VERSION, fastjson, state
from .errors import NotFound, RuntimeFailure

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def container_state(c: state.Container) -> dict[str, Any]:
    """runc's containerState: the runtime-spec state (ociVersion, id, pid, status, bundle,
    annotations) plus rootfs, created and owner, in runc's key order; annotations only when set."""
    status = c.status()  # a half-made container reads "creating" or "stopped", never fails
    out: dict[str, Any] = {
        "ociVersion": c.config.get("ociVersion") or SPEC_VERSION, "id": c.id,
        "pid": c.pid if status != "stopped" else 0, "status": status, "bundle": c.bundle,
        "rootfs": _rootfs(c), "created": rfc3339nano(c.created)}
    if c.annotations:
        out["annotations"] = dict(sorted(c.annotations.items()))  # Go writes a map's keys sorted
    out["owner"] = _owner(c)
    return out


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
            out.append(container_state(c))
        finally:
            c.close()
    return out


def _rootfs(c: state.Container) -> str:
    path = (c.config.get("root") or {}).get("path", "")
    return os.path.join(c.bundle, path) if path else ""


def _owner(c: state.Container) -> str:
    """The user owning the state directory, by name ("#uid" when it has none), as runc shows it."""
    try:
        uid = os.fstat(c.dir_fd).st_uid
    except OSError:
        return c.owner
    import pwd  # a C module: cheap, and only `list`/`state` need it

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"#{uid}"


def rfc3339nano(stamp: str) -> str:
    """Go's time.RFC3339Nano: the fraction of a second without its trailing zeros."""
    head, dot, frac = stamp.rstrip("Z").partition(".")
    if not stamp.endswith("Z") or not dot:
        return stamp
    frac = frac.rstrip("0")
    return f"{head}.{frac}Z" if frac else f"{head}Z"


def state_json(c: state.Container) -> str:
    """`state ID`: runc's containerState, indented as runc's json.MarshalIndent does."""
    return fastjson.dumps_indented(container_state(c))


def render(root: str, fmt: str, quiet: bool) -> str:
    items = collect(root)
    if quiet:
        return "".join(f"{i['id']}\n" for i in items)
    if fmt == "json":  # Go's encoder: compact, and `null` for no containers at all
        return fastjson.dumps(items or None, compact=True) + "\n"
    rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
    rows += [(i["id"], str(i["pid"]), i["status"], i["bundle"], i["created"], i["owner"]) for i in items]
    return tabwriter(rows)


def tabwriter(rows: list[tuple[str, ...]], minwidth: int = 12, padding: int = 3) -> str:
    """Go's text/tabwriter as runc configures it (minwidth 12, padding 3, spaces): every column but
    the last is as wide as its widest cell plus the padding, at least minwidth."""
    widths = [max(minwidth, max(len(r[k]) for r in rows) + padding) for k in range(len(rows[0]) - 1)]
    return "".join("".join(v.ljust(w) for v, w in zip(r, widths, strict=False)) + r[-1] + "\n" for r in rows)
