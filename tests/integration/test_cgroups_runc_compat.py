"""cgroup behaviour as runc's own integration suite (v1.1.5: cgroups, update, delete, exec.bats)
expects it: frozen and shared cgroups, exec into paused containers and sub-cgroups, pod cgroups,
update's flag spellings and file formats.

Version-agnostic where the behaviour is (v1 details are skipped on a pure v2 host).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from pyruntime_tests_conftest import wait_until

BASE = Path("/sys/fs/cgroup")
V2 = (BASE / "cgroup.controllers").exists()


def no_cgroupns(config: dict[str, Any]) -> None:
    """As runc's default spec on a v1/hybrid host: processes see their real cgroup paths."""
    config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"] if ns["type"] != "cgroup"]


def hierarchies() -> list[Path]:
    """The mount point of every cgroup hierarchy of the host."""
    if V2:
        return [BASE]
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        if right.split()[0] in ("cgroup", "cgroup2"):
            out.append(Path(left.split()[4]))
    return out


def freezer_dir(rel: str) -> tuple[Path, str, str]:
    """(directory, file, frozen value) of the freezer for cgroup rel."""
    if V2:
        return BASE / rel.lstrip("/"), "cgroup.freeze", "1"
    return BASE / "freezer" / rel.lstrip("/"), "freezer.state", "FROZEN"


def thaw_and_remove(d: Path, name: str) -> None:
    (d / name).write_text("0" if V2 else "THAWED")
    d.rmdir()


def cgroup_lines(text: str) -> dict[str, str]:
    """/proc/<pid>/cgroup as {hierarchy id and controllers: path}."""
    return {line.rsplit(":", 1)[0]: line.rsplit(":", 1)[1] for line in text.splitlines() if line}


def detached(rt, make_bundle, cid: str, edit=None, args: list[str] | None = None, name: str | None = None) -> int:  # noqa: ANN001
    bundle = make_bundle(args or ["sleep", "1000"], edit=edit, name=name)
    rt("run", "--detach", "--bundle", str(bundle), cid)
    return rt.state(cid)["pid"]


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


# -- frozen cgroups ------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["own", "parent"])
def test_create_refuses_a_frozen_cgroup_instead_of_hanging(rt, make_bundle, cid, cgroup_parent, where):
    """runc: "container's cgroup unexpectedly frozen". The init would stop in it for good (and the
    runtime wait for it); the cgroup, not ours, is left as it was."""
    frozen_rel = f"{cgroup_parent}/c" if where == "own" else cgroup_parent
    d, name, value = freezer_dir(frozen_rel)
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_text(value)
    try:
        bundle = make_bundle(["true"], edit=lambda c: c["linux"].update(cgroupsPath=f"{cgroup_parent}/c"))
        for cmd in ("run", "create"):
            proc = rt(cmd, "--bundle", str(bundle), cid, check=False, timeout=60)
            assert proc.returncode == 1, proc.stderr
            assert "container's cgroup unexpectedly frozen" in proc.stderr and "linux.cgroupsPath" in proc.stderr
            assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
            assert rt.ids() == []
        assert d.is_dir() and (d / name).read_text().strip() == value
        if where == "parent":
            assert not (d / "c").exists()
    finally:
        thaw_and_remove(d, name)


def test_create_gives_up_when_the_cgroup_is_frozen_during_the_setup(rt, make_bundle, cid, cgroup_parent):
    """Frozen by someone else while the init sets up (here: by a createRuntime hook): the runtime
    must not wait for the init for good; it fails, and cleans up (thawing what it killed)."""
    d, name, value = freezer_dir(f"{cgroup_parent}/c")

    def edit(c: dict[str, Any]) -> None:
        c["linux"]["cgroupsPath"] = f"{cgroup_parent}/c"
        c["hooks"] = {"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", f"echo {value} > {d / name}"]}]}

    proc = rt("create", "--bundle", str(make_bundle(["true"], edit=edit)), cid, check=False, timeout=120)
    assert proc.returncode == 1 and "unexpectedly frozen" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert rt.ids() == [] and not d.exists()  # and cgroup_parent checks that nothing else is left


