"""config.json hooks: the six kinds at the points runtime-spec names, the state on stdin, args, env,
timeouts, and the spec's failure behaviour."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from pyruntime_tests_conftest import bind_mount, cgroup_dirs, wait_until

CREATE_KINDS = ("prestart", "createRuntime", "createContainer")


def _log_hook(kind: str, log: str) -> dict:
    """A hook that appends '<kind> <state JSON from stdin>' to log (a path in the hook's namespace)."""
    return {"path": "/bin/sh", "args": ["sh", "-c", f'echo "{kind} $(cat)" >> {log}']}


def _entries(log: Path) -> list[tuple[str, dict | str]]:
    out = []
    for line in log.read_text().splitlines():
        kind, _, rest = line.partition(" ")
        out.append((kind, json.loads(rest) if rest.startswith("{") else rest))
    return out


@pytest.fixture
def out(tmp_path: Path) -> Path:
    d = tmp_path / "out"
    d.mkdir()
    return d


def _all_hooks_bundle(make_bundle, out: Path, args: list[str], **extra_hooks):
    host_log, inside_log = out / "log", "/tmp/out/log"

    def edit(c):
        c["mounts"].append(bind_mount(out, "/tmp/out"))
        c["annotations"] = {"hook.test": "yes"}
        c["hooks"] = {kind: [_log_hook(kind, host_log)] for kind in
                      ("prestart", "createRuntime", "createContainer", "poststart", "poststop")}
        c["hooks"]["startContainer"] = [_log_hook("startContainer", inside_log)]  # resolved in the container
        for kind, hooks in extra_hooks.items():
            c["hooks"][kind] = c["hooks"].get(kind, []) + hooks

    return make_bundle(args, edit=edit)


def test_all_six_hooks_order_and_state(rt, make_bundle, cid, out):
    bundle = _all_hooks_bundle(make_bundle, out, ["sh", "-c", "echo program >> /tmp/out/log; exec sleep 100"])
    log = out / "log"
    rt("create", "--bundle", str(bundle), cid)
    pid = rt.state(cid)["pid"]
    entries = _entries(log)
    assert [k for k, _ in entries] == list(CREATE_KINDS)
    for kind, st in entries:
        assert st["id"] == cid and st["bundle"] == str(bundle) and st["ociVersion"].startswith("1."), kind
        assert st["pid"] == pid, kind  # the host's pid, also for createContainer (run in the container)
        assert st["status"] in ("creating", "created"), kind
        assert st["annotations"] == {"hook.test": "yes"}, kind

    rt("start", cid)
    wait_until(lambda: len(_entries(log)) >= 6, what="startContainer, program and poststart")
    kinds = [k for k, _ in _entries(log)]
    assert kinds[:4] == [*CREATE_KINDS, "startContainer"]
    assert set(kinds[4:6]) == {"program", "poststart"}  # the program and poststart run concurrently
    states = dict(_entries(log))
    assert states["startContainer"]["pid"] == pid and states["startContainer"]["id"] == cid
    assert states["poststart"]["pid"] == pid and states["poststart"]["status"] == "running"

    rt("kill", cid, "KILL")
    wait_until(lambda: rt.state(cid)["status"] == "stopped")
    assert "poststop" not in [k for k, _ in _entries(log)]
    rt("delete", cid)
    last_kind, last = _entries(log)[-1]
    assert last_kind == "poststop" and last["id"] == cid and last["status"] == "stopped"
    assert [k for k, _ in _entries(log)].count("poststop") == 1


def test_hooks_run_in_the_foreground_run_too(rt, make_bundle, cid, out):
    bundle = _all_hooks_bundle(make_bundle, out, ["sh", "-c", "echo program >> /tmp/out/log"])
    rt("run", "--bundle", str(bundle), cid)
    kinds = [k for k, _ in _entries(out / "log")]
    assert kinds[:4] == [*CREATE_KINDS, "startContainer"]
    assert kinds[-1] == "poststop" and set(kinds[4:6]) == {"program", "poststart"}


def test_hook_namespaces(rt, make_bundle, cid, out):
    """prestart/createRuntime run in the runtime's namespaces, createContainer in the container's."""
    def ns_hook(kind):
        return {"path": "/bin/sh", "args": ["sh", "-c", f"echo {kind} $(readlink /proc/self/ns/uts) "
                                                        f"$(readlink /proc/self/ns/mnt) $(hostname) >> {out}/ns"]}

    def edit(c):
        c["hostname"] = "hooked"
        c["hooks"] = {k: [ns_hook(k)] for k in ("prestart", "createRuntime", "createContainer")}

    rt("create", "--bundle", str(make_bundle(["true"], edit=edit)), cid)
    pid = rt.state(cid)["pid"]
    lines = {line.split()[0]: line.split()[1:] for line in (out / "ns").read_text().splitlines()}
    mine = [os.readlink("/proc/self/ns/uts"), os.readlink("/proc/self/ns/mnt")]
    theirs = [os.readlink(f"/proc/{pid}/ns/uts"), os.readlink(f"/proc/{pid}/ns/mnt")]
    assert lines["prestart"][:2] == mine and lines["createRuntime"][:2] == mine
    assert lines["createContainer"] == [*theirs, "hooked"]
    rt("delete", cid)


def test_hook_args_env_and_stdin(rt, make_bundle, cid, out):
    script = (f'printf "%s|" "$0" "$1" "$2" > {out}/args; tr "\\0" "|" < /proc/$$/cmdline > {out}/argv; '
              f'env | sort > {out}/env; cat > {out}/stdin')

    def edit(c):
        c["hooks"] = {"createRuntime": [{"path": "/bin/sh", "args": ["my-hook", "-c", script, "zero", "a1", "a 2"],
                                         "env": ["HOOK_VAR=value with spaces", "OTHER=1"]}]}

    rt("create", "--bundle", str(make_bundle(["true"], edit=edit)), cid, env={"PATH": "/usr/bin:/bin",
                                                                           "LEAKED_VAR": "x"})
    assert (out / "args").read_text() == "zero|a1|a 2|"
    assert (out / "argv").read_text() == f"my-hook|-c|{script}|zero|a1|a 2|"
    env = dict(line.split("=", 1) for line in (out / "env").read_text().splitlines())
    env.pop("PWD", None)  # sh adds these itself
    env.pop("SHLVL", None)
    assert env == {"HOOK_VAR": "value with spaces", "OTHER": "1"}
    st = json.loads((out / "stdin").read_text())
    assert st["id"] == cid and st["pid"] == rt.state(cid)["pid"]
    rt("delete", cid)


def test_hook_that_ignores_stdin(rt, make_bundle, cid):
    def edit(c):
        c["hooks"] = {"prestart": [{"path": "/bin/true"}], "poststart": [{"path": "/bin/true"}]}

    rt("run", "--bundle", str(make_bundle(["true"], edit=edit)), cid)


# -- failures -------------------------------------------------------------------------------------------

def _pid_recorder(out: Path) -> dict:
    """A prestart hook that records the init's pid (from the state on stdin)."""
    return {"path": "/bin/sh", "args": ["sh", "-c", f"cat > {out}/state"]}


def _assert_gone(pid: int) -> None:
    def gone():
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
        except FileNotFoundError:
            return True
    wait_until(gone, timeout=5, what=f"process {pid} to go")


@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer"])
def test_create_hook_failure_leaves_nothing_behind(rt, make_bundle, cid, out, cgroup_parent, kind):
    def edit(c):
        c["hooks"] = {"prestart": [_pid_recorder(out)]}
        c["hooks"].setdefault(kind, []).append(
            {"path": "/bin/sh", "args": ["sh", "-c", "echo the-hook-said-no >&2; exit 3"]})

    proc = rt("create", "--bundle", str(make_bundle(["true"], edit=edit, name="hk")), cid, check=False)
    assert proc.returncode == 1
    err = proc.stderr.strip()
    assert "\n" not in err and "Traceback" not in err
    assert kind in err and "3" in err and "the-hook-said-no" in err
    assert rt.ids() == []
    assert cgroup_dirs(f"{cgroup_parent}/hk") == []
    _assert_gone(json.loads((out / "state").read_text())["pid"])


def test_hook_timeout_kills_the_hook_and_fails_create(rt, make_bundle, cid, out, cgroup_parent):
    def edit(c):
        c["hooks"] = {"prestart": [_pid_recorder(out)],
                      "createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", f"echo $$ > {out}/hook; exec sleep 30"],
                                         "timeout": 1}]}

    t0 = time.monotonic()
    proc = rt("create", "--bundle", str(make_bundle(["true"], edit=edit, name="hk")), cid, check=False)
    took = time.monotonic() - t0
    assert proc.returncode == 1 and "timed out" in proc.stderr and "createRuntime" in proc.stderr
    assert 0.9 < took < 10
    _assert_gone(int((out / "hook").read_text()))
    _assert_gone(json.loads((out / "state").read_text())["pid"])
    assert rt.ids() == [] and cgroup_dirs(f"{cgroup_parent}/hk") == []


