"""Hostile config.json and command lines (issue 8): one clear line, exit 1, nothing left behind.

Three layers: hand-picked nasty inputs through the real CLI; a property-based test (hypothesis)
mutating a valid config thousands of times through the validation `create` runs before it touches
anything; and 150 (PYRUNTIME_FUZZ_CLI) mutations through the real `run` with a leak
check after each. PYRUNTIME_FUZZ_EXAMPLES raises the in-process count.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from leaks import assert_clean, new_tag, tagged_env
from pyruntime_tests_conftest import ROOTFS, base_config, cgroup_dirs

from pyruntime import cgroups, spec
from pyruntime.errors import RuntimeFailure
from pyruntime.security import caps

UNIT_EXAMPLES = int(os.environ.get("PYRUNTIME_FUZZ_EXAMPLES", "2000"))
CLI_EXAMPLES = int(os.environ.get("PYRUNTIME_FUZZ_CLI", "150"))
FILE = "/bundle/config.json"


def one_clear_line(proc) -> str:
    err = proc.stderr
    assert "Traceback" not in err and "internal error" not in err, err
    assert err.startswith("pyruntime: ") and err.count("\n") == 1, repr(err)
    return err


# -- hand-picked inputs through the CLI -------------------------------------------------------------

def _deep(n: int) -> str:
    return '{"ociVersion":"1.3.0","annotations":' + '{"a":' * n + '"x"' + "}" * n + "}"


RAW_CASES = {
    "not json": (b"this is not json", "invalid JSON at line 1"),
    "empty": (b"", "invalid JSON"),
    "array": (b"[]", "expected an object"),
    "invalid utf-8": (b'{"ociVersion":"1.3.0","hostname":"\xff\xfe"}', "invalid UTF-8"),
    "absurd nesting": (_deep(100_000).encode(), "nested too deeply"),
    "truncated": (json.dumps(base_config(["true"], "/x"))[:200].encode(), "invalid JSON"),
}


def _set(path: str, value: Any):
    def edit(c):
        *parents, last = path.split(".")
        node = c
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return edit


def _drop(path: str):
    def edit(c):
        *parents, last = path.split(".")
        node = c
        for p in parents:
            node = node[p]
        del node[last]
    return edit


EDIT_CASES = {
    # name: (edit, the JSON path the error must name)
    "wrong type": (_set("process.args", "true"), "process.args"),
    "wrong type deep": (_set("process.user.uid", "0"), "process.user.uid"),
    "negative uid": (_set("process.user.uid", -1), "process.user.uid"),
    "huge uid": (_set("process.user.uid", 2**32), "process.user.uid"),
    "huge integer": (_set("process.rlimits", [{"type": "RLIMIT_NOFILE", "soft": 10**30, "hard": 1}]),
                     "process.rlimits[0].soft"),
    "float": (_set("process.user.gid", 1.5), "process.user.gid"),
    "bool as int": (_set("process.user.gid", True), "process.user.gid"),
    "missing required": (_drop("process.cwd"), "process.cwd"),
    "missing root": (_drop("root"), "root"),
    "missing version": (_drop("ociVersion"), "ociVersion"),
    "bad version": (_set("ociVersion", "9.9.9"), "ociVersion"),
    "null process": (_set("process", None), "process"),
    "NUL in string": (_set("hostname", "a\x00b"), "hostname"),
    "lone surrogate": (_set("hostname", "\udcff"), "hostname"),
    "surrogate in cgroupsPath": (_set("linux.cgroupsPath", "/x\udcff"), "linux.cgroupsPath"),
    "long hostname": (_set("hostname", "h" * 65), "hostname"),
    "enormous array": (_set("linux.maskedPaths", ["/x"] * 10_001), "linux.maskedPaths"),
    "enormous args": (_set("process.args", ["x"] * 100_001), "process.args"),
    "relative cwd": (_set("process.cwd", "tmp"), "process.cwd"),
    "unknown capability": (_set("process.capabilities.bounding", ["CAP_NOPE"]),
                           "process.capabilities.bounding[0]"),
    "unknown namespace": (_set("linux.namespaces", [{"type": "nope"}]), "linux.namespaces[0].type"),
    "cgroup escape": (_set("linux.cgroupsPath", "/a/../../b"), "linux.cgroupsPath"),
    "env without =": (_set("process.env", ["NOEQUALS"]), "process.env[0]"),
    # failures of the init while it applies an entry name the entry too
    "bad mount option": (_set("mounts.0.options", ["bogus"]), "mounts[0]"),
    "unknown fstype": (_set("mounts.1.type", "nosuchfs"), "mounts[1]"),
    "missing bind source": (_set("mounts.6", {"destination": "/tmp", "type": "bind", "source": "/nonexistent",
                                              "options": ["rbind"]}), "mounts[6]"),
}


@pytest.mark.parametrize("name", sorted(RAW_CASES))
def test_raw_config_is_one_clear_line(rt, tmp_path, cid, name):
    data, words = RAW_CASES[name]
    (tmp_path / "config.json").write_bytes(data)
    proc = rt("create", "--bundle", str(tmp_path), cid, check=False)
    assert proc.returncode == 1
    err = one_clear_line(proc)
    assert str(tmp_path / "config.json") in err and words in err, err
    assert rt.ids() == []


@pytest.mark.parametrize("name", sorted(EDIT_CASES))
def test_bad_field_names_its_json_path(rt, make_bundle, cid, cgroup_parent, tmp_path, name):
    edit, path = EDIT_CASES[name]
    tag = new_tag()
    bundle = make_bundle(["true"], edit=edit)
    proc = rt("create", "--bundle", str(bundle), cid, env=tagged_env(tag), check=False)
    assert proc.returncode == 1, proc.stderr
    err = one_clear_line(proc)
    assert f"{bundle}/config.json: {path}" in err, err
    assert_clean(rt, tag, cgroup_parent, tmp_path)


def test_unknown_fields_are_accepted(rt, make_bundle, cid):
    def edit(c):
        c["x-unknown"] = {"deep": [1, 2, {"a": None}]}
        c["process"]["x-unknown"] = 1
        c["linux"]["x-unknown"] = "y"
    proc = rt("run", "--bundle", str(make_bundle(["true"], edit=edit)), cid, check=False)
    assert proc.returncode == 0, proc.stderr


BAD_ARGS = [
    ["create"], ["nosuchcommand"], ["kill", "x", "NOSIG"], ["kill", "x", "999"],
    ["create", "--preserve-fds", "-1", "x"], ["create", "--preserve-fds", "abc", "x"], ["state", "a/b"],
    ["state", ".."], ["state", "x" * 300], ["--log-format", "xml", "list"], ["list", "--format", "yaml"],
    ["delete", ""], ["create", "--bundle", "/nonexistent", "x"], ["start", "missing-container"],
    ["--root", "/proc/nope/x", "create", "--bundle", ".", "x"], ["create", "--no-such-flag", "x"],
    ["--log", "/proc/nope/x.log", "list"], ["--root", "/etc/passwd", "list"],
]


@pytest.mark.parametrize("argv", BAD_ARGS, ids=lambda a: " ".join(a)[:40])
def test_bad_arguments_are_one_clear_line(rt, argv):
    proc = rt(*argv, check=False)
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    one_clear_line(proc)
    assert rt.ids() == []


# -- property-based: mutations of a valid config ------------------------------------------------

_INTERESTING_INTS = st.sampled_from([0, -1, 1, 2**31 - 1, 2**31, 2**32, 2**63 - 1, 2**63, 2**64, -(2**63) - 1,
                                     10**100])
_INTERESTING_STRS = st.sampled_from(["", "/", ".", "..", "../../../etc", "/proc/self", "a\x00b", "\udcff",
                                     "x" * 5000, "\u202e", "CAP_SYS_ADMIN", "RLIMIT_NOFILE", "pid", "bind",
                                     "rbind", "ro", "1.3.0", "KEY=value", "=", "\n"])
_SCALARS = (st.none() | st.booleans() | st.integers() | _INTERESTING_INTS | st.floats()
            | st.text(max_size=20) | _INTERESTING_STRS)
JSON_VALUES = st.recursive(_SCALARS, lambda kids: st.lists(kids, max_size=4)
                           | st.dictionaries(st.text(max_size=10) | _INTERESTING_STRS, kids, max_size=4),
                           max_leaves=8)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _mutate(config: dict[str, Any], data: st.DataObject, protect: tuple = ()) -> dict[str, Any]:
    config = copy.deepcopy(config)
    for _ in range(data.draw(st.integers(1, 3))):
        paths = [p for p in _paths(config) if p and p[:len(protect)] != protect or not protect and p]
        if not paths:
            break
        path = data.draw(st.sampled_from(paths))
        parent = config
        for k in path[:-1]:
            parent = parent[k]
        if not isinstance(parent, (dict, list)):
            continue
        key, op = path[-1], data.draw(st.sampled_from(["replace", "delete", "add", "wrap", "stringify"]))
        if op == "replace":
            parent[key] = data.draw(JSON_VALUES)
        elif op == "delete":
            del parent[key]
        elif op == "add":
            target = parent[key]
            if isinstance(target, dict):
                target[data.draw(st.text(max_size=10) | _INTERESTING_STRS)] = data.draw(JSON_VALUES)
            elif isinstance(target, list):
                target.append(data.draw(JSON_VALUES))
            else:
                parent[key] = data.draw(JSON_VALUES)
        elif op == "wrap":
            parent[key] = [parent[key]]
        else:
            parent[key] = json.dumps(parent[key])
    return config


def preflight(config: Any, file: str = FILE) -> None:
    """Everything `create` checks before it makes a state dir or a cgroup (container.create)."""
    from pyruntime.security import seccomp, validate

    spec.check_config(config, file)
    caps.resolve_sets(config["process"].get("capabilities"), file, "process.capabilities")
    if (config.get("linux") or {}).get("seccomp"):
        seccomp.compile(config["linux"]["seccomp"], file)
    if (config.get("linux") or {}).get("netDevices"):
        from pyruntime import network

        network.check(config, file)
    validate.check_config(config, spec.namespaces(config), file)
    cgroups.cgroup_path(config, "fuzz", False, file)


VALID = base_config(["sh", "-c", "true"], "/fuzz/cg")
VALID["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024}]
VALID["process"]["user"]["additionalGids"] = [1, 2]
VALID["annotations"] = {"org.example": "1"}
VALID["hooks"] = {"poststop": [{"path": "/bin/true", "args": ["true"], "timeout": 5}]}
VALID["linux"]["resources"] = {"pids": {"limit": 100}, "memory": {"limit": 100 * 2**20}}
VALID["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                             "syscalls": [{"names": ["mount", "umount2"], "action": "SCMP_ACT_ERRNO",
                                           "errnoRet": 1},
                                          {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                                           "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_NE"}]}]}
VALID["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
VALID["process"]["oomScoreAdj"] = 100


def test_valid_base_passes_preflight():
    preflight(copy.deepcopy(VALID))


@settings(max_examples=UNIT_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_mutated_config_is_accepted_or_one_clear_error(data):
    config = _mutate(VALID, data)
    text = json.dumps(config)  # what a hostile file would contain, parsed the same way as create does
    try:
        preflight(json.loads(text))
    except RuntimeFailure as e:
        msg = str(e)
        assert msg.startswith(FILE + ": ") and "\n" not in msg, msg
    # anything else (KeyError, TypeError, AttributeError, ...) fails the test with its traceback


@settings(max_examples=max(UNIT_EXAMPLES // 4, 50), deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(raw=st.binary(max_size=300) | st.text(max_size=300).map(str.encode), cut=st.integers(0, 5000))
def test_mangled_bytes_are_one_clear_error(tmp_path_factory, raw, cut):
    base = json.dumps(VALID).encode()
    data = base[:cut] + raw + base[cut:]
    path = tmp_path_factory.getbasetemp() / "mangled.json"
    path.write_bytes(data)
    try:
        preflight(spec.load_json(str(path)), str(path))
    except RuntimeFailure as e:
        assert str(e).startswith(f"{path}: ") and "\n" not in str(e), str(e)


@pytest.fixture
def fuzz_rootfs(tmp_path: Path) -> Path:
    """A private rootfs copy: a mutated mount destination may create directories in it."""
    dest = tmp_path / "fuzz-rootfs"
    shutil.copytree(ROOTFS, dest, symlinks=True)
    return dest


def test_mutated_config_through_the_cli(rt, tmp_path, cgroup_parent, fuzz_rootfs):
    """The real `run` on mutated configs: it runs, or one clear line and exit 1; nothing left behind."""
    counter = iter(range(10**6))

    @settings(max_examples=CLI_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def check(data):
        n = next(counter)
        tag = new_tag()
        base = copy.deepcopy(VALID)
        base["root"]["path"] = str(fuzz_rootfs)
        base["process"]["env"].append(f"PRT_LEAK_TAG={tag}")
        base["linux"]["cgroupsPath"] = f"{cgroup_parent}/f{n}"
        config = _mutate(base, data, protect=("linux", "cgroupsPath"))
        # never let a mutation pick the cgroup: it must stay under the test's private parent
        if isinstance(config.get("linux"), dict):
            config["linux"]["cgroupsPath"] = f"{cgroup_parent}/f{n}"
        else:
            config["linux"] = {"cgroupsPath": f"{cgroup_parent}/f{n}", "namespaces": base["linux"]["namespaces"]}
        bundle = tmp_path / f"f{n}"
        bundle.mkdir()
        (bundle / "config.json").write_text(json.dumps(config))
        cid = f"fuzz-{n}"
        proc = rt("run", "--bundle", str(bundle), cid, env=tagged_env(tag), check=False, timeout=30)
        if proc.returncode != 0:
            if proc.stderr.startswith("pyruntime: "):
                assert proc.returncode == 1
                one_clear_line(proc)
            else:  # the container ran and exited non-zero: fine, but the runtime must not have failed
                assert "Traceback" not in proc.stderr and "pyruntime:" not in proc.stderr, proc.stderr
        assert_clean(rt, tag, cgroup_parent, tmp_path / f"f{n}")
        assert not cgroup_dirs(f"/pyruntime/{cid}")

    check()


EXEC_CASES = [
    # (process.json bytes, words the one error line must contain)
    (b"nope", "invalid JSON"),
    (b"[]", "expected a JSON object"),
    (b"{}", "cwd: required field is missing"),
    (b'{"args":"ls","cwd":"/"}', "args: expected an array"),
    (b'{"args":["true"],"cwd":5}', "cwd: expected a string"),
    (b'{"args":["true"],"cwd":"/","user":{"uid":-1,"gid":0}}', "user.uid"),
    (b'{"args":["true"],"cwd":"/","user":null}', ""),
    (b'{"args":["\\udcff"],"cwd":"/"}', "args[0]"),
    (b'{"args":["true"],"cwd":"/\xff"}', "invalid UTF-8"),
    (b'{"args":["true"],"cwd":"/","capabilities":{"bounding":["CAP_X"]}}', "capabilities.bounding[0]"),
    (b'{"args":["true"],"cwd":"/","rlimits":[{"type":"RLIMIT_NOFILE","soft":5,"hard":1}]}', "rlimits[0]"),
    (b'{"args":["true"],"cwd":"/","env":["A"]}', "env[0]"),
    (b'{"args":[],"cwd":"/"}', "args"),
    (("[" * 100_000).encode(), "nested too deeply"),
]


def test_bad_exec_process_json_is_one_clear_line(rt, make_bundle, cid, cgroup_parent, tmp_path):
    tag = new_tag()
    bundle = make_bundle(["sleep", "1000"], edit=lambda c: c["process"]["env"].append(f"PRT_LEAK_TAG={tag}"))
    rt("run", "--detach", "--bundle", str(bundle), cid, env=tagged_env(tag))
    try:
        for n, (data, words) in enumerate(EXEC_CASES):
            path = tmp_path / f"p{n}.json"
            path.write_bytes(data)
            proc = rt("exec", "--process", str(path), cid, check=False, env=tagged_env(tag))
            if proc.returncode == 0:  # only an accepted process may run
                assert not words, f"{data[:60]!r} accepted"
                continue
            assert proc.returncode == 255, (data[:60], proc.returncode, proc.stderr)
            err = one_clear_line(proc)
            assert str(path) in err and words in err, (data[:60], err)
        # nothing of the failed execs stayed in the container
        procs = (Path("/sys/fs/cgroup/pids") / cgroup_parent.lstrip("/") / "b0" / "cgroup.procs").read_text().split()
        assert len(procs) == 1, procs
    finally:
        rt("delete", "--force", cid)
    assert_clean(rt, tag, cgroup_parent, tmp_path)


def test_config_that_is_not_a_regular_file(rt, tmp_path, cid):
    """A FIFO must not hang the runtime, /dev/zero must not be read, a directory is named as such,
    and an oversized file is refused before it is parsed."""
    cases = {"fifo": "not a regular file", "zero": "not a regular file", "dir": "is a directory",
             "huge": "larger than"}
    for name, words in cases.items():
        bundle = tmp_path / name
        bundle.mkdir()
        config = bundle / "config.json"
        if name == "fifo":
            os.mkfifo(config)
        elif name == "zero":
            config.symlink_to("/dev/zero")
        elif name == "dir":
            config.mkdir()
        else:
            with open(config, "wb") as f:
                f.truncate(spec.MAX_CONFIG_BYTES + 1)  # sparse: costs no disk
        proc = rt("create", "--bundle", str(bundle), cid, check=False, timeout=20)
        assert proc.returncode == 1, (name, proc.stderr)
        err = one_clear_line(proc)
        assert words in err and str(config) in err, (name, err)
    assert rt.ids() == []


_CLI_WORDS = ["", "x", "-", "--", "-1", "0", "99999999999999999999", "KILL", "a/b", "..", "/nonexistent",
              "/etc/passwd", "/dev/null", "é", "x" * 300, "json", "-a", "--all", "-f", "--force", "--format",
              "--bundle", "--pid-file", "--console-socket", "--preserve-fds", "--detach", "--tty", "--process",
              "--interval", "--stats", "--memory", "--pids-limit", "-r", "--image-path", "--cgroup", "--user",
              "--env", "--cwd", "1", "SIGKILL", "nope-container"]
_COMMANDS = ["create", "start", "run", "state", "kill", "delete", "list", "features", "exec", "pause", "resume",
             "ps", "events", "update", "checkpoint", "restore"]


def test_random_command_lines_never_crash(rt, tmp_path):
    """Random words after every command: exit 0 or 1, never a traceback, at most one error line."""
    import random

    rng = random.Random(int(os.environ.get("PYRUNTIME_FUZZ_SEED", "8")))
    for _ in range(int(os.environ.get("PYRUNTIME_FUZZ_ARGV", "50"))):
        argv = [rng.choice(_COMMANDS)] + [rng.choice(_CLI_WORDS) for _ in range(rng.randint(0, 4))]
        proc = rt(*argv, check=False, timeout=20, cwd=str(tmp_path))
        assert proc.returncode in (0, 1), (argv, proc.returncode, proc.stderr)
        if proc.returncode == 1:
            one_clear_line(proc)
    assert rt.ids() == []
