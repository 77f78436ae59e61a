"""Whole-namespace operations on Redis: ``kinds``, ``namespace_stats``, ``drop_namespace``.

They walk the namespace's registries (the set of kinds that ever held a
record or counter, the sorted set of series names), never the keyspace:
``KEYS`` and ``SCAN`` are used nowhere. Each kind is handled by slot-local
scripts of at most 1000 records per call.
"""

from __future__ import annotations

import json

from hivemem.plugin import KindStats, NamespaceStats, SeriesStats

from . import scripts
from .commands import RedisCommands
from .keys import KindKeys, utf8
from .records import SCAN_STEP
from .wire import Command, script_call

#: records a drop/stats script handles per call
STEP_RECORDS = 1000


class RedisNamespace(RedisCommands):
    """``kinds``, a script-based ``namespace_stats`` and ``drop_namespace``."""

    async def kinds(self, ns: str) -> list[str]:
        """Kinds in the namespace registry that still hold a live record (one probe each)."""

        async def attempt() -> list[str]:
            registered = await self._registered_kinds(ns)
            calls = []
            for kind in registered:
                kind_keys = self.layout.kind(ns, kind)
                calls.append(
                    script_call(
                        scripts.LIST,
                        [kind_keys.index, kind_keys.expiry],
                        [b"-", b"+", 1, 0, 0, SCAN_STEP],
                    )
                )
            replies = await self._batch(calls, ordered=False)
            return [
                kind for kind, reply in zip(registered, replies, strict=True) if len(reply) > 2
            ]

        return await self._run("kinds", attempt, idempotent=True)

    async def _kind_stats(self, kind_keys: KindKeys) -> tuple[int, int]:
        """Count and stored bytes of one kind's live records, 1000 index entries a script."""
        low, count, size = b"-", 0, 0
        while True:
            done, last, step_count, step_bytes = await self._execute(
                script_call(
                    scripts.KIND_STATS, [kind_keys.index, kind_keys.expiry], [low, STEP_RECORDS]
                )
            )
            count += int(step_count)
            size += int(step_bytes)
            if int(done) or not last:
                return count, size
            low = b"(" + last

    async def _series_stats(self, ns: str) -> dict[str, SeriesStats]:
        """Length, bytes and span of every registered non-empty series (one script each)."""
        names = await self._series_registry(ns, "")
        calls = []
        for name in names:
            series_keys = self.layout.series(ns, name)
            calls.append(
                script_call(scripts.SERIES_STATS, [series_keys.entries, series_keys.meta], [])
            )
        series: dict[str, SeriesStats] = {}
        for name, reply in zip(names, await self._batch(calls, ordered=False), strict=True):
            if int(reply[0]):
                series[name] = SeriesStats(
                    int(reply[0]), int(reply[1]), float(reply[2]), float(reply[3])
                )
        return series

    async def namespace_stats(self, ns: str) -> NamespaceStats:
        """Walks each registered kind's index in steps of 1000 and each series' summary."""
        # overrides the default (scan of every record): the scripts sum on the server

        async def attempt() -> NamespaceStats:
            kinds: dict[str, KindStats] = {}
            for kind in await self._registered_kinds(ns):
                count, size = await self._kind_stats(self.layout.kind(ns, kind))
                if count:
                    kinds[kind] = KindStats(count, size)
            return NamespaceStats(kinds, await self._series_stats(ns))

        return await self._run("namespace_stats", attempt, idempotent=True)

    async def _drop_kind(self, ns: str, kind: str) -> None:
        """Delete one kind's records and counters, then keep its registration honest."""
        client = self._require_client()
        kind_keys = self.layout.kind(ns, kind)
        registry = self.layout.namespace(ns).kinds
        drop = script_call(
            scripts.DROP_KIND,
            [kind_keys.index, kind_keys.expiry, kind_keys.counter_ids],
            [kind_keys.record_prefix, kind_keys.counter_prefix, STEP_RECORDS],
        )
        while not int(await self._execute(drop)):
            pass
        # unregister, then re-register if a writer created data meanwhile
        # (a write that creates a record or counter registers the kind)
        await client.execute_command("SREM", registry, utf8(kind))
        left = await self._batch(
            [Command("EXISTS", kind_keys.index), Command("EXISTS", kind_keys.counter_ids)],
            ordered=True,
        )
        if any(int(exists) for exists in left):
            await client.execute_command("SADD", registry, utf8(kind))

    async def drop_namespace(self, ns: str) -> None:
        """Delete every kind and series listed in the namespace registries (admin operation).

        Walks the registries (never the keyspace) and deletes in slot-local
        scripts of 1000 records each. Writers racing with a drop of the same
        namespace may leave their own writes behind (still registered, so
        ``kinds()`` and the next drop see them).
        """
        namespace_keys = self.layout.namespace(ns)

        async def attempt() -> None:
            for kind in await self._registered_kinds(ns):
                await self._drop_kind(ns, kind)
            names = await self._series_registry(ns, "")
            calls = []
            for name in names:
                series_keys = self.layout.series(ns, name)
                calls.append(
                    script_call(scripts.DELETE_SERIES, [series_keys.entries, series_keys.meta], [])
                )
            await self._batch(calls, ordered=False)
            client = self._require_client()
            if names:
                await client.execute_command(
                    "ZREM", namespace_keys.series, *(utf8(name) for name in names)
                )
            if self.settings.invalidation:
                message = json.dumps([self.client_id, None, None])
                await client.execute_command("PUBLISH", namespace_keys.channel, message)

        await self._run("drop_namespace", attempt, idempotent=True)
