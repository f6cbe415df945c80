"""User namespaces, idmapped mounts, recursive mount attributes and rootless containers (issue 6)."""

from __future__ import annotations

import json
import os
import pwd
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from pyruntime_tests_conftest import ROOTFS

HOST_BASE = 100000
MAPS = {"uidMappings": [{"containerID": 0, "hostID": HOST_BASE, "size": 65536}],
        "gidMappings": [{"containerID": 0, "hostID": HOST_BASE, "size": 65536}]}


def with_userns(config: dict) -> None:
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"].update(json.loads(json.dumps(MAPS)))


@pytest.fixture
def host_dir() -> Path:
    """A root-owned host directory with one root-owned file, outside any bundle."""
    d = Path(tempfile.mkdtemp(prefix="prt-idmap-", dir="/tmp"))
    d.chmod(0o755)
    (d / "owned-by-root").write_text("host data\n")
    yield d
    shutil.rmtree(d)


def test_userns_maps_container_root_to_unprivileged_range(rt, make_bundle, cid):
    bundle = make_bundle(["sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; id -u"], edit=with_userns)
    out = rt("run", "-b", str(bundle), cid).stdout.split()
    assert out == ["0", str(HOST_BASE), "65536", "0", str(HOST_BASE), "65536", "0"]


def test_idmapped_bind_mount_shows_and_writes_host_ownership(rt, make_bundle, cid, host_dir):
    def edit(c: dict) -> None:
        with_userns(c)
        c["mounts"].append({"destination": "/home", "type": "bind", "source": str(host_dir),
                            "options": ["bind", "idmap"]})
        c["mounts"].append({"destination": "/root", "type": "bind", "source": str(host_dir), "options": ["bind"]})

    script = ("stat -c '%u %n' /home/owned-by-root /root/owned-by-root; "
              "echo made > /home/via-idmap && echo idmapped-write-ok; "
              "echo x > /root/via-plain 2>/dev/null || echo plain-write-denied")
    out = rt("run", "-b", str(make_bundle(["sh", "-c", script], edit=edit)), cid).stdout.splitlines()
    assert out == ["0 /home/owned-by-root", "65534 /root/owned-by-root", "idmapped-write-ok", "plain-write-denied"]
    # Through the idmapped mount, container root writes as host root; through the plain one it could not.
    assert (host_dir / "via-idmap").stat().st_uid == 0
    assert not (host_dir / "via-plain").exists()


def test_container_root_cannot_write_host_files_it_does_not_own(rt, make_bundle, cid, host_dir):
    def edit(c: dict) -> None:
        with_userns(c)
        c["mounts"].append({"destination": "/home", "type": "bind", "source": str(host_dir), "options": ["rbind"]})

    script = "echo evil >> /home/owned-by-root; rm /home/owned-by-root; echo done"
    proc = rt("run", "-b", str(make_bundle(["sh", "-c", script], edit=edit)), cid, check=False)
    assert "done" in proc.stdout
    assert (host_dir / "owned-by-root").read_text() == "host data\n"


def test_mount_level_mappings_and_recursive_attributes(rt, make_bundle, cid, host_dir):
    def edit(c: dict) -> None:
        with_userns(c)
        c["mounts"].append({"destination": "/home", "type": "bind", "source": str(host_dir), "options": ["rbind"],
                            "uidMappings": [{"containerID": 0, "hostID": HOST_BASE + 7, "size": 1}],
                            "gidMappings": [{"containerID": 0, "hostID": HOST_BASE + 7, "size": 1}]})
        c["mounts"].append({"destination": "/tmp/r", "type": "bind", "source": str(host_dir),
                            "options": ["rbind", "rro", "rnosuid", "rnodev"]})

    script = "stat -c %u /home/owned-by-root; grep ' /tmp/r ' /proc/self/mounts; touch /tmp/r/x || echo ro"
    out = rt("run", "-b", str(make_bundle(["sh", "-c", script], edit=edit)), cid).stdout.splitlines()
    assert out[0] == "7"  # host uid 0 seen through the mount's own map (0 -> 100007 = container uid 7)
    opts = out[1].split()[3].split(",")
    assert {"ro", "nosuid", "nodev"} <= set(opts)
    assert out[-1] == "ro"


def test_idmap_without_any_mapping_is_refused_cleanly(rt, make_bundle, cid, host_dir):
    index = []

    def edit(c: dict) -> None:
        index.append(len(c["mounts"]))
        c["mounts"].append({"destination": "/home", "type": "bind", "source": str(host_dir),
                            "options": ["bind", "idmap"]})

    proc = rt("create", "-b", str(make_bundle(["true"], edit=edit)), cid, check=False)
    assert proc.returncode == 1
    assert f"mounts[{index[0]}]" in proc.stderr and "uidMappings" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert rt.ids() == []


