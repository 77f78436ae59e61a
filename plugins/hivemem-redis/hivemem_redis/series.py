"""Append-only series on Redis: one sorted set per series, scored by timestamp.

A member is the entry's 8-byte big-endian ``seq`` (from a per-series
``HINCRBY``) followed by its value, so entries with equal ``ts`` order by
``seq``. Every series has a cluster slot of its own; the namespace's series
registry lives in another, so writers register the name before *and* after
their write and :meth:`RedisSeries.delete_series` re-registers a name an
append raced into. ``rewrite_series`` replaces entry values in place with a
script that compares each entry's stored value (``ZSCORE`` of
``seq + old``) before it swaps the member, keeping the score.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Sequence
from typing import Any

from hivemem.plugin import FrameError, SeriesEntry

from . import scripts
from .commands import RedisCommands
from .keys import utf8
from .wire import Command, score_arg, score_pairs, script_call

#: changes one rewrite_series script handles at most
REWRITE_CHANGES = 1000
#: old plus new value bytes after which rewrite_series starts another script
REWRITE_BYTES = 16 * 1024 * 1024
#: the first seq an 8-byte series member prefix cannot hold
_NO_SEQ = 1 << 64


def _entries(reply: Sequence[Any], series: str) -> list[SeriesEntry]:
    """Series entries from a ``WITHSCORES`` reply; a member too short for its seq is refused."""
    out = []
    for member, score in score_pairs(reply):
        if len(member) < 8:
            raise FrameError(
                f"redis series entry is {len(member)} bytes, shorter than its 8-byte seq",
                f"series:{series}",
            )
        out.append(SeriesEntry(float(score), int.from_bytes(member[:8], "big"), bytes(member[8:])))
    return out


class RedisSeries(RedisCommands):
    """The series primitives (and ``rewrite_series``) of the Redis backend."""

    def _registered_around(self, ns: str, series: str, call: Command) -> list[Command]:
        """Register the name before *and* after the write (see delete_series)."""
        register = Command("ZADD", self.layout.namespace(ns).series, 0, utf8(series))
        return [register, call, register]

    async def append(
        self, ns: str, series: str, value: bytes, *, ts: float | None = None
    ) -> SeriesEntry:
        """One ``append`` script (per-series seq from ``HINCRBY``); never retried."""
        ts = time.time() if ts is None else float(ts)
        value = bytes(value)
        keys = self.layout.series(ns, series)
        call = script_call(scripts.APPEND, [keys.entries, keys.meta], [score_arg(ts), value])
        calls = self._registered_around(ns, series, call)

        async def attempt() -> SeriesEntry:
            _, seq, _ = await self._batch(calls, ordered=True)
            return SeriesEntry(ts, int(seq), value)

        return await self._run("append", attempt, idempotent=False)

    async def replace_series(
        self, ns: str, series: str, entries: Sequence[tuple[float, bytes]]
    ) -> None:
        """One ``replace_series`` script: the old entries go and the new arrive atomically."""
        if not entries:
            await self.delete_series(ns, series)
            return
        keys = self.layout.series(ns, series)
        argv: list[Any] = []
        for ts, value in entries:
            argv += [score_arg(ts), bytes(value)]
        calls = self._registered_around(
            ns, series, script_call(scripts.REPLACE_SERIES, [keys.entries, keys.meta], argv)
        )

        async def attempt() -> None:
            await self._batch(calls, ordered=True)

        await self._run("replace_series", attempt, idempotent=True)

    async def rewrite_series(
        self, ns: str, series: str, changes: Sequence[tuple[int, bytes, bytes]]
    ) -> int:
        """Replace entry values in place, compare-and-set by value; return how many.

        One ``rewrite_series`` script per chunk of at most 1000 changes and
        16 MiB of old and new values (a script blocks the server while it
        runs): a call that fits one chunk is atomic, a longer one is atomic
        per chunk, and the chunks run in order in one round trip (one per
        chunk on a cluster; the series' keys share one slot). An entry keeps
        its score (ts) and its seq; a change whose entry is gone or holds
        another value is skipped; a seq no entry can have (negative, 64 bits
        or more) is skipped without asking the server. Chained changes of one
        entry (``a -> b``, then ``b -> c``) apply in order and each counts.

        Nothing is published, as for ``append`` and ``replace_series``: no
        cache holds series entries. Never retried: a change that was applied
        before a lost reply no longer matches its ``old`` value, so a retry
        would report a wrong count.
        """
        calls = self._rewrite_chunks(ns, series, changes)
        if not calls:
            return 0

        async def attempt() -> int:
            return sum(int(n) for n in await self._batch(calls, ordered=True))

        return await self._run("rewrite_series", attempt, idempotent=False)

    def _rewrite_chunks(
        self, ns: str, series: str, changes: Sequence[tuple[int, bytes, bytes]]
    ) -> list[Command]:
        """One ``rewrite_series`` script call per chunk of changes (see rewrite_series)."""
        series_keys = self.layout.series(ns, series)
        keys = [series_keys.entries, series_keys.meta]
        calls: list[Command] = []
        argv: list[bytes] = []
        size = 0
        for seq, old, new in changes:
            seq = operator.index(seq)
            if not 0 <= seq < _NO_SEQ:
                continue
            old, new = bytes(old), bytes(new)
            argv += (seq.to_bytes(8, "big"), old, new)
            size += len(old) + len(new)
            if len(argv) >= 3 * REWRITE_CHANGES or size >= REWRITE_BYTES:
                calls.append(script_call(scripts.REWRITE_SERIES, keys, argv))
                argv, size = [], 0
        if argv:
            calls.append(script_call(scripts.REWRITE_SERIES, keys, argv))
        return calls

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
        """``ZRANGEBYSCORE`` (or ``ZREVRANGEBYSCORE`` for ``latest``) with ``LIMIT``."""
        if limit is not None and limit <= 0:
            return []
        key = self.layout.series(ns, series).entries
        low = "-inf" if start is None else score_arg(start)
        high = "+inf" if end is None else "(" + score_arg(end)
        tail: tuple[Any, ...] = ("WITHSCORES",)
        if limit is not None:
            tail += ("LIMIT", 0, int(limit))
        if latest:
            args: tuple[Any, ...] = ("ZREVRANGEBYSCORE", key, high, low, *tail)
        else:
            args = ("ZRANGEBYSCORE", key, low, high, *tail)

        async def attempt() -> list[SeriesEntry]:
            entries = _entries(await self._require_client().execute_command(*args), series)
            if latest:
                entries.reverse()
            return entries

        return await self._run("read_series", attempt, idempotent=True)

    async def series_names(self, ns: str, prefix: str = "") -> list[str]:
        """``ZRANGEBYLEX`` over the namespace's series registry, keeping non-empty series."""

        async def attempt() -> list[str]:
            names = await self._series_registry(ns, prefix)
            calls = [Command("EXISTS", self.layout.series(ns, name).entries) for name in names]
            found = await self._batch(calls, ordered=False)
            return [name for name, exists in zip(names, found, strict=True) if int(exists)]

        return await self._run("series_names", attempt, idempotent=True)

    async def delete_series(self, ns: str, series: str) -> int:
        """Delete the entries, then unregister the name unless an append raced in.

        Appenders register the name before and after their write, so "remove
        the name, then re-add it if entries exist again" never loses a live
        series even on Redis Cluster, where the registry lives on another slot.
        """
        keys = self.layout.series(ns, series)
        registry = self.layout.namespace(ns).series
        name = utf8(series)
        calls = [
            script_call(scripts.DELETE_SERIES, [keys.entries, keys.meta], []),
            Command("ZREM", registry, name),
            Command("EXISTS", keys.entries),
        ]

        async def attempt() -> int:
            removed, _, again = await self._batch(calls, ordered=True)
            if int(again):
                await self._require_client().execute_command("ZADD", registry, 0, name)
            return int(removed)

        return await self._run("delete_series", attempt, idempotent=True)
