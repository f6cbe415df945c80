"""config.json `hooks`: run each with the container state on stdin, its args, env and timeout.

Runs in the runtime's namespaces (prestart, createRuntime, poststart, poststop) or, called from the
container's init before pivot_root, in the container's (createContainer, startContainer). It uses
only modules every command has already imported, so it is safe to call after the import barrier.
"""

from __future__ import annotations

import _signal  # the C module: signal.py imports enum (~4 ms)
import os
import select
import time
from _signal import SIGHUP, SIGINT, SIGKILL, SIGPIPE, SIGTERM  # signal.py imports enum (~4 ms)

from . import fastjson
from .errors import RuntimeFailure

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

OUTPUT_LIMIT = 64 * 1024


def run_all(kind: str, hooks: list[dict[str, Any]] | None, state: dict[str, Any]) -> None:
    """Run hooks in order; the first failure raises RuntimeFailure naming the hook."""
    if not hooks:
        return
    data = fastjson.dumps(state).encode()
    for i, hook in enumerate(hooks):
        run_one(kind, i, hook, data)


def run_one(kind: str, index: int, hook: dict[str, Any], state: bytes) -> None:
    path = hook["path"]
    args = hook.get("args") or [path]
    # No `env`: the runtime's environment, as runc and crun (Go's exec.Cmd with a nil Env); `[]`: none.
    env = os.environ if hook.get("env") is None else \
        dict(item.split("=", 1) for item in hook["env"] if "=" in item)
    timeout = hook.get("timeout")
    stdin_r, stdin_w = os.pipe2(os.O_CLOEXEC)
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    name = f"{kind} hook #{index} ({path})"
    try:
        pid = os.posix_spawn(path, args, env, file_actions=[
            (os.POSIX_SPAWN_DUP2, stdin_r, 0), (os.POSIX_SPAWN_DUP2, out_w, 1), (os.POSIX_SPAWN_DUP2, out_w, 2)],
            setsigdef=(SIGPIPE, SIGTERM, SIGINT, SIGHUP))
    except OSError as e:
        raise RuntimeFailure(f"{name}: {e.strerror.lower()}") from None
    finally:
        os.close(stdin_r)
        os.close(out_w)
    try:
        try:
            os.write(stdin_w, state)  # a hook may ignore its stdin: EPIPE is fine
        except (BrokenPipeError, BlockingIOError):
            pass
        os.close(stdin_w)
        stdin_w = -1
        status, output = _wait(pid, out_r, timeout)
    finally:
        if stdin_w >= 0:
            os.close(stdin_w)
        os.close(out_r)
    if status is None:
        raise RuntimeFailure(f"{name}: error running hook: timed out after {timeout}s")
    if status != 0:
        tail = output.decode(errors="replace").strip().splitlines()
        detail = f": {tail[-1]}" if tail else ""
        # runc's wording ("error running hook", "signal: bad system call"), which callers match
        why = f"exit status {os.waitstatus_to_exitcode(status)}" if os.WIFEXITED(status) else \
            f"signal: {(_signal.strsignal(os.WTERMSIG(status)) or str(os.WTERMSIG(status))).lower()}"
        raise RuntimeFailure(f"{name}: error running hook: {why}{detail}")


def _wait(pid: int, out_fd: int, timeout: int | None) -> tuple[int | None, bytes]:
    """Collect output until the hook exits; kill it at the timeout (status None)."""
    pidfd = os.pidfd_open(pid)
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    poller.register(out_fd, select.POLLIN)
    deadline = None if timeout is None else time.monotonic() + timeout
    output = bytearray()
    try:
        while True:
            wait_ms = None if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            events = poller.poll(wait_ms)
            if not events:
                os.kill(pid, SIGKILL)
                os.waitpid(pid, 0)
                return None, bytes(output)
            for fd, _ev in events:
                if fd == out_fd:
                    chunk = os.read(out_fd, 65536)
                    if not chunk:
                        poller.unregister(out_fd)
                    elif len(output) < OUTPUT_LIMIT:
                        output += chunk
                else:
                    _, status = os.waitpid(pid, 0)
                    return status, bytes(output) + _drain(out_fd, OUTPUT_LIMIT - len(output))
    finally:
        os.close(pidfd)


def _drain(fd: int, limit: int) -> bytes:
    """What the hook wrote just before it exited (its exit may be seen before its output)."""
    os.set_blocking(fd, False)
    data = bytearray()
    try:
        while len(data) < limit and (chunk := os.read(fd, 65536)):
            data += chunk
    except BlockingIOError:
        pass  # a child of the hook still holds the pipe open
    return bytes(data[:max(limit, 0)])
