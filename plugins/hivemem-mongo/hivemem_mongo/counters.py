"""Counters on MongoDB: one document per ``(ns, kind, id, field)`` under a unique index.

``incr`` is one upserting ``$inc`` (atomic across clients); ``get_counters``
one ``$in`` query per batch of ids; ``delete_counters`` one ``delete_many``.
"""

from __future__ import annotations

from collections.abc import Sequence

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from .connection import MongoConnection, translate_errors

#: how often ``incr`` retries a lost upsert race on a new counter
_UPSERT_ATTEMPTS = 3


class MongoCounters(MongoConnection):
    """``incr``, ``get_counters``, ``delete_counters``."""

    @translate_errors
    async def incr(self, ns: str, kind: str, id: str, field: str, amount: float = 1.0) -> float:
        """See :meth:`Backend.incr` (one upserting ``$inc``, atomic across clients)."""
        key = {"ns": ns, "kind": kind, "id": id, "field": field}
        for attempt in range(_UPSERT_ATTEMPTS):
            try:
                doc = await self._counters.find_one_and_update(
                    key,
                    {"$inc": {"value": float(amount)}},
                    upsert=True,
                    projection={"_id": 0, "value": 1},
                    return_document=ReturnDocument.AFTER,
                )
                return float(doc["value"])
            except DuplicateKeyError:  # two concurrent first increments
                if attempt == _UPSERT_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    @translate_errors
    async def get_counters(
        self, ns: str, kind: str, ids: Sequence[str]
    ) -> dict[str, dict[str, float]]:
        """See :meth:`Backend.get_counters` (``$in`` on the counter index)."""
        unique = list(dict.fromkeys(ids))
        counters: dict[str, dict[str, float]] = {}
        for start in range(0, len(unique), self.batch_size):
            found = self._counters.find(
                {"ns": ns, "kind": kind, "id": {"$in": unique[start : start + self.batch_size]}},
                {"_id": 0, "id": 1, "field": 1, "value": 1},
            )
            async for doc in found:
                counters.setdefault(doc["id"], {})[doc["field"]] = float(doc["value"])
        return counters

    @translate_errors
    async def delete_counters(self, ns: str, kind: str, id: str) -> bool:
        """See :meth:`Backend.delete_counters`."""
        result = await self._counters.delete_many({"ns": ns, "kind": kind, "id": id})
        return result.deleted_count > 0


__all__ = ["MongoCounters"]
