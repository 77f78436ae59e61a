"""``sqlite:///path/to/file.db`` -- the embedded default backend.

URL forms follow SQLAlchemy: ``sqlite:///relative/file.db``,
``sqlite:////absolute/file.db``, ``sqlite:///~/file.db`` (home expanded).
Query options: ``synchronous`` (``full`` default, or ``normal``: faster,
may lose the last commits on power loss but never on a process crash),
``busy_timeout`` (ms, default 10000), ``purge_interval`` (s, default 60).

Design:

* WAL journal; one writer thread and one reader thread, each with its own
  connection, so the event loop never blocks on SQLite and readers never wait
  for a writer. Several processes may share one file (SQLite's locking,
  ``BEGIN IMMEDIATE`` for read-modify-write, ``busy_timeout``).
* Every operation is one transaction executed entirely in its thread: a
  cancelled task leaves the operation either done or not done, never half.
* Namespace, kind and id are stored as UTF-8 BLOBs (memcmp order = code-point
  order, NUL-safe) under a unique index, so prefix listing is an index range
  scan ``prefix <= id < prefix_upper`` and costs what it returns.
* Series rows carry an index on ``(ns, name, ts, seq)`` for range and
  latest-N reads; ``seq`` is the row's primary key, so rewriting an entry in
  place is a key lookup. Counters live in their own table and are updated
  with one UPSERT, atomic across processes.
* Expired records are hidden by every query and purged in small batches.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

from ..backend import (
    Backend,
    Capabilities,
    KindStats,
    NamespaceStats,
    Record,
    SeriesEntry,
    SeriesStats,
    prefix_upper_bytes,
)
from ..config import default_path
from ..errors import BackendUnavailable, ConfigError, ConflictError, ValueTooLarge

T = TypeVar("T")

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS hm_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS hm_records (
    rid INTEGER PRIMARY KEY,
    ns BLOB NOT NULL, kind BLOB NOT NULL, id BLOB NOT NULL,
    value BLOB NOT NULL, version INTEGER NOT NULL,
    expires_at REAL, updated_at REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS hm_records_key ON hm_records (ns, kind, id);
CREATE INDEX IF NOT EXISTS hm_records_exp ON hm_records (expires_at)
    WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS hm_series (
    seq INTEGER PRIMARY KEY,
    ns BLOB NOT NULL, name BLOB NOT NULL, ts REAL NOT NULL, value BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS hm_series_key ON hm_series (ns, name, ts, seq);
CREATE TABLE IF NOT EXISTS hm_counters (
    ns BLOB NOT NULL, kind BLOB NOT NULL, id BLOB NOT NULL, field BLOB NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (ns, kind, id, field)
) WITHOUT ROWID;
"""

_LIVE = "(expires_at IS NULL OR expires_at > ?)"


def _b(s: str) -> bytes:
    return s.encode("utf-8")


def _s(b: bytes) -> str:
    return bytes(b).decode("utf-8")


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


class _Worker:
    """One thread owning one sqlite3 connection."""

    def __init__(self, name: str, connect: Callable[[], sqlite3.Connection]) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._connect = connect
        self._conn: sqlite3.Connection | None = None

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            self._conn = self._connect()
        return fn(self._conn)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self._pool, self._call, fn)
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            # The statement runs to completion in its thread anyway; wait for it
            # so that when the cancelled caller resumes, the outcome is settled
            # (applied or not) and the next caller cannot see it land later.
            while not fut.done():
                try:
                    await asyncio.wait([fut])
                except asyncio.CancelledError:
                    continue
            if not fut.cancelled():
                fut.exception()  # retrieved: no "never retrieved" warning
            raise

    def shutdown(self) -> None:
        def close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        try:
            self._pool.submit(close).result()
        except RuntimeError:  # already shut down
            pass
        self._pool.shutdown(wait=True)


