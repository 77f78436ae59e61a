"""The backend conformance suite: every rule of :mod:`hivemem.backend`, as tests.

A backend plugin proves itself by subclassing :class:`BackendSuite` in a
``Test*`` class and pointing it at its URL::

    from hivemem.testing import BackendSuite

    class TestMyBackend(BackendSuite):
        @pytest.fixture
        def backend_url(self, redis_server):
            return redis_server.url

The suite opens the backend through the plugin registry by URL scheme, so the
test also proves the plugin is installed and registered. Authors with special
needs override ``backend_options`` (extra factory keyword arguments),
``backend_factory`` (a callable returning a fresh, unopened backend) or
``backend`` itself (yield an opened backend; then drop the suite's namespaces,
:data:`KIT_NAMESPACES`, yourself). Tests that need a capability the backend
declares it lacks are skipped with the flag's name.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar
from urllib.parse import urlsplit

import pytest

from hivemem.backend import Backend, KindStats, NamespaceStats, Record, SeriesEntry
from hivemem.errors import ConflictError, HivememError

from .helpers import TRICKY_STRINGS, eventually, require_capability

__all__ = ["KIT_NAMESPACES", "NS", "NS2", "BackendSuite", "open_backend"]

#: the namespace most tests use
NS = "hmkit"
#: a second namespace (with a separator in it) for isolation tests
NS2 = "hmkit:other"
#: namespace/kind/id triples that collide under naive ``ns:kind:id`` or ``ns/kind/id`` keys
SEPARATOR_TRIPLES: tuple[tuple[str, str, str], ...] = (
    ("hmkit/a:b", "c", "d"),
    ("hmkit/a", "b:c", "d"),
    ("hmkit/a", "b", "c:d"),
    ("hmkit/a:b:c", "", "d"),
    ("hmkit/a", "b:c:d", ""),
    ("hmkit/a", "b/c", "d"),
    ("hmkit/a/b", "c", "d"),
    ("hmkit/a\x00b", "c", "d"),
    ("hmkit/a", "b\x00c", "d"),
    ("hmkit/a\x00", "b", "c"),
    ("", "hmkit/a", "b"),
)
#: every namespace the suite writes; the ``backend`` fixture drops them before and after
KIT_NAMESPACES: tuple[str, ...] = tuple(
    dict.fromkeys([NS, NS2, "hmkit-sm", "hmkit-sm:2", *(ns for ns, _, _ in SEPARATOR_TRIPLES)])
)

MiB = 1024 * 1024


def open_backend(url: str, plugins: Any, **options: Any) -> Backend:
    """Build (not open) a backend for ``url`` through ``plugins``' backend registry."""
    scheme = urlsplit(url).scheme
    entry = plugins.registry("backend").for_scheme(scheme)
    backend = entry.factory(url, **options)
    if not isinstance(backend, Backend):
        raise TypeError(
            f"backend factory for {scheme}:// returned {type(backend).__name__}, not a Backend"
        )
    return backend


def _rng(seed: int = 1234) -> random.Random:
    return random.Random(seed)


