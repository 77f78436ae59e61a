"""``sqlite:///path/to/file.db`` -- the embedded default backend.

URL forms follow SQLAlchemy: ``sqlite:///relative/file.db``,
``sqlite:////absolute/file.db``, ``sqlite:///~/file.db`` (home expanded).
Query options: ``synchronous`` (``full`` default, or ``normal``: faster,
may lose the last commits on power loss but never on a process crash),
``busy_timeout`` (ms, default 10000), ``purge_interval`` (s, default 60),
``secure_delete`` (``on`` default, ``fast`` or ``off``).

Design:

* WAL journal; one writer thread and one reader thread, each with its own
  connection (:mod:`.sqlite_worker`), so the event loop never blocks on
  SQLite and readers never wait for a writer. Several processes may share one
  file (SQLite's locking, ``BEGIN IMMEDIATE`` for read-modify-write,
  ``busy_timeout``).
* Every operation is one transaction executed entirely in its thread: a
  cancelled task leaves the operation either done or not done, never half.
* The file's tables and key encoding are in :mod:`.sqlite_schema`; the SQL of
  records in :mod:`.sqlite_records`, of series in :mod:`.sqlite_series` and
  of counters in :mod:`.sqlite_counters`. Prefix listing is an index range scan and costs
  what it returns; counters are one UPSERT, atomic across processes.
* Expired records are hidden by every query and purged in small batches.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

from ..backend import (
    Backend,
    Capabilities,
    NamespaceStats,
    Record,
    SeriesEntry,
    prefix_upper_bytes,
)
from ..config import default_path
from ..errors import BackendUnavailable, ConfigError, ValueTooLarge
from ..options import Option, parse_options
from . import sqlite_counters as counters
from . import sqlite_records as records
from . import sqlite_schema as schema
from . import sqlite_series as series_sql
from .sqlite_schema import to_blob
from .sqlite_worker import ConnectionSettings, SQLiteWorker

T = TypeVar("T")

#: the URL query options (keyword options of the factory override them)
OPTIONS = (
    Option("synchronous", "str", "full", doc="full, normal or extra (PRAGMA synchronous)"),
    Option("secure_delete", "str", "on", doc="on, fast or off (PRAGMA secure_delete)"),
    Option("busy_timeout", "int", 10_000, minimum=0, doc="ms to wait for another writer"),
    Option("purge_interval", "seconds", 60.0, minimum=0, doc="s between expiry purges"),
)
_CHOICES = {"synchronous": ("full", "normal", "extra"), "secure_delete": ("on", "off", "fast")}


def path_from_url(url: str) -> tuple[Path, dict[str, str]]:
    """Split ``sqlite:///file.db?opt=v`` into the file path and options."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite":
        raise ConfigError(f"sqlite backend needs a sqlite:// URL, got scheme {parts.scheme!r}")
    if parts.netloc:
        raise ConfigError(
            f"sqlite URL {url!r} has a host; use sqlite:///relative.db or sqlite:////abs/path.db"
        )
    raw = unquote(parts.path)
    raw = raw[1:] if raw.startswith("/") else raw
    if not raw:
        return default_path(), dict(parse_qsl(parts.query))
    return Path(os.path.expanduser(raw)), dict(parse_qsl(parts.query))


def _choice(name: str, value: str) -> str:
    """``value`` lower-cased when it is one of the option's choices; ConfigError otherwise."""
    choices = _CHOICES[name]
    if value.lower() not in choices:
        raise ConfigError(
            f"sqlite option {name}={value!r}: use {', '.join(choices[:-1])} or {choices[-1]}"
        )
    return value.lower()


