"""Bad input: one clear line naming the file, the JSON path and the cause; exit 1; no traceback; and
nothing left behind (no state dir, cgroup, mount or process)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyruntime_tests_conftest import cgroup_dirs


@pytest.fixture
def host_mounts():
    """Fails the test if the host's mount table changed."""
    before = Path("/proc/self/mountinfo").read_text()
    yield
    after = Path("/proc/self/mountinfo").read_text()
    # Other tests (of other tiers) may mount concurrently: compare only what mentions pytest's tmp.
    def mine(text: str) -> list[str]:
        return [line for line in text.splitlines() if "pytest-of" in line or "/prt-" in line]
    assert mine(before) == mine(after)


def _clean_failure(proc, rt, *needles: str, cgroup: str | None = None) -> str:
    """The common contract of every failure here; returns the message."""
    err = proc.stderr
    assert proc.returncode == 1, (proc.returncode, err)
    assert "Traceback" not in err and "internal error" not in err, err
    assert err.endswith("\n") and err.count("\n") == 1, f"not one line: {err!r}"
    assert err.startswith("pyruntime: "), err
    for needle in needles:
        assert needle in err, (needle, err)
    assert rt.ids() == [], "a state dir was left behind"
    if cgroup:
        assert cgroup_dirs(cgroup) == [], "a cgroup was left behind"
    return err


def _create(rt, bundle, cid):
    return rt("create", "--bundle", str(bundle), cid, check=False)


# -- config.json itself --------------------------------------------------------------------------------

def test_missing_config(rt, tmp_path, cid, host_mounts):
    (tmp_path / "empty").mkdir()
    _clean_failure(_create(rt, tmp_path / "empty", cid), rt, str(tmp_path / "empty" / "config.json"), "not found")


def test_missing_bundle(rt, tmp_path, cid):
    _clean_failure(_create(rt, tmp_path / "nope", cid), rt, str(tmp_path / "nope"))


def test_config_is_a_directory(rt, tmp_path, cid):
    (tmp_path / "b" / "config.json").mkdir(parents=True)
    _clean_failure(_create(rt, tmp_path / "b", cid), rt, "config.json")


@pytest.mark.parametrize("data, cause", [
    (b"", "invalid JSON"),
    (b"{", "invalid JSON at line 1"),
    (b'{"ociVersion": "1.0.0",\n "process": }', "invalid JSON at line 2"),
    (b"not json at all", "invalid JSON"),
    (b'{"ociVersion": "1.0.0", "hostname": "\xff\xfe"}', "invalid UTF-8"),
    (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
    (b"[]", "expected an object"),
    (b"null", "expected an object"),
])
def test_malformed_config(rt, tmp_path, cid, data, cause, host_mounts):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "config.json").write_bytes(data)
    _clean_failure(_create(rt, tmp_path / "b", cid), rt, str(tmp_path / "b" / "config.json"), cause)


def _set(path: str, value):
    """An edit that sets a dotted JSON path (with [i] indexes) in config.json."""
    def edit(c):
        parts = path.replace("[", ".[").split(".")
        node = c
        for p in parts[:-1]:
            node = node[int(p[1:-1])] if p.startswith("[") else node.setdefault(p, {})
        last = parts[-1]
        if value is _DELETE:
            del node[last]
        elif last.startswith("["):
            node[int(last[1:-1])] = value
        else:
            node[last] = value
    return edit


_DELETE = object()


