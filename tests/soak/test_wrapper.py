"""make soak's runtime wrapper (tests/soak/runtime-wrapper.sh.in), without any engine: a failing call's
entry in runtime-failures.log keeps the reason the call wrote to its --log, also when two calls fail
at the same moment (seen in a docker soak: two failing creates' entries interleaved, and one of them
looked like a call that had said nothing)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

WRAPPER = Path(__file__).resolve().parent / "runtime-wrapper.sh.in"

# a runtime that writes its reason to --log (as pyruntime does) and fails
FAKE_RUNTIME = """#!/bin/sh
while [ $# -gt 0 ]; do [ "$1" = --log ] && log=$2; shift; done
echo "{\\"level\\":\\"error\\",\\"msg\\":\\"reason of $CALL\\"}" >> "$log"
exit 1
"""
# `tail` that waits for the file $HOLD (when set) before doing its work: the test lets a call's
# wrapper finish only after another call has failed and been recorded in between
HOLDING_TAIL = """#!/bin/sh
if [ -n "$HOLD" ]; then
  n=0
  while [ ! -e "$HOLD" ] && [ $n -lt 600 ]; do sleep 0.1; n=$((n + 1)); done
fi
exec /usr/bin/tail "$@"
"""


def _entries(log: Path) -> list[tuple[str, str]]:
    entries: list[tuple[str, list[str]]] = []
    for line in log.read_text().splitlines():
        if line.startswith("=== "):
            entries.append((line, []))
        elif entries:
            entries[-1][1].append(line)
    return [(head, "\n".join(body).strip()) for head, body in entries]


def test_entries_of_calls_failing_together_keep_their_reasons(tmp_path):
    out, bin_dir = tmp_path / "out", tmp_path / "bin"
    out.mkdir()
    bin_dir.mkdir()
    runtime = tmp_path / "runtime"
    runtime.write_text(FAKE_RUNTIME)
    (bin_dir / "tail").write_text(HOLDING_TAIL)
    for script in (runtime, bin_dir / "tail"):
        script.chmod(0o755)
    wrapper = tmp_path / "wrapper"
    wrapper.write_text(WRAPPER.read_text().replace("@PYRT@", str(runtime)).replace("@OUT@", str(out)))
    wrapper.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    hold = tmp_path / "go"

    def call(name: str, **extra: str) -> subprocess.Popen:
        return subprocess.Popen([str(wrapper), "--log", str(tmp_path / f"{name}.json"), "create", name],
                                env=dict(env, CALL=name, **extra))

    first = call("first", HOLD=str(hold))  # held in its `tail`, after its runtime failed
    try:
        assert call("second").wait(timeout=60) == 1  # fails and is recorded meanwhile
    finally:
        hold.touch()
        assert first.wait(timeout=120) == 1
    entries = _entries(out / "runtime-failures.log")
    reasons = {head.rsplit(" ", 1)[1]: reason for head, reason in entries}
    assert len(entries) == 2, entries
    assert "reason of first" in reasons["first"] and "reason of second" in reasons["second"], entries
    assert len((out / "calls.log").read_text().splitlines()) == 2
