"""`make soak` (not part of `make test`): podman, docker and the CRI path, each with several clients in
parallel running a few hundred containers, with CPU load beside (busy loops at nice 10).

Every engine-level failure is recorded with the engine's own message (stderr, or the gRPC details);
a failure without a message is a failure of its own (the engine passes pyruntime a --log, and
pyruntime's reason must reach it). The runtime is tests/soak/runtime-wrapper.sh.in (set by the
Makefile through PYRUNTIME_BIN): it counts every runtime call in SOAK_DIR/calls.log and keeps every
non-zero one with what it wrote to its --log in SOAK_DIR/runtime-failures.log; a non-zero call that
wrote nothing to the --log it was given is a failure too.

After each engine's clients are done (the engine still running) the leaks are checked here, for that
engine's own containers only: containers the engine still lists, runtime state directories, container
cgroups, shims or conmon, runtime processes still running, and mounts (rootfs overlays, shm, netns).
Each check first has to see one live probe container, so a check that cannot fail fails the run.
SOAK_DIR/report.txt has, per engine: containers run, failures with their messages, leaks, duration.

Knobs (environment): SOAK_CLIENTS (4), SOAK_CONTAINERS per client (75), SOAK_LOAD busy loops (1),
SOAK_RUNTIMES ("pyruntime"; "pyruntime,runc" to soak the control too).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for tier in ("podman", "docker", "kubernetes"):
    sys.path.insert(0, str(HERE.parent / tier))
from cri_env import Kube, cri, cri_env_fixture, grpc, kube_fixture  # noqa: E402, F401
from docker_env import docker_env_fixture, docker_fixture  # noqa: E402, F401
from podman_env import (  # noqa: E402, F401
    STATE_ROOTS,
    conmon_pids,
    libpod_cgroups,
    podman_env_fixture,
    podman_fixture,
    state_ids,
)
from private import pids_naming  # noqa: E402

CLIENTS = int(os.environ.get("SOAK_CLIENTS", "4"))
CONTAINERS = int(os.environ.get("SOAK_CONTAINERS", "75"))
LOAD = int(os.environ.get("SOAK_LOAD", "1"))
RUNTIMES = os.environ.get("SOAK_RUNTIMES", "pyruntime").split(",")
OUT = Path(os.environ.get("SOAK_DIR") or tempfile.mkdtemp(prefix="pyrt-soak-"))
WRAPPER = os.environ.get("PYRUNTIME_BIN", "")
# every 25th container runs a missing program: the engine must fail it with pyruntime's reason (and
# not blame seccomp for it), and leave nothing behind
MISSING = "/nonexistent"
REASON = f'exec: "{MISSING}": stat {MISSING}: no such file or directory'
SETTLE = 30.0  # seconds a leak may take to go (a shim or conmon exits a moment after its container)
LEAK_KINDS = ("containers", "runtime state", "cgroups", "shims/conmon", "mounts", "runtime processes")
Leaks = dict[str, list[str]]


def mounts() -> list[tuple[str, str]]:
    """(mount point, fs type) of every mount in our (the host's) mount namespace."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        found.append((fields[4].replace("\\040", " "), fields[fields.index("-") + 1]))
    return found


def container_mounts(base: str, before: set[tuple[str, str]]) -> list[str]:
    """Mounts that appeared since `before` under base (rootfs overlays, shm, the engine's netns) or
    in /run/netns (podman's CNI network namespaces)."""
    under = base.rstrip("/") + "/"
    return sorted(f"{point} ({fstype})" for point, fstype in set(mounts()) - before
                  if point.startswith(under) or (point.startswith("/run/netns/") and fstype == "nsfs"))


def runtime_processes() -> list[str]:
    """Runtime calls still running: the wrapper (a shell script, `sh WRAPPER ARGS...`) around each."""
    found = []
    for pid in pids_naming(WRAPPER) if WRAPPER else []:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if len(argv) > 1 and argv[1] == WRAPPER.encode():
            found.append(f"{pid}: {b' '.join(argv[1:]).decode(errors='replace')[:200]}")
    return found


@contextmanager
def runtime_call(root: str, cid: str) -> Iterator[None]:
    """A runtime call that lasts (`events` on the probe container) through the wrapper, as the
    engines call it, so that the runtime-processes check has something to see."""
    proc = subprocess.Popen(["sh", WRAPPER, "--root", root, "events", "--interval", "60s", cid],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        yield
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def settled(check: Callable[[], Leaks], timeout: float = SETTLE) -> Leaks:
    deadline = time.monotonic() + timeout
    while any((leaks := check()).values()) and time.monotonic() < deadline:
        time.sleep(0.5)
    return leaks


class Record:
    """One engine's soak: calls and their failures, containers run, runtime calls, leaks, duration."""

    def __init__(self, engine: str) -> None:
        self.engine = engine
        self.lock = threading.Lock()
        self.times: list[float] = []
        self.failures: list[str] = []
        self.containers = 0
        self.refused = 0  # containers meant to fail (a missing program), their reason checked
        self.begin = time.monotonic()
        self.calls_at = len(_lines(OUT / "calls.log"))
        self.failed_at = len(_runtime_failures())
        self.leaks: Leaks = {}
        self.probe: Leaks = {}

    def call(self, what: str, fn: Callable[[], str | None], containers: int = 0, refused: int = 0) -> None:
        """fn returns None on success, else the failure's text (the engine's message)."""
        begin = time.monotonic()
        try:
            problem = fn()
        except Exception as e:  # noqa: BLE001 - a timeout or an RPC error is a failure to report
            problem = f"{type(e).__name__}: {getattr(e, 'details', lambda: '')() or e}"
        with self.lock:
            self.times.append(time.monotonic() - begin)
            self.containers += containers
            self.refused += refused
            if problem is not None:
                self.failures.append(f"{what}: {problem.strip() or '(EMPTY MESSAGE)'}")

    def check_probe(self, probe: Leaks) -> None:
        """The leak checks run while one container lives: each must see it, else it cannot fail."""
        self.probe = probe
        blind = [k for k in LEAK_KINDS if not probe.get(k)]
        if blind:
            self.failures.append(f"leak checks blind to a live container: {', '.join(blind)}")

    def finish(self, leaks: Leaks) -> str:
        self.leaks = leaks
        duration = time.monotonic() - self.begin
        calls = _lines(OUT / "calls.log")[self.calls_at:]
        creates = sum(1 for c in calls if "create" in c.split())
        nonzero = _runtime_failures()[self.failed_at:]
        silent = [head for head, reason in nonzero if reason == ""]
        for head in silent:
            self.failures.append(f"runtime call failed with nothing in its --log: {head}")
        t = sorted(self.times) or [0.0]
        n_leaks = sum(len(v) for v in leaks.values())
        lines = [f"== {self.engine}: {self.containers} containers run, {len(self.failures)} failures, "
                 f"{n_leaks} leaks, {duration:.0f}s",
                 f"  plus {self.refused} containers of a missing program (to be refused with pyruntime's reason)",
                 f"  engine calls {len(self.times)}: p50 {t[len(t) // 2]:.2f}s p95 {t[int(len(t) * 0.95)]:.2f}s "
                 f"max {t[-1]:.2f}s; pyruntime calls {len(calls)} ({creates} create), "
                 f"{len(nonzero)} non-zero ({len(silent)} without a reason in --log)",
                 "  leaks after: " + ", ".join(f"{k} {len(leaks.get(k, []))}" for k in LEAK_KINDS),
                 "  leak checks seeing one live probe container: "
                 + ", ".join(f"{k} {len(self.probe.get(k, []))}" for k in LEAK_KINDS)]
        lines += [f"  FAILURE {f}" for f in self.failures[:50]]
        if len(self.failures) > 50:
            lines.append(f"  ... and {len(self.failures) - 50} more failures")
        lines += [f"  LEAK {k}: {v}" for k, vs in leaks.items() for v in vs[:20]]
        text = "\n".join(lines)
        with open(OUT / "report.txt", "a") as f:
            f.write(text + "\n")
        _TOTALS.append((self.containers, len(self.failures), n_leaks, duration))
        return text

    def ok(self) -> bool:
        return not self.failures and not any(self.leaks.values())


_TOTALS: list[tuple[int, int, int, float]] = []


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []


def _runtime_failures() -> list[tuple[str, str]]:
    """The wrapper's entries: (the `=== ...` head line, what the call wrote to its --log)."""
    entries: list[tuple[str, list[str]]] = []
    for line in _lines(OUT / "runtime-failures.log"):
        if line.startswith("=== "):
            entries.append((line, []))
        elif entries:
            entries[-1][1].append(line)
    return [(head, "\n".join(body).strip()) for head, body in entries]


@pytest.fixture(scope="module", autouse=True)
def totals() -> Iterator[None]:
    begin = time.monotonic()
    yield
    c, f, leaks, _ = (sum(x) for x in zip(*_TOTALS, strict=True)) if _TOTALS else (0, 0, 0, 0)
    line = (f"== total: {len(_TOTALS)} engines, {c} containers run, {f} failures, {leaks} leaks, "
            f"{time.monotonic() - begin:.0f}s ({CLIENTS} clients x {CONTAINERS} containers per engine, "
            f"SOAK_LOAD={LOAD}, load average {os.getloadavg()[0]:.1f})")
    with open(OUT / "report.txt", "a") as out:
        out.write(line + "\n")


@pytest.fixture
def cpu_load() -> Iterator[None]:
    procs = [subprocess.Popen(["nice", "-n", "10", "sh", "-c", "while :; do :; done"]) for _ in range(LOAD)]
    yield
    for p in procs:
        p.send_signal(signal.SIGKILL)
        p.wait()


def clients(rec: Record, fn: Callable[[int], None]) -> None:
    """fn(c) for each client in its own thread; a client that dies is a failure (not a thread trace)."""
    def client(c: int) -> None:
        try:
            fn(c)
        except Exception as e:  # noqa: BLE001 - reported with the others
            with rec.lock:
                rec.failures.append(f"client {c} stopped: {type(e).__name__}: "
                                    f"{getattr(e, 'details', lambda: '')() or e or '(EMPTY MESSAGE)'}")

    threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _skip_unless_soaked(runtime: str) -> None:
    if runtime not in RUNTIMES:
        pytest.skip(f"SOAK_RUNTIMES={','.join(RUNTIMES)}")


def refused_with_reason(proc: subprocess.CompletedProcess) -> str | None:
    """A container of a missing program: refused, with pyruntime's reason and no seccomp hint."""
    if proc.returncode != 0 and REASON in proc.stderr and "linux.seccomp" not in proc.stderr:
        return None
    return f"exit {proc.returncode} (want a failure with {REASON!r} and no seccomp hint), stderr: {proc.stderr}"


def _cli_soak(rec: Record, call: Callable[..., subprocess.CompletedProcess], image: str) -> Callable[[int], None]:
    """One client of podman or docker: `run --rm` echo, and every 10th a detached one + exec + rm -f."""
    def check(proc: subprocess.CompletedProcess, want: str) -> str | None:
        if proc.returncode == 0 and proc.stdout.replace("\r", "") == want:
            return None
        return f"exit {proc.returncode}, stdout {proc.stdout!r}, stderr: {proc.stderr}"

    def client(c: int) -> None:
        for i in range(CONTAINERS):
            tag = f"c{c}-{i}"
            rec.call(f"run --rm {tag}", lambda tag=tag: check(
                call("run", "--rm", image, "echo", tag, check=False, timeout=300), f"{tag}\n"), containers=1)
            if i % 25 == 12:
                rec.call(f"run --rm {tag} {MISSING}", lambda: refused_with_reason(
                    call("run", "--rm", image, MISSING, check=False, timeout=300)), refused=1)
            if i % 10 == 5:
                name = f"soak-{c}-{i}"
                rec.call(f"run -d {name}", lambda name=name: check(
                    call("run", "-d", "--name", name, image, "sleep", "600", check=False, timeout=300),
                    call("inspect", "--format", "{{.Id}}", name, check=False).stdout), containers=1)
                rec.call(f"exec {name}", lambda name=name: check(
                    call("exec", name, "echo", "in", check=False, timeout=300), "in\n"))
                rec.call(f"rm -f {name}", lambda name=name: check(
                    call("rm", "-f", name, check=False, timeout=300), f"{name}\n"))
    return client


def _finish(rec: Record, check: Callable[[], Leaks]) -> None:
    print(rec.finish(settled(check)))
    assert rec.ok(), open(OUT / "report.txt").read()


def test_soak_podman(podman, cpu_load):
    _skip_unless_soaked(podman.runtime)
    rec = Record(f"podman/{podman.runtime}")
    penv = podman.penv
    mounts_before = set(mounts())

    def leaks() -> Leaks:
        ours = penv.container_ids()
        return {"containers": podman("ps", "-a", "-q", "--no-trunc", check=False).stdout.split(),
                "runtime state": sorted(state_ids(podman.runtime) & ours),
                "cgroups": sorted(c for c in libpod_cgroups() if os.path.basename(c).removeprefix("libpod-") in ours),
                "shims/conmon": [str(p) for p in conmon_pids(penv.dir)],
                "mounts": container_mounts(penv.dir, mounts_before),
                "runtime processes": runtime_processes()}

    probe = podman.run_d("--name", "soak-probe", podman.image, "sleep", "600")
    with runtime_call(podman.state_root, probe):
        rec.check_probe(leaks())
    podman("rm", "-f", "-t", "0", probe, check=False)
    call = lambda *a, **kw: podman(*a, **kw) if a[0] != "rm" else podman("rm", "-f", "-t", "0", *a[2:], **kw)  # noqa: E731
    clients(rec, _cli_soak(rec, call, podman.image))
    _finish(rec, leaks)


def test_soak_docker(docker, cpu_load):
    _skip_unless_soaked(docker.runtime)
    rec = Record(f"docker/{docker.runtime}")
    denv = docker.denv
    mounts_before = set(mounts())

    def leaks() -> Leaks:
        return {"containers": denv.docker("ps", "-aq", "--no-trunc", check=False).stdout.split(),
                "runtime state": sorted(denv.state_ids()),
                "cgroups": sorted(str(c) for c in denv.cgroups()),
                "shims/conmon": [str(p) for p in denv.shims()],
                "mounts": container_mounts(str(denv.base), mounts_before),
                "runtime processes": runtime_processes()}

    probe = docker.run_d("--name", "soak-probe", docker.image, "sleep", "600")
    with runtime_call(str(denv.state_root), probe):
        rec.check_probe(leaks())
    docker("rm", "-f", probe, check=False)
    clients(rec, _cli_soak(rec, docker, docker.image))
    _finish(rec, leaks)


def test_soak_cri(kube: Kube, cpu_load):
    """Each client: one pod, containers created, started, waited for and removed one after another
    (an ExecSync into a long-lived one every 10th), then the pod removed."""
    _skip_unless_soaked(kube.runtime)
    rec = Record(f"cri/{kube.runtime}")
    env = kube.env
    mounts_before = set(mounts())

    def leaks() -> Leaks:
        pods = env.rt.ListPodSandbox(cri.ListPodSandboxRequest(), timeout=60).items
        ctrs = env.rt.ListContainers(cri.ListContainersRequest(), timeout=60).containers
        return {"containers": [f"pod {p.id}" for p in pods] + [c.id for c in ctrs],
                "runtime state": sorted(env.state_ids(kube.runtime)),
                "cgroups": sorted(str(c) for c in env.cgroups()),
                "shims/conmon": [str(p) for p in env.shims()],
                "mounts": container_mounts(str(env.base), mounts_before),
                "runtime processes": runtime_processes()}

    pod, config = kube.run_pod("soak-probe")
    probe = kube.run(pod, config, "probe", ["sleep", "3600"])
    with runtime_call(str(env.state_root(kube.runtime)), probe):
        rec.check_probe(leaks())
    kube.remove_pod(pod)

    def client(c: int) -> None:
        pod, config = kube.run_pod(f"soak{c}")
        sleeper = kube.run(pod, config, "sleeper", ["sleep", "3600"])
        with rec.lock:
            rec.containers += 2  # the sandbox's and the sleeper

        def once(i: int) -> str | None:
            cid = kube.run(pod, config, f"c{i}", ["sh", "-c", f"echo c{c}-{i}"])
            st = kube.wait_exited(cid, timeout=300)
            logs = kube.logs(config, f"c{i}")
            late = ""
            if logs != [f"stdout c{c}-{i}"]:  # still a failure; tell a late log line from a lost one
                begin = time.monotonic()
                while (later := kube.logs(config, f"c{i}")) == logs and time.monotonic() - begin < 10:
                    time.sleep(0.2)
                late = (f"; {later} {time.monotonic() - begin:.1f}s after EXITED" if later != logs
                        else "; still so 10s after EXITED")
            kube.rt.RemoveContainer(cri.RemoveContainerRequest(container_id=cid), timeout=300)
            if st.exit_code != 0 or logs != [f"stdout c{c}-{i}"]:
                return f"exit {st.exit_code} ({st.reason}: {st.message}), logs {logs}{late}"
            return None

        def missing(i: int) -> str | None:
            """Create + start of a missing program: StartContainer fails with pyruntime's reason."""
            cid = kube.create(pod, config, f"m{i}", [MISSING])
            try:
                kube.start(cid)
                return "StartContainer succeeded"
            except grpc.RpcError as e:
                details = e.details() or ""
                ok = REASON in details and "linux.seccomp" not in details
                return None if ok else f"want {REASON!r} and no seccomp hint: {details or '(EMPTY MESSAGE)'}"
            finally:
                kube.rt.RemoveContainer(cri.RemoveContainerRequest(container_id=cid), timeout=300)

        def exec_once() -> str | None:
            r = kube.exec_sync(sleeper, ["echo", "in"], timeout=300)
            return None if (r.exit_code, r.stdout) == (0, b"in\n") else f"exit {r.exit_code}: {r.stderr!r}"

        for i in range(CONTAINERS):
            rec.call(f"pod {c} container {i}", lambda i=i: once(i), containers=1)
            if i % 25 == 12:
                rec.call(f"pod {c} container m{i} {MISSING}", lambda i=i: missing(i), refused=1)
            if i % 10 == 5:
                rec.call(f"pod {c} exec", exec_once)
        rec.call(f"pod {c} remove", lambda: kube.remove_pod(pod))

    clients(rec, client)
    _finish(rec, leaks)
