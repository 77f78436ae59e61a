"""Numeric counters on Redis: one hash of ``{field: float}`` per id.

``incr`` is ``HINCRBYFLOAT`` in a script that also records the id in the
kind's set of counter ids (and, on a standalone server, the kind in the
namespace registry), so it is exact and atomic under any number of writers.
It is never retried: after a lost reply its outcome is unknown.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import scripts
from .commands import RedisCommands
from .keys import utf8
from .wire import Command, script_call, text


class RedisCounters(RedisCommands):
    """The counter primitives of the Redis backend."""

    async def incr(self, ns: str, kind: str, id: str, field: str, amount: float = 1.0) -> float:
        """``HINCRBYFLOAT`` in a script that also records the id; never retried."""
        kind_keys = self.layout.kind(ns, kind)
        keys = [kind_keys.counters(id), kind_keys.counter_ids]
        if not self.is_cluster:  # the script registers the kind itself: one command
            keys.append(self.layout.namespace(ns).kinds)
        call = script_call(
            scripts.INCR, keys, [utf8(field), repr(float(amount)), utf8(id), utf8(kind)]
        )
        calls = [call] if not self.is_cluster else [self._register_kind(ns, kind), call]

        async def attempt() -> float:
            return float((await self._batch(calls, ordered=True))[-1])

        return await self._run("incr", attempt, idempotent=False)

    async def get_counters(
        self, ns: str, kind: str, ids: Sequence[str]
    ) -> dict[str, dict[str, float]]:
        """``HGETALL`` per id in one pipeline (one slot)."""
        unique = list(dict.fromkeys(ids))
        if not unique:
            return {}
        kind_keys = self.layout.kind(ns, kind)
        calls = [Command("HGETALL", kind_keys.counters(id)) for id in unique]

        async def attempt() -> dict[str, dict[str, float]]:
            out: dict[str, dict[str, float]] = {}
            replies = await self._batch(calls, ordered=False)
            for id, fields in zip(unique, replies, strict=True):
                if isinstance(fields, list):  # raw RESP2 reply when no callback applied
                    fields = dict(zip(fields[::2], fields[1::2], strict=True))
                if fields:
                    out[id] = {text(name): float(value) for name, value in fields.items()}
            return out

        return await self._run("get_counters", attempt, idempotent=True)

    async def delete_counters(self, ns: str, kind: str, id: str) -> bool:
        """``DEL`` of the counter hash plus its registry entry, atomically."""
        kind_keys = self.layout.kind(ns, kind)
        call = script_call(
            scripts.DELETE_COUNTERS, [kind_keys.counters(id), kind_keys.counter_ids], [utf8(id)]
        )

        async def attempt() -> bool:
            return int(await self._execute(call)) > 0

        return await self._run("delete_counters", attempt, idempotent=True)
