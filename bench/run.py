#!/usr/bin/env python3
"""`make bench`: pyruntime beside runc and crun on the same bundles, interleaved; medians and ratios.

Usage: bench/run.py [--quick] [--rounds N] [--pyruntime PATH] [--only PHASES] [--json FILE]
PHASES (comma-separated): floor, run, lifecycle, breakdown, rss, many, instructions, concurrent, scale, podman.
breakdown: where the time of pyruntime's create and run goes, from the timestamps the runtime records
with PYRUNTIME_TRACE (pyruntime/trace.py), beside runc's totals.

Every runtime gets a private --root, every container an absolute cgroupsPath under a private parent
cgroup, and everything is removed at the end (also on Ctrl-C). crun 1.8.1 refuses this hybrid host
(its cgroup2 root lists a controller), so it runs in a private mount namespace where an empty file
hides /sys/fs/cgroup/unified/cgroup.controllers (see ../shared/REFERENCE.md); its figures include
the cost of `nsenter`, which is measured and printed. The driver is a child subreaper with one thread
that reaps every child (runtimes and orphaned container inits), so no zombie outlives a phase and
each runtime process's exit time and CPU time come from wait4 (peak RSS from /usr/bin/time: see rss).

Benchmarks are not tests: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import select
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import prctl

REPO = Path(__file__).resolve().parent.parent
ROOTFS = REPO / "bundles" / "busybox" / "rootfs"
BASE_CONFIG = REPO / "bundles" / "busybox" / "config.json"
CGROUP_BASE = Path("/sys/fs/cgroup")


# -- processes ----------------------------------------------------------------------------------------
class Proc:
    def __init__(self, pid: int, t0: float, out: Any, err: Any) -> None:
        self.pid, self.t0, self.out, self.err = pid, t0, out, err
        self.done = threading.Event()
        self.t1 = 0.0
        self.t0_ns = 0  # CLOCK_MONOTONIC, the clock of the runtime's trace marks
        self.rc = -1
        self.maxrss_kb = 0
        self.cpu_ms = 0.0  # user + system time of the process and the children it waited for

    def wait(self, timeout: float = 120) -> Proc:
        if not self.done.wait(timeout):
            raise RuntimeError(f"pid {self.pid} did not exit within {timeout}s")
        return self

    @property
    def elapsed(self) -> float:
        return self.t1 - self.t0

    def stdout(self) -> str:
        self.out.seek(0)
        return self.out.read().decode(errors="replace")

    def stderr(self) -> str:
        self.err.seek(0)
        return self.err.read().decode(errors="replace")


class Reaper(threading.Thread):
    """Reaps every child: the processes we spawned (recording exit time and rusage) and orphans."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.lock = threading.Lock()
        self.pending: dict[int, Proc] = {}
        self.early: dict[int, tuple[float, int, int]] = {}  # reaped before spawn() registered it
        self.children = threading.Event()

    def run(self) -> None:
        while True:
            try:
                pid, status, ru = os.wait4(-1, 0)
            except ChildProcessError:
                self.children.clear()
                try:
                    pid, status, ru = os.wait4(-1, os.WNOHANG)
                except ChildProcessError:
                    pid = 0
                if pid == 0:
                    self.children.wait(1.0)
                    continue
            except InterruptedError:
                continue
            t1 = time.perf_counter()
            rc = os.waitstatus_to_exitcode(status)
            with self.lock:
                proc = self.pending.pop(pid, None)
                if proc is None:
                    self.early[pid] = (t1, rc, ru.ru_maxrss, (ru.ru_utime + ru.ru_stime) * 1000)
                    if len(self.early) > 10000:  # orphans nobody asks about
                        self.early.clear()
                    continue
            proc.t1, proc.rc, proc.maxrss_kb = t1, rc, ru.ru_maxrss
            proc.cpu_ms = (ru.ru_utime + ru.ru_stime) * 1000
            proc.done.set()

    def spawn(self, argv: list[str], env: dict[str, str] | None = None) -> Proc:
        out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
        null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        actions = [(os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, out.fileno(), 1),
                   (os.POSIX_SPAWN_DUP2, err.fileno(), 2)]
        with self.lock:
            t0_ns = time.monotonic_ns()
            t0 = time.perf_counter()
            pid = os.posix_spawn(argv[0], argv, env if env is not None else ENV, file_actions=actions)
            proc = Proc(pid, t0, out, err)
            proc.t0_ns = t0_ns
            if pid in self.early:
                proc.t1, proc.rc, proc.maxrss_kb, proc.cpu_ms = self.early.pop(pid)
                proc.done.set()
            else:
                self.pending[pid] = proc
        os.close(null)
        self.children.set()
        return proc


ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
       "LANG": "C.UTF-8"}
