"""CVE-2024-21626 class: no fd of the runtime (or of its caller) reaches the container except stdio,
LISTEN_FDS and --preserve-fds; a process.cwd into /proc/self/fd is refused, and the cwd is checked
after chdir."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from _attack import attacker_bin, evil_bundle, evil_rootfs, host_untouched, wait_file  # noqa: F401 - fixtures

BASE_FDS = {"0", "1", "2"}


def parse_fds(text: str) -> dict[str, str]:
    fds = {}
    for line in text.splitlines():
        if " -> " in line:
            n, _, target = line.partition(" -> ")
            fds[n.strip()] = target.strip()
    return fds


@pytest.fixture
def caller_fds(tmp_path: Path):  # noqa: ANN201 - preexec_fn and the files behind fds 3, 4, 9
    """A caller that has fds 3, 4 (files) and 9 (a host directory: the CVE-2024-21626 prize) open
    and inheritable when it starts the runtime."""
    files = [tmp_path / "fd3", tmp_path / "fd4"]
    for f in files:
        f.write_text(f.name)

    def preexec() -> None:
        for n, f in ((3, files[0]), (4, files[1])):
            fd = os.open(f, os.O_RDONLY)
            if fd != n:
                os.dup2(fd, n)
                os.close(fd)
        d = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
        os.dup2(d, 9)
        os.close(d)

    return preexec, files


def plant(rootfs: Path, attacker_bin: Path) -> None:
    shutil.copy(attacker_bin, rootfs / "attacker")


def test_run_passes_only_stdio(rt, evil_bundle, evil_rootfs, attacker_bin, caller_fds, cid):
    plant(evil_rootfs, attacker_bin)
    preexec, _ = caller_fds
    proc = rt("run", "--bundle", str(evil_bundle(["/attacker", "fds"])), cid, preexec_fn=preexec, close_fds=False)
    assert set(parse_fds(proc.stdout)) == BASE_FDS, proc.stdout


def test_preserve_fds_passes_exactly_those(rt, evil_bundle, evil_rootfs, attacker_bin, caller_fds, cid):
    plant(evil_rootfs, attacker_bin)
    preexec, files = caller_fds
    proc = rt("run", "--preserve-fds", "2", "--bundle", str(evil_bundle(["/attacker", "fds"])), cid,
              preexec_fn=preexec, close_fds=False)
    fds = parse_fds(proc.stdout)
    assert set(fds) == BASE_FDS | {"3", "4"}, proc.stdout
    assert fds["3"].endswith("/fd3") and fds["4"].endswith("/fd4")


def test_listen_fds_passes_exactly_those(rt, evil_bundle, evil_rootfs, attacker_bin, caller_fds, cid):
    plant(evil_rootfs, attacker_bin)
    preexec, _ = caller_fds
    env = dict(os.environ, LISTEN_FDS="1", LISTEN_PID=str(os.getpid()))
    proc = rt("run", "--bundle", str(evil_bundle(["sh", "-c", "/attacker fds; echo LISTEN_FDS=$LISTEN_FDS"])),
              cid, preexec_fn=preexec, close_fds=False, env=env)
    fds = parse_fds(proc.stdout)
    assert set(fds) == BASE_FDS | {"3"}, proc.stdout
    assert "LISTEN_FDS=1" in proc.stdout


@pytest.mark.parametrize("extra", ["plain", "start-hooks", "joined-pid-ns"])
def test_create_start_pass_only_stdio(rt, evil_bundle, evil_rootfs, attacker_bin, caller_fds, cid, extra, make_bundle):
    """fds open in the caller of create and of start, and whatever the runtime itself holds while
    it sets the container up (the startContainer hooks' memfd, a joined pid namespace's fd), must not
    be in the container's process."""
    plant(evil_rootfs, attacker_bin)
    preexec, _ = caller_fds
    other = None

    def edit(config: dict) -> None:
        if extra == "start-hooks":
            config["hooks"] = {"startContainer": [{"path": "/bin/true"}]}
        if extra == "joined-pid-ns":
            for ns in config["linux"]["namespaces"]:
                if ns["type"] == "pid":
                    ns["path"] = f"/proc/{other}/ns/pid"

    if extra == "joined-pid-ns":
        rt("run", "--detach", "--bundle", str(make_bundle(["sleep", "30"], name="other")), f"{cid}-o")
        other = rt.state(f"{cid}-o")["pid"]
    try:
        rt("create", "--bundle", str(evil_bundle(["sh", "-c", "/attacker fds > /fds.out; echo done >> /fds.out"],
                                                 edit=edit)), cid, preexec_fn=preexec, close_fds=False)
        try:
            rt("start", cid, preexec_fn=preexec, close_fds=False)
            out = wait_file(evil_rootfs / "fds.out", "done")
        finally:
            rt("delete", "--force", cid)
    finally:
        if other:
            rt("delete", "--force", f"{cid}-o")
    fds = parse_fds(out)
    assert set(fds) == BASE_FDS, out
    assert fds["1"] == "/fds.out"


