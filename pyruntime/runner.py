"""`run`: create + start, then (in the foreground) forward signals, wait, delete, exit with the code."""

from __future__ import annotations

import os

import _prctl  # the C module: prctl.py costs ~0.7 ms to import (it generates its wrappers)

from . import container, forwarding, state
from .errors import RuntimeFailure
from .proc import wait_exit


def run(root: str, container_id: str, opts: container.CreateOptions, detach: bool, keep: bool) -> int:
    if not detach:
        # The init is reparented to us when the intermediate exits, so we can wait for it.
        _prctl.prctl(_prctl.PR_SET_CHILD_SUBREAPER, 1)
    terminal_proxy = None
    if not detach and opts.console_socket is None and _wants_terminal(opts.bundle):
        from . import console

        terminal_proxy = console.ForegroundTerminal()
        opts.console_socket = terminal_proxy.socket_path
    try:
        c = container.create(root, container_id, opts)
    except BaseException:
        if terminal_proxy:
            terminal_proxy.close()  # its private socket directory goes too
        raise
    try:
        if not detach:
            # Before start: a signal that reaches `run` once the program runs must be forwarded, never
            # kill `run` and leave the container behind (until start, the waiting init ignores it)
            forwarding.forward_to(c.pid)
        if terminal_proxy:
            terminal_proxy.receive_master()
        container.start(c)
    except BaseException:
        container.delete(c, force=True)
        if terminal_proxy:
            terminal_proxy.close()
        raise
    finally:
        c.close()
    if detach:
        return 0
    pid = c.pid
    try:
        code = terminal_proxy.proxy_until_exit(pid) if terminal_proxy else wait_exit(pid)
    finally:
        if terminal_proxy:
            terminal_proxy.close()
    if not keep:
        try:
            container.delete(state.load(root, container_id), force=True)
        except RuntimeFailure:
            pass
    return code


def _wants_terminal(bundle: str) -> bool:
    from . import spec

    try:
        config = spec.load_json(os.path.join(bundle, "config.json"))
        return bool(config.get("process", {}).get("terminal"))
    except Exception:  # noqa: BLE001 - create reports config errors properly
        return False
