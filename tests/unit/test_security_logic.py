"""Pure logic of the process-security area (issue 3): validation, parsing, the seccomp compiler."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyruntime._native import lib

from pyruntime.errors import ConfigError
from pyruntime.security import caps, lsm, numa, personality, sched, seccomp, sysctl

PODMAN = json.loads((Path(__file__).resolve().parent.parent / "data" / "podman-config.json").read_text())


def raises_at(path: str, fn, *args) -> str:  # noqa: ANN001
    with pytest.raises(ConfigError) as e:
        fn(*args)
    assert e.value.path == path, (e.value.path, str(e.value))
    return e.value.cause


# -- CPU / node lists -----------------------------------------------------------------------------------

def _as_ranges(cpus: set[int]) -> str:
    out, run = [], []
    for c in sorted(cpus):
        if run and c == run[-1] + 1:
            run.append(c)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [c]
    out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


@given(st.sets(st.integers(0, 4095), min_size=1, max_size=50))
def test_cpu_list_round_trip(cpus):
    assert sched.parse_cpu_list(_as_ranges(cpus)) == cpus


@pytest.mark.parametrize("text", ["", "1,", "a", "3-1", "1-", "-1", "0-99999", "1 2"])
def test_bad_cpu_lists(text):
    with pytest.raises(ValueError):
        sched.parse_cpu_list(text)


# -- sysctl ---------------------------------------------------------------------------------------------

ALL_NS = {"ipc": None, "network": None, "uts": None, "mount": None}


@pytest.mark.parametrize("key", ["kernel.shmmax", "kernel.msgmnb", "kernel.sem", "fs.mqueue.queues_max",
                                 "net.ipv4.ip_forward", "net/ipv4/conf/eth0.1/forwarding", "kernel.domainname"])
def test_namespaced_sysctls_pass(key):
    sysctl.check({"linux": {"sysctl": {key: "1"}}}, ALL_NS, "f")


@pytest.mark.parametrize("key,ns,cause", [
    ("kernel.shmmax", {"network": None}, "ipc namespace"),
    ("net.core.somaxconn", {"ipc": None}, "network namespace"),
    ("kernel.pid_max", ALL_NS, "not namespaced"),
    ("kernel.hostname", ALL_NS, "hostname"),
    ("kernel.domainname", {"ipc": None}, "not namespaced"),
    ("../etc/passwd", ALL_NS, "not a valid sysctl name"),
    ("net..x", ALL_NS, "not a valid sysctl name"),
])
def test_sysctls_refused(key, ns, cause):
    assert cause in raises_at(f"linux.sysctl.{key}", sysctl.check, {"linux": {"sysctl": {key: "1"}}}, ns, "f")


def test_sysctl_net_in_the_hosts_netns_is_refused():
    cause = raises_at("linux.sysctl.net.ipv4.ip_forward", sysctl.check,
                      {"linux": {"sysctl": {"net.ipv4.ip_forward": "1"}}}, {"network": "/proc/self/ns/net"}, "f")
    assert "host" in cause


def test_sysctl_names_both_forms():
    assert sysctl.normalize("net/ipv4/conf/eth0.1/forwarding") == "net.ipv4.conf.eth0/1.forwarding"
    assert sysctl.proc_path("net.ipv4.ip_forward") == "net/ipv4/ip_forward"
    assert sysctl.proc_path("net/ipv4/conf/eth0.1/forwarding") == "net/ipv4/conf/eth0.1/forwarding"


# -- seccomp --------------------------------------------------------------------------------------------

def test_podmans_profile_compiles_to_bpf():
    prog = seccomp.compile(PODMAN["linux"]["seccomp"], "f")
    assert len(prog.bpf) % 8 == 0 and len(prog.bpf) > 8 * 400
    assert prog.flags == 0 and not prog.notify


def test_unknown_syscalls_are_skipped_and_repeats_of_the_default_ignored():
    base = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}
    more = dict(base, syscalls=base["syscalls"] + [
        {"names": ["no_such_call_anywhere"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["write"], "action": "SCMP_ACT_ERRNO"}])  # same as the default: nothing to add
    assert seccomp.compile(base, "f").bpf == seccomp.compile(more, "f").bpf


def test_two_conditions_on_one_argument_become_two_rules():
    prof = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO",
            "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]}]}
    assert seccomp.compile(prof, "f").bpf


def test_wait_killable_recv_only_with_a_listener():
    prof = {"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}
    assert seccomp.compile(prof, "f").flags == 0


def test_flags_and_notify():
    prof = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/l.sock",
            "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG"],
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}
    prog = seccomp.compile(prof, "f")
    assert prog.notify and prog.listener_path == "/run/l.sock"
    want = (lib.PR_SECCOMP_FILTER_FLAG_TSYNC | lib.PR_SECCOMP_FILTER_FLAG_LOG
            | lib.PR_SECCOMP_FILTER_FLAG_NEW_LISTENER | lib.PR_SECCOMP_FILTER_FLAG_TSYNC_ESRCH)
    assert prog.flags == want


@pytest.mark.parametrize("profile,path", [
    ({"defaultAction": "SCMP_ACT_NOTIFY"}, "linux.seccomp.defaultAction"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1 << 16}, "linux.seccomp.defaultErrnoRet"),
    ({"defaultAction": "SCMP_ACT_KILL", "defaultErrnoRet": 1}, "linux.seccomp.defaultAction"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["x86_64"]}, "linux.seccomp.architectures[0]"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_NEW_LISTENER"]}, "linux.seccomp.flags[0]"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}]},
     "linux.seccomp.syscalls[0].names"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}]},
     "linux.seccomp.syscalls[0].action"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/l",
      "syscalls": [{"names": ["sendmsg"], "action": "SCMP_ACT_NOTIFY"}]}, "linux.seccomp.syscalls[0].names"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "m"}, "linux.seccomp.listenerMetadata"),
])
def test_bad_profiles_name_the_path(profile, path):
    raises_at(path, seccomp.compile, profile, "f")


def test_errno_and_trace_default_to_eperm():
    a = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}
    b = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                                                          "errnoRet": errno.EPERM}]}
    assert seccomp.compile(a, "f").bpf == seccomp.compile(b, "f").bpf


@pytest.mark.parametrize("process,cap_sets,late", [
    ({"noNewPrivileges": True, "user": {"uid": 1000}}, None, True),
    ({"user": {"uid": 0}}, None, True),
    ({"user": {"uid": 1000}}, None, False),
    # the stub loads it after its own execve: root keeps its bounding set, a user only its ambient set
    ({"user": {"uid": 0}}, {"effective": set(), "bounding": set()}, False),
    ({"user": {"uid": 0}}, {"effective": set(), "bounding": {caps.CAPS["CAP_SYS_ADMIN"]}}, True),
    ({"user": {"uid": 1000}}, {"effective": {caps.CAPS["CAP_SYS_ADMIN"]}, "ambient": set()}, False),
    ({"user": {"uid": 1000}}, {"effective": {caps.CAPS["CAP_SYS_ADMIN"]}, "ambient": {caps.CAPS["CAP_SYS_ADMIN"]}},
     True),
])
def test_when_the_filter_can_be_loaded_late(process, cap_sets, late):
    assert seccomp.can_load_late(process, cap_sets) is late


def test_features_lists_what_compile_accepts():
    f = seccomp.features()
    assert set(f["actions"]) == set(seccomp.ACTIONS) and "SCMP_ARCH_X86_64" in f["archs"]
    assert set(f["supportedFlags"]) <= set(f["knownFlags"])


# -- capabilities, scheduler, numa, personality, LSM --------------------------------------------------

def test_capability_table_matches_the_kernel_headers():
    for name, num in caps.CAPS.items():
        assert lib.pr_cap_value(name.encode()) in (num, -1), name  # -1: headers older than the cap
    assert lib.pr_cap_value(b"CAP_CHOWN") == 0 and lib.pr_cap_value(b"CAP_NOPE") == -1


def test_capability_subsets():
    ok = caps.resolve_sets({"bounding": ["CAP_KILL"], "permitted": ["CAP_KILL"], "effective": ["kill"],
                            "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL"]}, "f", "process.capabilities")
    assert ok["ambient"] == {caps.CAPS["CAP_KILL"]}
    raises_at("process.capabilities.inheritable[0]", caps.resolve_sets,
              {"bounding": [], "inheritable": ["CAP_KILL"]}, "f", "process.capabilities")


def test_ambient_capabilities_the_kernel_cannot_raise_are_skipped_with_a_warning(capfd):
    """Buildah's configs list ambient capabilities with an empty inheritable set: runc skips them."""
    got = caps.resolve_sets({"bounding": ["CAP_KILL", "CAP_CHOWN"], "permitted": ["CAP_KILL", "CAP_CHOWN"],
                             "effective": ["CAP_KILL"], "inheritable": ["CAP_KILL"],
                             "ambient": ["CAP_CHOWN", "CAP_KILL"]}, "f", "process.capabilities")
    assert got["ambient"] == {caps.CAPS["CAP_KILL"]}
    err = capfd.readouterr().err
    assert "process.capabilities.ambient[0]: CAP_CHOWN" in err and "skipped" in err and "CAP_KILL" not in err


