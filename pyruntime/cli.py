"""The command line: runc's global flags and one thin function per command.

Commands import what they need when they run, so `state` or `kill` never pay for what `create` uses.
"""

from __future__ import annotations

import json
import os
import sys

import click

from . import __version__, log

CONTEXT = {"help_option_names": ["-h", "--help"]}


class Globals:
    def __init__(self, root: str, systemd_cgroup: bool, debug: bool, criu: str = "criu") -> None:
        self.root, self.systemd_cgroup, self.debug, self.criu = root, systemd_cgroup, debug, criu


class _Group(click.Group):
    """runc's words for an unknown command (`runc foo`, `runc foo -h`): "No help topic for 'foo'"."""

    def resolve_command(self, ctx: click.Context, args: list[str]):  # noqa: ANN201
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            raise click.UsageError(f"No help topic for '{args[0]}'", ctx)
        return super().resolve_command(ctx, args)


@click.group(cls=_Group, context_settings=CONTEXT)
@click.version_option(__version__, "-v", "--version", message="pyruntime version %(version)s\nspec: 1.3.0")
@click.option("--root", default=None, help="State directory (default /run/pyruntime; "
              "$XDG_RUNTIME_DIR/pyruntime for non-root).")
@click.option("--log", "log_path", default=None, help="Log file (conmon passes one).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text")
@click.option("--debug", is_flag=True, help="Debug logging and tracebacks.")
@click.option("--systemd-cgroup", is_flag=True, help="Use systemd for cgroups (not supported here).")
@click.option("--rootless", type=click.Choice(["true", "false", "auto"]), default="auto")
@click.option("--criu", default="criu", help="The CRIU binary for checkpoint and restore.")
@click.pass_context
def main(ctx: click.Context, root: str | None, log_path: str | None, log_format: str, debug: bool,
         systemd_cgroup: bool, rootless: str, criu: str) -> None:
    """pyruntime: an OCI container runtime (runtime-spec 1.3), a drop-in for runc."""
    from .state import default_root

    log.configure(log_path, log_format, debug)
    if rootless == "true" and os.geteuid() == 0:
        log.warning("--rootless=true as root: running as root anyway")
    ctx.obj = Globals(os.path.abspath(root) if root else default_root(), systemd_cgroup, debug, criu)


def _create_options(f):  # noqa: ANN001, ANN202 - click decorator stack shared by create and run
    for deco in reversed([
        click.option("--bundle", "-b", default=".", help="Path to the bundle (default: cwd)."),
        click.option("--pid-file", default=None, help="Write the init's pid here."),
        click.option("--console-socket", default=None, help="Unix socket that receives the pty master."),
        click.option("--pidfd-socket", default=None, help="Unix socket that receives a pidfd of the init."),
        click.option("--no-pivot", is_flag=True, help="Use MS_MOVE + chroot instead of pivot_root."),
        click.option("--no-new-keyring", is_flag=True, help="Keep the caller's session keyring."),
        click.option("--preserve-fds", type=click.IntRange(0, 100000), default=0,
                     help="Pass this many extra fds (from 3) to the container."),
    ]):
        f = deco(f)
    return f


def _opts(g: Globals, bundle: str, pid_file, console_socket, pidfd_socket, no_pivot, no_new_keyring, preserve_fds):  # noqa: ANN001, ANN202, E501
    from .container import CreateOptions

    return CreateOptions(bundle=bundle, pid_file=pid_file, console_socket=console_socket, no_pivot=no_pivot,
                         no_new_keyring=no_new_keyring, preserve_fds=preserve_fds, systemd_cgroup=g.systemd_cgroup,
                         pidfd_socket=pidfd_socket)


@main.command(context_settings=CONTEXT)
@_create_options
@click.argument("container_id")
@click.pass_obj
def create(g: Globals, container_id: str, **kw) -> None:  # noqa: ANN003
    """Create a container; its process waits for `start`."""
    from . import container

    container.create(g.root, container_id, _opts(g, **kw)).close()


@main.command(context_settings=CONTEXT)
@click.argument("container_id")
@click.pass_obj
def start(g: Globals, container_id: str) -> None:
    """Run the user's process of a created container."""
    from . import container, state

    c = state.load(g.root, container_id)
    try:
        container.start(c)
    finally:
        c.close()


@main.command(context_settings=CONTEXT)
@_create_options
@click.option("--detach", "-d", is_flag=True, help="Do not wait for the container's process.")
@click.option("--keep", is_flag=True, help="Do not delete the container after it exits.")
@click.option("--no-subreaper", is_flag=True, help="Accepted for runc compatibility: the runtime must be a "
              "subreaper to wait for an init its intermediate process forked.")
