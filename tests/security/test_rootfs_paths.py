"""CVE-2021-30465 and the 2025 /dev/null, /dev/console and procfs redirection class: symlinks planted
in the image (or swapped in while the runtime works) must never redirect a mount, a device node, a
masked or read-only path, or a /proc write to the host."""

from __future__ import annotations

import ctypes
import os
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _attack import evil_bundle, evil_rootfs, host_mounts_under, host_untouched, wait_file  # noqa: F401 - fixtures

RENAME_EXCHANGE = 2


@pytest.fixture
def shared_host_dir(tmp_path: Path) -> Iterator[Path]:
    """A host directory on a *shared* tmpfs: a mount the runtime wrongly made at a path in it inside
    the container's mount namespace would propagate back and show in the host's mountinfo (this
    host's own mounts are private, which would hide such an escape)."""
    top = tmp_path / "shared"
    top.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "prt-sec-shared", str(top)], check=True)
    subprocess.run(["mount", "--make-shared", str(top)], check=True)
    try:
        target = top / "host-target"
        target.mkdir()
        (target / "sentinel").write_text("host data")
        yield target
    finally:
        subprocess.run(["umount", "-l", str(top)], check=False)


def assert_host_target_untouched(target: Path) -> None:
    assert host_mounts_under(target) == [], f"a mount landed on the host at {target}"
    assert sorted(os.listdir(target)) == ["sentinel"]
    assert (target / "sentinel").read_text() == "host data"


def container_mounts(pid: int) -> list[str]:
    """Mount points as the container sees them."""
    with open(f"/proc/{pid}/mountinfo") as f:
        return [line.split()[4] for line in f]