class SQLiteBackend(Backend):
    """Embedded SQLite backend; see the module docstring."""

    name: ClassVar[str] = "sqlite"
    capabilities: ClassVar[Capabilities] = Capabilities(
        persistent=True, shared=True, max_value_size=1_000_000_000, supports_series_rewrite=True
    )

    def __init__(self, url: str = "sqlite:///", **options: Any) -> None:
        path, query = path_from_url(url)
        self.path = path.absolute()
        keywords = {k: v for k, v in options.items() if k != "prefix"}
        values, unknown = parse_options("sqlite", OPTIONS, query, keywords)
        if unknown:
            raise ConfigError(f"unknown sqlite option(s): {', '.join(sorted(unknown))}")
        self.synchronous = _choice("synchronous", values["synchronous"])
        #: zero deleted and overwritten content in the file (PRAGMA secure_delete)
        self.secure_delete = _choice("secure_delete", values["secure_delete"])
        self.busy_timeout: int = values["busy_timeout"]
        self.purge_interval: float = values["purge_interval"]
        self._connection = ConnectionSettings(
            self.path, self.busy_timeout, self.synchronous, self.secure_delete
        )
        self._writer: SQLiteWorker | None = None
        self._reader: SQLiteWorker | None = None
        self._purge = records.ExpiryPurge(self.purge_interval)

    def __repr__(self) -> str:
        return f"SQLiteBackend({str(self.path)!r})"

    # -- lifecycle --------------------------------------------------------------------
    async def open(self) -> None:
        """Create the file, schema and worker threads."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BackendUnavailable(
                f"sqlite {self.path}: cannot create directory: {exc}"
            ) from None
        connection = self._connection
        writer = SQLiteWorker("hivemem-sqlite-w", lambda: connection.connect(readonly=False))
        try:
            await writer.run(schema.init_schema, self.path)
        except sqlite3.Error as exc:
            writer.shutdown()
            raise BackendUnavailable(f"sqlite {self.path}: {exc}") from None
        except BaseException:
            writer.shutdown()
            raise
        self._writer = writer
        self._reader = SQLiteWorker("hivemem-sqlite-r", lambda: connection.connect(readonly=True))

    async def close(self) -> None:
        """Stop the threads and close both connections."""
        writer, reader = self._writer, self._reader
        self._writer = self._reader = None
        for worker in (reader, writer):
            if worker is not None:
                await asyncio.get_running_loop().run_in_executor(None, worker.shutdown)

    async def _run(self, fn: Callable[..., T], *args: Any, write: bool) -> T:
        """``fn(connection, *args)`` on the writer or reader thread; SQLite errors mapped."""
        worker = self._writer if write else self._reader
        if worker is None:  # close() ran while this call was on its way
            raise self.closed_error()
        try:
            return await worker.run(fn, *args)
        except sqlite3.OperationalError as exc:
            raise BackendUnavailable(f"sqlite {self.path}: {exc}") from None
        except sqlite3.DataError:  # "string or blob too big": over SQLITE_MAX_LENGTH
            limit = self.capabilities.max_value_size or 0
            raise ValueTooLarge(None, -1, limit, where="sqlite") from None

    async def purge_residue(self) -> list[str]:
        """Checkpoint and truncate the WAL; freed pages are already zeroed (secure_delete)."""
        await self._run(schema.checkpoint_truncate, write=True)
        steps = [f"copies and backups of {self.path} made before now still hold the old values"]
        if self.secure_delete != "on":
            steps.insert(
                0,
                f"secure_delete is {self.secure_delete}: free pages of {self.path} may still hold "
                "old values; run VACUUM (e.g. sqlite3 FILE 'VACUUM') to rewrite the file",
            )
        return steps

    async def ping(self) -> bool:
        """Run ``SELECT 1``."""
        return await self._run(schema.ping, write=False)

    async def stats(self) -> dict[str, Any]:
        """File path and size, SQLite version, page counts."""
        size = await self._run(schema.file_bytes, write=False)
        return {
            "backend": "sqlite",
            "path": str(self.path),
            "sqlite_version": sqlite3.sqlite_version,
            "file_bytes": size,
            "journal_mode": "wal",
            "synchronous": self.synchronous,
        }

    # -- records ------------------------------------------------------------------------
    async def get(self, ns: str, kind: str, id: str) -> Record | None:
        """See :meth:`Backend.get` (one statement: faster than the default's transaction)."""
        key = (to_blob(ns), to_blob(kind), to_blob(id))
        return await self._run(records.get_one, key, time.time(), write=False)

    async def get_many(self, ns: str, kind: str, ids: Sequence[str]) -> dict[str, Record]:
        """See :meth:`Backend.get_many` (chunks of 500 ids in one read transaction)."""
        unique = list(dict.fromkeys(ids))
        if not unique:
            return {}
        return await self._run(
            records.get_many, to_blob(ns), to_blob(kind), unique, time.time(), write=False
        )

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
        """See :meth:`Backend.put` (one UPSERT; a CAS write is one IMMEDIATE transaction)."""
        key = (to_blob(ns), to_blob(kind), to_blob(id))
        if expected_version is None:
            return await self._run(records.upsert, key, bytes(value), ttl, self._purge, write=True)
        return await self._run(
            records.put_if_version, key, bytes(value), ttl, expected_version, write=True
        )

    async def put_many(
        self, ns: str, kind: str, items: Mapping[str, bytes], *, ttl: float | None = None
    ) -> None:
        """See :meth:`Backend.put_many` (one transaction)."""
        if not items:
            return
        ns_blob, kind_blob = to_blob(ns), to_blob(kind)
        rows = [(ns_blob, kind_blob, to_blob(k), bytes(v)) for k, v in items.items()]
        await self._run(records.put_many, rows, ttl, self._purge, write=True)

    async def delete(
        self, ns: str, kind: str, id: str, *, expected_version: int | None = None
    ) -> bool:
        """See :meth:`Backend.delete`."""
        key = (to_blob(ns), to_blob(kind), to_blob(id))
        return await self._run(records.delete, key, expected_version, write=True)

    async def delete_many(self, ns: str, kind: str, ids: Sequence[str]) -> int:
        """See :meth:`Backend.delete_many` (one transaction)."""
        keys = [to_blob(k) for k in dict.fromkeys(ids)]
        if not keys:
            return 0
        return await self._run(records.delete_many, to_blob(ns), to_blob(kind), keys, write=True)

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
        """See :meth:`Backend.scan` (index range scan; ``values=False`` reads only ids)."""
        columns = records.RECORD_COLUMNS if values else "id"
        sql, args = records.range_query(columns, ns, kind, prefix, limit, cursor, reverse)
        read = records.scan_records if values else records.scan_ids
        return await self._run(read, sql, args, write=False)

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
        """See :meth:`Backend.list_ids` (ids straight from the index scan, without pairs)."""
        sql, args = records.range_query("id", ns, kind, prefix, limit, cursor, reverse)
        return await self._run(records.list_ids, sql, args, write=False)

    async def kinds(self, ns: str) -> list[str]:
        """See :meth:`Backend.kinds` (one index probe per kind)."""
        return await self._run(records.kinds, to_blob(ns), write=False)

    async def namespace_stats(self, ns: str) -> NamespaceStats:
        """See :meth:`Backend.namespace_stats` (aggregates over the namespace)."""
        return await self._run(records.namespace_stats, to_blob(ns), write=False)

    async def drop_namespace(self, ns: str) -> None:
        """See :meth:`Backend.drop_namespace` (one transaction)."""
        await self._run(records.drop_namespace, to_blob(ns), write=True)

    # -- series ---------------------------------------------------------------------------
    async def append(
        self, ns: str, series: str, value: bytes, *, ts: float | None = None
    ) -> SeriesEntry:
        """See :meth:`Backend.append`."""
        return await self._run(
            series_sql.append, to_blob(ns), to_blob(series), bytes(value), ts, write=True
        )

    async def replace_series(
        self, ns: str, series: str, entries: Sequence[tuple[float, bytes]]
    ) -> None:
        """See :meth:`Backend.replace_series` (one transaction)."""
        ns_blob, name_blob = to_blob(ns), to_blob(series)
        rows = [(ns_blob, name_blob, float(ts), bytes(v)) for ts, v in entries]
        await self._run(series_sql.replace, ns_blob, name_blob, rows, write=True)

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
        """See :meth:`Backend.read_series` (index range scan)."""
        sql, args = series_sql.read_query(to_blob(ns), to_blob(series), start, end, limit, latest)
        return await self._run(series_sql.read, sql, args, latest, write=False)

    async def series_names(self, ns: str, prefix: str = "") -> list[str]:
        """See :meth:`Backend.series_names` (one index probe per name)."""
        prefix_blob = to_blob(prefix)
        upper = prefix_upper_bytes(prefix_blob)
        return await self._run(series_sql.names, to_blob(ns), prefix_blob, upper, write=False)

    async def delete_series(self, ns: str, series: str) -> int:
        """See :meth:`Backend.delete_series`."""
        return await self._run(series_sql.delete, to_blob(ns), to_blob(series), write=True)

    async def rewrite_series(
        self, ns: str, series: str, changes: Sequence[tuple[int, bytes, bytes]]
    ) -> int:
        """See :meth:`Backend.rewrite_series` (one transaction, a primary-key update each)."""
        ns_blob, name_blob = to_blob(ns), to_blob(series)
        rows = [(bytes(new), int(seq), ns_blob, name_blob, bytes(old)) for seq, old, new in changes]
        if not rows:
            return 0
        return await self._run(series_sql.rewrite, rows, write=True)

    # -- counters -------------------------------------------------------------------------
    async def incr(self, ns: str, kind: str, id: str, field: str, amount: float = 1.0) -> float:
        """See :meth:`Backend.incr` (one UPSERT, atomic across processes)."""
        key = (to_blob(ns), to_blob(kind), to_blob(id), to_blob(field))
        return await self._run(counters.incr, key, float(amount), write=True)

    async def get_counters(
        self, ns: str, kind: str, ids: Sequence[str]
    ) -> dict[str, dict[str, float]]:
        """See :meth:`Backend.get_counters`."""
        keys = [to_blob(k) for k in dict.fromkeys(ids)]
        if not keys:
            return {}
        return await self._run(counters.get_counters, to_blob(ns), to_blob(kind), keys, write=False)

    async def delete_counters(self, ns: str, kind: str, id: str) -> bool:
        """See :meth:`Backend.delete_counters`."""
        key = (to_blob(ns), to_blob(kind), to_blob(id))
        return await self._run(counters.delete_counters, key, write=True)


__all__ = ["OPTIONS", "SQLiteBackend", "path_from_url"]