# -- exec and pause ------------------------------------------------------------------------------
def test_exec_into_a_paused_container_exits_255(rt, make_bundle, cid):
    detached(rt, make_bundle, cid)
    try:
        rt("pause", cid)
        proc = rt("exec", cid, "echo", "ok", check=False, timeout=60)
        assert proc.returncode == 255 and proc.stdout == ""
        assert "cannot exec in a paused container" in proc.stderr
        rt("resume", cid)
        missing = rt("exec", f"{cid}-none", "true", check=False)
        assert missing.returncode == 255 and "does not exist" in missing.stderr
    finally:
        rt("delete", "--force", cid)


def test_exec_ignore_paused_runs_once_resumed(rt, make_bundle, cid):
    """The process joins the frozen cgroup and waits there; `resume` (which must not wait for the
    exec's state lock) lets it run, and exec returns its output and exit code."""
    pid = detached(rt, make_bundle, cid)
    rt("pause", cid)
    with tempfile.TemporaryFile() as out:
        ex = subprocess.Popen(rt.argv("exec", "--ignore-paused", cid, "sh", "-c", "echo ok; exit 3"),
                              stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            procs = Path(f"/proc/{pid}/cgroup").read_text()
            rel = cgroup_lines(procs)[next(k for k in cgroup_lines(procs) if k.endswith(("freezer", "0:")))]
            cg = freezer_dir(rel)[0]
            # the exec'd side has joined the frozen cgroup (and stopped there)
            wait_until(lambda: len((cg / "cgroup.procs").read_text().split()) >= 2, 30, "the exec to join")
            assert ex.poll() is None
            rt("resume", cid, timeout=60)
            assert ex.wait(timeout=60) == 3
            out.seek(0)
            assert out.read().decode() == "ok\n"
        finally:
            if ex.poll() is None:
                ex.kill()
                ex.wait()
            rt("delete", "--force", cid)


def test_exec_joins_the_containers_cgroup_in_every_hierarchy(rt, make_bundle, cid, cgroup_parent, tmp_path):
    """With `spec`'s default namespaces, an exec'd process reports the container's own cgroups
    (runc's "cgroup v1+hybrid joins correct cgroup"): on a v1/hybrid host runc's spec has no cgroup
    namespace, so that is the real path in every hierarchy, name=systemd and unified included."""
    rt("spec", "--bundle", str(tmp_path))
    namespaces = json.loads((tmp_path / "config.json").read_text())["linux"]["namespaces"]
    pid = detached(rt, make_bundle, cid, edit=lambda c: c["linux"].update(namespaces=namespaces), name="x")
    try:
        mine = cgroup_lines(rt("exec", cid, "cat", "/proc/self/cgroup").stdout)
        if V2:  # a cgroup namespace, as runc's spec: the container's cgroup is its root
            assert mine == cgroup_lines(rt("exec", cid, "cat", "/proc/1/cgroup").stdout) == {"0:": "/"}
        else:
            assert mine == cgroup_lines(Path(f"/proc/{pid}/cgroup").read_text())
            assert set(mine.values()) == {f"{cgroup_parent}/x"}, mine
    finally:
        rt("delete", "--force", cid)


def test_exec_cgroup_sub_cgroups(rt, make_bundle, cid, cgroup_parent):
    """runc's exec --cgroup: "sub" for every hierarchy, "ctrl[,ctrl]:sub" per controller, "/" the
    container's own; a parent, a missing sub-cgroup or an unknown controller are refused (255)."""
    detached(rt, make_bundle, cid, edit=no_cgroupns, name="x")
    rel = f"{cgroup_parent}/x"
    try:
        for h in hierarchies():
            sub = h / rel.lstrip("/") / "sub"
            sub.mkdir()
            for name in ("cpuset.cpus", "cpuset.mems"):  # v1: joinable once set (as runc, exec leaves this to you)
                if (sub / name).exists():
                    (sub / name).write_text((sub.parent / name).read_text())
        for bad, words in (("..", " .. is not a sub cgroup path"), ("nonexistent", "/nonexistent/cgroup.procs: no such file"),
                           ("whaaat:/", "unknown controller "), ("a:b:c", "invalid --cgroup argument")):
            proc = rt("exec", "--cgroup", bad, cid, "true", check=False)
            assert proc.returncode == 255 and words in proc.stderr, (bad, proc.stderr)
            assert "Traceback" not in proc.stderr
        missing = rt("exec", "--cgroup", "nonexistent", cid, "true", check=False)
        assert " adding pid " in missing.stderr
        for args in ([], ["--cgroup", "/"]):
            paths = cgroup_lines(rt("exec", *args, cid, "cat", "/proc/self/cgroup").stdout)
            assert set(paths.values()) == {rel}, paths
        paths = cgroup_lines(rt("exec", "--cgroup", "sub", cid, "cat", "/proc/self/cgroup").stdout)
        assert set(paths.values()) == {f"{rel}/sub"}, paths
        if not V2:
            paths = cgroup_lines(rt("exec", "--cgroup", "memory:sub", "--cgroup", "cpu,cpuacct:sub", cid,
                                    "cat", "/proc/self/cgroup").stdout)
            for key, path in paths.items():
                ctrls = set(key.split(":", 1)[1].split(","))
                assert path == (f"{rel}/sub" if ctrls & {"memory", "cpu", "cpuacct"} else rel), (key, path)
    finally:
        rt("delete", "--force", cid)  # removes the sub-cgroups too (cgroup_parent checks)


# -- shared cgroups ------------------------------------------------------------------------------
def test_non_empty_cgroup_is_a_warning_and_delete_spares_the_other_container(rt, make_bundle, cid, cgroup_parent):
    """runc 1.1 warns ("container's cgroup is not empty") and goes on. Deleting either container
    must kill only its own processes; the cgroup goes with the last of them."""
    def shared(c: dict[str, Any]) -> None:
        c["linux"]["cgroupsPath"] = f"{cgroup_parent}/shared"

    first = detached(rt, make_bundle, cid, edit=shared)
    second_bundle = make_bundle(["sleep", "1000"], edit=shared)
    proc = rt("run", "--detach", "--bundle", str(second_bundle), f"{cid}-2")
    assert "container's cgroup is not empty: 1 process(es) found" in proc.stderr
    third = rt("create", "--bundle", str(second_bundle), f"{cid}-3")
    assert "container's cgroup is not empty: 2 process(es) found" in third.stderr
    second = rt.state(f"{cid}-2")["pid"]
    procs = next(h for h in hierarchies() if (h / cgroup_parent.lstrip("/") / "shared").is_dir())
    procs = procs / cgroup_parent.lstrip("/") / "shared" / "cgroup.procs"
    try:
        rt("delete", "--force", cid)  # the first one: marked as sharing by the second's create
        assert rt.state(f"{cid}-2")["status"] == "running" and rt.state(f"{cid}-3")["status"] == "created"
        assert alive(second) and not alive(first)
        rt("delete", "--force", f"{cid}-2")
        assert rt.state(f"{cid}-3")["status"] == "created"
        assert procs.exists()
        rt("delete", "--force", f"{cid}-3")
        assert not procs.exists()  # the last one removes it
    finally:
        for other in rt.ids():
            rt("delete", "--force", other)


# -- v1 details ----------------------------------------------------------------------------------
@pytest.mark.skipif(V2, reason="cgroup v1 cpuset")
def test_v1_cpuset_of_a_pod_cgroup_made_by_someone_else_is_initialised(rt, make_bundle, cid, cgroup_parent):
    """A parent made with mkdir (e.g. a pod's) has empty cpuset.cpus/mems: nothing could join it
    ("no space left on device"). runc fills them from the parent, level by level."""
    pod = BASE / "cpuset" / cgroup_parent.lstrip("/") / "pod"
    pod.mkdir(parents=True)
    try:
        assert (pod / "cpuset.cpus").read_text().strip() == ""
        bundle = make_bundle(["echo", "joined"], edit=lambda c: c["linux"].update(cgroupsPath=f"{cgroup_parent}/pod/c"))
        assert rt("run", "--bundle", str(bundle), cid).stdout == "joined\n"
        assert (pod / "cpuset.cpus").read_text() == (BASE / "cpuset" / "cpuset.cpus").read_text()
    finally:  # the runtime made the pod's parent directories in the other hierarchies (as runc, it leaves them)
        for h in hierarchies():
            if (h / cgroup_parent.lstrip("/") / "pod").is_dir():
                (h / cgroup_parent.lstrip("/") / "pod").rmdir()


@pytest.mark.skipif(V2, reason="cgroup v1 host")
def test_unified_resources_on_v1_are_an_invalid_configuration(rt, make_bundle, cid):
    bundle = make_bundle(["true"], edit=lambda c: c["linux"].update(resources={"pids": {"limit": 100},
                                                                              "unified": {"memory.min": "131072"}}))
    proc = rt("run", "--bundle", str(bundle), cid, check=False)
    assert proc.returncode == 1
    assert "invalid configuration" in proc.stderr and "linux.resources.unified" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert rt.ids() == []


# -- devices -------------------------------------------------------------------------------------
def test_linux_devices_are_not_implicitly_allowed_and_unknown_access_letters_are_ignored(sh):
    """runc's "update devices" test: linux.devices makes /dev/kmsg, the rules deny it (with runc's
    "rwa", whose "a" is no permission): the container cannot open it."""
    def edit(c: dict[str, Any]) -> None:
        c["linux"]["resources"] = {"devices": [{"allow": False, "access": "rwm"},
                                               {"allow": False, "type": "c", "major": 1, "minor": 11, "access": "rwa"}]}
        c["linux"]["devices"] = [{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11}]
        for k in ("bounding", "effective", "permitted"):
            c["process"]["capabilities"][k].append("CAP_SYSLOG")

    proc = sh("{ true < /dev/kmsg && echo OPEN || echo DENIED; } 2>/dev/null; true > /dev/null && echo NULL-OK",
              edit=edit)
    assert proc.stdout.split() == ["DENIED", "NULL-OK"]
    assert "'rwa'" in proc.stderr and "ignored" in proc.stderr


# -- update --------------------------------------------------------------------------------------
def _cpu_file(rel: str) -> Path:
    return (BASE / rel.lstrip("/") / "cpu.weight") if V2 else (BASE / "cpu" / rel.lstrip("/") / "cpu.shares")


def test_update_takes_runc_spellings_and_formats(rt, make_bundle, cid, cgroup_parent):
    """--cpu-share (runc's spelling; --cpu-shares stays), --resources keys matched as Go matches
    them ({"CPU": {"Shares": ...}}), the other flags ignored with --resources, 0 = unchanged."""
    detached(rt, make_bundle, cid, edit=lambda c: c["linux"].update(resources={"pids": {"limit": 20}}), name="u")
    f = _cpu_file(f"{cgroup_parent}/u")
    pids = (BASE if V2 else BASE / "pids") / cgroup_parent.lstrip("/") / "u" / "pids.max"

    def shares(n: int) -> str:
        return str(1 + ((n - 2) * 9999) // 262142) if V2 else str(n)

    try:
        rt("update", "--cpu-share", "200", cid)
        assert f.read_text().strip() == shares(200)
        rt("update", "--cpu-shares", "300", "--pids-limit", "0", cid)
        assert f.read_text().strip() == shares(300) and pids.read_text().strip() == "20"
        rt("update", "-r", "-", "--pids-limit", "7", cid, input=json.dumps({"CPU": {"Shares": 400}}).encode(), stdin=None)
        assert f.read_text().strip() == shares(400) and pids.read_text().strip() == "20"
        rt("update", "--pids-limit", "-1", cid)
        assert pids.read_text().strip() == "max"
        rdt = rt("update", "--l3-cache-schema", "L3:0=f", cid, check=False)  # no RDT here: refused as runc
        assert rdt.returncode == 1 and "Intel RDT/CAT: l3 cache schema is not enabled" in rdt.stderr
    finally:
        rt("delete", "--force", cid)
