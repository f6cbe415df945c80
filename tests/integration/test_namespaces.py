"""Namespaces: each kind new or joined by path, loopback in a new netns, PID 1, time offsets, UTS names."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest
from pyruntime_tests_conftest import wait_until

KINDS = {"pid": "pid", "network": "net", "ipc": "ipc", "uts": "uts", "mount": "mnt", "cgroup": "cgroup",
         "time": "time"}
READ_NS = "; ".join(f"echo {name}=$(readlink /proc/self/ns/{name})" for name in KINDS.values())


def _ns_of(output: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in output.split())


def _host_ns(name: str) -> str:
    return os.readlink(f"/proc/self/ns/{name}")


def _with_namespaces(*kinds: str, **paths: str):
    def edit(c):
        c["linux"]["namespaces"] = [{"type": k} for k in kinds] + [{"type": k, "path": p} for k, p in paths.items()]
        if "uts" not in kinds and "uts" not in paths:
            c.pop("hostname", None)
    return edit


def test_every_namespace_kind_new(sh):
    inside = _ns_of(sh(READ_NS, edit=_with_namespaces(*KINDS)).stdout)
    assert set(inside) == set(KINDS.values())
    for name, ns in inside.items():
        assert ns.startswith(f"{name}:[") and ns != _host_ns(name), name


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "mount"])
def test_namespace_kind_alone(sh, kind):
    """Only the mount namespace and `kind` are new: that one differs from the host, the others are shared."""
    inside = _ns_of(sh(READ_NS, edit=_with_namespaces("mount", kind)).stdout)
    for k, name in KINDS.items():
        if k in ("mount", kind):
            assert inside[name] != _host_ns(name), name
        else:
            assert inside[name] == _host_ns(name), name


def test_new_network_namespace_has_only_loopback_up(sh):
    out = sh("cat /sys/class/net/lo/flags; ls /sys/class/net; ip -o link show lo").stdout.split("\n")
    assert int(out[0], 16) & 0x1, "IFF_UP"  # 0x9 = UP | LOOPBACK
    assert out[1] == "lo"
    assert "UP" in out[2].split("<", 1)[1].split(">")[0].split(",")


def test_loopback_is_usable(sh):
    # the client retries until the listener is up (a fixed sleep was too short under load)
    script = ("nc -l -p 7777 > /tmp/got & for i in $(seq 100); do echo hello | nc -w 2 127.0.0.1 7777 && break; "
              "sleep 0.05; done; wait; cat /tmp/got")
    assert sh(script).stdout.strip() == "hello"


def test_process_is_pid_1(sh):
    out = sh("echo $$; cut -d' ' -f4 /proc/$$/stat; ls /proc | grep -c '^[0-9]'").stdout.split()
    assert out[0] == "1"
    assert out[1] == "0"  # its parent is outside the namespace
    assert int(out[2]) <= 4  # sh, cat/ls, grep: nothing from the host


def test_time_namespace_offsets(sh):
    boot_offset, mono_offset = 10 * 86400, 5000

    def edit(c):
        c["linux"]["namespaces"].append({"type": "time"})
        c["linux"]["timeOffsets"] = {"boottime": {"secs": boot_offset, "nanosecs": 0},
                                     "monotonic": {"secs": mono_offset, "nanosecs": 42}}

    out = sh("cat /proc/uptime; cat /proc/self/timens_offsets", edit=edit).stdout.splitlines()
    with open("/proc/uptime") as f:
        host_uptime = float(f.read().split()[0])
    inside_uptime = float(out[0].split()[0])
    assert boot_offset - 1 <= inside_uptime - host_uptime <= boot_offset + 60
    offsets = {line.split()[0]: line.split()[1:] for line in out[1:]}
    assert offsets == {"monotonic": [str(mono_offset), "42"], "boottime": [str(boot_offset), "0"]}


def test_time_namespace_without_offsets(sh):
    def edit(c):
        c["linux"]["namespaces"].append({"type": "time"})

    out = sh("cat /proc/uptime; readlink /proc/self/ns/time", edit=edit).stdout.splitlines()
    with open("/proc/uptime") as f:
        host_uptime = float(f.read().split()[0])
    assert abs(float(out[0].split()[0]) - host_uptime) < 60
    assert out[1] != _host_ns("time")


def test_hostname_and_domainname(sh):
    def edit(c):
        c["hostname"] = "box-name"
        c["domainname"] = "example.test"

    before = (socket.gethostname(), Path("/proc/sys/kernel/domainname").read_text())
    out = sh("hostname; cat /proc/sys/kernel/domainname", edit=edit).stdout.split()
    assert out == ["box-name", "example.test"]
    assert (socket.gethostname(), Path("/proc/sys/kernel/domainname").read_text()) == before


def test_hostname_without_uts_namespace_leaves_host_alone(sh):
    def edit(c):
        c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "uts"]
        c["hostname"] = "must-not-leak"

    before = socket.gethostname()
    proc = sh("hostname", edit=edit, check=False)
    assert socket.gethostname() == before
    # runc refuses this config; either refusing or ignoring is fine, changing the host is not.
    assert proc.returncode == 1 or proc.stdout.strip() == before


# -- joining namespaces by path ---------------------------------------------------------------------

def test_join_namespaces_of_a_running_container(rt, make_bundle, sh, cid):
    first = make_bundle(["sleep", "100"], edit=lambda c: c.update(hostname="first-box"))
    rt("create", "--bundle", str(first), f"{cid}-first")
    try:
        rt("start", f"{cid}-first")
        pid = rt.state(f"{cid}-first")["pid"]
        mine = {k: os.readlink(f"/proc/{pid}/ns/{k}") for k in ("net", "uts", "ipc", "pid")}

        def join(c):
            c["linux"]["namespaces"] = [
                {"type": "mount"}, {"type": "cgroup"},
                {"type": "network", "path": f"/proc/{pid}/ns/net"}, {"type": "uts", "path": f"/proc/{pid}/ns/uts"},
                {"type": "ipc", "path": f"/proc/{pid}/ns/ipc"}, {"type": "pid", "path": f"/proc/{pid}/ns/pid"}]
            c.pop("hostname")

        proc = sh(READ_NS + "; hostname; echo $$", edit=join)
        out = proc.stdout.split()
        inside = _ns_of(" ".join(out[:-2]))
        for k in ("net", "uts", "ipc", "pid"):
            assert inside[k] == mine[k], (k, proc.stdout, proc.stderr)
        assert out[-2] == "first-box", proc.stdout
        assert out[-1] != "1", proc.stdout  # a joined pid namespace already has its PID 1 (the first container)
    finally:
        rt("delete", "--force", f"{cid}-first")


@pytest.fixture
def pinned_ns(tmp_path: Path):
    """pinned_ns(kind) -> a namespace file made by unshare(1), bind-mounted under tmp_path;
    unmounted afterwards."""
    made: list[Path] = []

    def make(kind: str) -> Path:
        path = tmp_path / f"ns-{kind}"
        path.touch()
        subprocess.run(["unshare", f"--{kind}={path}", "true"], check=True)
        made.append(path)
        return path

    yield make
    for path in made:
        subprocess.run(["umount", str(path)], check=True)


def test_join_namespaces_pinned_by_unshare(sh, pinned_ns):
    net, uts = pinned_ns("net"), pinned_ns("uts")
    subprocess.run(["nsenter", f"--uts={uts}", "hostname", "pinned-host"], check=True)

    def join(c):
        c["linux"]["namespaces"] = [{"type": "mount"}, {"type": "pid"},
                                    {"type": "network", "path": str(net)}, {"type": "uts", "path": str(uts)}]
        c.pop("hostname")

    out = sh("readlink /proc/self/ns/net; readlink /proc/self/ns/uts; hostname; ls /sys/class/net",
             edit=join).stdout.split()
    assert out[0] == f"net:[{os.stat(net).st_ino}]"
    assert out[1] == f"uts:[{os.stat(uts).st_ino}]"
    assert out[2:] == ["pinned-host", "lo"]


def test_join_missing_namespace_path_fails_cleanly(rt, make_bundle, cid, tmp_path):
    def join(c):
        c["linux"]["namespaces"] = [{"type": "mount"}, {"type": "network", "path": str(tmp_path / "nope")}]

    proc = rt("create", "--bundle", str(make_bundle(["true"], edit=join)), cid, check=False)
    assert proc.returncode == 1
    assert "network" in proc.stderr and str(tmp_path / "nope") in proc.stderr
    assert "Traceback" not in proc.stderr
    assert rt.ids() == []


def test_join_wrong_kind_of_namespace_fails_cleanly(rt, make_bundle, cid):
    def join(c):
        c["linux"]["namespaces"] = [{"type": "mount"}, {"type": "network", "path": "/proc/self/ns/uts"}]

    proc = rt("create", "--bundle", str(make_bundle(["true"], edit=join)), cid, check=False)
    assert proc.returncode == 1 and "network" in proc.stderr
    assert rt.ids() == []


def test_init_is_not_a_child_of_create(rt, make_bundle, cid):
    """The intermediate exits, so the init is reparented: `create` leaves no child behind and its
    exit does not take the container with it."""
    rt("create", "--bundle", str(make_bundle(["sleep", "100"])), cid)
    pid = rt.state(cid)["pid"]
    ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    assert ppid != os.getpid()
    assert not Path(f"/proc/{ppid}/cmdline").read_bytes().startswith(rt.binary.encode())
    rt("start", cid)
    wait_until(lambda: rt.state(cid)["status"] == "running")
    rt("delete", "--force", cid)


def test_join_a_mount_namespace_by_path_sets_the_rootfs_up_in_it(sh, pinned_ns):
    """runc sets the rootfs up (mounts, pivot_root) inside a mount namespace joined by path."""
    mnt = pinned_ns("mount")

    def join(c):
        c["linux"]["namespaces"] = [{"type": "mount", "path": str(mnt)}, {"type": "pid"}]

    out = sh("readlink /proc/self/ns/mnt; cat /proc/self/mounts | cut -d' ' -f2 | sort -u | tr '\\n' ' '",
             edit=join).stdout.splitlines()
    assert out[0] == f"mnt:[{os.stat(mnt).st_ino}]"
    assert {"/", "/proc", "/dev", "/tmp"} <= set(out[1].split())
