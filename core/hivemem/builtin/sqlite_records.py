"""The SQL of records (``hm_records``): reads, writes with CAS and TTL, listings, purging.

Every function takes the worker's connection first and runs in the worker's
thread (see :mod:`.sqlite_worker`); one call is one transaction. Keys arrive
as UTF-8 BLOBs (:func:`.sqlite_schema.to_blob`) unless a function says it
encodes them itself.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from ..backend import KindStats, NamespaceStats, Record, SeriesStats, prefix_upper_bytes
from ..errors import ConflictError
from .sqlite_schema import DATA_TABLES, LIVE, from_blob, to_blob

#: ids per ``IN (...)`` list (SQLite allows at most 999 or 32766 parameters)
CHUNK = 500
#: expired records deleted per purge (keeps each write short)
PURGE_BATCH = 1000
#: the columns a record is read from, in :class:`Record` order after the id
RECORD_COLUMNS = "id, value, version, expires_at"

#: create at version 1, or overwrite (version + 1; an expired record starts again at 1)
_UPSERT = (
    "INSERT INTO hm_records (ns, kind, id, value, version, expires_at, updated_at) "
    "VALUES (?, ?, ?, ?, 1, ?, ?) ON CONFLICT (ns, kind, id) DO UPDATE SET "
    "value=excluded.value, expires_at=excluded.expires_at, "
    "updated_at=excluded.updated_at, version=CASE WHEN hm_records.expires_at "
    "IS NOT NULL AND hm_records.expires_at <= excluded.updated_at THEN 1 "
    "ELSE hm_records.version + 1 END"
)
_UPSERT_RETURNING = _UPSERT + " RETURNING version"
#: write with a version the caller computed (inside a compare-and-set transaction)
_WRITE_VERSION = (
    "INSERT INTO hm_records (ns, kind, id, value, version, expires_at, updated_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (ns, kind, id) DO UPDATE SET "
    "value=excluded.value, version=excluded.version, "
    "expires_at=excluded.expires_at, updated_at=excluded.updated_at"
)

Key = tuple[bytes, bytes, bytes]


class ExpiryPurge:
    """Deletes expired records in batches, at most once per ``interval`` seconds.

    Expired records are already invisible to every read; this only gives their
    space back. It runs inside a write, in the writer thread.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.next_at = 0.0

    def maybe_run(self, conn: sqlite3.Connection, now: float) -> None:
        """Purge one batch when the interval has passed since the last purge."""
        if now < self.next_at:
            return
        self.next_at = now + self.interval
        conn.execute(
            "DELETE FROM hm_records WHERE rid IN (SELECT rid FROM hm_records "
            f"WHERE expires_at IS NOT NULL AND expires_at <= ? LIMIT {PURGE_BATCH})",
            (now,),
        )


def _marks(count: int) -> str:
    return ",".join("?" * count)


# -- reads ---------------------------------------------------------------------------
def get_one(conn: sqlite3.Connection, key: Key, now: float) -> Record | None:
    """The live record at ``key`` or None (one statement, no transaction)."""
    row = conn.execute(
        "SELECT value, version, expires_at FROM hm_records "
        f"WHERE ns=? AND kind=? AND id=? AND {LIVE}",
        (*key, now),
    ).fetchone()
    return None if row is None else Record(row[0], row[1], row[2])


def get_many(
    conn: sqlite3.Connection, ns: bytes, kind: bytes, ids: list[str], now: float
) -> dict[str, Record]:
    """Live records of ``ids`` (str, encoded here) in one read transaction."""
    out: dict[str, Record] = {}
    conn.execute("BEGIN")
    try:
        for i in range(0, len(ids), CHUNK):
            chunk = ids[i : i + CHUNK]
            for id_, value, version, expires_at in conn.execute(
                "SELECT id, value, version, expires_at FROM hm_records "
                f"WHERE ns=? AND kind=? AND id IN ({_marks(len(chunk))}) AND {LIVE}",
                (ns, kind, *(to_blob(id) for id in chunk), now),
            ):
                out[from_blob(id_)] = Record(value, version, expires_at)
    finally:
        conn.execute("COMMIT")
    return out


