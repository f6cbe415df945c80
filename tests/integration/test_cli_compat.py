"""runc's command line, as tools and runc's own tests read it: list/state/events/ps output byte for
byte, kill's signal 0, exec's 255 for its own failures, the default --root of a uid 0 that is root
only in a user namespace (rootless podman), and one clear line for a refused state directory."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyruntime_tests_conftest import ROOTFS, RUNTIME, wait_until


@pytest.fixture
def running(rt, make_bundle, cid) -> Iterator[tuple[str, Path]]:
    """A started container whose init sleeps, and its bundle; deleted afterwards."""
    bundle = make_bundle(["sleep", "1000"])
    rt("run", "--detach", "--bundle", str(bundle), cid)
    try:
        yield cid, bundle
    finally:
        rt("delete", "--force", cid)


RUNC_STATE_KEYS = ["ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner"]


# -- list / state ---------------------------------------------------------------------------------

def test_list_json_is_runcs_compact_array_and_null_when_empty(rt, running):
    cid, bundle = running
    text = rt("list", "--format", "json").stdout
    pid = rt.state(cid)["pid"]
    version = json.loads((bundle / "config.json").read_text())["ociVersion"]  # the config's, as runc
    # Go's json.Encoder: no spaces, runc's containerState key order (runc's list.bats matches the text)
    assert text.startswith(f'[{{"ociVersion":"{version}","id":"{cid}","pid":{pid},"status":"running",'
                           f'"bundle":"{bundle}","rootfs":"'), text
    assert text.endswith('","owner":"root"}]\n'), text
    (item,) = json.loads(text)
    assert list(item) == RUNC_STATE_KEYS
    assert item["created"].endswith("Z") and not item["created"].endswith("0Z")  # RFC3339Nano
    rt("delete", "--force", cid)
    assert rt("list", "-f", "json").stdout == "null\n"  # runc encodes its nil slice


def test_list_table_is_tabwriter_aligned(rt, running):
    cid, bundle = running
    lines = rt("list").stdout.splitlines()
    created = rt.state(cid)["created"]
    pid = str(rt.state(cid)["pid"])
    # text/tabwriter(minwidth 12, padding 3): each column is max(widest + 3, 12), the last unpadded
    widths = [max(12, len(a) + 3, len(b) + 3) for a, b in
              zip(["ID", "PID", "STATUS", "BUNDLE", "CREATED"], [cid, pid, "running", str(bundle), created],
                  strict=True)]
    header = "".join(v.ljust(w) for v, w in zip(["ID", "PID", "STATUS", "BUNDLE", "CREATED"], widths, strict=True))
    row = "".join(v.ljust(w) for v, w in zip([cid, pid, "running", str(bundle), created], widths, strict=True))
    assert lines == [header + "OWNER", row + "root"]
    assert rt("list", "-q", "--format", "json").stdout == f"{cid}\n"  # -q wins, as in runc


def test_state_prints_runcs_container_state(rt, running):
    cid, bundle = running
    text = rt("state", cid).stdout
    st = json.loads(text)
    assert list(st) == RUNC_STATE_KEYS
    assert (st["status"], st["bundle"], st["owner"]) == ("running", str(bundle), "root")
    version = json.loads((bundle / "config.json").read_text())["ociVersion"]  # the config's, as runc
    assert text.startswith(f'{{\n  "ociVersion": "{version}",\n  "id": ')  # json.MarshalIndent(cs, "", "  ")


# -- events / ps ------------------------------------------------------------------------------------

def test_events_stats_is_runcs_event_line(rt, running):
    cid, _ = running
    text = rt("events", "--stats", cid).stdout
    assert text.startswith(f'{{"type":"stats","id":"{cid}","data":{{"cpu":{{"usage":{{'), text
    assert text.count("\n") == 1 and " " not in text
    data = json.loads(text)["data"]
    assert list(data) == ["cpu", "cpuset", "memory", "pids", "blkio", "hugetlb", "intel_rdt", "network_interfaces"]
    assert set(data["cpu"]) == {"usage", "throttling"}
    assert set(data["cpu"]["throttling"]) <= {"periods", "throttledPeriods", "throttledTime"}  # runc's names
    assert {"usage", "swap", "kernel", "kernelTCP"} <= set(data["memory"])
    assert data["pids"]["current"] == 1


def test_events_stream_ends_with_the_container(rt, make_bundle, cid):
    rt("run", "--detach", "--bundle", str(make_bundle(["sleep", "1"])), cid)
    try:
        proc = rt("events", "--interval", "100ms", cid, timeout=30)
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        assert lines, "no stats event while the container ran"
        assert all(line.startswith(f'{{"type":"stats","id":"{cid}","data":') for line in lines)
    finally:
        rt("delete", "--force", cid)


def test_ps_json_is_compact(rt, running):
    cid, _ = running
    rt("exec", "--detach", cid, "sleep", "1000")
    text = rt("ps", "--format", "json", cid).stdout
    assert len(json.loads(text)) == 2 and text.count(",") == 1 and " " not in text, text  # Go's encoder


# -- kill / exec ------------------------------------------------------------------------------------

def test_kill_signal_zero_probes_and_kill_all_of_a_stopped_container(rt, running):
    cid, _ = running
    rt("kill", cid, "0")  # the process exists: nothing is sent
    assert rt.state(cid)["status"] == "running"
    rt("kill", cid, "KILL")
    wait_until(lambda: rt.state(cid)["status"] == "stopped", what="stopped")
    rt("kill", "-a", cid, "0")  # runc's kill.bats: --all still works once the container stopped
    assert rt("kill", cid, "0", check=False).returncode == 1  # the init alone: not running


def test_exec_failures_exit_255_and_the_process_its_own_code(rt, running, tmp_path):
    cid, _ = running
    assert rt("exec", cid, "sh", "-c", "exit 42", check=False).returncode == 42
    assert rt("exec", cid, "false", check=False).returncode == 1
    for args in (["--pid-file", str(tmp_path / "no" / "dir"), cid, "true"], [cid, "no-such-binary"],
                 ["no-such-container", "true"]):
        proc = rt("exec", *args, check=False)
        assert proc.returncode == 255, (args, proc.returncode, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1 and "internal error" not in proc.stderr


# -- rootless: the default state root, and refused state directories ---------------------------------

def _as_nobody_in_userns(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """The runtime run as podman runs it rootless: an unprivileged user's process that is uid 0 in a
    user namespace of its own (unshare --map-root-user)."""
    if not (shutil.which("setpriv") and shutil.which("unshare")):
        pytest.skip("needs setpriv and unshare (util-linux)")
    return subprocess.run(["setpriv", "--reuid", "nobody", "--regid", str(pwd.getpwnam("nobody").pw_gid),
                           "--clear-groups", "unshare", "--user", "--map-root-user", "env", "-i",
                           *(f"{k}={v}" for k, v in env.items()), RUNTIME, *args],
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def nobody_dir() -> Iterator[Path]:
    """A directory owned by nobody (its XDG_RUNTIME_DIR), removed afterwards."""
    d = Path(tempfile.mkdtemp(prefix="prt-xdg-"))
    nobody = pwd.getpwnam("nobody")
    os.chown(d, nobody.pw_uid, nobody.pw_gid)
    yield d
    shutil.rmtree(d)


def _plant_state(root: Path, cid: str) -> None:
    """A stopped container's state directory, as nobody would own it."""
    nobody = pwd.getpwnam("nobody")
    (root / cid).mkdir(parents=True)
    (root / cid / "state.json").write_text(json.dumps(
        {"id": cid, "bundle": "/nonexistent", "pid": 0, "start_time": 0, "created": "2026-01-01T00:00:00.5Z"}))
    for p in (root, root / cid, root / cid / "state.json"):
        os.chown(p, nobody.pw_uid, nobody.pw_gid)


