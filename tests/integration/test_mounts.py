"""The root filesystem: mount types and options, cgroup mounts, readonly root, masked/readonly paths,
/dev, linux.devices, symlinked destinations that must stay inside the rootfs, --no-pivot, propagation."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest
from pyruntime_tests_conftest import ROOTFS, bind_mount

MOUNTINFO = "cat /proc/self/mountinfo"


class Mount:
    def __init__(self, line: str) -> None:
        f = line.split()
        sep = f.index("-")
        self.point, self.options = f[4], set(f[5].split(","))
        self.optional = f[6:sep]
        self.fstype, self.source, self.super = f[sep + 1], f[sep + 2], set(f[sep + 3].split(","))


def mountinfo(text: str) -> dict[str, Mount]:
    """{mount point: the top mount there} from a mountinfo dump."""
    found: dict[str, Mount] = {}
    for line in text.splitlines():
        if " - " in line:
            m = Mount(line)
            found[m.point] = m
    return found


def _add(*entries):
    def edit(c):
        c["mounts"].extend(entries)
    return edit


# -- mount types and options --------------------------------------------------------------------------

def test_standard_mount_types(sh):
    mounts = mountinfo(sh(MOUNTINFO).stdout)
    expect = {"/": None, "/proc": "proc", "/dev": "tmpfs", "/dev/pts": "devpts", "/dev/shm": "tmpfs",
              "/dev/mqueue": "mqueue", "/sys": "sysfs", "/tmp": "tmpfs"}
    for point, fstype in expect.items():
        assert point in mounts, point
        if fstype:
            assert mounts[point].fstype == fstype, point
    assert {"ro", "nosuid", "nodev", "noexec"} <= mounts["/sys"].options
    assert {"nosuid", "nodev", "noexec"} <= mounts["/dev/shm"].options
    assert {"nosuid", "noexec"} <= mounts["/dev/pts"].options
    assert "ptmxmode=666" in mounts["/dev/pts"].super
    assert "mode=755" in mounts["/dev"].super
    assert "ro" in mounts["/"].options  # root.readonly in the base config
    # Nothing of the host's mount table is visible: only what config.json asked for (plus masks).
    assert not any(p.startswith(("/work", "/run", "/home")) for p in mounts)


def test_tmpfs_options(sh):
    entry = {"destination": "/tmp/t", "type": "tmpfs", "source": "tmpfs",
             "options": ["size=1m", "mode=700", "noexec", "nosuid", "uid=1000", "gid=1000"]}
    out = sh(f"stat -c '%a %u %g' /tmp/t; df -k /tmp/t | tail -1; {MOUNTINFO}", edit=_add(entry)).stdout
    lines = out.splitlines()
    assert lines[0] == "700 1000 1000"
    assert lines[1].split()[1] == "1024"
    m = mountinfo(out)["/tmp/t"]
    assert m.fstype == "tmpfs" and {"noexec", "nosuid"} <= m.options and "nodev" not in m.options


def test_mount_on_new_nested_directory(sh):
    """Destinations that do not exist are created (in a writable rootfs layer: here, on a tmpfs)."""
    entry = {"destination": "/tmp/a/b/c", "type": "tmpfs", "source": "tmpfs"}
    mounts = mountinfo(sh(MOUNTINFO, edit=_add(entry)).stdout)
    assert mounts["/tmp/a/b/c"].fstype == "tmpfs"


@pytest.fixture
def host_dir(tmp_path: Path):
    """A host directory with a file, and a tmpfs submount (for rbind), unmounted afterwards."""
    d = tmp_path / "hostdir"
    (d / "sub").mkdir(parents=True)
    (d / "file").write_text("from-host\n")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(d / "sub")], check=True)
    try:
        (d / "sub" / "inner").write_text("in-submount\n")
        yield d
    finally:
        subprocess.run(["umount", str(d / "sub")], check=True)


def test_bind_ro_is_read_only(sh, host_dir):
    out = sh("cat /tmp/data/file; touch /tmp/data/new 2>&1; echo rc=$?",
             edit=_add(bind_mount(host_dir, "/tmp/data", "bind", "ro"))).stdout
    assert out.startswith("from-host\n")
    assert "Read-only file system" in out and "rc=1" in out
    assert not (host_dir / "new").exists()


def test_bind_rw_writes_reach_host(sh, host_dir):
    sh("echo written > /tmp/data/new", edit=_add(bind_mount(host_dir, "/tmp/data", "bind", "rw")))
    assert (host_dir / "new").read_text() == "written\n"
    (host_dir / "new").unlink()


def test_bind_is_not_recursive_rbind_is(sh, host_dir):
    script = "cat /tmp/data/sub/inner 2>/dev/null || echo missing"
    assert sh(script, edit=_add(bind_mount(host_dir, "/tmp/data", "bind"))).stdout == "missing\n"
    assert sh(script, edit=_add(bind_mount(host_dir, "/tmp/data", "rbind"))).stdout == "in-submount\n"


def test_rbind_ro_applies_to_the_top_mount(sh, host_dir):
    out = sh(f"{MOUNTINFO}; touch /tmp/data/x 2>/dev/null; echo rc=$?",
             edit=_add(bind_mount(host_dir, "/tmp/data", "rbind", "ro", "nosuid", "nodev", "noexec"))).stdout
    m = mountinfo(out)["/tmp/data"]
    assert {"ro", "nosuid", "nodev", "noexec"} <= m.options
    assert "rc=1" in out


def test_bind_mount_type_none_and_relative_source(sh, make_bundle, rt, cid):
    bundle = make_bundle(["cat", "/tmp/data/hello"], edit=_add(
        {"destination": "/tmp/data", "type": "none", "source": "shared", "options": ["rbind", "ro"]}))
    (bundle / "shared").mkdir()
    (bundle / "shared" / "hello").write_text("relative\n")
    assert rt("run", "--bundle", str(bundle), cid).stdout == "relative\n"


def test_bind_of_a_file(sh, host_dir):
    out = sh("cat /etc/group; stat -c %F /etc/group; echo x >> /etc/group 2>&1; echo rc=$?",
             edit=_add(bind_mount(host_dir / "file", "/etc/group", "bind", "ro"))).stdout.splitlines()
    assert out[0] == "from-host"
    assert out[1] == "regular file"
    assert out[-1] == "rc=1"


def test_bind_of_a_file_onto_a_new_path_in_tmpfs(sh, host_dir):
    out = sh("cat /tmp/deep/dir/file", edit=_add(bind_mount(host_dir / "file", "/tmp/deep/dir/file", "bind")))
    assert out.stdout == "from-host\n"


def test_bind_of_missing_source_fails_cleanly(rt, make_bundle, cid, tmp_path):
    bundle = make_bundle(["true"], edit=_add(bind_mount(tmp_path / "nope", "/tmp/data", "bind")))
    proc = rt("create", "--bundle", str(bundle), cid, check=False)
    assert proc.returncode == 1 and "/tmp/data" in proc.stderr and "Traceback" not in proc.stderr
    assert rt.ids() == []


def test_mqueue_is_usable(sh):
    out = sh(f"{MOUNTINFO}; ls -a /dev/mqueue").stdout
    assert mountinfo(out)["/dev/mqueue"].fstype == "mqueue"


# -- cgroup mount ---------------------------------------------------------------------------------------

def _cgroup_mount(*options: str):
    return _add({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                 "options": ["nosuid", "noexec", "nodev", "relatime", *options]})


def test_cgroup_mount_shows_the_containers_own_cgroups(sh):
    out = sh("ls /sys/fs/cgroup; echo ---; cat /sys/fs/cgroup/pids/cgroup.procs; echo ---; "
             "cat /sys/fs/cgroup/memory/cgroup.procs; echo ---; " + MOUNTINFO,
             edit=_cgroup_mount("ro")).stdout
    listing, pids_procs, mem_procs, info = out.split("---\n")
    names = set(listing.split())
    # the host's hierarchies (and their cpu/cpuacct aliases); not plain directories that engines
    # make in the tmpfs for controllers nothing mounts (podman/conmon's net_cls, hugetlb... here)
    hosts = {p.name for p in Path("/sys/fs/cgroup").iterdir() if p.is_symlink() or os.path.ismount(p)}
    assert {"pids", "memory", "devices", "freezer"} <= names
    assert hosts - {"unified", "systemd"} <= names
    # The container's own cgroup, not the host's root: only the container's processes (in its pid ns).
    assert "1" in pids_procs.split() and len(pids_procs.split()) <= 3
    assert "1" in mem_procs.split()
    mounts = mountinfo(info)
    assert mounts["/sys/fs/cgroup"].fstype == "tmpfs"
    assert mounts["/sys/fs/cgroup/pids"].fstype == "cgroup"
    assert "ro" in mounts["/sys/fs/cgroup/pids"].options


def test_cgroup_mount_read_only(sh):
    out = sh("echo 5 > /sys/fs/cgroup/pids/pids.max 2>&1; echo rc=$?; mkdir /sys/fs/cgroup/x 2>&1; echo rc=$?",
             edit=_cgroup_mount("ro")).stdout
    assert out.count("rc=1") == 2


def test_cgroup_mount_read_write(sh, cgroup_parent):
    out = sh("echo 77 > /sys/fs/cgroup/pids/pids.max; cat /sys/fs/cgroup/pids/pids.max", edit=_cgroup_mount("rw"))
    assert out.stdout == "77\n"


# -- root and paths -------------------------------------------------------------------------------------

def test_readonly_root(sh):
    out = sh("touch /newfile 2>&1; echo rc=$?; touch /tmp/ok && echo tmp-ok").stdout
    assert "Read-only file system" in out and "rc=1" in out and "tmp-ok" in out


def test_writable_root(sh, private_rootfs):
    def edit(c):
        c["root"] = {"path": str(private_rootfs), "readonly": False}

    sh("echo hi > /root/written", edit=edit)
    assert (private_rootfs / "root" / "written").read_text() == "hi\n"


def test_relative_root_path(rt, make_bundle, cid, private_rootfs):
    bundle = make_bundle(["echo", "relative-root"], edit=lambda c: c["root"].update(path="rootfs"))
    private_rootfs.rename(bundle / "rootfs")
    assert rt("run", "--bundle", str(bundle), cid).stdout == "relative-root\n"


def test_masked_paths(sh):
    def edit(c):
        c["linux"]["maskedPaths"] += ["/proc/cpuinfo", "/sys/kernel", "/does/not/exist"]

    out = sh("wc -c < /proc/cpuinfo; wc -c < /proc/keys; ls -A /sys/firmware | wc -l; ls -A /sys/kernel | wc -l; "
             "touch /sys/kernel/x 2>/dev/null; echo rc=$?; echo x > /proc/cpuinfo 2>/dev/null; echo rc=$?; "
             + MOUNTINFO, edit=edit).stdout
    assert Path("/proc/cpuinfo").stat().st_size == 0 and Path("/proc/cpuinfo").read_text()  # not empty on the host
    lines = out.splitlines()
    assert lines[:4] == ["0", "0", "0", "0"]
    assert lines[4:6] == ["rc=1", "rc=0"]  # /dev/null over a file: writes vanish
    mounts = mountinfo(out)
    assert mounts["/sys/kernel"].fstype == "tmpfs" and "ro" in mounts["/sys/kernel"].options
    assert mounts["/sys/firmware"].fstype == "tmpfs"
    # Covered with the container's own /dev/null (on its /dev tmpfs): nothing of the host's devtmpfs shows.
    assert mounts["/proc/cpuinfo"].fstype == "tmpfs" and "/proc/keys" in mounts
    assert "/does/not/exist" not in mounts


def test_readonly_paths(sh):
    def edit(c):
        c["linux"]["readonlyPaths"] += ["/tmp/ro-dir", "/does/not/exist"]
        c["mounts"].append({"destination": "/tmp/ro-dir", "type": "tmpfs", "source": "tmpfs"})

    proc = sh("echo x > /proc/sys/kernel/hostname; echo rc=$?; echo 1 > /proc/sys/vm/overcommit_memory; "
              "echo rc=$?; touch /tmp/ro-dir/f; echo rc=$?; cat /proc/sys/kernel/ostype; " + MOUNTINFO, edit=edit)
    assert proc.stderr.count("Read-only file system") == 3
    assert proc.stdout.splitlines()[:4] == ["rc=1", "rc=1", "rc=1", "Linux"]  # still readable
    mounts = mountinfo(proc.stdout)
    assert {"ro", "nosuid", "nodev", "noexec"} <= mounts["/proc/sys"].options
    assert "/does/not/exist" not in mounts


# -- /dev -----------------------------------------------------------------------------------------------

DEVICES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8), "urandom": (1, 9), "tty": (5, 0)}


def test_default_devices(sh):
    script = "; ".join(f"stat -c '%n|%F|%t|%T|%a|%u|%g' /dev/{d}" for d in DEVICES)
    script += "; head -c 4 /dev/zero | wc -c; head -c 16 /dev/urandom | wc -c; echo x > /dev/null && echo null-ok"
    script += "; echo x > /dev/full 2>/dev/null || echo full-ok"
    out = sh(script).stdout.splitlines()
    for line, (name, (major, minor)) in zip(out, DEVICES.items(), strict=False):
        path, ftype, hex_major, hex_minor, mode, uid, gid = line.split("|")
        assert (path, ftype) == (f"/dev/{name}", "character special file"), line
        assert (int(hex_major, 16), int(hex_minor, 16), mode, uid, gid) == (major, minor, "666", "0", "0"), line
    assert out[len(DEVICES):] == ["4", "16", "null-ok", "full-ok"]


def test_dev_symlinks_ptmx_and_shm(sh):
    out = sh("for l in fd stdin stdout stderr ptmx; do readlink /dev/$l; done; "
             "echo shm > /dev/shm/f && cat /dev/shm/f; echo $(ls /dev/fd/); "
             "stat -c %F /dev/pts/ptmx; echo via-stdout >> /dev/stdout").stdout.splitlines()
    assert out[:5] == ["/proc/self/fd", "/proc/self/fd/0", "/proc/self/fd/1", "/proc/self/fd/2", "pts/ptmx"]
    assert out[5] == "shm"
    assert out[6].split()[:3] == ["0", "1", "2"]
    assert out[7:] == ["character special file", "via-stdout"]


def test_dev_contains_nothing_from_the_host(sh):
    names = set(sh("ls -A /dev").stdout.split())
    assert names == set(DEVICES) | {"fd", "stdin", "stdout", "stderr", "ptmx", "pts", "shm", "mqueue"}


def test_linux_devices(sh):
    def edit(c):
        c["linux"]["devices"] = [
            {"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640, "uid": 1000, "gid": 1001},
            {"path": "/dev/sub/dir/myzero", "type": "c", "major": 1, "minor": 5},
            {"path": "/dev/myfifo", "type": "p"},
        ]
        c["process"]["user"] = {"uid": 1000, "gid": 1001}  # the owner may write (0640), root-without-DAC not

    out = sh("stat -c '%F %t %T %a %u %g' /dev/mynull /dev/sub/dir/myzero /dev/myfifo; "
             "echo x > /dev/mynull && echo write-ok; head -c 3 /dev/sub/dir/myzero | wc -c", edit=edit).stdout
    lines = out.splitlines()
    assert lines[0] == "character special file 1 3 640 1000 1001"
    assert lines[1] == "character special file 1 5 666 0 0"
    assert lines[2].startswith("fifo")
    assert lines[3:] == ["write-ok", "3"]


def test_linux_devices_outside_dev(sh):
    """The spec allows any path in the container (runc too): resolved inside the rootfs, here in /tmp."""
    def edit(c):
        c["linux"]["devices"] = [{"path": "/tmp/devs/mynull", "type": "c", "major": 1, "minor": 3}]
        for m in c["mounts"]:
            if m["destination"] == "/tmp":
                m["options"] = ["nosuid"]  # not nodev

    out = sh("stat -c '%F %t %T' /tmp/devs/mynull; echo x > /tmp/devs/mynull && echo write-ok", edit=edit).stdout
    assert out.splitlines() == ["character special file 1 3", "write-ok"]


def test_linux_devices_grant_no_access_by_themselves(sh):
    """runc's dev.bats "device cgroup deny": a node made from linux.devices is usable only if a
    linux.resources.devices rule allows it."""
    node = {"path": "/dev/lc", "type": "c", "major": 10, "minor": 237}  # loop-control: opening it is harmless

    def denied(c):
        c["linux"]["devices"] = [node]

    def allowed(c):
        denied(c)
        c["linux"]["resources"] = {"devices": [{"allow": True, "type": "c", "major": 10, "minor": 237,
                                                "access": "rw"}]}

    probe = "(exec 3<>/dev/lc) 2>&1 && echo opened || echo refused"
    assert "refused" in sh(probe, edit=denied).stdout
    assert sh(probe, edit=allowed).stdout.strip() == "opened"


def test_linux_devices_overrides_a_default_device(sh):
    def edit(c):
        c["linux"]["devices"] = [{"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o600}]

    assert sh("stat -c %a /dev/null", edit=edit).stdout == "600\n"


def test_host_dev_bind_skips_device_creation(sh):
    def edit(c):
        c["mounts"] = [m for m in c["mounts"] if not m["destination"].startswith("/dev")]
        c["mounts"].append(bind_mount("/dev", "/dev", "rbind", "ro"))

    out = sh("ls /dev | wc -l; readlink /dev/fd", edit=edit, check=False)
    assert out.returncode == 0
    assert int(out.stdout.split()[0]) == len(os.listdir("/dev"))
    assert out.stdout.split()[1] == "/proc/self/fd"


# -- symlinks in the rootfs never lead out of it --------------------------------------------------------

def test_destination_symlink_to_absolute_host_path_stays_inside(rt, make_bundle, cid, private_rootfs, tmp_path):
    host_target = tmp_path / f"host-target-{uuid.uuid4().hex[:6]}"
    host_target.mkdir()
    (private_rootfs / "mnt").mkdir(exist_ok=True)
    os.symlink(str(host_target), private_rootfs / "mnt" / "link")  # absolute: the host's path
    os.symlink("/etc/passwd", private_rootfs / "mnt" / "filelink")
    os.symlink("../../../../../../../../..", private_rootfs / "mnt" / "uplink")

    def edit(c):
        c["root"] = {"path": str(private_rootfs), "readonly": False}
        c["mounts"] += [
            {"destination": "/mnt/link", "type": "tmpfs", "source": "tmpfs"},
            bind_mount(tmp_path / "hostfile", "/mnt/filelink", "bind"),
            {"destination": "/mnt/uplink/escaped", "type": "tmpfs", "source": "tmpfs"},
        ]

    (tmp_path / "hostfile").write_text("bound\n")
    passwd_before = Path("/etc/passwd").read_bytes()
    bundle = make_bundle(["sh", "-c", f"echo inside > /mnt/link/f; cat /etc/passwd; {MOUNTINFO}"], edit=edit)
    proc = rt("run", "--bundle", str(bundle), cid)
    assert proc.stdout.startswith("bound\n")  # the rootfs's /etc/passwd, not the host's
    mounts = mountinfo(proc.stdout)
    # Resolved inside the rootfs: /mnt/link -> <rootfs>/<host_target>, /mnt/uplink -> <rootfs>/
    assert mounts[str(host_target)].fstype == "tmpfs"
    assert "/escaped" in mounts
    assert not os.listdir(host_target)  # the host directory was never mounted on nor written
    assert not os.path.ismount(host_target)
    assert not Path("/escaped").exists()
    assert Path("/etc/passwd").read_bytes() == passwd_before
    host_mounts = Path("/proc/self/mountinfo").read_text()
    assert str(host_target) not in host_mounts and str(private_rootfs) not in host_mounts


# -- pivot, propagation ---------------------------------------------------------------------------------

def test_no_pivot(sh):
    out = sh("ls -A /; echo ---; " + MOUNTINFO, args=("--no-pivot",)).stdout
    listing, info = out.split("---\n")
    assert set(listing.split()) == set(os.listdir(ROOTFS))
    mounts = mountinfo(info)
    assert mounts["/proc"].fstype == "proc" and "ro" in mounts["/"].options


@pytest.mark.parametrize("propagation, tag", [("shared", "shared:"), ("rshared", "shared:"),
                                              ("private", None), ("rprivate", None),
                                              ("slave", None), ("rslave", None)])
def test_rootfs_propagation(sh, propagation, tag):
    def edit(c):
        c["linux"]["rootfsPropagation"] = propagation

    root = mountinfo(sh(MOUNTINFO, edit=edit).stdout)["/"]
    if tag:
        assert any(o.startswith(tag) for o in root.optional), root.optional
    else:  # the host's mounts are private here: a slave of nothing is private
        assert not any(o.startswith("shared:") for o in root.optional), root.optional


def test_rootfs_propagation_unbindable(sh):
    def edit(c):
        c["linux"]["rootfsPropagation"] = "unbindable"

    root = mountinfo(sh(MOUNTINFO, edit=edit).stdout)["/"]
    assert "unbindable" in root.optional


def test_podman_style_binds(rt, make_bundle, cid, private_rootfs, tmp_path):
    """What podman passes: files bound over /etc with bind,rprivate; /dev/shm bound from a host dir."""
    files = {"resolv.conf": "nameserver 10.0.0.1\n", "hosts": "127.0.0.1 localhost podbox\n", "hostname": "podbox\n"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "shm").mkdir()

    def edit(c):
        c["root"] = {"path": str(private_rootfs), "readonly": False}
        c["mounts"] = [m for m in c["mounts"] if m["destination"] != "/dev/shm"]
        c["mounts"] += [{"destination": f"/etc/{name}", "type": "bind", "source": str(tmp_path / name),
                         "options": ["bind", "rprivate"] + (["ro"] if name == "hostname" else [])}
                        for name in files]
        c["mounts"].append({"destination": "/dev/shm", "type": "bind", "source": str(tmp_path / "shm"),
                            "options": ["bind", "rprivate", "nosuid", "noexec", "nodev"]})

    bundle = make_bundle(["sh", "-c", f"cat /etc/resolv.conf /etc/hosts /etc/hostname; echo x > /dev/shm/seg; "
                                      f"echo y >> /etc/hostname 2>/dev/null || echo hostname-ro; {MOUNTINFO}"],
                         edit=edit)
    out = rt("run", "--bundle", str(bundle), cid).stdout
    assert out.startswith("".join(files.values()) + "hostname-ro\n")
    mounts = mountinfo(out)
    assert {"nosuid", "noexec", "nodev"} <= mounts["/dev/shm"].options
    assert "ro" in mounts["/etc/hostname"].options and "rw" in mounts["/etc/hosts"].options
    assert not any(o.startswith(("shared:", "master:")) for o in mounts["/etc/hosts"].optional)
    assert (tmp_path / "shm" / "seg").read_text() == "x\n"


def test_tmpfs_without_mode_keeps_the_directorys_mode(sh, private_rootfs):
    """runc and crun give a tmpfs mounted over an existing directory that directory's mode (not 1777)."""
    (private_rootfs / "data").mkdir()
    (private_rootfs / "data").chmod(0o710)

    def edit(c):
        c["root"]["path"] = str(private_rootfs)
        c["mounts"].append({"destination": "/data", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]})
        c["mounts"].append({"destination": "/made", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]})
        c["mounts"].append({"destination": "/given", "type": "tmpfs", "source": "tmpfs", "options": ["mode=750"]})

    assert sh("stat -c %a /data /made /given", edit=edit).stdout.split() == ["710", "1777", "750"]


