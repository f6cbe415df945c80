"""One plain function per command: what both command lines call (cli.py through click, fastcli.py
through the table generated from click's definitions).

Each takes the Globals made by make_globals and the parameter values by the names click gives them
(so cli.py's bodies are `commands.<name>(g, **kw)` and a flag added to a decorator arrives here
under its own name), and returns the exit code (None: 0). Imports are inside the functions: a
command pays only for what it uses. Nothing here imports click (see README, "Performance").
"""

from __future__ import annotations

import os
import sys

from . import log

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from .state import Container

# click's context settings of every command (cli.py and cgroup_cli.py)
CONTEXT = {"help_option_names": ["-h", "--help"]}


class Globals:
    def __init__(self, root: str, systemd_cgroup: bool, debug: bool, criu: str = "criu") -> None:
        self.root, self.systemd_cgroup, self.debug, self.criu = root, systemd_cgroup, debug, criu


def make_globals(root: str | None, log_path: str | None, log_format: str, debug: bool, systemd_cgroup: bool,
                 rootless: str, criu: str) -> Globals:
    """runc's global flags: the log is configured first, so later failures reach it."""
    from .state import default_root

    log.configure(log_path, log_format, debug)
    if rootless == "true" and os.geteuid() == 0:
        log.warning("--rootless=true as root: running as root anyway")
    return Globals(os.path.abspath(root) if root else default_root(), systemd_cgroup, debug, criu)


def guarded(call: Callable[[], int | None], debug: bool, command: str = "pyruntime") -> int:
    """runc's error contract: a failure is one line "pyruntime: ..." on stderr (and in --log) and exit
    status 1 (255 for exec's own failures, as runc); a traceback only with --debug; an OSError
    without a message of its own still names the command, the path and the cause; anything else
    unexpected is an "internal error"."""
    from .errors import RuntimeFailure, os_failure

    try:
        code = call()
        return code if isinstance(code, int) else 0
    except RuntimeFailure as e:
        log.error(str(e))
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except OSError as e:
        if debug:
            raise
        log.error(str(os_failure(command, e)))
        return 1
    except Exception as e:  # noqa: BLE001
        if debug:
            raise
        log.error(f"internal error: {type(e).__name__}: {e}")
        return 1


def _out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


# -- lifecycle ------------------------------------------------------------------------------------------
def _create_options(g: Globals, bundle: str, pid_file: str | None, console_socket: str | None,
                    pidfd_socket: str | None, no_pivot: bool, no_new_keyring: bool,
                    preserve_fds: int):  # noqa: ANN202 - container.CreateOptions
    from .container import CreateOptions

    return CreateOptions(bundle=bundle, pid_file=pid_file, console_socket=console_socket, no_pivot=no_pivot,
                         no_new_keyring=no_new_keyring, preserve_fds=preserve_fds, systemd_cgroup=g.systemd_cgroup,
                         pidfd_socket=pidfd_socket)


def create(g: Globals, container_id: str, **kw: object) -> None:
    from . import container

    container.create(g.root, container_id, _create_options(g, **kw)).close()  # type: ignore[arg-type]


def start(g: Globals, container_id: str) -> None:
    from . import container

    container.start_by_id(g.root, container_id)


def run(g: Globals, container_id: str, detach: bool, keep: bool, no_subreaper: bool = False, **kw: object) -> int:
    """--no-subreaper is accepted (runc's flag) and has no effect: `run` must be a subreaper to wait for
    an init that its intermediate process forked."""
    from . import runner

    return runner.run(g.root, container_id, _create_options(g, **kw), detach, keep)  # type: ignore[arg-type]


def state(g: Globals, container_id: str) -> None:
    """runc's containerState: the runtime-spec state plus rootfs, created and owner."""
    from . import listing
    from . import state as state_mod

    _out(listing.state_json(state_mod.load(g.root, container_id, lock=False)) + "\n")


def kill(g: Globals, container_id: str, sig: str, all_processes: bool) -> None:
    from . import container

    container.kill_by_id(g.root, container_id, container.signal_number(sig), all_processes)


