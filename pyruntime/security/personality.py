"""linux.personality: the execution domain (LINUX, LINUX32); the spec defines no flags yet."""

from __future__ import annotations

import os

from .. import native
from .._native import lib
from ..errors import ConfigError, RuntimeFailure

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DOMAINS = {"LINUX": lib.PER_LINUX, "LINUX32": lib.PER_LINUX32}


def check(p: dict[str, Any] | None, file: str, path: str) -> None:
    if p is None:
        return
    if p["domain"] not in DOMAINS:
        raise ConfigError(file, f"{path}.domain", f"unknown personality domain {p['domain']!r} "
                          "(LINUX or LINUX32)")
    if p.get("flags"):
        raise ConfigError(file, f"{path}.flags", f"unsupported personality flag {p['flags'][0]!r} "
                          "(the spec defines none)")


def apply(p: dict[str, Any] | None) -> None:
    """personality(2); kept across execve (uname -m then says i686 for LINUX32 on x86_64)."""
    if p is None:
        return
    try:
        native.personality(DOMAINS[p["domain"]])
    except OSError as e:
        raise RuntimeFailure(f"cannot set linux.personality {p['domain']}: {os.strerror(e.errno).lower()}") from None
