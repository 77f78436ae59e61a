"""Tests about the kit: each suite catches deliberately broken implementations.

Every mutant below breaks exactly one rule; the kit test that guards the rule
must fail against it and pass against the unmodified builtin. "Fail" means
what a test failing on a broken rule looks like: its *call* phase fails a
check (an ``AssertionError``, or ``pytest.fail``/``pytest.raises``), for the
reason the case names when it names one. A mutant that breaks the fixture's
setup, or makes the test crash with any other exception, is not caught: the
test never got to judge the rule. ``test_checker_rejects_what_is_not_a_catch``
keeps the checker itself honest.
"""

from __future__ import annotations

import re
from collections.abc import Generator
from typing import NamedTuple

import pytest

MUTANTS = r"""
import asyncio
import json
import math
import sys
import time
import zlib

import pytest
from hypothesis import Phase

import hivemem
from hivemem.backend import Capabilities
from hivemem.builtin.codecs import JsonSerializer, ZlibCompressor
from hivemem.builtin.local_cache import LocalCache
from hivemem.builtin.memory_backend import MemoryBackend
from hivemem.plugins import make_plugins
from hivemem.testing import BackendSuite, CacheSuite, CodecSuite


class NoCas(MemoryBackend):
    async def put(self, ns, kind, id, value, *, ttl=None, expected_version=None):
        return await super().put(ns, kind, id, value, ttl=ttl)


class StickyTtl(MemoryBackend):
    async def put(self, ns, kind, id, value, *, ttl=None, expected_version=None):
        cur = await self.get(ns, kind, id)
        if ttl is None and cur is not None and cur.expires_at is not None:
            ttl = max(cur.expires_at - time.time(), 1e-6)
        return await super().put(ns, kind, id, value, ttl=ttl, expected_version=expected_version)


class ListsExpired(MemoryBackend):
    async def list_ids(self, ns, kind, prefix="", *, limit=None, cursor=None, reverse=False):
        ids = [i for i in self.store.sorted_ids.get((ns, kind), []) if i.startswith(prefix)]
        return ids[::-1] if reverse else ids


class Utf16Order(MemoryBackend):
    async def list_ids(self, ns, kind, prefix="", *, limit=None, cursor=None, reverse=False):
        ids = await super().list_ids(ns, kind, prefix, cursor=cursor, reverse=reverse)
        ids.sort(key=lambda s: s.encode("utf-16-be"), reverse=reverse)
        return ids if limit is None else ids[:limit]


class RacyIncr(MemoryBackend):
    async def incr(self, ns, kind, id, field, amount=1.0):
        fields = self.store.counters.setdefault((ns, kind, id), {})
        old = fields.get(field, 0.0)
        await asyncio.sleep(0)
        fields[field] = old + amount
        return fields[field]


class TornPut(MemoryBackend):
    async def put(self, ns, kind, id, value, *, ttl=None, expected_version=None):
        await super().put(ns, kind, id, value[: len(value) // 2], ttl=ttl)
        await asyncio.sleep(0)
        return await super().put(ns, kind, id, value, ttl=ttl)


class EndInclusive(MemoryBackend):
    async def read_series(self, ns, series, *, start=None, end=None, limit=None, latest=False):
        if end is not None:
            end = math.nextafter(end, math.inf)
        return await super().read_series(
            ns, series, start=start, end=end, limit=limit, latest=latest
        )


class InclusiveCursor(MemoryBackend):
    async def list_ids(self, ns, kind, prefix="", *, limit=None, cursor=None, reverse=False):
        ids = await super().list_ids(ns, kind, prefix, reverse=reverse)
        if cursor is not None:
            ids = [i for i in ids if (i <= cursor if reverse else i >= cursor)]
        return ids if limit is None else ids[:limit]


class NoVersionBumpMany(MemoryBackend):
    async def put_many(self, ns, kind, items, *, ttl=None):
        await super().put_many(ns, kind, items, ttl=ttl)
        for id in items:
            rec = self.store.records[(ns, kind)][id]
            self.store.records[(ns, kind)][id] = type(rec)(rec.value, 1, rec.expires_at)


# a prefix listing that merges the ids of every (ns, kind) that ``merge`` accepts
class _MergedPrefixListing(MemoryBackend):
    def merge(self, ns, kind, n, k):
        raise NotImplementedError

    def _scan(self, ns, kind, prefix, limit, cursor, reverse):
        if not prefix:
            return super()._scan(ns, kind, prefix, limit, cursor, reverse)
        merged = {}
        for n, k in list(self.store.records):
            if self.merge(ns, kind, n, k):
                for id, rec in super()._scan(n, k, prefix, None, cursor, reverse):
                    if (n, k) == (ns, kind) or id not in merged:
                        merged[id] = rec
        rows = sorted(merged.items(), reverse=reverse)
        return rows if limit is None else rows[: max(limit, 0)]


class ListingIgnoresNamespace(_MergedPrefixListing):
    def merge(self, ns, kind, n, k):
        return k == kind


class ListingIgnoresKind(_MergedPrefixListing):
    def merge(self, ns, kind, n, k):
        return n == ns


class ForwardRecordsExpired(MemoryBackend):
    async def list_records(self, ns, kind, prefix="", *, limit=None, cursor=None, reverse=False):
        if reverse:
            return await super().list_records(
                ns, kind, prefix, limit=limit, cursor=cursor, reverse=True
            )
        d = self.store.records.get((ns, kind), {})
        rows = [
            (i, d[i])
            for i in self.store.sorted_ids.get((ns, kind), [])
            if i.startswith(prefix) and (cursor is None or i > cursor)
        ]
        return rows if limit is None else rows[: max(limit, 0)]


# a store keyed by (ts, value) cannot rewrite in place: without the capability the
# rewrite tests (whose ties happen to be out of value order) are skipped
class EqualTsByValue(MemoryBackend):
    capabilities = Capabilities(supports_series_rewrite=False)

    async def append(self, ns, series, value, *, ts=None):
        entry = await super().append(ns, series, value, ts=ts)
        self.store.series[(ns, series)].sort(key=lambda e: (e[0], e[2]))
        return entry


# the base class's own rules: a subclass that slips past them, or a listing primitive
# and a fast override that disagree with what the base class composes
class UnguardedPut(MemoryBackend):
    # not a coroutine function, so the base class cannot wrap it: no lifecycle, no ttl check
    def put(self, ns, kind, id, value, *, ttl=None, expected_version=None):
        unguarded = MemoryBackend.put.__wrapped__
        return unguarded(self, ns, kind, id, value, ttl=ttl, expected_version=expected_version)


class ScanKeepsValues(MemoryBackend):
    async def scan(
        self, ns, kind, prefix="", *, limit=None, cursor=None, reverse=False, values=True
    ):
        return self._scan(ns, kind, prefix, limit, cursor, reverse)


class ScanIgnoresCursor(MemoryBackend):
    async def scan(
        self, ns, kind, prefix="", *, limit=None, cursor=None, reverse=False, values=True
    ):
        rows = self._scan(ns, kind, prefix, limit, None, reverse)
        return rows if values else [(id, None) for id, _ in rows]


class GetMissesEmptyId(MemoryBackend):
    async def get(self, ns, kind, id):
        return await super().get(ns, kind, id) if id else None


class StatsNewestIsLastAppended(MemoryBackend):
    async def namespace_stats(self, ns):
        stats = await super().namespace_stats(ns)
        for (owner, name), entries in self.store.series.items():
            if owner == ns and entries:
                last = max(entries, key=lambda e: e[1])  # the last appended, not the newest
                old = stats.series[name]
                stats.series[name] = type(old)(old.length, old.bytes, old.oldest, last[0])
        return stats


# not a catch: the fixture's setup fails (with an AssertionError, even)
class OpenRaises(MemoryBackend):
    async def open(self):
        raise AssertionError("open() fails before any test runs")


# not a catch: the test crashes with an error that is not a failed check
class GetRaises(MemoryBackend):
    async def get(self, ns, kind, id):
        raise KeyError(id)


class _Backends(BackendSuite):
    impl = MemoryBackend
    expiry_timeout = 1.0
    cancel_rounds = 20
    stateful_settings = {"phases": [Phase.generate], "database": None}

    @pytest.fixture
    def backend_factory(self):
        return lambda: self.impl("memory://")


class _StatefulMutant(_Backends):
    stateful_max_examples = 200  # the machine is random: make a miss vanishingly rare


class TestUnmodified(_Backends):
    pass


class TestNoCas(_Backends):
    impl = NoCas


class TestStickyTtl(_StatefulMutant):
    impl = StickyTtl


class TestListsExpired(_Backends):
    impl = ListsExpired


class TestUtf16Order(_Backends):
    impl = Utf16Order


class TestRacyIncr(_Backends):
    impl = RacyIncr


class TestTornPut(_Backends):
    impl = TornPut


class TestEndInclusive(_StatefulMutant):
    impl = EndInclusive


class TestInclusiveCursor(_StatefulMutant):
    impl = InclusiveCursor


class TestNoVersionBumpMany(_StatefulMutant):
    impl = NoVersionBumpMany


class TestListingIgnoresNamespace(_StatefulMutant):
    impl = ListingIgnoresNamespace


class TestListingIgnoresKind(_StatefulMutant):
    impl = ListingIgnoresKind


class TestForwardRecordsExpired(_StatefulMutant):
    impl = ForwardRecordsExpired


class TestEqualTsByValue(_StatefulMutant):
    impl = EqualTsByValue


class TestUnguardedPut(_Backends):
    impl = UnguardedPut


class TestScanKeepsValues(_Backends):
    impl = ScanKeepsValues


class TestScanIgnoresCursor(_Backends):
    impl = ScanIgnoresCursor


class TestGetMissesEmptyId(_Backends):
    impl = GetMissesEmptyId


class TestStatsNewestIsLastAppended(_Backends):
    impl = StatsNewestIsLastAppended


class TestOpenRaises(_Backends):
    impl = OpenRaises


class TestGetRaises(_Backends):
    impl = GetRaises


class TruncatingKeys(LocalCache):
    async def set(self, key, value, ttl=None):
        self.set_now(key[:250], value, ttl)

    async def get(self, key):
        return self.get_now(key[:250])


class WholeSecondTtl(LocalCache):
    async def set(self, key, value, ttl=None):
        self.set_now(key, value, int(ttl) if ttl is not None else None)


class _Caches(CacheSuite):
    impl = LocalCache
    expiry_timeout = 1.0

    @pytest.fixture
    def cache_factory(self):
        return lambda **kw: self.impl("local://", **kw)


class TestCacheUnmodified(_Caches):
    pass


class TestTruncatingKeys(_Caches):
    impl = TruncatingKeys


class TestWholeSecondTtl(_Caches):
    impl = WholeSecondTtl


class Unbounded(ZlibCompressor):
    def decode(self, data):
        return zlib.decompress(data)


class Lenient(JsonSerializer):
    def loads(self, data):
        try:
            return super().loads(data)
        except ValueError:
            return None


class Leaky(JsonSerializer):
    def dumps(self, obj):
        return json.dumps(obj).encode()


@hivemem.hookimpl
def hivemem_register_compressors(register):
    register("unbounded", Unbounded)


@hivemem.hookimpl
def hivemem_register_serializers(register):
    register("lenient", Lenient)
    register("leaky", Leaky)


class _Codecs(CodecSuite):
    max_examples = 5

    @pytest.fixture
    def hivemem_plugins(self):
        return make_plugins(allowed=["builtin"], plugins={"mutants": sys.modules[__name__]})


class TestZlibUnmodified(_Codecs):
    codec_kind = pytest.fixture(lambda self: "compressor")
    codec_name = pytest.fixture(lambda self: "zlib")


class TestUnbounded(_Codecs):
    codec_kind = pytest.fixture(lambda self: "compressor")
    codec_name = pytest.fixture(lambda self: "unbounded")


class TestJsonUnmodified(_Codecs):
    codec_kind = pytest.fixture(lambda self: "serializer")
    codec_name = pytest.fixture(lambda self: "json")


class TestLenient(_Codecs):
    codec_kind = pytest.fixture(lambda self: "serializer")
    codec_name = pytest.fixture(lambda self: "lenient")


class TestLeaky(_Codecs):
    extended_types = False
    codec_kind = pytest.fixture(lambda self: "serializer")
    codec_name = pytest.fixture(lambda self: "leaky")
"""


