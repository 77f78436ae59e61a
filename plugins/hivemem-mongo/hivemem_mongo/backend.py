"""``mongodb://`` / ``mongodb+srv://`` -- the MongoDB backend on PyMongo's async API.

Layout (``docs/backends/mongo.md`` has the full rationale), collection names
carry the ``collection_prefix`` option (default ``hivemem_``):

* ``records``: one document per record ``{ns, kind, id, ver, size,
  expires_at, v}`` under the unique index ``(ns, kind, id)``. Ids are stored
  as BSON strings: under the simple collation MongoDB compares strings as
  UTF-8 bytes, which is code-point order, so a prefix listing is the index
  range ``prefix <= id < prefix_upper(prefix)``.
* Values larger than ``chunk_size`` live in ``chunks`` documents
  ``{ns, kind, id, g, n, d, expires_at}``; the record then holds ``{g, n}``
  instead of ``v``. A chunked write inserts every chunk under a fresh
  generation ``g`` first, then flips the record to ``g`` with one atomic
  update, then deletes the previous generation: a failure at any point
  leaves the previous value readable.
* ``series``: ``{ns, name, ts, seq, v, size}`` with the index
  ``(ns, name, ts, seq)``. ``seq`` comes from blocks reserved with ``$inc``
  on a document of ``meta``.
* ``counters``: one document per ``(ns, kind, id, field)`` updated with an
  upserting ``$inc``.
* TTL: ``expires_at`` is a BSON date under a TTL index (the server purges
  about once a minute) and every read filters expired documents out.

Every operation that takes more than one round trip runs shielded from
cancellation: a cancelled caller gets ``CancelledError`` while the operation
completes, so it happened completely.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import inspect
import re
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, ClassVar, Concatenate, ParamSpec, TypeVar
from urllib.parse import parse_qsl, unquote

from bson import ObjectId
from hivemem.plugin import (
    Backend,
    BackendUnavailable,
    Capabilities,
    ConfigError,
    ConflictError,
    FrameError,
    HivememError,
    KindStats,
    NamespaceStats,
    Record,
    SeriesEntry,
    SeriesStats,
    ValueTooLarge,
    prefix_upper,
)
from pymongo import ReturnDocument, UpdateOne
from pymongo.errors import (
    BulkWriteError,
    ConfigurationError,
    ConnectionFailure,
    DuplicateKeyError,
    InvalidOperation,
    OperationFailure,
)
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

P = ParamSpec("P")
T = TypeVar("T")

#: MongoDB's maximum BSON document size
BSON_LIMIT = 16 * 1024 * 1024
#: default largest value stored inline, and the size of one chunk
DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024
#: room kept in every document for field names, numbers and BSON framing
_DOC_OVERHEAD = 4096
_MIN_CHUNK_SIZE = 1024
_MAX_CHUNK_SIZE = BSON_LIMIT - 64 * 1024
#: ids per query / bulk call in batch operations
_BATCH = 1000
_EPOCH = dt.datetime(1970, 1, 1)
_FAR_FUTURE = dt.datetime(9999, 12, 31)
_READ_RETRIES = 5
#: the clock expiry is computed and checked against (tests move it; the server's TTL
#: monitor keeps its own)
_clock: Callable[[], float] = time.time

_KEY_INDEX = "hm_key"
_KEY_FIELDS = [("ns", 1), ("kind", 1), ("id", 1)]
_OPTIONS = (
    "database",
    "collection_prefix",
    "write_concern",
    "read_concern",
    "client",
    "client_options",
    "chunk_size",
    "seq_block",
    "create_indexes",
)
#: accepted and ignored: the seed's key prefix is a Redis notion
_IGNORED_OPTIONS = ("prefix",)
#: read concern levels a transaction accepts
_TXN_READ_LEVELS = ("local", "majority", "snapshot")
_SECRET_QUERY_KEYS = re.compile(r"password|secret|token|key", re.IGNORECASE)


# -- helpers -------------------------------------------------------------------------
def _to_date(t: float) -> dt.datetime:
    """Unix seconds -> naive UTC datetime at BSON's millisecond precision."""
    return _EPOCH + dt.timedelta(milliseconds=round(t * 1000))


def _from_date(d: dt.datetime) -> float:
    """Naive-UTC or aware datetime -> unix seconds."""
    if d.tzinfo is not None:
        d = d.astimezone(dt.UTC).replace(tzinfo=None)
    return (d - _EPOCH) / dt.timedelta(seconds=1)


def _now() -> dt.datetime:
    return _to_date(_clock())


def _expiry(ttl: float | None) -> dt.datetime | None:
    if ttl is None:
        return None
    if not ttl > 0:
        raise ValueError(f"ttl must be > 0 seconds, got {ttl!r}")
    return _to_date(_clock() + float(ttl))


def _live(now: dt.datetime) -> dict[str, Any]:
    """Query clause: no expiry, or an expiry after ``now``."""
    return {"expires_at": {"$not": {"$lte": now}}}


def _is_live(doc: Mapping[str, Any], now: dt.datetime) -> bool:
    exp = doc.get("expires_at")
    return exp is None or _from_date(exp) > _from_date(now)


def _upper(prefix: str) -> str | None:
    """:func:`prefix_upper` made encodable: a surrogate bound becomes U+E000.

    No valid id contains a surrogate, so U+E000 bounds the same set of ids as
    U+D800 would, and BSON can carry it.
    """
    upper = prefix_upper(prefix)
    if upper is not None and "\ud800" <= upper[-1] <= "\udfff":
        upper = upper[:-1] + "\ue000"
    return upper


