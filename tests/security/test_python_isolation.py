"""The runtime is a Python program: imports read files by path and PYTHON* variables steer the
interpreter. No code planted in the container's rootfs (at the paths of the runtime's own sys.path,
or as a library the loader or libc would pick up) and no PYTHON* variable, from config.json or from
the caller's environment, may ever run or change what the runtime does."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from _attack import evil_bundle, evil_rootfs, host_untouched  # noqa: F401 - fixtures

POISON_PY = """import os
for d in {dirs!r}:
    try:
        open(os.path.join(d, {name!r}), "w").close()
    except OSError:
        pass
"""
POISON_C = r"""
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
__attribute__((constructor)) static void poison(void)
{
    const char *dirs[] = {%s};
    for (unsigned i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        char p[4096];
        strcpy(p, dirs[i]);
        strcat(p, "/so-ran");
        close(open(p, O_WRONLY | O_CREAT, 0644));
    }
}
/* an NSS module's entry points, in case one is looked up */
int _nss_evil_getpwnam_r(void) { return 0; }
int _nss_evil_getpwuid_r(void) { return 0; }
int _nss_evil_getgrgid_r(void) { return 0; }
int _nss_evil_initgroups_dyn(void) { return 0; }
"""
MODULES = ["json", "re", "click", "prctl", "socket", "encodings", "codecs", "pickle", "inspect", "ast",
           "locale", "gettext", "ctypes", "subprocess", "signal", "struct", "shlex", "tempfile", "uuid",
           "sitecustomize", "usercustomize", "_pyruntime_probe"]
EXT_MODULES = ["_json", "_struct", "math", "select", "_socket", "binascii", "_hashlib", "zlib", "unicodedata",
               "_ctypes", "_posixsubprocess", "array", "_random", "_bisect", "_heapq", "_contextvars"]


def runtime_sys_path() -> list[str]:
    """Every directory the runtime imports from (its sys.path, its package, the stdlib)."""
    import pyruntime

    code = "import sys, json; print(json.dumps(sys.path))"
    paths = json.loads(subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True,
                                      check=True).stdout)
    pkg = os.path.dirname(os.path.realpath(pyruntime.__file__))
    paths += [os.path.dirname(pkg), pkg, sysconfig.get_path("stdlib"), sysconfig.get_path("platstdlib"),
              os.path.join(sysconfig.get_path("platstdlib"), "lib-dynload")]
    return sorted({os.path.realpath(p) for p in paths if p and os.path.isabs(p)})


def plant_poison(rootfs: Path, marks: Path, poison_so: Path) -> list[Path]:
    """Poisoned modules at the runtime's own import paths inside the rootfs; each, if ever run, leaves
    a file in `marks` (which exists both on the host and, at the same path, inside the rootfs)."""
    inside_marks = rootfs / str(marks).lstrip("/")
    inside_marks.mkdir(parents=True, exist_ok=True)
    dirs = [str(marks)]
    pkg_dirs = []
    ext = sysconfig.get_config_var("EXT_SUFFIX")
    for d in runtime_sys_path():
        where = rootfs / d.lstrip("/")
        where.mkdir(parents=True, exist_ok=True)
        for mod in MODULES:
            (where / f"{mod}.py").write_text(POISON_PY.format(dirs=dirs, name=f"{mod}-ran"))
            pkg = where / f"{mod}pkg"
            pkg_dirs.append(pkg)
        enc = where / "encodings"
        enc.mkdir(exist_ok=True)
        for name in ("__init__", "utf_8", "latin_1", "ascii", "idna", "aliases", "cp437"):
            (enc / f"{name}.py").write_text(POISON_PY.format(dirs=dirs, name=f"encodings.{name}-ran"))
        for mod in EXT_MODULES:
            (where / f"{mod}{ext}").write_bytes(poison_so.read_bytes())
        if d.endswith("/pyruntime"):  # the runtime's own package: modules it imports lazily
            for rel in ("security/seccomp.py", "console.py", "namespaces.py", "hooks.py", "security/sealed.py",
                        "network.py", "rootfs/devices.py", "__init__.py"):
                (where / rel).parent.mkdir(parents=True, exist_ok=True)
                (where / rel).write_text(POISON_PY.format(dirs=dirs, name=rel.replace("/", ".") + "-ran"))
    # libc's lookups: an NSS module and the loader's preload file
    (rootfs / "etc").mkdir(exist_ok=True)
    (rootfs / "etc/nsswitch.conf").write_text("passwd: evil\ngroup: evil\nhosts: evil\n")
    for libdir in ("lib", "lib64", "usr/lib", "lib/x86_64-linux-gnu", "lib/aarch64-linux-gnu",
                   "usr/lib/x86_64-linux-gnu", "usr/lib/aarch64-linux-gnu"):
        (rootfs / libdir).mkdir(parents=True, exist_ok=True)
        (rootfs / libdir / "libnss_evil.so.2").write_bytes(poison_so.read_bytes())
    (rootfs / "etc/ld.so.preload").write_text("/lib/libnss_evil.so.2\n")
    return [marks, inside_marks]


@pytest.fixture
def poison_so(tmp_path: Path) -> Path:
    marks = tmp_path / "marks"
    src = tmp_path / "poison.c"
    src.write_text(POISON_C % f'"{marks}"')
    out = tmp_path / "poison.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(out), str(src)], check=True)
    return out


def ran(mark_dirs: list[Path]) -> list[str]:
    return sorted(str(p) for d in mark_dirs if d.is_dir() for p in d.iterdir())


def test_import_barrier_refuses_every_import(tmp_path, poison_so):
    """The barrier the init raises after pivot_root: with a poisoned module first on sys.path, every
    import (new module, stdlib module not yet loaded, extension module) fails and nothing runs."""
    marks = tmp_path / "marks"
    marks.mkdir()
    (tmp_path / "_pyruntime_probe.py").write_text(POISON_PY.format(dirs=[str(marks)], name="probe-ran"))
    code = f"""
