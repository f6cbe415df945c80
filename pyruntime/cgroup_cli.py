"""Command-line wrappers for pause, resume, update, events and ps (work in cgroup_commands.py).

Imported at the end of cli.py so the commands register on the same group; nothing heavy here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from .cli import CONTEXT, Globals, main


@contextmanager
def _loaded(g: Globals, container_id: str, shared: bool = False) -> Iterator:
    """The container's state, locked (shared: others may read meanwhile), closed after the block."""
    from . import state

    c = state.load(g.root, container_id, shared=shared)
    try:
        yield c
    finally:
        c.close()


@main.command(context_settings=CONTEXT)
@click.argument("container_id")
@click.pass_obj
def pause(g: Globals, container_id: str) -> None:
    """Freeze every process of the container (cgroup freezer)."""
    from . import cgroup_commands

    with _loaded(g, container_id) as c:
        cgroup_commands.pause(c)


@main.command(context_settings=CONTEXT)
@click.argument("container_id")
@click.pass_obj
def resume(g: Globals, container_id: str) -> None:
    """Thaw a paused container."""
    from . import cgroup_commands

    with _loaded(g, container_id) as c:
        cgroup_commands.resume(c)


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


@main.command(context_settings=CONTEXT)
@click.option("--resources", "-r", "resources_file", default=None,
              help="A JSON file with linux.resources to apply (- for stdin).")
@_update_options
@click.option("--l3-cache-schema", default=None, hidden=True)
@click.option("--mem-bw-schema", default=None, hidden=True)
@click.argument("container_id")
@click.pass_obj
def update(g: Globals, container_id: str, resources_file: str | None, l3_cache_schema: str | None,
           mem_bw_schema: str | None, **flags: str | None) -> None:
    """Change the resource limits of a running container."""
    from . import cgroup_commands

    cgroup_commands.refuse_rdt(l3_cache_schema, mem_bw_schema)
    resources, source = cgroup_commands.build_update(resources_file, flags)
    with _loaded(g, container_id) as c:
        cgroup_commands.update(c, resources, source)


@main.command(context_settings=CONTEXT)
@click.option("--interval", default="5s", help="Stats interval (Go duration, default 5s).")
@click.option("--stats", is_flag=True, help="Print the container's stats once and exit.")
@click.argument("container_id")
@click.pass_obj
def events(g: Globals, container_id: str, interval: str, stats: bool) -> None:
    """Stream the container's events (stats every interval, OOM) as JSON lines."""
    from . import cgroup_commands

    every = cgroup_commands.parse_interval(interval)
    with _loaded(g, container_id, shared=True) as c:
        # a stream may last the container's lifetime: do not hold the state lock meanwhile
        if not stats:
            import fcntl

            fcntl.flock(c.dir_fd, fcntl.LOCK_UN)
        cgroup_commands.events(c, every, stats)


@main.command(context_settings={**CONTEXT, "ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--format", "-f", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.argument("container_id")
@click.argument("ps_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def ps(g: Globals, container_id: str, fmt: str, ps_args: tuple[str, ...]) -> None:
    """List the container's processes (ps -ef by default, or with the given ps(1) options)."""
    from . import cgroup_commands

    with _loaded(g, container_id, shared=True) as c:
        click.echo(cgroup_commands.ps(c, fmt, list(ps_args)), nl=False)