def _id_range(prefix: str, cursor: str | None, reverse: bool) -> dict[str, str]:
    rng: dict[str, str] = {"$gte": prefix}
    upper = _upper(prefix)
    if upper is not None:
        rng["$lt"] = upper
    if cursor is not None:
        if reverse:
            rng["$lt"] = cursor if upper is None else min(upper, cursor)
        else:
            rng["$gt"] = cursor
    return rng


async def _maybe_await(value: Any) -> Any:
    """PyMongo async returns coroutines where Motor returns objects (aggregate, sessions)."""
    if inspect.isawaitable(value):
        return await value
    return value


async def _to_list(cursor: Any) -> list[Any]:
    return list(await cursor.to_list(None))


def _literal(value: Any) -> dict[str, Any]:
    return {"$literal": value}


def _utf8_len(*parts: str) -> int:
    return sum(len(p.encode("utf-8")) for p in parts)


class _Where:
    """The parts of a MongoDB URL that may be shown, and the secrets to redact."""

    def __init__(self, url: str) -> None:
        scheme, sep, rest = url.partition("://")
        if not sep or scheme not in ("mongodb", "mongodb+srv"):
            raise ConfigError(
                f"mongodb backend needs a mongodb:// or mongodb+srv:// URL, got scheme {scheme!r}"
            )
        self.scheme = scheme
        netloc, _, tail = rest.partition("/")
        netloc, qmark, query = netloc.partition("?")
        if qmark:
            tail = "?" + query
        userinfo, at, hosts = netloc.rpartition("@")
        self.hosts = hosts if at else netloc
        path, _, query = tail.partition("?")
        self.path_database = unquote(path) or None
        self.query = {k.lower(): v for k, v in parse_qsl(query, keep_blank_values=True)}
        secrets: set[str] = set()
        if at:
            user, _, password = userinfo.partition(":")
            for raw in (user, password):
                if raw:
                    secrets.update({raw, unquote(raw)})
        for key, value in parse_qsl(query):
            if _SECRET_QUERY_KEYS.search(key) and value:
                secrets.update({value, unquote(value)})
        # a credential is replaced where it stands as a token of its own, so a short
        # user name ("u") does not mangle every word that contains the letter
        self._redactor = (
            re.compile(
                r"(?<![A-Za-z0-9])(?:"
                + "|".join(re.escape(x) for x in sorted(secrets, key=len, reverse=True))
                + r")(?![A-Za-z0-9])"
            )
            if secrets
            else None
        )

    @property
    def display(self) -> str:
        """``scheme://hosts`` -- never a user name, password or query option."""
        return f"{self.scheme}://{self.hosts or 'localhost'}"

    def redact(self, text: str) -> str:
        """``text`` with every credential from the URL replaced by ``***``."""
        return text if self._redactor is None else self._redactor.sub("***", text)