class Case(NamedTuple):
    """A mutant, the unmodified control it is compared with, and the test that guards the rule."""

    mutant: str
    control: str
    test: str
    #: a regular expression the failed check's message must match (None: any failed check)
    match: str | None = None
    #: an exception type that counts as a failed check here: the guarding test checks for
    #: one error with ``pytest.raises``, which lets the mutant's wrong one escape
    escapes: type[BaseException] | None = None


LEAK = r"another namespace or kind leaked"
EXPIRED_FORWARD = r"list_records\(.*reverse=False\) returned expired records"
TIE_ORDER = r"entries with equal ts are not in append \(seq\) order"

CASES = [
    Case("TestNoCas", "TestUnmodified", "test_cas_expected_zero_creates"),
    Case("TestNoCas", "TestUnmodified", "test_cas_create_race_has_one_winner"),
    Case("TestStickyTtl", "TestUnmodified", "test_write_without_ttl_clears_ttl"),
    Case("TestStickyTtl", "TestUnmodified", "test_stateful_against_model", "expires_at"),
    Case(
        "TestListsExpired",
        "TestUnmodified",
        "test_ttl_expiry_hides_record_everywhere",
        "expiry seen by list_ids",
    ),
    Case("TestUtf16Order", "TestUnmodified", "test_list_orders_by_code_point"),
    Case("TestRacyIncr", "TestUnmodified", "test_concurrent_incr_is_exact"),
    Case("TestTornPut", "TestUnmodified", "test_cancelled_put_is_all_or_nothing", "torn value"),
    Case("TestEndInclusive", "TestUnmodified", "test_series_range_start_inclusive_end_exclusive"),
    Case("TestEndInclusive", "TestUnmodified", "test_stateful_against_model"),
    Case("TestInclusiveCursor", "TestUnmodified", "test_cursor_paging"),
    Case("TestInclusiveCursor", "TestUnmodified", "test_stateful_against_model"),
    Case("TestNoVersionBumpMany", "TestUnmodified", "test_stateful_against_model"),
    Case("TestNoVersionBumpMany", "TestUnmodified", "test_put_many_versions_and_overwrite"),
    Case(
        "TestListingIgnoresNamespace",
        "TestUnmodified",
        "test_listing_never_shows_lookalike_namespaces_or_kinds",
        LEAK,
    ),
    Case("TestListingIgnoresNamespace", "TestUnmodified", "test_stateful_against_model"),
    Case(
        "TestListingIgnoresKind",
        "TestUnmodified",
        "test_listing_never_shows_lookalike_namespaces_or_kinds",
        LEAK,
    ),
    Case(
        "TestForwardRecordsExpired",
        "TestUnmodified",
        "test_expiry_is_seen_by_the_first_read_of_every_kind",
        EXPIRED_FORWARD,
    ),
    Case("TestForwardRecordsExpired", "TestUnmodified", "test_stateful_against_model"),
    Case(
        "TestEqualTsByValue",
        "TestUnmodified",
        "test_series_equal_ts_keep_seq_order_whatever_the_values",
        TIE_ORDER,
    ),
    Case("TestEqualTsByValue", "TestUnmodified", "test_stateful_against_model"),
    Case(
        "TestUnguardedPut",
        "TestUnmodified",
        "test_every_call_before_open_raises_backend_closed",
        "calls before open\\(\\) not refused with BackendClosed: \\{'put': 'returned 1'\\}",
    ),
    Case(
        "TestUnguardedPut",
        "TestUnmodified",
        "test_bad_ttl_raises_invalid_ttl_and_stores_nothing",
        "DID NOT RAISE",
    ),
    Case(
        "TestScanKeepsValues",
        "TestUnmodified",
        "test_scan_without_values_gives_the_ids_of_list_ids",
    ),
    Case(
        "TestScanIgnoresCursor",
        "TestUnmodified",
        "test_scan_without_values_gives_the_ids_of_list_ids",
        "cursor='ab'",
    ),
    Case(
        "TestScanIgnoresCursor",
        "TestUnmodified",
        "test_scan_with_values_gives_the_records_of_list_records",
        "cursor='ab'",
    ),
    Case("TestGetMissesEmptyId", "TestUnmodified", "test_composed_get_agrees_with_the_backend"),
    Case(
        "TestStatsNewestIsLastAppended",
        "TestUnmodified",
        "test_composed_namespace_stats_agree_with_the_backend",
    ),
    Case(
        "TestTruncatingKeys", "TestCacheUnmodified", "test_arbitrary_keys_never_disturb_each_other"
    ),
    Case("TestWholeSecondTtl", "TestCacheUnmodified", "test_ttl_expiry"),
    Case("TestUnbounded", "TestZlibUnmodified", "test_decompression_is_bounded"),
    Case("TestLenient", "TestJsonUnmodified", "test_payload_damage_behind_a_valid_checksum"),
    Case(
        "TestLeaky",
        "TestJsonUnmodified",
        "test_unsupported_types_raise",
        "not JSON serializable",
        escapes=TypeError,
    ),
]

