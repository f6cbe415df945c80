"""process.terminal: a pty inside the container, sent over --console-socket or proxied by `run`."""

from __future__ import annotations

import os
import re
import termios
import time

import pytest
from _termutil import ConsoleReceiver, run_in_pty, set_size


def _terminal(args, size=None):  # noqa: ANN001, ANN202
    def edit(config):  # noqa: ANN001, ANN202
        config["process"]["terminal"] = True
        if size:
            config["process"]["consoleSize"] = {"height": size[0], "width": size[1]}
    return edit


def test_run_foreground_proxies_the_terminal(rt, make_bundle, cid):
    """`run` without --console-socket: the container sees a pty of its own with our window size,
    gets what we type, we get its output, and the exit code comes back; our terminal is restored."""
    bundle = make_bundle(["sh", "-c", "tty; stty size; read line; echo got:$line; exit 3"],
                         edit=_terminal(None, (10, 20)))
    typed = []

    def type_once(out: bytes, _master: int) -> bytes | None:
        if b"\n" in out.split(b"got:")[0] and re.search(rb"\d+ \d+", out) and not typed:
            typed.append(1)
            return b"hello\r"
        return None

    res = run_in_pty(rt.argv("run", "--bundle", str(bundle), cid), rows=37, cols=101, on_output=type_once)
    text = res.output.decode(errors="replace")
    assert res.returncode == 3, text
    assert "/dev/pts/0" in text
    assert "37 101" in text  # the caller's size wins over consoleSize in the foreground
    assert "got:hello" in text
    # raw mode is undone: canonical input and echo are back on the caller's terminal
    assert res.attrs_after[3] & (termios.ICANON | termios.ECHO) == termios.ICANON | termios.ECHO
    assert res.attrs_after == res.attrs_before
    assert rt.ids() == []


def test_dev_console_is_the_pty(rt, make_bundle, cid):
    """runtime-spec (config-linux, default devices): with a terminal, /dev/console is set up by bind
    mounting the pty to it, as runc does: the same device as the process's stdio."""
    bundle = make_bundle(["sh", "-c", "stat -c 'console %t:%T' /dev/console; stat -L -c 'stdin %t:%T' /proc/self/fd/0; "
                          "echo to-console > /dev/console"], edit=_terminal(None))
    res = run_in_pty(rt.argv("run", "--bundle", str(bundle), cid), rows=20, cols=80)
    text = res.output.decode(errors="replace")
    assert res.returncode == 0, text
    console = re.search(r"console (\w+:\w+)", text)
    stdin = re.search(r"stdin (\w+:\w+)", text)
    assert console and stdin and console.group(1) == stdin.group(1), text
    assert "to-console" in text


def test_run_foreground_follows_window_size_changes(rt, make_bundle, cid):
    bundle = make_bundle(["sh", "-c", "stty size; read x; stty size"], edit=_terminal(None))
    state = []

    def resize(out: bytes, master: int) -> bytes | None:
        if b"30 90" in out and not state:
            state.append(1)
            set_size(master, 44, 133)  # the kernel sends SIGWINCH to the runtime
            time.sleep(0.3)
            return b"go\r"
        return None

    res = run_in_pty(rt.argv("run", "--bundle", str(bundle), cid), rows=30, cols=90, on_output=resize)
    assert res.returncode == 0, res.output
    assert b"44 133" in res.output.split(b"30 90", 1)[1]


def test_run_terminal_with_stdin_not_a_tty(rt, make_bundle, cid, tmp_path):
    """stdin at EOF and stdout a file: no raw mode to set, output still arrives, EOF reaches a reader."""
    bundle = make_bundle(["sh", "-c", "echo out; cat; echo after-eof; exit 4"], edit=_terminal(None))
    proc = rt("run", "--bundle", str(bundle), cid, check=False, timeout=30)
    assert proc.returncode == 4, proc.stderr
    assert "out" in proc.stdout and "after-eof" in proc.stdout
    assert rt.ids() == []


