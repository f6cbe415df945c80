"""process: user (uid, gid, additionalGids, umask), cwd, env, rlimits, stdio, preserved fds, LISTEN_FDS."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from pyruntime_tests_conftest import wait_until


def _user(**user):
    def edit(c):
        c["process"]["user"] = user
    return edit


def test_user_uid_gid_additional_gids(sh):
    out = sh("id -u; id -g; id -G; grep -E '^(Uid|Gid|Groups):' /proc/self/status",
             edit=_user(uid=1000, gid=1001, additionalGids=[5, 1002, 65534])).stdout.splitlines()
    assert out[0] == "1000" and out[1] == "1001"
    assert sorted(map(int, out[2].split())) == [5, 1001, 1002, 65534]
    status = {line.split(":")[0]: line.split(":", 1)[1].split() for line in out[3:]}
    assert status["Uid"] == ["1000"] * 4 and status["Gid"] == ["1001"] * 4
    assert sorted(map(int, status["Groups"])) == [5, 1002, 65534]


def test_root_user_has_no_supplementary_groups_by_default(sh):
    out = sh("id -u; id -g; grep '^Groups:' /proc/self/status").stdout.splitlines()
    assert out[:2] == ["0", "0"]
    assert out[2].split(":", 1)[1].split() == []  # the runtime's own groups do not leak in


@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, "644", "755"), (0o077, "600", "700"),
                                                       (0o002, "664", "775"), (None, "644", "755")])
def test_umask(sh, umask, file_mode, dir_mode):
    user = {"uid": 0, "gid": 0} | ({"umask": umask} if umask is not None else {})
    out = sh("umask; touch /tmp/f; mkdir /tmp/d; stat -c %a /tmp/f /tmp/d", edit=_user(**user)).stdout.split()
    assert int(out[0], 8) == (0o022 if umask is None else umask)
    assert out[1:] == [file_mode, dir_mode]


def test_non_root_user_cannot_write_root_owned_files(sh, private_rootfs):
    def edit(c):
        c["root"] = {"path": str(private_rootfs), "readonly": False}
        c["process"]["user"] = {"uid": 1000, "gid": 1000}

    out = sh("touch /etc/nope 2>&1; echo rc=$?; touch /tmp/yes && echo tmp-ok", edit=edit).stdout
    assert "Permission denied" in out and "rc=1" in out and "tmp-ok" in out


def test_cwd(sh):
    def edit(c):
        c["process"]["cwd"] = "/usr/bin"

    assert sh("pwd; ls -d .", edit=edit).stdout.split() == ["/usr/bin", "."]


def test_cwd_created_if_missing(sh, private_rootfs):
    """runc creates a missing cwd inside the rootfs."""
    def edit(c):
        c["root"] = {"path": str(private_rootfs), "readonly": False}
        c["process"]["cwd"] = "/work/dir"

    assert sh("pwd", edit=edit).stdout == "/work/dir\n"
    assert (private_rootfs / "work" / "dir").is_dir()


def test_cwd_as_non_root_user(sh):
    def edit(c):
        c["process"]["cwd"] = "/tmp"
        c["process"]["user"] = {"uid": 1000, "gid": 1000}

    assert sh("pwd; id -u", edit=edit).stdout.split() == ["/tmp", "1000"]


def test_env_is_exactly_the_configured_one(rt, make_bundle, cid):
    def edit(c):
        c["process"]["env"] = ["PATH=/bin", "FOO=bar baz", "EMPTY=", "WITH_EQUALS=a=b", "HOME=/home"]

    bundle = make_bundle(["env"], edit=edit)
    proc = rt("run", "--bundle", str(bundle), cid, env={"PATH": os.environ["PATH"], "LEAK_CHECK": "leaked"})
    env = dict(line.split("=", 1) for line in proc.stdout.splitlines())
    assert env == {"PATH": "/bin", "FOO": "bar baz", "EMPTY": "", "WITH_EQUALS": "a=b", "HOME": "/home"}


def test_env_home_defaults_and_path_lookup(sh):
    def edit(c):
        c["process"]["env"] = ["PATH=/usr/sbin:/bin"]
        c["process"]["args"] = ["sh", "-c", "echo $HOME; echo $PATH"]

    out = sh("", edit=edit).stdout.splitlines()
    assert out[0] == "/root"  # runc: from the container's /etc/passwd
    assert out[1] == "/usr/sbin:/bin"


@pytest.mark.parametrize("uid, home", [(1000, "/home"), (65534, "/"), (4242, "/")])
def test_home_from_the_containers_passwd(sh, uid, home):
    def edit(c):
        c["process"]["env"] = ["PATH=/bin"]
        c["process"]["user"] = {"uid": uid, "gid": uid}

    assert sh("echo $HOME", edit=edit).stdout == f"{home}\n"


def test_home_with_a_hostile_passwd(sh, private_rootfs):
    """/etc/passwd as a FIFO must not hang the container's set-up."""
    (private_rootfs / "etc" / "passwd").unlink()
    os.mkfifo(private_rootfs / "etc" / "passwd")

    def edit(c):
        c["root"] = {"path": str(private_rootfs), "readonly": True}
        c["process"]["env"] = ["PATH=/bin"]

    assert sh("echo $HOME", edit=edit).stdout == "/\n"