def test_exec_passes_only_stdio_and_preserved(rt, evil_bundle, evil_rootfs, attacker_bin, caller_fds, cid):
    plant(evil_rootfs, attacker_bin)
    preexec, _ = caller_fds
    rt("run", "--detach", "--bundle", str(evil_bundle(["sleep", "30"])), cid)
    try:
        proc = rt("exec", cid, "/attacker", "fds", preexec_fn=preexec, close_fds=False)
        assert set(parse_fds(proc.stdout)) == BASE_FDS, proc.stdout
        proc = rt("exec", "--preserve-fds", "1", cid, "/attacker", "fds", preexec_fn=preexec, close_fds=False)
        fds = parse_fds(proc.stdout)
        assert set(fds) == BASE_FDS | {"3"} and fds["3"].endswith("/fd3"), proc.stdout
    finally:
        rt("delete", "--force", cid)


@pytest.mark.parametrize("cwd", ["/proc/self/fd/9", "/proc/self/fd/3", "/proc/thread-self/fd/9",
                                 "/proc/1/fd/9", "/proc//self/./fd/9", "/proc/self/task/1/fd/9",
                                 "/proc/self/cwd", "/proc/1/root"])
def test_cwd_into_proc_fd_is_refused(rt, make_bundle, caller_fds, cid, cwd):
    """runc's CVE-2024-21626: cwd /proc/self/fd/N naming a leaked host directory fd put the process
    outside the rootfs. Refused with one line naming the field, before anything exists."""
    preexec, _ = caller_fds
    bundle = make_bundle(["sh", "-c", "pwd; echo ran"], edit=lambda c: c["process"].update(cwd=cwd))
    proc = rt("run", "--preserve-fds", "7", "--bundle", str(bundle), cid, check=False, preexec_fn=preexec,
              close_fds=False)
    assert proc.returncode == 1 and "ran" not in proc.stdout
    assert "process.cwd" in proc.stderr and "file descriptor path" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert rt.ids() == []


@pytest.mark.parametrize("link", ["/proc/self/fd/9", "/proc/1/cwd", "/proc/self/root/../../.."])
def test_cwd_symlink_to_a_magic_link_never_escapes(rt, evil_bundle, evil_rootfs, caller_fds, cid, link):
    """The image makes the cwd a symlink to /proc/self/fd/9, where the caller's preserved fd 9 is the
    host's / : refused (magic links are not followed) or contained, never run in a host directory."""
    preexec, _ = caller_fds
    (evil_rootfs / "evilcwd").symlink_to(link)
    bundle = evil_bundle(["sh", "-c", "pwd; ls -a .; echo ran"], edit=lambda c: c["process"].update(cwd="/evilcwd"))
    proc = rt("run", "--preserve-fds", "7", "--bundle", str(bundle), cid, check=False, preexec_fn=preexec,
              close_fds=False)
    if proc.returncode == 0:  # contained: it ran, in a directory of the container
        assert proc.stdout.splitlines()[0].startswith("/") and "(unreachable)" not in proc.stdout
        host_only = set(os.listdir("/")) - set(os.listdir(evil_rootfs))
        assert not host_only & set(proc.stdout.split()), proc.stdout
    else:
        assert proc.returncode == 1 and "cwd" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert "ran" not in proc.stdout
    assert rt.ids() == []


def test_exec_cwd_into_proc_fd_is_refused(rt, make_bundle, caller_fds, cid):
    preexec, _ = caller_fds
    rt("run", "--detach", "--bundle", str(make_bundle(["sleep", "30"])), cid)
    try:
        for cwd in ("/proc/self/fd/9", "/proc/thread-self/fd/3", "/proc/1/fd/9"):
            proc = rt("exec", "--preserve-fds", "7", "--cwd", cwd, cid, "sh", "-c", "pwd; echo ran", check=False,
                      preexec_fn=preexec, close_fds=False)
            assert proc.returncode != 0 and "ran" not in proc.stdout, (cwd, proc.stdout)
            assert "cwd" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    finally:
        rt("delete", "--force", cid)


def test_cwd_symlink_out_of_the_rootfs_stays_inside(rt, evil_bundle, evil_rootfs, cid):
    """A cwd that is a symlink to an absolute host path or climbs with .. resolves inside the rootfs."""
    (evil_rootfs / "up").symlink_to("../../../../../../../../")
    (evil_rootfs / "abs").symlink_to("/etc")
    bundle = evil_bundle(["sh", "-c", "pwd; ls"], edit=lambda c: c["process"].update(cwd="/up/abs"))
    proc = rt("run", "--bundle", str(bundle), cid, check=False)
    assert proc.returncode == 0, proc.stderr
    listing = proc.stdout.split()
    assert listing[0] == "/etc"
    assert sorted(listing[1:]) == sorted(os.listdir(evil_rootfs / "etc"))


def test_cwd_is_checked_after_chdir(rt, evil_bundle, evil_rootfs, caller_fds, cid):
    """The container plants /evilcwd -> /proc/self/fd/9 and the caller of exec has the host's / open
    as fd 9 (preserved): a chdir through the magic link would land outside the container's root.
    Refused (the chdir happens where /proc/self names no process, and the cwd is checked after it);
    nothing runs there."""
    preexec, _ = caller_fds
    (evil_rootfs / "evilcwd").symlink_to("/proc/self/fd/9")
    rt("run", "--detach", "--bundle", str(evil_bundle(["sleep", "30"])), cid)
    try:
        proc = rt("exec", "--preserve-fds", "7", "--cwd", "/evilcwd", cid, "sh", "-c", "pwd; ls; echo ran",
                  check=False, preexec_fn=preexec, close_fds=False)
        assert proc.returncode != 0 and "ran" not in proc.stdout, proc.stdout
        assert "process.cwd '/evilcwd'" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    finally:
        rt("delete", "--force", cid)