def range_query(
    columns: str,
    ns: str,
    kind: str,
    prefix: str,
    limit: int | None,
    cursor: str | None,
    reverse: bool,
) -> tuple[str, list[Any]]:
    """SQL and arguments of an index range scan over live ids starting with ``prefix``."""
    prefix_blob = to_blob(prefix)
    upper = prefix_upper_bytes(prefix_blob)
    where = ["ns=?", "kind=?", "id>=?"]
    args: list[Any] = [to_blob(ns), to_blob(kind), prefix_blob]
    if upper is not None:
        where.append("id<?")
        args.append(upper)
    if cursor is not None:
        where.append("id<?" if reverse else "id>?")
        args.append(to_blob(cursor))
    where.append(LIVE)
    args.append(time.time())
    sql = (
        f"SELECT {columns} FROM hm_records WHERE {' AND '.join(where)} "
        f"ORDER BY id {'DESC' if reverse else 'ASC'}"
    )
    if limit is not None:
        sql += " LIMIT ?"
        args.append(max(0, limit))
    return sql, args


def scan_records(
    conn: sqlite3.Connection, sql: str, args: list[Any]
) -> list[tuple[str, Record | None]]:
    """``(id, record)`` rows of a :func:`range_query` over :data:`RECORD_COLUMNS`."""
    return [(from_blob(r[0]), Record(r[1], r[2], r[3])) for r in conn.execute(sql, args)]


def scan_ids(
    conn: sqlite3.Connection, sql: str, args: list[Any]
) -> list[tuple[str, Record | None]]:
    """``(id, None)`` rows of a :func:`range_query` over ``id`` alone (no value is read)."""
    return [(from_blob(r[0]), None) for r in conn.execute(sql, args)]


def list_ids(conn: sqlite3.Connection, sql: str, args: list[Any]) -> list[str]:
    """The ids of a :func:`range_query` over ``id`` alone, as a plain list (one pass)."""
    return [from_blob(r[0]) for r in conn.execute(sql, args)]


def kinds(conn: sqlite3.Connection, ns: bytes) -> list[str]:
    """Kinds with a live record in ``ns``: one index probe per kind, in one transaction."""
    out: list[str] = []
    kind, op = b"", ">="
    now = time.time()
    conn.execute("BEGIN")
    try:
        while True:
            row = conn.execute(
                f"SELECT kind FROM hm_records WHERE ns=? AND kind{op}? ORDER BY kind LIMIT 1",
                (ns, kind),
            ).fetchone()
            if row is None:
                break
            kind, op = row[0], ">"
            live = conn.execute(
                f"SELECT 1 FROM hm_records WHERE ns=? AND kind=? AND {LIVE} LIMIT 1",
                (ns, kind, now),
            ).fetchone()
            if live:
                out.append(from_blob(kind))
    finally:
        conn.execute("COMMIT")
    return out


def namespace_stats(conn: sqlite3.Connection, ns: bytes) -> NamespaceStats:
    """Counts and bytes per kind, length and span per series (two aggregates)."""
    now = time.time()
    conn.execute("BEGIN")
    try:
        kind_stats = {
            from_blob(kind): KindStats(count, size or 0)
            for kind, count, size in conn.execute(
                "SELECT kind, count(*), sum(length(value)) FROM hm_records "
                f"WHERE ns=? AND {LIVE} GROUP BY kind ORDER BY kind",
                (ns, now),
            )
        }
        series_stats = {
            from_blob(name): SeriesStats(count, size or 0, oldest, newest)
            for name, count, size, oldest, newest in conn.execute(
                "SELECT name, count(*), sum(length(value)), min(ts), max(ts) "
                "FROM hm_series WHERE ns=? GROUP BY name ORDER BY name",
                (ns,),
            )
        }
    finally:
        conn.execute("COMMIT")
    return NamespaceStats(kind_stats, series_stats)


