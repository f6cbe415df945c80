"""click's definitions of pause, resume, update, events and ps (the work is in cgroup_commands.py).

cli.py adds COMMANDS to its group; this module does not import cli.py (no cycle).
"""

from __future__ import annotations

import click

from . import commands
from .commands import CONTEXT, Globals


@click.command(context_settings=CONTEXT)
@click.argument("container_id")
@click.pass_obj
def pause(g: Globals, **kw) -> int | None:  # noqa: ANN003
    """Freeze every process of the container (cgroup freezer)."""
    return commands.pause(g, **kw)


@click.command(context_settings=CONTEXT)
@click.argument("container_id")
@click.pass_obj
def resume(g: Globals, **kw) -> int | None:  # noqa: ANN003
    """Thaw a paused container."""
    return commands.resume(g, **kw)


_UPDATE_FLAGS = [
    ("--memory", "Memory limit (bytes or with k/m/g suffix), -1 unlimited."),
    ("--memory-reservation", "Memory soft limit."),
    ("--memory-swap", "Memory plus swap limit, -1 unlimited."),
    ("--kernel-memory", "Kernel memory limit (ignored: not supported by current kernels)."),
    ("--kernel-memory-tcp", "Kernel TCP memory limit (ignored)."),
    ("--cpu-shares --cpu-share", "CPU shares (relative weight); --cpu-share is runc's spelling."),
    ("--cpu-quota", "CPU CFS quota in microseconds per period."),
    ("--cpu-period", "CPU CFS period in microseconds."),
    ("--cpu-burst", "CPU CFS burst in microseconds."),
    ("--cpu-rt-runtime", "Realtime runtime in microseconds."),
    ("--cpu-rt-period", "Realtime period in microseconds."),
    ("--cpu-idle", "Set cpu.idle (0 or 1)."),
    ("--cpuset-cpus", "CPUs the container may use (e.g. 0-2,4)."),
    ("--cpuset-mems", "Memory nodes the container may use."),
    ("--pids-limit", "Maximum number of tasks, -1 or 0 unlimited."),
    ("--blkio-weight", "Block IO weight (10-1000)."),
]


def _update_options(f):  # noqa: ANN001, ANN202
    for name, help_text in reversed(_UPDATE_FLAGS):
        f = click.option(*name.split(), default=None, help=help_text)(f)
    return f


@click.command(context_settings=CONTEXT)
@click.option("--resources", "-r", "resources_file", default=None,
              help="A JSON file with linux.resources to apply (- for stdin).")
@_update_options
@click.option("--l3-cache-schema", default=None, hidden=True)
@click.option("--mem-bw-schema", default=None, hidden=True)
@click.argument("container_id")
@click.pass_obj
def update(g: Globals, **kw) -> int | None:  # noqa: ANN003
    """Change the resource limits of a running container."""
    return commands.update(g, **kw)


@click.command(context_settings=CONTEXT)
@click.option("--interval", default="5s", help="Stats interval (Go duration, default 5s).")
@click.option("--stats", is_flag=True, help="Print the container's stats once and exit.")
@click.argument("container_id")
@click.pass_obj
def events(g: Globals, **kw) -> int | None:  # noqa: ANN003
    """Stream the container's events (stats every interval, OOM) as JSON lines."""
    return commands.events(g, **kw)


@click.command(context_settings={**CONTEXT, "ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--format", "-f", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.argument("container_id")
@click.argument("ps_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def ps(g: Globals, **kw) -> int | None:  # noqa: ANN003
    """List the container's processes (ps -ef by default, or with the given ps(1) options)."""
    return commands.ps(g, **kw)


COMMANDS = [pause, resume, update, events, ps]
