"""The kubernetes tier's fixtures (imported by test_kubernetes.py; not a conftest.py): a private
containerd 1.6 with its CRI plugin (runtime handlers `pyrt` -> pyruntime and `runc` -> runc, both
io.containerd.runc.v2 with SystemdCgroup = false), driven over the CRI v1 gRPC API as kubelet drives
it (stubs from the PyPI package container-runtime-interface-api).

Everything lives under one temporary directory: containerd's root, state, sockets, the CRI plugin's
files, the runtimes' --root (options.Root), an empty CNI config dir (pods use the host network, so no
CNI plugin runs) and the pod logs. Pod cgroups go under /pyrt-k8s-<tag>. The images (the busybox
rootfs, and a "pause" image made of it for sandboxes, no registry) are imported into k8s.io.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "containerd"))
import oci_image  # noqa: E402
from private import PrivateContainerd, PrivateDir, pids_naming  # noqa: E402
from pyruntime_tests_conftest import ROOTFS, RUNTIME, cgroup_dirs, valid_id  # noqa: E402

# gRPC's fork handlers run in every child this pytest process forks once a channel has existed (the
# podman tier's pty tests fork with a preexec_fn after this tier): in the child they poke gRPC's poller
# ("epoll_wait error: Bad file descriptor" on the child's terminal) and may hang it before its exec.
# Nothing here uses gRPC across a fork.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
try:
    import grpc
    from cri_api.v1 import api_pb2 as cri
    from cri_api.v1 import api_pb2_grpc as cri_grpc
except ImportError:  # the test extra is not installed
    grpc = cri = cri_grpc = None

IMAGE = "localhost/pyrt-busybox:latest"
PAUSE = "localhost/pyrt-pause:latest"
HANDLERS = {"pyruntime": "pyrt", "runc": "runc"}
NAMESPACE = "k8s.io"
SHIM = ("containerd-shim-runc-v2",)
RPC_TIMEOUT = 120
# as kubelet sets them for a hostNetwork pod without shareProcessNamespace
NAMESPACES = cri.NamespaceOption(network=cri.NODE, pid=cri.CONTAINER, ipc=cri.POD) if cri else None


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "the kubernetes tier runs as root"
    if cri is None:
        return "container-runtime-interface-api/grpcio are not installed (pip install '.[test]')"
    for tool in ("containerd", "ctr", "containerd-shim-runc-v2", "runc"):
        if not shutil.which(tool):
            return f"{tool} is not installed (make deps)"
    if not (ROOTFS / "bin" / "busybox").exists():
        return "bundles/busybox/rootfs is missing (make bundles)"
    return None


def cri_config(base: Path) -> str:
    """The CRI plugin's section: what the README tells users to add (BinaryName), plus the private
    directories a test needs (Root, CNI dirs)."""
    runtimes = ""
    for handler, binary in (("pyrt", RUNTIME), ("runc", shutil.which("runc"))):
        section = f'plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{handler}'
        runtimes += (f'[{section}]\n  runtime_type = "io.containerd.runc.v2"\n'
                     f'[{section}.options]\n  BinaryName = "{binary}"\n  Root = "{base}/rt-{handler}"\n'
                     '  SystemdCgroup = false\n')
    return (f'[plugins."io.containerd.grpc.v1.cri"]\n  sandbox_image = "{PAUSE}"\n'
            '  stream_server_address = "127.0.0.1"\n  stream_server_port = "0"\n'
            # no CAP_SYS_RESOURCE in this host's bounding set: neither runc nor pyruntime may lower
            # oom_score_adj below containerd's own (the pause container asks for -998)
            '  enable_selinux = false\n  restrict_oom_score_adj = true\n'
            '[plugins."io.containerd.grpc.v1.cri".containerd]\n  snapshotter = "overlayfs"\n'
            '  default_runtime_name = "runc"\n'
            f'[plugins."io.containerd.grpc.v1.cri".cni]\n  bin_dir = "{base}/cni-bin"\n'
            f'  conf_dir = "{base}/cni-conf"\n' + runtimes)


class CriEnv:
    def __init__(self, pdir: PrivateDir, containerd: PrivateContainerd, tag: str) -> None:
        self.pdir, self.containerd, self.base = pdir, containerd, pdir.path
        self.cgroup_parent = f"/pyrt-k8s-{tag}"
        self.channel = grpc.insecure_channel(f"unix://{containerd.sock}")
        self.rt = cri_grpc.RuntimeServiceStub(self.channel)
        self.images = cri_grpc.ImageServiceStub(self.channel)

    def state_root(self, runtime: str) -> Path:
        return self.base / f"rt-{HANDLERS[runtime]}" / NAMESPACE

    def state_ids(self, runtime: str) -> set[str]:
        root = self.state_root(runtime)
        return {n for n in os.listdir(root) if valid_id(n)} if root.is_dir() else set()

    def cgroups(self) -> list[Path]:
        """Container cgroups (<parent>/pod<uid>/<id>); the pod level is kubelet's to make and remove."""
        top = self.cgroup_parent.lstrip("/")
        return [d for d in cgroup_dirs(self.cgroup_parent) if d.name != top and d.parent.name != top]

    def remove_pod_cgroups(self) -> None:
        top = self.cgroup_parent.lstrip("/")
        for d in cgroup_dirs(self.cgroup_parent):
            if d.parent.name == top:
                try:
                    d.rmdir()
                except OSError:
                    pass

    def shims(self) -> list[int]:
        return pids_naming(str(self.base), SHIM)

    def remove_all_pods(self) -> None:
        for pod in self.rt.ListPodSandbox(cri.ListPodSandboxRequest(), timeout=RPC_TIMEOUT).items:
            self.rt.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod.id), timeout=RPC_TIMEOUT)
            self.rt.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod.id), timeout=RPC_TIMEOUT)


