"""How the Redis backend gets its commands to the server in the fewest round trips.

:class:`RedisCommands` runs one :class:`~hivemem_redis.wire.Command` or a
batch of them (a pipeline on a standalone server, in order or concurrently
on a cluster), scripts by ``EVALSHA`` with an ``EVAL`` fallback on
``NOSCRIPT``, commands the hot paths packed themselves, and ``MULTI``/``EXEC``
transactions that stage large values with ``MSET`` (see scripts.py). It also
reads and writes the per-namespace registries (kinds and series names) that
records, counters and series all keep up to date.

redis-py discards a connection whose reply is still in flight when the
awaiting task is cancelled (``disconnect_on_error`` on ``BaseException``), so
a cancelled call can never hand its reply to the next caller; the tests check
it against a real server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis import exceptions as rexc

from .connection import RedisConnection
from .keys import utf8
from .record_format import BLANK_HEADER, HEADER
from .scripts import Script
from .wire import Command, bulk, lex_range, pack_command, text

_MULTI = b"*1\r\n$5\r\nMULTI\r\n"
_EXEC = b"*1\r\n$4\r\nEXEC\r\n"


class RedisCommands(RedisConnection):
    """Command execution (single, batched, packed, transactional) and the registries."""

    async def _execute(self, call: Command) -> Any:
        client = self._require_client()
        if call.script is None:
            return await client.execute_command(*call.args)
        try:
            return await client.execute_command(*call.command(True))
        except rexc.NoScriptError:
            return await client.execute_command(*call.command(False))

    async def _batch(self, calls: Sequence[Command], *, ordered: bool) -> list[Any]:
        """Run ``calls`` in one round trip where possible; raise the first error.

        Standalone: one non-transactional pipeline (executed in order). Cluster:
        in order, one after the other, when ``ordered`` (the calls may live on
        different masters); otherwise concurrently.
        """
        if not calls:
            return []
        if len(calls) == 1:
            return [await self._execute(calls[0])]
        client = self._require_client()
        if self.is_cluster:
            if ordered:
                return [await self._execute(call) for call in calls]
            return list(await asyncio.gather(*(self._execute(call) for call in calls)))
        pipe = client.pipeline(transaction=False)
        for call in calls:
            pipe.execute_command(*call.command(True))
        results = list(await pipe.execute(raise_on_error=False))
        for index, result in enumerate(results):
            if isinstance(result, rexc.NoScriptError):
                # the script did not run: run it (and everything after it) again in order
                for later in range(index, len(calls)):
                    results[later] = await self._execute(calls[later])
                break
        for result in results:
            if isinstance(result, Exception):
                raise result
        return results

    async def _eval(self, script: Script, args: Sequence[Any]) -> Any:
        """One script call (``args`` = numkeys, keys..., argv...); EVAL on ``NOSCRIPT``."""
        client = self._require_client()
        try:
            return await client.execute_command("EVALSHA", script.sha, *args)
        except rexc.NoScriptError:
            return await client.execute_command("EVAL", script.source, *args)

    async def _send_packed(self, packed: Sequence[bytes]) -> Any:
        """Write one command already packed as RESP and read its reply (standalone only).

        The hot paths (``get``, ``put``, ``put_many``) pack their commands
        themselves: their shape is fixed, most pieces are packed once per kind
        and the value is sent as its own chunk. redis-py's generic packer took
        about 20 us for the arguments of a ``put`` (a raw ``SET``: 7 us); this
        takes about 2 us. Timeouts, health checks and dropping a connection
        whose reply was interrupted stay redis-py's (``send_packed_command``
        and ``read_response``).
        """
        pool = self._require_client().connection_pool
        conn = await pool.get_connection()
        try:
            await conn.send_packed_command(packed)
            return await conn.read_response()
        finally:
            await pool.release(conn)

    async def _eval_packed(self, script: Script, args: Sequence[bytes]) -> Any:
        """:meth:`_eval` through :func:`pack_command` and :meth:`_send_packed` (standalone)."""
        try:
            return await self._send_packed(pack_command((b"EVALSHA", script.sha.encode(), *args)))
        except rexc.NoScriptError:
            return await self._send_packed(pack_command((b"EVAL", script.source, *args)))

    async def _transaction(self, packed: list[bytes], count: int) -> list[Any]:
        """``MULTI``, ``count`` packed commands, ``EXEC``: one write, one pooled connection.

        Standalone only. Returns EXEC's replies (error replies as exception
        objects, in place). Every reply is read before anything is raised, so
        the connection stays in step; redis-py drops a connection whose read
        is interrupted (timeout, cancellation), so nothing half-read is reused.
        """
        pool = self._require_client().connection_pool
        conn = await pool.get_connection()
        try:
            await conn.send_packed_command([_MULTI, *packed, _EXEC])
            replies: list[Any] = []
            for _ in range(count + 2):
                try:
                    replies.append(await conn.read_response())
                except rexc.ResponseError as exc:
                    replies.append(exc)
        finally:
            await pool.release(conn)
        for reply in replies:
            if isinstance(reply, Exception):  # MULTI refused or EXECABORT
                raise reply
        return list(replies[-1])

    async def _staged(
        self, script: Script, stage: Sequence[tuple[bytes, bytes]], args: Sequence[bytes]
    ) -> Any:
        """Run ``script`` in a transaction right after an ``MSET`` of the staged values.

        ``stage`` holds ``(key, value)`` pairs; each value is stored behind
        the 32 placeholder bytes the script overwrites with the header. A
        final ``DEL`` of the staging keys removes whatever the script did not
        consume (a script error), so they never outlive the transaction.
        """
        mset = [b"*%d\r\n$4\r\nMSET\r\n" % (1 + 2 * len(stage))]
        for key, value in stage:
            mset.append(b"%s$%d\r\n%s" % (bulk(key), HEADER + len(value), BLANK_HEADER))
            mset.append(value)
            mset.append(b"\r\n")
        delete = pack_command((b"DEL", *(key for key, _ in stage)))
        for head in ((b"EVALSHA", script.sha.encode()), (b"EVAL", script.source)):
            replies = await self._transaction(
                [*mset, *pack_command((*head, *args)), *delete], 3
            )
            result = replies[1]
            if isinstance(result, rexc.NoScriptError) or (
                isinstance(result, rexc.ResponseError) and "NOSCRIPT" in str(result)
            ):
                continue
            if isinstance(result, Exception):
                raise result
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    # -- namespace registries ----------------------------------------------------------
    def _channel(self, ns: str) -> bytes:
        """The invalidation channel the write scripts publish on (empty: publish nothing)."""
        return self.layout.namespace(ns).channel if self.settings.invalidation else b""

    def _register_kind(self, ns: str, kind: str) -> Command:
        """``SADD`` of ``kind`` to the namespace's kind registry (a cluster's extra command)."""
        return Command("SADD", self.layout.namespace(ns).kinds, utf8(kind))

    async def _registered_kinds(self, ns: str) -> list[str]:
        members = await self._require_client().execute_command(
            "SMEMBERS", self.layout.namespace(ns).kinds
        )
        return sorted(text(member) for member in members)

    async def _series_registry(self, ns: str, prefix: str) -> list[str]:
        bounds = lex_range(prefix, None, False)
        assert bounds is not None
        raw = await self._require_client().execute_command(
            "ZRANGEBYLEX", self.layout.namespace(ns).series, *bounds
        )
        return [text(name) for name in raw]
