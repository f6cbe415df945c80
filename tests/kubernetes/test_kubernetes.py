"""Kubernetes' path: containerd 1.6's CRI plugin, runtime handler `pyrt` (BinaryName = pyruntime) and
`runc` as the control, called over the CRI v1 API the way kubelet calls it (tests/kubernetes/cri_env.py):
RunPodSandbox (host network), CreateContainer/StartContainer, ContainerStatus, logs, ExecSync,
UpdateContainerResources, StopContainer, RemoveContainer, StopPodSandbox/RemovePodSandbox.
"""

from __future__ import annotations

import time

import pytest
from cri_env import HANDLERS, Kube, cri, cri_env_fixture, kube_fixture  # noqa: F401 - the fixtures

pytestmark = pytest.mark.kubernetes

NET_RAW = 13


def status_field(text: str, name: str) -> str:
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"{name} not in {text!r}")


def test_pod_and_container_lifecycle(kube):
    pod, pod_config = kube.run_pod("life")
    status = kube.rt.PodSandboxStatus(cri.PodSandboxStatusRequest(pod_sandbox_id=pod)).status
    assert status.state == cri.SANDBOX_READY
    assert status.runtime_handler == kube.handler
    # the sandbox's pause container is the handler's own (each runtime reads only its own state)
    assert kube.runtime_state(pod) == "running"
    cid = kube.create(pod, pod_config, "once", ["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert kube.status(cid).state == cri.CONTAINER_CREATED
    kube.start(cid)
    st = kube.wait_exited(cid)
    assert st.exit_code == 3 and st.reason == "Error"
    logs = kube.logs(pod_config, "once")
    assert sorted(logs) == ["stderr err", "stdout out"], logs  # two pipes: either may come first
    kube.rt.RemoveContainer(cri.RemoveContainerRequest(container_id=cid))
    ids = [c.id for c in kube.rt.ListContainers(cri.ListContainersRequest()).containers]
    assert cid not in ids
    kube.remove_pod(pod)
    assert not kube.rt.ListPodSandbox(cri.ListPodSandboxRequest()).items


def test_hostname_of_a_host_network_pod(kube):
    """A host-network pod has no UTS namespace of its own (kubelet leaves its hostname empty). Given
    one anyway, runc refuses the sandbox; pyruntime ignores the name (tests/integration/
    test_namespaces.py: either is accepted, the host's name must not change). A known difference."""
    import socket

    import grpc

    config = kube.pod_config("named")
    config.hostname = "named-pod"
    before = socket.gethostname()
    if kube.runtime == "runc":
        with pytest.raises(grpc.RpcError) as e:
            kube.rt.RunPodSandbox(cri.RunPodSandboxRequest(config=config, runtime_handler=kube.handler))
        assert "UTS namespace" in e.value.details(), e.value.details()
    else:
        pod = kube.rt.RunPodSandbox(cri.RunPodSandboxRequest(config=config, runtime_handler=kube.handler)
                                    ).pod_sandbox_id
        cid = kube.run(pod, config, "name", ["hostname"])
        kube.wait_exited(cid)
        assert kube.logs(config, "name") == [f"stdout {before}"]
        kube.remove_pod(pod)
    assert socket.gethostname() == before


def test_exec_sync(kube):
    pod, pod_config = kube.run_pod("exec")
    cid = kube.run(pod, pod_config, "sleeper", ["sleep", "600"])
    r = kube.exec_sync(cid, ["sh", "-c", "echo exec-ok; echo to-err >&2; cat /proc/1/cmdline | tr '\\0' ' '"])
    assert (r.exit_code, r.stdout, r.stderr) == (0, b"exec-ok\nsleep 600 ", b"to-err\n")
    assert kube.exec_sync(cid, ["sh", "-c", "exit 5"]).exit_code == 5
    with pytest.raises(cri_env_error()) as e:
        kube.exec_sync(cid, ["no-such-program"])
    assert "executable file not found" in str(e.value)
    assert kube.status(cid).state == cri.CONTAINER_RUNNING
    kube.remove_pod(pod)


def cri_env_error() -> type:
    import grpc

    return grpc.RpcError


def test_update_container_resources(kube):
    pod, pod_config = kube.run_pod("update")
    cid = kube.run(pod, pod_config, "limited", ["sleep", "600"],
                   resources=cri.LinuxContainerResources(memory_limit_in_bytes=64 << 20, cpu_shares=256))
    mem = kube.cgroup_file(pod_config, cid, "memory", "memory.limit_in_bytes")
    shares = kube.cgroup_file(pod_config, cid, "cpu", "cpu.shares")
    quota = kube.cgroup_file(pod_config, cid, "cpu", "cpu.cfs_quota_us")
    assert int(mem.read_text()) == 64 << 20 and shares.read_text().strip() == "256"
    kube.rt.UpdateContainerResources(cri.UpdateContainerResourcesRequest(
        container_id=cid, linux=cri.LinuxContainerResources(memory_limit_in_bytes=96 << 20, cpu_shares=512,
                                                            cpu_period=100000, cpu_quota=50000)))
    assert int(mem.read_text()) == 96 << 20
    assert shares.read_text().strip() == "512" and quota.read_text().strip() == "50000"
    inside = kube.exec_sync(cid, ["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"])
    assert inside.stdout.decode().strip() == str(96 << 20)
    kube.remove_pod(pod)


def test_stop_container(kube):
    pod, pod_config = kube.run_pod("stop")
    polite = kube.run(pod, pod_config, "polite", ["sh", "-c", 'trap "echo got-term; exit 3" TERM; '
                                                  'echo ready; while :; do sleep 0.1; done'])
    stubborn = kube.run(pod, pod_config, "stubborn", ["sh", "-c", 'trap "" TERM; while :; do sleep 0.1; done'])
    deadline = time.monotonic() + 20
    while "stdout ready" not in kube.logs(pod_config, "polite"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    begin = time.monotonic()
    kube.rt.StopContainer(cri.StopContainerRequest(container_id=polite, timeout=20))
    assert time.monotonic() - begin < 10, "SIGTERM was not delivered: StopContainer waited for its timeout"
    assert kube.status(polite).exit_code == 3
    assert "stdout got-term" in kube.logs(pod_config, "polite")
    kube.rt.StopContainer(cri.StopContainerRequest(container_id=stubborn, timeout=1))
    st = kube.status(stubborn)
    assert st.state == cri.CONTAINER_EXITED and st.exit_code == 137
    for cid in (polite, stubborn):
        kube.rt.RemoveContainer(cri.RemoveContainerRequest(container_id=cid))
    kube.remove_pod(pod)


def test_oom_killed(kube):
    pod, pod_config = kube.run_pod("oom")
    hog = "awk 'BEGIN { s = \"x\"; for (i = 0; i < 28; i++) s = s s; print length(s) }'"
    cid = kube.run(pod, pod_config, "hog", ["sh", "-c", f"exec {hog}"],
                   resources=cri.LinuxContainerResources(memory_limit_in_bytes=32 << 20))
    st = kube.wait_exited(cid)
    assert (st.exit_code, st.reason) == (137, "OOMKilled")
    kube.remove_pod(pod)


SECURITY_SCRIPT = ("id; grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/self/status; touch /x 2>/dev/null; echo root=$?; "
                   "ls -l /proc/keys | cut -c1; echo 1 > /proc/sys/kernel/domainname; "
                   "echo sys=$?")


def security_context() -> dict:
    return {"security_context": cri.LinuxContainerSecurityContext(
        run_as_user=cri.Int64Value(value=1000), run_as_group=cri.Int64Value(value=1000),
        readonly_rootfs=True, no_new_privs=True,
        capabilities=cri.Capability(drop_capabilities=["ALL"], add_capabilities=["NET_RAW"]),
        masked_paths=["/proc/keys"], readonly_paths=["/proc/sys"])}


kube_logs: list[str] = []


def run_secure(kube: Kube) -> tuple[int, list[str]]:
    pod, pod_config = kube.run_pod("sec")
    cid = kube.run(pod, pod_config, "sec", ["sh", "-c", SECURITY_SCRIPT], **security_context())
    st = kube.wait_exited(cid)
    kube_logs[:] = kube.logs(pod_config, "sec")
    lines = [line.split(" ", 1)[1] for line in kube_logs if line.startswith("stdout ")]
    kube.remove_pod(pod)
    return st.exit_code, lines


def test_security_context(kube):
    code, lines = run_secure(kube)
    out = "\n".join(lines)
    assert out.startswith("uid=1000(user) gid=1000(user)"), out
    assert int(status_field(out, "CapBnd"), 16) == 1 << NET_RAW
    assert int(status_field(out, "CapEff"), 16) == 0
    assert status_field(out, "NoNewPrivs") == "1"
    assert lines[-3:] == ["root=1", "c", "sys=1"], "\n".join(kube_logs)  # read-only root, masked /proc/keys (/dev/null), ro /proc/sys


def test_security_context_same_as_runc(cri_env):
    """The same pod under both handlers prints the same lines and exits the same way."""
    outs = {name: run_secure(Kube(name, cri_env)) for name in HANDLERS}
    assert outs["pyruntime"] == outs["runc"]