def test_scheduler_checks():
    sched.check_scheduler({"policy": "SCHED_RR", "priority": 1}, "f", "p")
    sched.check_scheduler({"policy": "SCHED_DEADLINE", "runtime": 1, "deadline": 2}, "f", "p")
    raises_at("p.runtime", sched.check_scheduler, {"policy": "SCHED_OTHER", "runtime": 5}, "f", "p")
    raises_at("p", sched.check_scheduler, {"policy": "SCHED_DEADLINE", "runtime": 5}, "f", "p")


def test_numa_and_personality_checks():
    numa.check({"mode": "MPOL_PREFERRED"}, "f", "m")  # empty nodes: the local node
    numa.check({"mode": "MPOL_INTERLEAVE", "nodes": "0-3", "flags": ["MPOL_F_STATIC_NODES"]}, "f", "m")
    raises_at("m.nodes", numa.check, {"mode": "MPOL_BIND", "nodes": "0-5000"}, "f", "m")
    personality.check({"domain": "LINUX32"}, "f", "p")
    raises_at("p.domain", personality.check, {"domain": "linux"}, "f", "p")


def test_lsm_checks_follow_the_host():
    if not lsm.selinux_enabled():
        raises_at("process.selinuxLabel", lsm.check_process, {"selinuxLabel": "x"}, "f", "process")
    lsm.check_process({"apparmorProfile": "p"}, "f", "process")  # never an error: ignored when off


