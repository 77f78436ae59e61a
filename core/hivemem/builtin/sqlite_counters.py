"""The SQL of counters (``hm_counters``): atomic increments, batched reads, deletes.

Every function takes the worker's connection first and runs in the worker's
thread (see :mod:`.sqlite_worker`). Keys arrive as UTF-8 BLOBs
(:func:`.sqlite_schema.to_blob`); an increment is one UPSERT, so it is atomic
across threads and processes.
"""

from __future__ import annotations

import sqlite3

from .sqlite_records import CHUNK
from .sqlite_schema import from_blob


def incr(conn: sqlite3.Connection, key: tuple[bytes, bytes, bytes, bytes], amount: float) -> float:
    """Add ``amount`` to the ``(ns, kind, id, field)`` counter (one UPSERT); the new value."""
    row = conn.execute(
        "INSERT INTO hm_counters (ns, kind, id, field, value) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (ns, kind, id, field) DO UPDATE SET value = value + excluded.value "
        "RETURNING value",
        (*key, amount),
    ).fetchone()
    return float(row[0])


def get_counters(
    conn: sqlite3.Connection, ns: bytes, kind: bytes, ids: list[bytes]
) -> dict[str, dict[str, float]]:
    """``{id: {field: value}}`` of ``ids`` in one read transaction."""
    out: dict[str, dict[str, float]] = {}
    conn.execute("BEGIN")
    try:
        for i in range(0, len(ids), CHUNK):
            chunk = ids[i : i + CHUNK]
            marks = ",".join("?" * len(chunk))
            for id_, field, value in conn.execute(
                "SELECT id, field, value FROM hm_counters "
                f"WHERE ns=? AND kind=? AND id IN ({marks})",
                (ns, kind, *chunk),
            ):
                out.setdefault(from_blob(id_), {})[from_blob(field)] = float(value)
    finally:
        conn.execute("COMMIT")
    return out


def delete_counters(conn: sqlite3.Connection, key: tuple[bytes, bytes, bytes]) -> bool:
    """Delete every field of ``(ns, kind, id)``; True when one went."""
    return bool(
        conn.execute("DELETE FROM hm_counters WHERE ns=? AND kind=? AND id=?", key).rowcount > 0
    )


__all__ = ["delete_counters", "get_counters", "incr"]
