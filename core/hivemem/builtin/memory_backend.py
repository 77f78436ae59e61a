"""``memory://`` -- a process-local backend for tests and scratch work.

``memory://`` gives a private store; ``memory://NAME`` a store shared by every
backend opened with the same name in this process (until the process ends).
Each coroutine runs without awaiting, so every operation is atomic with
respect to other tasks and cannot be interrupted half-way by cancellation.
Listing keeps a sorted id list per kind (binary search), series are kept
sorted by ``(ts, seq)``.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit

from ..backend import (
    Backend,
    Capabilities,
    KindStats,
    NamespaceStats,
    Record,
    SeriesEntry,
    SeriesStats,
    prefix_upper,
)
from ..errors import ConfigError, ConflictError


class MemoryStore:
    """The dicts one ``memory://`` store keeps (shared by every backend of a named store)."""

    def __init__(self) -> None:
        #: (ns, kind) -> {id: record}
        self.records: dict[tuple[str, str], dict[str, Record]] = {}
        #: (ns, kind) -> the ids of ``records[(ns, kind)]``, sorted (for listings)
        self.sorted_ids: dict[tuple[str, str], list[str]] = {}
        #: (ns, series) -> entries as (ts, seq, value), sorted
        self.series: dict[tuple[str, str], list[tuple[float, int, bytes]]] = {}
        #: (ns, kind, id) -> {field: value}
        self.counters: dict[tuple[str, str, str], dict[str, float]] = {}
        #: the last series ``seq`` handed out
        self.seq = 0


_NAMED: dict[str, MemoryStore] = {}


def _expiry(ttl: float | None) -> float | None:
    """Absolute expiry of a write with ``ttl`` (checked by the base class: None or > 0)."""
    return None if ttl is None else time.time() + ttl


