"""A hypothesis state machine that drives a backend and a plain-dict model together.

Every rule performs one random operation on both and asserts they agree:
records (put, CAS put and delete, batches, prefix listing with limit, cursor
and direction), series (append, ranged and latest-N reads, deletes and, with
``supports_series_rewrite``, in-place rewrites) and counters. Ids, kinds and
names come from a small alphabet full of tricky strings so that collisions,
prefixes and ordering are exercised often.

The machine is synchronous: it drives the async backend through the
:class:`asyncio.Runner` the backend was opened on. Use
:func:`run_backend_state_machine` (what :class:`~hivemem.testing.BackendSuite`
does) to bind it to a backend and run it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, ClassVar, TypeVar

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

from hivemem.backend import Backend, Capabilities
from hivemem.errors import ConflictError

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

ids = st.sampled_from(IDS)
kinds = st.sampled_from(KINDS)
values = st.binary(max_size=24)
limits = st.sampled_from((None, 0, 1, 2, 5))


def _has(flag: str) -> Any:
    return precondition(lambda self: bool(getattr(self.caps, flag)))


class BackendStateMachine(RuleBasedStateMachine):
    """Random operations applied to ``backend`` and to a dict model must agree.

    Bind ``backend`` and ``runner`` (class attributes) before running; see
    :func:`run_backend_state_machine`.
    """

    backend: ClassVar[Backend]
    runner: ClassVar[asyncio.Runner]
    ns: ClassVar[str] = "hmkit-sm"

    def __init__(self) -> None:
        super().__init__()
        self.caps: Capabilities = self.backend.capabilities
        self.records: dict[tuple[str, str], tuple[bytes, int]] = {}
        self.series: dict[str, list[tuple[float, int, bytes]]] = {}
        self.counters: dict[tuple[str, str], dict[str, float]] = {}

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(coro)

    @initialize()
    def start_empty(self) -> None:
        """Every example starts from an empty namespace."""
        self._run(self.backend.drop_namespace(self.ns))

    def teardown(self) -> None:
        """Leave nothing behind."""
        self._run(self.backend.drop_namespace(self.ns))

    # -- records ----------------------------------------------------------------------
    def _version(self, kind: str, id: str) -> int:
        cur = self.records.get((kind, id))
        return cur[1] if cur else 0

    def _draw_id(self, kind: str, data: st.DataObject) -> str:
        existing = self._existing_ids(kind)
        choices = (st.sampled_from(existing) | ids) if existing else ids
        return data.draw(choices, label="id")

    @rule(kind=kinds, id=ids, value=values)
    def put(self, kind: str, id: str, value: bytes) -> None:
        """Plain put: version grows by one."""
        version = self._run(self.backend.put(self.ns, kind, id, value))
        assert version == self._version(kind, id) + 1
        self.records[(kind, id)] = (value, version)

    @_has("supports_cas")
    @rule(kind=kinds, id=ids, value=values, delta=st.sampled_from((None, -1, 0, 1)))
    def put_cas(self, kind: str, id: str, value: bytes, delta: int | None) -> None:
        """CAS put with the right, a stale, a future or the "must not exist" version."""
        current = self._version(kind, id)
        expected = 0 if delta is None else max(0, current + delta)
        try:
            version = self._run(
                self.backend.put(self.ns, kind, id, value, expected_version=expected)
            )
        except ConflictError as exc:
            assert expected != current, "conflict although the version matched"
            assert exc.actual == (current or None)
            return
        assert expected == current, f"CAS with {expected} succeeded at version {current}"
        assert version == current + 1
        self.records[(kind, id)] = (value, version)

    @rule(kind=kinds, data=st.data())
    def get(self, kind: str, data: st.DataObject) -> None:
        """get agrees with the model."""
        id = self._draw_id(kind, data)
        rec = self._run(self.backend.get(self.ns, kind, id))
        expected = self.records.get((kind, id))
        if expected is None:
            assert rec is None
        else:
            assert rec is not None and (rec.value, rec.version) == expected

    @rule(kind=kinds, cas=st.booleans(), data=st.data())
    def delete(self, kind: str, cas: bool, data: st.DataObject) -> None:
        """delete (optionally with the current version as CAS) agrees with the model."""
        id = self._draw_id(kind, data)
        if cas and not self.caps.supports_cas:
            cas = False
        current = self._version(kind, id)
        kwargs = {"expected_version": current} if cas else {}
        removed = self._run(self.backend.delete(self.ns, kind, id, **kwargs))
        assert removed == (current > 0)
        self.records.pop((kind, id), None)

    @rule(kind=kinds, data=st.data())
    def put_many(self, kind: str, data: st.DataObject) -> None:
        """put_many creates at version 1 and bumps existing versions by one."""
        existing = self._existing_ids(kind)
        keys = (st.sampled_from(existing) | ids) if existing else ids
        items = data.draw(st.dictionaries(keys, values, max_size=5), label="items")
        self._run(self.backend.put_many(self.ns, kind, items))
        for id, value in items.items():
            self.records[(kind, id)] = (value, self._version(kind, id) + 1)

    @rule(kind=kinds, data=st.data())
    def get_many(self, kind: str, data: st.DataObject) -> None:
        """get_many returns exactly the live wanted ids (duplicates allowed)."""
        existing = self._existing_ids(kind)
        keys = (st.sampled_from(existing) | ids) if existing else ids
        wanted = data.draw(st.lists(keys, max_size=6), label="wanted")
        got = self._run(self.backend.get_many(self.ns, kind, wanted))
        expected = {i: self.records[(kind, i)] for i in wanted if (kind, i) in self.records}
        assert {i: (r.value, r.version) for i, r in got.items()} == expected

    @rule(kind=kinds, data=st.data())
    def delete_many(self, kind: str, data: st.DataObject) -> None:
        """delete_many counts each live id once."""
        existing = self._existing_ids(kind)
        keys = (st.sampled_from(existing) | ids) if existing else ids
        doomed = data.draw(st.lists(keys, max_size=6), label="doomed")
        n = self._run(self.backend.delete_many(self.ns, kind, doomed))
        live = {i for i in doomed if (kind, i) in self.records}
        assert n == len(live)
        for i in live:
            del self.records[(kind, i)]

    def _existing_ids(self, kind: str) -> list[str]:
        return sorted(i for (k, i) in self.records if k == kind)

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
        """Prefix listing with limit, cursor and direction agrees with sorted model ids."""
        existing = self._existing_ids(kind)
        # prefixes and cursors are often taken from stored ids (the paging case)
        prefixes = st.sampled_from(PREFIXES)
        cursors = st.none() | ids | st.just("a0")
        if existing:
            stored = st.sampled_from(existing)
            prefixes = st.just("") | stored.map(lambda i: i[:1]) | stored | prefixes
            cursors = stored | cursors
        prefix = data.draw(prefixes, label="prefix")
        cursor = data.draw(cursors, label="cursor")
        expected = sorted(i for (k, i) in self.records if k == kind and i.startswith(prefix))
        if reverse:
            expected.reverse()
        if cursor is not None:
            expected = [i for i in expected if (i < cursor if reverse else i > cursor)]
        if limit is not None:
            expected = expected[:limit]
        kw: dict[str, Any] = {"limit": limit, "cursor": cursor, "reverse": reverse}
        if with_records:
            got = self._run(self.backend.list_records(self.ns, kind, prefix, **kw))
            assert [i for i, _ in got] == expected
            for i, rec in got:
                assert (rec.value, rec.version) == self.records[(kind, i)]
        else:
            assert self._run(self.backend.list_ids(self.ns, kind, prefix, **kw)) == expected

    @rule()
    def list_kinds(self) -> None:
        """kinds() lists the kinds holding records."""
        expected = sorted({k for (k, _) in self.records})
        assert self._run(self.backend.kinds(self.ns)) == expected

    @rule(kind=kinds, page=st.integers(min_value=1, max_value=3), reverse=st.booleans())
    def paging(self, kind: str, page: int, reverse: bool) -> None:
        """Paging with ``cursor=<last id of the previous page>`` visits every id once."""
        expected = self._existing_ids(kind)
        if reverse:
            expected.reverse()
        seen: list[str] = []
        cursor: str | None = None
        for _ in range(len(expected) + 1):  # bounded: a stuck cursor fails below
            got = self._run(
                self.backend.list_ids(self.ns, kind, limit=page, cursor=cursor, reverse=reverse)
            )
            if not got:
                break
            seen += got
            cursor = got[-1]
        assert seen == expected

    @invariant()
    def records_agree(self) -> None:
        """After every step the stored records equal the model, value and version."""
        if not hasattr(self, "records"):
            return
        for kind in KINDS:
            got = self._run(self.backend.list_records(self.ns, kind))
            expected = sorted((i, v) for (k, i), v in self.records.items() if k == kind)
            assert [(i, (r.value, r.version)) for i, r in got] == expected, kind

    # -- series -----------------------------------------------------------------------
    @_has("supports_series")
    @rule(name=st.sampled_from(SERIES), value=values, ts=st.sampled_from(STAMPS))
    def append(self, name: str, value: bytes, ts: float) -> None:
        """append returns the entry; seq is unique within the series."""
        entry = self._run(self.backend.append(self.ns, name, value, ts=ts))
        assert (entry.ts, entry.value) == (ts, value)
        entries = self.series.setdefault(name, [])
        assert entry.seq not in {seq for _, seq, _ in entries}
        entries.append((entry.ts, entry.seq, entry.value))

    @_has("supports_series")
    @rule(limit=limits, latest=st.booleans(), data=st.data())
    def read_series(self, limit: int | None, latest: bool, data: st.DataObject) -> None:
        """Range reads: start inclusive, end exclusive, latest-N still ascending."""
        filled = sorted(n for n, e in self.series.items() if e)
        names = st.sampled_from(SERIES)
        if filled:
            names = st.sampled_from(filled) | names
        name = data.draw(names, label="name")
        stamps = sorted({ts for ts, _, _ in self.series.get(name, [])})
        # bounds are often stored timestamps (the inclusive/exclusive edge)
        bounds = st.sampled_from(BOUNDS)
        if stamps:
            bounds = st.sampled_from(stamps) | bounds
        start = data.draw(bounds, label="start")
        end = data.draw(bounds, label="end")
        if stamps:  # the edges themselves: an entry at ``end`` is excluded, at ``start`` kept
            edge = data.draw(st.sampled_from(stamps), label="edge")
            got = self._run(self.backend.read_series(self.ns, name, start=edge, end=edge))
            assert got == []
            before = self._run(self.backend.read_series(self.ns, name, end=edge))
            assert all(e.ts < edge for e in before)
            after = self._run(self.backend.read_series(self.ns, name, start=edge))
            assert after and after[0].ts == edge
        window = [
            e
            for e in sorted(self.series.get(name, []))
            if (start is None or e[0] >= start) and (end is None or e[0] < end)
        ]
        if limit is not None:
            window = ([] if limit == 0 else window[-limit:]) if latest else window[:limit]
        got = self._run(
            self.backend.read_series(
                self.ns, name, start=start, end=end, limit=limit, latest=latest
            )
        )
        assert [(e.ts, e.seq, e.value) for e in got] == window

    @_has("supports_series")
    @rule(name=st.sampled_from(SERIES))
    def delete_series(self, name: str) -> None:
        """delete_series reports how many entries went."""
        n = self._run(self.backend.delete_series(self.ns, name))
        assert n == len(self.series.pop(name, []))

    @_has("supports_series_rewrite")
    @rule(data=st.data())
    def rewrite_series(self, data: st.DataObject) -> None:
        """rewrite_series replaces exactly the entries of this series still holding ``old``.

        Changes name entries of the series with their current or a stale value,
        entries of other series (with their current value) and unused seqs; new
        values may equal old ones (an entry rewritten to its own value counts).
        An empty series first gets a few appends, so most calls have entries to
        rewrite.
        """
        name = data.draw(st.sampled_from(SERIES), label="name")
        if not self.series.get(name):
            stamps = st.lists(st.sampled_from(STAMPS), min_size=1, max_size=3)
            for ts in data.draw(stamps, label="stamps"):
                self.append(name, data.draw(values, label="value"), ts)
        entries = self.series[name]
        # seqs are unique within a series only: "foreign" ones are those this one lacks
        current = {seq: value for _, seq, value in entries}
        for other, held in self.series.items():
            if other != name:
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
        n = self._run(self.backend.rewrite_series(self.ns, name, changes))
        at = {seq: i for i, (_, seq, _) in enumerate(entries)}
        replaced = 0
        for seq, old, new in changes:
            i = at.get(seq)
            if i is not None and entries[i][2] == old:
                entries[i] = (entries[i][0], seq, new)
                replaced += 1
        assert n == replaced
        got = self._run(self.backend.read_series(self.ns, name))
        assert [(e.ts, e.seq, e.value) for e in got] == sorted(entries)

    @_has("supports_series")
    @rule(prefix=st.sampled_from(("", "s", "s:", "t", "u")))
    def series_names(self, prefix: str) -> None:
        """series_names lists non-empty series by prefix, sorted."""
        expected = sorted(n for n, e in self.series.items() if e and n.startswith(prefix))
        assert self._run(self.backend.series_names(self.ns, prefix)) == expected

    # -- counters ---------------------------------------------------------------------
    @_has("supports_counters")
    @rule(kind=kinds, id=ids, field=st.sampled_from(FIELDS), amount=st.sampled_from(AMOUNTS))
    def incr(self, kind: str, id: str, field: str, amount: float) -> None:
        """incr starts at 0 and returns the new value."""
        fields = self.counters.setdefault((kind, id), {})
        fields[field] = fields.get(field, 0.0) + amount
        assert self._run(self.backend.incr(self.ns, kind, id, field, amount)) == fields[field]

    @_has("supports_counters")
    @rule(kind=kinds, wanted=st.lists(ids, max_size=5))
    def get_counters(self, kind: str, wanted: list[str]) -> None:
        """get_counters returns the fields of ids that have counters."""
        expected = {i: self.counters[(kind, i)] for i in wanted if self.counters.get((kind, i))}
        assert self._run(self.backend.get_counters(self.ns, kind, wanted)) == expected

    @_has("supports_counters")
    @rule(kind=kinds, id=ids)
    def delete_counters(self, kind: str, id: str) -> None:
        """delete_counters is True when something went."""
        had = bool(self.counters.pop((kind, id), None))
        assert self._run(self.backend.delete_counters(self.ns, kind, id)) is had


def run_backend_state_machine(
    backend: Backend,
    runner: asyncio.Runner,
    *,
    max_examples: int = 30,
    step_count: int = 30,
    ns: str = "hmkit-sm",
    **extra_settings: Any,
) -> None:
    """Run :class:`BackendStateMachine` against an opened ``backend`` on ``runner``'s loop.

    ``extra_settings`` are passed on to :class:`hypothesis.settings`.
    """
    machine = type(
        f"{type(backend).__name__}StateMachine",
        (BackendStateMachine,),
        {"backend": backend, "runner": runner, "ns": ns},
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
