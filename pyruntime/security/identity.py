"""process.user and capabilities: the change from the runtime's root to the container's user."""

from __future__ import annotations

import os

import _prctl  # the C module: prctl.py costs ~0.7 ms to import (it generates its wrappers)

from ..errors import RuntimeFailure
from . import caps

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def switch_user(user: dict[str, Any], cap_sets: dict[str, set[int]] | None, setgroups_allowed: bool) -> None:
    """Drop the bounding set, change uid/gid/groups keeping capabilities, then set the other four sets."""
    uid, gid = user.get("uid", 0), user.get("gid", 0)
    if cap_sets is not None:
        caps.drop_bounding(cap_sets)
    _prctl.prctl(_prctl.PR_SET_KEEPCAPS, 1)
    try:
        if setgroups_allowed:
            os.setgroups(user.get("additionalGids") or [])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError as e:
        raise RuntimeFailure(f"cannot change to uid {uid} gid {gid}: {e.strerror.lower()}") from None
    if cap_sets is not None:
        caps.apply(cap_sets)
    _prctl.prctl(_prctl.PR_SET_KEEPCAPS, 0)
    # The uid change reset "dumpable" to fs.suid_dumpable (1 on some hosts): host Python still runs
    # here until the exec, and the container's processes now share our uid.
    _prctl.prctl(_prctl.PR_SET_DUMPABLE, 0)