#: what a failed check raises: ``assert`` and ``pytest.fail`` (``pytest.raises`` uses it)
CHECK_FAILURES: tuple[type[BaseException], ...] = (AssertionError, pytest.fail.Exception)


class Phase(NamedTuple):
    """One phase (setup, call, teardown) of one inner test: its outcome and exception."""

    when: str
    outcome: str
    exc: BaseException | None


class PhaseRecorder:
    """Inner-run plugin: every phase of every test, keyed by (class, test function)."""

    def __init__(self) -> None:
        self.phases: dict[tuple[str, str], list[Phase]] = {}

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        """Record the phase's report outcome with the exception the phase raised."""
        report = yield
        _, cls, func = item.nodeid.split("::")
        exc = call.excinfo.value if call.excinfo is not None else None
        self.phases.setdefault((cls, func.split("[")[0]), []).append(
            Phase(call.when, report.outcome, exc)
        )
        return report


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside ``exc`` (itself unless it is a group, as hypothesis may raise)."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


def why_not_caught(
    phases: list[Phase], match: str | None = None, escapes: type[BaseException] | None = None
) -> str | None:
    """None when these phases show a catch; otherwise why they do not.

    A catch: the test ran, its call phase failed a check (every exception in it
    is one of :data:`CHECK_FAILURES`, or ``escapes``; when ``match`` is given,
    one message matches it) and no setup or teardown failed.
    """
    if not phases:
        return "the test never ran"
    for phase in phases:
        if phase.outcome == "failed" and phase.when != "call":
            return f"{phase.when} failed, so the test never judged the rule: {phase.exc!r}"
    failures = [p.exc for p in phases if p.when == "call" and p.outcome == "failed"]
    leaves = [leaf for exc in failures if exc is not None for leaf in _leaves(exc)]
    if not leaves:
        return f"the test did not fail: {[(p.when, p.outcome) for p in phases]}"
    checks = CHECK_FAILURES if escapes is None else (*CHECK_FAILURES, escapes)
    crashes = [leaf for leaf in leaves if not isinstance(leaf, checks)]
    if crashes:
        return f"the test crashed instead of failing a check: {crashes[0]!r}"
    if match is not None and not any(re.search(match, str(leaf)) for leaf in leaves):
        return f"the test failed for another reason than {match!r}: {str(leaves[0])[:300]}"
    return None