def test_console_socket_receives_master_with_console_size(rt, make_bundle, cid, tmp_path):
    """create --console-socket: the master arrives over SCM_RIGHTS before create returns; consoleSize
    is set; the process's stdio is the pty's peer; our input reaches it."""
    recv = ConsoleReceiver(str(tmp_path / "console.sock"))
    try:
        bundle = make_bundle(["sh", "-c", "stty size; ls -l /proc/self/fd/0; read x; echo got:$x; exit 0"],
                             edit=_terminal(None, (12, 34)))
        rt("create", "--bundle", str(bundle), "--console-socket", recv.path, cid)
        master = recv.wait()
        assert recv.message == b"/dev/ptmx"
        st = os.fstat(master)
        assert os.major(st.st_rdev) == 5 and os.minor(st.st_rdev) == 2  # a ptmx (of the container's devpts)
        rt("start", cid)
        out = recv.read_until(b"/dev/pts/0")
        assert b"12 34" in out
        os.write(master, b"typed\n")
        out += recv.read_until(b"got:typed")
        assert b"got:typed" in out, out
        deadline = time.monotonic() + 10
        while rt.state(cid)["status"] != "stopped" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rt.state(cid)["status"] == "stopped"
    finally:
        recv.close()
        rt("delete", "--force", cid)


def test_create_with_terminal_needs_console_socket(rt, make_bundle, cid):
    proc = rt("create", "--bundle", str(make_bundle(["true"], edit=_terminal(None))), cid, check=False)
    assert proc.returncode == 1 and "console-socket" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert rt.ids() == []


def test_terminal_without_devpts_fails_cleanly(rt, make_bundle, cid, tmp_path):
    def edit(config):  # noqa: ANN001, ANN202
        config["process"]["terminal"] = True
        config["mounts"] = [m for m in config["mounts"] if m["type"] != "devpts"]

    recv = ConsoleReceiver(str(tmp_path / "c.sock"))
    try:
        proc = rt("create", "--bundle", str(make_bundle(["true"], edit=edit)), "--console-socket", recv.path, cid,
                  check=False)
        assert proc.returncode == 1
        assert "/dev/pts/ptmx" in proc.stderr and "Traceback" not in proc.stderr
        assert rt.ids() == []
    finally:
        recv.close()


@pytest.mark.parametrize("source", ["/dev/ptmx", "/dev/null"])
def test_host_device_bound_over_ptmx_is_refused(rt, make_bundle, cid, tmp_path, source):
    """A hostile config binds a host device over the container's /dev/pts/ptmx: the host's ptmx would
    hand out a pty of the host's devpts, /dev/null is no pty at all. Neither becomes the terminal."""
    def edit(config):  # noqa: ANN001, ANN202
        config["process"]["terminal"] = True
        config["mounts"].append({"destination": "/dev/pts/ptmx", "type": "bind", "source": source,
                                 "options": ["bind"]})

    recv = ConsoleReceiver(str(tmp_path / "c.sock"))
    try:
        proc = rt("create", "--bundle", str(make_bundle(["true"], edit=edit)), "--console-socket", recv.path, cid,
                  check=False)
        assert proc.returncode == 1, proc.stderr
        assert "process.terminal" in proc.stderr and "Traceback" not in proc.stderr
        if source == "/dev/null":  # opens fine: refused by the devpts check
            assert "not a devpts ptmx" in proc.stderr
        time.sleep(0.2)
        assert recv.master < 0
        assert rt.ids() == []
    finally:
        recv.close()


def test_exec_tty_foreground(rt, make_bundle, cid):
    rt("create", "--bundle", str(make_bundle(["sleep", "1000"])), cid)
    try:
        rt("start", cid)
        res = run_in_pty(rt.argv("exec", "-t", cid, "sh", "-c", "tty; stty size; exit 6"), rows=25, cols=132)
        assert res.returncode == 6, res.output
        assert b"/dev/pts/" in res.output and b"25 132" in res.output
        assert res.attrs_after == res.attrs_before
    finally:
        rt("delete", "--force", cid)


