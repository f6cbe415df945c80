"""process.rlimits, set in the init before it changes to the container's user."""

from __future__ import annotations

import resource

from ..errors import RuntimeFailure

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _value(v: int) -> int:
    return resource.RLIM_INFINITY if v >= 2**63 else v


def apply(rlimits: list[dict[str, Any]] | None) -> None:
    for rl in rlimits or []:
        kind = getattr(resource, rl["type"])
        try:
            resource.setrlimit(kind, (_value(rl["soft"]), _value(rl["hard"])))
        except (ValueError, OSError) as e:
            cur = resource.getrlimit(kind)
            # "operation not permitted" is the phrase podman maps to exit code 126, as with runc
            why = ("operation not permitted (raising a hard limit needs CAP_SYS_RESOURCE)"
                   if rl["hard"] > cur[1] else str(e))
            raise RuntimeFailure(f"cannot set {rl['type']} to soft={rl['soft']} hard={rl['hard']} "
                                 f"(current hard limit {cur[1]}): {why}") from None
