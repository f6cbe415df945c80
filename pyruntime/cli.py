"""The command line: click's definitions of runc's global flags and of every command, the one
definition of the command line (options, help, completion, error messages).

Each command body is one call to its function in commands.py. A well-formed call does not get here:
fastcli.py parses it with the table generated from these definitions (argtable.py) and calls the
same functions; this module (and click) serves everything else: --help, --version, mistakes.
"""

from __future__ import annotations

import sys

import click

from . import __version__, cgroup_cli, commands, log
from .commands import CONTEXT, Globals


class _Context(click.Context):
    """Help opens with a NAME section in runc's (urfave/cli's) layout, naming the runc command each
    one stands for, so that readers (and runc's help.bats) find "NAME:" and "runc <command>"."""

    def get_help(self) -> str:
        root = self.find_root().info_name or "pyruntime"
        sub = self.command_path[len(root):]
        if sub:
            what = f"{self.command.get_short_help_str(limit=120)} (runc{sub})"
        else:
            what = "an OCI runtime in Python, a drop-in for: runc - Open Container Initiative runtime"
        return f"NAME:\n   {self.command_path} - {what}\n\n" + super().get_help()


class _Group(click.Group):
    """runc's words for an unknown command (`runc foo`, `runc foo -h`): "No help topic for 'foo'"."""

    context_class = _Context

    def resolve_command(self, ctx: click.Context, args: list[str]):  # noqa: ANN201
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            raise click.UsageError(f"No help topic for '{args[0]}'", ctx)
        return super().resolve_command(ctx, args)


@click.group(cls=_Group, context_settings=CONTEXT)
@click.version_option(__version__, "-v", "--version", message="pyruntime version %(version)s (runc version 1.1.5 compatible)\n"
                      "commit: pyruntime-%(version)s\nspec: 1.3.0")
@click.option("--root", default=None, help="State directory (default /run/pyruntime; "
              "$XDG_RUNTIME_DIR/pyruntime for non-root).")
@click.option("--log", "log_path", default=None, help="Log file (conmon passes one).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text")
@click.option("--debug", is_flag=True, help="Debug logging and tracebacks.")
@click.option("--systemd-cgroup", is_flag=True, help="Use systemd for cgroups (not supported here).")
@click.option("--rootless", type=click.Choice(["true", "false", "auto"]), default="auto")
@click.option("--criu", default="criu", help="The CRIU binary for checkpoint and restore.")
@click.pass_context
def main(ctx: click.Context, **kw) -> None:  # noqa: ANN003
    """pyruntime: an OCI container runtime (runtime-spec 1.3), a drop-in for runc."""
    ctx.obj = commands.make_globals(**kw)


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


@main.command(context_settings=CONTEXT)
@_create_options
@click.argument("container_id")
@click.pass_obj
def create(g: Globals, **kw) -> int | None:  # noqa: ANN003
    """Create a container; its process waits for `start`."""
    return commands.create(g, **kw)


@main.command(context_settings=CONTEXT)
@click.argument("container_id")
@click.pass_obj
def start(g: Globals, **kw) -> int | None:  # noqa: ANN003
    """Run the user's process of a created container."""
    return commands.start(g, **kw)


@main.command(context_settings=CONTEXT)
@_create_options
@click.option("--detach", "-d", is_flag=True, help="Do not wait for the container's process.")
@click.option("--keep", is_flag=True, help="Do not delete the container after it exits.")
@click.option("--no-subreaper", is_flag=True, help="Accepted for runc compatibility: the runtime must be a "
              "subreaper to wait for an init its intermediate process forked.")
@click.argument("container_id")
@click.pass_obj
def run(g: Globals, **kw) -> int | None:  # noqa: ANN003
    """Create and start a container; in the foreground, exit with its exit code."""
    return commands.run(g, **kw)


@main.command(context_settings=CONTEXT)
@click.argument("container_id")
@click.pass_obj
def state(g: Globals, **kw) -> int | None:  # noqa: ANN003
    """Print the container's state (runtime-spec JSON)."""
    return commands.state(g, **kw)


@main.command(context_settings=CONTEXT)
@click.option("--all", "-a", "all_processes", is_flag=True, help="Signal every process in the container.")
@click.argument("container_id")
@click.argument("sig", default="SIGTERM")
@click.pass_obj
def kill(g: Globals, **kw) -> int | None:  # noqa: ANN003
    """Send a signal (name or number, default SIGTERM) to the container's init."""
    return commands.kill(g, **kw)