def _wait_images(env: CriEnv) -> None:
    deadline = time.monotonic() + 60
    for ref in (IMAGE, PAUSE):
        while not env.images.ImageStatus(cri.ImageStatusRequest(image=cri.ImageSpec(image=ref)),
                                         timeout=RPC_TIMEOUT).image.id:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the CRI plugin never saw the imported image {ref}")
            time.sleep(0.2)


@pytest.fixture(scope="session", name="cri_env")
def cri_env_fixture() -> Iterator[CriEnv]:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    pdir = PrivateDir("pyrt-k8s-")
    base = pdir.path
    for d in ("cni-bin", "cni-conf", "logs"):
        (base / d).mkdir()
    containerd = PrivateContainerd(base, extra=cri_config(base), cri=True)
    env: CriEnv | None = None
    try:
        containerd.start()
        oci_image.build(ROOTFS, base / "busybox.tar", IMAGE)
        oci_image.build(ROOTFS, base / "pause.tar", PAUSE, cmd=["sleep", "2147483647"])
        for tar in ("busybox.tar", "pause.tar"):
            containerd.ctr(NAMESPACE, "images", "import", str(base / tar))
            (base / tar).unlink()
        env = CriEnv(pdir, containerd, uuid.uuid4().hex[:8])
        _wait_images(env)
        version = env.rt.Version(cri.VersionRequest(), timeout=RPC_TIMEOUT)
        assert version.runtime_api_version == "v1", version
    except BaseException:
        if env is not None:
            env.channel.close()
        containerd.stop()
        pdir.cleanup()
        raise
    yield env
    env.remove_all_pods()
    env.channel.close()
    containerd.stop()
    shims = env.shims()
    container_mounts = [m for m in Path("/proc/self/mountinfo").read_text().splitlines()
                        if str(base) in m.split()[4] and (" - overlay " in m or " - nsfs " in m)]
    left = pdir.cleanup()
    leftover_cgroups = env.cgroups()
    for d in cgroup_dirs(env.cgroup_parent):
        try:
            d.rmdir()
        except OSError:
            pass
    remaining = cgroup_dirs(env.cgroup_parent)
    assert not shims, f"shims left after the session: {shims}"
    assert not left["processes"], f"processes left after the session: {left['processes']}"
    assert not container_mounts, f"container mounts left after containerd stopped: {container_mounts}"
    assert not leftover_cgroups and not remaining, f"cgroups left: {leftover_cgroups or remaining}"