import sys
sys.path.insert(0, {str(tmp_path)!r})
from pyruntime.process.init import block_imports
block_imports()
failed = []
for name in ("_pyruntime_probe", "wave", "csv", "_bisect", "xml.dom"):
    try:
        __import__(name)
    except ImportError:
        failed.append(name)
import os  # already loaded: allowed
print(",".join(failed))
"""
    proc = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "_pyruntime_probe,wave,csv,_bisect,xml.dom"
    assert ran([marks]) == []
    # control: without the barrier the same import runs the poison (the test can fail)
    subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(tmp_path)!r}); "
                    "import _pyruntime_probe"], check=True)
    assert ran([marks]) == [str(marks / "probe-ran")]


def _rich_config(hook_marks: Path):  # noqa: ANN202 - a config that walks most of the init's code
    def edit(config: dict) -> None:
        p = config["process"]
        p["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [5, 6], "umask": 0o027}
        p["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 512}]
        p["oomScoreAdj"] = 100
        p["env"] += ["LANG=xx_XX.ISO-8859-15", "LC_ALL=xx_XX.ISO-8859-15", "PYTHONPATH=/", "PYTHONINSPECT=1"]
        p["cwd"] = "/tmp"
        p["capabilities"]["inheritable"] = ["CAP_KILL"]
        p["capabilities"]["ambient"] = ["CAP_KILL"]
        config["domainname"] = "evil.example"
        config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
        config["linux"]["maskedPaths"] += ["/proc/acpi", "/no/such/path"]
        config["annotations"] = {"é": "ü"}
        hook = {"path": "/bin/sh", "args": ["sh", "-c", f"touch {hook_marks}/$0", "hook"]}
        config["hooks"] = {"createContainer": [hook], "startContainer": [
            {"path": "/bin/sh", "args": ["sh", "-c", "true"]}]}

    return edit


def test_poisoned_rootfs_at_the_runtimes_sys_path_never_runs(rt, evil_bundle, evil_rootfs, tmp_path, poison_so,
                                                               cid):
    """The rootfs holds poisoned copies of the modules (pure and extension) the runtime imports, at
    the very paths of its sys.path and package, an NSS module and /etc/ld.so.preload. The init, with a
    config that walks most of its code (user change, groups, rlimits, sysctls, hooks, masked paths,
    capabilities, a locale the stdlib would look up), and `exec` into the container run no code
    from the rootfs."""
    marks = tmp_path / "marks"
    marks.mkdir()
    mark_dirs = plant_poison(evil_rootfs, marks, poison_so)
    hook_marks = tmp_path / "hook-marks"
    hook_marks.mkdir()
    (evil_rootfs / str(hook_marks).lstrip("/")).mkdir(parents=True)
    bundle = evil_bundle(["sh", "-c", "echo ran as $(id -u):$(id -g); sleep 30"], edit=_rich_config(hook_marks))
    rt("create", "--bundle", str(bundle), cid)
    try:
        rt("start", cid)
        proc = rt("exec", "--user", "1000:1000", "--cwd", "/", "--env", "PYTHONPATH=/", cid, "id", "-u", check=False)
        assert proc.returncode == 0 and proc.stdout.strip() == "1000", proc.stderr
    finally:
        rt("delete", "--force", cid)
    assert ran(mark_dirs) == [], "poisoned code ran"
    # the createContainer hook ran (the init did get that far, so the poison had its chance)
    assert [p.name for p in hook_marks.iterdir()] == ["hook"]


def test_python_variables_in_the_callers_environment_are_ignored(rt, make_bundle, tmp_path, cid):
    """PYTHONPATH (with a poisoned encodings, re, json, click, site hooks), PYTHONSTARTUP,
    PYTHONINSPECT, PYTHONHOME and friends in the runtime's own environment change nothing."""
    with open(rt.binary) as f:
        shebang = f.readline()
    assert " -I" in shebang, (f"{rt.binary} starts Python without -I ({shebang.strip()}): PYTHONPATH would "
                              "run code before the runtime can refuse it; `make setup` writes the isolated launcher")
    marks = tmp_path / "marks"
    marks.mkdir()
    evil = tmp_path / "evil-path"
    evil.mkdir()
    for mod in ("re", "json", "click", "sitecustomize", "usercustomize", "typing", "enum", "functools", "os"):
        (evil / f"{mod}.py").write_text(POISON_PY.format(dirs=[str(marks)], name=f"{mod}-ran"))
    (evil / "encodings").mkdir()
    (evil / "encodings/__init__.py").write_text(POISON_PY.format(dirs=[str(marks)], name="encodings-ran"))
    (evil / "pyruntime").mkdir()
    (evil / "pyruntime/__init__.py").write_text(POISON_PY.format(dirs=[str(marks)], name="pyruntime-ran"))
    startup = tmp_path / "startup.py"
    startup.write_text(POISON_PY.format(dirs=[str(marks)], name="startup-ran"))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(evil), "PYTHONSTARTUP": str(startup),
           "PYTHONINSPECT": "1", "PYTHONHOME": str(evil), "PYTHONUSERBASE": str(evil),
           "PYTHONWARNINGS": "error", "PYTHONDEBUG": "1", "PYTHONVERBOSE": "1", "PYTHONMALLOC": "debug",
           "PYTHONBREAKPOINT": "os.abort", "PYTHONPLATLIBDIR": "nonexistent"}
    bundle = make_bundle(["sh", "-c", "echo ok; exit 3"])
    proc = rt("run", "--bundle", str(bundle), cid, check=False, env=env)
    assert (proc.returncode, proc.stdout) == (3, "ok\n"), proc.stderr
    assert ">>>" not in proc.stdout + proc.stderr
    assert "import " not in proc.stderr  # PYTHONVERBOSE would trace imports
    assert ran([marks]) == []


