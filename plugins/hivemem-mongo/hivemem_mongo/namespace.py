"""A whole namespace on MongoDB: its kinds, its statistics, dropping it.

Every collection carries ``ns`` as the first field of its index, so each of
these is a query on one index prefix: ``kinds`` a ``distinct`` plus one
probe per kind for a live record, ``namespace_stats`` one ``$group``
aggregation on records and one on series, ``drop_namespace`` one
``delete_many`` per collection.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hivemem.plugin import KindStats, NamespaceStats, SeriesStats

from .connection import MongoConnection, translate_errors
from .documents import live, maybe_await, now, to_list


class MongoNamespace(MongoConnection):
    """``kinds``, ``namespace_stats``, ``drop_namespace``."""

    @translate_errors
    async def kinds(self, ns: str) -> list[str]:
        """See :meth:`Backend.kinds` (``distinct`` over the key index, one probe per kind)."""
        names = await self._records.distinct("kind", {"ns": ns})
        moment = now()
        probes = await asyncio.gather(
            *(
                self._records.find_one({"ns": ns, "kind": kind, **live(moment)}, {"_id": 1})
                for kind in names
            )
        )
        return sorted(kind for kind, doc in zip(names, probes, strict=True) if doc is not None)

    @translate_errors
    async def namespace_stats(self, ns: str) -> NamespaceStats:
        """See :meth:`Backend.namespace_stats` (two aggregations over the namespace)."""
        kinds = {
            doc["_id"]: KindStats(int(doc["count"]), int(doc["bytes"]))
            for doc in await self._aggregate(self._records, _KIND_TOTALS, ns, live(now()))
        }
        series = {
            doc["_id"]: SeriesStats(
                int(doc["length"]), int(doc["bytes"]), float(doc["oldest"]), float(doc["newest"])
            )
            for doc in await self._aggregate(self._series, _SERIES_TOTALS, ns, {})
        }
        return NamespaceStats(dict(sorted(kinds.items())), dict(sorted(series.items())))

    async def _aggregate(
        self, collection: Any, group: dict[str, Any], ns: str, match: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """One ``$match`` on the namespace (plus ``match``) and one ``$group`` stage."""
        pipeline = [{"$match": {"ns": ns, **match}}, {"$group": group}]
        return await to_list(await maybe_await(collection.aggregate(pipeline)))

    @translate_errors
    async def drop_namespace(self, ns: str) -> None:
        """See :meth:`Backend.drop_namespace` (``delete_many`` on each collection)."""

        async def drop() -> None:
            for collection in (self._records, self._chunks, self._series, self._counters):
                await collection.delete_many({"ns": ns})

        await self._atomic(drop())


#: ``$group`` of live records by kind
_KIND_TOTALS: dict[str, Any] = {
    "_id": "$kind",
    "count": {"$sum": 1},
    "bytes": {"$sum": "$size"},
}
#: ``$group`` of series entries by series name
_SERIES_TOTALS: dict[str, Any] = {
    "_id": "$name",
    "length": {"$sum": 1},
    "bytes": {"$sum": "$size"},
    "oldest": {"$min": "$ts"},
    "newest": {"$max": "$ts"},
}

__all__ = ["MongoNamespace"]