@pytest.mark.parametrize("path, value, cause", [
    ("process.args", "sh -c true", "expected an array, got a string"),
    ("process.args", [], "at least the program"),
    ("process.args[0]", 7, "expected a string, got an integer"),
    ("process.cwd", 5, "expected a string"),
    ("process.cwd", "relative/dir", "absolute"),
    ("process.env", ["NOEQUALS"], "KEY=value"),
    ("process.user.uid", -1, "out of range"),
    ("process.user.gid", "0", "expected an integer"),
    ("process.user.uid", 1.5, "fraction"),
    ("process.terminal", "no", "expected a boolean"),
    ("process.rlimits", [{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}], "unknown rlimit"),
    ("process.rlimits", [{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 5}], "above the hard"),
    ("process.capabilities.bounding", ["CAP_NOT_A_CAP"], "CAP_NOT_A_CAP"),
    ("root.readonly", "yes", "expected a boolean"),
    ("root.path", _DELETE, "required field is missing"),
    ("root", _DELETE, "required field is missing"),
    ("process", _DELETE, "required field is missing"),
    ("ociVersion", _DELETE, "required field is missing"),
    ("mounts", {"destination": "/x"}, "expected an array"),
    ("mounts[0].destination", None, "destination"),
    ("hostname", ["box"], "expected a string"),
    ("hostname", "a\u0000b", "NUL"),
    ("annotations", {"k": 1}, "expected a string"),
    ("linux.namespaces", [{"type": "pid"}, {"type": "pid"}], "given twice"),
    ("linux.namespaces[0].path", "relative/ns", "absolute"),
    ("linux.maskedPaths", ["relative"], "absolute"),
    ("linux.devices", [{"type": "x", "path": "/dev/x", "major": 1, "minor": 1}], "unknown device type"),
    ("linux.devices", [{"type": "c", "path": "dev/x", "major": 1, "minor": 1}], "absolute path"),
    ("linux.devices", [{"type": "c", "path": "/dev/../etc/x", "major": 1, "minor": 1}], "must not contain"),
    ("linux.devices", [{"type": "c", "path": "/dev/x"}], "major and minor"),
    ("linux.rootfsPropagation", "sideways", "unknown propagation"),
    ("linux.timeOffsets", {"boottime": {"secs": 1}}, "time namespace"),
    ("linux.cgroupsPath", "/a/../../b", "cgroupsPath"),
    ("linux.intelRdt", {"closID": "x"}, "Intel RDT is not supported"),
    ("hooks.prestart", [{"path": "relative/hook"}], "absolute"),
    ("hooks.poststop", [{"args": ["x"]}], "required field is missing"),
])
def test_wrong_values_name_the_json_path(rt, make_bundle, cid, path, value, cause, cgroup_parent, host_mounts):
    bundle = make_bundle(["true"], edit=_set(path, value), name="bad")
    err = _clean_failure(_create(rt, bundle, cid), rt, str(bundle / "config.json"), cause,
                         cgroup=f"{cgroup_parent}/bad")
    top = path.split(".")[0].split("[")[0]
    assert top in err, err


def test_mount_destination_null_names_index(rt, make_bundle, cid):
    bundle = make_bundle(["true"], edit=_set("mounts[2].destination", 42))
    _clean_failure(_create(rt, bundle, cid), rt, "mounts[2].destination", "expected a string")


def test_unknown_fields_are_accepted(sh):
    def edit(c):
        c["somethingNew"] = {"x": [1, 2]}
        c["process"]["futureField"] = True
        c["linux"]["futureField"] = "x"

    assert sh("echo ok", edit=edit).stdout == "ok\n"


# -- the rootfs and namespaces -----------------------------------------------------------------------------

def test_missing_rootfs(rt, make_bundle, cid, cgroup_parent, host_mounts):
    bundle = make_bundle(["true"], edit=_set("root.path", "/no/such/rootfs"), name="bad")
    _clean_failure(_create(rt, bundle, cid), rt, "root.path", "/no/such/rootfs", cgroup=f"{cgroup_parent}/bad")


def test_rootfs_is_a_file(rt, make_bundle, cid, tmp_path):
    (tmp_path / "file").write_text("x")
    bundle = make_bundle(["true"], edit=_set("root.path", str(tmp_path / "file")))
    _clean_failure(_create(rt, bundle, cid), rt, "root.path")


@pytest.mark.parametrize("ns_type", ["bogus", "PID", "net", ""])
def test_unknown_namespace_type(rt, make_bundle, cid, ns_type):
    index = []

    def edit(c: dict) -> None:
        index.append(len(c["linux"]["namespaces"]))
        c["linux"]["namespaces"].append({"type": ns_type})

    bundle = make_bundle(["true"], edit=edit)
    _clean_failure(_create(rt, bundle, cid), rt, f"linux.namespaces[{index[0]}].type", "unknown namespace type")


# -- IDs -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad_id", ["a/b", "../escape", "..", ".", "x" * 256, "with space", "tab\there", "ünï",
                                    "semi;colon", "/abs"])
def test_bad_ids_are_refused(rt, make_bundle, bad_id, tmp_path):
    bundle = make_bundle(["true"])
    proc = rt("create", "--bundle", str(bundle), "--", bad_id, check=False)
    _clean_failure(proc, rt, "invalid container ID")
    assert not (Path(rt.root).parent / "escape").exists()
    for command in (["state"], ["start"], ["kill"], ["delete"], ["delete", "--force"]):
        proc = rt(*command, "--", bad_id, check=False)
        _clean_failure(proc, rt, "invalid container ID")