def test_namespaced_root_uses_xdg_runtime_dir(nobody_dir, cid):
    _plant_state(nobody_dir / "pyruntime", cid)
    proc = _as_nobody_in_userns(["state", cid], {"XDG_RUNTIME_DIR": str(nobody_dir), "USER": "someone"})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["status"] == "stopped"
    proc = _as_nobody_in_userns(["list", "-q"], {"XDG_RUNTIME_DIR": str(nobody_dir)})  # no $USER: the same
    assert (proc.returncode, proc.stdout) == (0, f"{cid}\n"), proc.stderr


def test_namespaced_root_named_root_keeps_run(nobody_dir, cid):
    """runc's rule: a namespaced uid 0 whose $USER is root keeps /run (as the host's root does)."""
    _plant_state(nobody_dir / "pyruntime", cid)
    proc = _as_nobody_in_userns(["state", cid], {"XDG_RUNTIME_DIR": str(nobody_dir), "USER": "root"})
    assert proc.returncode == 1 and "does not exist" in proc.stderr


def test_host_root_ignores_xdg_runtime_dir(tmp_path, cid):
    env = {"PATH": os.environ["PATH"], "XDG_RUNTIME_DIR": str(tmp_path)}
    _plant_state(tmp_path / "pyruntime", cid)
    proc = subprocess.run([RUNTIME, "state", cid], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 1 and "does not exist" in proc.stderr  # /run/pyruntime, not $XDG_RUNTIME_DIR


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A root-owned directory everyone may enter (pytest's tmp_path is private to root)."""
    d = Path(tempfile.mkdtemp(prefix="prt-pub-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d)


def test_unwritable_state_root_is_one_clear_line(public_dir, cid):
    root = public_dir / "root-owned"
    root.mkdir(mode=0o755)
    bundle = public_dir / "bundle"
    bundle.mkdir()
    subprocess.run([RUNTIME, "spec", "--rootless", "--bundle", str(bundle)], check=True, timeout=60)
    config = json.loads((bundle / "config.json").read_text())
    config["root"]["path"] = str(ROOTFS)
    config["process"]["terminal"] = False
    (bundle / "config.json").write_text(json.dumps(config))
    (bundle / "config.json").chmod(0o644)
    proc = _as_nobody_in_userns(["--root", str(root), "create", "--bundle", str(bundle), cid], {"USER": "root"})
    assert proc.returncode == 1
    assert proc.stderr == f"pyruntime: cannot create the state directory: {root}/{cid}: permission denied\n"
    assert os.listdir(root) == []


# -- terminal / --process / --debug ------------------------------------------------------------------

def test_run_terminal_belongs_to_the_process_user(rt, make_bundle, cid):
    """runc's tty.bats: the pty is the process's user's (the init opens it as root), its group
    devpts' gid= option."""
    def edit(config):  # noqa: ANN001, ANN202
        config["process"]["terminal"] = True
        config["process"]["user"] = {"uid": 1000, "gid": 100}
        devpts = next(m for m in config["mounts"] if m["destination"] == "/dev/pts")
        devpts["options"].append("gid=5")

    bundle = make_bundle(["sh", "-c", "stat -c %u:%g $(tty)"], edit=edit)
    proc = rt("run", "--bundle", str(bundle), cid, timeout=30)
    assert proc.stdout.strip() == "1000:5"


def test_exec_process_json_from_a_pipe(rt, running):
    """exec -p <(...) or -p /dev/stdin: a pipe is read to its end (runc's tty.bats passes one)."""
    cid, _ = running
    r, w = os.pipe()
    os.write(w, json.dumps({"args": ["echo", "from-a-pipe"], "cwd": "/"}).encode())
    os.close(w)
    try:
        proc = rt("exec", "-p", "/dev/stdin", cid, stdin=r)
    finally:
        os.close(r)
    assert proc.stdout == "from-a-pipe\n"


def test_debug_lines_of_run_and_exec(rt, make_bundle, cid, tmp_path):
    """--debug: the runtime's and its children's steps at debug level, on stderr without --log and
    only in the log with it (runc's debug.bats and exec.bats look for these words)."""
    proc = rt("--debug", "run", "--bundle", str(make_bundle(["true"])), cid)
    assert "level=debug" in proc.stderr
    for words in ("nsexec container setup", "child process in init()", "init: closing the pipe to signal completion"):
        assert words in proc.stderr, proc.stderr
    rt("run", "--detach", "--bundle", str(make_bundle(["sleep", "1000"])), f"{cid}-x")
    try:
        log = tmp_path / "log.json"
        proc = rt("--debug", "--log", str(log), "--log-format", "json", "exec", f"{cid}-x", "true")
        assert "debug" not in proc.stderr
        lines = [json.loads(line) for line in log.read_text().splitlines()]
        text = log.read_text()
        assert '"level":"debug"' in text
        for words in ("nsexec container setup", "child process in init()", "setns_init: about to exec"):
            assert any(words in e["msg"] for e in lines), text
    finally:
        rt("delete", "--force", f"{cid}-x")


def test_pidfd_socket_of_create_and_exec(rt, make_bundle, cid, tmp_path):
    """--pidfd-socket (runc 1.2+): a pidfd of the init (create) or of the process (exec) arrives over
    the socket; signalling through it reaches that very process."""
    import signal

    from _termutil import ConsoleReceiver

    recv = ConsoleReceiver(str(tmp_path / "pidfd.sock"))
    rt("create", "--bundle", str(make_bundle(["sleep", "1000"])), "--pidfd-socket", recv.path, cid)
    try:
        pidfd = recv.wait()
        assert recv.message == b"pidfd"
        init = rt.state(cid)["pid"]
        assert f"Pid:\t{init}" in Path(f"/proc/self/fdinfo/{pidfd}").read_text()
        os.close(pidfd)
        rt("start", cid)
        exec_recv = ConsoleReceiver(str(tmp_path / "pidfd-exec.sock"))
        rt("exec", "--detach", "--pidfd-socket", exec_recv.path, cid, "sleep", "999")
        pidfd = exec_recv.wait()
        try:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            wait_until(lambda: "999" not in rt("ps", cid).stdout, what="the exec'd sleep killed through its pidfd")
        finally:
            os.close(pidfd)
        assert rt.state(cid)["status"] == "running"
    finally:
        rt("delete", "--force", cid)


@pytest.mark.parametrize("args", [["foo"], ["foo", "-h"]])
def test_unknown_command_in_runcs_words(rt, args):
    proc = rt(*args, check=False)
    assert proc.returncode != 0 and "No help topic for 'foo'" in proc.stderr  # runc's help.bats
