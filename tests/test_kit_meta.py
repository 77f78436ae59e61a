"""Tests about the kit: each suite catches deliberately broken implementations.

Every mutant below breaks exactly one rule; the kit test that guards the rule
must fail against it and pass against the unmodified builtin.
"""

from __future__ import annotations

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
        ids = [i for i in self.s.sorted_ids.get((ns, kind), []) if i.startswith(prefix)]
        return ids[::-1] if reverse else ids


class Utf16Order(MemoryBackend):
    async def list_ids(self, ns, kind, prefix="", *, limit=None, cursor=None, reverse=False):
        ids = await super().list_ids(ns, kind, prefix, cursor=cursor, reverse=reverse)
        ids.sort(key=lambda s: s.encode("utf-16-be"), reverse=reverse)
        return ids if limit is None else ids[:limit]


class RacyIncr(MemoryBackend):
    async def incr(self, ns, kind, id, field, amount=1.0):
        fields = self.s.counters.setdefault((ns, kind, id), {})
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
            rec = self.s.records[(ns, kind)][id]
            self.s.records[(ns, kind)][id] = type(rec)(rec.value, 1, rec.expires_at)


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


class TestStickyTtl(_Backends):
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

CASES = [
    ("TestNoCas", "TestUnmodified", "test_cas_expected_zero_creates"),
    ("TestNoCas", "TestUnmodified", "test_cas_create_race_has_one_winner"),
    ("TestStickyTtl", "TestUnmodified", "test_write_without_ttl_clears_ttl"),
    ("TestListsExpired", "TestUnmodified", "test_ttl_expiry_hides_record_everywhere"),
    ("TestUtf16Order", "TestUnmodified", "test_list_orders_by_code_point"),
    ("TestRacyIncr", "TestUnmodified", "test_concurrent_incr_is_exact"),
    ("TestTornPut", "TestUnmodified", "test_cancelled_put_is_all_or_nothing"),
    ("TestEndInclusive", "TestUnmodified", "test_series_range_start_inclusive_end_exclusive"),
    ("TestEndInclusive", "TestUnmodified", "test_stateful_against_model"),
    ("TestInclusiveCursor", "TestUnmodified", "test_cursor_paging"),
    ("TestInclusiveCursor", "TestUnmodified", "test_stateful_against_model"),
    ("TestNoVersionBumpMany", "TestUnmodified", "test_stateful_against_model"),
    ("TestNoVersionBumpMany", "TestUnmodified", "test_put_many_versions_and_overwrite"),
    ("TestTruncatingKeys", "TestCacheUnmodified", "test_arbitrary_keys_never_disturb_each_other"),
    ("TestWholeSecondTtl", "TestCacheUnmodified", "test_ttl_expiry"),
    ("TestUnbounded", "TestZlibUnmodified", "test_decompression_is_bounded"),
    ("TestLenient", "TestJsonUnmodified", "test_payload_damage_behind_a_valid_checksum"),
    ("TestLeaky", "TestJsonUnmodified", "test_unsupported_types_raise"),
]


def test_kit_catches_every_mutant(pytester: pytest.Pytester) -> None:
    """One inner pytest run over every (mutant, control) pair and its guarding test."""
    pytester.makepyfile(test_mutants=MUTANTS)
    expr = " or ".join(f"(({m} or {c}) and {t})" for m, c, t in CASES)
    result = pytester.inline_run("-p", "no:cacheprovider", "-k", expr)
    outcomes: dict[tuple[str, str], list[str]] = {}
    for report in result.getreports("pytest_runtest_logreport"):
        if report.when == "call" or report.outcome != "passed":
            _, cls, func = report.nodeid.split("::")
            outcomes.setdefault((cls, func.split("[")[0]), []).append(report.outcome)
    problems = []
    for mutant, control, test in CASES:
        if "failed" not in outcomes.get((mutant, test), []):
            problems.append(f"{test} did not catch {mutant}: {outcomes.get((mutant, test))}")
        if set(outcomes.get((control, test), [])) != {"passed"}:
            problems.append(f"{test} on unmodified {control}: {outcomes.get((control, test))}")
    assert not problems, "\n".join(problems)