def test_args_are_passed_verbatim(rt, make_bundle, cid):
    args = ["printf", "[%s]\\n", "a b", "", "*", "$HOME", "'q'", "tab\there"]
    bundle = make_bundle(args)
    out = rt("run", "--bundle", str(bundle), cid).stdout
    assert out == "[a b]\n[]\n[*]\n[$HOME]\n['q']\n[tab\there]\n"


# -- rlimits --------------------------------------------------------------------------------------------

def _rlimits(*limits):
    def edit(c):
        c["process"]["rlimits"] = [{"type": t, "soft": s, "hard": h} for t, s, h in limits]
    return edit


def test_rlimits_set(sh):
    out = sh("ulimit -Sn; ulimit -Hn; grep -E 'Max (open files|core file size)' /proc/self/limits",
             edit=_rlimits(("RLIMIT_NOFILE", 512, 4096), ("RLIMIT_CORE", 0, 1024 * 1024))).stdout.splitlines()
    assert out[:2] == ["512", "4096"]
    limits = {line[:26].strip(): line[26:].split()[:2] for line in out[2:]}
    assert limits == {"Max core file size": ["0", str(1024 * 1024)], "Max open files": ["512", "4096"]}


def test_rlimit_at_host_hard_limit(sh):
    with open("/proc/self/limits") as f:
        hard = next(line for line in f if line.startswith("Max open files")).split()[4]
    out = sh("ulimit -Hn", edit=_rlimits(("RLIMIT_NOFILE", int(hard), int(hard)))).stdout
    assert out.strip() == hard


def test_raising_a_hard_limit_fails_clearly(rt, make_bundle, cid, cgroup_parent):
    """This host lacks CAP_SYS_RESOURCE: a hard limit above the current one cannot be set."""
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY or Path("/proc/self/status").read_text().find("CapBnd:\t000001ffffffffff") >= 0:
        pytest.skip("the runtime may raise hard limits here")
    bundle = make_bundle(["true"], edit=_rlimits(("RLIMIT_NOFILE", 1024, hard + 1000)), name="rl")
    proc = rt("create", "--bundle", str(bundle), cid, check=False)
    assert proc.returncode == 1
    line = proc.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert "RLIMIT_NOFILE" in line and "CAP_SYS_RESOURCE" in line
    assert rt.ids() == []
    from pyruntime_tests_conftest import cgroup_dirs

    assert cgroup_dirs(f"{cgroup_parent}/rl") == []


# -- stdio and file descriptors -------------------------------------------------------------------------

def test_stdin_passthrough(rt, make_bundle, cid, tmp_path):
    data = b"line one\nline two\n\x00binary\x01\n" * 1000
    (tmp_path / "input").write_bytes(data)
    with open(tmp_path / "input", "rb") as stdin:
        proc = rt("run", "--bundle", str(make_bundle(["sh", "-c", "cat; echo done >&2"])), cid, stdin=stdin)
    assert proc.stdout.encode() == data
    assert proc.stderr == "done\n"


def test_stdio_are_the_callers_files(rt, make_bundle, cid, tmp_path):
    """fds 0-2 of the container are the very files the runtime was given (no pipe copying)."""
    bundle = make_bundle(["sh", "-c", "for n in 0 1 2; do readlink /proc/self/fd/$n; done"])
    with open(tmp_path / "in", "w") as i, open(tmp_path / "out", "w") as o, open(tmp_path / "err", "w") as e:
        subprocess.run(rt.argv("run", "--bundle", str(bundle), cid), stdin=i, stdout=o, stderr=e, timeout=30,
                       check=True)
    # The container's view of host paths is its own mount namespace: compare by inode instead.
    names = (tmp_path / "out").read_text().split()
    assert len(names) == 3
    assert names[1].endswith("/out") and names[2].endswith("/err") and names[0].endswith("/in")


def _fds_of(pid: int) -> list[int]:
    return sorted(int(n) for n in os.listdir(f"/proc/{pid}/fd"))


def _environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if item)