def _guarded(
    fn: Callable[Concatenate[MongoBackend, P], Awaitable[T]],
) -> Callable[Concatenate[MongoBackend, P], Coroutine[Any, Any, T]]:
    """Translate driver failures into hivemem errors that name the hosts only."""

    @functools.wraps(fn)
    async def wrapper(self: MongoBackend, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(self, *args, **kwargs)
        except HivememError:
            raise
        except (ConnectionFailure, InvalidOperation) as exc:
            raise BackendUnavailable(self._describe(exc)) from None
        except OperationFailure as exc:
            if exc.code in (13, 18):  # Unauthorized, AuthenticationFailed
                raise BackendUnavailable(self._describe(exc)) from None
            raise

    return wrapper


class MongoBackend(Backend):
    """MongoDB backend; see the module docstring and ``docs/backends/mongo.md``.

    Options (from ``backend_options``):

    * ``database`` -- database name (default: the URL's path, else ``hivemem``).
    * ``collection_prefix`` -- prefix of the collection names (``hivemem_``).
    * ``write_concern`` -- ``"majority"``, a node count, or a dict of
      :class:`~pymongo.write_concern.WriteConcern` arguments.
    * ``read_concern`` -- a read concern level, e.g. ``"majority"``.
    * ``client`` -- an existing ``AsyncMongoClient`` or Motor client; the
      backend uses it and does not close it.
    * ``client_options`` -- extra keyword arguments for ``AsyncMongoClient``.
    * ``chunk_size`` -- largest value stored inline and the size of each
      chunk of a larger one (default 8 MiB, at most 16 MiB - 64 KiB).
    * ``seq_block`` -- series sequence numbers reserved per round trip (256).
    * ``create_indexes`` -- create the indexes on ``open()`` (default true).
    """

    name: ClassVar[str] = "mongodb"
    capabilities: ClassVar[Capabilities] = Capabilities(
        persistent=True, shared=True, max_value_size=None, supports_series_rewrite=True
    )

    def __init__(self, url: str = "mongodb://localhost:27017/", **options: Any) -> None:
        self._where = _Where(url)
        self._url = url
        unknown = set(options) - set(_OPTIONS) - set(_IGNORED_OPTIONS)
        if unknown:
            raise ConfigError(
                f"unknown mongodb option(s): {', '.join(sorted(unknown))}; "
                f"known: {', '.join(_OPTIONS)}"
            )
        self.database_name = str(options.get("database") or self._where.path_database or "hivemem")
        self.collection_prefix = str(options.get("collection_prefix", "hivemem_"))
        self.write_concern = _write_concern(options.get("write_concern"))
        self.read_concern = _read_concern(options.get("read_concern"))
        self.chunk_size = _int_option(options, "chunk_size", DEFAULT_CHUNK_SIZE)
        if not _MIN_CHUNK_SIZE <= self.chunk_size <= _MAX_CHUNK_SIZE:
            raise ConfigError(
                f"mongodb option chunk_size={self.chunk_size}: use {_MIN_CHUNK_SIZE}.."
                f"{_MAX_CHUNK_SIZE} bytes"
            )
        self.seq_block = _int_option(options, "seq_block", 256)
        if self.seq_block < 1:
            raise ConfigError(f"mongodb option seq_block={self.seq_block}: use 1 or more")
        self.create_indexes = _bool_option(options.get("create_indexes", True))
        client_options = options.get("client_options") or {}
        if not isinstance(client_options, Mapping):
            raise ConfigError("mongodb option client_options must be a mapping")
        self._client_options = dict(client_options)
        self._client: Any = options.get("client")
        self._owns_client = self._client is None
        self._db: Any = None
        self._records: Any = None
        self._chunks: Any = None
        self._series: Any = None
        self._counters: Any = None
        self._meta: Any = None
        self.transactions = False
        self._seq_lock = asyncio.Lock()
        self._seq_next = 1
        self._seq_end = 0
        self._pending: set[asyncio.Task[Any]] = set()
        #: ids per query / bulk call in batch operations
        self.batch_size = _BATCH
        self._state = "new"

    def __repr__(self) -> str:
        return f"MongoBackend({self._where.display!r}, database={self.database_name!r})"

    def _describe(self, exc: BaseException) -> str:
        return self._where.redact(
            f"mongodb at {self._where.display} (database {self.database_name!r}): "
            f"{exc.__class__.__name__}: {exc}"
        )

    # -- lifecycle ----------------------------------------------------------------------
    @_guarded
    async def open(self) -> None:
        """Connect, check the server answers, detect transactions, create the indexes."""
        if self._state == "open":
            return
        if self._client is None:
            self._client = self._build_client()
        db_kwargs: dict[str, Any] = {}
        if self.write_concern is not None:
            db_kwargs["write_concern"] = self.write_concern
        if self.read_concern is not None:
            db_kwargs["read_concern"] = self.read_concern
        self._db = self._client.get_database(self.database_name, **db_kwargs)
        p = self.collection_prefix
        self._records = self._db.get_collection(p + "records")
        self._chunks = self._db.get_collection(p + "chunks")
        self._series = self._db.get_collection(p + "series")
        self._counters = self._db.get_collection(p + "counters")
        self._meta = self._db.get_collection(p + "meta")
        await self._db.command("ping")
        self.transactions = await self._detect_transactions()
        if self.create_indexes:
            await self._ensure_indexes()
        self._state = "open"

    def _build_client(self) -> Any:
        from pymongo import AsyncMongoClient

        kwargs: dict[str, Any] = {"appname": "hivemem", **self._client_options}
        query = self._where.query
        if "retrywrites" not in query:
            kwargs.setdefault("retryWrites", True)
        if "serverselectiontimeoutms" not in query:
            kwargs.setdefault("serverSelectionTimeoutMS", 10_000)
        try:
            return AsyncMongoClient(self._url, **kwargs)
        except (ConfigurationError, ValueError, TypeError) as exc:
            raise ConfigError(self._describe(exc)) from None

    async def _detect_transactions(self) -> bool:
        """Replica-set members and mongos routers run multi-document transactions."""
        try:
            hello = await self._db.command("hello")
        except (ConnectionFailure, InvalidOperation):
            raise
        except Exception:  # a stand-in or an old server without ``hello``
            return False
        if "logicalSessionTimeoutMinutes" not in hello:
            return False
        return bool(hello.get("setName")) or hello.get("msg") == "isdbgrid"

    async def _ensure_indexes(self) -> None:
        await self._records.create_index(_KEY_FIELDS, unique=True, name=_KEY_INDEX)
        await self._records.create_index([("expires_at", 1)], expireAfterSeconds=0, name="hm_ttl")
        await self._chunks.create_index(
            [*_KEY_FIELDS, ("g", 1), ("n", 1)], unique=True, name="hm_chunk"
        )
        await self._chunks.create_index([("expires_at", 1)], expireAfterSeconds=0, name="hm_ttl")
        await self._series.create_index(
            [("ns", 1), ("name", 1), ("ts", 1), ("seq", 1)], name="hm_series"
        )
        await self._counters.create_index(
            [*_KEY_FIELDS, ("field", 1)], unique=True, name="hm_counter"
        )
        info = await self._records.index_information()
        collation = info.get(_KEY_INDEX, {}).get("collation")
        if collation and collation.get("locale") != "simple":
            raise ConfigError(
                f"collection {self.collection_prefix}records has the default collation "
                f"{collation.get('locale')!r}; hivemem needs the simple (binary) collation "
                "for code-point ordered listing: use a fresh collection_prefix"
            )

    async def close(self) -> None:
        """Wait for shielded operations, then close the client if this backend built it."""
        if self._state == "closed":
            return
        self._state = "closed"
        if self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
        if self._owns_client and self._client is not None:
            client, self._client = self._client, None
            await _maybe_await(client.close())

    def _check_open(self) -> None:
        if self._state != "open":
            raise BackendUnavailable(
                f"mongodb backend {self._where.display} is {self._state}: call open() first"
                if self._state == "new"
                else f"mongodb backend {self._where.display} is closed"
            )

    async def _atomic(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a multi-step operation to completion even if the caller is cancelled."""
        task = asyncio.ensure_future(coro)
        self._pending.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._pending.discard(t)
            if not t.cancelled():
                t.exception()  # retrieved: a cancelled caller cannot see it

        task.add_done_callback(done)
        return await asyncio.shield(task)

    @_guarded
    def _transaction_options(self) -> dict[str, Any]:
        """Write and read concern for ``with_transaction`` (only levels transactions allow)."""
        txn: dict[str, Any] = {}
        if self.write_concern is not None:
            txn["write_concern"] = self.write_concern
        if self.read_concern is not None and self.read_concern.level in _TXN_READ_LEVELS:
            txn["read_concern"] = self.read_concern
        return txn

    async def purge_residue(self) -> list[str]:
        """What may still hold old values after a rewrite: MongoDB's own logs and copies."""
        return [
            "MongoDB: the oplog of a replica set holds old values until it rolls over, "
            "and backups, snapshots and secondaries' files made before now still hold them",
            "MongoDB: freed space in WiredTiger files is reused, not zeroed; compact the "
            "collections (db.runCommand({compact: ...})) or resync members to rewrite them",
        ]

    async def ping(self) -> bool:
        """``ping`` the server; BackendUnavailable when it does not answer."""
        self._check_open()
        await self._db.command("ping")
        return True

    @_guarded
    async def stats(self) -> dict[str, Any]:
        """Server version, topology facts and approximate document counts."""
        self._check_open()
        info = await self._db.command("buildInfo")
        return {
            "backend": "mongodb",
            "hosts": self._where.display,
            "database": self.database_name,
            "collection_prefix": self.collection_prefix,
            "server_version": info.get("version"),
            "transactions": self.transactions,
            "chunk_size": self.chunk_size,
            "records": await self._records.estimated_document_count(),
            "chunks": await self._chunks.estimated_document_count(),
            "series_entries": await self._series.estimated_document_count(),
            "counters": await self._counters.estimated_document_count(),
        }

    # -- record helpers ----------------------------------------------------------------------
    def _piece_size(self, ns: str, kind: str, id: str) -> int:
        """Largest value held by one document for this key (the key is in every document)."""
        room = min(self.chunk_size, BSON_LIMIT - _DOC_OVERHEAD - _utf8_len(ns, kind, id))
        if room < _MIN_CHUNK_SIZE:
            raise ValueTooLarge(
                f"{kind}/{id[:40]}", _utf8_len(ns, kind, id), BSON_LIMIT, "mongodb key"
            )
        return room

    @staticmethod
    def _record(doc: Mapping[str, Any], value: bytes) -> Record:
        exp = doc.get("expires_at")
        return Record(bytes(value), int(doc["ver"]), None if exp is None else _from_date(exp))

    async def _live_version(self, key: Mapping[str, str], now: dt.datetime) -> int | None:
        doc = await self._records.find_one({**key, **_live(now)}, {"_id": 0, "ver": 1})
        return None if doc is None else int(doc["ver"])

    async def _write_record(
        self,
        ns: str,
        kind: str,
        id: str,
        body: dict[str, Any],
        size: int,
        exp: dt.datetime | None,
        expected_version: int | None,
    ) -> tuple[int, Any]:
        """Write one record document; return (new version, previous chunk generation).

        ``body`` is ``{"v": bytes}`` (inline) or ``{"g": gen, "n": count}``
        (chunked). One atomic server operation: the version is computed by
        the server from the document it replaces.
        """
        key = {"ns": ns, "kind": kind, "id": id}
        now = _now()
        fields = {**body, "size": size, "expires_at": exp}
        drop = ["g", "n"] if "v" in body else ["v"]
        proj = {"_id": 0, "ver": 1, "g": 1, "expires_at": 1}
        if expected_version is None:
            live_expr = {"$gt": [{"$ifNull": ["$expires_at", _FAR_FUTURE]}, now]}
            pipeline = [
                {
                    "$set": {
                        "ver": {"$cond": [live_expr, {"$add": [{"$ifNull": ["$ver", 0]}, 1]}, 1]},
                        **{k: _literal(v) for k, v in fields.items()},
                    }
                },
                {"$project": dict.fromkeys(drop, 0)},
            ]
            for attempt in range(3):
                try:
                    before = await self._records.find_one_and_update(
                        key,
                        pipeline,
                        upsert=True,
                        projection=proj,
                        return_document=ReturnDocument.BEFORE,
                    )
                    break
                except DuplicateKeyError:  # two concurrent upserts of a new key
                    if attempt == 2:
                        raise
            version = int(before["ver"]) + 1 if before and _is_live(before, now) else 1
        elif expected_version == 0:
            doc = {**key, **fields, "ver": 1}
            try:
                before = await self._records.find_one_and_replace(
                    {**key, "expires_at": {"$lte": now}},
                    doc,
                    upsert=True,
                    projection=proj,
                    return_document=ReturnDocument.BEFORE,
                )
            except DuplicateKeyError:
                actual = await self._live_version(key, now)
                raise ConflictError(f"{kind}/{id}", 0, actual) from None
            version = 1
        else:
            before = await self._records.find_one_and_update(
                {**key, "ver": expected_version, **_live(now)},
                {"$set": fields, "$inc": {"ver": 1}, "$unset": dict.fromkeys(drop, "")},
                projection=proj,
                return_document=ReturnDocument.BEFORE,
            )
            if before is None:
                actual = await self._live_version(key, now)
                raise ConflictError(f"{kind}/{id}", expected_version, actual)
            version = expected_version + 1
        return version, (before or {}).get("g")

    async def _drop_generation(self, key: Mapping[str, str], gen: Any) -> None:
        await self._chunks.delete_many({**key, "g": gen})

    async def _put_one(
        self,
        ns: str,
        kind: str,
        id: str,
        value: bytes,
        exp: dt.datetime | None,
        expected_version: int | None,
    ) -> int:
        key = {"ns": ns, "kind": kind, "id": id}
        piece = self._piece_size(ns, kind, id)
        if len(value) <= piece:
            version, previous = await self._write_record(
                ns, kind, id, {"v": value}, len(value), exp, expected_version
            )
        else:
            gen = ObjectId()
            docs = [
                {**key, "g": gen, "n": i, "d": value[off : off + piece], "expires_at": exp}
                for i, off in enumerate(range(0, len(value), piece))
            ]
            try:
                await self._chunks.insert_many(docs, ordered=True)
                version, previous = await self._write_record(
                    ns, kind, id, {"g": gen, "n": len(docs)}, len(value), exp, expected_version
                )
            except Exception:
                try:  # best effort; collect_garbage() removes what a lost connection leaves
                    await self._drop_generation(key, gen)
                except Exception:
                    pass
                raise
        if previous is not None:
            await self._drop_generation(key, previous)
        return version

    async def _assemble(
        self, ns: str, kind: str, docs: Sequence[Mapping[str, Any]]
    ) -> dict[str, bytes]:
        """Values of chunked record documents; ids whose chunks are incomplete are absent."""
        wanted = {d["id"]: d for d in docs}
        parts: dict[str, list[bytes]] = {i: [] for i in wanted}
        query = {
            "ns": ns,
            "kind": kind,
            "id": {"$in": list(wanted)},
            "g": {"$in": list({d["g"] for d in docs})},
        }
        cursor = self._chunks.find(query, {"_id": 0, "id": 1, "g": 1, "n": 1, "d": 1}).sort(
            [("id", 1), ("g", 1), ("n", 1)]
        )
        async for chunk in cursor:
            doc = wanted[chunk["id"]]
            got = parts[chunk["id"]]
            if chunk["g"] == doc["g"] and chunk["n"] == len(got):
                got.append(bytes(chunk["d"]))
        out = {}
        for id, doc in wanted.items():
            value = b"".join(parts[id])
            if len(parts[id]) == doc["n"] and len(value) == doc["size"]:
                out[id] = value
        return out

    async def _resolve(
        self, ns: str, kind: str, docs: Sequence[Mapping[str, Any]]
    ) -> list[tuple[str, Record]]:
        """Records for fetched documents, chunks fetched in one query; incomplete ones re-read."""
        chunked = [d for d in docs if "v" not in d]
        values = await self._assemble(ns, kind, chunked) if chunked else {}
        out: list[tuple[str, Record]] = []
        for doc in docs:
            if "v" in doc:
                out.append((doc["id"], self._record(doc, doc["v"])))
            elif doc["id"] in values:
                out.append((doc["id"], self._record(doc, values[doc["id"]])))
            else:  # replaced or expired while we read: read it again on its own
                rec = await self._get(ns, kind, doc["id"])
                if rec is not None:
                    out.append((doc["id"], rec))
        return out

    _RECORD_FIELDS: ClassVar[dict[str, int]] = {
        "_id": 0,
        "id": 1,
        "v": 1,
        "g": 1,
        "n": 1,
        "size": 1,
        "ver": 1,
        "expires_at": 1,
    }

    async def _get(self, ns: str, kind: str, id: str) -> Record | None:
        key = {"ns": ns, "kind": kind, "id": id}
        for _ in range(_READ_RETRIES):
            doc = await self._records.find_one({**key, **_live(_now())}, self._RECORD_FIELDS)
            if doc is None:
                return None
            if "v" in doc:
                return self._record(doc, doc["v"])
            values = await self._assemble(ns, kind, [doc])
            if id in values:
                return self._record(doc, values[id])
            # chunks gone: a concurrent write replaced the value or the TTL monitor ran
        raise FrameError("chunked value stays incomplete across re-reads", key=f"{kind}/{id}")

    # -- records ----------------------------------------------------------------------
    @_guarded
    async def get(self, ns: str, kind: str, id: str) -> Record | None:
        """See :meth:`Backend.get` (one round trip; two for a chunked value)."""
        self._check_open()
        return await self._get(ns, kind, id)

    @_guarded
    async def get_many(self, ns: str, kind: str, ids: Sequence[str]) -> dict[str, Record]:
        """See :meth:`Backend.get_many` (``$in`` on the key index, chunks in one more query)."""
        self._check_open()
        unique = list(dict.fromkeys(ids))
        out: dict[str, Record] = {}
        for i in range(0, len(unique), self.batch_size):
            query = {"ns": ns, "kind": kind, "id": {"$in": unique[i : i + self.batch_size]}}
            docs = await _to_list(
                self._records.find({**query, **_live(_now())}, self._RECORD_FIELDS)
            )
            out.update(await self._resolve(ns, kind, docs))
        return out

    @_guarded
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
        self._check_open()
        exp = _expiry(ttl)
        if expected_version is not None and expected_version < 0:
            raise ValueError(f"expected_version must be >= 0, got {expected_version!r}")
        return await self._atomic(self._put_one(ns, kind, id, bytes(value), exp, expected_version))

    @_guarded
    async def put_many(
        self, ns: str, kind: str, items: Mapping[str, bytes], *, ttl: float | None = None
    ) -> None:
        """See :meth:`Backend.put_many` (one unordered ``bulk_write`` of upserts per batch)."""
        self._check_open()
        exp = _expiry(ttl)
        await self._atomic(self._put_many(ns, kind, {k: bytes(v) for k, v in items.items()}, exp))

    async def _put_many(
        self, ns: str, kind: str, items: dict[str, bytes], exp: dt.datetime | None
    ) -> None:
        small = [(i, v) for i, v in items.items() if len(v) <= self._piece_size(ns, kind, i)]
        large = [(i, v) for i, v in items.items() if len(v) > self._piece_size(ns, kind, i)]
        for b in range(0, len(small), self.batch_size):
            batch = small[b : b + self.batch_size]
            ids = [i for i, _ in batch]
            # generations of values being replaced by inline ones (rare: they were large)
            previous = await _to_list(
                self._records.find(
                    {"ns": ns, "kind": kind, "id": {"$in": ids}, "g": {"$exists": True}},
                    {"_id": 0, "id": 1, "g": 1},
                )
            )
            now = _now()
            live_expr = {"$gt": [{"$ifNull": ["$expires_at", _FAR_FUTURE]}, now]}
            ops = [
                UpdateOne(
                    {"ns": ns, "kind": kind, "id": id},
                    [
                        {
                            "$set": {
                                "ver": {
                                    "$cond": [
                                        live_expr,
                                        {"$add": [{"$ifNull": ["$ver", 0]}, 1]},
                                        1,
                                    ]
                                },
                                "v": _literal(value),
                                "size": len(value),
                                "expires_at": _literal(exp),
                            }
                        },
                        {"$project": {"g": 0, "n": 0}},
                    ],
                    upsert=True,
                )
                for id, value in batch
            ]
            try:
                await self._records.bulk_write(ops, ordered=False)
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if any(e.get("code") != 11000 for e in errors):
                    raise
                for e in errors:  # lost an upsert race on a new key: write it again
                    id, value = batch[e["index"]]
                    await self._put_one(ns, kind, id, value, exp, None)
            for doc in previous:
                await self._drop_generation({"ns": ns, "kind": kind, "id": doc["id"]}, doc["g"])
        for id, value in large:
            await self._put_one(ns, kind, id, value, exp, None)

    @_guarded
    async def delete(
        self, ns: str, kind: str, id: str, *, expected_version: int | None = None
    ) -> bool:
        """See :meth:`Backend.delete` (``find_one_and_delete``, conditional on version)."""
        self._check_open()
        return await self._atomic(self._delete(ns, kind, id, expected_version))

    async def _delete(self, ns: str, kind: str, id: str, expected_version: int | None) -> bool:
        key = {"ns": ns, "kind": kind, "id": id}
        now = _now()
        proj = {"_id": 0, "ver": 1, "g": 1, "expires_at": 1}
        if expected_version is None:
            before = await self._records.find_one_and_delete(key, projection=proj)
            removed = before is not None and _is_live(before, now)
        elif expected_version == 0:
            actual = await self._live_version(key, now)
            if actual is not None:
                raise ConflictError(f"{kind}/{id}", 0, actual)
            return False
        else:
            before = await self._records.find_one_and_delete(
                {**key, "ver": expected_version, **_live(now)}, projection=proj
            )
            if before is None:
                actual = await self._live_version(key, now)
                raise ConflictError(f"{kind}/{id}", expected_version, actual)
            removed = True
        if before is not None and before.get("g") is not None:
            await self._drop_generation(key, before["g"])
        return removed

    @_guarded
    async def delete_many(self, ns: str, kind: str, ids: Sequence[str]) -> int:
        """See :meth:`Backend.delete_many` (``delete_many`` with ``$in``)."""
        self._check_open()
        return await self._atomic(self._delete_many(ns, kind, list(dict.fromkeys(ids))))

    async def _delete_many(self, ns: str, kind: str, ids: list[str]) -> int:
        removed = 0
        for b in range(0, len(ids), self.batch_size):
            query = {"ns": ns, "kind": kind, "id": {"$in": ids[b : b + self.batch_size]}}
            chunked = await _to_list(
                self._records.find({**query, "g": {"$exists": True}}, {"_id": 0, "id": 1, "g": 1})
            )
            result = await self._records.delete_many({**query, **_live(_now())})
            removed += result.deleted_count
            for doc in chunked:
                await self._drop_generation({"ns": ns, "kind": kind, "id": doc["id"]}, doc["g"])
        return removed

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
        query = {"ns": ns, "kind": kind, "id": _id_range(prefix, cursor, reverse), **_live(_now())}
        direction = -1 if reverse else 1
        found = (
            self._records.find(query, dict(projection))
            .sort([("ns", direction), ("kind", direction), ("id", direction)])
            .hint(_KEY_INDEX)
        )
        if limit is not None:
            found = found.limit(limit)
        return found

    @_guarded
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
        """See :meth:`Backend.list_ids` (index range scan, see :meth:`explain_listing`)."""
        self._check_open()
        if limit is not None and limit <= 0:
            return []
        found = self._listing(ns, kind, prefix, limit, cursor, reverse, {"_id": 0, "id": 1})
        return [doc["id"] async for doc in found]

    @_guarded
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
        """See :meth:`Backend.list_records` (index range scan; chunks in one more query)."""
        self._check_open()
        if limit is not None and limit <= 0:
            return []
        found = self._listing(ns, kind, prefix, limit, cursor, reverse, self._RECORD_FIELDS)
        return await self._resolve(ns, kind, await _to_list(found))

    @_guarded
    async def explain_listing(
        self, ns: str, kind: str, prefix: str = "", *, limit: int | None = None
    ) -> dict[str, Any]:
        """The server's ``explain`` of the query behind :meth:`list_ids` (diagnostics)."""
        self._check_open()
        found = self._listing(ns, kind, prefix, limit, None, False, {"_id": 0, "id": 1})
        return dict(await found.explain())

    @_guarded
    async def kinds(self, ns: str) -> list[str]:
        """See :meth:`Backend.kinds` (``distinct`` over the key index, one probe per kind)."""
        self._check_open()
        names = await self._records.distinct("kind", {"ns": ns})
        now = _now()
        probes = await asyncio.gather(
            *(
                self._records.find_one({"ns": ns, "kind": k, **_live(now)}, {"_id": 1})
                for k in names
            )
        )
        return sorted(k for k, doc in zip(names, probes, strict=True) if doc is not None)

    @_guarded
    async def namespace_stats(self, ns: str) -> NamespaceStats:
        """See :meth:`Backend.namespace_stats` (two aggregations over the namespace)."""
        self._check_open()
        kinds_cursor = await _maybe_await(
            self._records.aggregate(
                [
                    {"$match": {"ns": ns, **_live(_now())}},
                    {"$group": {"_id": "$kind", "count": {"$sum": 1}, "bytes": {"$sum": "$size"}}},
                ]
            )
        )
        kinds = {
            d["_id"]: KindStats(int(d["count"]), int(d["bytes"]))
            for d in await _to_list(kinds_cursor)
        }
        series_cursor = await _maybe_await(
            self._series.aggregate(
                [
                    {"$match": {"ns": ns}},
                    {
                        "$group": {
                            "_id": "$name",
                            "length": {"$sum": 1},
                            "bytes": {"$sum": "$size"},
                            "oldest": {"$min": "$ts"},
                            "newest": {"$max": "$ts"},
                        }
                    },
                ]
            )
        )
        series = {
            d["_id"]: SeriesStats(
                int(d["length"]), int(d["bytes"]), float(d["oldest"]), float(d["newest"])
            )
            for d in await _to_list(series_cursor)
        }
        return NamespaceStats(dict(sorted(kinds.items())), dict(sorted(series.items())))

    @_guarded
    async def drop_namespace(self, ns: str) -> None:
        """See :meth:`Backend.drop_namespace` (``delete_many`` on each collection)."""
        self._check_open()

        async def drop() -> None:
            for coll in (self._records, self._chunks, self._series, self._counters):
                await coll.delete_many({"ns": ns})

        await self._atomic(drop())

    # -- series ----------------------------------------------------------------------
    async def _next_seq(self, count: int) -> int:
        """First of ``count`` fresh sequence numbers (blocks reserved with ``$inc``)."""
        async with self._seq_lock:
            if self._seq_end - self._seq_next + 1 < count:
                block = max(self.seq_block, count)
                doc = await self._meta.find_one_and_update(
                    {"_id": "series_seq"},
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
        limit = BSON_LIMIT - _DOC_OVERHEAD - _utf8_len(ns, series)
        if len(value) > limit:
            raise ValueTooLarge(f"series {series[:40]}", len(value), limit, "mongodb series entry")

    @_guarded
    async def append(
        self, ns: str, series: str, value: bytes, *, ts: float | None = None
    ) -> SeriesEntry:
        """See :meth:`Backend.append` (one ``insert_one``; a seq block every ``seq_block``)."""
        self._check_open()
        value = bytes(value)
        self._check_entry(ns, series, value)
        stamp = time.time() if ts is None else float(ts)
        seq = await self._next_seq(1)
        await self._series.insert_one(
            {"ns": ns, "name": series, "ts": stamp, "seq": seq, "v": value, "size": len(value)}
        )
        return SeriesEntry(stamp, seq, value)

    @_guarded
    async def replace_series(
        self, ns: str, series: str, entries: Sequence[tuple[float, bytes]]
    ) -> None:
        """See :meth:`Backend.replace_series` (a transaction where the deployment has them)."""
        self._check_open()
        rows = [(float(ts), bytes(v)) for ts, v in entries]
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
                "seq": first + i,
                "v": value,
                "size": len(value),
                "r": token,
            }
            for i, (ts, value) in enumerate(rows)
        ]
        old = {"ns": ns, "name": series, "r": {"$ne": token}}
        if self.transactions:

            async def swap(session: Any) -> None:
                await self._series.delete_many(old, session=session)
                if docs:
                    await self._series.insert_many(docs, session=session)

            txn = self._transaction_options()
            session = await _maybe_await(self._client.start_session())
            async with session:
                await session.with_transaction(swap, **txn)
        else:
            # no transactions (standalone server): new entries first, then the old ones
            # go, so a failure in between leaves extra entries rather than lost ones
            if docs:
                await self._series.insert_many(docs)
            await self._series.delete_many(old)

    @_guarded
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
        self._check_open()
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
        rows = [SeriesEntry(float(d["ts"]), int(d["seq"]), bytes(d["v"])) async for d in found]
        if latest:
            rows.reverse()
        return rows

    @_guarded
    async def series_names(self, ns: str, prefix: str = "") -> list[str]:
        """See :meth:`Backend.series_names` (``distinct`` over the series index)."""
        self._check_open()
        rng: dict[str, str] = {"$gte": prefix}
        upper = _upper(prefix)
        if upper is not None:
            rng["$lt"] = upper
        return sorted(await self._series.distinct("name", {"ns": ns, "name": rng}))

    @_guarded
    async def delete_series(self, ns: str, series: str) -> int:
        """See :meth:`Backend.delete_series`."""
        self._check_open()
        result = await self._series.delete_many({"ns": ns, "name": series})
        return int(result.deleted_count)

    @_guarded
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
        self._check_open()
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

        txn = self._transaction_options()
        session = await _maybe_await(self._client.start_session())
        async with session:
            return int(await session.with_transaction(rewrite, **txn))

    async def _rewrite_batches(
        self, ns: str, series: str, rows: list[tuple[int, bytes, bytes]], session: Any
    ) -> int:
        kw: dict[str, Any] = {} if session is None else {"session": session}
        replaced = 0
        for b in range(0, len(rows), self.batch_size):
            batch = rows[b : b + self.batch_size]
            found = self._series.find(
                {"ns": ns, "name": series, "seq": {"$in": [seq for seq, _, _ in batch]}},
                {"_id": 0, "ts": 1, "seq": 1},
                **kw,
            )
            stamps = {int(d["seq"]): d["ts"] for d in await _to_list(found)}
            ops = [
                UpdateOne(
                    {"ns": ns, "name": series, "ts": stamps[seq], "seq": seq, "v": old},
                    {"$set": {"v": new, "size": len(new)}},
                )
                for seq, old, new in batch
                if seq in stamps
            ]
            if ops:
                result = await self._series.bulk_write(ops, ordered=True, **kw)
                # matched, not modified: an entry whose new value equals its old one counts
                replaced += result.matched_count
        return replaced

    # -- counters ----------------------------------------------------------------------
    @_guarded
    async def incr(self, ns: str, kind: str, id: str, field: str, amount: float = 1.0) -> float:
        """See :meth:`Backend.incr` (one upserting ``$inc``, atomic across clients)."""
        self._check_open()
        key = {"ns": ns, "kind": kind, "id": id, "field": field}
        for attempt in range(3):
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
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    @_guarded
    async def get_counters(
        self, ns: str, kind: str, ids: Sequence[str]
    ) -> dict[str, dict[str, float]]:
        """See :meth:`Backend.get_counters` (``$in`` on the counter index)."""
        self._check_open()
        unique = list(dict.fromkeys(ids))
        out: dict[str, dict[str, float]] = {}
        for b in range(0, len(unique), self.batch_size):
            found = self._counters.find(
                {"ns": ns, "kind": kind, "id": {"$in": unique[b : b + self.batch_size]}},
                {"_id": 0, "id": 1, "field": 1, "value": 1},
            )
            async for doc in found:
                out.setdefault(doc["id"], {})[doc["field"]] = float(doc["value"])
        return out

    @_guarded
    async def delete_counters(self, ns: str, kind: str, id: str) -> bool:
        """See :meth:`Backend.delete_counters`."""
        self._check_open()
        result = await self._counters.delete_many({"ns": ns, "kind": kind, "id": id})
        return result.deleted_count > 0

    # -- maintenance ----------------------------------------------------------------------
    @_guarded
    async def collect_garbage(self, min_age: float = 3600.0) -> int:
        """Delete chunk generations no record points to; return how many chunks went.

        A chunked write whose connection died between writing its chunks and
        flipping the record leaves such a generation (its cleanup could not
        reach the server either). Generations younger than ``min_age``
        seconds are kept: they may belong to a write still in flight.
        """
        self._check_open()
        cutoff = ObjectId.from_datetime(dt.datetime.fromtimestamp(time.time() - min_age, dt.UTC))
        groups = await _to_list(
            await _maybe_await(
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
            key = {"ns": ref["ns"], "kind": ref["kind"], "id": ref["id"]}
            current = await self._records.find_one({**key, "g": ref["g"]}, {"_id": 1})
            if current is None:
                result = await self._chunks.delete_many({**key, "g": ref["g"]})
                removed += result.deleted_count
        return removed


def _int_option(options: Mapping[str, Any], name: str, default: int) -> int:
    raw = options.get(name, default)
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"mongodb option {name}={raw!r}: expected an integer") from None


def _bool_option(raw: Any) -> bool:
    if isinstance(raw, str):
        return raw.strip().lower() not in ("0", "false", "no", "off", "")
    return bool(raw)


def _write_concern(raw: Any) -> WriteConcern | None:
    if raw is None or isinstance(raw, WriteConcern):
        return raw
    try:
        if isinstance(raw, Mapping):
            return WriteConcern(**raw)
        if isinstance(raw, int) or (isinstance(raw, str) and raw.isdigit()):
            return WriteConcern(w=int(raw))
        if isinstance(raw, str):
            return WriteConcern(w=raw)
    except (TypeError, ValueError, ConfigurationError) as exc:
        raise ConfigError(f"mongodb option write_concern={raw!r}: {exc}") from None
    raise ConfigError(f"mongodb option write_concern={raw!r}: use 'majority', a number or a dict")


def _read_concern(raw: Any) -> ReadConcern | None:
    if raw is None or isinstance(raw, ReadConcern):
        return raw
    levels = ("local", "available", "majority", "linearizable", "snapshot")
    if isinstance(raw, str) and raw in levels:
        return ReadConcern(raw)
    raise ConfigError(f"mongodb option read_concern={raw!r}: use one of {', '.join(levels)}")


__all__ = ["DEFAULT_CHUNK_SIZE", "MongoBackend"]
