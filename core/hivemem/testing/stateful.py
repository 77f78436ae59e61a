"""A hypothesis state machine that drives a backend and a plain-dict model together.

Every rule performs one random operation on both and asserts they agree:
records (put with and without a TTL, overwrites, CAS put and delete, batches,
prefix listing with limit, cursor and direction, expiry, dropping a
namespace), series (appends, often tied on ts with values out of order,
ranged and latest-N reads, deletes and, with ``supports_series_rewrite``,
in-place rewrites) and counters. Ids, kinds and names come from a small
alphabet full of tricky strings so that collisions, prefixes and ordering are
exercised often. After every step every record, and every series appended
to, is read back and compared with the model.

Every operation lands in one of two namespaces, the second being the first
plus ``":2"`` (so a key scheme or a prefix scan that confuses them shows up),
and the model is keyed by namespace: a read that sees the other namespace's
data, or a drop that removes it, disagrees with the model.

TTL, with ``supports_ttl``: writes draw no TTL or one of an hour or two, so no
record expires during a run; the model keeps the window the reported
``expires_at`` must fall in (the caller's clock before and after the write,
plus the TTL, give or take :data:`CLOCK_SLACK`), and a write without TTL
clears it. The :meth:`~BackendStateMachine.expire` rule rewrites a few records
with a short TTL, then writes a control record with the same TTL and waits
(polling, bounded by ``expiry_timeout``) until the control is gone: everything
written before it has then expired by the store's own clock, so the model
drops those records and every later read must agree (listings skip them, a
new write starts again at version 1). It runs at most once per example, as
it waits.

The machine is synchronous: it drives the async backend through the
:class:`asyncio.Runner` the backend was opened on. Use
:func:`run_backend_state_machine` (what :class:`~hivemem.testing.BackendSuite`
does) to bind it to a backend and run it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any, ClassVar, NamedTuple, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from hivemem.backend import Backend, Capabilities, Record
from hivemem.errors import ConflictError

from .helpers import eventually

__all__ = ["BackendStateMachine", "run_backend_state_machine"]

T = TypeVar("T")

IDS = (
    "", "a", "a:", "a:b", "ab", "b", "\x00", "a\x00", "é", "\U0001f600",
    "\uffff", "\U00010000", "\U0010ffff", "a\U0010ffff", "*", "\r\n",
)  # fmt: skip
PREFIXES = ("", "a", "a:", "\U0010ffff", "*", "z", "\x00")
KINDS = ("k", "k:a")
SERIES = ("s", "s:", "t")
FIELDS = ("f", "", "f:g")
STAMPS = (0.0, 1.0, 1.5, 2.0, 3.0)
BOUNDS = (None, 0.0, 1.0, 1.5, 2.0, 2.5, 4.0)
AMOUNTS = (1.0, -1.0, 0.5, 2.25, -0.125)
#: TTLs (seconds) of "live" writes: far longer than any run
LONG_TTLS = (3600.0, 7200.0)
#: how far a reported ``expires_at`` may stray from the caller's clock plus the TTL
CLOCK_SLACK = 5.0
#: the kind of the :meth:`BackendStateMachine.expire` rule's control record
CONTROL_KIND = "hmkit-expiry-control"

ids = st.sampled_from(IDS)
kinds = st.sampled_from(KINDS)
values = st.binary(max_size=24)
limits = st.sampled_from((None, 0, 1, 2, 5))
#: which of the machine's two namespaces an operation lands in
spaces = st.sampled_from((0, 1))
#: no TTL twice as often as each long one
ttls = st.sampled_from((None, None, *LONG_TTLS))


def _has(flag: str) -> Any:
    return precondition(lambda self: bool(getattr(self.caps, flag)))


class Stored(NamedTuple):
    """What the model knows of one record."""

    value: bytes
    version: int
    #: the window ``expires_at`` must fall in; None: the record must never expire
    expires: tuple[float, float] | None


class BackendStateMachine(RuleBasedStateMachine):
    """Random operations applied to ``backend`` and to a dict model must agree.

    Bind ``backend`` and ``runner`` (class attributes) before running; see
    :func:`run_backend_state_machine`.
    """

    backend: ClassVar[Backend]
    runner: ClassVar[asyncio.Runner]
    ns: ClassVar[str] = "hmkit-sm"
    #: the second namespace (the first one is a prefix of it)
    ns2: ClassVar[str] = "hmkit-sm:2"
    #: the TTL of records the ``expire`` rule lets expire, and how long that may take
    short_ttl: ClassVar[float] = 0.05
    expiry_timeout: ClassVar[float] = 10.0

    def __init__(self) -> None:
        super().__init__()
        self.caps: Capabilities = self.backend.capabilities
        self.records: dict[tuple[str, str, str], Stored] = {}
        self.series: dict[tuple[str, str], list[tuple[float, int, bytes]]] = {}
        self.counters: dict[tuple[str, str, str], dict[str, float]] = {}
        self.expired = False
        #: series appended to since the last ``series_agree`` check
        self.dirty: set[tuple[str, str]] = set()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(coro)

    @property
    def _spaces(self) -> tuple[str, str]:
        return (self.ns, self.ns2)

    def _ns(self, space: int) -> str:
        return self._spaces[space]

    @initialize()
    def start_empty(self) -> None:
        """Every example starts from two empty namespaces."""
        for ns in self._spaces:
            self._run(self.backend.drop_namespace(ns))

    def teardown(self) -> None:
        """Leave nothing behind."""
        for ns in self._spaces:
            self._run(self.backend.drop_namespace(ns))

    # -- records ----------------------------------------------------------------------
    def _version(self, ns: str, kind: str, id: str) -> int:
        cur = self.records.get((ns, kind, id))
        return cur.version if cur else 0

    def _ttl(self, ttl: float | None) -> float | None:
        return ttl if self.caps.supports_ttl else None

    def _write(
        self, coro: Coroutine[Any, Any, T], ttl: float | None
    ) -> tuple[T, tuple[float, float] | None]:
        """Run a write; return its result and the window its records' ``expires_at`` is in."""
        before = time.time()
        result = self._run(coro)
        after = time.time()
        window = None if ttl is None else (before + ttl - CLOCK_SLACK, after + ttl + CLOCK_SLACK)
        return result, window

    @staticmethod
    def _check(rec: Record, expected: Stored, what: Any) -> None:
        """``rec`` holds the model's value and version, and an ``expires_at`` in its window."""
        assert (rec.value, rec.version) == (expected.value, expected.version), what
        if expected.expires is None:
            assert rec.expires_at is None, (
                f"{what}: expires_at {rec.expires_at}, written without ttl"
            )
        else:
            lo, hi = expected.expires
            assert rec.expires_at is not None and lo <= rec.expires_at <= hi, (
                f"{what}: expires_at {rec.expires_at} outside [{lo}, {hi}]"
            )

    def _existing_ids(self, ns: str, kind: str) -> list[str]:
        return sorted(i for (n, k, i) in self.records if (n, k) == (ns, kind))

    def _draw_id(self, ns: str, kind: str, data: st.DataObject) -> str:
        existing = self._existing_ids(ns, kind)
        choices = (st.sampled_from(existing) | ids) if existing else ids
        return data.draw(choices, label="id")

    @rule(space=spaces, kind=kinds, value=values, ttl=ttls, data=st.data())
    def put(
        self, space: int, kind: str, value: bytes, ttl: float | None, data: st.DataObject
    ) -> None:
        """Plain put (often over a stored id): version grows by one; no TTL clears a TTL."""
        ns, ttl = self._ns(space), self._ttl(ttl)
        id = self._draw_id(ns, kind, data)
        version, window = self._write(self.backend.put(ns, kind, id, value, ttl=ttl), ttl)
        assert version == self._version(ns, kind, id) + 1
        self.records[(ns, kind, id)] = Stored(value, version, window)

    @_has("supports_cas")
    @rule(
        space=spaces,
        kind=kinds,
        value=values,
        delta=st.sampled_from((None, -1, 0, 1)),
        ttl=ttls,
        data=st.data(),
    )
    def put_cas(
        self,
        space: int,
        kind: str,
        value: bytes,
        delta: int | None,
        ttl: float | None,
        data: st.DataObject,
    ) -> None:
        """CAS put with the right, a stale, a future or the "must not exist" version."""
        ns, ttl = self._ns(space), self._ttl(ttl)
        id = self._draw_id(ns, kind, data)
        current = self._version(ns, kind, id)
        expected = 0 if delta is None else max(0, current + delta)
        try:
            version, window = self._write(
                self.backend.put(ns, kind, id, value, ttl=ttl, expected_version=expected), ttl
            )
        except ConflictError as exc:
            assert expected != current, "conflict although the version matched"
            assert exc.actual == (current or None)
            return
        assert expected == current, f"CAS with {expected} succeeded at version {current}"
        assert version == current + 1
        self.records[(ns, kind, id)] = Stored(value, version, window)

    @precondition(lambda self: bool(self.records))
    @rule(ttl=ttls, how=st.sampled_from(("put", "put_cas", "put_many")), data=st.data())
    def overwrite(self, ttl: float | None, how: str, data: st.DataObject) -> None:
        """Overwriting a stored record bumps its version and replaces its TTL (none clears it)."""
        ns, kind, id = data.draw(st.sampled_from(sorted(self.records)), label="record")
        ttl = self._ttl(ttl)
        value = data.draw(values, label="value")
        current = self._version(ns, kind, id)
        if how == "put_many":
            _, window = self._write(self.backend.put_many(ns, kind, {id: value}, ttl=ttl), ttl)
        else:
            cas = how == "put_cas" and self.caps.supports_cas
            kw: dict[str, Any] = {"expected_version": current} if cas else {}
            version, window = self._write(self.backend.put(ns, kind, id, value, ttl=ttl, **kw), ttl)
            assert version == current + 1
        self.records[(ns, kind, id)] = Stored(value, current + 1, window)
        rec = self._run(self.backend.get(ns, kind, id))
        assert rec is not None, (ns, kind, id)
        self._check(rec, self.records[(ns, kind, id)], (ns, kind, id, how))

    @rule(space=spaces, kind=kinds, data=st.data())
    def get(self, space: int, kind: str, data: st.DataObject) -> None:
        """get agrees with the model."""
        ns = self._ns(space)
        id = self._draw_id(ns, kind, data)
        rec = self._run(self.backend.get(ns, kind, id))
        expected = self.records.get((ns, kind, id))
        if expected is None:
            assert rec is None
        else:
            assert rec is not None
            self._check(rec, expected, (ns, kind, id))

    @rule(space=spaces, kind=kinds, cas=st.booleans(), data=st.data())
    def delete(self, space: int, kind: str, cas: bool, data: st.DataObject) -> None:
        """delete (optionally with the current version as CAS) agrees with the model."""
        ns = self._ns(space)
        id = self._draw_id(ns, kind, data)
        if cas and not self.caps.supports_cas:
            cas = False
        current = self._version(ns, kind, id)
        kwargs = {"expected_version": current} if cas else {}
        removed = self._run(self.backend.delete(ns, kind, id, **kwargs))
        assert removed == (current > 0)
        self.records.pop((ns, kind, id), None)

    @rule(space=spaces, kind=kinds, ttl=ttls, data=st.data())
    def put_many(self, space: int, kind: str, ttl: float | None, data: st.DataObject) -> None:
        """put_many creates at version 1, bumps existing versions by one, applies its TTL."""
        ns, ttl = self._ns(space), self._ttl(ttl)
        existing = self._existing_ids(ns, kind)
        keys = (st.sampled_from(existing) | ids) if existing else ids
        items = data.draw(st.dictionaries(keys, values, max_size=5), label="items")
        _, window = self._write(self.backend.put_many(ns, kind, items, ttl=ttl), ttl)
        for id, value in items.items():
            self.records[(ns, kind, id)] = Stored(value, self._version(ns, kind, id) + 1, window)

    @rule(space=spaces, kind=kinds, data=st.data())
    def get_many(self, space: int, kind: str, data: st.DataObject) -> None:
        """get_many returns exactly the live wanted ids (duplicates allowed)."""
        ns = self._ns(space)
        existing = self._existing_ids(ns, kind)
        keys = (st.sampled_from(existing) | ids) if existing else ids
        wanted = data.draw(st.lists(keys, max_size=6), label="wanted")
        got = self._run(self.backend.get_many(ns, kind, wanted))
        expected = {i for i in wanted if (ns, kind, i) in self.records}
        assert set(got) == expected
        for i, rec in got.items():
            self._check(rec, self.records[(ns, kind, i)], (ns, kind, i))

    @rule(space=spaces, kind=kinds, data=st.data())
    def delete_many(self, space: int, kind: str, data: st.DataObject) -> None:
        """delete_many counts each live id once."""
        ns = self._ns(space)
        existing = self._existing_ids(ns, kind)
        keys = (st.sampled_from(existing) | ids) if existing else ids
        doomed = data.draw(st.lists(keys, max_size=6), label="doomed")
        n = self._run(self.backend.delete_many(ns, kind, doomed))
        live = {i for i in doomed if (ns, kind, i) in self.records}
        assert n == len(live)
        for i in live:
            del self.records[(ns, kind, i)]

    def _listing_bounds(self, kind: str, data: st.DataObject) -> tuple[str, str | None]:
        """A prefix and a cursor, often taken from ids stored in either namespace.

        Ids stored in one namespace only are favoured as prefixes: listing the
        other namespace by them is where a leak between namespaces shows.
        """
        prefixes = st.sampled_from(PREFIXES)
        cursors = ids | st.just("a0")
        held = [{i for (n, k, i) in self.records if (n, k) == (ns, kind)} for ns in self._spaces]
        stored_ids = sorted(held[0] | held[1])
        if stored_ids:
            stored = st.sampled_from(stored_ids)
            prefixes = st.just("") | stored.map(lambda i: i[:1]) | stored | prefixes
            cursors = stored | cursors
        lonely = sorted(held[0] ^ held[1])
        if lonely:
            alone = st.sampled_from(lonely)
            prefixes = alone | alone.map(lambda i: i[:1]) | prefixes
        return data.draw(prefixes, label="prefix"), data.draw(st.none() | cursors, label="cursor")

    @rule(
        kind=kinds,
        limit=limits,
        reverse=st.booleans(),
        with_records=st.booleans(),
        data=st.data(),
    )
    def listing(
        self,
        kind: str,
        limit: int | None,
        reverse: bool,
        with_records: bool,
        data: st.DataObject,
    ) -> None:
        """Prefix listing with limit, cursor and direction agrees with sorted model ids.

        The same listing runs in both namespaces, with prefixes and cursors
        often taken from ids stored in either (the paging case, and the ids a
        leak from the other namespace would show).
        """
        prefix, cursor = self._listing_bounds(kind, data)
        kw: dict[str, Any] = {"limit": limit, "cursor": cursor, "reverse": reverse}
        for ns in self._spaces:
            expected = [i for i in self._existing_ids(ns, kind) if i.startswith(prefix)]
            if reverse:
                expected.reverse()
            if cursor is not None:
                expected = [i for i in expected if (i < cursor if reverse else i > cursor)]
            if limit is not None:
                expected = expected[:limit]
            if with_records:
                got = self._run(self.backend.list_records(ns, kind, prefix, **kw))
                assert [i for i, _ in got] == expected, (ns, kind)
                for i, rec in got:
                    self._check(rec, self.records[(ns, kind, i)], (ns, kind, i))
            else:
                got_ids = self._run(self.backend.list_ids(ns, kind, prefix, **kw))
                assert got_ids == expected, (ns, kind)

    @rule(space=spaces)
    def list_kinds(self, space: int) -> None:
        """kinds() lists the kinds holding live records (never an expired control's)."""
        ns = self._ns(space)
        expected = sorted({k for (n, k, _) in self.records if n == ns})
        assert self._run(self.backend.kinds(ns)) == expected

    @rule(
        space=spaces,
        kind=kinds,
        page=st.integers(min_value=1, max_value=3),
        reverse=st.booleans(),
        data=st.data(),
    )
    def paging(self, space: int, kind: str, page: int, reverse: bool, data: st.DataObject) -> None:
        """Paging with ``cursor=<last id of the previous page>`` visits every id once."""
        ns = self._ns(space)
        prefix, _ = self._listing_bounds(kind, data)
        expected = [i for i in self._existing_ids(ns, kind) if i.startswith(prefix)]
        if reverse:
            expected.reverse()
        seen: list[str] = []
        cursor: str | None = None
        for _ in range(len(expected) + 1):  # bounded: a stuck cursor fails below
            got = self._run(
                self.backend.list_ids(ns, kind, prefix, limit=page, cursor=cursor, reverse=reverse)
            )
            if not got:
                break
            seen += got
            cursor = got[-1]
        assert seen == expected

    @_has("supports_ttl")
    @precondition(lambda self: not self.expired)
    @rule(batch=st.booleans(), data=st.data())
    def expire(self, batch: bool, data: st.DataObject) -> None:
        """Records rewritten with a short TTL are, once it has passed, gone for good.

        Rewrites a few records (mostly existing ones, of either namespace) with
        ``short_ttl`` by put or put_many, then writes a control record with the
        same TTL *after* them and waits until the control is gone: by the
        store's own clock every earlier record has expired too, so the model
        drops them, with no guess about timing. At most once per example.
        """
        self.expired = True
        keys = st.tuples(spaces.map(self._ns), kinds, ids)
        if self.records:
            keys = st.sampled_from(sorted(self.records)) | keys
        doomed = data.draw(st.lists(keys, min_size=1, max_size=4, unique=True), label="doomed")
        groups: dict[tuple[str, str], dict[str, bytes]] = {}
        for ns, kind, id in doomed:
            groups.setdefault((ns, kind), {})[id] = data.draw(values, label="value")
        for (ns, kind), items in groups.items():
            if batch:
                self._run(self.backend.put_many(ns, kind, items, ttl=self.short_ttl))
                continue
            for id, value in items.items():
                version = self._run(self.backend.put(ns, kind, id, value, ttl=self.short_ttl))
                assert version == self._version(ns, kind, id) + 1
        self._run(self.backend.put(self.ns, CONTROL_KIND, "", b"control", ttl=self.short_ttl))

        async def control_gone() -> bool:
            return await self.backend.get(self.ns, CONTROL_KIND, "") is None

        self._run(eventually(control_gone, timeout=self.expiry_timeout, what="control expiry"))
        for key in doomed:
            self.records.pop(key, None)

    @rule(space=spaces)
    def drop_namespace(self, space: int) -> None:
        """drop_namespace empties one namespace; the other keeps everything."""
        ns = self._ns(space)
        self._run(self.backend.drop_namespace(ns))
        for store in (self.records, self.counters):
            for key in [key for key in store if key[0] == ns]:
                del store[key]
        for skey in [key for key in self.series if key[0] == ns]:
            del self.series[skey]

    @invariant()
    def records_agree(self) -> None:
        """After every step the stored records equal the model: value, version, expiry."""
        if not hasattr(self, "records"):
            return
        for ns in self._spaces:
            for kind in KINDS:
                got = self._run(self.backend.list_records(ns, kind))
                assert [i for i, _ in got] == self._existing_ids(ns, kind), (ns, kind)
                for i, rec in got:
                    self._check(rec, self.records[(ns, kind, i)], (ns, kind, i))

    # -- series -----------------------------------------------------------------------
    def _append(self, ns: str, name: str, value: bytes, ts: float) -> None:
        """Append to the backend and the model; seq is unique within the series."""
        entry = self._run(self.backend.append(ns, name, value, ts=ts))
        assert (entry.ts, entry.value) == (ts, value)
        entries = self.series.setdefault((ns, name), [])
        assert entry.seq not in {seq for _, seq, _ in entries}
        entries.append((entry.ts, entry.seq, entry.value))
        self.dirty.add((ns, name))

    @_has("supports_series")
    @rule(space=spaces, count=st.integers(min_value=1, max_value=3), data=st.data())
    def append(self, space: int, count: int, data: st.DataObject) -> None:
        """append (one to three entries to one series) returns each entry; seqs are unique.

        Series names and timestamps are often ones already stored, so ties on
        ts are frequent, and a value is often a proper prefix of a tie's value:
        it sorts first by value, last by (ts, seq), where it belongs.
        """
        ns = self._ns(space)
        filled = sorted(n for (n_ns, n), e in self.series.items() if e and n_ns == ns)
        names = st.sampled_from(SERIES)
        if filled:
            names = st.sampled_from(filled) | names
        name = data.draw(names, label="name")
        for _ in range(count):
            entries = self.series.get((ns, name), [])
            stamps = st.sampled_from(STAMPS)
            if entries:
                stamps = st.sampled_from(sorted({ts for ts, _, _ in entries})) | stamps
            ts = data.draw(stamps, label="ts")
            choices = values
            below = sorted({v[:-1] for t, _, v in entries if t == ts and v})
            if below:
                choices = st.sampled_from(below) | values
            self._append(ns, name, data.draw(choices, label="value"), ts)

    @invariant()
    def series_agree(self) -> None:
        """Every series appended to since the last step reads back whole, in (ts, seq) order."""
        for ns, name in sorted(getattr(self, "dirty", ())):
            got = self._run(self.backend.read_series(ns, name))
            expected = sorted(self.series.get((ns, name), []))
            assert [(e.ts, e.seq, e.value) for e in got] == expected, (ns, name)
        if hasattr(self, "dirty"):
            self.dirty.clear()

    @_has("supports_series")
    @rule(space=spaces, limit=limits, latest=st.booleans(), data=st.data())
    def read_series(self, space: int, limit: int | None, latest: bool, data: st.DataObject) -> None:
        """Range reads: start inclusive, end exclusive, latest-N still ascending."""
        ns = self._ns(space)
        filled = sorted(n for (n_ns, n), e in self.series.items() if e and n_ns == ns)
        names = st.sampled_from(SERIES)
        if filled:
            names = st.sampled_from(filled) | names
        name = data.draw(names, label="name")
        entries = self.series.get((ns, name), [])
        stamps = sorted({ts for ts, _, _ in entries})
        # bounds are often stored timestamps (the inclusive/exclusive edge)
        bounds = st.sampled_from(BOUNDS)
        if stamps:
            bounds = st.sampled_from(stamps) | bounds
        start = data.draw(bounds, label="start")
        end = data.draw(bounds, label="end")
        if stamps:  # the edges themselves: an entry at ``end`` is excluded, at ``start`` kept
            edge = data.draw(st.sampled_from(stamps), label="edge")
            got = self._run(self.backend.read_series(ns, name, start=edge, end=edge))
            assert got == []
            before = self._run(self.backend.read_series(ns, name, end=edge))
            assert all(e.ts < edge for e in before)
            after = self._run(self.backend.read_series(ns, name, start=edge))
            assert after and after[0].ts == edge
        window = [
            e
            for e in sorted(entries)
            if (start is None or e[0] >= start) and (end is None or e[0] < end)
        ]
        if limit is not None:
            window = ([] if limit == 0 else window[-limit:]) if latest else window[:limit]
        got = self._run(
            self.backend.read_series(ns, name, start=start, end=end, limit=limit, latest=latest)
        )
        assert [(e.ts, e.seq, e.value) for e in got] == window

    @_has("supports_series")
    @rule(space=spaces, name=st.sampled_from(SERIES))
    def delete_series(self, space: int, name: str) -> None:
        """delete_series reports how many entries went."""
        ns = self._ns(space)
        n = self._run(self.backend.delete_series(ns, name))
        assert n == len(self.series.pop((ns, name), []))

    @_has("supports_series_rewrite")
    @rule(space=spaces, data=st.data())
    def rewrite_series(self, space: int, data: st.DataObject) -> None:
        """rewrite_series replaces exactly the entries of this series still holding ``old``.

        Changes name entries of the series with their current or a stale value,
        entries of other series (of either namespace, with their current value)
        and unused seqs; new values may equal old ones (an entry rewritten to its
        own value counts). An empty series first gets a few appends, so most
        calls have entries to rewrite.
        """
        ns = self._ns(space)
        name = data.draw(st.sampled_from(SERIES), label="name")
        if not self.series.get((ns, name)):
            stamps = st.lists(st.sampled_from(STAMPS), min_size=1, max_size=3)
            for ts in data.draw(stamps, label="stamps"):
                self._append(ns, name, data.draw(values, label="value"), ts)
        entries = self.series[(ns, name)]
        # seqs are unique within a series only: "foreign" ones are those this one lacks
        current = {seq: value for _, seq, value in entries}
        for other, held in self.series.items():
            if other != (ns, name):
                for _, seq, value in held:
                    current.setdefault(seq, value)
        own = sorted(seq for _, seq, _ in entries)
        foreign = sorted(set(current) - set(own))
        seqs = st.just(max(current, default=0) + 1000)
        for group in (own, foreign):
            if group:
                seqs = st.sampled_from(group) | seqs
        picks = data.draw(st.lists(seqs, unique=True, min_size=1, max_size=5), label="seqs")
        changes: list[tuple[int, bytes, bytes]] = []
        for seq in picks:
            old = current.get(seq, b"")
            if seq not in current or data.draw(st.booleans(), label="stale"):
                stale = data.draw(values, label="old")
                old = stale if stale != old else old + b"\x00"  # never the current value
            changes.append((seq, old, data.draw(values, label="new")))
        n = self._run(self.backend.rewrite_series(ns, name, changes))
        at = {seq: i for i, (_, seq, _) in enumerate(entries)}
        replaced = 0
        for seq, old, new in changes:
            i = at.get(seq)
            if i is not None and entries[i][2] == old:
                entries[i] = (entries[i][0], seq, new)
                replaced += 1
        assert n == replaced
        got = self._run(self.backend.read_series(ns, name))
        assert [(e.ts, e.seq, e.value) for e in got] == sorted(entries)

    @_has("supports_series")
    @rule(space=spaces, prefix=st.sampled_from(("", "s", "s:", "t", "u")))
    def series_names(self, space: int, prefix: str) -> None:
        """series_names lists non-empty series by prefix, sorted."""
        ns = self._ns(space)
        expected = sorted(
            n for (n_ns, n), e in self.series.items() if n_ns == ns and e and n.startswith(prefix)
        )
        assert self._run(self.backend.series_names(ns, prefix)) == expected

    # -- counters ---------------------------------------------------------------------
    @_has("supports_counters")
    @rule(
        space=spaces,
        kind=kinds,
        id=ids,
        field=st.sampled_from(FIELDS),
        amount=st.sampled_from(AMOUNTS),
    )
    def incr(self, space: int, kind: str, id: str, field: str, amount: float) -> None:
        """incr starts at 0 and returns the new value."""
        ns = self._ns(space)
        fields = self.counters.setdefault((ns, kind, id), {})
        fields[field] = fields.get(field, 0.0) + amount
        assert self._run(self.backend.incr(ns, kind, id, field, amount)) == fields[field]

    @_has("supports_counters")
    @rule(space=spaces, kind=kinds, wanted=st.lists(ids, max_size=5))
    def get_counters(self, space: int, kind: str, wanted: list[str]) -> None:
        """get_counters returns the fields of ids that have counters."""
        ns = self._ns(space)
        expected = {
            i: self.counters[(ns, kind, i)] for i in wanted if self.counters.get((ns, kind, i))
        }
        assert self._run(self.backend.get_counters(ns, kind, wanted)) == expected

    @_has("supports_counters")
    @rule(space=spaces, kind=kinds, id=ids)
    def delete_counters(self, space: int, kind: str, id: str) -> None:
        """delete_counters is True when something went."""
        ns = self._ns(space)
        had = bool(self.counters.pop((ns, kind, id), None))
        assert self._run(self.backend.delete_counters(ns, kind, id)) is had


def run_backend_state_machine(
    backend: Backend,
    runner: asyncio.Runner,
    *,
    max_examples: int = 30,
    step_count: int = 30,
    ns: str = "hmkit-sm",
    ns2: str | None = None,
    short_ttl: float = 0.05,
    expiry_timeout: float = 10.0,
    **extra_settings: Any,
) -> None:
    """Run :class:`BackendStateMachine` against an opened ``backend`` on ``runner``'s loop.

    ``ns2`` (default ``ns + ":2"``) is the second namespace; ``short_ttl`` is
    the TTL of the records the machine lets expire and ``expiry_timeout`` how
    long their expiry may take to show. ``extra_settings`` are passed on to
    :class:`hypothesis.settings`.
    """
    machine = type(
        f"{type(backend).__name__}StateMachine",
        (BackendStateMachine,),
        {
            "backend": backend,
            "runner": runner,
            "ns": ns,
            "ns2": f"{ns}:2" if ns2 is None else ns2,
            "short_ttl": short_ttl,
            "expiry_timeout": expiry_timeout,
        },
    )
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=max_examples,
            stateful_step_count=step_count,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            **extra_settings,
        ),
    )
