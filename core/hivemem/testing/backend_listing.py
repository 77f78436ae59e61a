"""Backend suite, listing: code-point order, prefixes, cursors, isolation, tricky strings."""

from __future__ import annotations

import json

import pytest

from hivemem.backend import Backend, Record

from .backend_base import NS, NS2, SEPARATOR_TRIPLES, BackendTestBase
from .helpers import TRICKY_STRINGS

__all__ = ["LOOKALIKE_PLACES", "ListingTests", "lookalike_value"]

_SHARED = ["p", "p0", "p1", "p1:a", "p2", "q"]
#: (namespace, kind) -> ids: look-alike places holding the same ids, prefixes and
#: ids of their own inside every prefix and cursor window
LOOKALIKE_PLACES: dict[tuple[str, str], list[str]] = {
    (NS, "k"): [*_SHARED, "p0a", "p3", "r"],
    (NS2, "k"): [*_SHARED, "", "o", "p00", "p1a", "p4", "pz"],
    (NS, "k2"): [*_SHARED, "o", "p01", "p1b", "p5"],
    (NS, "k:p"): [*_SHARED, "0", "1", ":a"],
    (NS2, "k2"): [*_SHARED, "p0b", "p6"],
}
#: every id any look-alike place holds
LOOKALIKE_IDS: list[str] = sorted({i for ids in LOOKALIKE_PLACES.values() for i in ids})


def lookalike_value(ns: str, kind: str, id_: str) -> bytes:
    """The value stored at ``(ns, kind, id_)`` by the look-alike test: its own address."""
    return json.dumps([ns, kind, id_]).encode()


class ListingTests(BackendTestBase):
    """Ordered prefix listing with limits and cursors; hostile ids, kinds and namespaces."""

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
        for (ns, kind), ids in LOOKALIKE_PLACES.items():
            await backend.put_many(ns, kind, {i: lookalike_value(ns, kind, i) for i in ids})
        for (ns, kind), ids in LOOKALIKE_PLACES.items():
            own = (NS, "k") == (ns, kind)  # the full check for one place, a quick one for others
            for reverse in (False, True):
                for prefix in ("", "p", "p0", "p1", "o", "q") if own else ("", "p"):
                    where = f"{ns!r}/{kind!r} prefix={prefix!r} reverse={reverse}"
                    want = sorted((i for i in ids if i.startswith(prefix)), reverse=reverse)
                    leak = f"another namespace or kind leaked into {where}"
                    await self._check_listing(backend, (ns, kind, prefix), reverse, want, leak)
                    if not own:
                        continue
                    for records in (False, True):
                        await self._check_paging(
                            backend, (ns, kind, prefix), reverse, records, want, leak
                        )
                    await self._check_cursors(backend, (ns, kind, prefix), reverse, want, leak)

    @staticmethod
    async def _check_listing(
        backend: Backend, where: tuple[str, str, str], reverse: bool, want: list[str], leak: str
    ) -> None:
        """One unbounded listing of ``(ns, kind, prefix)``: exactly ``want``, own values."""
        ns, kind, prefix = where
        got = await backend.list_ids(ns, kind, prefix, reverse=reverse)
        assert got == want, f"list_ids: {leak}: {got}"
        recs = await backend.list_records(ns, kind, prefix, reverse=reverse)
        assert [(i, r.value) for i, r in recs] == [
            (i, lookalike_value(ns, kind, i)) for i in want
        ], f"list_records: {leak}"

    @staticmethod
    async def _check_paging(
        backend: Backend,
        where: tuple[str, str, str],
        reverse: bool,
        records: bool,
        want: list[str],
        leak: str,
    ) -> None:
        """Pages of two, each cursor the last id of the page before, visit exactly ``want``."""
        ns, kind, prefix = where
        seen: list[tuple[str, bytes | None]] = []
        cursor: str | None = None
        for _ in range(len(LOOKALIKE_IDS) + 1):  # bounded: a stuck cursor fails
            page: list[tuple[str, bytes | None]]
            if records:
                rows = await backend.list_records(
                    ns, kind, prefix, limit=2, cursor=cursor, reverse=reverse
                )
                page = [(i, r.value) for i, r in rows]
            else:
                ids = await backend.list_ids(
                    ns, kind, prefix, limit=2, cursor=cursor, reverse=reverse
                )
                page = [(i, None) for i in ids]
            if not page:
                break
            seen += page
            cursor = page[-1][0]
        expected = [(i, lookalike_value(ns, kind, i) if records else None) for i in want]
        method = "list_records" if records else "list_ids"
        assert seen == expected, f"{method} paging: {leak}"

    @staticmethod
    async def _check_cursors(
        backend: Backend,
        where: tuple[str, str, str],
        reverse: bool,
        want: list[str],
        leak: str,
    ) -> None:
        """A cursor at every id any place holds (most are not this place's) bounds exactly."""
        ns, kind, prefix = where
        for cursor in LOOKALIKE_IDS:
            after = [i for i in want if (i < cursor if reverse else i > cursor)]
            got = await backend.list_ids(ns, kind, prefix, limit=3, cursor=cursor, reverse=reverse)
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