REAPER = Reaper()


def call(argv: list[str], check: bool = True, env: dict[str, str] | None = None, timeout: float = 120,
         idempotent: bool = False) -> Proc:
    p = REAPER.spawn(argv, env).wait(timeout)
    if idempotent and p.rc == -signal.SIGKILL:  # killed from outside (a shared machine): once more
        p = REAPER.spawn(argv, env).wait(timeout)
    if check and p.rc != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {p.rc}: {p.stderr().strip()[-500:]}")
    return p


def wait_gone(pid: int, timeout: float = 10) -> None:
    """Wait for a (non-child) process to exit: a pidfd becomes readable when it does."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        select.select([fd], [], [], timeout)
    finally:
        os.close(fd)


def vm_rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


# -- runtimes -----------------------------------------------------------------------------------------
class Runtime:
    def __init__(self, name: str, exe: str, work: Path, prefix: list[str] | None = None) -> None:
        self.name, self.exe, self.prefix = name, exe, prefix or []
        self.root = str(work / f"root-{name}")
        self.root2 = str(work / f"root2-{name}")  # the "500 existing containers" root

    def argv(self, *args: str, root: str | None = None) -> list[str]:
        return [*self.prefix, self.exe, "--root", root or self.root, *args]

    def ids(self, root: str | None = None) -> list[str]:
        r = root or self.root
        return sorted(n for n in os.listdir(r) if not n.startswith(".")) if os.path.isdir(r) else []


class CrunNamespace:
    """A private mount namespace (bind-mounted on a file) where crun accepts this hybrid host."""

    def __init__(self, work: Path) -> None:
        self.file = str(work / "crun-mntns")
        self.empty = str(work / "empty")
        self.active = False

    def __enter__(self) -> CrunNamespace:
        Path(self.file).touch()
        Path(self.empty).touch()
        call(["/usr/bin/unshare", f"--mount={self.file}", "--propagation", "private", "/bin/true"])
        self.active = True
        call(["/usr/bin/nsenter", f"--mount={self.file}", "/bin/mount", "--bind", self.empty,
              "/sys/fs/cgroup/unified/cgroup.controllers"])
        return self

    def __exit__(self, *exc: object) -> None:
        if self.active:
            call(["/bin/umount", self.file], check=False)
            self.active = False

    @property
    def prefix(self) -> list[str]:
        return ["/usr/bin/nsenter", f"--mount={self.file}"]


# -- bundles ------------------------------------------------------------------------------------------
class Bundles:
    def __init__(self, work: Path, cgroup_parent: str) -> None:
        self.dir = work / "bundles"
        self.dir.mkdir()
        self.parent = cgroup_parent
        base = json.loads(BASE_CONFIG.read_text())
        base["ociVersion"] = "1.0.2"  # crun 1.8.1 refuses anything above 1.1.0
        base["root"] = {"path": str(ROOTFS), "readonly": True}
        base["hostname"] = "bench"
        # Not every runtime here expands a `cgroup` mount on a v1 host the same way; not what we measure.
        base["mounts"] = [m for m in base["mounts"] if m.get("type") != "cgroup"]
        self.base = base
        self.n = 0

    def make(self, rt: Runtime, args: list[str]) -> tuple[str, str]:
        """A new bundle with its own cgroup: (container id, bundle path)."""
        self.n += 1
        cid = f"b{self.n}-{uuid.uuid4().hex[:6]}"
        config = json.loads(json.dumps(self.base))
        config["process"]["args"] = args
        config["linux"]["cgroupsPath"] = f"{self.parent}/{rt.name}-{cid}"
        path = self.dir / f"{rt.name}-{cid}"
        path.mkdir()
        (path / "config.json").write_text(json.dumps(config))
        return cid, str(path)


def cgroup_dirs(parent: str) -> list[Path]:
    found: list[Path] = []
    for hierarchy in CGROUP_BASE.iterdir():
        top = hierarchy / parent.lstrip("/")
        if top.is_dir():
            found += sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
            found.append(top)
    return found


def _is_cgroupfs(d: Path) -> bool:
    """Whether d is in a mounted cgroup hierarchy (its kernel files: cgroup.procs), not a plain dir."""
    return (d / "cgroup.procs").exists()


def remove_cgroups(parent: str) -> list[str]:
    for d in cgroup_dirs(parent):
        try:
            for pid in (d / "cgroup.procs").read_text().split():
                os.kill(int(pid), signal.SIGKILL)
        except (OSError, ValueError):
            pass
    for _ in range(50):
        left = []
        for d in cgroup_dirs(parent):
            try:
                d.rmdir()
            except OSError:
                if not _is_cgroupfs(d):  # a plain directory in /sys/fs/cgroup's tmpfs (a controller
                    for f in d.iterdir():  # listed but not mounted): podman writes a `tasks` file there
                        if f.is_file():
                            f.unlink()
                    try:
                        d.rmdir()
                        continue
                    except OSError:
                        pass
                left.append(str(d))
        if not left:
            return []
        time.sleep(0.1)
    return left


# -- statistics ---------------------------------------------------------------------------------------
class Results:
    def __init__(self) -> None:
        self.data: dict[str, dict[str, list[float]]] = {}
        self.units: dict[str, str] = {}
        self.order: list[str] = []

    def add(self, metric: str, rt: str, value: float, unit: str = "ms") -> None:
        if metric not in self.data:
            self.data[metric], self.units[metric] = {}, unit
            self.order.append(metric)
        self.data[metric].setdefault(rt, []).append(value)

    def median(self, metric: str, rt: str) -> float | None:
        v = self.data.get(metric, {}).get(rt)
        return statistics.median(v) if v else None


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ms cpu":
        return f"{value:.1f} ms"
    if unit == "ms":
        return f"{value:.1f} ms" if value < 1000 else f"{value / 1000:.2f} s"
    if unit == "MB":
        return f"{value:.1f} MB"
    return f"{value:.2f} {unit}"


# -- the benchmark ------------------------------------------------------------------------------------
class Bench:
    def __init__(self, args: argparse.Namespace, work: Path, runtimes: list[Runtime], bundles: Bundles) -> None:
        self.args, self.work, self.rts, self.bundles = args, work, runtimes, bundles
        self.res = Results()
        self.notes: list[str] = []
        self.rotation = 0
        self.breakdown_totals: dict[tuple[str, str], list[float]] = {}
        self.breakdown_phases: dict[tuple[str, str], list[float]] = {}

    def interleaved(self) -> list[Runtime]:
        """The runtimes in a rotating order, so none is always first after a pause."""
        self.rotation += 1
        k = self.rotation % len(self.rts)
        return self.rts[k:] + self.rts[:k]

    def phase(self, title: str) -> None:
        print(f"  {title}", file=sys.stderr, flush=True)

    # single commands
    def run_true(self) -> None:
        self.phase("run of /bin/true")
        for _ in range(self.args.rounds):
            for rt in self.interleaved():
                cid, b = self.bundles.make(rt, ["/bin/true"])
                p = call(rt.argv("run", "--bundle", b, cid))
                self.res.add("run /bin/true", rt.name, p.elapsed * 1000)
                self.res.add("CPU time of `run`", rt.name, p.cpu_ms, "ms cpu")
                if rt.ids():
                    raise RuntimeError(f"{rt.name}: run left {rt.ids()}")

    def lifecycle(self) -> None:
        self.phase("create / state / start / kill / delete")
        for _ in range(self.args.rounds):
            for rt in self.interleaved():
                cid, b = self.bundles.make(rt, ["/bin/sleep", "1000"])
                pid_file = f"{b}/pid"
                p = call(rt.argv("create", "--bundle", b, "--pid-file", pid_file, cid))
                self.res.add("create", rt.name, p.elapsed * 1000)
                self.res.add("CPU time of `create`", rt.name, p.cpu_ms, "ms cpu")
                pid = int(Path(pid_file).read_text())
                self.res.add("RSS of the waiting init", rt.name, vm_rss_kb(pid) / 1024, "MB")
                p = call(rt.argv("state", cid))
                self.res.add("state", rt.name, p.elapsed * 1000)
                self.res.add("CPU time of `state`", rt.name, p.cpu_ms, "ms cpu")
                self.res.add("start", rt.name, call(rt.argv("start", cid)).elapsed * 1000)
                self.res.add("kill", rt.name, call(rt.argv("kill", cid, "KILL")).elapsed * 1000)
                wait_gone(pid)
                self.res.add("delete", rt.name, call(rt.argv("delete", cid)).elapsed * 1000)

    def rss(self) -> None:
        """Peak RSS through /usr/bin/time: a child spawned by this (big) Python process inherits the
        driver's memory high-water mark in its rusage, so wait4 here would read ~16 MB for anything."""
        self.phase("peak RSS of the runtime process (run, create)")
        time_bin = shutil.which("time", path=ENV["PATH"])
        if not time_bin:
            self.notes.append("peak RSS skipped: /usr/bin/time is not installed")
            return
        out = self.work / "time.out"
        for _ in range(max(3, self.args.rounds // 4)):
            for rt in self.interleaved():
                cid, b = self.bundles.make(rt, ["/bin/true"])
                call([time_bin, "-o", str(out), "-f", "%M", *rt.argv("run", "--bundle", b, cid)])
                self.res.add("peak RSS of `run`", rt.name, int(out.read_text().split()[-1]) / 1024, "MB")
                cid, b = self.bundles.make(rt, ["/bin/sleep", "1000"])
                call([time_bin, "-o", str(out), "-f", "%M", *rt.argv("create", "--bundle", b, cid)])
                self.res.add("peak RSS of `create`", rt.name, int(out.read_text().split()[-1]) / 1024, "MB")
                call(rt.argv("delete", "--force", cid))

    def many(self) -> None:
        n = self.args.many
        self.phase(f"{n} sequential create+start, list, exec, delete --force of {n}")
        running: dict[str, list[str]] = {rt.name: [] for rt in self.rts}
        totals = {rt.name: 0.0 for rt in self.rts}
        for _ in range(n):
            for rt in self.interleaved():
                cid, b = self.bundles.make(rt, ["/bin/sleep", "1000"])
                t = call(rt.argv("create", "--bundle", b, cid)).elapsed
                t += call(rt.argv("start", cid)).elapsed
                totals[rt.name] += t
                running[rt.name].append(cid)
        for name, t in totals.items():
            self.res.add(f"{n} sequential create+start", name, t * 1000)
        for _ in range(self.args.rounds):
            for rt in self.interleaved():
                p = call(rt.argv("list"))
                self.res.add(f"list with {n} containers", rt.name, p.elapsed * 1000)
                if self.args.rounds and p.stdout().count("\n") < n:
                    raise RuntimeError(f"{rt.name} list shows fewer than {n} containers")
        exec_rts = [rt for rt in self.rts if rt.name != "pyruntime" or self.args.pyruntime_exec]
        for _ in range(self.args.rounds):
            for rt in self.interleaved():
                if rt in exec_rts:
                    p = call(rt.argv("exec", running[rt.name][0], "/bin/true"))
                    self.res.add("exec /bin/true", rt.name, p.elapsed * 1000)
        totals = {rt.name: 0.0 for rt in self.rts}
        for k in range(n):
            for rt in self.interleaved():
                totals[rt.name] += call(rt.argv("delete", "--force", running[rt.name][k])).elapsed
        for name, t in totals.items():
            self.res.add(f"delete --force of {n} running", name, t * 1000)
        for rt in self.rts:
            if rt.ids():
                raise RuntimeError(f"{rt.name}: delete --force left {rt.ids()}")

    def concurrent(self) -> None:
        n = 20
        self.phase(f"{n} concurrent run")
        for _ in range(max(2, self.args.rounds // 4)):
            for rt in self.interleaved():
                jobs = [self.bundles.make(rt, ["/bin/true"]) for _ in range(n)]
                t0 = time.perf_counter()
                procs = [REAPER.spawn(rt.argv("run", "--bundle", b, cid)) for cid, b in jobs]
                for p in procs:
                    p.wait()
                t1 = max(p.t1 for p in procs)
                bad = [p.stderr().strip() for p in procs if p.rc != 0]
                if bad:
                    raise RuntimeError(f"{rt.name}: concurrent run failed: {bad[0]}")
                self.res.add(f"{n} concurrent run", rt.name, (t1 - t0) * 1000)

    def scale(self) -> None:
        """create with no other container vs with many existing (stopped ones, in another --root)."""
        n = self.args.existing
        self.phase(f"create with 0 and with {n} existing containers")
        for k in range(n):
            for rt in self.interleaved():
                cid, b = self.bundles.make(rt, ["/bin/true"])
                call(rt.argv("create", "--bundle", b, cid, root=rt.root2))
                call(rt.argv("start", cid, root=rt.root2))
            if k % 100 == 99:
                print(f"    {k + 1}", file=sys.stderr, flush=True)
        for k in range(self.args.rounds):
            for rt in self.interleaved():
                pair = [("create, 0 existing", rt.root), (f"create, {n} existing", rt.root2)]
                for label, root in pair if k % 2 else reversed(pair):  # neither always goes first
                    cid, b = self.bundles.make(rt, ["/bin/sleep", "1000"])
                    p = call(rt.argv("create", "--bundle", b, cid, root=root))
                    self.res.add(label, rt.name, p.elapsed * 1000)
                    call(rt.argv("delete", "--force", cid, root=root))
        for rt in self.rts:
            for cid in rt.ids(rt.root2):
                call(rt.argv("delete", "--force", cid, root=rt.root2), idempotent=True)

    def breakdown(self) -> None:
        """pyruntime's create and run phase by phase (PYRUNTIME_TRACE marks), beside runc's totals."""
        self.phase("per-phase breakdown of create and run (PYRUNTIME_TRACE)")
        trace_file = self.work / "trace.jsonl"
        env = dict(ENV, PYRUNTIME_TRACE=str(trace_file))
        for _ in range(self.args.rounds):
            for rt in self.interleaved():
                traced = rt.name == "pyruntime"
                for what, args in (("create", ["/bin/sleep", "1000"]), ("run", ["/bin/true"])):
                    cid, b = self.bundles.make(rt, args)
                    trace_file.unlink(missing_ok=True)
                    p = call(rt.argv(what, "--bundle", b, cid), env=env if traced else None)
                    self.breakdown_totals.setdefault((what, rt.name), []).append(p.elapsed * 1000)
                    if what == "create":
                        call(rt.argv("delete", "--force", cid))
                    if traced:
                        line = json.loads(trace_file.read_text().splitlines()[-1])
                        for label, ms in phases_of(line["marks"], p).items():
                            self.breakdown_phases.setdefault((what, label), []).append(ms)

    def instructions(self) -> None:
        """User-space instructions of pyruntime's hot calls and of the bare interpreter, counted by
        valgrind (callgrind): unlike times, they do not move with the load of a shared machine, so a
        change's effect shows in one run. (Not for runc: valgrind does not support Go binaries.)"""
        self.phase("instructions (valgrind): interpreter, state, kill, delete")
        py = next((rt for rt in self.rts if rt.name == "pyruntime"), None)
        valgrind = shutil.which("valgrind", path=ENV["PATH"])
        if py is None or valgrind is None:
            self.notes.append("instructions skipped: " + ("valgrind not installed" if py else "no pyruntime"))
            return
        cid, b = self.bundles.make(py, ["/bin/sleep", "1000"])
        call(py.argv("create", "--bundle", b, cid))
        call(py.argv("start", cid))
        cases = {"python -I -S -c pass": [self.args.python, "-I", "-S", "-c", "pass"],
                 "state": py.argv("state", cid), "kill (signal 0)": py.argv("kill", cid, "0"),
                 "start (of a running one: refused)": py.argv("start", cid),
                 "delete --force (of a missing one)": py.argv("delete", "--force", cid + "-missing")}
        try:
            for _ in range(3):
                for label, argv in cases.items():
                    p = call([valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv], check=False)
                    counted = [ln for ln in p.stderr().splitlines() if "Collected :" in ln]
                    if counted:
                        self.res.add(f"instructions: {label}", "floor" if label.startswith("python") else "pyruntime",
                                     int(counted[-1].split()[-1]) / 1e6, "M")
        finally:
            call(py.argv("delete", "--force", cid), check=False)

    def floor(self) -> None:
        self.phase("floor: interpreter, import click, nsenter")
        py = self.args.python
        cases = {
            "python -I -S -c pass": [py, "-I", "-S", "-c", "pass"],
            "python -I -c pass": [py, "-I", "-c", "pass"],
            "python -I -c 'import click'": [py, "-I", "-c", "import click"],
            "/bin/true": ["/bin/true"],
            "nsenter --mount /bin/true": ["/usr/bin/nsenter", f"--mount={self.work / 'crun-mntns'}", "/bin/true"],
        }
        if not any(rt.name == "crun" for rt in self.rts):
            del cases["nsenter --mount /bin/true"]
        for _ in range(self.args.rounds):
            for label, argv in cases.items():
                p = call(argv)
                self.res.add(label, "floor", p.elapsed * 1000)
                self.res.add(f"{label} (CPU)", "floor", p.cpu_ms, "ms cpu")


# The trace marks (pyruntime/trace.py) in the order a create or run passes them, and the phase each ends.
PHASES = [
    ("main", "interpreter start (spawn to __main__)"),
    ("cli", "command line (fast parser, table)"),
    ("imports", "imports of the command"),
    ("config", "config.json parse + validation"),
    ("state", "state dir, lock, state.json"),
    ("cgroups", "cgroups (create, apply)"),
    ("fork", "before the fork (socket, stub memfd, preload)"),
    ("init:forked", "fork of the intermediate"),
    ("init:joined", "intermediate: join the cgroups"),
    ("init:unshared", "intermediate: unshare the namespaces"),
    ("init:start", "fork of the init"),
    ("init:pivot", "init set-up up to pivot_root"),
    ("init:ready", "init after pivot_root (user, caps, seccomp...)"),
    ("stub", "exec of the stub"),
    ("start", "create's end (state saved, pid file)"),
    ("started", "start (connect, the stub executes the program)"),
    ("exit", "the rest (run: wait, delete; create: end)"),
    ("reaped", "process exit"),
]


def phases_of(marks: list[list[Any]], p: Proc) -> dict[str, float]:
    """Milliseconds per phase: from the previous mark (or the spawn) to each mark, and to the reaping."""
    at = {name: ns for name, ns in marks}
    at["reaped"] = p.t0_ns + int(p.elapsed * 1e9)
    out: dict[str, float] = {}
    prev = p.t0_ns
    for name, label in PHASES:
        if name in at:
            out[label] = (at[name] - prev) / 1e6
            prev = at[name]
    return out


def breakdown_report(b: Bench) -> str:
    if not b.breakdown_phases:
        return ""
    med = statistics.median
    labels = [label for _, label in PHASES if any(k[1] == label for k in b.breakdown_phases)]
    rows = [["phase (pyruntime, medians)", "create", "run"]]
    for label in labels:
        rows.append([label] + [f"{med(v):.1f} ms" if (v := b.breakdown_phases.get((w, label))) else "-"
                               for w in ("create", "run")])
    for rt in sorted({k[1] for k in b.breakdown_totals}):
        rows.append([f"total, {rt}"] + [f"{med(b.breakdown_totals[(w, rt)]):.1f} ms"
                                        if (w, rt) in b.breakdown_totals else "-" for w in ("create", "run")])
    widths = [max(len(r[k]) for r in rows) for k in range(3)]
    lines = ["  ".join(v.ljust(w) if k == 0 else v.rjust(w) for k, (v, w) in enumerate(zip(r, widths, strict=True)))
             for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines) + "\n"


# -- podman -------------------------------------------------------------------------------------------
PODMAN_CONF = """[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime_supports_json = ["crun", "runc", "pyruntime"]
tmp_dir = "{work}/podman-tmp"
"""
STORAGE_CONF = """[storage]
driver = "overlay"
graphroot = "{work}/podman-storage"
runroot = "{work}/podman-run"
"""


class Podman:
    """podman with a private containers.conf, storage and tmp dir (the default storage is untouched)."""

    def __init__(self, work: Path) -> None:
        self.work = work
        (work / "containers.conf").write_text(PODMAN_CONF.format(work=work))
        (work / "storage.conf").write_text(STORAGE_CONF.format(work=work))
        self.env = dict(ENV, CONTAINERS_CONF=str(work / "containers.conf"),
                        CONTAINERS_STORAGE_CONF=str(work / "storage.conf"), XDG_RUNTIME_DIR="")
        self.image = "localhost/pyruntime-bench-busybox"

    def argv(self, rt: Runtime, *args: str) -> list[str]:
        return [*rt.prefix, "/usr/bin/podman", "--runtime", rt.exe, "--runtime-flag", f"root={rt.root}-podman",
                *args]

    def setup(self) -> None:
        tar = self.work / "rootfs.tar"
        call(["/bin/tar", "-C", str(ROOTFS), "-cf", str(tar), "."])
        call(["/usr/bin/podman", "import", str(tar), self.image], env=self.env, idempotent=True)

    def cleanup(self) -> None:
        call(["/usr/bin/podman", "rm", "--all", "--force"], check=False, env=self.env)
        call(["/usr/bin/podman", "system", "reset", "--force"], check=False, env=self.env)
        # Whatever storage mounts are left in our namespace go with the directory.
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split()[4] for line in f]
        mine = [m for m in mounts if m.startswith(str(self.work)) and not m.endswith("/crun-mntns")]
        for m in sorted(mine, key=len, reverse=True):
            call(["/bin/umount", "-l", m], check=False)


def bench_podman(b: Bench, podman: Podman) -> None:
    b.phase("podman run --rm")
    failed: set[str] = set()
    for _ in range(max(3, b.args.rounds // 2)):
        for rt in b.interleaved():
            if rt.name in failed:
                continue
            argv = podman.argv(rt, "run", "--rm", "--network", "none", "--cgroup-parent",
                               f"{b.bundles.parent}/podman", podman.image, "/bin/true")
            p = call(argv, env=podman.env, check=False)
            if p.rc != 0:
                failed.add(rt.name)
                b.notes.append(f"podman with {rt.name} failed: {p.stderr().strip()[-300:]}")
                continue
            b.res.add("podman run --rm", rt.name, p.elapsed * 1000)


# -- report -------------------------------------------------------------------------------------------
def host_description() -> dict[str, Any]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = Path("/proc/meminfo").read_text().split()[1]
    return {"kernel": platform.release(), "machine": platform.machine(), "cpu": cpu, "cpus": os.cpu_count(),
            "mem_gb": round(int(mem) / 2**20, 1)}


def version_of(argv: list[str]) -> str:
    try:
        return call(argv, check=False).stdout().splitlines()[0].strip()
    except (OSError, IndexError, RuntimeError):
        return "?"


def report(b: Bench, names: list[str]) -> str:
    res = b.res
    head = ["what", *names]
    if "runc" in names:
        head.append("pyruntime/runc")
    if "crun" in names:
        head.append("pyruntime/crun")
    rows = [head]
    for metric in res.order:
        if "floor" in res.data[metric] or metric.startswith("instructions: "):
            continue
        unit = res.units[metric]
        row = [metric] + [fmt(res.median(metric, n), unit) for n in names]
        mine = res.median(metric, "pyruntime")
        for other in ("runc", "crun"):
            if other in names:
                theirs = res.median(metric, other)
                row.append(f"{mine / theirs:.2f}x" if mine is not None and theirs else "-")
        rows.append(row)
    widths = [max(len(r[k]) for r in rows) for k in range(len(head))]
    lines = ["  ".join(v.ljust(w) if k == 0 else v.rjust(w) for k, (v, w) in enumerate(zip(r, widths, strict=True)))
             for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    floor = [f"{m}: {fmt(res.median(m, 'floor'), 'ms')}" for m in res.order if "floor" in res.data[m]
             and not m.endswith("(CPU)") and not m.startswith("instructions: ")]
    floor_cpu = [f"{m[:-6]}: {fmt(res.median(m, 'floor'), 'ms')}" for m in res.order if "floor" in res.data[m]
                 and m.endswith("(CPU)")]
    text = ("\n".join(lines) + "\nfloor (medians, wall): " + "; ".join(floor) + "\nfloor (medians, CPU): "
            + "; ".join(floor_cpu) + "\n")
    base = res.median("instructions: python -I -S -c pass", "floor") if "instructions: python -I -S -c pass" in \
        res.data else None
    if base:
        counts = [f"{m[len('instructions: '):]} {res.median(m, 'pyruntime'):.1f} M "
                  f"({res.median(m, 'pyruntime') / base:.2f}x)" for m in res.order
                  if m.startswith("instructions: ") and "pyruntime" in res.data[m]]
        text += (f"instructions (valgrind, user space, medians of 3): python -I -S -c pass {base:.1f} M; "
                 + "; ".join(counts) + "\n")
    return text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="few rounds, 10 containers: a fast sanity run")
    ap.add_argument("--rounds", type=int, default=None, help="repetitions of each single command (default 20)")
    ap.add_argument("--pyruntime", default=str(Path(sys.executable).parent / "pyruntime"))
    ap.add_argument("--only", default="", help="comma-separated phases: floor,run,lifecycle,breakdown,rss,many,instructions,"
                    "concurrent,scale,podman")
    ap.add_argument("--runtimes", default="pyruntime,runc,crun")
    ap.add_argument("--json", default=None, help="where to write the JSON (default bench/results/<date>.json)")
    ap.add_argument("--no-podman", action="store_true")
    args = ap.parse_args()
    args.rounds = args.rounds or (3 if args.quick else 20)
    args.many = 10 if args.quick else 100
    args.existing = 20 if args.quick else 500
    args.python = str(Path(args.pyruntime).resolve().parent / "python")
    if not Path(args.python).exists():
        args.python = sys.executable
    if os.geteuid() != 0:
        print("bench: must run as root (it creates real containers)", file=sys.stderr)
        return 1
    if not (ROOTFS / "bin" / "busybox").exists():
        print(f"bench: {ROOTFS} is missing: run `make bundles`", file=sys.stderr)
        return 1
    prctl.set_child_subreaper(True)  # python-prctl (a runtime dependency): the constant from the headers
    REAPER.start()

    work = Path(tempfile.mkdtemp(prefix="pyruntime-bench-", dir="/run"))
    parent = f"/pyruntime-bench-{uuid.uuid4().hex[:10]}"
    wanted = args.runtimes.split(",")
    runtimes: list[Runtime] = []
    skipped: list[str] = []
    crun_ns = CrunNamespace(work)
    podman: Podman | None = None
    bench: Bench | None = None
    code = 0
    try:
        for name in wanted:
            exe = args.pyruntime if name == "pyruntime" else shutil.which(name, path=ENV["PATH"])
            if not exe or not os.access(exe, os.X_OK):
                skipped.append(f"{name} (not installed)")
                continue
            exe = os.path.abspath(exe)
            if name == "crun":
                crun_ns.__enter__()
                runtimes.append(Runtime(name, exe, work, crun_ns.prefix))
            else:
                runtimes.append(Runtime(name, exe, work))
        names = [rt.name for rt in runtimes]
        py = next((rt for rt in runtimes if rt.name == "pyruntime"), None)
        args.pyruntime_exec = bool(py) and call(py.argv("exec", "--help"), check=False).rc == 0
        bundles = Bundles(work, parent)
        bench = Bench(args, work, runtimes, bundles)
        if py and not args.pyruntime_exec:
            bench.notes.append("pyruntime has no `exec` yet: exec measured for the others only")
        phases: dict[str, Callable[[], None]] = {
            "floor": bench.floor, "run": bench.run_true, "lifecycle": bench.lifecycle, "breakdown": bench.breakdown,
            "rss": bench.rss, "many": bench.many, "instructions": bench.instructions,
            "concurrent": bench.concurrent, "scale": bench.scale,
        }
        only = [p for p in args.only.split(",") if p]
        print(f"bench: {', '.join(names)}; {args.rounds} rounds; work dir {work}", file=sys.stderr)
        for name, fn in phases.items():
            if not only or name in only:
                try:
                    fn()
                except RuntimeError as e:  # e.g. a process killed from outside on a shared machine
                    bench.notes.append(f"phase {name} stopped early: {str(e)[:300]}")
                    print(f"bench: phase {name}: {e}", file=sys.stderr)
                    purge(runtimes)
        if (not only or "podman" in only) and not args.no_podman:
            if shutil.which("podman", path=ENV["PATH"]) and shutil.which("conmon", path=ENV["PATH"] + ":/usr/libexec/podman"):
                podman = Podman(work)
                try:
                    podman.setup()
                    bench_podman(bench, podman)
                except RuntimeError as e:
                    bench.notes.append(f"podman skipped: {str(e)[:300]}")
            else:
                bench.notes.append("podman skipped: podman or conmon not installed")
    except KeyboardInterrupt:
        code = 130
    except RuntimeError as e:
        print(f"bench: {e}", file=sys.stderr)
        code = 1
    finally:
        leftovers = cleanup(runtimes, parent, podman, crun_ns, work)
    if bench is None:
        return code or 1
    if leftovers:
        bench.notes.append(f"cleanup problems: {leftovers}")
    text = report(bench, [rt.name for rt in runtimes])
    host = host_description()
    versions = {rt.name: version_of([rt.exe, "--version"]) for rt in runtimes}
    print(f"\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {host['cpus']} x {host['cpu']}, "
          f"{host['mem_gb']} GB, Linux {host['kernel']} {host['machine']}")
    print("versions: " + "; ".join(f"{k} {v}" for k, v in versions.items()))
    print(f"medians of {args.rounds} rounds{' (quick)' if args.quick else ''}\n")
    print(text)
    extra = breakdown_report(bench)
    if extra:
        print(extra)
    for note in bench.notes + [f"skipped: {s}" for s in skipped]:
        print(f"note: {note}")
    out = Path(args.json) if args.json else REPO / "bench" / "results" / (
        time.strftime("%Y-%m-%dT%H%M%SZ", time.gmtime()) + (("-quick" if args.quick else "") + ".json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "host": host, "versions": versions,
           "quick": args.quick, "rounds": args.rounds, "notes": bench.notes, "skipped": skipped,
           "units": bench.res.units,
           "medians": {m: {rt: bench.res.median(m, rt) for rt in v} for m, v in bench.res.data.items()},
           "samples": bench.res.data,
           "breakdown": {f"{w} / {label}": statistics.median(v) for (w, label), v in bench.breakdown_phases.items()}}
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"results: {out}")
    return code


def purge(runtimes: list[Runtime]) -> list[str]:
    """delete --force every container of every runtime's roots (twice if a delete fails)."""
    problems: list[str] = []
    for rt in runtimes:
        for root in (rt.root, rt.root2, f"{rt.root}-podman"):
            for cid in rt.ids(root):
                for attempt in (1, 2):
                    p = call(rt.argv("delete", "--force", cid, root=root), check=False, idempotent=True)
                    if p.rc == 0:
                        break
                    if attempt == 2:
                        problems.append(f"{rt.name} delete {cid}: exit {p.rc} {p.stderr().strip()[:200]}")
    return problems


def cleanup(runtimes: list[Runtime], parent: str, podman: Podman | None, crun_ns: CrunNamespace,
            work: Path) -> list[str]:
    if podman:
        podman.cleanup()
    problems = purge(runtimes)
    problems += remove_cgroups(parent)
    crun_ns.__exit__()
    shutil.rmtree(work, ignore_errors=True)
    if work.exists():
        problems.append(f"{work} not removed")
    return problems


if __name__ == "__main__":
    sys.exit(main())