class Kube:
    """The calls kubelet makes, for pods of one runtime handler."""

    image = IMAGE

    def __init__(self, runtime: str, env: CriEnv) -> None:
        self.runtime, self.env = runtime, env
        self.handler = HANDLERS[runtime]
        self.rt = env.rt

    def pod_config(self, name: str, **linux: Any) -> Any:
        uid = uuid.uuid4().hex
        logdir = self.env.base / "logs" / f"{name}-{uid[:8]}"
        logdir.mkdir()
        return cri.PodSandboxConfig(
            metadata=cri.PodSandboxMetadata(name=name, uid=uid, namespace="default", attempt=0),
            # kubelet leaves the hostname empty for host-network pods (there is no UTS namespace of
            # the pod's own to set it in: runc refuses a hostname without one)
            hostname="", log_directory=str(logdir),
            labels={"pyrt-test": "1"},
            linux=cri.LinuxPodSandboxConfig(
                cgroup_parent=f"{self.env.cgroup_parent}/pod{uid[:12]}",
                security_context=cri.LinuxSandboxSecurityContext(namespace_options=NAMESPACES), **linux))

    def run_pod(self, name: str = "pod") -> tuple[str, Any]:
        config = self.pod_config(name)
        resp = self.rt.RunPodSandbox(cri.RunPodSandboxRequest(config=config, runtime_handler=self.handler),
                                     timeout=RPC_TIMEOUT)
        return resp.pod_sandbox_id, config

    def create(self, pod: str, pod_config: Any, name: str, command: list[str], **linux: Any) -> str:
        linux.setdefault("security_context", cri.LinuxContainerSecurityContext())
        linux["security_context"].namespace_options.CopyFrom(NAMESPACES)
        config = cri.ContainerConfig(metadata=cri.ContainerMetadata(name=name, attempt=0),
                                     image=cri.ImageSpec(image=IMAGE), command=command,
                                     log_path=f"{name}.log", linux=cri.LinuxContainerConfig(**linux))
        return self.rt.CreateContainer(cri.CreateContainerRequest(pod_sandbox_id=pod, config=config,
                                                                  sandbox_config=pod_config),
                                       timeout=RPC_TIMEOUT).container_id

    def start(self, cid: str) -> None:
        self.rt.StartContainer(cri.StartContainerRequest(container_id=cid), timeout=RPC_TIMEOUT)

    def run(self, pod: str, pod_config: Any, name: str, command: list[str], **linux: Any) -> str:
        cid = self.create(pod, pod_config, name, command, **linux)
        self.start(cid)
        return cid

    def status(self, cid: str) -> Any:
        return self.rt.ContainerStatus(cri.ContainerStatusRequest(container_id=cid), timeout=RPC_TIMEOUT).status

    def wait_exited(self, cid: str, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while (st := self.status(cid)).state != cri.CONTAINER_EXITED:
            assert time.monotonic() < deadline, f"container {cid} still {st.state} after {timeout}s"
            time.sleep(0.1)
        return st

    def exec_sync(self, cid: str, cmd: list[str], timeout: int = 30) -> Any:
        return self.rt.ExecSync(cri.ExecSyncRequest(container_id=cid, cmd=cmd, timeout=timeout),
                                timeout=RPC_TIMEOUT)

    def logs(self, pod_config: Any, name: str) -> list[str]:
        """The CRI log lines (`<time> <stream> <P|F> <text>`) -> `<stream> <text>`."""
        path = Path(pod_config.log_directory, f"{name}.log")
        if not path.exists():
            return []
        return [" ".join((parts := line.split(" ", 3))[1:2] + parts[3:]) for line in path.read_text().splitlines()]

    def remove_pod(self, pod: str) -> None:
        self.rt.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=RPC_TIMEOUT)
        self.rt.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=RPC_TIMEOUT)

    def cgroup_file(self, pod_config: Any, cid: str, controller: str, name: str) -> Path:
        return Path("/sys/fs/cgroup", controller, pod_config.linux.cgroup_parent.lstrip("/"), cid, name)

    def runtime_state(self, cid: str) -> str:
        import json
        import subprocess

        binary = RUNTIME if self.runtime == "pyruntime" else shutil.which("runc")
        proc = subprocess.run([binary, "--root", str(self.env.state_root(self.runtime)), "state", cid],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)["status"]


def _settled(check: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while (value := check()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return value


@pytest.fixture(params=list(HANDLERS), name="kube")
def kube_fixture(request: pytest.FixtureRequest, cri_env: CriEnv) -> Iterator[Kube]:
    k = Kube(request.param, cri_env)
    failed_before = request.session.testsfailed
    yield k
    pods = [p.id for p in cri_env.rt.ListPodSandbox(cri.ListPodSandboxRequest(), timeout=RPC_TIMEOUT).items]
    cri_env.remove_all_pods()
    leaked_states = sorted(_settled(lambda: cri_env.state_ids(k.runtime)))
    leaked_cgroups = [str(c) for c in _settled(cri_env.cgroups)]
    for c in sorted(leaked_cgroups, key=lambda p: -p.count("/")):
        try:
            os.rmdir(c)
        except OSError:
            pass
    cri_env.remove_pod_cgroups()
    shims = _settled(cri_env.shims)
    if request.session.testsfailed != failed_before:
        return
    assert not pods, f"test left pods: {pods}"
    assert not leaked_states, f"runtime state left in {cri_env.state_root(k.runtime)}: {leaked_states}"
    assert not leaked_cgroups, f"cgroups left: {leaked_cgroups}"
    assert not shims, f"shims left: {shims}"