# -- hostile input: every validator either accepts or raises ConfigError ------------------------------

_words = st.sampled_from(["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_LOG",
                          "SCMP_ACT_KILL", "bogus", "", "SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64", "SCMP_CMP_EQ",
                          "SCMP_CMP_MASKED_EQ", "SECCOMP_FILTER_FLAG_TSYNC", "mkdir", "write", "read"])
_text = st.one_of(_words, st.text(max_size=12))
_arg = st.fixed_dictionaries({"index": st.integers(0, 5), "value": st.integers(0, 2**64 - 1),
                              "op": _text}, optional={"valueTwo": st.integers(0, 2**64 - 1)})
_rule = st.fixed_dictionaries({"names": st.lists(_text, max_size=4), "action": _text},
                              optional={"errnoRet": st.integers(0, 2**32 - 1), "args": st.lists(_arg, max_size=3)})
_profile = st.fixed_dictionaries(
    {"defaultAction": _text},
    optional={"defaultErrnoRet": st.integers(0, 2**32 - 1), "architectures": st.lists(_text, max_size=3),
              "flags": st.lists(_text, max_size=3), "syscalls": st.lists(_rule, max_size=4),
              "listenerPath": _text, "listenerMetadata": _text})


@given(_profile)
def test_any_seccomp_profile_compiles_or_is_refused_cleanly(profile):
    try:
        prog = seccomp.compile(profile, "f")
    except ConfigError as e:
        assert e.path.startswith("linux.seccomp")
    else:
        assert len(prog.bpf) % 8 == 0


@given(st.dictionaries(_text, st.text(max_size=5), max_size=3),
       st.fixed_dictionaries({"policy": _text}, optional={"priority": st.integers(-5, 200),
                             "nice": st.integers(-20, 19), "flags": st.lists(_text, max_size=2),
                             "runtime": st.integers(0, 10**9), "deadline": st.integers(0, 10**9)}),
       st.fixed_dictionaries({"mode": _text}, optional={"nodes": _text, "flags": st.lists(_text, max_size=2)}))
def test_other_validators_refuse_cleanly(sysctls, scheduler, policy):
    for fn, args in ((sysctl.check, ({"linux": {"sysctl": sysctls}}, ALL_NS, "f")),
                     (sched.check_scheduler, (scheduler, "f", "process.scheduler")),
                     (numa.check, (policy, "f", "linux.memoryPolicy"))):
        try:
            fn(*args)
        except ConfigError:
            pass
