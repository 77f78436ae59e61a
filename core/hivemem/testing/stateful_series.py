"""Rules of the backend state machine for series (with in-place rewrites) and counters."""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule

from .stateful_model import (
    AMOUNTS,
    BOUNDS,
    FIELDS,
    SERIES,
    STAMPS,
    MachineBase,
    ids,
    kinds,
    limits,
    needs,
    spaces,
    values,
)

__all__ = ["CounterRules", "SeriesRules"]


class SeriesRules(MachineBase):
    """Series: appends (often tied on ts), ranged and latest-N reads, deletes, rewrites."""

    def _append(self, ns: str, name: str, value: bytes, ts: float) -> None:
        """Append to the backend and the model; seq is unique within the series."""
        entry = self._run(self.backend.append(ns, name, value, ts=ts))
        assert (entry.ts, entry.value) == (ts, value)
        entries = self.series.setdefault((ns, name), [])
        assert entry.seq not in {seq for _, seq, _ in entries}
        entries.append((entry.ts, entry.seq, entry.value))
        self.dirty.add((ns, name))

    @needs("supports_series")
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

    @needs("supports_series")
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

    @needs("supports_series")
    @rule(space=spaces, name=st.sampled_from(SERIES))
    def delete_series(self, space: int, name: str) -> None:
        """delete_series reports how many entries went."""
        ns = self._ns(space)
        n = self._run(self.backend.delete_series(ns, name))
        assert n == len(self.series.pop((ns, name), []))

    @needs("supports_series_rewrite")
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

    @needs("supports_series")
    @rule(space=spaces, prefix=st.sampled_from(("", "s", "s:", "t", "u")))
    def series_names(self, space: int, prefix: str) -> None:
        """series_names lists non-empty series by prefix, sorted."""
        ns = self._ns(space)
        expected = sorted(
            n for (n_ns, n), e in self.series.items() if n_ns == ns and e and n.startswith(prefix)
        )
        assert self._run(self.backend.series_names(ns, prefix)) == expected


class CounterRules(MachineBase):
    """Counters: incr, batch reads and deletes agree with a dict of floats."""

    @needs("supports_counters")
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

    @needs("supports_counters")
    @rule(space=spaces, kind=kinds, wanted=st.lists(ids, max_size=5))
    def get_counters(self, space: int, kind: str, wanted: list[str]) -> None:
        """get_counters returns the fields of ids that have counters."""
        ns = self._ns(space)
        expected = {
            i: self.counters[(ns, kind, i)] for i in wanted if self.counters.get((ns, kind, i))
        }
        assert self._run(self.backend.get_counters(ns, kind, wanted)) == expected

    @needs("supports_counters")
    @rule(space=spaces, kind=kinds, id=ids)
    def delete_counters(self, space: int, kind: str, id: str) -> None:
        """delete_counters is True when something went."""
        ns = self._ns(space)
        had = bool(self.counters.pop((ns, kind, id), None))
        assert self._run(self.backend.delete_counters(ns, kind, id)) is had
