"""pyruntime.record: the exec-free dataclass stand-in behaves like dataclasses where the runtime uses it."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from pyruntime import record


def _pair(deco: Any, field: Any, **kw: Any) -> type:
    @deco(**kw)
    class Plan:
        """A record with every kind of field the runtime uses."""

        name: str
        count: int = 0
        env: dict[str, str] = field(default_factory=dict)
        extra: Any = None

    return Plan


@pytest.mark.parametrize("impl", ["record", "dataclasses"])
def test_same_behaviour_as_dataclasses(impl: str) -> None:
    mod = record if impl == "record" else dataclasses
    plan_cls = _pair(mod.dataclass, mod.field)
    a = plan_cls("x", 2, extra=[1])
    assert (a.name, a.count, a.env, a.extra) == ("x", 2, {}, [1])
    b = plan_cls(name="x", count=2, extra=[1])
    assert a == b and a is not b
    assert a.env is not b.env  # a fresh default per instance
    b.count = 3
    assert a != b
    assert repr(a) == f"{plan_cls.__qualname__}(name='x', count=2, env={{}}, extra=[1])"
    assert plan_cls.__match_args__ == ("name", "count", "env", "extra")
    with pytest.raises(TypeError):
        plan_cls()  # name is required
    with pytest.raises(TypeError):
        plan_cls("x", name="y")
    with pytest.raises(TypeError):
        plan_cls("x", bogus=1)
    with pytest.raises(TypeError):
        plan_cls("x", 1, {}, None, "too many")
    with pytest.raises(TypeError):
        hash(a)  # eq without frozen: unhashable


@pytest.mark.parametrize("impl", ["record", "dataclasses"])
def test_frozen(impl: str) -> None:
    mod = record if impl == "record" else dataclasses

    @mod.dataclass(frozen=True)
    class Rule:
        """A device rule."""

        allow: bool
        major: int = -1

    r = Rule(True, 1)
    assert r == Rule(allow=True, major=1) and hash(r) == hash(Rule(True, 1))
    assert len({r, Rule(True, 1), Rule(False)}) == 2
    with pytest.raises(AttributeError):
        r.allow = False  # type: ignore[misc]


def test_post_init_and_errors() -> None:
    @record.dataclass
    class Opts:
        """Options."""

        bundle: str
        seen: list[str] = record.field(default_factory=list)

        def __post_init__(self) -> None:
            self.seen.append(self.bundle)

    assert Opts("b").seen == ["b"]
    with pytest.raises(ValueError):
        @record.dataclass
        class Bad:
            """A mutable default."""

            items: list[str] = []  # noqa: RUF012

    with pytest.raises(TypeError):
        @record.dataclass
        class Order:
            """A required field after a default one."""

            a: int = 0
            b: int  # type: ignore[misc]



def test_fields_without_the_future_import() -> None:
    # From Python 3.14 a class's annotations are evaluated lazily unless its module has
    # `from __future__ import annotations` (this test module has it, so the class is built by exec).
    ns: dict[str, Any] = {"record": record}
    exec("@record.dataclass\nclass Plain:\n    name: str\n    count: int = 0\n", ns)
    plain = ns["Plain"]("x")
    assert (plain.name, plain.count) == ("x", 0)
    assert plain.__class__.__match_args__ == ("name", "count")
