"""The Python API (pyruntime.api) with real containers, through the pytest plugin's fixtures only
(oci_root, oci_cgroup_parent, bundle, container): private roots, cgroups under a private parent,
everything checked gone by the plugin's leak check."""

from __future__ import annotations

import os

import pytest

from pyruntime import api
from pyruntime.pytest_plugin import cgroup_dirs

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="creates containers")


def _cgroup_exists(rel: str) -> bool:
    return bool(cgroup_dirs(rel))


def _config(base: api.Config, parent: str, name: str, *args: str) -> api.Config:
    return base.copy().args(*args).cgroups_path(f"{parent}/{name}")


# -- run, exit status, output ---------------------------------------------------------------------------
def test_run_returns_exit_status_and_output(oci_runtime, oci_config, oci_cgroup_parent):
    config = _config(oci_config, oci_cgroup_parent, "r", "sh", "-c", "echo out; echo err >&2; exit 3")
    result = oci_runtime.run("r1", config, timeout=30)
    assert (result.returncode, result.stdout, result.stderr) == (3, b"out\n", b"err\n")
    assert oci_runtime.ids() == []  # deleted afterwards
    assert not _cgroup_exists(f"{oci_cgroup_parent}/r")


def test_run_with_input(oci_runtime, oci_config, oci_cgroup_parent):
    config = _config(oci_config, oci_cgroup_parent, "r", "sh", "-c", "cat; exit 5")
    result = oci_runtime.run("r2", config, input=b"piped in", timeout=30)
    assert result.stdout == b"piped in" and result.returncode == 5


def test_run_timeout_deletes_the_container(oci_runtime, oci_config, oci_cgroup_parent):
    with pytest.raises(api.WaitTimeout):
        oci_runtime.run("r3", _config(oci_config, oci_cgroup_parent, "r", "sleep", "100"), timeout=0.5)
    assert oci_runtime.ids() == []


def test_the_caller_is_a_subreaper_only_while_the_api_works(container):
    """Processes that other code of the test starts (a `pyruntime` command line...) must not become
    the test process's orphans: the subreaper setting is the caller's again after create and exec."""
    import _prctl

    assert _prctl.prctl(_prctl.PR_GET_CHILD_SUBREAPER) == 0
    c = container(["sleep", "100"])
    c.exec_run(["true"], timeout=30)
    assert _prctl.prctl(_prctl.PR_GET_CHILD_SUBREAPER) == 0
    c.kill("KILL")
    assert c.wait(timeout=10) == 137  # still ours to wait for


# -- lifecycle ------------------------------------------------------------------------------------------
def test_create_start_state_kill_wait_delete(container, oci_runtime):
    c = container(["sleep", "100"], start=False)
    st = c.state()
    assert st["status"] == "created" and st["id"] == c.id and st["pid"] > 0
    assert {"ociVersion", "bundle", "rootfs", "created", "owner"} <= set(st)
    c.start()
    assert c.status == "running"
    with pytest.raises(api.WaitTimeout):
        c.wait(timeout=0.2)
    c.kill("KILL")
    assert c.wait(timeout=10) == 137
    assert c.status == "stopped"
    c.delete()
    with pytest.raises(api.NotFound):
        c.state()
    assert oci_runtime.ids() == []


def test_run_method_and_exit_code(container):
    c = container(["sh", "-c", "exit 7"], start=False)
    c.start()
    assert c.wait(timeout=30) == 7
    assert c.status == "stopped"


def test_runtime_handle_on_existing_container(container, oci_runtime):
    c = container(["sleep", "100"])
    other = oci_runtime.container(c.id)
    assert other.status == "running" and other.pid == c.pid
    other.kill(9)
    assert c.wait(timeout=10) == 137  # the status is the creator's (the init is our child)
    assert other.status == "stopped" and other.wait(timeout=10) is None  # reaped already: no status
    with pytest.raises(api.NotFound):
        oci_runtime.container("no-such-container")


def test_kill_all_and_signal_names(container):
    c = container(["sh", "-c", "sleep 100 & sleep 100"])
    c.kill("SIGKILL", all=True)
    assert c.wait(timeout=10) == 137
    with pytest.raises(api.RuntimeFailure, match="invalid signal"):
        c.kill("NOPE")


def test_pause_resume(container):
    c = container(["sleep", "100"])
    c.pause()
    assert c.status == "paused"
    with pytest.raises(api.RuntimeFailure, match="paused"):
        c.exec(["true"])
    c.resume()
    assert c.status == "running"
    with pytest.raises(api.RuntimeFailure, match="not paused"):
        c.resume()