def delete(g: Globals, container_id: str, force: bool) -> None:
    from . import container

    container.delete_by_id(g.root, container_id, force)


def exec_(g: Globals, container_id: str, args: tuple[str, ...], env: tuple[str, ...],
          additional_gids: tuple[str, ...], caps: tuple[str, ...], cgroup: tuple[str, ...], **kw: object) -> int:
    from . import exec_ as exec_mod

    opts = exec_mod.ExecOptions(args=list(args), env=list(env), additional_gids=list(additional_gids),
                                caps=list(caps), cgroup=list(cgroup), **kw)
    return exec_mod.exec_(g.root, container_id, opts)


def list_(g: Globals, fmt: str, quiet: bool) -> None:
    from . import listing

    _out(listing.render(g.root, fmt, quiet))


def spec(g: Globals, bundle: str, rootless: bool) -> None:
    from . import spec as spec_mod

    spec_mod.write_config(bundle, spec_mod.default_spec(rootless))


def features(g: Globals) -> None:
    from .fastjson import dumps_indented
    from .features import features as doc

    _out(dumps_indented(doc()) + "\n")


def checkpoint(g: Globals, container_id: str, image_path: str | None, **kw: object) -> None:
    from . import checkpoint as cp
    from . import state as state_mod

    c = state_mod.load(g.root, container_id)
    try:
        cp.checkpoint(c, cp.CriuOptions(image_path=os.path.abspath(image_path or "checkpoint"), **kw), criu=g.criu)
    finally:
        c.close()


def restore(g: Globals, container_id: str, image_path: str | None, bundle: str, detach: bool, pid_file: str | None,
            console_socket: str | None, no_subreaper: bool, no_pivot: bool, **kw: object) -> int:
    from . import checkpoint as cp
    from . import restore as restore_mod

    ropts = restore_mod.RestoreOptions(bundle=bundle, detach=detach, pid_file=pid_file, console_socket=console_socket,
                                       no_pivot=no_pivot, no_subreaper=no_subreaper, systemd_cgroup=g.systemd_cgroup)
    opts = cp.CriuOptions(image_path=os.path.abspath(image_path or "checkpoint"), **kw)
    return restore_mod.restore(g.root, container_id, opts, ropts, criu=g.criu)


# -- cgroup commands (the work is in cgroup_commands.py) ----------------------------------------------------
def _loaded(g: Globals, container_id: str, shared: bool = False) -> Container:
    from . import state

    return state.load(g.root, container_id, shared=shared)


def pause(g: Globals, container_id: str) -> None:
    from . import cgroup_commands

    c = _loaded(g, container_id)
    try:
        cgroup_commands.pause(c)
    finally:
        c.close()


def resume(g: Globals, container_id: str) -> None:
    from . import cgroup_commands

    c = _loaded(g, container_id)
    try:
        cgroup_commands.resume(c)
    finally:
        c.close()


def update(g: Globals, container_id: str, resources_file: str | None, l3_cache_schema: str | None,
           mem_bw_schema: str | None, **flags: str | None) -> None:
    from . import cgroup_commands

    cgroup_commands.refuse_rdt(l3_cache_schema, mem_bw_schema)
    resources, source = cgroup_commands.build_update(resources_file, flags)
    c = _loaded(g, container_id)
    try:
        cgroup_commands.update(c, resources, source)
    finally:
        c.close()


def events(g: Globals, container_id: str, interval: str, stats: bool) -> None:
    from . import cgroup_commands

    every = cgroup_commands.parse_interval(interval)
    c = _loaded(g, container_id, shared=True)
    try:
        cgroup_commands.events(c, every, stats)
    finally:
        c.close()


def ps(g: Globals, container_id: str, fmt: str, ps_args: tuple[str, ...]) -> None:
    from . import cgroup_commands

    c = _loaded(g, container_id, shared=True)
    try:
        _out(cgroup_commands.ps(c, fmt, list(ps_args)))
    finally:
        c.close()