class SQLiteBackend(Backend):
    """Embedded SQLite backend; see the module docstring."""

    name: ClassVar[str] = "sqlite"
    capabilities: ClassVar[Capabilities] = Capabilities(
        persistent=True, shared=True, max_value_size=1_000_000_000, supports_series_rewrite=True
    )

    def __init__(self, url: str = "sqlite:///", **options: Any) -> None:
        path, query = path_from_url(url)
        self.path = path.absolute()
        query.update({k: str(v) for k, v in options.items() if k != "prefix"})
        sync = query.pop("synchronous", "full").lower()
        if sync not in ("full", "normal", "extra"):
            raise ConfigError(f"sqlite option synchronous={sync!r}: use full, normal or extra")
        self.synchronous = sync
        secure = query.pop("secure_delete", "on").lower()
        if secure not in ("on", "off", "fast"):
            raise ConfigError(f"sqlite option secure_delete={secure!r}: use on, off or fast")
        #: zero deleted and overwritten content in the file (PRAGMA secure_delete)
        self.secure_delete = secure
        try:
            self.busy_timeout = int(query.pop("busy_timeout", 10_000))
            self.purge_interval = float(query.pop("purge_interval", 60))
        except ValueError as exc:
            raise ConfigError(f"bad sqlite option: {exc}") from None
        if query:
            raise ConfigError(f"unknown sqlite option(s): {', '.join(sorted(query))}")
        self._writer: _Worker | None = None
        self._reader: _Worker | None = None
        self._next_purge = 0.0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SQLiteBackend({str(self.path)!r})"

    # -- plumbing ---------------------------------------------------------------
    def _connect(self, readonly: bool) -> sqlite3.Connection:
        conn = sqlite3.connect(
            str(self.path),
            isolation_level=None,
            check_same_thread=False,
            timeout=self.busy_timeout / 1000,
        )
        conn.execute(f"PRAGMA busy_timeout={self.busy_timeout}")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        if readonly:
            conn.execute("PRAGMA query_only=1")
        else:
            conn.execute(f"PRAGMA secure_delete={self.secure_delete}")
        return conn

    def _init_db(self, conn: sqlite3.Connection) -> None:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise BackendUnavailable(f"sqlite {self.path}: cannot enable WAL (got {mode})")
        conn.executescript(_SCHEMA)
        row = conn.execute("SELECT value FROM hm_meta WHERE key='schema'").fetchone()
        if row is None:
            conn.execute(
                "INSERT OR IGNORE INTO hm_meta (key, value) VALUES ('schema', ?)",
                (str(SCHEMA_VERSION),),
            )
        elif int(row[0]) > SCHEMA_VERSION:
            raise ConfigError(
                f"sqlite {self.path} has schema {row[0]}, newer than this hivemem "
                f"({SCHEMA_VERSION}); upgrade hivemem"
            )

    async def open(self) -> None:
        """Create the file, schema and worker threads."""
        if self._writer is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BackendUnavailable(
                f"sqlite {self.path}: cannot create directory: {exc}"
            ) from None
        writer = _Worker("hivemem-sqlite-w", lambda: self._connect(False))
        try:
            await writer.run(self._init_db)
        except sqlite3.Error as exc:
            writer.shutdown()
            raise BackendUnavailable(f"sqlite {self.path}: {exc}") from None
        except BaseException:
            writer.shutdown()
            raise
        self._writer = writer
        self._reader = _Worker("hivemem-sqlite-r", lambda: self._connect(True))

    async def close(self) -> None:
        """Stop the threads and close both connections."""
        writer, reader = self._writer, self._reader
        self._writer = self._reader = None
        for worker in (reader, writer):
            if worker is not None:
                await asyncio.get_running_loop().run_in_executor(None, worker.shutdown)

    async def _run(self, fn: Callable[[sqlite3.Connection], T], *, write: bool) -> T:
        if self._writer is None:
            await self.open()
        worker = self._writer if write else self._reader
        assert worker is not None
        try:
            return await worker.run(fn)
        except sqlite3.OperationalError as exc:
            raise BackendUnavailable(f"sqlite {self.path}: {exc}") from None
        except sqlite3.DataError as exc:
            raise ValueTooLarge(None, -1, self.capabilities.max_value_size or 0, str(exc)) from None

    async def purge_residue(self) -> list[str]:
        """Checkpoint and truncate the WAL; freed pages are already zeroed (secure_delete)."""

        def purge(conn: sqlite3.Connection) -> None:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

        await self._run(purge, write=True)
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
        return await self._run(lambda c: c.execute("SELECT 1").fetchone()[0] == 1, write=False)

    async def stats(self) -> dict[str, Any]:
        """File path and size, SQLite version, page counts."""

        def q(c: sqlite3.Connection) -> dict[str, Any]:
            pages = c.execute("PRAGMA page_count").fetchone()[0]
            size = c.execute("PRAGMA page_size").fetchone()[0]
            return {
                "backend": "sqlite",
                "path": str(self.path),
                "sqlite_version": sqlite3.sqlite_version,
                "file_bytes": pages * size,
                "journal_mode": "wal",
                "synchronous": self.synchronous,
            }

        return await self._run(q, write=False)

    def _maybe_purge(self, c: sqlite3.Connection, now: float) -> None:
        if now < self._next_purge:
            return
        self._next_purge = now + self.purge_interval
        c.execute(
            "DELETE FROM hm_records WHERE rid IN (SELECT rid FROM hm_records "
            "WHERE expires_at IS NOT NULL AND expires_at <= ? LIMIT 1000)",
            (now,),
        )

    # -- records ------------------------------------------------------------------
    async def get(self, ns: str, kind: str, id: str) -> Record | None:
        """See :meth:`Backend.get`."""
        args = (_b(ns), _b(kind), _b(id), time.time())

        def q(c: sqlite3.Connection) -> Record | None:
            row = c.execute(
                "SELECT value, version, expires_at FROM hm_records "
                f"WHERE ns=? AND kind=? AND id=? AND {_LIVE}",
                args,
            ).fetchone()
            return None if row is None else Record(row[0], row[1], row[2])

        return await self._run(q, write=False)

    async def get_many(self, ns: str, kind: str, ids: Sequence[str]) -> dict[str, Record]:
        """See :meth:`Backend.get_many` (chunks of 500 ids in one read transaction)."""
        keys = list(dict.fromkeys(ids))
        if not keys:
            return {}
        nsb, kb, now = _b(ns), _b(kind), time.time()

        def q(c: sqlite3.Connection) -> dict[str, Record]:
            out: dict[str, Record] = {}
            c.execute("BEGIN")
            try:
                for i in range(0, len(keys), 500):
                    chunk = keys[i : i + 500]
                    marks = ",".join("?" * len(chunk))
                    for id_, value, version, exp in c.execute(
                        "SELECT id, value, version, expires_at FROM hm_records "
                        f"WHERE ns=? AND kind=? AND id IN ({marks}) AND {_LIVE}",
                        (nsb, kb, *(_b(k) for k in chunk), now),
                    ):
                        out[_s(id_)] = Record(value, version, exp)
            finally:
                c.execute("COMMIT")
            return out

        return await self._run(q, write=False)

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
        if ttl is not None and ttl <= 0:
            raise ValueError(f"ttl must be > 0 seconds, got {ttl!r}")
        key = (_b(ns), _b(kind), _b(id))
        value = bytes(value)

        def q(c: sqlite3.Connection) -> int:
            now = time.time()
            expires = now + ttl if ttl is not None else None
            if expected_version is None:
                self._maybe_purge(c, now)
                row = c.execute(
                    "INSERT INTO hm_records (ns, kind, id, value, version, expires_at, updated_at) "
                    "VALUES (?, ?, ?, ?, 1, ?, ?) ON CONFLICT (ns, kind, id) DO UPDATE SET "
                    "value=excluded.value, expires_at=excluded.expires_at, "
                    "updated_at=excluded.updated_at, version=CASE WHEN hm_records.expires_at "
                    "IS NOT NULL AND hm_records.expires_at <= excluded.updated_at THEN 1 "
                    "ELSE hm_records.version + 1 END RETURNING version",
                    (*key, value, expires, now),
                ).fetchone()
                return int(row[0])
            c.execute("BEGIN IMMEDIATE")
            try:
                row = c.execute(
                    f"SELECT version FROM hm_records WHERE ns=? AND kind=? AND id=? AND {_LIVE}",
                    (*key, now),
                ).fetchone()
                actual = row[0] if row else 0
                if actual != expected_version:
                    raise ConflictError(f"{kind}/{id}", expected_version, row[0] if row else None)
                c.execute(
                    "INSERT INTO hm_records (ns, kind, id, value, version, expires_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (ns, kind, id) DO UPDATE SET "
                    "value=excluded.value, version=excluded.version, "
                    "expires_at=excluded.expires_at, updated_at=excluded.updated_at",
                    (*key, value, actual + 1, expires, now),
                )
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise
            return actual + 1

        return await self._run(q, write=True)

    async def put_many(
        self, ns: str, kind: str, items: Mapping[str, bytes], *, ttl: float | None = None
    ) -> None:
        """See :meth:`Backend.put_many` (one transaction)."""
        if ttl is not None and ttl <= 0:
            raise ValueError(f"ttl must be > 0 seconds, got {ttl!r}")
        if not items:
            return
        nsb, kb = _b(ns), _b(kind)
        rows = [(nsb, kb, _b(k), bytes(v)) for k, v in items.items()]

        def q(c: sqlite3.Connection) -> None:
            now = time.time()
            expires = now + ttl if ttl is not None else None
            c.execute("BEGIN IMMEDIATE")
            try:
                c.executemany(
                    "INSERT INTO hm_records (ns, kind, id, value, version, expires_at, updated_at) "
                    "VALUES (?, ?, ?, ?, 1, ?, ?) ON CONFLICT (ns, kind, id) DO UPDATE SET "
                    "value=excluded.value, expires_at=excluded.expires_at, "
                    "updated_at=excluded.updated_at, version=CASE WHEN hm_records.expires_at "
                    "IS NOT NULL AND hm_records.expires_at <= excluded.updated_at THEN 1 "
                    "ELSE hm_records.version + 1 END",
                    [(*r, expires, now) for r in rows],
                )
                self._maybe_purge(c, now)
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise

        await self._run(q, write=True)

    async def delete(
        self, ns: str, kind: str, id: str, *, expected_version: int | None = None
    ) -> bool:
        """See :meth:`Backend.delete`."""
        key = (_b(ns), _b(kind), _b(id))

        def q(c: sqlite3.Connection) -> bool:
            now = time.time()
            c.execute("BEGIN IMMEDIATE")
            try:
                row = c.execute(
                    "SELECT version, expires_at FROM hm_records WHERE ns=? AND kind=? AND id=?",
                    key,
                ).fetchone()
                live = row is not None and (row[1] is None or row[1] > now)
                if expected_version is not None:
                    actual = row[0] if live else 0
                    if actual != expected_version:
                        raise ConflictError(
                            f"{kind}/{id}", expected_version, row[0] if live else None
                        )
                if row is not None:
                    c.execute("DELETE FROM hm_records WHERE ns=? AND kind=? AND id=?", key)
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise
            return live

        return await self._run(q, write=True)

    async def delete_many(self, ns: str, kind: str, ids: Sequence[str]) -> int:
        """See :meth:`Backend.delete_many` (one transaction)."""
        keys = [_b(k) for k in dict.fromkeys(ids)]
        if not keys:
            return 0
        nsb, kb = _b(ns), _b(kind)

        def q(c: sqlite3.Connection) -> int:
            now = time.time()
            n = 0
            c.execute("BEGIN IMMEDIATE")
            try:
                for i in range(0, len(keys), 500):
                    chunk = keys[i : i + 500]
                    marks = ",".join("?" * len(chunk))
                    n += c.execute(
                        f"SELECT count(*) FROM hm_records WHERE ns=? AND kind=? "
                        f"AND id IN ({marks}) AND {_LIVE}",
                        (nsb, kb, *chunk, now),
                    ).fetchone()[0]
                    c.execute(
                        f"DELETE FROM hm_records WHERE ns=? AND kind=? AND id IN ({marks})",
                        (nsb, kb, *chunk),
                    )
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise
            return n

        return await self._run(q, write=True)

    def _range_sql(
        self,
        cols: str,
        ns: str,
        kind: str,
        prefix: str,
        limit: int | None,
        cursor: str | None,
        reverse: bool,
    ) -> tuple[str, list[Any]]:
        pb = _b(prefix)
        upper = prefix_upper_bytes(pb)
        where = ["ns=?", "kind=?", "id>=?"]
        args: list[Any] = [_b(ns), _b(kind), pb]
        if upper is not None:
            where.append("id<?")
            args.append(upper)
        if cursor is not None:
            where.append("id<?" if reverse else "id>?")
            args.append(_b(cursor))
        where.append(_LIVE)
        args.append(time.time())
        sql = (
            f"SELECT {cols} FROM hm_records WHERE {' AND '.join(where)} "
            f"ORDER BY id {'DESC' if reverse else 'ASC'}"
        )
        if limit is not None:
            sql += " LIMIT ?"
            args.append(max(0, limit))
        return sql, args

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
        """See :meth:`Backend.list_ids` (index range scan)."""
        sql, args = self._range_sql("id", ns, kind, prefix, limit, cursor, reverse)
        return await self._run(lambda c: [_s(r[0]) for r in c.execute(sql, args)], write=False)

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
        """See :meth:`Backend.list_records` (index range scan)."""
        sql, args = self._range_sql(
            "id, value, version, expires_at", ns, kind, prefix, limit, cursor, reverse
        )
        return await self._run(
            lambda c: [(_s(r[0]), Record(r[1], r[2], r[3])) for r in c.execute(sql, args)],
            write=False,
        )

    async def kinds(self, ns: str) -> list[str]:
        """See :meth:`Backend.kinds` (one index probe per kind)."""
        nsb = _b(ns)

        def q(c: sqlite3.Connection) -> list[str]:
            out: list[str] = []
            last = b""
            first = True
            now = time.time()
            c.execute("BEGIN")
            try:
                while True:
                    row = c.execute(
                        "SELECT kind FROM hm_records WHERE ns=? AND "
                        + ("kind>=?" if first else "kind>?")
                        + " ORDER BY kind LIMIT 1",
                        (nsb, last),
                    ).fetchone()
                    if row is None:
                        break
                    first = False
                    last = row[0]
                    live = c.execute(
                        f"SELECT 1 FROM hm_records WHERE ns=? AND kind=? AND {_LIVE} LIMIT 1",
                        (nsb, last, now),
                    ).fetchone()
                    if live:
                        out.append(_s(last))
            finally:
                c.execute("COMMIT")
            return out

        return await self._run(q, write=False)

    async def namespace_stats(self, ns: str) -> NamespaceStats:
        """See :meth:`Backend.namespace_stats` (aggregates over the namespace)."""
        nsb = _b(ns)

        def q(c: sqlite3.Connection) -> NamespaceStats:
            now = time.time()
            c.execute("BEGIN")
            try:
                kinds = {
                    _s(k): KindStats(n, b or 0)
                    for k, n, b in c.execute(
                        "SELECT kind, count(*), sum(length(value)) FROM hm_records "
                        f"WHERE ns=? AND {_LIVE} GROUP BY kind ORDER BY kind",
                        (nsb, now),
                    )
                }
                series = {
                    _s(name): SeriesStats(n, b or 0, lo, hi)
                    for name, n, b, lo, hi in c.execute(
                        "SELECT name, count(*), sum(length(value)), min(ts), max(ts) "
                        "FROM hm_series WHERE ns=? GROUP BY name ORDER BY name",
                        (nsb,),
                    )
                }
            finally:
                c.execute("COMMIT")
            return NamespaceStats(kinds, series)

        return await self._run(q, write=False)

    async def drop_namespace(self, ns: str) -> None:
        """See :meth:`Backend.drop_namespace` (one transaction)."""
        nsb = _b(ns)

        def q(c: sqlite3.Connection) -> None:
            c.execute("BEGIN IMMEDIATE")
            try:
                for table in ("hm_records", "hm_series", "hm_counters"):
                    c.execute(f"DELETE FROM {table} WHERE ns=?", (nsb,))
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise

        await self._run(q, write=True)

    # -- series ----------------------------------------------------------------------
    async def append(
        self, ns: str, series: str, value: bytes, *, ts: float | None = None
    ) -> SeriesEntry:
        """See :meth:`Backend.append`."""
        args = [_b(ns), _b(series), ts, bytes(value)]

        def q(c: sqlite3.Connection) -> SeriesEntry:
            if args[2] is None:
                args[2] = time.time()
            row = c.execute(
                "INSERT INTO hm_series (ns, name, ts, value) VALUES (?, ?, ?, ?) RETURNING seq",
                args,
            ).fetchone()
            return SeriesEntry(float(args[2]), int(row[0]), args[3])

        return await self._run(q, write=True)

    async def replace_series(
        self, ns: str, series: str, entries: Sequence[tuple[float, bytes]]
    ) -> None:
        """See :meth:`Backend.replace_series` (one transaction)."""
        nsb, nb = _b(ns), _b(series)
        rows = [(nsb, nb, float(ts), bytes(v)) for ts, v in entries]

        def q(c: sqlite3.Connection) -> None:
            c.execute("BEGIN IMMEDIATE")
            try:
                c.execute("DELETE FROM hm_series WHERE ns=? AND name=?", (nsb, nb))
                c.executemany(
                    "INSERT INTO hm_series (ns, name, ts, value) VALUES (?, ?, ?, ?)", rows
                )
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise

        await self._run(q, write=True)

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
        where = ["ns=?", "name=?"]
        args: list[Any] = [_b(ns), _b(series)]
        if start is not None:
            where.append("ts>=?")
            args.append(float(start))
        if end is not None:
            where.append("ts<?")
            args.append(float(end))
        order = "DESC" if latest else "ASC"
        sql = (
            f"SELECT ts, seq, value FROM hm_series WHERE {' AND '.join(where)} "
            f"ORDER BY ts {order}, seq {order}"
        )
        if limit is not None:
            sql += " LIMIT ?"
            args.append(max(0, limit))

        def q(c: sqlite3.Connection) -> list[SeriesEntry]:
            rows = [SeriesEntry(ts, seq, value) for ts, seq, value in c.execute(sql, args)]
            if latest:
                rows.reverse()
            return rows

        return await self._run(q, write=False)

    async def series_names(self, ns: str, prefix: str = "") -> list[str]:
        """See :meth:`Backend.series_names` (one index probe per name)."""
        nsb, pb = _b(ns), _b(prefix)
        upper = prefix_upper_bytes(pb)

        def q(c: sqlite3.Connection) -> list[str]:
            out: list[str] = []
            last, op = pb, ">="
            c.execute("BEGIN")
            try:
                while True:
                    row = c.execute(
                        f"SELECT name FROM hm_series WHERE ns=? AND name{op}? "
                        "ORDER BY name LIMIT 1",
                        (nsb, last),
                    ).fetchone()
                    if row is None or (upper is not None and row[0] >= upper):
                        break
                    last, op = row[0], ">"
                    out.append(_s(last))
            finally:
                c.execute("COMMIT")
            return out

        return await self._run(q, write=False)

    async def delete_series(self, ns: str, series: str) -> int:
        """See :meth:`Backend.delete_series`."""
        args = (_b(ns), _b(series))
        return await self._run(
            lambda c: c.execute("DELETE FROM hm_series WHERE ns=? AND name=?", args).rowcount,
            write=True,
        )

    async def rewrite_series(
        self, ns: str, series: str, changes: Sequence[tuple[int, bytes, bytes]]
    ) -> int:
        """See :meth:`Backend.rewrite_series` (one transaction, a primary-key update each)."""
        nsb, nb = _b(ns), _b(series)
        rows = [(bytes(new), int(seq), nsb, nb, bytes(old)) for seq, old, new in changes]
        if not rows:
            return 0

        def q(c: sqlite3.Connection) -> int:
            c.execute("BEGIN IMMEDIATE")
            try:
                n = c.executemany(
                    "UPDATE hm_series SET value=? WHERE seq=? AND ns=? AND name=? AND value=?",
                    rows,
                ).rowcount
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise
            return int(n)

        return await self._run(q, write=True)

    # -- counters ------------------------------------------------------------------------
    async def incr(self, ns: str, kind: str, id: str, field: str, amount: float = 1.0) -> float:
        """See :meth:`Backend.incr` (one UPSERT, atomic across processes)."""
        args = (_b(ns), _b(kind), _b(id), _b(field), float(amount))

        def q(c: sqlite3.Connection) -> float:
            row = c.execute(
                "INSERT INTO hm_counters (ns, kind, id, field, value) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (ns, kind, id, field) DO UPDATE SET value = value + excluded.value "
                "RETURNING value",
                args,
            ).fetchone()
            return float(row[0])

        return await self._run(q, write=True)

    async def get_counters(
        self, ns: str, kind: str, ids: Sequence[str]
    ) -> dict[str, dict[str, float]]:
        """See :meth:`Backend.get_counters`."""
        keys = [_b(k) for k in dict.fromkeys(ids)]
        if not keys:
            return {}
        nsb, kb = _b(ns), _b(kind)

        def q(c: sqlite3.Connection) -> dict[str, dict[str, float]]:
            out: dict[str, dict[str, float]] = {}
            c.execute("BEGIN")
            try:
                for i in range(0, len(keys), 500):
                    chunk = keys[i : i + 500]
                    marks = ",".join("?" * len(chunk))
                    for id_, field, value in c.execute(
                        "SELECT id, field, value FROM hm_counters "
                        f"WHERE ns=? AND kind=? AND id IN ({marks})",
                        (nsb, kb, *chunk),
                    ):
                        out.setdefault(_s(id_), {})[_s(field)] = float(value)
            finally:
                c.execute("COMMIT")
            return out

        return await self._run(q, write=False)

    async def delete_counters(self, ns: str, kind: str, id: str) -> bool:
        """See :meth:`Backend.delete_counters`."""
        args = (_b(ns), _b(kind), _b(id))
        return await self._run(
            lambda c: (
                c.execute("DELETE FROM hm_counters WHERE ns=? AND kind=? AND id=?", args).rowcount
                > 0
            ),
            write=True,
        )
