"""config.json validation (spec.py + schema.py): pure logic, no root, no containers."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyruntime import spec
from pyruntime.errors import ConfigError

FILE = "/bundle/config.json"
DATA = Path(__file__).resolve().parent.parent / "data"


def minimal() -> dict:
    return {"ociVersion": "1.3.0", "root": {"path": "rootfs"},
            "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]}}


def error_of(config) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        spec.check_config(config, FILE)
    return info.value


def test_minimal_config_is_valid():
    spec.check_config(minimal(), FILE)


def test_default_spec_is_valid():
    spec.check_config(spec.default_spec(), FILE)
    spec.check_config(spec.default_spec(rootless=True), FILE)


def test_podman_config_is_valid():
    config = json.loads((DATA / "podman-config.json").read_text())
    spec.check_config(config, FILE)


@pytest.mark.parametrize("version", ["1.0.0", "1.0.1", "1.0.2-dev", "1.1.0", "1.1.0-rc.1", "1.2.0", "1.2.1",
                                     "1.3.0", "1.3.9"])
def test_accepted_versions(version):
    config = minimal()
    config["ociVersion"] = version
    spec.check_config(config, FILE)


@pytest.mark.parametrize("version", ["2.0.0", "0.6.0", "1.4.0", "1.10.0", "1", "1.0", "v1.0.0", "", "latest",
                                     "1.0.0 ", "01.0.0"])
def test_refused_versions(version):
    config = minimal()
    config["ociVersion"] = version
    e = error_of(config)
    assert e.path == "ociVersion" and "unsupported version" in e.cause


def test_error_message_is_one_line_with_file_and_path():
    config = minimal()
    config["process"]["user"]["uid"] = "root"
    e = error_of(config)
    assert str(e) == f"{FILE}: process.user.uid: expected an integer, got a string"
    assert "\n" not in str(e)


@pytest.mark.parametrize("mutate, path, cause", [
    (lambda c: c.pop("ociVersion"), "ociVersion", "required field is missing"),
    (lambda c: c.pop("root"), "root", "required field is missing"),
    (lambda c: c["root"].pop("path"), "root.path", "required field is missing"),
    (lambda c: c.pop("process"), "process", "required field is missing"),
    (lambda c: c["process"].pop("cwd"), "process.cwd", "required field is missing"),
    (lambda c: c["process"].update(args=[]), "process.args", "at least the program"),
    (lambda c: c["process"].update(args="sh"), "process.args", "expected an array, got a string"),
    (lambda c: c["process"].update(args=["sh", None]), "process.args[1]", "expected a string, got null"),
    (lambda c: c["process"].update(cwd="tmp"), "process.cwd", "absolute"),
    (lambda c: c["process"].update(env=["A=1", "B"]), "process.env[1]", "KEY=value"),
    (lambda c: c["process"].update(terminal=1), "process.terminal", "expected a boolean, got an integer"),
    (lambda c: c["process"]["user"].update(uid=2**32), "process.user.uid", "out of range"),
    (lambda c: c["process"]["user"].update(gid=-1), "process.user.gid", "out of range"),
    (lambda c: c["process"]["user"].update(uid=True), "process.user.uid", "expected an integer, got a boolean"),
    (lambda c: c["process"]["user"].update(additionalGids=[1, "2"]), "process.user.additionalGids[1]", "integer"),
    (lambda c: c["process"].update(rlimits=[{"type": "RLIMIT_X", "soft": 1, "hard": 1}]),
     "process.rlimits[0].type", "unknown rlimit"),
    (lambda c: c["process"].update(rlimits=[{"type": "RLIMIT_NOFILE", "soft": 2, "hard": 1}]),
     "process.rlimits[0]", "above the hard limit"),
    (lambda c: c["process"].update(rlimits=[{"type": "RLIMIT_NOFILE", "soft": 1}]),
     "process.rlimits[0].hard", "required"),
    (lambda c: c["process"].update(oomScoreAdj=1001), "process.oomScoreAdj", "out of range"),
    (lambda c: c["root"].update(readonly="true"), "root.readonly", "expected a boolean"),
    (lambda c: c.update(hostname="a\x00b"), "hostname", "NUL"),
    (lambda c: c.update(hostname=5), "hostname", "expected a string"),
    (lambda c: c.update(annotations=[]), "annotations", "expected an object"),
    (lambda c: c.update(annotations={"k": 1}), "annotations.k", "expected a string"),
    (lambda c: c.update(mounts=[{"type": "tmpfs"}]), "mounts[0].destination", "required"),
    (lambda c: c.update(mounts=[{"destination": "/x", "options": "ro"}]), "mounts[0].options", "array"),
    (lambda c: c["linux"].update(namespaces=[{"type": "pid"}, {"type": "pid"}]), "linux.namespaces[1].type",
     "given twice"),
    (lambda c: c["linux"].update(namespaces=[{"type": "bogus"}]), "linux.namespaces[0].type", "unknown"),
    (lambda c: c["linux"].update(namespaces=[{"type": "network", "path": "run/netns/x"}]),
     "linux.namespaces[0].path", "absolute"),
    (lambda c: c["linux"].update(namespaces=[{"path": "/x"}]), "linux.namespaces[0].type", "required"),
    (lambda c: c["linux"].update(timeOffsets={"monotonic": {"secs": 1}}), "linux.timeOffsets", "time namespace"),
    (lambda c: c["linux"].update(timeOffsets={"monotonic": {"secs": "1"}}), "linux.timeOffsets.monotonic.secs",
     "integer"),
    (lambda c: c["linux"].update(rootfsPropagation="weird"), "linux.rootfsPropagation", "unknown propagation"),
    (lambda c: c["linux"].update(maskedPaths=["proc/kcore"]), "linux.maskedPaths[0]", "absolute"),
    (lambda c: c["linux"].update(readonlyPaths=[1]), "linux.readonlyPaths[0]", "string"),
    (lambda c: c["linux"].update(devices=[{"type": "z", "path": "/dev/z", "major": 1, "minor": 1}]),
     "linux.devices[0].type", "unknown device type"),
    (lambda c: c["linux"].update(devices=[{"type": "c", "path": "/tmp/../z", "major": 1, "minor": 1}]),
     "linux.devices[0].path", "'..'"),
    (lambda c: c["linux"].update(devices=[{"type": "c", "path": "z", "major": 1, "minor": 1}]),
     "linux.devices[0].path", "absolute"),
    (lambda c: c["linux"].update(devices=[{"type": "b", "path": "/dev/z"}]), "linux.devices[0]", "major and minor"),
    (lambda c: c["linux"].update(devices=[{"type": "c", "path": "/dev/z", "major": 1, "minor": 1,
                                           "fileMode": -1}]), "linux.devices[0].fileMode", "out of range"),
    (lambda c: c.update(hooks={"prestart": [{"path": "hook"}]}), "hooks.prestart[0].path", "absolute"),
    (lambda c: c.update(hooks={"poststop": [{"path": "/h", "timeout": 0}]}), "hooks.poststop[0].timeout",
     "out of range"),
    (lambda c: c.update(hooks={"createRuntime": {"path": "/h"}}), "hooks.createRuntime", "expected an array"),
])
def test_errors_name_the_json_path(mutate, path, cause):
    config = minimal()
    mutate(config)
    e = error_of(config)
    assert e.file == FILE
    assert e.path == path, str(e)
    assert cause in e.cause, str(e)


def test_unknown_fields_and_nulls_are_accepted():
    config = minimal()
    config["futureTopLevel"] = {"a": 1}
    config["process"]["futureField"] = [1]
    config["hostname"] = None
    config["linux"]["seccomp"] = None
    spec.check_config(config, FILE)


def test_namespaces_mapping():
    config = minimal()
    config["linux"]["namespaces"] = [{"type": "pid"}, {"type": "network", "path": "/run/netns/x"},
                                     {"type": "uts", "path": ""}]
    assert spec.namespaces(config) == {"pid": None, "network": "/run/netns/x", "uts": None}
    assert spec.namespaces({"process": {}}) == {}


# -- load_json ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("data, cause", [
    (b"", "invalid JSON at line 1 column 1"),
    (b"{\n  \"a\": ,\n}", "invalid JSON at line 2"),
    (b"\xff\xfe{}", "invalid UTF-8 at byte 0"),
    (b'{"a": "\xc3"}', "invalid UTF-8 at byte 7"),
    (b"[" * 200000 + b"]" * 200000, "nested too deeply"),
])
def test_load_json_errors(tmp_path, data, cause):
    path = tmp_path / "config.json"
    path.write_bytes(data)
    with pytest.raises(ConfigError) as info:
        spec.load_json(str(path))
    assert info.value.file == str(path) and cause in info.value.cause


def test_load_json_missing_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        spec.load_json(str(tmp_path / "nope.json"))
    assert "not found" in info.value.cause


def test_load_json_directory(tmp_path):
    with pytest.raises(ConfigError) as info:
        spec.load_json(str(tmp_path))
    assert "cannot read" in info.value.cause


def test_load_config_round_trip(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(spec.default_spec()))
    assert spec.load_config(str(tmp_path))["root"]["path"] == "rootfs"


# -- hostile input: the validator never fails with anything but ConfigError --------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20)

KEYS = ["ociVersion", "root", "process", "mounts", "hostname", "hooks", "annotations", "linux"]


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), json_values, max_size=8))
def test_arbitrary_top_level_values(config):
    try:
        spec.check_config(config, FILE)
    except ConfigError as e:
        assert "\n" not in str(e)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["process", "root", "linux", "hooks"]), st.text(max_size=12), json_values)
def test_arbitrary_values_inside_sections(section, key, value):
    config = copy.deepcopy(minimal())
    config.setdefault(section, {})
    if isinstance(config[section], dict):
        config[section][key] = value
    try:
        spec.check_config(config, FILE)
    except ConfigError as e:
        assert "\n" not in str(e) or "\n" in key


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["args", "env", "cwd", "user", "rlimits", "capabilities", "terminal"]), json_values)
def test_arbitrary_process_fields(field, value):
    config = minimal()
    config["process"][field] = value
    try:
        spec.check_config(config, FILE)
    except ConfigError:
        pass