def test_update_and_stats(container):
    c = container(["sleep", "100"], edit=lambda cfg: cfg.resources(pids=100))
    assert c.stats()["pids"]["limit"] == 100
    c.update({"pids": {"limit": 42}})
    assert c.stats()["pids"]["limit"] == 42
    with pytest.raises(api.RuntimeFailure, match="resources"):
        c.update({"pids": {"limit": "many"}})


def test_events_stream(container):
    c = container(["sleep", "100"])
    events = c.events(interval=0.1)
    first = next(events)
    assert first["type"] == "stats" and first["id"] == c.id and "pids" in first["data"]
    events.close()
    c.kill("KILL")
    c.wait(timeout=10)
    with pytest.raises(api.RuntimeFailure, match="not running"):
        next(c.events(interval=0.1))


def test_list(container, oci_runtime):
    a, b = container(["sleep", "100"]), container(["sleep", "100"], start=False)
    listed = {s["id"]: s["status"] for s in oci_runtime.list()}
    assert listed == {a.id: "running", b.id: "created"}


# -- exec -----------------------------------------------------------------------------------------------
def test_exec(container):
    c = container(["sleep", "100"])
    r = c.exec_run(["sh", "-c", "echo $FOO; pwd; id -u; exit 4"], env={"FOO": "bar"}, cwd="/tmp", user=65534,
                   timeout=30)
    assert (r.returncode, r.stdout) == (4, b"bar\n/tmp\n65534\n")
    r = c.exec_run(["cat"], input=b"hello", timeout=30)
    assert r.stdout == b"hello"
    p = c.exec(process={"args": ["sh", "-c", "echo from-process"], "cwd": "/", "user": {"uid": 0, "gid": 0},
                        "env": ["PATH=/bin"]})
    assert p.communicate(timeout=30) == (b"from-process\n", b"")
    assert p.returncode == 0
    with pytest.raises(api.RuntimeFailure) as e:
        c.exec(["/no/such/program"]).communicate(timeout=30)
    assert e.value.exit_code == 255 or "no/such" in str(e.value)


def test_exec_bad_process_is_a_config_error(container):
    c = container(["sleep", "100"])
    with pytest.raises(api.ConfigError) as e:
        c.exec(process={"args": ["true"], "cwd": "relative", "user": {"uid": 0, "gid": 0}})
    assert e.value.path == "cwd"


def test_exec_tty_console(container):
    c = container(["sleep", "100"])
    p = c.exec(["sh", "-c", "tty; stty size; echo done"], tty=True)
    out = p.console.read_until(b"done", timeout=30)
    assert b"/dev/pts/" in out
    assert p.wait(timeout=30) == 0


def test_init_console(container):
    c = container(["sh", "-c", "read line; echo got:$line"], edit=lambda cfg: cfg.terminal(), console=True)
    c.console.resize(30, 100)
    c.console.write(b"abc\n")
    assert b"got:abc" in c.console.read_until(b"got:abc", timeout=30)
    assert c.wait(timeout=30) == 0


# -- stdio ----------------------------------------------------------------------------------------------
def test_stdio_to_files(container, tmp_path):
    out, src = tmp_path / "out.txt", tmp_path / "in.txt"
    src.write_bytes(b"from a file\n")
    c = container(["sh", "-c", "cat; echo to-err >&2"], stdin=str(src), stdout=str(out), stderr=api.PIPE)
    assert c.wait(timeout=30) == 0
    assert out.read_bytes() == b"from a file\n"
    assert c.init.stderr.read() == b"to-err\n"


def test_preserved_fds(container):
    r, w = os.pipe()
    try:
        c = container(["sh", "-c", "echo via-fd3 >&3"], preserve_fds=[w])
        os.close(w)
        w = -1
        assert c.wait(timeout=30) == 0
        assert os.read(r, 100) == b"via-fd3\n"
        p = c.state()  # still there, stopped
        assert p["status"] == "stopped"
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