@main.command(context_settings=CONTEXT)
@click.option("--force", "-f", is_flag=True, help="Kill the container if it is running.")
@click.argument("container_id")
@click.pass_obj
def delete(g: Globals, **kw) -> int | None:  # noqa: ANN003
    """Delete a stopped container (or any, with --force)."""
    return commands.delete(g, **kw)


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
def exec_(g: Globals, **kw) -> int | None:  # noqa: ANN003
    """Run a process in a running container; in the foreground, exit with its exit code."""
    return commands.exec_(g, **kw)


@main.command("list", context_settings=CONTEXT)
@click.option("--format", "-f", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option("--quiet", "-q", is_flag=True, help="Only IDs.")
@click.pass_obj
def list_(g: Globals, **kw) -> int | None:  # noqa: ANN003
    """List containers."""
    return commands.list_(g, **kw)


@main.command(context_settings=CONTEXT)
@click.option("--bundle", "-b", default=".", help="Where to write config.json.")
@click.option("--rootless", is_flag=True, help="A config for an unprivileged user.")
@click.pass_obj
def spec(g: Globals, **kw) -> int | None:  # noqa: ANN003
    """Write a default config.json (like runc's)."""
    return commands.spec(g, **kw)


@main.command(context_settings=CONTEXT)
@click.pass_obj
def features(g: Globals, **kw) -> int | None:  # noqa: ANN003
    """Print the runtime-spec features document."""
    return commands.features(g, **kw)


def _criu_options(f):  # noqa: ANN001, ANN202 - flags shared by checkpoint and restore (runc's)
    for deco in reversed([
        click.option("--image-path", default=None, help="Where CRIU images go (default: ./checkpoint)."),
        click.option("--work-path", default=None, help="CRIU's work and log directory."),
        click.option("--tcp-established", is_flag=True, help="Allow open TCP connections."),
        click.option("--file-locks", is_flag=True, help="Handle file locks."),
        click.option("--ext-unix-sk", is_flag=True, help="Allow external unix sockets."),
        click.option("--shell-job", is_flag=True, help="Allow shell jobs."),
        click.option("--manage-cgroups-mode", default=None, help="CRIU's cgroups mode: soft, full or strict."),
        click.option("--auto-dedup", is_flag=True, help="Deduplicate memory images."),
        click.option("--empty-ns", multiple=True, help="Create a namespace, but do not restore its properties (network)."),
        click.option("--lazy-pages", is_flag=True, help="Use userfaultfd to lazily restore memory pages (CRIU lazy-pages)."),
    ]):
        f = deco(f)
    return f


@main.command(context_settings=CONTEXT)
@_criu_options
@click.option("--leave-running", is_flag=True, help="Keep the container running after the checkpoint.")
@click.option("--parent-path", default=None, help="Images of a previous pre-dump.")
@click.option("--pre-dump", is_flag=True, help="Dump the memory only and leave the container running.")
@click.option("--status-fd", type=int, default=-1, help="With --lazy-pages: fd to write \\0 to once the page server is ready.")
@click.option("--page-server", default=None, help="ADDRESS:PORT of a CRIU page server.")
@click.argument("container_id")
@click.pass_obj
def checkpoint(g: Globals, **kw) -> int | None:  # noqa: ANN003
    """Checkpoint a running container with CRIU."""
    return commands.checkpoint(g, **kw)


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
def restore(g: Globals, **kw) -> int | None:  # noqa: ANN003
    """Restore a container from a CRIU checkpoint."""
    return commands.restore(g, **kw)


def entry() -> int:
    """The click path of the console script (__main__.main): the exit status; errors as the fast path's."""
    command = next((a for a in sys.argv[1:] if a in main.commands), "pyruntime")  # for messages
    return commands.guarded(_click_main, "--debug" in sys.argv, command)


def _click_main() -> int | None:
    try:
        return main.main(standalone_mode=False, prog_name="pyruntime")
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.exceptions.Abort:
        return 130
    except click.UsageError as e:
        log.error(e.format_message().replace("\n", " "))
        return 1


for _command in cgroup_cli.COMMANDS:  # pause, resume, update, events, ps
    main.add_command(_command)
for _command in main.commands.values():  # every command's help opens with runc's NAME section
    _command.context_class = _Context