def _inner_run(
    pytester: pytest.Pytester, tests: list[tuple[str, str]]
) -> dict[tuple[str, str], list[Phase]]:
    """Run ``(class, test function)`` pairs of the mutants module; return their phases."""
    path = pytester.makepyfile(test_mutants=MUTANTS)
    recorder = PhaseRecorder()
    node_ids = dict.fromkeys(f"{path.name}::{cls}::{test}" for cls, test in tests)
    pytester.inline_run("-p", "no:cacheprovider", *node_ids, plugins=[recorder])
    return recorder.phases


def test_kit_catches_every_mutant(pytester: pytest.Pytester) -> None:
    """One inner pytest run over every (mutant, control) pair and its guarding test."""
    phases = _inner_run(pytester, [(cls, c.test) for c in CASES for cls in (c.mutant, c.control)])
    problems = []
    for case in CASES:
        why = why_not_caught(phases.get((case.mutant, case.test), []), case.match, case.escapes)
        if why is not None:
            problems.append(f"{case.test} did not catch {case.mutant}: {why}")
        control = phases.get((case.control, case.test), [])
        if not control or {p.outcome for p in control} != {"passed"}:
            shown = [(p.when, p.outcome, p.exc) for p in control]
            problems.append(f"{case.test} on unmodified {case.control}: {shown}")
    assert not problems, "\n".join(problems)


