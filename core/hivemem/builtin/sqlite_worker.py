"""The threads that run SQLite for the event loop, and how their connections are opened.

Each :class:`SQLiteWorker` is one thread owning one ``sqlite3`` connection;
the backend keeps a writer and a reader, so the event loop never blocks on
SQLite and readers never wait for a writer. A function handed to a worker
runs entirely in its thread, so one operation is one transaction there: a
cancelled caller waits until the statement has finished (applied or not)
before the cancellation propagates.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import attrs

T = TypeVar("T")


@attrs.frozen
class ConnectionSettings:
    """How every connection to one file is opened (the URL's pragmas)."""

    path: Path
    #: ms a statement waits for another process's lock (``PRAGMA busy_timeout``)
    busy_timeout: int = 10_000
    #: ``full``, ``normal`` or ``extra`` (``PRAGMA synchronous``)
    synchronous: str = "full"
    #: ``on``, ``off`` or ``fast``: zero deleted and overwritten content (writer only)
    secure_delete: str = "on"

    def connect(self, *, readonly: bool) -> sqlite3.Connection:
        """A new autocommit connection with these pragmas (``query_only`` when ``readonly``)."""
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


class SQLiteWorker:
    """One thread owning one sqlite3 connection (opened on its first call)."""

    def __init__(self, name: str, connect: Callable[[], sqlite3.Connection]) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._connect = connect
        self._conn: sqlite3.Connection | None = None

    def _in_thread(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        conn = self._conn
        if conn is None:
            conn = self._conn = self._connect()
        return fn(conn, *args)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(connection, *args)`` in the worker's thread; a cancelled caller waits for it."""
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self._pool, self._in_thread, fn, args)
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
        """Close the connection in its thread, then stop the thread (blocking)."""

        def close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        try:
            self._pool.submit(close).result()
        except RuntimeError:  # already shut down
            pass
        self._pool.shutdown(wait=True)


__all__ = ["ConnectionSettings", "SQLiteWorker"]
