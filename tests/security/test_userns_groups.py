"""A faked /proc/self must not change what the init decides: whether setgroups() is allowed is read
from the host's /proc before pivot_root. Otherwise a bind mount over /proc/1 saying "deny" would
make the init skip setgroups() and the container's process keep the runtime's own groups."""

from __future__ import annotations

from _attack import evil_rootfs, host_untouched, userns_rootfs  # noqa: F401 - fixtures


def test_fake_setgroups_in_a_mount_over_proc_self(rt, make_bundle, userns_rootfs, cid):
    fake = userns_rootfs.parent / "fake-proc-1"
    fake.mkdir()
    (fake / "setgroups").write_text("deny\n")
    fake.chmod(0o755)

    def edit(config: dict) -> None:
        config["root"] = {"path": str(userns_rootfs), "readonly": True}
        config["linux"]["namespaces"].append({"type": "user"})
        config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        config["mounts"] = [m for m in config["mounts"] if m["type"] not in ("sysfs", "mqueue")]
        config["mounts"].append({"destination": "/proc/self", "type": "bind", "source": str(fake),
                                 "options": ["rbind"]})
        config["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [7]}

    proc = rt("run", "--bundle", str(make_bundle(["sh", "-c", "echo Groups: $(id -G); "
                                                  "cat /proc/self/setgroups"], edit=edit)), cid, check=False)
    if proc.returncode == 0:
        lines = proc.stdout.splitlines()
        assert lines[0].split() == ["Groups:", "1000", "7"], proc.stdout  # what was asked, no host group
    else:  # refused is fine too; running with the runtime's groups is not
        assert "Traceback" not in proc.stderr and rt.ids() == [], proc.stderr
