"""cgroup value conversions (runc/crun's), update flag parsing and device-rule validation."""

from __future__ import annotations

import pytest

from pyruntime.cgroup_commands import build_update, parse_interval, parse_size
from pyruntime.cgroups import devices
from pyruntime.cgroups.base import blkio_weight_to_io_weight, shares_to_weight, swap_to_v2
from pyruntime.errors import ConfigError, RuntimeFailure


@pytest.mark.parametrize("shares,weight", [(2, 1), (1024, 39), (262144, 10000), (0, 0)])
def test_shares_to_weight_matches_runc(shares, weight):
    assert shares_to_weight(shares) == weight


@pytest.mark.parametrize("blkio,io", [(10, 1), (1000, 10000), (500, 4950)])
def test_blkio_weight_to_io_weight(blkio, io):
    assert blkio_weight_to_io_weight(blkio) == io


@pytest.mark.parametrize("swap,limit,expect", [
    (0, -1, -1),            # unlimited memory, swap unset: unlimited swap
    (-1, 64, -1),
    (0, 64, None),          # unset
    (128, 64, 64),          # the spec's memory+swap total minus memory
    (64, 64, 0),            # same value: no swap
])
def test_swap_to_v2(swap, limit, expect):
    assert swap_to_v2(swap, limit) == expect


@pytest.mark.parametrize("swap,limit", [(32, 64), (128, 0), (128, -1)])
def test_swap_to_v2_rejects(swap, limit):
    with pytest.raises(ValueError):
        swap_to_v2(swap, limit)


@pytest.mark.parametrize("text,value", [("1024", 1024), ("64m", 64 << 20), ("1g", 1 << 30), ("2k", 2048),
                                        ("-1", -1), ("1.5m", 3 << 19), ("512MB", 512 << 20), ("1GiB", 1 << 30)])
def test_parse_size(text, value):
    assert parse_size(text, "memory") == value


def test_parse_size_rejects_garbage():
    with pytest.raises(RuntimeFailure, match="--memory"):
        parse_size("lots", "memory")


@pytest.mark.parametrize("text,value", [("5s", 5), ("500ms", 0.5), ("1m", 60), ("2", 2)])
def test_parse_interval(text, value):
    assert parse_interval(text) == value


def test_build_update_from_flags_and_file(tmp_path):
    f = tmp_path / "r.json"
    f.write_text('{"memory": {"limit": 1000000}, "cpu": {"shares": 512}}')
    flags = {"pids_limit": "50", "memory": "64m", "cpuset_cpus": "0-1"}
    res, source = build_update(str(f), flags)
    assert res == {"memory": {"limit": 1000000}, "cpu": {"shares": 512}}  # as runc: the file alone counts
    assert build_update(None, dict(flags, cpu_shares="0"))[0] == {
        "memory": {"limit": 64 << 20}, "cpu": {"cpus": "0-1"}, "pids": {"limit": 50}}  # 0: unchanged (runc)
    assert source == str(f)


def test_build_update_validates_the_file(tmp_path):
    f = tmp_path / "r.json"
    f.write_text('{"memory": {"limit": "lots"}}')
    with pytest.raises(ConfigError, match=r"linux\.resources\.memory\.limit"):
        build_update(str(f), {})


def test_device_rules_order_and_defaults():
    rules = devices.rules({"devices": [{"allow": False, "access": "rwm"},
                                       {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "wr"}]},
                          [{"type": "c", "path": "/dev/fuse", "major": 10, "minor": 229}], "config.json")
    assert [r.v1() for r in rules[:2]] == ["a", "c 1:11 rw"]  # linux.devices adds no rule (runc)
    assert rules[2:] == devices.DEFAULT_ALLOW


@pytest.mark.parametrize("rule,path", [({"allow": True, "type": "x"}, "type"),
                                       ({"allow": True, "access": "xyz"}, "access")])
def test_device_rules_reject_bad_values(rule, path):
    with pytest.raises(ConfigError, match=rf"linux\.resources\.devices\[0\]\.{path}"):
        devices.rules({"devices": [rule]}, None, "config.json")


def test_build_update_matches_keys_as_go_does(tmp_path):
    """runc decodes --resources with Go's encoding/json: field names match case-insensitively, and a
    second spelling of an object merges into the first."""
    f = tmp_path / "r.json"
    f.write_text('{"cpu": {"shares": 100}, "CPU": {"Cpus": "1"}, "Pids": {"LIMIT": 5}, "unified": {"Cpu.Max": "x"}}')
    res, _ = build_update(str(f), {})
    assert res == {"cpu": {"shares": 100, "cpus": "1"}, "pids": {"limit": 5}, "unified": {"Cpu.Max": "x"}}


def test_device_access_letters_runc_ignores():
    rules = devices.rules({"devices": [{"allow": False, "type": "c", "major": 1, "minor": 11, "access": "rwa"}]},
                          None, "config.json")
    assert rules[0].v1() == "c 1:11 rw"
