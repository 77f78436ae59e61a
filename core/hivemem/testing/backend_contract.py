"""Backend suite, the base class's own rules: lifecycle, TTL validation, scan, composed defaults.

:class:`~hivemem.backend.Backend` owns these rules, so a backend gets them by
subclassing it; the tests prove nothing in the subclass bypasses them:

* every guarded call (:data:`~hivemem.backend.GUARDED`) made before
  ``open()`` or after ``close()`` raises
  :class:`~hivemem.errors.BackendClosed` with the base class's message, and a
  second ``open()`` changes nothing;
* ``put``/``put_many`` refuse a ttl that is not a positive, finite number of
  seconds with :class:`~hivemem.errors.InvalidTTL` and store nothing;
* ``scan`` is the one listing primitive: ``values=False`` gives the ids of
  ``list_ids`` (records None), ``values=True`` the pairs of ``list_records``;
* the defaults the base class composes (``get``, ``list_ids``,
  ``list_records``, ``namespace_stats``) give exactly what a backend's own
  faster overrides give.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from hivemem.backend import GUARDED, Backend, KindStats, NamespaceStats, SeriesStats
from hivemem.errors import BackendClosed, InvalidTTL

from .backend_base import NS, NS2, BackendTestBase

__all__ = ["BAD_TTLS", "GUARDED_CALLS", "ContractTests"]


def _no_callback(kind: str, id: str | None) -> None:
    """A subscriber that ignores what it is told."""


#: one call per guarded method, with arguments that are valid once the backend is open
GUARDED_CALLS: dict[str, Callable[[Backend], Awaitable[Any]]] = {
    "ping": lambda b: b.ping(),
    "stats": lambda b: b.stats(),
    "get": lambda b: b.get(NS, "k", "a"),
    "get_many": lambda b: b.get_many(NS, "k", ["a"]),
    "put": lambda b: b.put(NS, "k", "a", b"v"),
    "put_many": lambda b: b.put_many(NS, "k", {"a": b"v"}),
    "delete": lambda b: b.delete(NS, "k", "a"),
    "delete_many": lambda b: b.delete_many(NS, "k", ["a"]),
    "scan": lambda b: b.scan(NS, "k"),
    "list_ids": lambda b: b.list_ids(NS, "k"),
    "list_records": lambda b: b.list_records(NS, "k"),
    "kinds": lambda b: b.kinds(NS),
    "namespace_stats": lambda b: b.namespace_stats(NS),
    "drop_namespace": lambda b: b.drop_namespace(NS),
    "append": lambda b: b.append(NS, "s", b"v", ts=1.0),
    "replace_series": lambda b: b.replace_series(NS, "s", [(1.0, b"v")]),
    "read_series": lambda b: b.read_series(NS, "s"),
    "series_names": lambda b: b.series_names(NS),
    "delete_series": lambda b: b.delete_series(NS, "s"),
    "rewrite_series": lambda b: b.rewrite_series(NS, "s", []),
    "incr": lambda b: b.incr(NS, "q", "a", "n"),
    "get_counters": lambda b: b.get_counters(NS, "q", ["a"]),
    "delete_counters": lambda b: b.delete_counters(NS, "q", "a"),
    "purge_residue": lambda b: b.purge_residue(),
    "subscribe": lambda b: b.subscribe(NS, _no_callback),
}

#: ttls that are not a positive, finite number of seconds
BAD_TTLS: tuple[Any, ...] = (0, 0.0, -1, -0.5, math.nan, math.inf, -math.inf, "5", True)

#: ids the scan and composed-default tests store in ``(NS, "k")`` (some written twice)
SCAN_IDS: tuple[str, ...] = ("", "a", "a\x00", "ab", "abc", "b", "b0", "ba", "c", "\U0010ffff")
#: (prefix, limit, cursor) windows listed in both directions
SCAN_WINDOWS: list[tuple[str, int | None, str | None]] = list(
    itertools.product(("", "a", "b", "zz"), (None, 0, 1, 3), (None, "ab", "b00", "\x00"))
)


async def _wrong_answers(backend: Backend, message: str) -> dict[str, str]:
    """Guarded calls that did not raise ``BackendClosed(message)``, with what they did."""
    wrong: dict[str, str] = {}
    for name, call in GUARDED_CALLS.items():
        try:
            result = await call(backend)
        except BackendClosed as exc:
            if str(exc) != message:
                wrong[name] = f"BackendClosed({str(exc)!r})"
        except Exception as exc:
            wrong[name] = f"raised {type(exc).__name__}: {exc!s:.120}"
        else:
            wrong[name] = f"returned {result!r:.80}"
    return wrong


def _expected_ids(prefix: str, limit: int | None, cursor: str | None, reverse: bool) -> list[str]:
    """What a listing of :data:`SCAN_IDS` in this window returns."""
    ids = sorted((i for i in SCAN_IDS if i.startswith(prefix)), reverse=reverse)
    if cursor is not None:
        ids = [i for i in ids if (i < cursor if reverse else i > cursor)]
    return ids if limit is None else ids[:limit]


class ContractTests(BackendTestBase):
    """The rules :class:`~hivemem.backend.Backend` itself enforces for every backend."""

    # -- lifecycle owned by the base class -------------------------------------------
    async def test_every_call_before_open_raises_backend_closed(
        self, backend_factory: Callable[[], Backend]
    ) -> None:
        """Every guarded call on a backend never opened raises BackendClosed, saying so."""
        assert set(GUARDED_CALLS) == set(GUARDED), "the kit's GUARDED_CALLS is out of date"
        fresh = backend_factory()
        try:
            wrong = await _wrong_answers(
                fresh, f"{fresh.name} backend is not open (call open() first)"
            )
        finally:
            await fresh.close()
        assert wrong == {}, f"calls before open() not refused with BackendClosed: {wrong}"

    async def test_every_call_after_close_raises_backend_closed(
        self, backend_factory: Callable[[], Backend]
    ) -> None:
        """Every guarded call on a closed backend raises BackendClosed, saying it is closed."""
        closed = backend_factory()
        await closed.open()
        assert await closed.ping() is True
        await closed.close()
        assert closed.is_open is False
        wrong = await _wrong_answers(closed, f"{closed.name} backend is closed")
        assert wrong == {}, f"calls after close() not refused with BackendClosed: {wrong}"

    async def test_open_twice_changes_nothing(self, backend_factory: Callable[[], Backend]) -> None:
        """A second open() is a no-op: the backend stays open and keeps what it holds."""
        twice = backend_factory()
        assert twice.is_open is False
        await twice.open()
        try:
            await twice.drop_namespace(NS)
            assert await twice.put(NS, "k", "a", b"kept") == 1
            await twice.open()
            assert twice.is_open is True
            assert await twice.ping() is True
            rec = await twice.get(NS, "k", "a")
            assert rec is not None and (rec.value, rec.version) == (b"kept", 1)
            await twice.drop_namespace(NS)
        finally:
            await twice.close()
        assert twice.is_open is False

    # -- ttl validation ----------------------------------------------------------------
    async def test_bad_ttl_raises_invalid_ttl_and_stores_nothing(self, backend: Backend) -> None:
        """A ttl that is not a positive, finite number is InvalidTTL; nothing is written."""
        assert issubclass(InvalidTTL, ValueError)
        await backend.put(NS, "k", "kept", b"old")
        for ttl in BAD_TTLS:
            with pytest.raises(InvalidTTL):
                await backend.put(NS, "k", "new", b"v", ttl=ttl)
            with pytest.raises(InvalidTTL):
                await backend.put(NS, "k", "kept", b"v", ttl=ttl)
            with pytest.raises(InvalidTTL):
                await backend.put(NS, "k", "kept", b"v", ttl=ttl, expected_version=1)
            with pytest.raises(InvalidTTL):
                await backend.put_many(NS, "k", {"new": b"v", "kept": b"v"}, ttl=ttl)
        assert await backend.list_ids(NS, "k") == ["kept"]
        assert await backend.get(NS, "k", "new") is None
        rec = await backend.get(NS, "k", "kept")
        assert rec is not None and (rec.value, rec.version, rec.expires_at) == (b"old", 1, None)

    # -- scan, the listing primitive ---------------------------------------------------
    async def _store_scan_ids(self, backend: Backend) -> None:
        """:data:`SCAN_IDS` in ``(NS, "k")`` (``ab`` and ``c`` twice), look-alikes elsewhere."""
        await backend.put_many(NS, "k", {i: i.encode() + b"!" for i in SCAN_IDS})
        await backend.put_many(NS, "k", {"ab": b"second", "c": b""})
        await backend.put_many(NS, "k2", {"a": b"other kind", "b1": b"other kind"})
        await backend.put_many(NS2, "k", {"a": b"other ns", "b1": b"other ns"})

    async def test_scan_without_values_gives_the_ids_of_list_ids(self, backend: Backend) -> None:
        """scan(values=False): the ids list_ids gives, in order, every record None."""
        await self._store_scan_ids(backend)
        for (prefix, limit, cursor), reverse in itertools.product(SCAN_WINDOWS, (False, True)):
            where = f"prefix={prefix!r} limit={limit} cursor={cursor!r} reverse={reverse}"
            window: dict[str, Any] = {"limit": limit, "cursor": cursor, "reverse": reverse}
            want = _expected_ids(prefix, limit, cursor, reverse)
            rows = await backend.scan(NS, "k", prefix, values=False, **window)
            assert rows == [(i, None) for i in want], where
            assert await backend.list_ids(NS, "k", prefix, **window) == want, where

    async def test_scan_with_values_gives_the_records_of_list_records(
        self, backend: Backend
    ) -> None:
        """scan(values=True), the default: exactly the (id, record) pairs of list_records."""
        await self._store_scan_ids(backend)
        values = {i: i.encode() + b"!" for i in SCAN_IDS} | {"ab": b"second", "c": b""}
        for (prefix, limit, cursor), reverse in itertools.product(SCAN_WINDOWS, (False, True)):
            where = f"prefix={prefix!r} limit={limit} cursor={cursor!r} reverse={reverse}"
            window: dict[str, Any] = {"limit": limit, "cursor": cursor, "reverse": reverse}
            want = _expected_ids(prefix, limit, cursor, reverse)
            rows = await backend.scan(NS, "k", prefix, values=True, **window)
            got = [(i, r.value, r.version) for i, r in rows if r is not None]
            assert got == [(i, values[i], 2 if i in ("ab", "c") else 1) for i in want], where
            assert rows == await backend.list_records(NS, "k", prefix, **window), where
            assert rows == await backend.scan(NS, "k", prefix, **window), where

    # -- the composed defaults agree with the backend's overrides ----------------------
    async def test_composed_get_agrees_with_the_backend(self, backend: Backend) -> None:
        """Backend.get (built on get_many) returns what the backend's get returns."""
        await self._store_scan_ids(backend)
        for id_ in (*SCAN_IDS, "missing", "a\x00\x00", "B"):
            composed = await Backend.get(backend, NS, "k", id_)
            assert composed == await backend.get(NS, "k", id_), repr(id_)
            assert (composed is None) == (id_ not in SCAN_IDS), repr(id_)

    async def test_composed_listings_agree_with_the_backend(self, backend: Backend) -> None:
        """Backend.list_ids and Backend.list_records (built on scan) match the backend's."""
        await self._store_scan_ids(backend)
        for (prefix, limit, cursor), reverse in itertools.product(SCAN_WINDOWS, (False, True)):
            where = f"prefix={prefix!r} limit={limit} cursor={cursor!r} reverse={reverse}"
            window: dict[str, Any] = {"limit": limit, "cursor": cursor, "reverse": reverse}
            ids = await Backend.list_ids(backend, NS, "k", prefix, **window)
            assert ids == await backend.list_ids(NS, "k", prefix, **window), where
            assert ids == _expected_ids(prefix, limit, cursor, reverse), where
            records = await Backend.list_records(backend, NS, "k", prefix, **window)
            assert records == await backend.list_records(NS, "k", prefix, **window), where
            assert [i for i, _ in records] == ids, where

    async def test_composed_namespace_stats_agree_with_the_backend(self, backend: Backend) -> None:
        """Backend.namespace_stats (paging through scan) equals the backend's, exactly.

        One kind holds more records than one page of the composed default, one
        holds an empty value; series have ties and an entry before the epoch.
        """
        assert await Backend.namespace_stats(backend, NS) == NamespaceStats()
        assert await backend.namespace_stats(NS) == NamespaceStats()
        many = {f"m{n:04d}": b"x" * (n % 7) for n in range(1100)}
        await backend.put_many(NS, "many", many)
        await backend.put_many(NS, "few", {"": b"", "a": b"12345", "b": b"\x00"})
        await backend.put(NS, "few", "a", b"123")
        await backend.put(NS2, "few", "zz", b"1" * 100)
        expected = NamespaceStats(
            kinds={
                "few": KindStats(count=3, bytes=4),
                "many": KindStats(count=1100, bytes=sum(len(v) for v in many.values())),
            }
        )
        if backend.capabilities.supports_series:
            for ts, value in ((5.0, b"abc"), (2.0, b"de"), (5.0, b""), (-1.5, b"f")):
                await backend.append(NS, "s", value, ts=ts)
            await backend.append(NS, "t", b"only", ts=9.0)
            await backend.append(NS2, "s", b"elsewhere", ts=0.0)
            expected.series["s"] = SeriesStats(length=4, bytes=6, oldest=-1.5, newest=5.0)
            expected.series["t"] = SeriesStats(length=1, bytes=4, oldest=9.0, newest=9.0)
        if backend.capabilities.supports_counters:
            await backend.incr(NS, "few", "a", "n", 2)  # counters are not in the stats
        composed = await Backend.namespace_stats(backend, NS)
        assert composed == expected
        assert await backend.namespace_stats(NS) == composed
