"""linux.netDevices: a host interface moved into the container, seen there with its address, and
returned to the host on delete (this kernel has no `dummy` links: a veth end stands in)."""

from __future__ import annotations

import subprocess
import time
import uuid

import pytest


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


@pytest.fixture
def veth() -> str:
    name = f"prt{uuid.uuid4().hex[:8]}"
    ip("link", "add", name, "type", "veth", "peer", "name", name + "p")
    ip("addr", "add", "10.213.7.1/24", "dev", name)
    ip("link", "set", name, "up")
    yield name
    ip("link", "del", name, check=False)  # removes the peer too
    assert name not in host_links()


def host_links() -> set[str]:
    return {line.split(": ")[1].split("@")[0] for line in ip("-o", "link").stdout.splitlines()}


def _wait_for(path, text: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = path.read_text() if path.exists() else ""
        if text in data:
            return data
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared in {path}: {data!r}")


def test_net_device_moves_in_renamed_with_address_and_back_on_delete(rt, make_bundle, cid, veth, tmp_path):
    def edit(c: dict) -> None:
        c["linux"]["netDevices"] = {veth: {"name": "eth7"}}
        c["mounts"].append({"destination": "/home", "type": "bind", "source": str(tmp_path), "options": ["bind"]})

    script = "ip -o addr show dev eth7 > /home/out; ip -o link show dev eth7 >> /home/out; echo done >> /home/out; sleep 60"
    bundle = make_bundle(["sh", "-c", script], edit=edit)
    rt("create", "-b", str(bundle), cid)
    assert veth not in host_links()  # gone from the host
    rt("start", cid)
    out = _wait_for(tmp_path / "out", "done")
    assert "inet 10.213.7.1/24" in out
    link_line = next(line for line in out.splitlines() if line.split(": ")[1].startswith("eth7@"))
    assert ",UP" in link_line  # the up state came along
    rt("delete", "--force", cid)
    back = ip("-o", "addr", "show", "dev", veth)
    assert "inet 10.213.7.1/24" in back.stdout


def test_net_device_missing_on_host_fails_cleanly(rt, make_bundle, cid):
    bundle = make_bundle(["true"], edit=lambda c: c["linux"].__setitem__("netDevices", {"prt-nosuch0": {}}))
    proc = rt("create", "-b", str(bundle), cid, check=False)
    assert proc.returncode == 1
    assert "linux.netDevices.prt-nosuch0" in proc.stderr and "no such network interface" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert rt.ids() == []


def test_net_device_needs_network_namespace(rt, make_bundle, cid):
    def edit(c: dict) -> None:
        c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "network"]
        c["linux"]["netDevices"] = {"lo": {}}

    proc = rt("create", "-b", str(make_bundle(["true"], edit=edit)), cid, check=False)
    assert proc.returncode == 1 and "linux.netDevices" in proc.stderr
    assert rt.ids() == []
