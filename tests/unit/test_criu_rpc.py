"""CRIU's RPC codec and the options built from runc's flags (the real dump/restore: tests/vm/test_criu_vm.py)."""

from __future__ import annotations

import shutil
import socket
import subprocess

import pytest

from pyruntime import checkpoint as cp
from pyruntime import criu_rpc, restore
from pyruntime.errors import RuntimeFailure


def test_request_bytes_follow_the_proto2_wire_format():
    # criu_req{type=DUMP, opts{images_dir_fd=5, pid=300, root="/r", ext_mnt{key="/a", val="/b"}}}
    opts = criu_rpc.encode_opts({"images_dir_fd": 5, "pid": 300, "root": "/r", "ext_mnt": [("/a", "/b")]})
    assert opts == b"\x08\x05" + b"\x10\xac\x02" + b"\x6a\x02/r" + b"\xba\x01\x08\x0a\x02/a\x12\x02/b"
    assert criu_rpc.encode_req(criu_rpc.DUMP, opts) == b"\x08\x01\x12" + bytes([len(opts)]) + opts


def test_negative_and_nested_values_decode_back():
    data = criu_rpc.encode_opts({"status_fd": -1, "cg_root": [(None, "/x"), ("cpu", "/y")],
                                 "external": ["net[1]:extRootNetNS"], "ps": {"address": "h", "port": 9}})
    fields = criu_rpc.decode(data)
    assert fields[49] == [(1 << 64) - 1]
    assert [criu_rpc.decode(v) for v in fields[25]] == [{2: [b"/x"]}, {1: [b"cpu"], 2: [b"/y"]}]
    assert fields[37] == [b"net[1]:extRootNetNS"]
    assert criu_rpc.decode(fields[11][0]) == {1: [b"h"], 2: [9]}


def test_response_with_a_notification():
    notify = b"\x0a\x0cpost-restore" + b"\x10\x2a"
    resp = criu_rpc.Response(b"\x08\x06\x10\x01\x2a" + bytes([len(notify)]) + notify)
    assert (resp.type, resp.success, resp.script, resp.pid) == (criu_rpc.NOTIFY, True, "post-restore", 42)


@pytest.mark.skipif(not shutil.which("criu"), reason="criu is not installed")
def test_the_real_criu_answers_a_version_request():
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    proc = subprocess.Popen(["criu", "swrk", str(theirs.fileno())], pass_fds=(theirs.fileno(),))
    theirs.close()
    try:
        ours.sendall(criu_rpc.encode_req(criu_rpc.VERSION))
        ours.settimeout(30)
        resp = criu_rpc.Response(ours.recv(4096))
    finally:
        ours.close()
        proc.wait(timeout=30)
    assert resp.type == criu_rpc.VERSION and resp.success


def test_flags_are_checked_as_runc_does():
    opts = cp.CriuOptions(image_path="/x", manage_cgroups_mode="full", empty_ns=("network",))
    rpc = cp.base_opts(opts, "dump.log")
    assert rpc["manage_cgroups_mode"] == criu_rpc.CG_MODES["full"] and rpc["empty_ns"] == cp.CLONE_NEWNET
    assert cp.base_opts(cp.CriuOptions(image_path="/x"), "dump.log")["empty_ns"] == cp.CLONE_NEWNET  # always (runc)
    with pytest.raises(RuntimeFailure, match="manage-cgroups-mode"):
        cp.base_opts(cp.CriuOptions(image_path="/x", manage_cgroups_mode="ignore"), "dump.log")
    with pytest.raises(RuntimeFailure, match="--empty-ns"):
        cp.base_opts(cp.CriuOptions(image_path="/x", empty_ns=("pid",)), "dump.log")
    assert cp.page_server("10.0.0.1:27") == {"address": "10.0.0.1", "port": 27}
    assert cp.page_server("[::1]:27") == {"address": "::1", "port": 27}
    for bad in ("nohost", ":27", "h:port"):
        with pytest.raises(RuntimeFailure, match="page-server"):
            cp.page_server(bad)


def test_external_mounts_on_dump_and_on_restore():
    config = {"mounts": [{"destination": "/data/", "type": "bind", "source": "/srv/data"},
                         {"destination": "/etc/hosts", "source": "/h", "options": ["rbind", "ro"]},
                         {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}],
              "linux": {"maskedPaths": ["/proc/kcore"], "devices": [{"path": "/dev/fuse", "type": "c"}]}}
    dumped = cp.dump_ext_mounts(config, pid=0)  # no such pid: masked paths are skipped
    assert ("/data", "/data") in dumped and ("/etc/hosts", "/etc/hosts") in dumped
    assert ("/dev/null", "/dev/null") in dumped and ("/dev/fuse", "/dev/fuse") in dumped
    assert not any(k == "/tmp" for k, _ in dumped)
    restored = restore.restore_ext_mounts(config)
    assert ("/data", "/srv/data") in restored and ("/etc/hosts", "/h") in restored
    assert ("/dev/null", "/dev/null") in restored  # masked paths are /dev/null binds


def test_criu_configuration_file_as_runc_chooses_it():
    assert cp.config_file({}) == "/etc/criu/runc.conf"
    assert cp.config_file({"org.criu.config": "/x.conf"}) == "/x.conf"
    assert cp.config_file({"org.criu.config": ""}) is None  # none at all


def test_mount_keys_are_the_resolved_mount_points(tmp_path):
    """runc's checkpoint.bats 'bind mount, destination is symlink': /conf -> /real/conf is mounted on
    /real/conf, so that is CRIU's key; a relative source is the bundle's."""
    rootfs = tmp_path / "rootfs"
    (rootfs / "real" / "conf").mkdir(parents=True)
    (rootfs / "conf").symlink_to("/real/conf")
    config = {"mounts": [{"destination": "/conf", "source": ".", "options": ["bind"]},
                         {"destination": "/missing", "source": "/m", "type": "bind"}]}
    dumped = cp.dump_ext_mounts(config, pid=0, rootfs=str(rootfs))
    assert ("/real/conf", "/real/conf") in dumped and ("/missing", "/missing") in dumped
    restored = restore.restore_ext_mounts(config, str(rootfs), str(tmp_path))
    assert ("/real/conf", str(tmp_path)) in restored
