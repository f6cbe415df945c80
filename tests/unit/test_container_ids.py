"""Container ID validation (state.check_id): runc's character set, no separators, no dot names."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyruntime import state
from pyruntime.errors import RuntimeFailure

VALID = re.compile(r"^[A-Za-z0-9_+.-]{1,255}\Z")  # \Z: "$" would also match before a final newline


@pytest.mark.parametrize("cid", ["a", "A", "0", "abc-123", "a_b.c+d", "x" * 255, "-", "...x", "x..", "a..b",
                                 "libpod-0123456789abcdef"])
def test_valid_ids(cid):
    state.check_id(cid)


@pytest.mark.parametrize("cid", ["", ".", "..", "a/b", "/", "/abs", "../x", "x/..", "x" * 256, "a b", "a\tb",
                                 "a\nb", "a\x00b", "ünï", "semi;colon", "star*", "q?", "back\\slash", "dollar$",
                                 "colon:x", "at@x", "tilde~"])
def test_invalid_ids(cid):
    with pytest.raises(RuntimeFailure) as info:
        state.check_id(cid)
    assert "invalid container ID" in str(info.value)
    assert "\n" not in str(info.value).replace(repr(cid), "")


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=300))
def test_check_id_matches_the_documented_rule(cid):
    ok = bool(VALID.match(cid)) and cid not in (".", "..")
    try:
        state.check_id(cid)
        accepted = True
    except RuntimeFailure:
        accepted = False
    assert accepted == ok
    if accepted:  # an accepted ID is always exactly one path component below --root
        assert "/" not in cid and cid not in (".", "..") and "\x00" not in cid


def test_list_ids_skips_foreign_entries(tmp_path):
    for name in ("good-1", "good.2", "bad name", ".hidden-but-valid"):
        (tmp_path / name).mkdir()
    (tmp_path / "file-entry").write_text("")
    assert state.list_ids(str(tmp_path)) == sorted([".hidden-but-valid", "file-entry", "good-1", "good.2"])
    assert state.list_ids(str(tmp_path / "missing")) == []
