"""exec's option handling without a container: --user parsing, the process built from runc's flags,
--cgroup sub-paths."""

from __future__ import annotations

import pytest

from pyruntime.errors import ConfigError, RuntimeFailure
from pyruntime.exec_ import ExecOptions, _cgroup_paths, build_process, parse_user
from pyruntime.state import Container


@pytest.mark.parametrize("value,expected", [("0", (0, None)), ("1000", (1000, None)), ("1000:1001", (1000, 1001)),
                                            ("0:0", (0, 0)), ("4294967294:4294967294", (4294967294, 4294967294)),
                                            ("007", (7, None))])
def test_parse_user_accepts_decimal_ids(value, expected):
    assert parse_user(value) == expected


@pytest.mark.parametrize("value", ["", "root", "1000abc", "abc1000", "1000:", ":1000", ":", "-1", "+1", "0x10",
                                   " 1", "1 ", "1\n", "1:2:3", "4294967295", "1:4294967295", "99999999999",
                                   "1000:nogroup", "\u0661\u0662", "1_000", "1.0", "1e3"])
def test_parse_user_refuses_everything_else(value):
    with pytest.raises(RuntimeFailure, match="--user"):
        parse_user(value)


def _container(**process: object) -> Container:
    base = {"args": ["sleep", "1"], "cwd": "/", "env": ["PATH=/bin", "A=1"], "user": {"uid": 0, "gid": 5},
            "terminal": True, "consoleSize": {"height": 1, "width": 2}, "noNewPrivileges": True,
            "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]}}
    base.update(process)
    return Container(id="c", root="/nonexistent", config={"process": base})


def test_flags_override_the_containers_process():
    opts = ExecOptions(args=["sh", "-c", "x"], env=["B=2", "A=3"], cwd="/tmp", user="7", additional_gids=["8,9"],
                       caps=["CAP_NET_RAW"])
    process, _ = build_process(_container(), opts)
    assert process["args"] == ["sh", "-c", "x"]
    assert process["env"] == ["PATH=/bin", "A=1", "B=2", "A=3"]
    assert process["cwd"] == "/tmp"
    assert process["user"] == {"uid": 7, "gid": 5, "additionalGids": [8, 9]}
    assert process["terminal"] is False and "consoleSize" not in process  # -t is exec's own choice
    caps = process["capabilities"]
    assert all("CAP_NET_RAW" in caps[k] for k in ("bounding", "effective", "permitted"))
    assert "inheritable" not in caps and "ambient" not in caps  # nothing inheritable unless asked
    assert process["noNewPrivileges"] is True


def test_cap_flag_adds_ambient_only_with_an_inheritable_set():
    c = _container(capabilities={"inheritable": ["CAP_KILL"], "permitted": ["CAP_KILL"]})
    process, _ = build_process(c, ExecOptions(args=["true"], caps=["CAP_CHOWN"]))
    assert process["capabilities"]["ambient"] == ["CAP_CHOWN"]


def test_command_is_required_and_exclusive_with_process_file(tmp_path):
    with pytest.raises(RuntimeFailure, match="required"):
        build_process(_container(), ExecOptions())
    f = tmp_path / "p.json"
    f.write_text('{"cwd": "/", "args": ["true"]}')
    with pytest.raises(RuntimeFailure, match="not both"):
        build_process(_container(), ExecOptions(process_file=str(f), args=["true"]))


def test_process_file_takes_unset_security_fields_from_the_container(tmp_path):
    f = tmp_path / "p.json"
    f.write_text('{"cwd": "/", "args": ["true"], "terminal": true}')
    process, file = build_process(_container(), ExecOptions(process_file=str(f)))
    assert file == str(f)
    assert process["capabilities"]["bounding"] == ["CAP_KILL"]
    assert process["terminal"] is True


@pytest.mark.parametrize("cwd", ["/proc/self/fd/3", "/proc/thread-self/fd", "/proc/12/fd/0", "/proc/self/task/1/fd/2",
                                 "/proc/self/fd/../fd/3"])
def test_cwd_through_proc_fd_is_refused(cwd):
    with pytest.raises(ConfigError, match="file descriptor path"):
        build_process(_container(), ExecOptions(args=["true"], cwd=cwd))


def test_cgroup_sub_paths(tmp_path):
    v1 = tmp_path / "pids"
    (v1 / "ctr" / "sub").mkdir(parents=True)
    uni = tmp_path / "unified"
    (uni / "ctr" / "sub").mkdir(parents=True)
    paths = {str(v1): str(v1 / "ctr"), str(uni): str(uni / "ctr")}
    assert _cgroup_paths(paths, []) == paths
    assert _cgroup_paths(paths, ["sub"]) == {str(v1): str(v1 / "ctr" / "sub"), str(uni): str(uni / "ctr" / "sub")}
    assert _cgroup_paths(paths, ["pids:sub"]) == {str(v1): str(v1 / "ctr" / "sub"), str(uni): str(uni / "ctr")}
    assert _cgroup_paths(paths, ["/"]) == paths  # runc: the container's own
    assert _cgroup_paths(paths, ["pids:missing"])[str(v1)] == str(v1 / "ctr" / "missing")  # fails at the join
    for bad in ("../x", "pids:..", "memory:sub", "pids:a:b"):
        with pytest.raises(RuntimeFailure, match="--cgroup"):
            _cgroup_paths(paths, [bad])
    with pytest.raises(RuntimeFailure, match="missing <controller>: prefix"):
        _cgroup_paths(paths, ["sub", "pids:sub"])