def test_python_variables_in_config_env_reach_only_the_container(rt, make_bundle, tmp_path, cid):
    """process.env is the container's: PYTHON* there never steers the runtime or the init."""
    marks = tmp_path / "marks"
    marks.mkdir()
    evil = tmp_path / "evil-path"
    evil.mkdir()
    for mod in ("re", "json", "encodings", "sitecustomize"):
        (evil / f"{mod}.py").write_text(POISON_PY.format(dirs=[str(marks)], name=f"{mod}-ran"))
    startup = tmp_path / "startup.py"
    startup.write_text(POISON_PY.format(dirs=[str(marks)], name="startup-ran"))
    py_env = [f"PYTHONPATH={evil}", f"PYTHONSTARTUP={startup}", "PYTHONINSPECT=1", f"PYTHONHOME={evil}"]
    bundle = make_bundle(["sh", "-c", "echo $PYTHONPATH"],
                         edit=lambda c: c["process"]["env"].extend(py_env))
    proc = rt("run", "--bundle", str(bundle), cid, check=False)
    assert (proc.returncode, proc.stdout) == (0, f"{evil}\n"), proc.stderr
    assert ran([marks]) == []


def test_python_m_pyruntime_re_executes_isolated(tmp_path):
    """Started as `python -m pyruntime` (not through the isolated launcher), the runtime re-executes
    itself with -I as soon as it sees a PYTHON* variable: PYTHONINSPECT would otherwise leave an
    interactive interpreter behind it, with the runtime's privileges, on its stdin."""
    marks = tmp_path / "marks"
    marks.mkdir()
    startup = tmp_path / "startup.py"
    startup.write_text(POISON_PY.format(dirs=[str(marks)], name="startup-ran"))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONINSPECT": "1", "PYTHONSTARTUP": str(startup),
           "PYTHONVERBOSE": "1"}
    proc = subprocess.run([sys.executable, "-m", "pyruntime", "--version"], input="print('INSPECTED')\n",
                          capture_output=True, text=True, env=env, timeout=60, cwd="/")
    assert proc.returncode == 0 and "pyruntime version" in proc.stdout, proc.stderr
    assert "INSPECTED" not in proc.stdout + proc.stderr and ">>>" not in proc.stdout + proc.stderr
    assert ran([marks]) == []
    # PYTHONVERBOSE traced the first interpreter's imports up to the re-exec; the runtime proper (click
    # and the CLI) ran in the isolated one, which ignores it
    assert re.search(r"pyruntime/(__pycache__/)?__main__", proc.stderr) and "click" not in proc.stderr