def test_missing_hook_binary_fails_create(rt, make_bundle, cid):
    def edit(c):
        c["hooks"] = {"createRuntime": [{"path": "/no/such/hook"}]}

    proc = rt("create", "--bundle", str(make_bundle(["true"], edit=edit)), cid, check=False)
    assert proc.returncode == 1 and "/no/such/hook" in proc.stderr
    assert rt.ids() == []


def test_start_container_failure_fails_start_and_stops(rt, make_bundle, cid, out):
    def edit(c):
        c["mounts"].append(bind_mount(out, "/tmp/out"))
        c["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "echo refused >&2; exit 4"]}],
                      "poststart": [{"path": "/bin/sh", "args": ["sh", "-c", f"touch {out}/poststart"]}]}

    rt("create", "--bundle", str(make_bundle(["sh", "-c", "touch /tmp/out/program"], edit=edit)), cid)
    proc = rt("start", cid, check=False)
    assert proc.returncode == 1
    assert "startContainer" in proc.stderr and "refused" in proc.stderr and "Traceback" not in proc.stderr
    wait_until(lambda: rt.state(cid)["status"] == "stopped")
    assert not (out / "program").exists() and not (out / "poststart").exists()
    rt("delete", cid)


def test_start_container_hook_timeout(rt, make_bundle, cid):
    def edit(c):
        c["hooks"] = {"startContainer": [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]}

    rt("create", "--bundle", str(make_bundle(["true"], edit=edit)), cid)
    t0 = time.monotonic()
    proc = rt("start", cid, check=False)
    assert proc.returncode == 1 and "timed out" in proc.stderr
    assert time.monotonic() - t0 < 10
    wait_until(lambda: rt.state(cid)["status"] == "stopped")
    rt("delete", cid)


