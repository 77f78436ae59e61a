"""Records on MongoDB: read, write, delete and scan one ``(namespace, kind)``.

A record is one document ``{ns, kind, id, ver, size, expires_at, v}`` of the
``records`` collection under the unique index ``hm_key`` on
``(ns, kind, id)``; a value past the key's piece size lives in chunk
documents instead (:mod:`~hivemem_mongo.chunks`) and the record holds
``{g, n}``. Every write is one atomic server operation on the record
document: the version is computed by the server from the document it
replaces, and compare-and-set is a condition on ``ver``.

``scan`` is one index range query on ``hm_key`` (ids compare as UTF-8
bytes under the simple collation, which is code-point order);
``list_ids``/``list_records`` are the base class's defaults over it.
Operations of more than one round trip run shielded from cancellation
(:meth:`~hivemem_mongo.connection.MongoConnection._atomic`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, cast

from hivemem.plugin import ConflictError, FrameError, Record
from pymongo import ReturnDocument, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from .chunks import MongoChunks
from .connection import translate_errors
from .documents import (
    ID_FIELDS,
    KEY_INDEX,
    READ_RETRIES,
    RECORD_FIELDS,
    expiry,
    from_date,
    id_range,
    is_live,
    live,
    next_version,
    now,
    to_list,
)

#: the fields of the other value layout, removed by a write of each layout
_CHUNK_REFERENCE = ("g", "n")
_INLINE_VALUE = ("v",)
#: how often a write retries a lost upsert race on a new key
_UPSERT_ATTEMPTS = 3
_DUPLICATE_KEY = 11000


def _conflict_label(key: Mapping[str, str]) -> str:
    return f"{key['kind']}/{key['id']}"


def _lost_upserts(exc: BulkWriteError) -> list[int] | None:
    """Indexes of bulk writes that lost an upsert race on a new key; None on any other error."""
    errors = exc.details.get("writeErrors", [])
    if any(error.get("code") != _DUPLICATE_KEY for error in errors):
        return None
    return [error["index"] for error in errors]


class MongoRecords(MongoChunks):
    """``get``/``get_many``/``put``/``put_many``/``delete``/``delete_many``/``scan``."""

    # -- reads ------------------------------------------------------------------
    @staticmethod
    def _record(doc: Mapping[str, Any], value: bytes) -> Record:
        expires_at = doc.get("expires_at")
        return Record(
            bytes(value), int(doc["ver"]), None if expires_at is None else from_date(expires_at)
        )

    async def _live_version(self, key: Mapping[str, str], moment: dt.datetime) -> int | None:
        doc = await self._records.find_one({**key, **live(moment)}, {"_id": 0, "ver": 1})
        return None if doc is None else int(doc["ver"])

    async def _resolve(
        self, ns: str, kind: str, docs: Sequence[Mapping[str, Any]]
    ) -> list[tuple[str, Record]]:
        """Records for fetched documents, chunks fetched in one query; incomplete ones re-read."""
        chunked = [doc for doc in docs if "v" not in doc]
        values = await self._assemble(ns, kind, chunked) if chunked else {}
        resolved: list[tuple[str, Record]] = []
        for doc in docs:
            if "v" in doc:
                resolved.append((doc["id"], self._record(doc, doc["v"])))
            elif doc["id"] in values:
                resolved.append((doc["id"], self._record(doc, values[doc["id"]])))
            else:  # replaced or expired while we read: read it again on its own
                record = await self._get(ns, kind, doc["id"])
                if record is not None:
                    resolved.append((doc["id"], record))
        return resolved

    async def _get(self, ns: str, kind: str, id: str) -> Record | None:
        key = {"ns": ns, "kind": kind, "id": id}
        for _ in range(READ_RETRIES):
            doc = await self._records.find_one({**key, **live(now())}, RECORD_FIELDS)
            if doc is None:
                return None
            if "v" in doc:
                return self._record(doc, doc["v"])
            values = await self._assemble(ns, kind, [doc])
            if id in values:
                return self._record(doc, values[id])
            # chunks gone: a concurrent write replaced the value or the TTL monitor ran
        raise FrameError("chunked value stays incomplete across re-reads", key=f"{kind}/{id}")

    # Overrides the base class's default (``get_many`` of one id) because it is cheaper
    # per call for the same single round trip: one ``find_one`` on the unique key, with
    # no id de-duplication, batch loop, ``$in`` clause or result list to build.
    @translate_errors
    async def get(self, ns: str, kind: str, id: str) -> Record | None:
        """See :meth:`Backend.get` (one ``find_one``; one more query for a chunked value)."""
        return await self._get(ns, kind, id)

    @translate_errors
    async def get_many(self, ns: str, kind: str, ids: Sequence[str]) -> dict[str, Record]:
        """See :meth:`Backend.get_many` (``$in`` on the key index, chunks in one more query)."""
        unique = list(dict.fromkeys(ids))
        found: dict[str, Record] = {}
        for start in range(0, len(unique), self.batch_size):
            query = {"ns": ns, "kind": kind, "id": {"$in": unique[start : start + self.batch_size]}}
            docs = await to_list(self._records.find({**query, **live(now())}, RECORD_FIELDS))
            found.update(await self._resolve(ns, kind, docs))
        return found

    # -- writes -----------------------------------------------------------------
    @translate_errors
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
        """See :meth:`Backend.put` (one atomic update; chunked values: chunks, flip, cleanup)."""
        expires = expiry(ttl)
        if expected_version is not None and expected_version < 0:
            raise ValueError(f"expected_version must be >= 0, got {expected_version!r}")
        return await self._atomic(
            self._put_one(ns, kind, id, bytes(value), expires, expected_version)
        )

    async def _put_one(
        self,
        ns: str,
        kind: str,
        id: str,
        value: bytes,
        expires: dt.datetime | None,
        expected_version: int | None,
    ) -> int:
        """Write one record, inline or as a new chunk generation; drop the replaced one."""
        key = {"ns": ns, "kind": kind, "id": id}
        piece = self._piece_size(ns, kind, id)
        if len(value) <= piece:
            version, previous = await self._write_record(
                key, {"v": value}, len(value), expires, expected_version
            )
        else:
            generation, count = await self._write_generation(key, value, piece, expires)
            try:
                version, previous = await self._write_record(
                    key, {"g": generation, "n": count}, len(value), expires, expected_version
                )
            except Exception:  # the flip failed (or lost its CAS): the old value stays
                await self._discard_generation(key, generation)
                raise
        if previous is not None:
            await self._drop_generation(key, previous)
        return version

    async def _write_record(
        self,
        key: Mapping[str, str],
        body: dict[str, Any],
        size: int,
        expires: dt.datetime | None,
        expected_version: int | None,
    ) -> tuple[int, Any]:
        """Write one record document; return (new version, previous chunk generation).

        ``body`` is ``{"v": bytes}`` (inline) or ``{"g": generation, "n": count}``
        (chunked). One atomic server operation whatever the CAS mode.
        """
        moment = now()
        fields = {**body, "size": size, "expires_at": expires}
        drop = _CHUNK_REFERENCE if "v" in body else _INLINE_VALUE
        if expected_version is None:
            before = await self._upsert_record(key, fields, drop, moment)
            version = int(before["ver"]) + 1 if before and is_live(before, moment) else 1
        elif expected_version == 0:
            before = await self._create_record(key, fields, moment)
            version = 1
        else:
            before = await self._update_record(key, fields, drop, moment, expected_version)
            version = expected_version + 1
        return version, (before or {}).get("g")

    async def _upsert_record(
        self,
        key: Mapping[str, str],
        fields: Mapping[str, Any],
        drop: Sequence[str],
        moment: dt.datetime,
    ) -> dict[str, Any] | None:
        """Plain write: an upsert whose pipeline computes the version; the replaced document."""
        pipeline = [
            {
                "$set": {
                    "ver": next_version(moment),
                    **{name: {"$literal": value} for name, value in fields.items()},
                }
            },
            {"$project": dict.fromkeys(drop, 0)},
        ]
        for attempt in range(_UPSERT_ATTEMPTS):
            try:
                return await self._records.find_one_and_update(
                    key,
                    pipeline,
                    upsert=True,
                    projection={"_id": 0, "ver": 1, "g": 1, "expires_at": 1},
                    return_document=ReturnDocument.BEFORE,
                )
            except DuplicateKeyError:  # two concurrent upserts of a new key
                if attempt == _UPSERT_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    async def _create_record(
        self, key: Mapping[str, str], fields: Mapping[str, Any], moment: dt.datetime
    ) -> dict[str, Any] | None:
        """``expected_version=0``: replace an expired leftover or insert; a live one conflicts."""
        try:
            return await self._records.find_one_and_replace(
                {**key, "expires_at": {"$lte": moment}},
                {**key, **fields, "ver": 1},
                upsert=True,
                projection={"_id": 0, "ver": 1, "g": 1, "expires_at": 1},
                return_document=ReturnDocument.BEFORE,
            )
        except DuplicateKeyError:
            actual = await self._live_version(key, moment)
            raise ConflictError(_conflict_label(key), 0, actual) from None

    async def _update_record(
        self,
        key: Mapping[str, str],
        fields: Mapping[str, Any],
        drop: Sequence[str],
        moment: dt.datetime,
        expected_version: int,
    ) -> dict[str, Any]:
        """``expected_version=n``: update only the live record at version n."""
        before = await self._records.find_one_and_update(
            {**key, "ver": expected_version, **live(moment)},
            {"$set": fields, "$inc": {"ver": 1}, "$unset": dict.fromkeys(drop, "")},
            projection={"_id": 0, "ver": 1, "g": 1, "expires_at": 1},
            return_document=ReturnDocument.BEFORE,
        )
        if before is None:
            actual = await self._live_version(key, moment)
            raise ConflictError(_conflict_label(key), expected_version, actual)
        return cast(dict[str, Any], before)

    @translate_errors
    async def put_many(
        self, ns: str, kind: str, items: Mapping[str, bytes], *, ttl: float | None = None
    ) -> None:
        """See :meth:`Backend.put_many` (one unordered ``bulk_write`` of upserts per batch)."""
        expires = expiry(ttl)
        copied = {id: bytes(value) for id, value in items.items()}
        await self._atomic(self._put_many(ns, kind, copied, expires))

    async def _put_many(
        self, ns: str, kind: str, items: dict[str, bytes], expires: dt.datetime | None
    ) -> None:
        inline: list[tuple[str, bytes]] = []
        chunked: list[tuple[str, bytes]] = []
        for id, value in items.items():
            fits = len(value) <= self._piece_size(ns, kind, id)
            (inline if fits else chunked).append((id, value))
        for start in range(0, len(inline), self.batch_size):
            batch = inline[start : start + self.batch_size]
            await self._put_inline_batch(ns, kind, batch, expires)
        for id, value in chunked:
            await self._put_one(ns, kind, id, value, expires, None)

    async def _put_inline_batch(
        self, ns: str, kind: str, batch: list[tuple[str, bytes]], expires: dt.datetime | None
    ) -> None:
        """One unordered ``bulk_write`` of pipeline upserts; replaced generations dropped."""
        ids = [id for id, _ in batch]
        # generations of values being replaced by inline ones (rare: they were large)
        previous = await to_list(
            self._records.find(
                {"ns": ns, "kind": kind, "id": {"$in": ids}, "g": {"$exists": True}},
                {"_id": 0, "id": 1, "g": 1},
            )
        )
        # shared by every upsert of the batch: only the key and the value differ
        version = next_version(now())
        expires_literal = {"$literal": expires}
        drop_chunks = {"$project": dict.fromkeys(_CHUNK_REFERENCE, 0)}
        operations = [
            UpdateOne(
                {"ns": ns, "kind": kind, "id": id},
                [
                    {
                        "$set": {
                            "ver": version,
                            "v": {"$literal": value},
                            "size": len(value),
                            "expires_at": expires_literal,
                        }
                    },
                    drop_chunks,
                ],
                upsert=True,
            )
            for id, value in batch
        ]
        try:
            await self._records.bulk_write(operations, ordered=False)
        except BulkWriteError as exc:
            lost = _lost_upserts(exc)
            if lost is None:
                raise
            for index in lost:  # lost an upsert race on a new key: write it again
                id, value = batch[index]
                await self._put_one(ns, kind, id, value, expires, None)
        for doc in previous:
            await self._drop_generation({"ns": ns, "kind": kind, "id": doc["id"]}, doc["g"])

    # -- deletes ----------------------------------------------------------------
    @translate_errors
    async def delete(
        self, ns: str, kind: str, id: str, *, expected_version: int | None = None
    ) -> bool:
        """See :meth:`Backend.delete` (``find_one_and_delete``, conditional on version)."""
        return await self._atomic(self._delete(ns, kind, id, expected_version))

    async def _delete(self, ns: str, kind: str, id: str, expected_version: int | None) -> bool:
        key = {"ns": ns, "kind": kind, "id": id}
        moment = now()
        projection = {"_id": 0, "ver": 1, "g": 1, "expires_at": 1}
        if expected_version is None:
            before = await self._records.find_one_and_delete(key, projection=projection)
            removed = before is not None and is_live(before, moment)
        elif expected_version == 0:
            actual = await self._live_version(key, moment)
            if actual is not None:
                raise ConflictError(_conflict_label(key), 0, actual)
            return False
        else:
            before = await self._records.find_one_and_delete(
                {**key, "ver": expected_version, **live(moment)}, projection=projection
            )
            if before is None:
                actual = await self._live_version(key, moment)
                raise ConflictError(_conflict_label(key), expected_version, actual)
            removed = True
        if before is not None and before.get("g") is not None:
            await self._drop_generation(key, before["g"])
        return removed

    @translate_errors
    async def delete_many(self, ns: str, kind: str, ids: Sequence[str]) -> int:
        """See :meth:`Backend.delete_many` (``delete_many`` with ``$in``)."""
        return await self._atomic(self._delete_many(ns, kind, list(dict.fromkeys(ids))))

    async def _delete_many(self, ns: str, kind: str, ids: list[str]) -> int:
        removed = 0
        for start in range(0, len(ids), self.batch_size):
            query = {"ns": ns, "kind": kind, "id": {"$in": ids[start : start + self.batch_size]}}
            chunked = await to_list(
                self._records.find({**query, "g": {"$exists": True}}, {"_id": 0, "id": 1, "g": 1})
            )
            result = await self._records.delete_many({**query, **live(now())})
            removed += result.deleted_count
            for doc in chunked:
                await self._drop_generation({"ns": ns, "kind": kind, "id": doc["id"]}, doc["g"])
        return removed

    # -- listing ----------------------------------------------------------------
    def _listing(
        self,
        ns: str,
        kind: str,
        prefix: str,
        limit: int | None,
        cursor: str | None,
        reverse: bool,
        projection: Mapping[str, int],
    ) -> Any:
        """The cursor of a prefix listing: an index range on ``(ns, kind, id)``."""
        query = {"ns": ns, "kind": kind, "id": id_range(prefix, cursor, reverse), **live(now())}
        direction = -1 if reverse else 1
        found = (
            self._records.find(query, dict(projection))
            .sort([("ns", direction), ("kind", direction), ("id", direction)])
            .hint(KEY_INDEX)
        )
        if limit is not None:
            found = found.limit(limit)
        return found

    @translate_errors
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
        """See :meth:`Backend.scan` (one index range query; chunks in one more query).

        With ``values=False`` the query projects the ids only, so no value
        leaves the server.
        """
        if limit is not None and limit <= 0:
            return []
        if not values:
            found = self._listing(ns, kind, prefix, limit, cursor, reverse, ID_FIELDS)
            return [(doc["id"], None) async for doc in found]
        found = self._listing(ns, kind, prefix, limit, cursor, reverse, RECORD_FIELDS)
        records = await self._resolve(ns, kind, await to_list(found))
        return cast(list[tuple[str, Record | None]], records)

    @translate_errors
    async def explain_listing(
        self, ns: str, kind: str, prefix: str = "", *, limit: int | None = None
    ) -> dict[str, Any]:
        """The server's ``explain`` of the query behind :meth:`scan` (diagnostics)."""
        self.require_open()
        found = self._listing(ns, kind, prefix, limit, None, False, ID_FIELDS)
        return dict(await found.explain())


__all__ = ["MongoRecords"]