def with_mount(dest: str, propagation: str | None = None):  # noqa: ANN201 - config edit
    def edit(config: dict) -> None:
        config["mounts"].append({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": ["size=64k"]})
        if propagation:
            config["linux"]["rootfsPropagation"] = propagation

    return edit


@pytest.mark.parametrize("propagation", [None, "rshared"])
@pytest.mark.parametrize("how", ["absolute", "climbing", "chain"])
def test_symlinked_mount_destination_lands_inside_the_rootfs(rt, evil_bundle, evil_rootfs, shared_host_dir, cid,
                                                              how, propagation):
    target = str(shared_host_dir)
    if how == "absolute":
        (evil_rootfs / "evil").symlink_to(target)
    elif how == "climbing":
        (evil_rootfs / "evil").symlink_to("../../../../../../../.." + target)
    else:
        (evil_rootfs / "hop").symlink_to("/etc/../" + target.lstrip("/"))
        (evil_rootfs / "evil").symlink_to("hop")
    bundle = evil_bundle(["sh", "-c", "ls -a /evil; echo ok > /evil/written"], edit=with_mount("/evil", propagation))
    rt("create", "--bundle", str(bundle), cid)
    try:
        pid = rt.state(cid)["pid"]
        assert_host_target_untouched(shared_host_dir)
        assert target in container_mounts(pid)  # the mount is at that path, inside the container's root
        rt("start", cid)
        time.sleep(0.3)
    finally:
        rt("delete", "--force", cid)
    assert_host_target_untouched(shared_host_dir)


def _exchange(a: Path, b: Path) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(-100, bytes(a), -100, bytes(b), RENAME_EXCHANGE) != 0:
        raise OSError(ctypes.get_errno(), "renameat2")


def test_mount_destination_swapped_in_a_loop(rt, evil_bundle, evil_rootfs, shared_host_dir, cid):
    """A thread swaps /race between a directory and a symlink to the host directory (atomic
    RENAME_EXCHANGE) as fast as it can while containers are created over and over, with shared
    propagation: the host directory never gets a mount, and each container either fails cleanly or
    has its mount inside its root."""
    race, alt = evil_rootfs / "race", evil_rootfs / "race-alt"
    race.mkdir()
    alt.symlink_to(str(shared_host_dir))
    stop = threading.Event()
    swaps = 0

    def swapper() -> None:
        nonlocal swaps
        while not stop.is_set():
            _exchange(race, alt)
            swaps += 1

    t = threading.Thread(target=swapper, daemon=True)
    t.start()
    ok = failed = 0
    try:
        deadline = time.monotonic() + 4
        n = 0
        while time.monotonic() < deadline:
            bundle = evil_bundle(["true"], edit=with_mount("/race", "rshared"), name=f"r{n}")
            proc = rt("create", "--bundle", str(bundle), f"{cid}-{n}", check=False)
            if proc.returncode == 0:
                ok += 1
                try:
                    pid = rt.state(f"{cid}-{n}")["pid"]
                    mounts = container_mounts(pid)
                    # the tmpfs is on the directory (wherever the swapper moved it) or on the
                    # symlink's target resolved inside the root: both inside the container
                    assert {"/race", "/race-alt", str(shared_host_dir)} & set(mounts), mounts
                    assert_host_target_untouched(shared_host_dir)
                finally:
                    rt("delete", "--force", f"{cid}-{n}")
            else:
                failed += 1
                assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
                assert rt.ids() == []
            assert_host_target_untouched(shared_host_dir)
            n += 1
    finally:
        stop.set()
        t.join()
    assert swaps > 1000 and ok > 0, (swaps, ok, failed)


def no_dev_tmpfs(config: dict) -> None:
    config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/dev"]


@pytest.mark.parametrize("dev_tmpfs", [True, False], ids=["dev-tmpfs", "dev-in-rootfs"])
def test_dev_null_symlink_to_a_host_file(rt, evil_bundle, evil_rootfs, tmp_path, cid, dev_tmpfs):
    """/dev/null and /dev/zero in the image are symlinks to host files (and /dev/full a dangling one,
    /dev/random a directory): the devices replace them, never follow them."""
    victims = [tmp_path / "victim-null", tmp_path / "victim-zero"]
    for v in victims:
        v.write_text("precious")
    dev = evil_rootfs / "dev"
    for name in ("null", "zero", "full", "random", "urandom", "tty"):
        p = dev / name
        if p.exists() or p.is_symlink():
            p.unlink() if not p.is_dir() else p.rmdir()
    (dev / "null").symlink_to(victims[0])
    (dev / "zero").symlink_to(victims[1])
    (dev / "full").symlink_to("/no/such/host/file")
    (dev / "random").mkdir()
    script = "echo clobber > /dev/null; head -c 4 /dev/zero | od -An -tx1; ls -l /dev/null /dev/zero /dev/full"
    bundle = evil_bundle(["sh", "-c", script], edit=None if dev_tmpfs else no_dev_tmpfs)
    proc = rt("run", "--bundle", str(bundle), cid, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "00 00 00 00" in proc.stdout
    for v in victims:
        assert v.read_text() == "precious" and stat.S_ISREG(v.lstat().st_mode)
    assert not Path("/no/such/host/file").exists()
    if not dev_tmpfs:  # the nodes were made in the rootfs itself, replacing the symlinks
        for name in ("null", "zero", "full"):
            assert stat.S_ISCHR((dev / name).lstat().st_mode), name


def test_dev_as_a_symlink_to_a_host_dir(rt, evil_bundle, evil_rootfs, shared_host_dir, cid):
    """/dev itself is a symlink to a host directory, with and without a /dev tmpfs in config.json:
    nodes, symlinks and the devpts/shm/mqueue mounts all land inside the rootfs."""
    import shutil

    shutil.rmtree(evil_rootfs / "dev")
    (evil_rootfs / "dev").symlink_to(str(shared_host_dir))

    def no_tmp(config: dict) -> None:  # the target is under /tmp: keep it on the rootfs, not a tmpfs
        config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/tmp"]

    def no_tmp_no_dev(config: dict) -> None:
        no_tmp(config)
        no_dev_tmpfs(config)

    for edit in (no_tmp, no_tmp_no_dev):
        bundle = evil_bundle(["sh", "-c", "ls /dev; echo x > /dev/null"], edit=edit, name=f"d{edit is no_tmp}")
        proc = rt("run", "--bundle", str(bundle), f"{cid}-{edit is no_tmp}", check=False)
        assert proc.returncode == 0, proc.stderr
        assert "null" in proc.stdout.split()
        assert_host_target_untouched(shared_host_dir)
    inside = evil_rootfs / str(shared_host_dir).lstrip("/")
    assert stat.S_ISCHR((inside / "null").lstat().st_mode)  # made in the rootfs's copy of that path


def test_dev_console_symlink_to_a_host_file(rt, evil_bundle, evil_rootfs, tmp_path, cid):
    """With a terminal, /dev/console is bound from the pty: a /dev/console symlink to a host file in
    the image (no /dev tmpfs, so it is really there) is replaced, not followed."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))
    from _termutil import ConsoleReceiver

    victim = tmp_path / "victim-console"
    victim.write_text("precious")
    console = evil_rootfs / "dev" / "console"
    if console.exists() or console.is_symlink():
        console.unlink()
    console.symlink_to(victim)

    def edit(config: dict) -> None:
        no_dev_tmpfs(config)
        config["process"]["terminal"] = True

    recv = ConsoleReceiver(str(tmp_path / "console.sock"))
    try:
        bundle = evil_bundle(["sh", "-c", "echo clobber > /dev/console; ls -l /dev/console > /console.txt"], edit=edit)
        rt("create", "--bundle", str(bundle), "--console-socket", recv.path, cid)
        try:
            recv.wait()
            rt("start", cid)
            wait_file(evil_rootfs / "console.txt", "console")
        finally:
            rt("delete", "--force", cid)
    finally:
        recv.close()
    assert victim.read_text() == "precious" and stat.S_ISREG(victim.lstat().st_mode)


@pytest.mark.parametrize("where", ["proc", "proc/sys", "proc/sys/kernel"])
def test_proc_as_a_symlink_to_a_host_dir(rt, evil_bundle, evil_rootfs, shared_host_dir, cid, where):
    """/proc (or a directory the runtime writes or masks under it, once procfs is mounted it is the
    kernel's, so only /proc itself is plantable) is a symlink to a host directory: procfs, the masked
    and read-only paths and the sysctl writes all land inside the rootfs."""
    proc_dir = evil_rootfs / "proc"
    host_core_pattern = Path("/proc/sys/kernel/core_pattern").read_text()
    if where == "proc":
        proc_dir.rmdir()
        proc_dir.symlink_to(str(shared_host_dir))
    else:
        (proc_dir / where.split("/", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
        (proc_dir / where.split("/", 1)[1]).symlink_to(str(shared_host_dir))

    def edit(config: dict) -> None:
        config["linux"]["sysctl"] = {"kernel.shm_rmid_forced": "1"}
        config["linux"]["maskedPaths"] += ["/proc/sys/kernel/core_pattern"]

    script = "cat /proc/sys/kernel/shm_rmid_forced; cat /proc/sys/kernel/core_pattern | wc -c; " \
             "echo '|/tmp/x' > /proc/sys/kernel/core_pattern && echo WROTE"
    proc = rt("run", "--bundle", str(evil_bundle(["sh", "-c", script], edit=edit)), cid, check=False)
    if where == "proc":  # procfs only goes on an ordinary directory (runc's rule)
        assert proc.returncode == 1 and "ordinary directory" in proc.stderr, proc.stderr
        assert rt.ids() == []
    else:  # hidden under procfs: the kernel's /proc/sys is what the runtime wrote and masked
        assert proc.returncode == 0, proc.stderr
        # the sysctl was set in the container; core_pattern is masked (reads empty, writes go to /dev/null)
        assert proc.stdout.split()[:2] == ["1", "0"], proc.stdout
    assert_host_target_untouched(shared_host_dir)
    assert Path("/proc/sys/kernel/core_pattern").read_text() == host_core_pattern


@pytest.mark.parametrize("plant", ["symlink", "regular-file"])
def test_proc_mount_replaced_by_a_tmpfs(rt, evil_bundle, evil_rootfs, tmp_path, cid, plant):
    """config.json mounts a tmpfs over /proc/sys after procfs (the 2025 procfs-redirection class,
    where writes meant for the kernel land on files the container controls): the runtime's sysctl
    write and masked/read-only paths refuse or stay in the container; nothing on the host changes."""
    fake = tmp_path / "fake-sys"
    (fake / "kernel").mkdir(parents=True)
    if plant == "symlink":
        (fake / "kernel" / "shm_rmid_forced").symlink_to("/proc/sys/kernel/core_pattern")
    else:  # the write would land in a file the container controls, the sysctl silently not set
        (fake / "kernel" / "shm_rmid_forced").write_text("0\n")

    def edit(config: dict) -> None:
        config["mounts"].append({"destination": "/proc/sys", "type": "bind", "source": str(fake), "options": ["rbind"]})
        config["linux"]["sysctl"] = {"kernel.shm_rmid_forced": "1"}

    before = Path("/proc/sys/kernel/core_pattern").read_text()
    proc = rt("run", "--bundle", str(evil_bundle(["true"], edit=edit)), cid, check=False)
    assert proc.returncode == 1 and "sysctl" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert Path("/proc/sys/kernel/core_pattern").read_text() == before
    if plant == "symlink":
        assert (fake / "kernel" / "shm_rmid_forced").is_symlink()
    else:
        assert (fake / "kernel" / "shm_rmid_forced").read_text() == "0\n"
        assert "not on procfs" in proc.stderr
    assert rt.ids() == []


def test_masked_and_readonly_paths_that_are_symlinks_to_host_paths(rt, evil_bundle, evil_rootfs, shared_host_dir,
                                                                    cid):
    """maskedPaths and readonlyPaths naming image symlinks to a host directory and a host file (on a
    shared mount, where a mount would show): resolved inside the rootfs, never masked or remounted
    on the host."""
    host_file = shared_host_dir / "sentinel"
    (evil_rootfs / "etc" / "mask-dir").symlink_to(str(shared_host_dir))
    (evil_rootfs / "etc" / "mask-file").symlink_to(str(host_file))
    (evil_rootfs / "etc" / "ro-dir").symlink_to("../../../../../../.." + str(shared_host_dir))
    inside = evil_rootfs / str(shared_host_dir).lstrip("/")  # the same path inside the rootfs
    inside.mkdir(parents=True)
    (inside / "sentinel").write_text("container data")

    def edit(config: dict) -> None:
        config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/tmp"]
        config["linux"]["maskedPaths"] += ["/etc/mask-file", "/etc/mask-dir"]
        config["linux"]["readonlyPaths"] += ["/etc/ro-dir"]

    proc = rt("create", "--bundle", str(evil_bundle(["true"], edit=edit)), cid, check=False)
    try:
        assert proc.returncode == 0, proc.stderr
        assert_host_target_untouched(shared_host_dir)
        mounts = container_mounts(rt.state(cid)["pid"])  # masked: the rootfs's own copies
        assert str(shared_host_dir) in mounts and str(shared_host_dir / "sentinel") in mounts, "\n".join(mounts)
    finally:
        rt("delete", "--force", cid)
    assert_host_target_untouched(shared_host_dir)


def test_masked_path_through_a_magic_link_is_refused(rt, evil_bundle, evil_rootfs, shared_host_dir, cid):
    """A masked path reached through /proc/self/root (a magic link) would leave the rootfs: refused."""
    (evil_rootfs / "etc" / "mask-proc").symlink_to("/proc/self/root" + str(shared_host_dir))
    bundle = evil_bundle(["true"], edit=lambda c: c["linux"]["maskedPaths"].append("/etc/mask-proc"))
    proc = rt("run", "--bundle", str(bundle), cid, check=False)
    assert proc.returncode == 1 and "mask-proc" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert rt.ids() == []
    assert_host_target_untouched(shared_host_dir)


@pytest.mark.parametrize("path", ["/dev/../etc/passwd", "/dev/../../../../tmp/x", "/dev/./../bin/sh"])
def test_device_paths_climbing_out_of_dev_are_refused(rt, evil_bundle, evil_rootfs, cid, path):
    """linux.devices[].path must stay under /dev: "/dev/../etc/passwd" would replace the image's
    file (the node replaces whatever is at its path)."""
    before = (evil_rootfs / "etc" / "passwd").read_bytes()
    dev = {"path": path, "type": "c", "major": 1, "minor": 3}
    bundle = evil_bundle(["true"], edit=lambda c: c["linux"].setdefault("devices", []).append(dev))
    proc = rt("run", "--bundle", str(bundle), cid, check=False)
    assert proc.returncode == 1 and "linux.devices[0].path" in proc.stderr, proc.stderr
    assert (evil_rootfs / "etc" / "passwd").read_bytes() == before
    assert stat.S_ISREG((evil_rootfs / "bin" / "sh").lstat().st_mode) or (evil_rootfs / "bin" / "sh").is_symlink()
    assert rt.ids() == []
