"""The MongoDB backend's document layout: sizes, dates, expiry filters and id ranges.

Pure functions and constants shared by every part of
:class:`~hivemem_mongo.backend.MongoBackend`; nothing here talks to a server
except the two driver shims at the end (:func:`maybe_await`, :func:`to_list`).
``docs/backends/mongo.md`` describes the collections and documents.
"""

from __future__ import annotations

import datetime as dt
import inspect
import time
from collections.abc import Callable, Mapping
from typing import Any

from hivemem.plugin import prefix_upper

#: MongoDB's maximum BSON document size
BSON_LIMIT = 16 * 1024 * 1024
#: default largest value stored inline, and the size of one chunk
DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024
#: room kept in every document for field names, numbers and BSON framing
DOC_OVERHEAD = 4096
MIN_CHUNK_SIZE = 1024
MAX_CHUNK_SIZE = BSON_LIMIT - 64 * 1024
#: ids per query / bulk call in batch operations
BATCH_SIZE = 1000
#: how often a read retries a chunked value whose chunks vanished under it
READ_RETRIES = 5

#: the unique key index of the records collection, and its fields
KEY_INDEX = "hm_key"
KEY_FIELDS = [("ns", 1), ("kind", 1), ("id", 1)]
#: projection of a record document for reading its value (inline ``v`` or chunked ``g, n``)
RECORD_FIELDS: dict[str, int] = {
    "_id": 0,
    "id": 1,
    "v": 1,
    "g": 1,
    "n": 1,
    "size": 1,
    "ver": 1,
    "expires_at": 1,
}
#: projection of a record document for listing ids only
ID_FIELDS: dict[str, int] = {"_id": 0, "id": 1}

_EPOCH = dt.datetime(1970, 1, 1)
#: stands in for "never expires" when comparing ``expires_at`` in update pipelines
_FAR_FUTURE = dt.datetime(9999, 12, 31)

#: the clock expiry is computed and checked against (tests move it; the server's TTL
#: monitor keeps its own)
clock: Callable[[], float] = time.time


# -- dates and expiry -------------------------------------------------------------------
def to_date(seconds: float) -> dt.datetime:
    """Unix seconds -> naive UTC datetime at BSON's millisecond precision."""
    return _EPOCH + dt.timedelta(milliseconds=round(seconds * 1000))


def from_date(date: dt.datetime) -> float:
    """Naive-UTC or aware datetime -> unix seconds."""
    if date.tzinfo is not None:
        date = date.astimezone(dt.UTC).replace(tzinfo=None)
    return (date - _EPOCH) / dt.timedelta(seconds=1)


def now() -> dt.datetime:
    """The current time of :data:`clock` as a BSON date."""
    return to_date(clock())


def expiry(ttl: float | None) -> dt.datetime | None:
    """``expires_at`` of a write with ``ttl`` (already checked by the base class)."""
    return None if ttl is None else to_date(clock() + ttl)


def live(moment: dt.datetime) -> dict[str, Any]:
    """Query clause: no expiry, or an expiry after ``moment``."""
    return {"expires_at": {"$not": {"$lte": moment}}}


def is_live(doc: Mapping[str, Any], moment: dt.datetime) -> bool:
    """True when ``doc`` (with its ``expires_at``) has not expired at ``moment``."""
    expires_at = doc.get("expires_at")
    return expires_at is None or from_date(expires_at) > from_date(moment)


def next_version(moment: dt.datetime) -> dict[str, Any]:
    """Update-pipeline expression for ``ver`` after a plain write at ``moment``.

    ``ver + 1`` over a record that is live at ``moment``, 1 over a missing or
    expired one: the server computes it in the same atomic operation.
    """
    alive = {"$gt": [{"$ifNull": ["$expires_at", _FAR_FUTURE]}, moment]}
    return {"$cond": [alive, {"$add": [{"$ifNull": ["$ver", 0]}, 1]}, 1]}


# -- ids and sizes ----------------------------------------------------------------------
def id_upper(prefix: str) -> str | None:
    """:func:`~hivemem.plugin.prefix_upper` made encodable: a surrogate bound becomes U+E000.

    No valid id contains a surrogate, so U+E000 bounds the same set of ids as
    U+D800 would, and BSON can carry it.
    """
    upper = prefix_upper(prefix)
    if upper is not None and "\ud800" <= upper[-1] <= "\udfff":
        upper = upper[:-1] + "\ue000"
    return upper


def prefix_bounds(prefix: str) -> dict[str, str]:
    """Query clause on a string field: it starts with ``prefix`` (an index range)."""
    bounds: dict[str, str] = {"$gte": prefix}
    upper = id_upper(prefix)
    if upper is not None:
        bounds["$lt"] = upper
    return bounds


def id_range(prefix: str, cursor: str | None, reverse: bool) -> dict[str, str]:
    """:func:`prefix_bounds` narrowed past ``cursor`` in the direction of travel."""
    bounds = prefix_bounds(prefix)
    if cursor is not None:
        if reverse:
            upper = bounds.get("$lt")
            bounds["$lt"] = cursor if upper is None else min(upper, cursor)
        else:
            bounds["$gt"] = cursor
    return bounds


def utf8_len(*parts: str) -> int:
    """Bytes the strings take in a BSON document."""
    return sum(len(part.encode("utf-8")) for part in parts)


# -- driver shims -----------------------------------------------------------------------
async def maybe_await(value: Any) -> Any:
    """PyMongo async returns coroutines where Motor returns objects (aggregate, sessions)."""
    if inspect.isawaitable(value):
        return await value
    return value


async def to_list(cursor: Any) -> list[Any]:
    """Every document of a cursor."""
    return list(await cursor.to_list(None))