class MemoryBackend(Backend):
    """Dict-based backend; see the module docstring."""

    name: ClassVar[str] = "memory"
    capabilities: ClassVar[Capabilities] = Capabilities(
        persistent=False, shared=False, supports_series_rewrite=True
    )

    def __init__(self, url: str = "memory://", **options: Any) -> None:
        parts = urlsplit(url)
        if parts.scheme != "memory":
            raise ConfigError(f"memory backend needs a memory:// URL, got scheme {parts.scheme!r}")
        self.store_name = (parts.netloc + parts.path).strip("/")
        #: the data; :meth:`open` swaps in the shared store of a named ``memory://NAME``
        self.store = MemoryStore()

    def __repr__(self) -> str:
        from ..redact import redact_url

        return f"MemoryBackend({redact_url('memory://' + self.store_name)!r})"

    def _shown_name(self) -> str | None:
        from ..redact import redact_url

        return redact_url("memory://" + self.store_name)[len("memory://") :] or None

    async def open(self) -> None:
        """Attach to the named store (created on first use) or keep the private one."""
        if self.store_name:
            self.store = _NAMED.setdefault(self.store_name, MemoryStore())

    async def close(self) -> None:
        """Detach. A private store is dropped with the backend; a named one stays for others."""

    async def ping(self) -> bool:
        """Always reachable."""
        return True

    async def stats(self) -> dict[str, Any]:
        """Number of kinds, records and series held."""
        store = self.store
        return {
            "backend": "memory",
            "store": self._shown_name(),
            "records": sum(len(by_id) for by_id in store.records.values()),
            "series": len(store.series),
        }

    # -- helpers ---------------------------------------------------------------
    def _live(self, ns: str, kind: str, id: str, now: float) -> Record | None:
        by_id = self.store.records.get((ns, kind))
        if by_id is None:
            return None
        rec = by_id.get(id)
        if rec is None:
            return None
        if rec.expires_at is not None and rec.expires_at <= now:
            self._remove(ns, kind, id)
            return None
        return rec

    def _remove(self, ns: str, kind: str, id: str) -> None:
        key = (ns, kind)
        store = self.store
        by_id = store.records.get(key)
        if by_id is None or id not in by_id:
            return
        del by_id[id]
        ids = store.sorted_ids[key]
        i = bisect.bisect_left(ids, id)
        if i < len(ids) and ids[i] == id:
            del ids[i]
        if not by_id:
            del store.records[key]
            del store.sorted_ids[key]

    def _write(self, ns: str, kind: str, id: str, rec: Record) -> None:
        key = (ns, kind)
        store = self.store
        by_id = store.records.get(key)
        if by_id is None:
            by_id = store.records[key] = {}
            store.sorted_ids[key] = []
        if id not in by_id:
            bisect.insort(store.sorted_ids[key], id)
        by_id[id] = rec

    # -- records -----------------------------------------------------------------
    async def get(self, ns: str, kind: str, id: str) -> Record | None:
        """See :meth:`Backend.get` (one dict lookup: no batch to build)."""
        return self._live(ns, kind, id, time.time())

    async def get_many(self, ns: str, kind: str, ids: Sequence[str]) -> dict[str, Record]:
        """See :meth:`Backend.get_many`."""
        now = time.time()
        out = {}
        for id in ids:
            rec = self._live(ns, kind, id, now)
            if rec is not None:
                out[id] = rec
        return out

    async def put(
        self,
        ns: str,
        kind: str,
        id: str,
        value: bytes,
        *,
        ttl: float | None = None,
        expected_version: int | None = None,
    ) -> int:
        """See :meth:`Backend.put`."""
        expires = _expiry(ttl)
        cur = self._live(ns, kind, id, time.time())
        if expected_version is not None:
            actual = cur.version if cur else 0
            if actual != expected_version:
                raise ConflictError(f"{kind}/{id}", expected_version, cur.version if cur else None)
        version = (cur.version if cur else 0) + 1
        self._write(ns, kind, id, Record(bytes(value), version, expires))
        return version

    async def put_many(
        self, ns: str, kind: str, items: Mapping[str, bytes], *, ttl: float | None = None
    ) -> None:
        """See :meth:`Backend.put_many`."""
        expires = _expiry(ttl)
        now = time.time()
        for id, value in items.items():
            cur = self._live(ns, kind, id, now)
            version = (cur.version if cur else 0) + 1
            self._write(ns, kind, id, Record(bytes(value), version, expires))

    async def delete(
        self, ns: str, kind: str, id: str, *, expected_version: int | None = None
    ) -> bool:
        """See :meth:`Backend.delete`."""
        cur = self._live(ns, kind, id, time.time())
        if expected_version is not None:
            actual = cur.version if cur else 0
            if actual != expected_version:
                raise ConflictError(f"{kind}/{id}", expected_version, cur.version if cur else None)
        if cur is None:
            return False
        self._remove(ns, kind, id)
        return True

    async def delete_many(self, ns: str, kind: str, ids: Sequence[str]) -> int:
        """See :meth:`Backend.delete_many`."""
        now = time.time()
        removed = 0
        for id in set(ids):
            if self._live(ns, kind, id, now) is not None:
                self._remove(ns, kind, id)
                removed += 1
        return removed

    # -- listing -------------------------------------------------------------------
    def _scan(
        self,
        ns: str,
        kind: str,
        prefix: str,
        limit: int | None,
        cursor: str | None,
        reverse: bool,
    ) -> list[tuple[str, Record]]:
        """Live ``(id, record)`` pairs in listing order (binary search, then a walk)."""
        ids = self.store.sorted_ids.get((ns, kind))
        if not ids or (limit is not None and limit <= 0):
            return []
        if reverse:
            upper = prefix_upper(prefix)
            end = len(ids) if upper is None else bisect.bisect_left(ids, upper)
            if cursor is not None:
                end = min(end, bisect.bisect_left(ids, cursor))
            positions = range(end - 1, -1, -1)
        else:
            start = bisect.bisect_left(ids, prefix)
            if cursor is not None:
                start = max(start, bisect.bisect_right(ids, cursor))
            positions = range(start, len(ids))
        return self._walk(ns, kind, ids, positions, prefix, limit)

    def _walk(
        self,
        ns: str,
        kind: str,
        ids: list[str],
        positions: range,
        prefix: str,
        limit: int | None,
    ) -> list[tuple[str, Record]]:
        """Live records at ``positions`` of ``ids`` until the prefix ends or ``limit`` is met.

        Expired records met on the way are removed.
        """
        by_id = self.store.records[(ns, kind)]
        now = time.time()
        out: list[tuple[str, Record]] = []
        expired: list[str] = []
        for i in positions:
            id = ids[i]
            if not id.startswith(prefix):
                break
            rec = by_id[id]
            if rec.expires_at is not None and rec.expires_at <= now:
                expired.append(id)
            else:
                out.append((id, rec))
                if limit is not None and len(out) >= limit:
                    break
        for id in expired:
            self._remove(ns, kind, id)
        return out

    async def scan(
        self,
        ns: str,
        kind: str,
        prefix: str = "",
        *,
        limit: int | None = None,
        cursor: str | None = None,
        reverse: bool = False,
        values: bool = True,
    ) -> list[tuple[str, Record | None]]:
        """See :meth:`Backend.scan`."""
        rows: list[Any] = self._scan(ns, kind, prefix, limit, cursor, reverse)
        return rows if values else [(id, None) for id, _ in rows]

    async def list_ids(
        self,
        ns: str,
        kind: str,
        prefix: str = "",
        *,
        limit: int | None = None,
        cursor: str | None = None,
        reverse: bool = False,
    ) -> list[str]:
        """See :meth:`Backend.list_ids` (one pass over the walk, no ``(id, None)`` pairs)."""
        return [id for id, _ in self._scan(ns, kind, prefix, limit, cursor, reverse)]

    async def list_records(
        self,
        ns: str,
        kind: str,
        prefix: str = "",
        *,
        limit: int | None = None,
        cursor: str | None = None,
        reverse: bool = False,
    ) -> list[tuple[str, Record]]:
        """See :meth:`Backend.list_records` (the walk's own list, no filtering pass)."""
        return self._scan(ns, kind, prefix, limit, cursor, reverse)

    async def kinds(self, ns: str) -> list[str]:
        """See :meth:`Backend.kinds`."""
        out = []
        for owner, kind in list(self.store.records):
            if owner == ns and self._scan(ns, kind, "", 1, None, False):
                out.append(kind)
        return sorted(out)

    async def namespace_stats(self, ns: str) -> NamespaceStats:
        """See :meth:`Backend.namespace_stats`."""
        kinds = {}
        for owner, kind in list(self.store.records):
            if owner != ns:
                continue
            live = self._scan(ns, kind, "", None, None, False)
            if live:
                kinds[kind] = KindStats(len(live), sum(len(r.value) for _, r in live))
        series = {}
        for (owner, name), entries in self.store.series.items():
            if owner == ns and entries:
                series[name] = SeriesStats(
                    len(entries), sum(len(e[2]) for e in entries), entries[0][0], entries[-1][0]
                )
        return NamespaceStats(dict(sorted(kinds.items())), dict(sorted(series.items())))

    async def drop_namespace(self, ns: str) -> None:
        """See :meth:`Backend.drop_namespace`."""
        store = self.store
        for key in [k for k in store.records if k[0] == ns]:
            del store.records[key]
            del store.sorted_ids[key]
        for key in [k for k in store.series if k[0] == ns]:
            del store.series[key]
        for counter_key in [k for k in store.counters if k[0] == ns]:
            del store.counters[counter_key]

    # -- series --------------------------------------------------------------------
    async def append(
        self, ns: str, series: str, value: bytes, *, ts: float | None = None
    ) -> SeriesEntry:
        """See :meth:`Backend.append`."""
        ts = time.time() if ts is None else float(ts)
        self.store.seq += 1
        item = (ts, self.store.seq, bytes(value))
        bisect.insort(self.store.series.setdefault((ns, series), []), item)
        return SeriesEntry(*item)

    async def replace_series(
        self, ns: str, series: str, entries: Sequence[tuple[float, bytes]]
    ) -> None:
        """See :meth:`Backend.replace_series`."""
        items = []
        for ts, value in entries:
            self.store.seq += 1
            items.append((float(ts), self.store.seq, bytes(value)))
        items.sort()
        if items:
            self.store.series[(ns, series)] = items
        else:
            self.store.series.pop((ns, series), None)

    async def read_series(
        self,
        ns: str,
        series: str,
        *,
        start: float | None = None,
        end: float | None = None,
        limit: int | None = None,
        latest: bool = False,
    ) -> list[SeriesEntry]:
        """See :meth:`Backend.read_series`."""
        items = self.store.series.get((ns, series), [])
        lo = 0 if start is None else bisect.bisect_left(items, (start,))
        hi = len(items) if end is None else bisect.bisect_left(items, (end,))
        if limit is not None:
            if limit <= 0:
                return []
            if latest:
                lo = max(lo, hi - limit)
            else:
                hi = min(hi, lo + limit)
        return [SeriesEntry(*item) for item in items[lo:hi]]

    async def series_names(self, ns: str, prefix: str = "") -> list[str]:
        """See :meth:`Backend.series_names`."""
        return sorted(
            name
            for (owner, name), items in self.store.series.items()
            if owner == ns and items and name.startswith(prefix)
        )

    async def delete_series(self, ns: str, series: str) -> int:
        """See :meth:`Backend.delete_series`."""
        return len(self.store.series.pop((ns, series), []))

    async def rewrite_series(
        self, ns: str, series: str, changes: Sequence[tuple[int, bytes, bytes]]
    ) -> int:
        """See :meth:`Backend.rewrite_series` (one pass, no await: atomic per call)."""
        items = self.store.series.get((ns, series))
        if not items or not changes:
            return 0
        at = {seq: i for i, (_, seq, _) in enumerate(items)}
        replaced = 0
        for seq, old, new in changes:
            i = at.get(seq)
            if i is not None and items[i][2] == old:
                # (ts, seq) is unique, so the list stays sorted with the new value
                items[i] = (items[i][0], seq, bytes(new))
                replaced += 1
        return replaced

    # -- counters --------------------------------------------------------------------
    async def incr(self, ns: str, kind: str, id: str, field: str, amount: float = 1.0) -> float:
        """See :meth:`Backend.incr`."""
        fields = self.store.counters.setdefault((ns, kind, id), {})
        fields[field] = fields.get(field, 0.0) + float(amount)
        return fields[field]

    async def get_counters(
        self, ns: str, kind: str, ids: Sequence[str]
    ) -> dict[str, dict[str, float]]:
        """See :meth:`Backend.get_counters`."""
        out = {}
        for id in ids:
            fields = self.store.counters.get((ns, kind, id))
            if fields:
                out[id] = dict(fields)
        return out

    async def delete_counters(self, ns: str, kind: str, id: str) -> bool:
        """See :meth:`Backend.delete_counters`."""
        return self.store.counters.pop((ns, kind, id), None) is not None