@click.argument("container_id")
@click.pass_obj
def run(g: Globals, container_id: str, detach: bool, keep: bool, no_subreaper: bool, **kw) -> None:  # noqa: ANN003
    """Create and start a container; in the foreground, exit with its exit code."""
    from . import runner

    sys.exit(runner.run(g, container_id, _opts(g, **kw), detach, keep))


@main.command(context_settings=CONTEXT)
@click.argument("container_id")
@click.pass_obj
def state(g: Globals, container_id: str) -> None:
    """Print the container's state (runc's: the runtime-spec state plus rootfs, created, owner)."""
    from . import listing
    from . import state as state_mod

    click.echo(listing.state_json(state_mod.load(g.root, container_id, lock=False)))


@main.command(context_settings=CONTEXT)
@click.option("--all", "-a", "all_processes", is_flag=True, help="Signal every process in the container.")
@click.argument("container_id")
@click.argument("sig", default="SIGTERM")
@click.pass_obj
def kill(g: Globals, container_id: str, sig: str, all_processes: bool) -> None:
    """Send a signal (name or number, default SIGTERM) to the container's init."""
    from . import container, state

    number = container.signal_number(sig)
    c = state.load(g.root, container_id, shared=True)
    try:
        container.kill(c, number, all_processes)
    finally:
        c.close()


@main.command(context_settings=CONTEXT)
@click.option("--force", "-f", is_flag=True, help="Kill the container if it is running.")
@click.argument("container_id")
@click.pass_obj
def delete(g: Globals, container_id: str, force: bool) -> None:
    """Delete a stopped container (or any, with --force)."""
    from . import container, state
    from .errors import NotFound

    try:
        c = state.load(g.root, container_id)
    except NotFound:
        if force:
            return  # runc: deleting a container that is gone with --force succeeds
        raise
    container.delete(c, force)


@main.command("exec", context_settings={**CONTEXT, "allow_interspersed_args": False})
@click.option("--process", "-p", "process_file", default=None, help="A runtime-spec process JSON file.")
@click.option("--tty", "-t", is_flag=True, default=None, help="Allocate a pseudo-TTY.")
@click.option("--detach", "-d", is_flag=True, help="Do not wait for the process.")
@click.option("--pid-file", default=None, help="Write the process's pid here.")
@click.option("--console-socket", default=None, help="Unix socket that receives the pty master.")
@click.option("--pidfd-socket", default=None, help="Unix socket that receives a pidfd of the process.")
@click.option("--cwd", default=None, help="Working directory in the container.")
@click.option("--env", "-e", multiple=True, help="KEY=value (repeatable).")
@click.option("--user", "-u", default=None, help="uid[:gid], numbers only.")
@click.option("--additional-gids", "-g", multiple=True, help="Supplementary gid (repeatable).")
@click.option("--cap", "-c", "caps", multiple=True, help="Add a capability (repeatable).")
@click.option("--no-new-privs", is_flag=True, help="Set no_new_privs for the process.")
@click.option("--preserve-fds", type=click.IntRange(0, 100000), default=0,
              help="Pass this many extra fds (from 3) to the process.")
@click.option("--cgroup", multiple=True, help="Sub-cgroup to run in: path or controller[,controller]:path.")
@click.option("--process-label", default=None, help="SELinux label of the process.")
@click.option("--apparmor", default=None, help="AppArmor profile of the process.")
@click.option("--ignore-paused", is_flag=True, help="Allow exec in a paused container.")
@click.argument("container_id")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def exec_(g: Globals, container_id: str, args: tuple[str, ...], env: tuple[str, ...],
          additional_gids: tuple[str, ...], caps: tuple[str, ...], cgroup: tuple[str, ...], **kw) -> None:  # noqa: ANN003
    """Run a process in a running container; in the foreground, exit with its exit code."""
    from . import exec_ as exec_mod

    opts = exec_mod.ExecOptions(args=list(args), env=list(env), additional_gids=list(additional_gids),
                                caps=list(caps), cgroup=list(cgroup), **kw)
    sys.exit(exec_mod.exec_(g.root, container_id, opts))