def test_empty_id_is_refused(rt, make_bundle):
    proc = rt("create", "--bundle", str(make_bundle(["true"])), "", check=False)
    _clean_failure(proc, rt, "invalid container ID")


@pytest.mark.parametrize("odd_id", ["a", "x" * 255, "A-b_c.d+e", "0", "-", "...x"])
def test_odd_but_valid_ids(rt, make_bundle, odd_id):
    rt("create", "--bundle", str(make_bundle(["true"])), "--", odd_id)
    assert rt.ids() == [odd_id]
    assert rt.state(odd_id)["id"] == odd_id
    rt("delete", "--", odd_id)


# -- the process ---------------------------------------------------------------------------------------------

def test_missing_executable_in_path(rt, make_bundle, cid, cgroup_parent, host_mounts):
    bundle = make_bundle(["no-such-program", "arg"], name="bad")
    _clean_failure(_create(rt, bundle, cid), rt, 'exec: "no-such-program": executable file not found in $PATH',
                   cgroup=f"{cgroup_parent}/bad")


def test_missing_executable_in_path_with_run(rt, make_bundle, cid):
    proc = rt("run", "--bundle", str(make_bundle(["no-such-program"])), cid, check=False)
    _clean_failure(proc, rt, "executable file not found in $PATH")


def test_missing_executable_by_absolute_path(rt, make_bundle, cid):
    _clean_failure(_create(rt, make_bundle(["/no/such/program"]), cid), rt, "/no/such/program",
                   "no such file or directory")


def test_executable_is_a_directory(rt, make_bundle, cid):
    _clean_failure(_create(rt, make_bundle(["/etc"]), cid), rt, "/etc", "is a directory")


def test_executable_without_exec_permission(rt, make_bundle, cid, private_rootfs):
    (private_rootfs / "bin" / "noexec").write_text("#!/bin/sh\necho no\n")
    (private_rootfs / "bin" / "noexec").chmod(0o644)
    bundle = make_bundle(["/bin/noexec"], edit=_set("root.path", str(private_rootfs)))
    _clean_failure(_create(rt, bundle, cid), rt, "/bin/noexec", "permission denied")
    # Found through $PATH, a file without the x bit is skipped, as runc (Go's LookPath) does.
    bundle = make_bundle(["noexec"], edit=_set("root.path", str(private_rootfs)))
    _clean_failure(_create(rt, bundle, cid), rt, "executable file not found in $PATH")


def test_cwd_that_is_a_file(rt, make_bundle, cid):
    bundle = make_bundle(["true"], edit=_set("process.cwd", "/etc/passwd"))
    _clean_failure(_create(rt, bundle, cid), rt, "process.cwd", "/etc/passwd")


def test_terminal_without_console_socket(rt, make_bundle, cid):
    bundle = make_bundle(["true"], edit=_set("process.terminal", True))
    _clean_failure(_create(rt, bundle, cid), rt, "console-socket")


def test_no_state_root_writable(rt, make_bundle, cid, tmp_path):
    """A --root that cannot be made (a file in the way) is one clear line too."""
    (tmp_path / "file").write_text("")
    proc = rt.__class__(rt.binary, str(tmp_path / "file" / "root"))("create", "--bundle", str(make_bundle(["true"])),
                                                                     cid, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


# -- CLI usage -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [["create"], ["start"], ["kill"], ["nosuchcommand"], ["create", "--nosuchflag", "x"],
                                  ["list", "--format", "xml"], ["--log-format", "yaml", "list"]])
def test_usage_errors(rt, argv):
    proc = rt(*argv, check=False)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and proc.stderr.strip()


def test_systemd_cgroup_is_a_clear_error(rt, make_bundle, cid):
    proc = rt("--systemd-cgroup", "create", "--bundle", str(make_bundle(["true"])), cid, check=False)
    _clean_failure(proc, rt, "systemd")


def test_debug_flag_still_one_line_for_user_errors(rt, tmp_path, cid):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "config.json").write_text("{")
    proc = rt("--debug", "create", "--bundle", str(tmp_path / "b"), cid, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "invalid JSON" in proc.stderr
