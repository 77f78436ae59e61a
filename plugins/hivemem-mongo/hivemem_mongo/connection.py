"""The MongoDB backend's connection: client, lifecycle, indexes, transactions, server facts.

:class:`MongoConnection` is the base every part of
:class:`~hivemem_mongo.backend.MongoBackend` builds on. It builds the
client (or uses the one the caller passed), opens and closes it, creates the
indexes, detects whether the deployment runs multi-document transactions,
and turns driver failures into hivemem errors that name the hosts but never
a credential (:func:`translate_errors`).

The base :class:`~hivemem.plugin.Backend` refuses calls made before
``open()`` or after ``close()``. What is left here is the in-flight work:
every operation that takes more than one round trip runs shielded from
cancellation (:meth:`MongoConnection._atomic`), and ``close()`` waits for
those before it closes the client.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

from hivemem.plugin import Backend, BackendUnavailable, ConfigError, HivememError
from pymongo.errors import (
    ConfigurationError,
    ConnectionFailure,
    InvalidOperation,
    OperationFailure,
)

from .documents import BATCH_SIZE, KEY_FIELDS, KEY_INDEX, maybe_await
from .settings import MongoSettings, parse

P = ParamSpec("P")
T = TypeVar("T")
C = TypeVar("C", bound="MongoConnection")

#: read concern levels a transaction accepts
_TXN_READ_LEVELS = ("local", "majority", "snapshot")
#: server error codes that mean the credentials were refused
_AUTH_FAILURES = (13, 18)  # Unauthorized, AuthenticationFailed


def translate_errors(
    fn: Callable[Concatenate[C, P], Awaitable[T]],
) -> Callable[Concatenate[C, P], Coroutine[Any, Any, T]]:
    """Turn driver failures into :class:`BackendUnavailable` naming the hosts only."""

    @functools.wraps(fn)
    async def translated(self: C, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(self, *args, **kwargs)
        except HivememError:
            raise
        except (ConnectionFailure, InvalidOperation) as exc:
            raise BackendUnavailable(self._describe(exc)) from None
        except OperationFailure as exc:
            if exc.code in _AUTH_FAILURES:
                raise BackendUnavailable(self._describe(exc)) from None
            raise

    return translated


class MongoConnection(Backend):
    """Client, lifecycle, indexes and server facts of the MongoDB backend."""

    def __init__(self, url: str = "mongodb://localhost:27017/", **options: Any) -> None:
        self.settings: MongoSettings = parse(url, options)
        settings = self.settings
        self.database_name = settings.database
        self.collection_prefix = settings.collection_prefix
        self.write_concern = settings.write_concern
        self.read_concern = settings.read_concern
        self.chunk_size = settings.chunk_size
        self.seq_block = settings.seq_block
        self.create_indexes = settings.create_indexes
        #: ids per query / bulk call in batch operations
        self.batch_size = BATCH_SIZE
        #: True once ``open()`` found a replica set or mongos (multi-document transactions)
        self.transactions = False
        self._client: Any = settings.client
        self._owns_client = self._client is None
        self._db: Any = None
        self._records: Any = None
        self._chunks: Any = None
        self._series: Any = None
        self._counters: Any = None
        self._meta: Any = None
        #: shielded operations in flight; ``close()`` waits for them
        self._pending: set[asyncio.Task[Any]] = set()

    def __repr__(self) -> str:
        return f"MongoBackend({self.settings.where.display!r}, database={self.database_name!r})"

    def _describe(self, exc: BaseException) -> str:
        """An error message naming the hosts and database, every credential redacted."""
        where = self.settings.where
        return where.redact(
            f"mongodb at {where.display} (database {self.database_name!r}): "
            f"{exc.__class__.__name__}: {exc}"
        )

    # -- lifecycle ------------------------------------------------------------------
    @translate_errors
    async def open(self) -> None:
        """Connect, check the server answers, detect transactions, create the indexes."""
        if self._client is None:
            self._client = self._build_client()
        database_options: dict[str, Any] = {}
        if self.write_concern is not None:
            database_options["write_concern"] = self.write_concern
        if self.read_concern is not None:
            database_options["read_concern"] = self.read_concern
        self._db = self._client.get_database(self.database_name, **database_options)
        prefix = self.collection_prefix
        self._records = self._db.get_collection(prefix + "records")
        self._chunks = self._db.get_collection(prefix + "chunks")
        self._series = self._db.get_collection(prefix + "series")
        self._counters = self._db.get_collection(prefix + "counters")
        self._meta = self._db.get_collection(prefix + "meta")
        await self._db.command("ping")
        self.transactions = await self._detect_transactions()
        if self.create_indexes:
            await self._ensure_indexes()

    def _build_client(self) -> Any:
        from pymongo import AsyncMongoClient

        kwargs: dict[str, Any] = {"appname": "hivemem", **self.settings.client_options}
        query = self.settings.where.query
        if "retrywrites" not in query:
            kwargs.setdefault("retryWrites", True)
        if "serverselectiontimeoutms" not in query:
            kwargs.setdefault("serverSelectionTimeoutMS", 10_000)
        try:
            return AsyncMongoClient(self.settings.url, **kwargs)
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
        await self._records.create_index(KEY_FIELDS, unique=True, name=KEY_INDEX)
        await self._records.create_index([("expires_at", 1)], expireAfterSeconds=0, name="hm_ttl")
        await self._chunks.create_index(
            [*KEY_FIELDS, ("g", 1), ("n", 1)], unique=True, name="hm_chunk"
        )
        await self._chunks.create_index([("expires_at", 1)], expireAfterSeconds=0, name="hm_ttl")
        await self._series.create_index(
            [("ns", 1), ("name", 1), ("ts", 1), ("seq", 1)], name="hm_series"
        )
        await self._counters.create_index(
            [*KEY_FIELDS, ("field", 1)], unique=True, name="hm_counter"
        )
        info = await self._records.index_information()
        collation = info.get(KEY_INDEX, {}).get("collation")
        if collation and collation.get("locale") != "simple":
            raise ConfigError(
                f"collection {self.collection_prefix}records has the default collation "
                f"{collation.get('locale')!r}; hivemem needs the simple (binary) collation "
                "for code-point ordered listing: use a fresh collection_prefix"
            )

    async def close(self) -> None:
        """Wait for shielded operations, then close the client if this backend built it."""
        while self._pending:  # including any a caller started while we waited
            await asyncio.gather(*list(self._pending), return_exceptions=True)
        if self._owns_client and self._client is not None:
            client, self._client = self._client, None
            await maybe_await(client.close())

    # -- multi-step operations ------------------------------------------------------
    async def _atomic(self, work: Coroutine[Any, Any, T]) -> T:
        """Run a multi-step operation to completion even if the caller is cancelled."""
        task = asyncio.ensure_future(work)
        self._pending.add(task)

        def done(finished: asyncio.Task[Any]) -> None:
            self._pending.discard(finished)
            if not finished.cancelled():
                finished.exception()  # retrieved: a cancelled caller cannot see it

        task.add_done_callback(done)
        return await asyncio.shield(task)

    def _transaction_options(self) -> dict[str, Any]:
        """Write and read concern for ``with_transaction`` (only levels transactions allow)."""
        options: dict[str, Any] = {}
        if self.write_concern is not None:
            options["write_concern"] = self.write_concern
        if self.read_concern is not None and self.read_concern.level in _TXN_READ_LEVELS:
            options["read_concern"] = self.read_concern
        return options

    async def _in_transaction(self, work: Callable[[Any], Awaitable[T]]) -> T:
        """``work(session)`` in one transaction (the driver retries transient errors)."""
        options = self._transaction_options()
        session = await maybe_await(self._client.start_session())
        async with session:
            return await session.with_transaction(work, **options)

    # -- server facts ---------------------------------------------------------------
    @translate_errors
    async def ping(self) -> bool:
        """``ping`` the server; BackendUnavailable when it does not answer."""
        await self._db.command("ping")
        return True

    @translate_errors
    async def stats(self) -> dict[str, Any]:
        """Server version, topology facts and approximate document counts."""
        info = await self._db.command("buildInfo")
        return {
            "backend": "mongodb",
            "hosts": self.settings.where.display,
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

    async def purge_residue(self) -> list[str]:
        """What may still hold old values after a rewrite: MongoDB's own logs and copies."""
        return [
            "MongoDB: the oplog of a replica set holds old values until it rolls over, "
            "and backups, snapshots and secondaries' files made before now still hold them",
            "MongoDB: freed space in WiredTiger files is reused, not zeroed; compact the "
            "collections (db.runCommand({compact: ...})) or resync members to rewrite them",
        ]


__all__ = ["MongoConnection", "translate_errors"]