@main.command("list", context_settings=CONTEXT)
@click.option("--format", "-f", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option("--quiet", "-q", is_flag=True, help="Only IDs.")
@click.pass_obj
def list_(g: Globals, fmt: str, quiet: bool) -> None:
    """List containers."""
    from . import listing

    click.echo(listing.render(g.root, fmt, quiet), nl=False)


@main.command(context_settings=CONTEXT)
@click.option("--bundle", "-b", default=".", help="Where to write config.json.")
@click.option("--rootless", is_flag=True, help="A config for an unprivileged user.")
@click.pass_obj
def spec(g: Globals, bundle: str, rootless: bool) -> None:
    """Write a default config.json (like runc's)."""
    from .errors import RuntimeFailure
    from .spec import default_spec

    path = os.path.join(bundle, "config.json")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except FileExistsError:
        raise RuntimeFailure(f"{path} already exists") from None
    except OSError as e:
        raise RuntimeFailure(f"cannot write {path}: {e.strerror.lower()}") from None
    with os.fdopen(fd, "w") as f:
        json.dump(default_spec(rootless), f, indent=2)
        f.write("\n")


@main.command(context_settings=CONTEXT)
def features() -> None:
    """Print the runtime-spec features document."""
    from .features import features as doc

    click.echo(json.dumps(doc(), indent=2))


def _criu_options(f):  # noqa: ANN001, ANN202 - flags shared by checkpoint and restore (runc's)
    for deco in reversed([
        click.option("--image-path", default=None, help="Where CRIU images go (default: ./checkpoint)."),
        click.option("--work-path", default=None, help="CRIU's work and log directory."),
        click.option("--tcp-established", is_flag=True, help="Allow open TCP connections."),
        click.option("--file-locks", is_flag=True, help="Handle file locks."),
        click.option("--ext-unix-sk", is_flag=True, help="Allow external unix sockets."),
        click.option("--shell-job", is_flag=True, help="Allow shell jobs."),
        click.option("--manage-cgroups-mode", default=None, help="CRIU's cgroups mode: soft, full, strict, ignore."),
        click.option("--auto-dedup", is_flag=True, help="Deduplicate memory images."),
        click.option("--empty-ns", multiple=True, help="Namespace to create but not restore (not supported)."),
        click.option("--lazy-pages", is_flag=True, help="Restore memory pages lazily (not supported)."),
    ]):
        f = deco(f)
    return f


@main.command(context_settings=CONTEXT)
@_criu_options
@click.option("--leave-running", is_flag=True, help="Keep the container running after the checkpoint.")
@click.option("--parent-path", default=None, help="Images of a previous pre-dump.")
@click.option("--pre-dump", is_flag=True, help="Dump the memory only and leave the container running.")
@click.option("--status-fd", type=int, default=-1, help="Lazy pages' ready fd (not supported).")
@click.option("--page-server", default=None, help="ADDRESS:PORT of a page server (not supported).")
@click.argument("container_id")
@click.pass_obj
def checkpoint(g: Globals, container_id: str, image_path: str | None, leave_running: bool, **kw) -> None:  # noqa: ANN003
    """Checkpoint a running container with CRIU."""
    from . import checkpoint as cp
    from . import state as state_mod

    c = state_mod.load(g.root, container_id)
    try:
        cp.checkpoint(c, cp.CriuOptions(image_path=os.path.abspath(image_path or "checkpoint"),
                                        leave_running=leave_running, **kw), criu=g.criu)
    finally:
        c.close()


@main.command(context_settings=CONTEXT)
@_criu_options
@click.option("--bundle", "-b", default=".", help="Path to the bundle.")
@click.option("--detach", "-d", is_flag=True)
@click.option("--pid-file", default=None)
@click.option("--console-socket", default=None)
@click.option("--no-subreaper", is_flag=True)
@click.option("--no-pivot", is_flag=True)
@click.option("--lsm-profile", default=None)
@click.option("--lsm-mount-context", default=None)
@click.argument("container_id")
@click.pass_obj
def restore(g: Globals, container_id: str, image_path: str | None, bundle: str, detach: bool,
            pid_file: str | None, **kw) -> None:  # noqa: ANN003
    """Restore a container from a CRIU checkpoint."""
    from . import checkpoint as cp
    from .errors import RuntimeFailure

    cp.criu_usable(g.criu)  # before anything is created: a host without CRIU leaves nothing behind
    raise RuntimeFailure("restore is not implemented yet for hosts where CRIU works (see README)")


def entry() -> None:
    """Console-script entry: one clear line and exit 1 on any failure; tracebacks only with --debug."""
    from .errors import RuntimeFailure, os_failure

    debug = "--debug" in sys.argv[1:3] or "--debug" in sys.argv
    try:
        main.main(standalone_mode=False, prog_name="pyruntime")
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.UsageError as e:
        log.error(e.format_message().replace("\n", " "))
        sys.exit(1)
    except RuntimeFailure as e:
        log.error(str(e))
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except OSError as e:  # a step without its own message: still one line, with the path and cause
        if debug:
            raise
        log.error(str(os_failure(_command(), e)))
        sys.exit(1)
    except Exception as e:  # noqa: BLE001
        if debug:
            raise
        log.error(f"internal error: {type(e).__name__}: {e}")
        sys.exit(1)


def _command() -> str:
    """The command being run (for messages): the first argument that is a command name."""
    return next((a for a in sys.argv[1:] if a in main.commands), "pyruntime")


from . import cgroup_cli  # noqa: E402, F401 - registers pause, resume, update, events, ps
