"""Buildah 1.28 and `podman build` run their RUN steps with pyruntime (`--runtime PATH --isolation oci`),
and runc as the control, in a private storage (tests/buildah/buildah_env.py).

Buildah's configs list the default capabilities as ambient with an empty inheritable set: the kernel
cannot raise them, runc skips them silently, pyruntime skips them with a warning (security/caps.py).
"""

from __future__ import annotations

import pytest
from buildah_env import ROOTFS, buildah_env_fixture, buildah_fixture, run_output  # noqa: F401 - fixtures

pytestmark = pytest.mark.buildah

# the default capabilities of buildah 1.28 / containers.conf (CHOWN DAC_OVERRIDE FOWNER FSETID KILL
# NET_BIND_SERVICE SETFCAP SETGID SETPCAP SETUID SYS_CHROOT + AUDIT_WRITE MKNOD NET_RAW)
CONTAINERFILE = """\
FROM localhost/pyrt-busybox
ENV GREETING=hello
WORKDIR /work
RUN echo "$GREETING from $(pwd)" > greeting && id -u > uid
RUN ["sh", "-c", "echo step2: $(cat greeting); grep -E '^Cap(Eff|Amb|Inh)' /proc/self/status"]
RUN cat /proc/1/cmdline | tr '\\0' ' '; echo; hostname | wc -c | tr -d ' '
USER 1000:1000
RUN id > /tmp/as-user; touch /work/x 2>/dev/null || echo denied-as-user
"""


def test_bud_run_steps(buildah, tmp_path):
    tag = buildah.tag("bud")
    build = buildah("bud", "-t", tag, str(buildah.context(tmp_path, CONTAINERFILE)))
    out = run_output(build.stdout)
    assert "step2: hello from /work" in out, build.stdout
    assert "CapEff:\t00000000a80425fb" in out and "CapAmb:\t0000000000000000" in out
    assert "denied-as-user" in out
    # the image holds what the RUN steps wrote
    ctr = buildah("from", tag).stdout.strip()
    try:
        got = buildah("run", ctr, "--", "sh", "-c", "cat /work/greeting /work/uid /tmp/as-user").stdout
        assert got.splitlines() == ["hello from /work", "0", "uid=1000(user) gid=1000(user) groups=1000(user)"]
    finally:
        buildah("rm", ctr)
        buildah("rmi", tag)


def test_bud_failing_step(buildah, tmp_path):
    ctx = buildah.context(tmp_path, "FROM localhost/pyrt-busybox\nRUN echo before; exit 3\nRUN echo never\n")
    build = buildah("bud", "-t", buildah.tag("fail"), str(ctx), check=False)
    assert build.returncode != 0
    assert "before" in build.stdout and "never" not in build.stdout
    assert "exit status 3" in build.stderr, build.stderr


def test_bud_same_as_runc(buildah_env, tmp_path):
    """Both runtimes' RUN steps print the same lines (pyruntime's stderr warning aside)."""
    from buildah_env import Buildah

    outs = {}
    for name in ("pyruntime", "runc"):
        b = Buildah(name, buildah_env)
        tag = b.tag("cmp")
        build = b("bud", "-t", tag, str(b.context(tmp_path / name, CONTAINERFILE)))
        b("rmi", tag)
        outs[name] = run_output(build.stdout)
    assert outs["pyruntime"] == outs["runc"]


def test_buildah_run(buildah, tmp_path):
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "in").write_text("from host\n")
    ctr = buildah("from", buildah.image).stdout.strip()
    try:
        assert buildah("run", ctr, "--", "echo", "run-ok").stdout == "run-ok\n"
        assert buildah("run", ctr, "--", "sh", "-c", "exit 4", check=False).returncode == 4
        assert buildah("run", "--user", "1000:1000", "--workingdir", "/tmp", ctr, "--", "sh", "-c",
                       "id -u; pwd").stdout == "1000\n/tmp\n"
        assert buildah("run", "-v", f"{vol}:/data", ctr, "--", "sh", "-c",
                       "cat /data/in; echo back > /data/out").stdout == "from host\n"
        assert (vol / "out").read_text() == "back\n"
        missing = buildah("run", ctr, "--", "no-such-program", check=False)
        assert missing.returncode != 0 and "no-such-program" in missing.stderr
        # what a step wrote stays in the working container
        buildah("run", ctr, "--", "sh", "-c", "echo kept > /kept")
        assert buildah("run", ctr, "--", "cat", "/kept").stdout == "kept\n"
    finally:
        buildah("rm", ctr)


def test_from_scratch_copy_run(buildah):
    ctr = buildah("from", "scratch").stdout.strip()
    tag = buildah.tag("scratch")
    try:
        buildah("copy", ctr, str(ROOTFS), "/")
        buildah("config", "--env", "PATH=/bin:/sbin:/usr/bin", "--cmd", "/bin/sh", ctr)
        assert buildah("run", ctr, "--", "sh", "-c", "echo scratch-ok; [ -x /bin/busybox ] && echo has-busybox"
                       ).stdout == "scratch-ok\nhas-busybox\n"
        buildah("commit", "-q", ctr, tag)
    finally:
        buildah("rm", ctr)
    ctr = buildah("from", tag).stdout.strip()
    try:
        assert buildah("run", ctr, "--", "busybox", "true").returncode == 0
    finally:
        buildah("rm", ctr)
        buildah("rmi", tag)


def test_podman_build(buildah, tmp_path):
    tag = buildah.tag("podman")
    build = buildah.podman("build", "--force-rm", "-t", tag, str(buildah.context(tmp_path, CONTAINERFILE)))
    assert "step2: hello from /work" in run_output(build.stdout), build.stdout
    try:
        run = buildah.podman("run", "--rm", tag, "cat", "/work/greeting", "/tmp/as-user")
        assert run.stdout.splitlines() == ["hello from /work", "uid=1000(user) gid=1000(user) groups=1000(user)"]
    finally:
        buildah.podman("rmi", tag)