# -- configuration helpers ------------------------------------------------------------------------------
def test_config_helpers(container, tmp_path):
    shared, scratch = tmp_path / "shared", tmp_path / "scratch"
    shared.mkdir()
    scratch.mkdir()
    scratch.chmod(0o777)  # the process runs as uid 1000
    (shared / "f").write_text("host file")

    def edit(cfg: api.Config) -> None:  # mount destinations that exist in the shared (read-only) rootfs
        cfg.env(GREETING="hi").bind(shared, "/tmp", readonly=True).bind(scratch, "/home").hostname("apibox")
        cfg.without_namespace("network").add_namespace("network").user(1000, 1000, [5])
        cfg.capabilities("CAP_KILL").resources(memory=64 * 1024 * 1024)
        cfg.seccomp({"defaultAction": "SCMP_ACT_ALLOW",  # ENOSYS: not what a read-only mkdir would say
                     "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]})

    c = container(["sleep", "100"], edit=edit)
    r = c.exec_run(["sh", "-c", "echo $GREETING; cat /tmp/f; echo; id; grep CapBnd /proc/self/status; hostname;"
                    "touch /tmp/x 2>/dev/null || echo ro; touch /home/y && echo rw; mkdir /home/d 2>&1"], timeout=30)
    lines = r.stdout.decode().splitlines()
    assert lines[0] == "hi" and lines[1] == "host file"
    assert "uid=1000" in lines[2] and "groups=5" in lines[2]
    assert lines[3].split()[1] == f"{1 << 5:016x}"  # CAP_KILL is 5
    assert lines[4:7] == ["apibox", "ro", "rw"]
    assert "not implemented" in lines[7]
    assert (scratch / "y").exists() and not (scratch / "d").exists()
    assert c.stats()["memory"]["usage"]["limit"] == 64 * 1024 * 1024


def test_bad_config_is_a_config_error_with_its_path(oci_runtime, oci_config, oci_cgroup_parent):
    config = _config(oci_config, oci_cgroup_parent, "bad", "true").cwd("not/absolute")
    with pytest.raises(api.ConfigError) as e:
        oci_runtime.create("bad", config)
    assert e.value.path == "process.cwd" and e.value.file.endswith("config.json")
    assert oci_runtime.ids() == []


def test_already_exists(container, oci_runtime, bundle):
    c = container(["sleep", "100"])
    with pytest.raises(api.AlreadyExists):
        oci_runtime.create(c.id, bundle(["true"]))
    with pytest.raises(api.AlreadyExists):
        with oci_runtime.container(c.id, bundle(["true"])):
            pass
    with pytest.raises(api.AlreadyExists):
        oci_runtime.run(c.id, bundle(["true"]))
    assert c.status == "running"  # untouched: the other's ID is not ours to delete


def test_start_twice_fails(container):
    c = container(["sleep", "100"])
    with pytest.raises(api.RuntimeFailure, match="running"):
        c.start()


# -- the context manager --------------------------------------------------------------------------------
def test_with_deletes_on_exit(oci_root, bundle, oci_cgroup_parent):
    path = bundle(["sleep", "100"])
    with api.Container("w1", path, root=oci_root) as c:
        c.start()
        assert c.status == "running"
        assert _cgroup_exists(f"{oci_cgroup_parent}/{path.name}")
    assert api.Runtime(oci_root).ids() == []
    assert not _cgroup_exists(f"{oci_cgroup_parent}/{path.name}")


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_with_deletes_on_exceptions(oci_root, bundle, oci_cgroup_parent, error):
    path = bundle(["sleep", "100"])
    with pytest.raises(error):
        with api.Container("w2", path, root=oci_root) as c:
            c.start()
            raise error("boom")
    assert api.Runtime(oci_root).ids() == []
    assert not _cgroup_exists(f"{oci_cgroup_parent}/{path.name}")


@pytest.mark.parametrize("how", ["with", "run"])
def test_ctrl_c_during_create_leaves_nothing(oci_root, bundle, oci_cgroup_parent, how):
    """A SIGINT that arrives while the container is being made (sent here by a createRuntime hook)
    is held back until the API knows the container, then ends the block, and the container goes."""
    def edit(config: api.Config) -> None:
        config.data["hooks"] = {"createRuntime": [{"path": "/bin/kill", "args": ["kill", "-INT", str(os.getpid())]}]}

    path = bundle(["sleep", "100"], edit)
    with pytest.raises(KeyboardInterrupt):
        if how == "with":
            with api.Container("w4", path, root=oci_root) as c:
                c.start()
                raise AssertionError("the interrupt should have come first")
        else:
            api.Runtime(oci_root).run("w4", path, timeout=30)
    assert api.Runtime(oci_root).ids() == []
    assert not _cgroup_exists(f"{oci_cgroup_parent}/{path.name}")


def test_with_a_failed_create_leaves_nothing(oci_root, bundle):
    with pytest.raises(api.RuntimeFailure):
        with api.Container("w3", bundle(["/no/such/program"]), root=oci_root) as c:
            c.start()
    assert api.Runtime(oci_root).ids() == []
