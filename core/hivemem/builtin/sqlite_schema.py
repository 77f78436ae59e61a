"""What a hivemem SQLite file holds: tables, indexes, schema version, key encoding.

* Namespace, kind and id (and series names and counter fields) are stored as
  UTF-8 BLOBs: memcmp order equals code-point order and NUL is safe. Records
  sit under a unique index on ``(ns, kind, id)``, so a prefix listing is the
  index range ``prefix <= id < prefix_upper``.
* Series rows carry an index on ``(ns, name, ts, seq)`` for range and
  latest-N reads; ``seq`` is the row's primary key, so rewriting an entry in
  place is a key lookup.
* Counters live in their own ``WITHOUT ROWID`` table keyed by
  ``(ns, kind, id, field)``.
* ``hm_meta`` records the schema version; a file written by a newer hivemem
  is refused rather than misread.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ..errors import BackendUnavailable, ConfigError

SCHEMA_VERSION = 1
SCHEMA = """
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

#: the condition that hides expired records (bind the current unix time)
LIVE = "(expires_at IS NULL OR expires_at > ?)"
#: every table that holds data of a namespace
DATA_TABLES = ("hm_records", "hm_series", "hm_counters")


def to_blob(text: str) -> bytes:
    """A namespace, kind, id, series name or counter field as stored (UTF-8)."""
    return text.encode("utf-8")


def from_blob(blob: bytes) -> str:
    """The string a stored key BLOB holds."""
    return bytes(blob).decode("utf-8")


def init_schema(conn: sqlite3.Connection, path: Path) -> None:
    """Switch ``conn``'s file to WAL, create missing tables, check the schema version."""
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise BackendUnavailable(f"sqlite {path}: cannot enable WAL (got {mode})")
    conn.executescript(SCHEMA)
    row = conn.execute("SELECT value FROM hm_meta WHERE key='schema'").fetchone()
    if row is None:
        conn.execute(
            "INSERT OR IGNORE INTO hm_meta (key, value) VALUES ('schema', ?)",
            (str(SCHEMA_VERSION),),
        )
    elif int(row[0]) > SCHEMA_VERSION:
        raise ConfigError(
            f"sqlite {path} has schema {row[0]}, newer than this hivemem "
            f"({SCHEMA_VERSION}); upgrade hivemem"
        )


def ping(conn: sqlite3.Connection) -> bool:
    """True when the file answers ``SELECT 1``."""
    return bool(conn.execute("SELECT 1").fetchone()[0] == 1)


def file_bytes(conn: sqlite3.Connection) -> int:
    """Size of the database file (pages times page size, without the WAL)."""
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    return int(pages * size)


def checkpoint_truncate(conn: sqlite3.Connection) -> None:
    """Copy the WAL into the file and truncate it (old frames leave the WAL)."""
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


__all__ = [
    "DATA_TABLES",
    "LIVE",
    "SCHEMA",
    "SCHEMA_VERSION",
    "checkpoint_truncate",
    "file_bytes",
    "from_blob",
    "init_schema",
    "ping",
    "to_blob",
]
