"""Compare two runs of runc's bats suite (results.tsv of ../shared/suites/runc-bats/run.sh).

Usage: python tests/compat/compare.py REFERENCE.tsv CANDIDATE.tsv [--markdown]

Prints a per-file table (ok / not ok / skip of each runtime) and every test whose result differs,
so "every test the reference passes, the candidate passes" is one look. Exit status 1 when a test the
reference passes does not pass with the candidate. Not a pytest module: `make compat` runs it.
"""

from __future__ import annotations

import sys
from collections import Counter


def read(path: str) -> dict[tuple[str, str], str]:
    """(file, test) -> "ok" | "not ok" | "skip"."""
    results: dict[tuple[str, str], str] = {}
    with open(path, encoding="utf-8") as f:
        next(f, None)  # header: file, test, result, detail
        for line in f:
            fields = line.rstrip("\n").split("\t")
            if len(fields) >= 3:
                results[(fields[0], fields[1])] = fields[2]
    return results


def table(ref: dict[tuple[str, str], str], cand: dict[tuple[str, str], str], markdown: bool) -> list[str]:
    files = sorted({f for f, _ in ref} | {f for f, _ in cand})
    per_ref: dict[str, Counter[str]] = {f: Counter() for f in files}
    per_cand: dict[str, Counter[str]] = {f: Counter() for f in files}
    for (f, _), r in ref.items():
        per_ref[f][r] += 1
    for (f, _), r in cand.items():
        per_cand[f][r] += 1
    out = ["| file | reference ok / not ok / skip | candidate ok / not ok / skip |", "|---|---|---|"] if markdown \
        else [f"{'FILE':28} {'REFERENCE':>16} {'CANDIDATE':>16}"]
    for f in [*files, "TOTAL"]:
        r = sum(per_ref.values(), Counter()) if f == "TOTAL" else per_ref[f]
        c = sum(per_cand.values(), Counter()) if f == "TOTAL" else per_cand[f]
        a = f"{r['ok']} / {r['not ok']} / {r['skip']}"
        b = f"{c['ok']} / {c['not ok']} / {c['skip']}"
        out.append(f"| {f} | {a} | {b} |" if markdown else f"{f:28} {a:>16} {b:>16}")
    return out


def main(argv: list[str]) -> int:
    args = [a for a in argv if not a.startswith("--")]
    if len(args) != 2:
        sys.stderr.write(__doc__ or "")
        return 2
    ref, cand = read(args[0]), read(args[1])
    print("\n".join(table(ref, cand, "--markdown" in argv)))
    regressions = 0
    for key in sorted(set(ref) | set(cand)):
        r, c = ref.get(key, "missing"), cand.get(key, "missing")
        if r != c:
            regressions += r == "ok"
            print(f"{'REGRESSION' if r == 'ok' else 'differs':10} {key[0]}: {key[1]}: reference {r}, candidate {c}")
    print(f"tests the reference passes and the candidate does not: {regressions}")
    return 1 if regressions else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