@pytest.mark.usefixtures("hivemem_runner")
class BackendSuite:
    """Conformance tests for a :class:`~hivemem.backend.Backend`.

    Subclass it in a ``Test*`` class and provide the ``backend_url`` fixture.
    """

    #: hypothesis settings of :meth:`test_stateful_against_model` (raise for deeper runs)
    stateful_max_examples: ClassVar[int] = 30
    stateful_step_count: ClassVar[int] = 30
    #: the largest value the large-value test writes (capped by ``max_value_size``)
    large_value_size: ClassVar[int] = 8 * MiB
    #: short TTL (seconds) used by expiry tests, and how long expiry may take to show
    short_ttl: ClassVar[float] = 0.2
    expiry_timeout: ClassVar[float] = 10.0
    #: how many cancel-mid-write rounds the cancellation tests run
    cancel_rounds: ClassVar[int] = 60
    #: extra hypothesis settings for the state machine (e.g. ``{"phases": [...]}``)
    stateful_settings: ClassVar[dict[str, Any]] = {}
    #: TTL of the records the state machine lets expire (it waits for them, at most once
    #: per example, up to ``expiry_timeout``; any TTL works, a short one keeps runs fast)
    stateful_short_ttl: ClassVar[float] = 0.05

    # -- fixtures the author provides / may override ---------------------------------
    @pytest.fixture
    def backend_url(self) -> str:
        """The URL of the backend under test. Subclasses must provide it."""
        pytest.skip(f"{type(self).__name__} provides no backend_url fixture")

    @pytest.fixture
    def backend_options(self) -> dict[str, Any]:
        """Extra keyword arguments for the backend factory (default none)."""
        return {}

    @pytest.fixture
    def backend_factory(
        self, backend_url: str, backend_options: dict[str, Any], hivemem_plugins: Any
    ) -> Callable[[], Backend]:
        """A callable returning a fresh, unopened backend for the URL."""
        return lambda: open_backend(backend_url, hivemem_plugins, **backend_options)

    @pytest.fixture
    def backend(
        self, backend_factory: Callable[[], Backend], hivemem_runner: asyncio.Runner
    ) -> Iterator[Backend]:
        """The opened backend, with the kit's namespaces dropped before and after."""
        b = backend_factory()
        try:
            hivemem_runner.run(b.open())
            hivemem_runner.run(self._drop_all(b))
            yield b
            hivemem_runner.run(self._drop_all(b))
        finally:
            hivemem_runner.run(b.close())

    @staticmethod
    async def _drop_all(b: Backend) -> None:
        for ns in KIT_NAMESPACES:
            await b.drop_namespace(ns)

    # -- records ------------------------------------------------------------------------
    async def test_get_missing_is_none(self, backend: Backend) -> None:
        """get of an id never written is None."""
        assert await backend.get(NS, "k", "missing") is None

    async def test_put_then_get(self, backend: Backend) -> None:
        """put returns version 1; get returns the exact bytes, version 1, no expiry."""
        version = await backend.put(NS, "k", "a", b"value")
        assert version == 1
        rec = await backend.get(NS, "k", "a")
        assert isinstance(rec, Record)
        assert rec.value == b"value"
        assert type(rec.value) is bytes
        assert rec.version == 1
        assert rec.expires_at is None

    async def test_versions_grow_by_one(self, backend: Backend) -> None:
        """Each write bumps the version by exactly one."""
        versions = [await backend.put(NS, "k", "a", b"v%d" % i) for i in range(5)]
        assert versions == [1, 2, 3, 4, 5]
        rec = await backend.get(NS, "k", "a")
        assert rec is not None and rec.version == 5 and rec.value == b"v4"

    async def test_delete(self, backend: Backend) -> None:
        """delete is True once, then False; other records stay."""
        await backend.put(NS, "k", "a", b"1")
        await backend.put(NS, "k", "b", b"2")
        assert await backend.delete(NS, "k", "a") is True
        assert await backend.get(NS, "k", "a") is None
        assert await backend.delete(NS, "k", "a") is False
        assert await backend.delete(NS, "k", "never") is False
        rec = await backend.get(NS, "k", "b")
        assert rec is not None and rec.value == b"2"

    async def test_recreated_record_starts_at_version_one(self, backend: Backend) -> None:
        """A record created again after delete starts at version 1."""
        await backend.put(NS, "k", "a", b"1")
        await backend.put(NS, "k", "a", b"2")
        await backend.delete(NS, "k", "a")
        assert await backend.put(NS, "k", "a", b"3") == 1

    async def test_overwrite_replaces_value_entirely(self, backend: Backend) -> None:
        """A shorter value fully replaces a longer one (no stale tail)."""
        await backend.put(NS, "k", "a", b"x" * 1000)
        await backend.put(NS, "k", "a", b"y")
        rec = await backend.get(NS, "k", "a")
        assert rec is not None and rec.value == b"y"

    # -- compare-and-set ----------------------------------------------------------------
    async def test_cas_expected_zero_creates(self, backend: Backend) -> None:
        """expected_version=0 creates; a second create conflicts and changes nothing."""
        require_capability(backend, "supports_cas")
        assert await backend.put(NS, "k", "a", b"1", expected_version=0) == 1
        with pytest.raises(ConflictError) as info:
            await backend.put(NS, "k", "a", b"2", expected_version=0)
        assert isinstance(info.value, HivememError)
        assert info.value.expected == 0
        assert info.value.actual == 1
        rec = await backend.get(NS, "k", "a")
        assert rec is not None and (rec.value, rec.version) == (b"1", 1)

    async def test_cas_expected_version_n(self, backend: Backend) -> None:
        """expected_version=n succeeds only at version n; conflicts change nothing."""
        require_capability(backend, "supports_cas")
        await backend.put(NS, "k", "a", b"1")
        await backend.put(NS, "k", "a", b"2")
        assert await backend.put(NS, "k", "a", b"3", expected_version=2) == 3
        for stale in (1, 2, 4, 100):
            with pytest.raises(ConflictError) as info:
                await backend.put(NS, "k", "a", b"bad", expected_version=stale)
            assert info.value.expected == stale
            assert info.value.actual == 3
        rec = await backend.get(NS, "k", "a")
        assert rec is not None and (rec.value, rec.version) == (b"3", 3)

    async def test_cas_on_missing_record(self, backend: Backend) -> None:
        """CAS on a missing record conflicts with actual=None and creates nothing."""
        require_capability(backend, "supports_cas")
        with pytest.raises(ConflictError) as info:
            await backend.put(NS, "k", "a", b"1", expected_version=1)
        assert info.value.actual is None
        assert await backend.get(NS, "k", "a") is None
        assert await backend.list_ids(NS, "k") == []

    async def test_cas_conflict_keeps_ttl_and_value(self, backend: Backend) -> None:
        """A losing CAS does not apply its value or its TTL."""
        require_capability(backend, "supports_cas")
        await backend.put(NS, "k", "a", b"keep")
        with pytest.raises(ConflictError):
            await backend.put(NS, "k", "a", b"x", ttl=0.05, expected_version=7)
        rec = await backend.get(NS, "k", "a")
        assert rec is not None
        assert (rec.value, rec.version, rec.expires_at) == (b"keep", 1, None)

    async def test_cas_delete(self, backend: Backend) -> None:
        """delete honours expected_version like put."""
        require_capability(backend, "supports_cas")
        await backend.put(NS, "k", "a", b"1")
        await backend.put(NS, "k", "a", b"2")
        with pytest.raises(ConflictError) as info:
            await backend.delete(NS, "k", "a", expected_version=1)
        assert (info.value.expected, info.value.actual) == (1, 2)
        rec = await backend.get(NS, "k", "a")
        assert rec is not None and rec.version == 2
        with pytest.raises(ConflictError):
            await backend.delete(NS, "k", "a", expected_version=0)
        assert await backend.delete(NS, "k", "a", expected_version=2) is True
        assert await backend.get(NS, "k", "a") is None
        # "must not exist" holds for a missing record: nothing to delete, no conflict
        assert await backend.delete(NS, "k", "a", expected_version=0) is False
        with pytest.raises(ConflictError):
            await backend.delete(NS, "k", "a", expected_version=2)

    async def test_cas_create_race_has_one_winner(self, backend: Backend) -> None:
        """Concurrent creates with expected_version=0: exactly one wins."""
        require_capability(backend, "supports_cas")

        async def attempt(i: int) -> int | None:
            try:
                return await backend.put(NS, "k", "race", b"%d" % i, expected_version=0)
            except ConflictError:
                return None

        results = await asyncio.gather(*(attempt(i) for i in range(20)))
        winners = [i for i, r in enumerate(results) if r is not None]
        assert len(winners) == 1, results
        rec = await backend.get(NS, "k", "race")
        assert rec is not None and rec.value == b"%d" % winners[0] and rec.version == 1

    async def test_cas_read_modify_write_loses_no_update(self, backend: Backend) -> None:
        """A CAS retry loop from many tasks loses no increment."""
        require_capability(backend, "supports_cas")
        await backend.put(NS, "k", "ctr", b"0")

        async def bump() -> None:
            for _ in range(1000):  # bounded retry loop
                rec = await backend.get(NS, "k", "ctr")
                assert rec is not None
                try:
                    await backend.put(
                        NS, "k", "ctr", b"%d" % (int(rec.value) + 1), expected_version=rec.version
                    )
                    return
                except ConflictError:
                    await asyncio.sleep(0)
            raise AssertionError("CAS retry loop never succeeded")

        await asyncio.gather(*(bump() for _ in range(15)))
        rec = await backend.get(NS, "k", "ctr")
        assert rec is not None and rec.value == b"15" and rec.version == 16

    # -- batches ------------------------------------------------------------------------
    async def test_get_many(self, backend: Backend) -> None:
        """get_many returns live ids only, tolerates duplicates and empty input."""
        await backend.put_many(NS, "k", {"a": b"1", "b": b"2", "c": b"3"})
        got = await backend.get_many(NS, "k", ["a", "missing", "c", "a", "c"])
        assert set(got) == {"a", "c"}
        assert got["a"].value == b"1" and got["c"].value == b"3"
        assert got["a"].version == 1
        assert await backend.get_many(NS, "k", []) == {}
        assert await backend.get_many(NS, "other-kind", ["a"]) == {}

    async def test_put_many_versions_and_overwrite(self, backend: Backend) -> None:
        """put_many creates at 1 and bumps existing versions."""
        await backend.put(NS, "k", "a", b"old")
        await backend.put_many(NS, "k", {"a": b"new", "b": b"fresh"})
        got = await backend.get_many(NS, "k", ["a", "b"])
        assert (got["a"].value, got["a"].version) == (b"new", 2)
        assert (got["b"].value, got["b"].version) == (b"fresh", 1)
        await backend.put_many(NS, "k", {})
        assert await backend.list_ids(NS, "k") == ["a", "b"]

    async def test_delete_many(self, backend: Backend) -> None:
        """delete_many counts each live record once."""
        await backend.put_many(NS, "k", {"a": b"1", "b": b"2", "c": b"3"})
        assert await backend.delete_many(NS, "k", ["a", "a", "missing", "c"]) == 2
        assert await backend.list_ids(NS, "k") == ["b"]
        assert await backend.delete_many(NS, "k", []) == 0
        assert await backend.delete_many(NS, "k", ["a"]) == 0

    async def test_large_batches(self, backend: Backend) -> None:
        """Batches larger than typical chunk sizes round-trip."""
        items = {f"id{i:05d}": b"v%d" % i for i in range(1500)}
        await backend.put_many(NS, "k", items)
        got = await backend.get_many(NS, "k", list(items))
        assert {k: r.value for k, r in got.items()} == items
        assert await backend.list_ids(NS, "k") == sorted(items)
        assert len(await backend.list_records(NS, "k", "id01")) == 500
        assert await backend.delete_many(NS, "k", list(items)) == 1500
        assert await backend.list_ids(NS, "k") == []

    # -- listing ------------------------------------------------------------------------
    async def test_list_orders_by_code_point(self, backend: Backend) -> None:
        """Listing orders by code point (U+FFFF before U+10000), both ways."""
        ids = ["b", "a", "B", "é", "\uffff", "\U00010000", "\U0001f600", "a\x00", "", "Z", "\x00"]
        await backend.put_many(NS, "k", {i: i.encode() for i in ids})
        # U+FFFF sorts before U+10000 by code point (a UTF-16 store gets this wrong)
        assert await backend.list_ids(NS, "k") == sorted(ids)
        assert await backend.list_ids(NS, "k", reverse=True) == sorted(ids, reverse=True)

    async def test_list_prefix(self, backend: Backend) -> None:
        """Prefix listing, including glob characters, NUL and U+10FFFF prefixes."""
        ids = [
            "a",
            "ab",
            "abc",
            "a\x00",
            "a\U0010ffff",
            "a*",
            "a?",
            "a[",
            "b",
            "",
            "\U0010ffff",
            "\U0010ffffz",
        ]
        await backend.put_many(NS, "k", {i: b"x" for i in ids})
        for prefix in ["", "a", "ab", "a*", "a[", "a\U0010ffff", "\U0010ffff", "zz", "a\x00"]:
            expected = sorted(i for i in ids if i.startswith(prefix))
            assert await backend.list_ids(NS, "k", prefix) == expected, prefix
            assert await backend.list_ids(NS, "k", prefix, reverse=True) == expected[::-1], prefix

    async def test_list_limit(self, backend: Backend) -> None:
        """limit bounds a page in either direction; 0 gives nothing."""
        ids = [f"i{n}" for n in range(10)]
        await backend.put_many(NS, "k", {i: b"x" for i in ids})
        assert await backend.list_ids(NS, "k", limit=0) == []
        assert await backend.list_ids(NS, "k", limit=3) == ids[:3]
        assert await backend.list_ids(NS, "k", limit=3, reverse=True) == ids[::-1][:3]
        assert await backend.list_ids(NS, "k", limit=100) == ids

    @pytest.mark.parametrize("reverse", [False, True])
    async def test_cursor_paging(self, backend: Backend, reverse: bool) -> None:
        """cursor is an exclusive bound in the direction of travel."""
        ids = sorted({f"p{n:03d}" for n in range(23)} | {"p", "q", "o"})
        await backend.put_many(NS, "k", {i: i.encode() for i in ids})
        expected = sorted((i for i in ids if i.startswith("p")), reverse=reverse)
        pages: list[list[str]] = []
        cursor: str | None = None
        for _ in range(len(expected) + 1):  # bounded: a cursor that does not advance fails
            page = await backend.list_ids(NS, "k", "p", limit=4, cursor=cursor, reverse=reverse)
            if not page:
                break
            pages.append(page)
            assert len(page) <= 4
            assert cursor not in page, f"page after cursor {cursor!r} repeats it"
            cursor = page[-1]
        else:
            raise AssertionError("cursor paging never reached an empty page")
        assert [i for page in pages for i in page] == expected
        assert len(pages) == 6
        # a cursor that is not a stored id is still an exclusive bound
        between = "p0105"
        got = await backend.list_ids(NS, "k", "p", cursor=between, reverse=reverse)
        assert got == [i for i in expected if (i > between if not reverse else i < between)]
        rec_pages = await backend.list_records(
            NS, "k", "p", limit=4, cursor=expected[3], reverse=reverse
        )
        assert [i for i, _ in rec_pages] == expected[4:8]

    async def test_list_records(self, backend: Backend) -> None:
        """list_records returns ids with their current records."""
        await backend.put_many(NS, "k", {"a": b"1", "b": b"2", "c": b"3"})
        await backend.put(NS, "k", "b", b"22")
        got = await backend.list_records(NS, "k")
        assert [(i, r.value, r.version) for i, r in got] == [
            ("a", b"1", 1),
            ("b", b"22", 2),
            ("c", b"3", 1),
        ]
        assert all(isinstance(r, Record) for _, r in got)
        rev = await backend.list_records(NS, "k", reverse=True, limit=2)
        assert [i for i, _ in rev] == ["c", "b"]

    async def test_listing_is_per_kind_and_namespace(self, backend: Backend) -> None:
        """Listing never crosses kinds or namespaces."""
        await backend.put(NS, "k", "a", b"1")
        await backend.put(NS, "k2", "b", b"2")
        await backend.put(NS2, "k", "c", b"3")
        assert await backend.list_ids(NS, "k") == ["a"]
        assert await backend.list_ids(NS, "k2") == ["b"]
        assert await backend.list_ids(NS2, "k") == ["c"]
        assert await backend.list_ids(NS, "") == []

    async def test_listing_never_shows_lookalike_namespaces_or_kinds(
        self, backend: Backend
    ) -> None:
        """Prefix listing and cursor paging show only their own (ns, kind), in both directions.

        Another namespace (one that starts with this one) and other kinds hold
        the same ids, the same prefixes and ids of their own inside every prefix
        and cursor window, each with its own values; a kind ``k:p`` holds ids
        that join to ``p:…`` under a naive ``kind:id`` key. Every id list, page
        and record returned must be this (ns, kind)'s own.
        """
        shared = ["p", "p0", "p1", "p1:a", "p2", "q"]
        places = {
            (NS, "k"): [*shared, "p0a", "p3", "r"],
            (NS2, "k"): [*shared, "", "o", "p00", "p1a", "p4", "pz"],
            (NS, "k2"): [*shared, "o", "p01", "p1b", "p5"],
            (NS, "k:p"): [*shared, "0", "1", ":a"],
            (NS2, "k2"): [*shared, "p0b", "p6"],
        }

        def value(ns: str, kind: str, id_: str) -> bytes:
            return json.dumps([ns, kind, id_]).encode()

        for (ns, kind), ids in places.items():
            await backend.put_many(ns, kind, {i: value(ns, kind, i) for i in ids})
        every_id = sorted({i for ids in places.values() for i in ids})

        for (ns, kind), ids in places.items():
            mine = sorted(ids)
            own = (NS, "k") == (ns, kind)  # the full check for one place, a quick one for others
            for reverse in (False, True):
                for prefix in ("", "p", "p0", "p1", "o", "q") if own else ("", "p"):
                    where = f"{ns!r}/{kind!r} prefix={prefix!r} reverse={reverse}"
                    want = sorted((i for i in mine if i.startswith(prefix)), reverse=reverse)
                    leak = f"another namespace or kind leaked into {where}"
                    got = await backend.list_ids(ns, kind, prefix, reverse=reverse)
                    assert got == want, f"list_ids: {leak}: {got}"
                    recs = await backend.list_records(ns, kind, prefix, reverse=reverse)
                    assert [(i, r.value) for i, r in recs] == [
                        (i, value(ns, kind, i)) for i in want
                    ], f"list_records: {leak}"
                    if not own:
                        continue
                    # pages of two, each cursor the last id of the page before
                    for records in (False, True):
                        seen: list[tuple[str, bytes | None]] = []
                        cursor: str | None = None
                        for _ in range(len(every_id) + 1):  # bounded: a stuck cursor fails
                            if records:
                                page = [
                                    (i, r.value)
                                    for i, r in await backend.list_records(
                                        ns, kind, prefix, limit=2, cursor=cursor, reverse=reverse
                                    )
                                ]
                            else:
                                page = [
                                    (i, None)
                                    for i in await backend.list_ids(
                                        ns, kind, prefix, limit=2, cursor=cursor, reverse=reverse
                                    )
                                ]
                            if not page:
                                break
                            seen += page
                            cursor = page[-1][0]
                        expected = [(i, value(ns, kind, i) if records else None) for i in want]
                        method = "list_records" if records else "list_ids"
                        assert seen == expected, f"{method} paging: {leak}"
                    # a cursor at every id any place holds (most are not this place's)
                    for cursor in every_id:
                        after = [i for i in want if (i < cursor if reverse else i > cursor)]
                        got = await backend.list_ids(
                            ns, kind, prefix, limit=3, cursor=cursor, reverse=reverse
                        )
                        assert got == after[:3], f"list_ids cursor={cursor!r}: {leak}: {got}"

    # -- tricky strings -----------------------------------------------------------------
    async def test_tricky_ids(self, backend: Backend) -> None:
        """Empty, separator, control, astral and 10k-character ids are all distinct."""
        ids = list(TRICKY_STRINGS)
        for n, id_ in enumerate(ids):
            assert await backend.put(NS, "k", id_, b"%d" % n) == 1, repr(id_[:20])
        for n, id_ in enumerate(ids):
            rec = await backend.get(NS, "k", id_)
            assert rec is not None and rec.value == b"%d" % n, repr(id_[:20])
        assert await backend.list_ids(NS, "k") == sorted(ids)
        got = await backend.get_many(NS, "k", ids)
        assert {k: r.value for k, r in got.items()} == {i: b"%d" % n for n, i in enumerate(ids)}
        for id_ in ids:
            expected = sorted(i for i in ids if i.startswith(id_))
            assert await backend.list_ids(NS, "k", id_) == expected, repr(id_[:20])
        assert await backend.delete(NS, "k", "a") is True
        assert await backend.get(NS, "k", "a:") is not None
        assert await backend.get(NS, "k", "ab") is not None
        assert await backend.delete_many(NS, "k", ids) == len(ids) - 1
        assert await backend.list_ids(NS, "k") == []

    async def test_tricky_kinds_and_series_names(self, backend: Backend) -> None:
        """Tricky strings work as kinds and series names."""
        kinds = [k for k in TRICKY_STRINGS if len(k) < 100]
        for n, kind in enumerate(kinds):
            await backend.put(NS, kind, "id", b"%d" % n)
        for n, kind in enumerate(kinds):
            rec = await backend.get(NS, kind, "id")
            assert rec is not None and rec.value == b"%d" % n, repr(kind)
            assert await backend.list_ids(NS, kind) == ["id"], repr(kind)
        assert await backend.kinds(NS) == sorted(kinds)
        if backend.capabilities.supports_series:
            for n, name in enumerate(kinds):
                await backend.append(NS, name, b"%d" % n, ts=float(n))
            assert await backend.series_names(NS) == sorted(kinds)
            for n, name in enumerate(kinds):
                entries = await backend.read_series(NS, name)
                assert [e.value for e in entries] == [b"%d" % n], repr(name)

    async def test_separator_lookalikes_never_collide(self, backend: Backend) -> None:
        """(ns, kind, id) triples that join to the same string stay apart."""
        for n, (ns, kind, id_) in enumerate(SEPARATOR_TRIPLES):
            await backend.put(ns, kind, id_, b"%d" % n)
        for n, (ns, kind, id_) in enumerate(SEPARATOR_TRIPLES):
            rec = await backend.get(ns, kind, id_)
            assert rec is not None and rec.value == b"%d" % n and rec.version == 1, (ns, kind, id_)
            expected_ids = sorted(i for (n2, k2, i) in SEPARATOR_TRIPLES if (n2, k2) == (ns, kind))
            assert await backend.list_ids(ns, kind) == expected_ids, (ns, kind)
            expected_kinds = sorted({k2 for (n2, k2, _) in SEPARATOR_TRIPLES if n2 == ns})
            assert await backend.kinds(ns) == expected_kinds, ns
        await backend.drop_namespace("hmkit/a")
        for n, (ns, kind, id_) in enumerate(SEPARATOR_TRIPLES):
            rec = await backend.get(ns, kind, id_)
            if ns == "hmkit/a":
                assert rec is None
            else:
                assert rec is not None and rec.value == b"%d" % n, (ns, kind, id_)

    async def test_separator_lookalikes_in_series_and_counters(self, backend: Backend) -> None:
        """Series and counters keep separator look-alikes apart too."""
        pairs = [(ns, kind + ":" + id_) for ns, kind, id_ in SEPARATOR_TRIPLES]
        if backend.capabilities.supports_series:
            for n, (ns, name) in enumerate(pairs):
                await backend.append(ns, name, b"%d" % n, ts=1.0)
        if backend.capabilities.supports_counters:
            for n, (ns, kind, id_) in enumerate(SEPARATOR_TRIPLES):
                await backend.incr(ns, kind, id_, "f", n + 1)
        for n, (ns, kind, id_) in enumerate(SEPARATOR_TRIPLES):
            if backend.capabilities.supports_series:
                name = pairs[n][1]
                entries = await backend.read_series(ns, name)
                same = [m for m, p in enumerate(pairs) if p == (ns, name)]
                assert sorted(e.value for e in entries) == sorted(b"%d" % m for m in same)
            if backend.capabilities.supports_counters:
                got = await backend.get_counters(ns, kind, [id_])
                assert got == {id_: {"f": float(n + 1)}}, (ns, kind, id_)

    # -- values -------------------------------------------------------------------------
    async def test_binary_values(self, backend: Backend) -> None:
        """Every byte value, empty values and protocol look-alikes round-trip."""
        values = {
            "empty": b"",
            "nul": b"\x00",
            "all": bytes(range(256)) * 4,
            "high": bytes(range(255, -1, -1)),
            "crlf": b"\r\n\r\n",
            "resp": b"*1\r\n$4\r\nPING\r\n",
            "utf8-invalid": b"\xff\xfe\xc3\x28",
        }
        for id_, value in values.items():
            await backend.put(NS, "k", id_, value)
        for id_, value in values.items():
            rec = await backend.get(NS, "k", id_)
            assert rec is not None and rec.value == value, id_
        got = await backend.list_records(NS, "k")
        assert {i: r.value for i, r in got} == values

    async def test_large_values(self, backend: Backend) -> None:
        """Values up to min(max_value_size, large_value_size) round-trip."""
        limit = backend.capabilities.max_value_size
        top = min(self.large_value_size, limit) if limit else self.large_value_size
        rng = _rng()
        sizes = sorted({s for s in (64 * 1024, MiB, top) if s <= top})
        for size in sizes:
            value = rng.randbytes(size)
            await backend.put(NS, "big", f"v{size}", value)
            rec = await backend.get(NS, "big", f"v{size}")
            assert rec is not None and len(rec.value) == size and rec.value == value
        many = {f"m{i}": rng.randbytes(min(top, MiB) // 4) for i in range(4)}
        await backend.put_many(NS, "big", many)
        got = await backend.get_many(NS, "big", list(many))
        assert {k: r.value for k, r in got.items()} == many

    # -- TTL ----------------------------------------------------------------------------
    async def test_ttl_sets_expires_at(self, backend: Backend) -> None:
        """A TTL write reports its absolute expiry."""
        require_capability(backend, "supports_ttl")
        before = time.time()
        await backend.put(NS, "k", "a", b"1", ttl=30)
        after = time.time()
        rec = await backend.get(NS, "k", "a")
        assert rec is not None and rec.expires_at is not None
        assert before + 30 - 1 <= rec.expires_at <= after + 30 + 1

    async def test_ttl_expiry_hides_record_everywhere(self, backend: Backend) -> None:
        """An expired record is invisible to every read and listing."""
        require_capability(backend, "supports_ttl")
        ttl = self.short_ttl
        written = time.monotonic()
        await backend.put(NS, "t-control", "gone", b"c", ttl=ttl)
        # one expiring record per read path, so no read can clean up for another
        paths = ("get", "get_many", "list_ids", "list_records", "kinds", "stats")
        for path in paths:
            await backend.put(NS, f"t-{path}", "gone", b"g", ttl=ttl)
            await backend.put(NS, f"t-{path}", "keep", b"k")
        await backend.put(NS, "t-lonely", "gone", b"g", ttl=ttl)
        control = await backend.get(NS, "t-control", "gone")
        if time.monotonic() - written < ttl:  # a loaded machine may already be past it
            assert control is not None
        live_kinds = sorted(f"t-{path}" for path in paths)
        checks: dict[str, Callable[[], Any]] = {
            "get": lambda: backend.get(NS, "t-get", "gone"),
            "get_many": lambda: backend.get_many(NS, "t-get_many", ["gone", "keep"]),
            "list_ids": lambda: backend.list_ids(NS, "t-list_ids"),
            "list_records": lambda: backend.list_records(NS, "t-list_records", reverse=True),
            "kinds": lambda: backend.kinds(NS),
            "stats": lambda: backend.namespace_stats(NS),
        }
        wanted: dict[str, Callable[[Any], bool]] = {
            "get": lambda got: got is None,
            "get_many": lambda got: set(got) == {"keep"},
            "list_ids": lambda got: got == ["keep"],
            "list_records": lambda got: [i for i, _ in got] == ["keep"],
            "kinds": lambda got: got == live_kinds,
            "stats": lambda got: (
                sorted(got.kinds) == live_kinds and all(k.count == 1 for k in got.kinds.values())
            ),
        }

        async def control_gone() -> bool:
            return await backend.get(NS, "t-control", "gone") is None

        await eventually(control_gone, timeout=self.expiry_timeout, what="expiry")
        for path in paths:

            async def hidden(path: str = path) -> bool:
                return wanted[path](await checks[path]())

            await eventually(hidden, timeout=self.expiry_timeout, what=f"expiry seen by {path}")
        assert await backend.delete(NS, "t-get", "gone") is False
        assert await backend.delete_many(NS, "t-lonely", ["gone"]) == 0
        assert await backend.delete(NS, "t-get", "keep") is True

    async def test_expiry_is_seen_by_the_first_read_of_every_kind(self, backend: Backend) -> None:
        """Once expired, a record is hidden from every read at once: each path is read once.

        Every read path has a kind of its own (so no read can clean up lazily
        for another): get, get_many, list_ids and list_records in both
        directions, with and without prefix, cursor and a limit that pages
        through expired ids, namespace_stats (count and bytes) and, in a second
        namespace, kinds(). The records that expire are written first and a
        control record with the same TTL last; once the control is gone every
        earlier record has expired by the store's own clock, so each path is
        checked exactly once, with no polling that a clean-up could satisfy.
        """
        require_capability(backend, "supports_ttl")
        ttl = self.short_ttl
        live = {"a": b"1", "b1": b"22", "b3": b"333", "c": b"4444"}
        doomed = {"": b"x", "b": b"x", "b0": b"x", "b2": b"x", "b4": b"x", "d": b"x"}
        # (prefix, cursor, limit): cursors at live and at expired ids; limit 1 pages through
        windows = [
            ("", None, None),
            ("b", None, None),
            ("", "b1", None),
            ("b", "b2", None),
            ("b", None, 1),
            ("", None, 1),
        ]
        listings = {
            f"t-{method}-{n}-{reverse}": (method, reverse, *window)
            for method in ("list_ids", "list_records")
            for reverse in (False, True)
            for n, window in enumerate(windows)
        }
        read_kinds = ["t-get", "t-get_many", "t-stats", *listings]
        for kind in read_kinds:
            await backend.put_many(NS, kind, live)
            await backend.put_many(NS, kind, dict(list(doomed.items())[:3]), ttl=ttl)
            for id_, value in list(doomed.items())[3:]:
                await backend.put(NS, kind, id_, value, ttl=ttl)
        await backend.put(NS, "t-lonely", "b0", b"x", ttl=ttl)
        await backend.put_many(NS2, "t-kinds", live)
        await backend.put(NS2, "t-kinds", "b0", b"x", ttl=ttl)
        await backend.put(NS2, "t-kinds-lonely", "b0", b"x", ttl=ttl)
        await backend.put(NS, "t-control", "x", b"x", ttl=ttl)  # last: it expires last

        async def control_gone() -> bool:
            return await backend.get(NS, "t-control", "x") is None

        await eventually(control_gone, timeout=self.expiry_timeout, what="control expiry")
        for id_ in doomed:
            rec = await backend.get(NS, "t-get", id_)
            assert rec is None, f"get returned expired record {id_!r}"
        for id_, value in live.items():
            rec = await backend.get(NS, "t-get", id_)
            assert rec is not None and rec.value == value, id_
        got = await backend.get_many(NS, "t-get_many", [*doomed, *live, "b0"])
        assert {i: r.value for i, r in got.items()} == live, "get_many returned expired records"
        for kind, (method, reverse, prefix, cursor, limit) in listings.items():
            what = f"{method}(prefix={prefix!r}, cursor={cursor!r}, limit={limit}, {reverse=})"
            want = sorted((i for i in live if i.startswith(prefix)), reverse=reverse)
            if cursor is not None:
                want = [i for i in want if (i < cursor if reverse else i > cursor)]
            rows: list[Any] = []
            if limit is None:
                rows = await getattr(backend, method)(
                    NS, kind, prefix, cursor=cursor, reverse=reverse
                )
            else:
                page_cursor = cursor
                for _ in range(len(live) + len(doomed) + 1):  # bounded: stuck cursors fail
                    page = await getattr(backend, method)(
                        NS, kind, prefix, limit=limit, cursor=page_cursor, reverse=reverse
                    )
                    if not page:
                        break
                    assert len(page) <= limit, what
                    rows += page
                    page_cursor = page[-1] if method == "list_ids" else page[-1][0]
            if method == "list_ids":
                assert rows == want, f"{what} returned expired records: {rows}"
            else:
                assert [i for i, _ in rows] == want, f"{what} returned expired records: {rows}"
                assert all(r.value == live[i] for i, r in rows), what
        stats = await backend.namespace_stats(NS)
        size = sum(len(v) for v in live.values())
        expected = {kind: KindStats(len(live), size) for kind in sorted(read_kinds)}
        assert stats.kinds == expected, f"namespace_stats counted expired records: {stats.kinds}"
        got_kinds = await backend.kinds(NS2)
        assert got_kinds == ["t-kinds"], f"kinds() returned expired records' kinds: {got_kinds}"

    async def test_expired_record_is_recreated_at_version_one(self, backend: Backend) -> None:
        """A record written after expiry is a new record (version 1)."""
        require_capability(backend, "supports_ttl")
        await backend.put(NS, "k", "a", b"1")
        await backend.put(NS, "k", "a", b"2", ttl=self.short_ttl)

        async def gone() -> bool:
            return await backend.get(NS, "k", "a") is None

        await eventually(gone, timeout=self.expiry_timeout, what="expiry")
        if backend.capabilities.supports_cas:
            assert await backend.put(NS, "k", "a", b"3", expected_version=0) == 1
        else:
            assert await backend.put(NS, "k", "a", b"3") == 1

    async def test_write_without_ttl_clears_ttl(self, backend: Backend) -> None:
        """A write without ttl clears an earlier TTL (put, put_many, CAS put)."""
        require_capability(backend, "supports_ttl")
        ttl = self.short_ttl
        await backend.put(NS, "k", "control", b"c", ttl=ttl)
        await backend.put(NS, "k", "put", b"1", ttl=ttl)
        await backend.put(NS, "k", "put", b"2")
        await backend.put_many(NS, "k", {"many": b"1"}, ttl=ttl)
        await backend.put_many(NS, "k", {"many": b"2"})
        if backend.capabilities.supports_cas:
            await backend.put(NS, "k", "cas", b"1", ttl=ttl)
            await backend.put(NS, "k", "cas", b"2", expected_version=1)
        # the control may already have expired on a loaded machine; the others never expire
        survivors = [i for i in await backend.list_ids(NS, "k") if i != "control"]
        expected = ["many", "put"] + (["cas"] if backend.capabilities.supports_cas else [])
        assert sorted(survivors) == sorted(expected)
        for id_ in survivors:
            rec = await backend.get(NS, "k", id_)
            assert rec is not None and rec.expires_at is None, id_

        async def control_gone() -> bool:
            return await backend.get(NS, "k", "control") is None

        # once a record written at the same time with the same TTL has expired,
        # the rewritten ones must still be there
        await eventually(control_gone, timeout=self.expiry_timeout, what="control expiry")
        got = await backend.get_many(NS, "k", survivors)
        assert sorted(got) == sorted(survivors)
        assert all(r.value == b"2" for r in got.values())

    async def test_put_many_ttl(self, backend: Backend) -> None:
        """put_many applies its TTL to every item."""
        require_capability(backend, "supports_ttl")
        written = time.monotonic()
        await backend.put_many(NS, "k", {"a": b"1", "b": b"2"}, ttl=self.short_ttl)
        await backend.put(NS, "k", "c", b"3")
        got = await backend.get_many(NS, "k", ["a", "b"])
        if time.monotonic() - written < self.short_ttl:  # too soon for either to have expired
            assert sorted(got) == ["a", "b"]
        assert all(r.expires_at is not None for r in got.values())  # what is left carries a TTL

        async def gone() -> bool:
            return await backend.list_ids(NS, "k") == ["c"]

        await eventually(gone, timeout=self.expiry_timeout, what="put_many expiry")
        assert set(await backend.get_many(NS, "k", ["a", "b", "c"])) == {"c"}

    # -- series -------------------------------------------------------------------------
    async def test_append_and_read(self, backend: Backend) -> None:
        """append returns the stored entry; read_series returns them all."""
        require_capability(backend, "supports_series")
        entries = [await backend.append(NS, "s", b"v%d" % i, ts=float(i)) for i in range(5)]
        assert all(isinstance(e, SeriesEntry) for e in entries)
        assert [e.ts for e in entries] == [0.0, 1.0, 2.0, 3.0, 4.0]
        assert len({e.seq for e in entries}) == 5
        got = await backend.read_series(NS, "s")
        assert got == entries
        assert [e.value for e in got] == [b"v%d" % i for i in range(5)]

    async def test_append_default_ts_is_now(self, backend: Backend) -> None:
        """append without ts stamps the current time."""
        require_capability(backend, "supports_series")
        before = time.time()
        entry = await backend.append(NS, "s", b"x")
        after = time.time()
        assert before - 1 <= entry.ts <= after + 1
        assert (await backend.read_series(NS, "s"))[0].ts == entry.ts

    async def test_series_order_by_ts_then_seq(self, backend: Backend) -> None:
        """Entries order by (ts, seq); equal ts keeps append order."""
        require_capability(backend, "supports_series")
        plan = [3.0, 1.0, 2.0, 1.0, 3.0, 1.0, 2.5]
        appended = [await backend.append(NS, "s", b"%d" % n, ts=ts) for n, ts in enumerate(plan)]
        got = await backend.read_series(NS, "s")
        assert got == sorted(appended, key=lambda e: (e.ts, e.seq))
        # entries with the same ts keep the order they were appended in
        ones = [e.value for e in got if e.ts == 1.0]
        assert ones == [b"1", b"3", b"5"]
        assert len({e.seq for e in got}) == len(plan)

    async def test_series_range_start_inclusive_end_exclusive(self, backend: Backend) -> None:
        """start is inclusive, end exclusive."""
        require_capability(backend, "supports_series")
        for ts in (1.0, 2.0, 2.0, 3.0, 4.0, 5.0):
            await backend.append(NS, "s", b"%g" % ts, ts=ts)

        async def tss(**kw: Any) -> list[float]:
            return [e.ts for e in await backend.read_series(NS, "s", **kw)]

        assert await tss(start=2.0, end=4.0) == [2.0, 2.0, 3.0]
        assert await tss(start=2.0) == [2.0, 2.0, 3.0, 4.0, 5.0]
        assert await tss(end=2.0) == [1.0]
        assert await tss(start=2.5, end=2.6) == []
        assert await tss(start=4.0, end=4.0) == []
        assert await tss(start=0.0, end=100.0) == [1.0, 2.0, 2.0, 3.0, 4.0, 5.0]
        assert await tss(start=1.5, end=4.5) == [2.0, 2.0, 3.0, 4.0]

    async def test_series_limit_and_latest(self, backend: Backend) -> None:
        """limit takes the first N; latest=True the last N, still ascending."""
        require_capability(backend, "supports_series")
        for i in range(10):
            await backend.append(NS, "s", b"%d" % i, ts=float(i))

        async def vals(**kw: Any) -> list[bytes]:
            return [e.value for e in await backend.read_series(NS, "s", **kw)]

        assert await vals(limit=3) == [b"0", b"1", b"2"]
        assert await vals(limit=3, latest=True) == [b"7", b"8", b"9"]
        assert await vals(limit=0) == []
        assert await vals(limit=0, latest=True) == []
        assert await vals(limit=50, latest=True) == [b"%d" % i for i in range(10)]
        assert await vals(start=2.0, end=6.0, limit=2, latest=True) == [b"4", b"5"]
        assert await vals(start=2.0, end=6.0, limit=2) == [b"2", b"3"]
        assert await vals(latest=True) == [b"%d" % i for i in range(10)]

    async def test_latest_with_ts_ties(self, backend: Backend) -> None:
        """latest=True breaks ts ties by seq."""
        require_capability(backend, "supports_series")
        for i in range(6):
            await backend.append(NS, "s", b"%d" % i, ts=7.0)
        got = await backend.read_series(NS, "s", limit=2, latest=True)
        assert [e.value for e in got] == [b"4", b"5"]

    async def test_series_equal_ts_keep_seq_order_whatever_the_values(
        self, backend: Backend
    ) -> None:
        """Ties on ts are ordered by seq (append order), never by value, in every read.

        Ties are appended in descending and in shuffled value order, interleaved
        with other timestamps, so a store that breaks ties by value (say, a
        sorted set keyed by ts and value) reorders them. Plain, limited,
        latest-N and ranged reads, replace_series and (with
        ``supports_series_rewrite``) values rewritten into the opposite order
        must all keep (ts, seq) order.
        """
        require_capability(backend, "supports_series")
        descending = [b"%d" % i for i in range(9, -1, -1)]
        shuffled = [b"v%02d" % i for i in range(10)]
        _rng(5).shuffle(shuffled)
        plan = [
            (7.0, b"late"),
            *((5.0, v) for v in descending[:5]),
            (1.0, b"early"),
            *((3.0, v) for v in shuffled[:6]),
            *((5.0, v) for v in descending[5:]),
            *((3.0, v) for v in shuffled[6:]),
        ]
        appended = [await backend.append(NS, "s", v, ts=ts) for ts, v in plan]
        expected = sorted(appended, key=lambda e: (e.ts, e.seq))
        tied = {ts: [e.value for e in expected if e.ts == ts] for ts in (3.0, 5.0)}
        order = "entries with equal ts are not in append (seq) order"
        assert tied == {3.0: shuffled, 5.0: descending}, order

        async def read(**kw: Any) -> list[SeriesEntry]:
            return await backend.read_series(NS, "s", **kw)

        assert await read() == expected, order
        for n in (1, 2, 4, 8, 13, 30):
            assert await read(limit=n) == expected[:n], f"limit={n}: {order}"
            assert await read(limit=n, latest=True) == expected[-n:], f"latest {n}: {order}"
        for start, end in ((5.0, 7.0), (3.0, 5.0), (3.0, 3.5), (5.0, None), (None, 5.0)):
            window = [
                e
                for e in expected
                if (start is None or e.ts >= start) and (end is None or e.ts < end)
            ]
            where = f"start={start}, end={end}"
            assert await read(start=start, end=end) == window, f"{where}: {order}"
            for n in (1, 3, 7):
                got = await read(start=start, end=end, limit=n)
                assert got == window[:n], f"{where}, limit={n}: {order}"
                got = await read(start=start, end=end, limit=n, latest=True)
                assert got == window[-n:], f"{where}, latest {n}: {order}"
        # replace_series keeps the given order among equal timestamps
        given = [(2.0, b"z"), (1.0, b"m"), (2.0, b"m"), (2.0, b"a"), (2.0, b"q"), (2.0, b"\x00")]
        await backend.replace_series(NS, "r", given)
        got = [(e.ts, e.value) for e in await backend.read_series(NS, "r")]
        assert got == sorted(given, key=lambda e: e[0]), f"replace_series: {order}"
        got = [(e.ts, e.value) for e in await backend.read_series(NS, "r", limit=2, latest=True)]
        assert got == given[-2:], f"replace_series, latest 2: {order}"
        if backend.capabilities.supports_series_rewrite:
            # rewrite the ts=3 ties to values descending in seq order: nothing may move
            ties = [e for e in expected if e.ts == 3.0]
            changes = [(e.seq, e.value, bytes([0xFF - n])) for n, e in enumerate(ties)]
            assert await backend.rewrite_series(NS, "s", changes) == len(ties)
            after = await read()
            assert [(e.ts, e.seq) for e in after] == [(e.ts, e.seq) for e in expected], order
            got_values = [e.value for e in after if e.ts == 3.0]
            assert got_values == [new for _, _, new in changes], f"rewrite_series: {order}"

    async def test_replace_series(self, backend: Backend) -> None:
        """replace_series swaps the whole series; empty removes it."""
        require_capability(backend, "supports_series")
        for i in range(5):
            await backend.append(NS, "s", b"old%d" % i, ts=float(i))
        await backend.replace_series(NS, "s", [(3.0, b"c"), (1.0, b"a"), (2.0, b"b"), (2.0, b"b2")])
        got = await backend.read_series(NS, "s")
        assert [(e.ts, e.value) for e in got] == [
            (1.0, b"a"),
            (2.0, b"b"),
            (2.0, b"b2"),
            (3.0, b"c"),
        ]
        assert len({e.seq for e in got}) == 4
        new = await backend.append(NS, "s", b"d", ts=2.0)
        got = await backend.read_series(NS, "s")
        assert len({e.seq for e in got}) == 5
        assert [e.value for e in got] == [b"a", b"b", b"b2", b"d", b"c"]
        assert got[3] == new
        await backend.replace_series(NS, "fresh", [(1.0, b"x")])
        assert [e.value for e in await backend.read_series(NS, "fresh")] == [b"x"]
        await backend.replace_series(NS, "s", [])
        assert await backend.read_series(NS, "s") == []
        assert await backend.series_names(NS) == ["fresh"]

    async def test_series_names(self, backend: Backend) -> None:
        """series_names lists non-empty series by prefix, per namespace."""
        require_capability(backend, "supports_series")
        names = ["r:a", "r:b", "r", "q", "r\x00", "rr", "\U0010ffff", "r\U0010ffff"]
        for name in names:
            await backend.append(NS, name, b"x", ts=1.0)
        await backend.append(NS2, "r:zz", b"x", ts=1.0)
        assert await backend.series_names(NS) == sorted(names)
        assert await backend.series_names(NS, "r") == sorted(n for n in names if n.startswith("r"))
        assert await backend.series_names(NS, "r:") == ["r:a", "r:b"]
        assert await backend.series_names(NS, "\U0010ffff") == ["\U0010ffff"]
        assert await backend.series_names(NS, "zzz") == []
        assert await backend.series_names(NS2) == ["r:zz"]

    async def test_delete_series(self, backend: Backend) -> None:
        """delete_series reports the entries removed and leaves others."""
        require_capability(backend, "supports_series")
        for i in range(4):
            await backend.append(NS, "s", b"%d" % i, ts=float(i))
        await backend.append(NS, "t", b"keep", ts=1.0)
        assert await backend.delete_series(NS, "s") == 4
        assert await backend.read_series(NS, "s") == []
        assert await backend.delete_series(NS, "s") == 0
        assert await backend.series_names(NS) == ["t"]
        assert [e.value for e in await backend.read_series(NS, "t")] == [b"keep"]

    async def test_series_binary_values_and_float_ts(self, backend: Backend) -> None:
        """Binary values and fractional/negative timestamps round-trip."""
        require_capability(backend, "supports_series")
        values = [b"", bytes(range(256)), b"\r\n*1\r\n", b"\x00" * 10]
        stamps = [0.0, 1_700_000_000.125, -5.5, 1e-3]
        for ts, value in zip(stamps, values, strict=True):
            await backend.append(NS, "s", value, ts=ts)
        got = await backend.read_series(NS, "s")
        assert [(e.ts, e.value) for e in got] == sorted(zip(stamps, values, strict=True))

    # -- series rewrite (optional) ------------------------------------------------------
    async def test_rewrite_series_replaces_in_place(self, backend: Backend) -> None:
        """rewrite_series swaps values; ts, seq and order stay; the count is exact."""
        require_capability(backend, "supports_series_rewrite")
        for n, ts in enumerate((3.0, 1.0, 2.0, 2.0, 0.5, 2.0)):
            await backend.append(NS, "s", b"old%d" % n, ts=ts)
        before = await backend.read_series(NS, "s")
        picked = [before[0], before[2], before[3], before[5]]
        changes = [(e.seq, e.value, b"new-" + e.value * 3) for e in picked[:3]]
        changes.append((picked[3].seq, picked[3].value, picked[3].value))  # same value: counts
        assert await backend.rewrite_series(NS, "s", changes) == 4
        after = await backend.read_series(NS, "s")
        assert [(e.ts, e.seq) for e in after] == [(e.ts, e.seq) for e in before]
        wanted = {seq: new for seq, _, new in changes}
        assert [e.value for e in after] == [wanted.get(e.seq, e.value) for e in before]
        assert all(type(e.value) is bytes for e in after)
        # reads by range and latest-N see the rewritten values in the same places
        window = await backend.read_series(NS, "s", start=2.0, end=3.0)
        assert window == [e for e in after if 2.0 <= e.ts < 3.0]
        assert await backend.read_series(NS, "s", limit=2, latest=True) == after[-2:]
        # and back again: the rewritten values are now the ones compared against
        back = [(e.seq, wanted[e.seq], e.value) for e in picked]
        assert await backend.rewrite_series(NS, "s", back) == 4
        assert await backend.read_series(NS, "s") == before

    async def test_rewrite_series_skips_changed_values(self, backend: Backend) -> None:
        """An entry whose value is no longer ``old`` is left alone and not counted."""
        require_capability(backend, "supports_series_rewrite")
        for i in range(4):
            await backend.append(NS, "s", b"v%d" % i, ts=float(i))
        e0, e1, e2, e3 = await backend.read_series(NS, "s")
        # another writer got to e1 first
        assert await backend.rewrite_series(NS, "s", [(e1.seq, b"v1", b"theirs")]) == 1
        changes = [
            (e0.seq, b"v0", b"mine0"),  # still current: applied
            (e1.seq, b"v1", b"mine1"),  # stale: the other writer wins
            (e2.seq, b"v", b"mine2"),  # a prefix of the value is not the value
            (e3.seq, b"v3\x00", b"mine3"),  # nor is a longer one
        ]
        assert await backend.rewrite_series(NS, "s", changes) == 1
        after = await backend.read_series(NS, "s")
        assert [e.value for e in after] == [b"mine0", b"theirs", b"v2", b"v3"]
        assert [(e.ts, e.seq) for e in after] == [(e.ts, e.seq) for e in (e0, e1, e2, e3)]

    async def test_rewrite_series_ignores_missing_entries(self, backend: Backend) -> None:
        """Unknown seqs, entries of other series and deleted series are not written."""
        require_capability(backend, "supports_series_rewrite")
        await backend.append(NS, "s", b"same", ts=1.0)
        for _ in range(3):
            await backend.append(NS, "t", b"same", ts=1.0)
        (mine,) = await backend.read_series(NS, "s")
        others = await backend.read_series(NS, "t")
        # seqs are unique within a series only: take those of "t" that "s" does not have
        foreign = [e.seq for e in others if e.seq != mine.seq]
        unused = max(e.seq for e in [mine, *others]) + 1_000_000
        changes = [*((seq, b"same", b"stolen") for seq in foreign), (unused, b"same", b"ghost")]
        assert await backend.rewrite_series(NS, "s", changes) == 0
        assert await backend.read_series(NS, "s") == [mine]
        assert await backend.read_series(NS, "t") == others
        assert await backend.rewrite_series(NS, "nope", [(mine.seq, b"same", b"x")]) == 0
        assert await backend.read_series(NS, "nope") == []
        assert await backend.delete_series(NS, "s") == 1
        assert await backend.rewrite_series(NS, "s", [(mine.seq, b"same", b"late")]) == 0
        assert await backend.read_series(NS, "s") == []
        assert await backend.series_names(NS) == ["t"]
        # entries swapped out by replace_series are gone too
        await backend.replace_series(NS, "t", [(1.0, b"fresh")])
        stale = [(e.seq, b"same", b"late") for e in others]
        assert await backend.rewrite_series(NS, "t", stale) == 0
        assert [e.value for e in await backend.read_series(NS, "t")] == [b"fresh"]

    async def test_rewrite_series_keeps_later_appends(self, backend: Backend) -> None:
        """Entries appended between the read and the rewrite survive unchanged and in order."""
        require_capability(backend, "supports_series_rewrite")
        for i in range(5):
            await backend.append(NS, "s", b"v%d" % i, ts=float(i))
        read = await backend.read_series(NS, "s")
        appended = [
            await backend.append(NS, "s", b"late-a", ts=2.0),  # ties a rewritten ts
            await backend.append(NS, "s", b"late-b", ts=-1.0),  # before everything
            await backend.append(NS, "s", b"late-c", ts=9.0),  # after everything
            await backend.append(NS, "s", b"v0", ts=0.0),  # even with a rewritten value
        ]
        changes = [(e.seq, e.value, e.value.upper()) for e in read]
        assert await backend.rewrite_series(NS, "s", changes) == len(read)
        after = await backend.read_series(NS, "s")
        rewritten = [SeriesEntry(e.ts, e.seq, e.value.upper()) for e in read]
        assert after == sorted(rewritten + appended, key=lambda e: (e.ts, e.seq))

    async def test_rewrite_series_with_concurrent_appends(self, backend: Backend) -> None:
        """Appends racing a rewrite are never lost, reordered or rewritten."""
        require_capability(backend, "supports_series_rewrite")
        for i in range(200):
            await backend.append(NS, "s", b"v%d" % i, ts=float(i % 50))
        read = await backend.read_series(NS, "s")
        changes = [(e.seq, e.value, b"r" + e.value) for e in read]
        halves = (changes[:100], changes[100:])
        results = await asyncio.gather(
            backend.rewrite_series(NS, "s", halves[0]),
            *(backend.append(NS, "s", b"v%d" % i, ts=float(i % 50)) for i in range(30)),
            backend.rewrite_series(NS, "s", halves[1]),
            *(backend.append(NS, "s", b"w%d" % i, ts=float(i)) for i in range(30)),
        )
        counts = [r for r in results if isinstance(r, int)]
        appended = [r for r in results if isinstance(r, SeriesEntry)]
        assert counts == [100, 100] and len(appended) == 60
        rewritten = [SeriesEntry(e.ts, e.seq, b"r" + e.value) for e in read]
        after = await backend.read_series(NS, "s")
        assert after == sorted(rewritten + appended, key=lambda e: (e.ts, e.seq))

    async def test_rewrite_series_isolation(self, backend: Backend) -> None:
        """A rewrite touches its own series only: other series and namespaces are untouched."""
        require_capability(backend, "supports_series_rewrite")
        names = ("s", "s:", "t")
        for ns in (NS, NS2):
            for name in names:
                for i in range(3):
                    await backend.append(ns, name, b"v%d" % i, ts=float(i))
        model = {
            (ns, name): await backend.read_series(ns, name) for ns in (NS, NS2) for name in names
        }
        # the entries of NS/"s", addressed to other series first, then to their own; seqs
        # are unique within a series only, so another series may hold the same seq and value
        changes = [(e.seq, e.value, b"x") for e in model[(NS, "s")]]
        for target in ((NS2, "s"), (NS, "t"), (NS, "s:"), (NS, "s")):
            entries = model[target]
            hits = {
                seq for seq, old, _ in changes for e in entries if (e.seq, e.value) == (seq, old)
            }
            assert await backend.rewrite_series(*target, changes) == len(hits), target
            model[target] = [
                SeriesEntry(e.ts, e.seq, b"x") if e.seq in hits else e for e in entries
            ]
            for key, expected in model.items():
                assert await backend.read_series(*key) == expected, (target, key)
        assert [e.value for e in model[(NS, "s")]] == [b"x"] * 3
        stats = await backend.namespace_stats(NS)
        assert stats.series["s"].length == 3 and stats.series["s"].bytes == 3

    async def test_rewrite_series_empty_changes(self, backend: Backend) -> None:
        """An empty change list returns 0 and changes nothing (and creates no series)."""
        require_capability(backend, "supports_series_rewrite")
        await backend.append(NS, "s", b"a", ts=1.0)
        before = await backend.read_series(NS, "s")
        assert await backend.rewrite_series(NS, "s", []) == 0
        assert await backend.rewrite_series(NS, "missing", []) == 0
        assert await backend.read_series(NS, "s") == before
        assert await backend.series_names(NS) == ["s"]

    async def test_rewrite_series_binary_and_large_values(self, backend: Backend) -> None:
        """Empty, binary and large values are compared and stored byte for byte."""
        require_capability(backend, "supports_series_rewrite")
        limit = backend.capabilities.max_value_size
        size = min(MiB, limit) if limit else MiB
        big = _rng().randbytes(size)
        values = [b"", b"\x00", bytes(range(256)), b"*1\r\n$4\r\nPING\r\n", b"\xff\xfe\xc3\x28"]
        for i, value in enumerate(values):
            await backend.append(NS, "s", value, ts=float(i))
        e_empty, e_nul, e_all, e_resp, e_bad = await backend.read_series(NS, "s")
        changes = [
            (e_empty.seq, b"", big),  # empty -> 1 MiB
            (e_nul.seq, b"", b"never"),  # b"" does not match b"\x00"
            (e_all.seq, bytes(range(256)), b""),  # binary -> empty
            (e_resp.seq, b"*1\r\n$4\r\nPING\r\n", bytes(range(255, -1, -1))),
            (e_bad.seq, b"\xff\xfe\xc3", b"never"),
        ]
        assert await backend.rewrite_series(NS, "s", changes) == 3
        got = [e.value for e in await backend.read_series(NS, "s")]
        assert got == [big, b"\x00", b"", bytes(range(255, -1, -1)), b"\xff\xfe\xc3\x28"]
        # a large old value is compared in full: one flipped last byte does not match
        flipped = big[:-1] + bytes([big[-1] ^ 1])
        assert await backend.rewrite_series(NS, "s", [(e_empty.seq, flipped, b"x")]) == 0
        assert await backend.rewrite_series(NS, "s", [(e_empty.seq, big, b"small")]) == 1
        assert (await backend.read_series(NS, "s"))[0].value == b"small"

    async def test_cancelled_rewrite_series_is_never_torn(self, backend: Backend) -> None:
        """A cancelled rewrite leaves each entry old or new, never torn, and loses none."""
        require_capability(backend, "supports_series_rewrite")
        for j in range(16):
            await backend.append(NS, "s", bytes([j]) * 8192, ts=float(j))
        for i in range(self.cancel_rounds // 2):
            before = await backend.read_series(NS, "s")
            new = i.to_bytes(4, "big") + bytes([i % 256]) * 8192
            changes = [(e.seq, e.value, new) for e in before]
            await self._cancel_after(backend.rewrite_series(NS, "s", changes), i % 7)
            after = await backend.read_series(NS, "s")
            assert [(e.ts, e.seq) for e in after] == [(e.ts, e.seq) for e in before]
            for old, now in zip(before, after, strict=True):
                assert now.value in (old.value, new), "torn value after a cancelled rewrite"
        current = await backend.read_series(NS, "s")
        changes = [(e.seq, e.value, b"final") for e in current]
        assert await backend.rewrite_series(NS, "s", changes) == 16
        assert [e.value for e in await backend.read_series(NS, "s")] == [b"final"] * 16

    # -- counters -----------------------------------------------------------------------
    async def test_incr(self, backend: Backend) -> None:
        """incr creates at 0, adds floats and negatives, returns the new value."""
        require_capability(backend, "supports_counters")
        assert await backend.incr(NS, "q", "s1", "a") == 1.0
        assert await backend.incr(NS, "q", "s1", "a") == 2.0
        assert await backend.incr(NS, "q", "s1", "a", 0.5) == 2.5
        assert await backend.incr(NS, "q", "s1", "a", -4) == -1.5
        value = await backend.incr(NS, "q", "s1", "b", -0.25)
        assert value == -0.25 and isinstance(value, float)
        assert await backend.get_counters(NS, "q", ["s1"]) == {"s1": {"a": -1.5, "b": -0.25}}

    async def test_concurrent_incr_is_exact(self, backend: Backend) -> None:
        """50 concurrent increments are all counted."""
        require_capability(backend, "supports_counters")
        await asyncio.gather(*(backend.incr(NS, "q", "hot", "n") for _ in range(50)))
        await asyncio.gather(*(backend.incr(NS, "q", "hot", "f", 0.25) for _ in range(50)))
        got = await backend.get_counters(NS, "q", ["hot"])
        assert got == {"hot": {"n": 50.0, "f": 12.5}}

    async def test_get_counters_batch(self, backend: Backend) -> None:
        """get_counters returns every field of the ids that have counters."""
        require_capability(backend, "supports_counters")
        await backend.incr(NS, "q", "a", "x", 1)
        await backend.incr(NS, "q", "a", "y", 2)
        await backend.incr(NS, "q", "b", "x", 3)
        await backend.incr(NS, "q2", "c", "x", 4)
        got = await backend.get_counters(NS, "q", ["a", "b", "c", "missing", "a"])
        assert got == {"a": {"x": 1.0, "y": 2.0}, "b": {"x": 3.0}}
        assert await backend.get_counters(NS, "q", []) == {}
        assert await backend.get_counters(NS2, "q", ["a"]) == {}

    async def test_delete_counters(self, backend: Backend) -> None:
        """delete_counters removes all fields of one id."""
        require_capability(backend, "supports_counters")
        await backend.incr(NS, "q", "a", "x")
        await backend.incr(NS, "q", "a", "y")
        await backend.incr(NS, "q", "b", "x")
        assert await backend.delete_counters(NS, "q", "a") is True
        assert await backend.delete_counters(NS, "q", "a") is False
        assert await backend.get_counters(NS, "q", ["a", "b"]) == {"b": {"x": 1.0}}
        assert await backend.incr(NS, "q", "a", "x") == 1.0

    async def test_counters_are_not_records(self, backend: Backend) -> None:
        """Counters and records of the same id are independent."""
        require_capability(backend, "supports_counters")
        await backend.put(NS, "k", "a", b"rec")
        await backend.incr(NS, "k", "a", "n", 5)
        await backend.incr(NS, "only-counters", "z", "n")
        rec = await backend.get(NS, "k", "a")
        assert rec is not None and (rec.value, rec.version) == (b"rec", 1)
        assert await backend.kinds(NS) == ["k"]
        assert await backend.list_ids(NS, "only-counters") == []
        await backend.delete(NS, "k", "a")
        assert await backend.get_counters(NS, "k", ["a"]) == {"a": {"n": 5.0}}

    # -- namespaces, kinds, stats -------------------------------------------------------
    async def test_kinds(self, backend: Backend) -> None:
        """kinds() lists, sorted, the kinds that hold live records."""
        assert await backend.kinds(NS) == []
        await backend.put(NS, "b", "1", b"x")
        await backend.put(NS, "a", "1", b"x")
        await backend.put(NS, "a:b", "1", b"x")
        await backend.put(NS2, "z", "1", b"x")
        assert await backend.kinds(NS) == ["a", "a:b", "b"]
        await backend.delete(NS, "b", "1")
        assert await backend.kinds(NS) == ["a", "a:b"]
        assert await backend.kinds(NS2) == ["z"]

    async def test_namespace_stats(self, backend: Backend) -> None:
        """namespace_stats counts records and bytes per kind and spans per series."""
        empty = await backend.namespace_stats(NS)
        assert isinstance(empty, NamespaceStats)
        assert empty.kinds == {} and empty.series == {}
        await backend.put_many(NS, "k", {"a": b"12345", "b": b"123"})
        await backend.put(NS, "j", "a", b"1")
        await backend.put(NS2, "k", "zz", b"1" * 100)
        stats = await backend.namespace_stats(NS)
        assert stats.kinds == {"j": KindStats(1, 1), "k": KindStats(2, 8)}
        if backend.capabilities.supports_series:
            await backend.append(NS, "s", b"abc", ts=5.0)
            await backend.append(NS, "s", b"de", ts=2.0)
            stats = await backend.namespace_stats(NS)
            s = stats.series["s"]
            assert (s.length, s.bytes, s.oldest, s.newest) == (2, 5, 2.0, 5.0)
            assert list(stats.series) == ["s"]

    async def test_drop_namespace_isolation(self, backend: Backend) -> None:
        """drop_namespace removes one namespace, not its look-alikes."""
        for ns in (NS, NS2, "hmkit/a", "hmkit/a:b"):
            await backend.put(ns, "k", "id", ns.encode())
            if backend.capabilities.supports_series:
                await backend.append(ns, "s", ns.encode(), ts=1.0)
            if backend.capabilities.supports_counters:
                await backend.incr(ns, "k", "id", "n")
        await backend.drop_namespace(NS)
        await backend.drop_namespace("hmkit/a")
        assert await backend.get(NS, "k", "id") is None
        assert await backend.kinds(NS) == []
        assert await backend.get("hmkit/a", "k", "id") is None
        for ns in (NS2, "hmkit/a:b"):
            rec = await backend.get(ns, "k", "id")
            assert rec is not None and rec.value == ns.encode()
        if backend.capabilities.supports_series:
            assert await backend.read_series(NS, "s") == []
            assert await backend.series_names("hmkit/a") == []
            assert [e.value for e in await backend.read_series(NS2, "s")] == [NS2.encode()]
        if backend.capabilities.supports_counters:
            assert await backend.get_counters(NS, "k", ["id"]) == {}
            assert await backend.get_counters("hmkit/a:b", "k", ["id"]) == {"id": {"n": 1.0}}
        await backend.drop_namespace("never-used-namespace")

    async def test_empty_namespace_is_a_namespace(self, backend: Backend) -> None:
        """The empty string is a namespace of its own."""
        await backend.put("", "hmkit/a", "b", b"empty-ns")
        await backend.put(NS, "hmkit/a", "b", b"kit")
        rec = await backend.get("", "hmkit/a", "b")
        assert rec is not None and rec.value == b"empty-ns"
        assert await backend.list_ids("", "hmkit/a") == ["b"]

    # -- lifecycle ----------------------------------------------------------------------
    async def test_ping(self, backend: Backend) -> None:
        """ping answers True on a healthy store."""
        assert await backend.ping() is True

    async def test_stats_are_json(self, backend: Backend) -> None:
        """stats() is JSON-serializable."""
        await backend.put(NS, "k", "a", b"1")
        stats = await backend.stats()
        assert isinstance(stats, dict)
        assert json.loads(json.dumps(stats)) == stats

    async def test_close_twice_is_safe(self, backend_factory: Callable[[], Backend]) -> None:
        """close may be called twice."""
        other = backend_factory()
        await other.open()
        assert await other.ping() is True
        await other.close()
        await other.close()

    async def test_close_without_open_is_safe(self, backend_factory: Callable[[], Backend]) -> None:
        """close on a never-opened backend is harmless."""
        other = backend_factory()
        await other.close()

    async def test_persistent_data_survives_reopen(
        self, backend_factory: Callable[[], Backend]
    ) -> None:
        """Persistent backends keep records, series and counters across reopen."""
        first = backend_factory()
        require_capability(first, "persistent")
        caps = first.capabilities
        await first.open()
        try:
            await first.drop_namespace(NS)
            await first.put(NS, "k", "a", b"durable")
            await first.put(NS, "k", "a", b"durable2")
            if caps.supports_series:
                await first.append(NS, "s", b"e", ts=1.0)
            if caps.supports_counters:
                await first.incr(NS, "q", "a", "n", 3)
        finally:
            await first.close()
        again = backend_factory()
        await again.open()
        try:
            rec = await again.get(NS, "k", "a")
            assert rec is not None and (rec.value, rec.version) == (b"durable2", 2)
            if caps.supports_series:
                assert [e.value for e in await again.read_series(NS, "s")] == [b"e"]
            if caps.supports_counters:
                assert await again.get_counters(NS, "q", ["a"]) == {"a": {"n": 3.0}}
            await again.drop_namespace(NS)
        finally:
            await again.close()

    async def test_shared_between_clients(
        self, backend: Backend, backend_factory: Callable[[], Backend]
    ) -> None:
        """Shared backends show one client's writes to another."""
        require_capability(backend, "shared")
        other = backend_factory()
        await other.open()
        try:
            await backend.put(NS, "k", "a", b"from-first")
            rec = await other.get(NS, "k", "a")
            assert rec is not None and rec.value == b"from-first"
            assert await other.put(NS, "k", "a", b"from-second") == 2
            rec = await backend.get(NS, "k", "a")
            assert rec is not None and (rec.value, rec.version) == (b"from-second", 2)
            if backend.capabilities.supports_counters:
                await asyncio.gather(
                    *(c.incr(NS, "q", "x", "n") for c in (backend, other) for _ in range(20))
                )
                assert await other.get_counters(NS, "q", ["x"]) == {"x": {"n": 40.0}}
        finally:
            await other.close()

    # -- cancellation -------------------------------------------------------------------
    async def _cancel_after(self, coro: Any, spins: int) -> None:
        task = asyncio.ensure_future(coro)
        for _ in range(spins):
            await asyncio.sleep(0)  # yield to the loop: cancel at varying points
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def test_cancelled_put_is_all_or_nothing(self, backend: Backend) -> None:
        """A cancelled put leaves the old or the new value, never a torn one."""
        size = 64 * 1024
        written: set[bytes] = set()
        for i in range(self.cancel_rounds):
            value = i.to_bytes(4, "big") + bytes([i % 256]) * size
            written.add(value)
            await self._cancel_after(backend.put(NS, "k", "x", value), i % 7)
            rec = await backend.get(NS, "k", "x")
            assert rec is None or rec.value in written, "torn value after a cancelled put"
        await backend.put(NS, "k", "other", b"other")
        final = await backend.put(NS, "k", "x", b"final")
        rec = await backend.get(NS, "k", "x")
        assert rec is not None and rec.value == b"final" and rec.version == final
        rec = await backend.get(NS, "k", "other")
        assert rec is not None and rec.value == b"other"

    async def test_cancelled_put_many_is_never_torn(self, backend: Backend) -> None:
        """A cancelled put_many never leaves torn values."""
        ids = [f"m{j}" for j in range(16)]
        written: set[bytes] = set()
        for i in range(self.cancel_rounds // 2):
            value = i.to_bytes(4, "big") + bytes([i % 256]) * 8192
            written.add(value)
            await self._cancel_after(backend.put_many(NS, "k", dict.fromkeys(ids, value)), i % 7)
            got = await backend.get_many(NS, "k", ids)
            assert all(r.value in written for r in got.values()), "torn value after cancel"
        await backend.put_many(NS, "k", dict.fromkeys(ids, b"final"))
        got = await backend.get_many(NS, "k", ids)
        assert {k: r.value for k, r in got.items()} == dict.fromkeys(ids, b"final")

    async def test_cancelled_reads_leave_client_consistent(self, backend: Backend) -> None:
        """Cancelled reads never leave a reply that answers a later call."""
        values = {f"r{j}": (b"%d-" % j) * (1000 + j) for j in range(8)}
        await backend.put_many(NS, "k", values)
        for i in range(self.cancel_rounds):
            id_ = f"r{i % 8}"
            await self._cancel_after(backend.get(NS, "k", id_), i % 5)
            await self._cancel_after(backend.get_many(NS, "k", list(values)), (i + 2) % 5)
            # a reply left behind by a cancelled call must never answer the next one
            probe = f"r{(i + 3) % 8}"
            rec = await backend.get(NS, "k", probe)
            assert rec is not None and rec.value == values[probe]
        got = await backend.list_records(NS, "k")
        assert {i: r.value for i, r in got} == values

    async def test_cancelled_incr_counts_once_or_not_at_all(self, backend: Backend) -> None:
        """A cancelled incr adds its amount once or not at all."""
        require_capability(backend, "supports_counters")
        last = 0.0
        for i in range(self.cancel_rounds // 2):
            await self._cancel_after(backend.incr(NS, "q", "c", "n"), i % 5)
            got = await backend.get_counters(NS, "q", ["c"])
            value = got.get("c", {}).get("n", 0.0)
            # each cancelled call adds one or nothing: never twice, never a fraction
            assert value == int(value) and last <= value <= i + 1, (i, value)
            last = value
        assert await backend.incr(NS, "q", "c", "n", 0.5) - 0.5 >= last

    # -- stateful -----------------------------------------------------------------------
    def test_stateful_against_model(self, backend: Backend, hivemem_runner: asyncio.Runner) -> None:
        """Random operations on the backend and a dict model must agree (hypothesis).

        Two namespaces, long and short TTLs included; see :mod:`hivemem.testing.stateful`.
        """
        from .stateful import run_backend_state_machine

        run_backend_state_machine(
            backend,
            hivemem_runner,
            max_examples=self.stateful_max_examples,
            step_count=self.stateful_step_count,
            short_ttl=self.stateful_short_ttl,
            expiry_timeout=self.expiry_timeout,
            **self.stateful_settings,
        )