def _detached_with_fds(rt, bundle, cid, tmp_path, runtime_args=(), env_extra=None, extra_fds=2):
    """`run --detach` with fds 3.. open on files fdN.txt and a stray fd 9 (through a shell, so the
    numbers are exact); returns the pid of the container's process once it runs `sleep`."""
    redirs = []
    for n in range(3, 3 + extra_fds):
        (tmp_path / f"fd{n}.txt").write_text(f"content of fd {n}\n")
        redirs.append(f"{n}<{tmp_path}/fd{n}.txt")
    (tmp_path / "stray.txt").write_text("stray\n")
    argv = rt.argv("run", "--detach", *runtime_args, "--bundle", str(bundle), cid)
    cmd = " ".join(["exec", *redirs, f"9<{tmp_path}/stray.txt", *map(_quote, argv)])
    env = dict(os.environ, **(env_extra or {}))
    with open(tmp_path / "stdout", "w") as out, open(tmp_path / "stderr", "w") as err:
        code = subprocess.run(["bash", "-c", cmd], stdout=out, stderr=err, env=env, timeout=30,
                              stdin=subprocess.DEVNULL).returncode
    assert code == 0, (tmp_path / "stderr").read_text()
    pid = rt.state(cid)["pid"]
    wait_until(lambda: Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"sleep"), what="sleep")
    return pid


def _quote(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


FD_SCRIPT = "cat <&3; cat <&4; exec sleep 100"


def _finish(rt, cid):
    rt("delete", "--force", cid)


def test_preserve_fds(rt, make_bundle, cid, tmp_path):
    pid = _detached_with_fds(rt, make_bundle(["sh", "-c", FD_SCRIPT]), cid, tmp_path, ("--preserve-fds", "2"))
    try:
        assert _fds_of(pid) == [0, 1, 2, 3, 4]  # fd 9 (and all of the runtime's) closed
        assert os.readlink(f"/proc/{pid}/fd/3") == str(tmp_path / "fd3.txt")
        assert "LISTEN_FDS" not in _environ_of(pid)
        wait_until(lambda: (tmp_path / "stdout").read_text() == "content of fd 3\ncontent of fd 4\n")
    finally:
        _finish(rt, cid)


def test_without_preserve_fds_only_stdio_reaches_the_container(rt, make_bundle, cid, tmp_path):
    pid = _detached_with_fds(rt, make_bundle(["sleep", "100"]), cid, tmp_path)
    try:
        assert _fds_of(pid) == [0, 1, 2]
    finally:
        _finish(rt, cid)


def test_listen_fds(rt, make_bundle, cid, tmp_path):
    pid = _detached_with_fds(rt, make_bundle(["sh", "-c", FD_SCRIPT]), cid, tmp_path,
                             env_extra={"LISTEN_FDS": "2", "LISTEN_PID": str(os.getpid())})
    try:
        assert _fds_of(pid) == [0, 1, 2, 3, 4]
        env = _environ_of(pid)
        assert (env["LISTEN_FDS"], env["LISTEN_PID"]) == ("2", "1")
        wait_until(lambda: (tmp_path / "stdout").read_text() == "content of fd 3\ncontent of fd 4\n")
    finally:
        _finish(rt, cid)


def test_listen_fds_plus_preserve_fds(rt, make_bundle, cid, tmp_path):
    pid = _detached_with_fds(rt, make_bundle(["sleep", "100"]), cid, tmp_path, ("--preserve-fds", "1"),
                             {"LISTEN_FDS": "2"}, extra_fds=3)
    try:
        assert _fds_of(pid) == [0, 1, 2, 3, 4, 5]
        assert os.readlink(f"/proc/{pid}/fd/5") == str(tmp_path / "fd5.txt")
    finally:
        _finish(rt, cid)


def test_preserved_fds_with_create_and_start(rt, make_bundle, cid, tmp_path):
    """The fds survive the wait between create and start (held by the waiting init)."""
    (tmp_path / "fd3.txt").write_text("held\n")
    cmd = f"exec 3<{tmp_path}/fd3.txt 7<{tmp_path}/fd3.txt; " + " ".join(
        map(_quote, rt.argv("create", "--preserve-fds", "1", "--bundle", str(make_bundle(["sleep", "100"])), cid)))
    with open(tmp_path / "create.err", "w") as err:
        subprocess.run(["bash", "-c", cmd], check=True, timeout=30, stdout=subprocess.DEVNULL, stderr=err,
                       stdin=subprocess.DEVNULL)
    try:
        pid = rt.state(cid)["pid"]
        assert _fds_of(pid) == [0, 1, 2, 3, 4]  # 4: the start socket the stub waits on
        rt("start", cid)
        wait_until(lambda: Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"sleep"), what="sleep")
        assert _fds_of(pid) == [0, 1, 2, 3]
        assert os.readlink(f"/proc/{pid}/fd/3") == str(tmp_path / "fd3.txt")
    finally:
        _finish(rt, cid)


def test_signal_dispositions_and_mask_are_default(rt, make_bundle, cid, tmp_path):
    """Nothing the runtime ignored or blocked (Python ignores SIGPIPE and SIGXFSZ) reaches the program."""
    bundle = make_bundle(["grep", "-E", "^Sig(Ign|Blk):", "/proc/self/status"])
    proc = rt("run", "--bundle", str(bundle), cid, preexec_fn=_ignore_some_signals)
    fields = dict(line.split(":\t") for line in proc.stdout.splitlines())
    assert fields == {"SigIgn": "0000000000000000", "SigBlk": "0000000000000000"}


def _ignore_some_signals() -> None:
    import signal

    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})