def test_checker_rejects_what_is_not_a_catch(pytester: pytest.Pytester) -> None:
    """A setup error, a crash or a failure for another reason is not reported as a catch."""
    test = "test_cas_expected_zero_creates"
    phases = _inner_run(
        pytester, [(cls, test) for cls in ("TestOpenRaises", "TestGetRaises", "TestNoCas")]
    )
    # the real catch is one, with and without a matching reason
    assert why_not_caught(phases[("TestNoCas", test)]) is None
    assert why_not_caught(phases[("TestNoCas", test)], "DID NOT RAISE") is None
    wrong_reason = why_not_caught(phases[("TestNoCas", test)], "no such message")
    assert wrong_reason is not None and "another reason" in wrong_reason
    # open() raising an AssertionError fails the fixture's setup: not a catch
    setup_error = why_not_caught(phases[("TestOpenRaises", test)])
    assert setup_error is not None and setup_error.startswith("setup failed"), setup_error
    # a KeyError in the test's call phase is a crash, not a failed check
    crash = why_not_caught(phases[("TestGetRaises", test)])
    assert crash is not None and "KeyError" in crash, crash
    # ... unless the case names that very type as the one its check lets escape
    assert why_not_caught(phases[("TestGetRaises", test)], escapes=KeyError) is None
    assert why_not_caught([]) == "the test never ran"
