"""The SQL of series (``hm_series``): append, replace, range reads, names, rewrite.

Every function takes the worker's connection first and runs in the worker's
thread (see :mod:`.sqlite_worker`); one call is one transaction. Names
arrive as UTF-8 BLOBs (:func:`.sqlite_schema.to_blob`).
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from ..backend import SeriesEntry
from .sqlite_schema import from_blob

_INSERT_ENTRY = "INSERT INTO hm_series (ns, name, ts, value) VALUES (?, ?, ?, ?)"


def append(
    conn: sqlite3.Connection, ns: bytes, name: bytes, value: bytes, ts: float | None
) -> SeriesEntry:
    """Insert one entry (``ts`` None: now); its ``seq`` is the new row id."""
    if ts is None:
        ts = time.time()
    row = conn.execute(_INSERT_ENTRY + " RETURNING seq", (ns, name, ts, value)).fetchone()
    return SeriesEntry(float(ts), int(row[0]), value)


def replace(
    conn: sqlite3.Connection, ns: bytes, name: bytes, rows: list[tuple[bytes, bytes, float, bytes]]
) -> None:
    """Swap the whole series for ``(ns, name, ts, value)`` rows in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("DELETE FROM hm_series WHERE ns=? AND name=?", (ns, name))
        conn.executemany(_INSERT_ENTRY, rows)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def read_query(
    ns: bytes,
    name: bytes,
    start: float | None,
    end: float | None,
    limit: int | None,
    latest: bool,
) -> tuple[str, list[Any]]:
    """SQL and arguments of an index range read (descending when ``latest``)."""
    where = ["ns=?", "name=?"]
    args: list[Any] = [ns, name]
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
    return sql, args


def read(conn: sqlite3.Connection, sql: str, args: list[Any], latest: bool) -> list[SeriesEntry]:
    """Entries of a :func:`read_query`, always ascending."""
    entries = [SeriesEntry(ts, seq, value) for ts, seq, value in conn.execute(sql, args)]
    if latest:
        entries.reverse()
    return entries


def names(conn: sqlite3.Connection, ns: bytes, prefix: bytes, upper: bytes | None) -> list[str]:
    """Names in ``[prefix, upper)`` that hold entries: one index probe per name."""
    out: list[str] = []
    name, op = prefix, ">="
    conn.execute("BEGIN")
    try:
        while True:
            row = conn.execute(
                f"SELECT name FROM hm_series WHERE ns=? AND name{op}? ORDER BY name LIMIT 1",
                (ns, name),
            ).fetchone()
            if row is None or (upper is not None and row[0] >= upper):
                break
            name, op = row[0], ">"
            out.append(from_blob(name))
    finally:
        conn.execute("COMMIT")
    return out


def delete(conn: sqlite3.Connection, ns: bytes, name: bytes) -> int:
    """Delete a whole series; return how many entries went."""
    return int(conn.execute("DELETE FROM hm_series WHERE ns=? AND name=?", (ns, name)).rowcount)


def rewrite(conn: sqlite3.Connection, rows: list[tuple[bytes, int, bytes, bytes, bytes]]) -> int:
    """Apply ``(new, seq, ns, name, old)`` compare-and-set updates in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        replaced = conn.executemany(
            "UPDATE hm_series SET value=? WHERE seq=? AND ns=? AND name=? AND value=?", rows
        ).rowcount
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return int(replaced)


__all__ = [
    "append",
    "delete",
    "names",
    "read",
    "read_query",
    "replace",
    "rewrite",
]
