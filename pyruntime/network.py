"""linux.netDevices (runtime-spec 1.3): host interfaces moved into the container's network namespace
(renamed if asked, addresses and up/down state kept) and moved back when the container is deleted.

pyroute2 is imported only here, and this module only when a container asks for netDevices.
"""

from __future__ import annotations

import json
import os

from pyroute2 import IPRoute

from . import native
from ._native import lib
from .errors import ConfigError, RuntimeFailure

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

IFF_UP = 0x1  # interface flag bit from <linux/if.h>; part of the rtnetlink ABI on every architecture


def check(config: dict[str, Any], file: str) -> None:
    devices = (config.get("linux") or {}).get("netDevices") or {}
    if not devices:
        return
    namespaces = {ns["type"]: ns for ns in (config.get("linux") or {}).get("namespaces") or []}
    if "network" not in namespaces:
        raise ConfigError(file, "linux.netDevices", "needs a network namespace for the container")
    for host_name, dev in devices.items():
        for name in (host_name, (dev or {}).get("name") or host_name):
            if not name or len(name) > 15 or "/" in name or name in (".", "..") or any(c.isspace() for c in name):
                raise ConfigError(file, f"linux.netDevices.{host_name}", f"invalid interface name {name!r}")


def _snapshot(ipr: IPRoute, index: int) -> dict[str, Any]:
    link = ipr.get_links(index)[0]
    addrs = [(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=index)
             if a.get_attr("IFA_ADDRESS") and a["scope"] == 0]
    return {"up": bool(link["flags"] & IFF_UP), "addrs": addrs}


def _in_netns(netns_fd: int, fn, *args) -> None:  # noqa: ANN001
    """Run fn(*args) in a child that joined the network namespace; its failure becomes ours."""
    r, w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.close(r)
        code = 0
        try:
            native.setns(netns_fd, lib.CLONE_NEWNET)
            fn(*args)
        except BaseException as e:  # noqa: BLE001
            os.write(w, str(e).encode()[:4000])
            code = 1
        os._exit(code)
    os.close(w)
    try:
        err = os.read(r, 4096)
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    if err:
        raise RuntimeFailure(err.decode(errors="replace"))


def _configure(name: str, snap: dict[str, Any]) -> None:
    with IPRoute() as ipr:
        index = ipr.link_lookup(ifname=name)[0]
        for address, prefix in snap["addrs"]:
            ipr.addr("add", index=index, address=address, prefixlen=prefix)
        if snap["up"]:
            ipr.link("set", index=index, state="up")


def _move(ipr: IPRoute, index: int, to_netns_fd: int, new_name: str) -> None:
    ipr.link("set", index=index, net_ns_fd=to_netns_fd, ifname=new_name)


def move_in(config: dict[str, Any], pid: int) -> None:
    devices = (config.get("linux") or {}).get("netDevices") or {}
    netns = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    moved: list[tuple[str, str, dict[str, Any]]] = []
    try:
        with IPRoute() as ipr:
            for host_name, dev in devices.items():
                found = ipr.link_lookup(ifname=host_name)
                if not found:
                    raise RuntimeFailure(f"linux.netDevices.{host_name}: no such network interface on the host")
                snap = _snapshot(ipr, found[0])
                name = (dev or {}).get("name") or host_name
                _move(ipr, found[0], netns, name)
                moved.append((host_name, name, snap))
                _in_netns(netns, _configure, name, snap)
    except BaseException:
        if moved:  # put back what we already moved, before the namespace dies with the init
            move_out({"linux": {"netDevices": {h: {"name": n} for h, n, _ in moved}}}, pid)
        raise
    finally:
        os.close(netns)


def move_out(config: dict[str, Any], pid: int) -> None:
    """Return the devices to the runtime's namespace with their original names and current addresses."""
    devices = (config.get("linux") or {}).get("netDevices") or {}
    if not devices:
        return
    try:
        netns = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return  # the namespace is gone: the kernel returned physical devices, virtual ones died with it
    host = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        def give_back() -> None:
            snaps = {}
            with IPRoute() as ipr:
                for host_name, dev in devices.items():
                    found = ipr.link_lookup(ifname=(dev or {}).get("name") or host_name)
                    if found:
                        snaps[host_name] = _snapshot(ipr, found[0])
                        _move(ipr, found[0], host, host_name)
            os.write(w, json.dumps(snaps).encode())

        _in_netns(netns, give_back)
        snaps = json.loads(os.read(r, 65536) or b"{}")
        for host_name, snap in snaps.items():
            _configure(host_name, snap)
    finally:
        for fd in (netns, host, r, w):
            os.close(fd)
