"""Series on MongoDB: one document per entry, ordered by the index ``(ns, name, ts, seq)``.

An entry is ``{ns, name, ts, seq, v, size}`` in the ``series`` collection
(``r`` on entries written by ``replace_series``). ``seq`` comes from blocks
of ``seq_block`` numbers reserved with one ``$inc`` on the ``series_seq``
document of ``meta``, so sequence numbers are unique per deployment and
ties on ``ts`` keep append order within one client.

``replace_series`` and ``rewrite_series`` run in one transaction where the
deployment has them (replica sets, sharded clusters); on a standalone server
``replace_series`` inserts the new entries before deleting the old ones, so
a failure in between leaves extra entries rather than a lost series.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from bson import ObjectId
from hivemem.plugin import SeriesEntry, ValueTooLarge
from pymongo import ReturnDocument, UpdateOne

from .connection import MongoConnection, translate_errors
from .documents import BSON_LIMIT, DOC_OVERHEAD, prefix_bounds, to_list, utf8_len

#: the ``meta`` document that hands out series sequence numbers
_SEQ_DOCUMENT = "series_seq"


class MongoSeries(MongoConnection):
    """``append``, ``replace_series``, ``read_series``, ``series_names``, ``delete_series``,
    ``rewrite_series``."""

    def __init__(self, url: str = "mongodb://localhost:27017/", **options: Any) -> None:
        super().__init__(url, **options)
        self._seq_lock = asyncio.Lock()
        self._seq_next = 1
        self._seq_end = 0

    async def _next_seq(self, count: int) -> int:
        """First of ``count`` fresh sequence numbers (blocks reserved with ``$inc``)."""
        async with self._seq_lock:
            if self._seq_end - self._seq_next + 1 < count:
                block = max(self.seq_block, count)
                doc = await self._meta.find_one_and_update(
                    {"_id": _SEQ_DOCUMENT},
                    {"$inc": {"value": block}},
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
                self._seq_end = int(doc["value"])
                self._seq_next = self._seq_end - block + 1
            first = self._seq_next
            self._seq_next += count
            return first

    def _check_entry(self, ns: str, series: str, value: bytes) -> None:
        limit = BSON_LIMIT - DOC_OVERHEAD - utf8_len(ns, series)
        if len(value) > limit:
            raise ValueTooLarge(f"series {series[:40]}", len(value), limit, "mongodb series entry")

    @translate_errors
    async def append(
        self, ns: str, series: str, value: bytes, *, ts: float | None = None
    ) -> SeriesEntry:
        """See :meth:`Backend.append` (one ``insert_one``; a seq block every ``seq_block``)."""
        value = bytes(value)
        self._check_entry(ns, series, value)
        stamp = time.time() if ts is None else float(ts)
        seq = await self._next_seq(1)
        await self._series.insert_one(
            {"ns": ns, "name": series, "ts": stamp, "seq": seq, "v": value, "size": len(value)}
        )
        return SeriesEntry(stamp, seq, value)

    @translate_errors
    async def replace_series(
        self, ns: str, series: str, entries: Sequence[tuple[float, bytes]]
    ) -> None:
        """See :meth:`Backend.replace_series` (a transaction where the deployment has them)."""
        rows = [(float(ts), bytes(value)) for ts, value in entries]
        for _, value in rows:
            self._check_entry(ns, series, value)
        await self._atomic(self._replace_series(ns, series, rows))

    async def _replace_series(self, ns: str, series: str, rows: list[tuple[float, bytes]]) -> None:
        first = await self._next_seq(len(rows)) if rows else 0
        token = ObjectId()
        docs = [
            {
                "ns": ns,
                "name": series,
                "ts": ts,
                "seq": first + index,
                "v": value,
                "size": len(value),
                "r": token,
            }
            for index, (ts, value) in enumerate(rows)
        ]
        old = {"ns": ns, "name": series, "r": {"$ne": token}}
        if self.transactions:

            async def swap(session: Any) -> None:
                await self._series.delete_many(old, session=session)
                if docs:
                    await self._series.insert_many(docs, session=session)

            await self._in_transaction(swap)
        else:
            # no transactions (standalone server): new entries first, then the old ones
            # go, so a failure in between leaves extra entries rather than lost ones
            if docs:
                await self._series.insert_many(docs)
            await self._series.delete_many(old)

    @translate_errors
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
        """See :meth:`Backend.read_series` (index range on ``(ns, name, ts, seq)``)."""
        if limit is not None and limit <= 0:
            return []
        query: dict[str, Any] = {"ns": ns, "name": series}
        ts_range: dict[str, float] = {}
        if start is not None:
            ts_range["$gte"] = float(start)
        if end is not None:
            ts_range["$lt"] = float(end)
        if ts_range:
            query["ts"] = ts_range
        order = -1 if latest else 1
        found = self._series.find(query, {"_id": 0, "ts": 1, "seq": 1, "v": 1}).sort(
            [("ns", order), ("name", order), ("ts", order), ("seq", order)]
        )
        if limit is not None:
            found = found.limit(limit)
        entries = [
            SeriesEntry(float(doc["ts"]), int(doc["seq"]), bytes(doc["v"])) async for doc in found
        ]
        if latest:
            entries.reverse()
        return entries

    @translate_errors
    async def series_names(self, ns: str, prefix: str = "") -> list[str]:
        """See :meth:`Backend.series_names` (``distinct`` over the series index)."""
        names = await self._series.distinct("name", {"ns": ns, "name": prefix_bounds(prefix)})
        return sorted(names)

    @translate_errors
    async def delete_series(self, ns: str, series: str) -> int:
        """See :meth:`Backend.delete_series`."""
        result = await self._series.delete_many({"ns": ns, "name": series})
        return int(result.deleted_count)

    @translate_errors
    async def rewrite_series(
        self, ns: str, series: str, changes: Sequence[tuple[int, bytes, bytes]]
    ) -> int:
        """See :meth:`Backend.rewrite_series` (conditional ``bulk_write`` updates).

        Each change is an ``UpdateOne`` whose filter is the entry's full index
        key ``(ns, name, ts, seq)`` plus the old value ``v``, so an entry
        deleted or rewritten meanwhile is not matched and appends (new
        documents) are never touched. The ``ts`` of each ``seq`` is looked up
        first by one covered index query per batch. The whole call is one
        transaction where the deployment has them, else atomic per entry.
        """
        rows = [(int(seq), bytes(old), bytes(new)) for seq, old, new in changes]
        for _, _, new in rows:
            self._check_entry(ns, series, new)
        if not rows:
            return 0
        return await self._atomic(self._rewrite_series(ns, series, rows))

    async def _rewrite_series(
        self, ns: str, series: str, rows: list[tuple[int, bytes, bytes]]
    ) -> int:
        if not self.transactions:
            return await self._rewrite_batches(ns, series, rows, None)

        async def rewrite(session: Any) -> int:
            return await self._rewrite_batches(ns, series, rows, session)

        return int(await self._in_transaction(rewrite))

    async def _rewrite_batches(
        self, ns: str, series: str, rows: list[tuple[int, bytes, bytes]], session: Any
    ) -> int:
        in_session: dict[str, Any] = {} if session is None else {"session": session}
        replaced = 0
        for start in range(0, len(rows), self.batch_size):
            batch = rows[start : start + self.batch_size]
            found = self._series.find(
                {"ns": ns, "name": series, "seq": {"$in": [seq for seq, _, _ in batch]}},
                {"_id": 0, "ts": 1, "seq": 1},
                **in_session,
            )
            stamps = {int(doc["seq"]): doc["ts"] for doc in await to_list(found)}
            updates = [
                UpdateOne(
                    {"ns": ns, "name": series, "ts": stamps[seq], "seq": seq, "v": old},
                    {"$set": {"v": new, "size": len(new)}},
                )
                for seq, old, new in batch
                if seq in stamps
            ]
            if updates:
                result = await self._series.bulk_write(updates, ordered=True, **in_session)
                # matched, not modified: an entry whose new value equals its old one counts
                replaced += result.matched_count
        return replaced


__all__ = ["MongoSeries"]