def test_exec_tty_detached_with_console_socket(rt, make_bundle, cid, tmp_path):
    """conmon's way: exec --detach --tty --console-socket S --pid-file F --process P."""
    import json

    rt("create", "--bundle", str(make_bundle(["sleep", "1000"])), cid)
    recv = ConsoleReceiver(str(tmp_path / "exec.sock"))
    try:
        rt("start", cid)
        proc_file = tmp_path / "process.json"
        proc_file.write_text(json.dumps({
            "terminal": True, "consoleSize": {"height": 15, "width": 66}, "cwd": "/", "user": {"uid": 0, "gid": 0},
            "args": ["sh", "-c", "stty size; tty; read x; echo got:$x"], "env": ["PATH=/bin:/usr/bin"]}))
        pid_file = tmp_path / "exec.pid"
        t0 = time.monotonic()
        rt("exec", "--pid-file", str(pid_file), "--process", str(proc_file), "--detach", "--tty",
           "--console-socket", recv.path, cid)
        assert time.monotonic() - t0 < 5
        pid = int(pid_file.read_text())
        recv.wait()
        out = recv.read_until(b"/dev/pts/")
        assert b"15 66" in out
        os.write(recv.master, b"abc\n")
        assert b"got:abc" in recv.read_until(b"got:abc")
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.05)
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    finally:
        recv.close()
        rt("delete", "--force", cid)


def test_exec_tty_detached_without_console_socket_is_refused(rt, make_bundle, cid):
    rt("create", "--bundle", str(make_bundle(["sleep", "1000"])), cid)
    try:
        rt("start", cid)
        proc = rt("exec", "-d", "-t", cid, "true", check=False)
        assert proc.returncode == 255 and "console-socket" in proc.stderr
    finally:
        rt("delete", "--force", cid)


def test_run_terminal_raw_mode_ctrl_c_and_signals(rt, make_bundle, cid):
    """While the container runs, our terminal is raw (Ctrl-C is a byte for the container's own line
    discipline, which turns it into SIGINT there); SIGTERM to the runtime is forwarded; the terminal
    is restored afterwards."""
    script = ('trap "echo caught-int" INT; trap "echo caught-term; exit 9" TERM; echo ready; '
              'while :; do sleep 0.05; done')
    bundle = make_bundle(["sh", "-c", script], edit=_terminal(None))
    seen: dict[str, object] = {}

    def drive(out: bytes, master: int) -> bytes | None:
        if b"ready" in out and "raw" not in seen:
            seen["raw"] = termios.tcgetattr(master)
            return b"\x03"
        if b"caught-int" in out and "term" not in seen:
            seen["term"] = True
            os.kill(os.tcgetpgrp(master), 15)  # the runtime leads our pty's foreground group
        return None

    res = run_in_pty(rt.argv("run", "--bundle", str(bundle), cid), on_output=drive)
    assert res.returncode == 9, res.output
    assert b"caught-int" in res.output and b"caught-term" in res.output
    raw_lflag = seen["raw"][3]
    assert not raw_lflag & (termios.ICANON | termios.ECHO | termios.ISIG)
    assert res.attrs_after == res.attrs_before
    assert rt.ids() == []


def test_foreground_terminal_leaves_nothing_in_tmp(rt, make_bundle, cid):
    """The private console socket of a foreground run/exec is gone afterwards, also when create fails."""
    import glob
    import tempfile

    pattern = os.path.join(tempfile.gettempdir(), "pyruntime-tty-*")
    before = set(glob.glob(pattern))

    def no_devpts(config):  # noqa: ANN001, ANN202
        config["process"]["terminal"] = True
        config["mounts"] = [m for m in config["mounts"] if m["type"] != "devpts"]

    res = run_in_pty(rt.argv("run", "--bundle", str(make_bundle(["true"], edit=no_devpts)), cid))
    assert res.returncode == 1 and b"/dev/pts/ptmx" in res.output
    res = run_in_pty(rt.argv("run", "--bundle", str(make_bundle(["true"], edit=_terminal(None))), cid))
    assert res.returncode == 0, res.output
    rt("run", "--detach", "--bundle", str(make_bundle(["sleep", "1000"])), cid)
    try:
        assert run_in_pty(rt.argv("exec", "-t", cid, "true")).returncode == 0
    finally:
        rt("delete", "--force", cid)
    assert set(glob.glob(pattern)) - before == set()
    assert rt.ids() == []