# -- writes --------------------------------------------------------------------------
def upsert(
    conn: sqlite3.Connection, key: Key, value: bytes, ttl: float | None, purge: ExpiryPurge
) -> int:
    """Write without a version check (one statement); return the new version."""
    now = time.time()
    expires_at = now + ttl if ttl is not None else None
    purge.maybe_run(conn, now)
    row = conn.execute(_UPSERT_RETURNING, (*key, value, expires_at, now)).fetchone()
    return int(row[0])


def put_if_version(
    conn: sqlite3.Connection, key: Key, value: bytes, ttl: float | None, expected: int
) -> int:
    """Write only when the live version is ``expected`` (0: absent); ConflictError otherwise."""
    now = time.time()
    expires_at = now + ttl if ttl is not None else None
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute(
            f"SELECT version FROM hm_records WHERE ns=? AND kind=? AND id=? AND {LIVE}",
            (*key, now),
        ).fetchone()
        actual = row[0] if row else 0
        if actual != expected:
            raise ConflictError(_label(key), expected, row[0] if row else None)
        conn.execute(_WRITE_VERSION, (*key, value, actual + 1, expires_at, now))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return actual + 1


def put_many(
    conn: sqlite3.Connection,
    rows: list[tuple[bytes, bytes, bytes, bytes]],
    ttl: float | None,
    purge: ExpiryPurge,
) -> None:
    """Write ``(ns, kind, id, value)`` rows in one transaction."""
    now = time.time()
    expires_at = now + ttl if ttl is not None else None
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(_UPSERT, [(*row, expires_at, now) for row in rows])
        purge.maybe_run(conn, now)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def delete(conn: sqlite3.Connection, key: Key, expected: int | None) -> bool:
    """Delete ``key`` (CAS when ``expected`` is not None); True when a live record went."""
    now = time.time()
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute(
            "SELECT version, expires_at FROM hm_records WHERE ns=? AND kind=? AND id=?", key
        ).fetchone()
        live = row is not None and (row[1] is None or row[1] > now)
        if expected is not None:
            actual = row[0] if live else 0
            if actual != expected:
                raise ConflictError(_label(key), expected, row[0] if live else None)
        if row is not None:
            conn.execute("DELETE FROM hm_records WHERE ns=? AND kind=? AND id=?", key)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return live


def delete_many(conn: sqlite3.Connection, ns: bytes, kind: bytes, ids: list[bytes]) -> int:
    """Delete ``ids`` in one transaction; return how many live records went."""
    now = time.time()
    removed = 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        for i in range(0, len(ids), CHUNK):
            chunk = ids[i : i + CHUNK]
            marks = _marks(len(chunk))
            removed += conn.execute(
                f"SELECT count(*) FROM hm_records WHERE ns=? AND kind=? "
                f"AND id IN ({marks}) AND {LIVE}",
                (ns, kind, *chunk, now),
            ).fetchone()[0]
            conn.execute(
                f"DELETE FROM hm_records WHERE ns=? AND kind=? AND id IN ({marks})",
                (ns, kind, *chunk),
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return removed


def drop_namespace(conn: sqlite3.Connection, ns: bytes) -> None:
    """Delete the records, series and counters of ``ns`` in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for table in DATA_TABLES:
            conn.execute(f"DELETE FROM {table} WHERE ns=?", (ns,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _label(key: Key) -> str:
    """``kind/id`` of a key, as a :class:`ConflictError` names it."""
    return f"{from_blob(key[1])}/{from_blob(key[2])}"


__all__ = [
    "CHUNK",
    "RECORD_COLUMNS",
    "ExpiryPurge",
    "delete",
    "delete_many",
    "drop_namespace",
    "get_many",
    "get_one",
    "kinds",
    "list_ids",
    "namespace_stats",
    "put_if_version",
    "put_many",
    "range_query",
    "scan_ids",
    "scan_records",
]