def test_start_container_hook_path_resolves_in_the_container(rt, make_bundle, cid, private_rootfs, out):
    (private_rootfs / "only-in-container").write_text("#!/bin/sh\necho in-container-hook > /tmp/out/hook\n")
    (private_rootfs / "only-in-container").chmod(0o755)

    def edit(c):
        c["root"] = {"path": str(private_rootfs), "readonly": True}
        c["mounts"].append(bind_mount(out, "/tmp/out"))
        c["hooks"] = {"startContainer": [{"path": "/only-in-container"}]}

    rt("run", "--bundle", str(make_bundle(["true"], edit=edit)), cid)
    assert (out / "hook").read_text() == "in-container-hook\n"


def test_poststart_failure_is_a_warning(rt, make_bundle, cid):
    def edit(c):
        c["hooks"] = {"poststart": [{"path": "/bin/false"}]}

    rt("create", "--bundle", str(make_bundle(["sleep", "100"], edit=edit)), cid)
    proc = rt("start", cid)
    assert proc.returncode == 0 and "poststart" in proc.stderr
    assert rt.state(cid)["status"] == "running"
    rt("delete", "--force", cid)


def test_poststop_failure_is_a_warning(rt, make_bundle, cid, cgroup_parent):
    def edit(c):
        c["hooks"] = {"poststop": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 9"]}]}

    rt("create", "--bundle", str(make_bundle(["true"], edit=edit, name="ps")), cid)
    proc = rt("delete", cid)
    assert proc.returncode == 0 and "poststop" in proc.stderr
    assert rt.ids() == [] and cgroup_dirs(f"{cgroup_parent}/ps") == []


def test_start_container_hooks_leave_no_fd_to_the_program(rt, make_bundle, cid):
    def edit(c):
        c["hooks"] = {"startContainer": [{"path": "/bin/true"}]}

    rt("run", "--detach", "--bundle", str(make_bundle(["sleep", "100"], edit=edit)), cid)
    pid = rt.state(cid)["pid"]
    wait_until(lambda: Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"sleep"), what="sleep")
    assert sorted(int(n) for n in os.listdir(f"/proc/{pid}/fd")) == [0, 1, 2]
    rt("delete", "--force", cid)


def test_create_container_hooks_run_from_the_rootfs(rt, make_bundle, cid, out):
    """runc chdirs to the rootfs before createContainer hooks (runc's hooks.bats binds onto ./lib/...)."""
    def edit(c):
        c["hooks"] = {"createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", f"pwd > {out}/cwd; ls > {out}/ls"]}]}

    bundle = make_bundle(["true"], edit=edit)
    rt("create", "--bundle", str(bundle), cid)
    rt("delete", "--force", cid)
    rootfs = json.loads((bundle / "config.json").read_text())["root"]["path"]
    assert (out / "cwd").read_text().strip() == rootfs
    assert "bin" in (out / "ls").read_text().split()


def test_hooks_without_env_get_the_runtimes_environment(rt, make_bundle, cid, out, monkeypatch):
    """No `env`: the runtime's environment (runc, crun); `env: []`: none; startContainer (run in the
    container by the stub): the process's environment, as runc's."""
    def hook(kind, log, env=None):
        h = {"path": "/bin/sh", "args": ["sh", "-c", f'echo "{kind} [$HOOK_PROBE] [$TERM]" >> {log}']}
        if env is not None:
            h["env"] = env
        return h

    def edit(c):
        c["mounts"].append(bind_mount(out, "/tmp/out"))
        c["process"]["env"].append("HOOK_PROBE=from-process")
        c["hooks"] = {"createRuntime": [hook("createRuntime", out / "log")],
                      "createContainer": [hook("createContainer", out / "log"), hook("emptyenv", out / "log", [])],
                      "startContainer": [hook("startContainer", "/tmp/out/log")],
                      "poststop": [hook("poststop", out / "log")]}

    monkeypatch.setenv("HOOK_PROBE", "from-runtime")
    rt("run", "--bundle", str(make_bundle(["true"], edit=edit)), cid)
    lines = (out / "log").read_text().splitlines()
    assert "createRuntime [from-runtime] [" in lines[0]
    assert lines[1].startswith("createContainer [from-runtime]")
    assert lines[2] == "emptyenv [] []"
    assert lines[3] == "startContainer [from-process] [xterm]"
    assert lines[4].startswith("poststop [from-runtime]")