# -- rootless: the runtime run by an unprivileged user -------------------------------------------------

def _copy_runtime(dest: Path) -> list[str]:
    """Copy pyruntime and its dependencies where an unprivileged user can read them (the project's
    venv may live under /root, mode 700); return the sys.path entries a launcher needs."""
    import _cffi_backend
    import _prctl
    import cffi
    import click
    import prctl

    import pyruntime

    site = dest / "site"
    site.mkdir()
    for mod in (pyruntime, click, cffi):
        shutil.copytree(Path(mod.__file__).parent, site / Path(mod.__file__).parent.name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    for mod in (prctl, _prctl, _cffi_backend):
        shutil.copy2(mod.__file__, site)
    return [str(site)]


def _shared_python() -> str | None:
    """An interpreter of the tests' own version (the copied C extensions are built for it) that an
    unprivileged user can run: the venv's base unless it lives under a private directory (/root)."""
    for python in (os.path.realpath(sys.executable), f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}"):
        if os.path.isfile(python) and all(os.stat(p).st_mode & 0o001 for p in (python, *Path(python).parents)):
            return python
    return None


@pytest.fixture
def unprivileged_user() -> dict:
    """A throw-away user with a subuid/subgid range, a private XDG_RUNTIME_DIR and a readable copy of
    the runtime; removed afterwards with everything it ran (ended by pid)."""
    python = _shared_python()
    if python is None or not shutil.which("useradd"):
        pytest.skip(f"needs useradd and a python{sys.version_info[0]}.{sys.version_info[1]} other users can run")
    name = f"prt{random.randrange(16**6):06x}"
    # A uid of its own, far from 1000 (tests run containers as 1000) and from the mapped ranges, so
    # the teardown can end this user's processes by uid without touching anybody else's.
    uid = 250000 + random.randrange(50000)
    while subprocess.run(["getent", "passwd", str(uid)], capture_output=True).returncode == 0:
        uid += 1
    subprocess.run(["useradd", "-M", "-N", "-u", str(uid), "-d", "/nonexistent", "-s", "/usr/sbin/nologin", name],
                   check=True)
    assert pwd.getpwnam(name).pw_uid == uid
    base = 400000 + random.randrange(1000) * 65536
    subs = {f: f"{name}:{base}:65536\n" for f in ("/etc/subuid", "/etc/subgid")}
    for f, line in subs.items():
        with open(f, "a") as fh:
            fh.write(line)
    work = Path(tempfile.mkdtemp(prefix="prt-rootless-", dir="/tmp"))
    work.chmod(0o755)
    paths = _copy_runtime(work)
    launcher = work / "pyruntime"
    launcher.write_text(f"#!{python} -I\nimport sys\n"
                        f"sys.path[:0] = {paths!r}\n"
                        "from pyruntime.__main__ import main\nmain()\n")
    launcher.chmod(0o755)
    xdg = work / "xdg"
    bundle = work / "bundle"
    for d in (xdg, bundle):
        d.mkdir()
        os.chown(d, uid, -1)
    xdg.chmod(0o700)
    subprocess.run(["cp", "-a", str(ROOTFS), str(bundle / "rootfs")], check=True)
    user = {"name": name, "uid": uid, "launcher": str(launcher), "xdg": str(xdg), "bundle": bundle}
    yield user
    for p in Path("/proc").iterdir():  # end whatever the user left running, by pid
        if p.name.isdigit():
            try:
                if p.stat().st_uid == uid or (p / "status").read_text().find(f"Uid:\t{uid}\t") >= 0:
                    os.kill(int(p.name), signal.SIGKILL)
            except (OSError, ProcessLookupError):
                pass
    subprocess.run(["userdel", name], check=False)
    for f, line in subs.items():
        text = Path(f).read_text()
        Path(f).write_text(text.replace(line, ""))
    shutil.rmtree(work)


def _as_user(user: dict, cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    env = f"XDG_RUNTIME_DIR={user['xdg']} HOME=/tmp PATH=/usr/bin:/bin"
    proc = subprocess.run(["su", "-s", "/bin/sh", user["name"], "-c", f"cd {user['bundle']} && env {env} {cmd}"],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd}: exit {proc.returncode}: {proc.stderr}")
    return proc


def test_rootless_lifecycle_as_unprivileged_user(unprivileged_user):
    u = unprivileged_user
    rt = u["launcher"]
    _as_user(u, f"{rt} spec --rootless")
    cfg_path = u["bundle"] / "config.json"
    config = json.loads(cfg_path.read_text())
    assert config["linux"]["uidMappings"] == [{"containerID": 0, "hostID": u["uid"], "size": 1}]
    config["process"]["terminal"] = False
    cid = "rl1"
    config["process"]["args"] = ["sleep", "60"]
    cfg_path.write_text(json.dumps(config))
    _as_user(u, f"{rt} create {cid} </dev/null >/dev/null 2>&1")
    _as_user(u, f"{rt} start {cid}")
    state = json.loads(_as_user(u, f"{rt} state {cid}").stdout)
    assert state["status"] == "running"
    assert Path(u["xdg"], "pyruntime", cid, "state.json").exists()
    status = Path(f"/proc/{state['pid']}/status").read_text()
    assert f"Uid:\t{u['uid']}\t" in status  # container root is the user on the host
    exec_probe = _as_user(u, f"{rt} exec {cid} id -u", check=False)
    if "No such command" not in exec_probe.stderr:
        assert exec_probe.stdout.strip() == "0", exec_probe.stderr
    _as_user(u, f"{rt} kill {cid} KILL")
    deadline = time.monotonic() + 10
    while Path(f"/proc/{state['pid']}").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    _as_user(u, f"{rt} delete {cid}")
    assert os.listdir(Path(u["xdg"], "pyruntime")) == []


def test_rootless_run_foreground_exit_code(unprivileged_user):
    u = unprivileged_user
    _as_user(u, f"{u['launcher']} spec --rootless")
    cfg_path = u["bundle"] / "config.json"
    config = json.loads(cfg_path.read_text())
    config["process"]["terminal"] = False
    config["process"]["args"] = ["sh", "-c", "cat /proc/self/uid_map; exit 3"]
    cfg_path.write_text(json.dumps(config))
    proc = _as_user(u, f"{u['launcher']} run rl2", check=False)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.split() == ["0", str(u["uid"]), "1"]
    assert "Traceback" not in proc.stderr
    assert proc.stderr == "", proc.stderr  # no limits asked: no warning about undelegated cgroups (runc)
    assert os.listdir(Path(u["xdg"], "pyruntime")) == []


def test_rootless_limits_without_delegation_warn_once(unprivileged_user):
    """No cgroup is delegated to the user: one warning naming what is skipped and why, not one per
    limit claiming its controller is not mounted (it is, but not the user's to write)."""
    u = unprivileged_user
    _as_user(u, f"{u['launcher']} spec --rootless")
    cfg_path = u["bundle"] / "config.json"
    config = json.loads(cfg_path.read_text())
    config["process"]["terminal"] = False
    config["process"]["args"] = ["true"]
    config["linux"]["resources"] = {"pids": {"limit": 50}, "memory": {"limit": 64 << 20}}
    cfg_path.write_text(json.dumps(config))
    proc = _as_user(u, f"{u['launcher']} run rl3", check=False)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cgroups not delegated to this user are skipped" in lines[0], proc.stderr


@pytest.mark.parametrize("missing", ["uidMappings", "gidMappings"])
def test_new_user_namespace_without_mappings_says_what_is_missing(rt, make_bundle, cid, missing):
    """Not a bare "invalid argument": runc says "User namespaces enabled, but no uid mappings found"."""
    def edit(c: dict) -> None:
        with_userns(c)
        c["linux"].pop(missing)

    proc = rt("create", "-b", str(make_bundle(["true"], edit=edit)), cid, check=False)
    err = proc.stderr.strip()
    assert proc.returncode == 1 and len(err.splitlines()) == 1, err
    assert f"linux.{missing}" in err and f"no {missing[:3]} mappings found" in err
    assert rt.ids() == []


def test_bind_mount_source_the_mapped_root_cannot_reach(rt, make_bundle, cid, host_dir):
    """runc's userns.bats "2 inaccessible mounts": the source sits in a directory only the host's root
    can enter; the runtime opens it before the user namespace exists and the init mounts that."""
    locked = host_dir / "locked"
    (locked / "dir").mkdir(parents=True)
    (locked / "dir" / "foo.txt").write_text("reached\n")
    locked.chmod(0o700)

    def edit(c: dict) -> None:
        with_userns(c)
        c["mounts"].append({"destination": "/tmp/m1", "type": "bind", "source": str(locked / "dir"),
                            "options": ["bind"]})
        c["mounts"].append({"destination": "/tmp/m2", "type": "bind", "source": str(locked / "dir" / "foo.txt"),
                            "options": ["bind", "ro"]})

    out = rt("run", "-b", str(make_bundle(["sh", "-c", "cat /tmp/m1/foo.txt /tmp/m2"], edit=edit)), cid).stdout
    assert out == "reached\nreached\n"
