"""Values past the 16 MiB document limit: chunk generations in the ``chunks`` collection.

A value larger than the key's piece size (``chunk_size``, less the key's own
bytes) is stored as chunk documents ``{ns, kind, id, g, n, d, expires_at}``
under a fresh generation ``g`` (an ObjectId); the record then holds
``{g, n}`` instead of ``v``. The record write (see
:mod:`~hivemem_mongo.records`) inserts the chunks first, flips the record to
the new generation with one atomic update, then drops the previous
generation: a failure at any point leaves the previous value readable.
:meth:`MongoChunks.collect_garbage` removes generations a lost connection
left unreferenced.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping, Sequence
from typing import Any

from bson import ObjectId
from hivemem.plugin import ValueTooLarge

from .connection import MongoConnection, translate_errors
from .documents import BSON_LIMIT, DOC_OVERHEAD, MIN_CHUNK_SIZE, maybe_await, to_list, utf8_len


class MongoChunks(MongoConnection):
    """Writing, reading and collecting chunk generations."""

    def _piece_size(self, ns: str, kind: str, id: str) -> int:
        """Largest value held by one document for this key (the key is in every document)."""
        room = min(self.chunk_size, BSON_LIMIT - DOC_OVERHEAD - utf8_len(ns, kind, id))
        if room < MIN_CHUNK_SIZE:
            raise ValueTooLarge(
                f"{kind}/{id[:40]}", utf8_len(ns, kind, id), BSON_LIMIT, "mongodb key"
            )
        return room

    async def _write_generation(
        self, key: Mapping[str, str], value: bytes, piece: int, expires: dt.datetime | None
    ) -> tuple[ObjectId, int]:
        """Insert ``value`` as chunks of ``piece`` bytes under a fresh generation.

        Returns ``(generation, chunk count)``. On failure the chunks written so
        far are removed again where the server can still be reached.
        """
        generation = ObjectId()
        docs = [
            {
                **key,
                "g": generation,
                "n": index,
                "d": value[offset : offset + piece],
                "expires_at": expires,
            }
            for index, offset in enumerate(range(0, len(value), piece))
        ]
        try:
            await self._chunks.insert_many(docs, ordered=True)
        except Exception:
            await self._discard_generation(key, generation)
            raise
        return generation, len(docs)

    async def _discard_generation(self, key: Mapping[str, str], generation: ObjectId) -> None:
        """Best-effort removal of a generation no record points to.

        When the connection is gone this fails too; :meth:`collect_garbage`
        removes what is left.
        """
        try:
            await self._drop_generation(key, generation)
        except Exception:
            pass

    async def _drop_generation(self, key: Mapping[str, str], generation: Any) -> None:
        await self._chunks.delete_many({**key, "g": generation})

    async def _assemble(
        self, ns: str, kind: str, docs: Sequence[Mapping[str, Any]]
    ) -> dict[str, bytes]:
        """Values of chunked record documents; ids whose chunks are incomplete are absent."""
        wanted = {doc["id"]: doc for doc in docs}
        parts: dict[str, list[bytes]] = {id: [] for id in wanted}
        query = {
            "ns": ns,
            "kind": kind,
            "id": {"$in": list(wanted)},
            "g": {"$in": list({doc["g"] for doc in docs})},
        }
        cursor = self._chunks.find(query, {"_id": 0, "id": 1, "g": 1, "n": 1, "d": 1}).sort(
            [("id", 1), ("g", 1), ("n", 1)]
        )
        async for chunk in cursor:
            doc = wanted[chunk["id"]]
            got = parts[chunk["id"]]
            if chunk["g"] == doc["g"] and chunk["n"] == len(got):
                got.append(bytes(chunk["d"]))
        values = {}
        for id, doc in wanted.items():
            value = b"".join(parts[id])
            if len(parts[id]) == doc["n"] and len(value) == doc["size"]:
                values[id] = value
        return values

    @translate_errors
    async def collect_garbage(self, min_age: float = 3600.0) -> int:
        """Delete chunk generations no record points to; return how many chunks went.

        A chunked write whose connection died between writing its chunks and
        flipping the record leaves such a generation (its cleanup could not
        reach the server either). Generations younger than ``min_age``
        seconds are kept: they may belong to a write still in flight.
        """
        self.require_open()
        cutoff = ObjectId.from_datetime(dt.datetime.fromtimestamp(time.time() - min_age, dt.UTC))
        groups = await to_list(
            await maybe_await(
                self._chunks.aggregate(
                    [
                        {"$match": {"g": {"$lt": cutoff}}},
                        {"$group": {"_id": {"ns": "$ns", "kind": "$kind", "id": "$id", "g": "$g"}}},
                    ]
                )
            )
        )
        removed = 0
        for group in groups:
            ref = group["_id"]
            owner = {"ns": ref["ns"], "kind": ref["kind"], "id": ref["id"], "g": ref["g"]}
            if await self._records.find_one(owner, {"_id": 1}) is None:
                result = await self._chunks.delete_many(owner)
                removed += result.deleted_count
        return removed


__all__ = ["MongoChunks"]