def test_read_only_dev(sh):
    """runc's "ro /dev mount": /dev/pts, /dev/shm, the nodes and symlinks are made first, then /dev
    becomes read-only."""
    def edit(c):
        for m in c["mounts"]:
            if m["destination"] == "/dev":
                m["options"].append("ro")

    out = sh("grep '^tmpfs /dev ' /proc/mounts | cut -d' ' -f4; ls /dev/pts/ptmx /dev/null; "
             "echo x > /dev/null && echo null-ok; touch /dev/x 2>&1 || echo touch-refused", edit=edit).stdout
    lines = out.splitlines()
    assert lines[0].startswith("ro,"), out
    assert "null-ok" in lines and "touch-refused" in lines


def test_no_pivot_hides_the_hosts_procfs(sh):
    """runc's no_pivot.bats: with --no-pivot the host's mounts stay under the chroot; a full procfs
    among them would let a nested user namespace mount an unmasked procfs."""
    def edit(c):
        for kind in ("bounding", "effective", "permitted"):
            c["process"]["capabilities"][kind].append("CAP_SETFCAP")

    proc = sh("unshare -mrpf sh -c 'mount -t proc none /proc && echo mounted-fresh-proc' 2>&1", edit=edit,
              args=("--no-pivot",), check=False)
    assert "mounted-fresh-proc" not in proc.stdout
    assert "permission denied" in proc.stdout.lower(), proc.stdout
