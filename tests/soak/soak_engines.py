"""`make soak` (not part of `make test`): podman, docker and the CRI path, each with several clients in
parallel running a few hundred containers, with CPU load beside (busy loops at nice 10).

Every engine-level failure is recorded with the engine's own message (stderr, or the gRPC details);
a failure without a message is a failure of its own (the engine passes pyruntime a --log, and
pyruntime's reason must reach it). The runtime is tests/soak/runtime-wrapper.sh.in (set by the
Makefile through PYRUNTIME_BIN), which keeps every non-zero runtime call with the tail of its --log
in SOAK_DIR/runtime-failures.log. The engine tiers' fixtures check the leaks (containers, runtime
state, cgroups, shims, conmon, mounts) after each engine. SOAK_DIR/report.txt has the summary.

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
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for tier in ("podman", "docker", "kubernetes"):
    sys.path.insert(0, str(HERE.parent / tier))
from cri_env import Kube, cri, cri_env_fixture, kube_fixture  # noqa: E402, F401
from docker_env import docker_env_fixture, docker_fixture  # noqa: E402, F401
from podman_env import podman_env_fixture, podman_fixture  # noqa: E402, F401

CLIENTS = int(os.environ.get("SOAK_CLIENTS", "4"))
CONTAINERS = int(os.environ.get("SOAK_CONTAINERS", "75"))
LOAD = int(os.environ.get("SOAK_LOAD", "1"))
RUNTIMES = os.environ.get("SOAK_RUNTIMES", "pyruntime").split(",")
OUT = Path(os.environ.get("SOAK_DIR") or tempfile.mkdtemp(prefix="pyrt-soak-"))


class Record:
    def __init__(self, engine: str) -> None:
        self.engine = engine
        self.lock = threading.Lock()
        self.times: list[float] = []
        self.failures: list[str] = []

    def call(self, what: str, fn: Callable[[], str | None]) -> None:
        """fn returns None on success, else the failure's text (the engine's message)."""
        begin = time.monotonic()
        try:
            problem = fn()
        except Exception as e:  # noqa: BLE001 - a timeout or an RPC error is a failure to report
            problem = f"{type(e).__name__}: {getattr(e, 'details', lambda: '')() or e}"
        with self.lock:
            self.times.append(time.monotonic() - begin)
            if problem is not None:
                self.failures.append(f"{what}: {problem.strip() or '(EMPTY MESSAGE)'}")

    def report(self) -> str:
        t = sorted(self.times) or [0.0]
        lines = [f"== {self.engine}: {len(self.times)} calls, {len(self.failures)} failed; "
                 f"p50 {t[len(t) // 2]:.2f}s p95 {t[int(len(t) * 0.95)]:.2f}s max {t[-1]:.2f}s"]
        lines += [f"  {f}" for f in self.failures[:50]]
        with open(OUT / "report.txt", "a") as f:
            f.write("\n".join(lines) + "\n")
        return "\n".join(lines)


@pytest.fixture
def cpu_load() -> Iterator[None]:
    procs = [subprocess.Popen(["nice", "-n", "10", "sh", "-c", "while :; do :; done"]) for _ in range(LOAD)]
    yield
    for p in procs:
        p.send_signal(signal.SIGKILL)
        p.wait()


def clients(fn: Callable[[int], None]) -> None:
    threads = [threading.Thread(target=fn, args=(c,)) for c in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _skip_unless_soaked(runtime: str) -> None:
    if runtime not in RUNTIMES:
        pytest.skip(f"SOAK_RUNTIMES={','.join(RUNTIMES)}")


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
                call("run", "--rm", image, "echo", tag, check=False, timeout=300), f"{tag}\n"))
            if i % 10 == 5:
                name = f"soak-{c}-{i}"
                rec.call(f"run -d {name}", lambda name=name: check(
                    call("run", "-d", "--name", name, image, "sleep", "600", check=False, timeout=300),
                    call("inspect", "--format", "{{.Id}}", name, check=False).stdout))
                rec.call(f"exec {name}", lambda name=name: check(
                    call("exec", name, "echo", "in", check=False, timeout=300), "in\n"))
                rec.call(f"rm -f {name}", lambda name=name: check(
                    call("rm", "-f", name, check=False, timeout=300), f"{name}\n"))
    return client


def test_soak_podman(podman, cpu_load):
    _skip_unless_soaked(podman.runtime)
    rec = Record(f"podman/{podman.runtime}")
    clients(_cli_soak(rec, lambda *a, **kw: podman(*a, **kw) if a[0] != "rm" else podman(
        "rm", "-f", "-t", "0", *a[2:], **kw), podman.image))
    print(rec.report())
    assert not rec.failures, rec.report()


def test_soak_docker(docker, cpu_load):
    _skip_unless_soaked(docker.runtime)
    rec = Record(f"docker/{docker.runtime}")
    clients(_cli_soak(rec, docker, docker.image))
    print(rec.report())
    assert not rec.failures, rec.report()


def test_soak_cri(kube: Kube, cpu_load):
    """Each client: one pod, containers created, started, waited for and removed one after another
    (an ExecSync into a long-lived one every 10th), then the pod removed."""
    _skip_unless_soaked(kube.runtime)
    rec = Record(f"cri/{kube.runtime}")

    def client(c: int) -> None:
        pod, config = kube.run_pod(f"soak{c}")
        sleeper = kube.run(pod, config, "sleeper", ["sleep", "3600"])

        def once(i: int) -> str | None:
            cid = kube.run(pod, config, f"c{i}", ["sh", "-c", f"echo c{c}-{i}"])
            st = kube.wait_exited(cid, timeout=300)
            logs = kube.logs(config, f"c{i}")
            kube.rt.RemoveContainer(cri.RemoveContainerRequest(container_id=cid), timeout=300)
            if st.exit_code != 0 or logs != [f"stdout c{c}-{i}"]:
                return f"exit {st.exit_code} ({st.reason}: {st.message}), logs {logs}"
            return None

        def exec_once() -> str | None:
            r = kube.exec_sync(sleeper, ["echo", "in"], timeout=300)
            return None if (r.exit_code, r.stdout) == (0, b"in\n") else f"exit {r.exit_code}: {r.stderr!r}"

        for i in range(CONTAINERS):
            rec.call(f"pod {c} container {i}", lambda i=i: once(i))
            if i % 10 == 5:
                rec.call(f"pod {c} exec", exec_once)
        kube.remove_pod(pod)

    clients(client)
    print(rec.report())
    assert not rec.failures, rec.report()
