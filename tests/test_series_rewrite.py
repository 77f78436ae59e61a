"""``Backend.rewrite_series``: the default refuses, and the kit catches wrong rewrites.

A backend that does not override the optional method raises
:class:`~hivemem.errors.Unsupported` naming itself. Each mutant below breaks
one rule of the method; the kit test that guards the rule must fail against
it and pass against the unmodified builtin.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from hivemem.backend import Backend, Capabilities
from hivemem.builtin.memory_backend import MemoryBackend
from hivemem.errors import HivememError, Unsupported


def _unused(name: str) -> Callable[..., Coroutine[Any, Any, Any]]:
    async def method(self: Backend, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"{name} is not called in this test")

    method.__name__ = name
    return method


#: a backend implementing only the abstract primitives, nothing optional
PlainBackend: type[Backend] = type(
    "PlainBackend",
    (Backend,),
    {"name": "plainstore", **{n: _unused(n) for n in Backend.__abstractmethods__}},
)


def test_rewrite_series_is_off_by_default() -> None:
    assert Capabilities().supports_series_rewrite is False
    assert PlainBackend.capabilities.supports_series_rewrite is False
    assert MemoryBackend.capabilities.supports_series_rewrite is True


def test_rewrite_series_default_raises_unsupported_naming_the_backend() -> None:
    async def rewrite() -> None:
        backend = PlainBackend()
        await backend.open()
        await backend.rewrite_series("ns", "s", [(1, b"old", b"new")])

    with pytest.raises(Unsupported) as info:
        asyncio.run(rewrite())
    assert isinstance(info.value, HivememError)
    assert isinstance(info.value, NotImplementedError)
    assert "plainstore" in str(info.value)
    assert "rewrite_series" in str(info.value)


MUTANTS = r"""
import asyncio

import pytest
from hypothesis import Phase

from hivemem.builtin.memory_backend import MemoryBackend
from hivemem.testing import BackendSuite


class IgnoresOld(MemoryBackend):
    async def rewrite_series(self, ns, series, changes):
        current = {seq: value for _, seq, value in self.s.series.get((ns, series), [])}
        changes = [(seq, current.get(seq, old), new) for seq, old, new in changes]
        return await super().rewrite_series(ns, series, changes)


class Reappends(MemoryBackend):
    async def rewrite_series(self, ns, series, changes):
        n = 0
        for seq, old, new in changes:
            items = self.s.series.get((ns, series), [])
            hit = [e for e in items if e[1] == seq and e[2] == old]
            if hit:
                items.remove(hit[0])
                await self.append(ns, series, new, ts=hit[0][0])
                n += 1
        return n


class DropsUnnamed(MemoryBackend):
    async def rewrite_series(self, ns, series, changes):
        named = {seq for seq, _, _ in changes}
        items = self.s.series.get((ns, series), [])
        items[:] = [e for e in items if e[1] in named]
        return await super().rewrite_series(ns, series, changes)


class AnySeries(MemoryBackend):
    async def rewrite_series(self, ns, series, changes):
        n = 0
        for (n_ns, name), items in self.s.series.items():
            if n_ns == ns:
                n += await super().rewrite_series(ns, name, changes)
        return n


class CountsChangedOnly(MemoryBackend):
    async def rewrite_series(self, ns, series, changes):
        n = await super().rewrite_series(ns, series, changes)
        return n - sum(1 for _, old, new in changes if old == new)


class TornRewrite(MemoryBackend):
    async def rewrite_series(self, ns, series, changes):
        half = [(seq, old, new[: len(new) // 2]) for seq, old, new in changes]
        await super().rewrite_series(ns, series, half)
        await asyncio.sleep(0)
        back = [(seq, new[: len(new) // 2], new) for seq, _, new in changes]
        return await super().rewrite_series(ns, series, back)


class _Backends(BackendSuite):
    impl = MemoryBackend
    cancel_rounds = 20
    stateful_max_examples = 200  # the machine is random: make a miss vanishingly rare
    stateful_settings = {"phases": [Phase.generate], "database": None}

    @pytest.fixture
    def backend_factory(self):
        return lambda: self.impl("memory://")


class TestUnmodified(_Backends):
    pass


class TestIgnoresOld(_Backends):
    impl = IgnoresOld


class TestReappends(_Backends):
    impl = Reappends


class TestDropsUnnamed(_Backends):
    impl = DropsUnnamed


class TestAnySeries(_Backends):
    impl = AnySeries


class TestCountsChangedOnly(_Backends):
    impl = CountsChangedOnly


class TestTornRewrite(_Backends):
    impl = TornRewrite
"""

CASES = [
    ("TestIgnoresOld", "test_rewrite_series_skips_changed_values"),
    ("TestIgnoresOld", "test_stateful_against_model"),
    ("TestReappends", "test_rewrite_series_replaces_in_place"),
    ("TestReappends", "test_stateful_against_model"),
    ("TestDropsUnnamed", "test_rewrite_series_keeps_later_appends"),
    ("TestDropsUnnamed", "test_rewrite_series_with_concurrent_appends"),
    ("TestAnySeries", "test_rewrite_series_ignores_missing_entries"),
    ("TestAnySeries", "test_rewrite_series_isolation"),
    ("TestAnySeries", "test_stateful_against_model"),
    ("TestCountsChangedOnly", "test_rewrite_series_replaces_in_place"),
    ("TestTornRewrite", "test_cancelled_rewrite_series_is_never_torn"),
]
CONTROL = "TestUnmodified"


def test_kit_catches_every_rewrite_mutant(pytester: pytest.Pytester) -> None:
    """One inner pytest run over every mutant, the unmodified control and the guarding tests."""
    pytester.makepyfile(test_rewrite_mutants=MUTANTS)
    tests = sorted({t for _, t in CASES})
    expr = (
        " or ".join(f"(({m} or {CONTROL}) and {t})" for m, t in CASES)
        + f" or ({CONTROL} and rewrite)"
    )
    result = pytester.inline_run("-p", "no:cacheprovider", "-k", expr)
    outcomes: dict[tuple[str, str], list[str]] = {}
    for report in result.getreports("pytest_runtest_logreport"):
        if report.when == "call" or report.outcome != "passed":
            _, cls, func = report.nodeid.split("::")
            outcomes.setdefault((cls, func.split("[")[0]), []).append(report.outcome)
    problems = []
    for mutant, test in CASES:
        if "failed" not in outcomes.get((mutant, test), []):
            problems.append(f"{test} did not catch {mutant}: {outcomes.get((mutant, test))}")
    for test in tests:
        if set(outcomes.get((CONTROL, test), [])) != {"passed"}:
            problems.append(f"{test} on unmodified {CONTROL}: {outcomes.get((CONTROL, test))}")
    rewrite_tests = [t for (c, t) in outcomes if c == CONTROL and "rewrite" in t]
    assert len(rewrite_tests) >= 8, rewrite_tests
    assert not problems, "\n".join(problems)
