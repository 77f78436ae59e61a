"""Records on Redis: read, write, delete and scan one ``(namespace, kind)``.

A record is one string (see :mod:`hivemem_redis.record_format`): ``get`` is
a ``GET`` and ``get_many`` an ``MGET``. Every record write is one Lua script
in one slot (atomic, also on Redis Cluster); batches are one script: one
round trip. ``put_many`` stages large values with ``MSET`` inside a
``MULTI``/``EXEC`` so they never pass through Lua (see scripts.py). The hot
paths (``get``, ``put``, ``put_many``) pack their RESP commands themselves on
a standalone server, with the per-kind parts packed once
(:class:`KindContext`).

``scan`` walks the kind's lexicographic index (``ZRANGEBYLEX``) inside one
script that also reads the records and removes index entries of expired
records it meets; ``list_ids``/``list_records`` are the base class's
defaults over it (the same single script per step).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from hivemem.plugin import ConflictError, Record, ValueTooLarge
from redis import exceptions as rexc

from . import scripts
from .commands import RedisCommands
from .keys import KindKeys, escape, utf8
from .record_format import (
    BLANK_HEADER,
    HEADER,
    MAX_VALUE_SIZE,
    parse_record,
    uncomparable_record,
)
from .wire import (
    PUT_HEAD,
    bulk,
    lex_range,
    script_call,
    text,
    ttl_millis,
)

#: index entries a listing script examines before it yields the server
SCAN_STEP = 1000
#: values from this size on skip Lua on a standalone server (staged, see scripts.py)
STAGE_MIN = 8 * 1024
#: (ns, kind) pairs whose keys a backend keeps ready
_KIND_CACHE = 1024


class KindContext:
    """Per-``(ns, kind)`` keys and constant script arguments (built once, then cached)."""

    __slots__ = (
        "channel",
        "client_id",
        "keys",
        "kind",
        "packed_index_expiry",
        "packed_publish",
        "put_keys",
        "record_prefix",
        "registry",
    )

    def __init__(
        self, keys: KindKeys, registry: bytes | None, channel: bytes, client_id: bytes, kind: bytes
    ) -> None:
        self.keys = keys
        #: the kind registry the standalone write scripts update; None on a cluster
        self.registry = registry
        self.channel = channel
        self.client_id = client_id
        self.kind = kind
        self.record_prefix = keys.base + b"r:"
        #: keys after the record key in the put script (idx, exp[, kinds registry])
        self.put_keys: tuple[bytes, ...] = (keys.index, keys.expiry) + (
            (registry,) if registry is not None else ()
        )
        #: packed pieces of the standalone put command that never change for this kind
        self.packed_index_expiry = bulk(keys.index) + bulk(keys.expiry)
        self.packed_publish = bulk(channel) + bulk(client_id) + bulk(kind)


def _refused(result: int, kind: str, id: str, expected_version: int | None) -> Exception:
    """The error for a put script's reply <= 0: a version mismatch or a corrupt header."""
    assert expected_version is not None
    if result == 0:
        return uncomparable_record(kind, id)
    return ConflictError(f"{kind}/{id}", expected_version, (-1 - result) or None)


class RedisRecords(RedisCommands):
    """The record primitives (and a faster ``get``) of the Redis backend."""

    def __init__(self, url: str = "redis://localhost:6379/0", **options: Any) -> None:
        super().__init__(url, **options)
        self._client_id_bytes = self.client_id.encode("ascii")
        self._kind_contexts: dict[tuple[str, str], KindContext] = {}

    def _kind(self, ns: str, kind: str) -> KindContext:
        """Keys and constant script arguments of ``(ns, kind)``, cached (bounded)."""
        context = self._kind_contexts.get((ns, kind))
        if context is None:
            if len(self._kind_contexts) >= _KIND_CACHE:
                self._kind_contexts.clear()
            registry = None if self.is_cluster else self.layout.namespace(ns).kinds
            context = self._kind_contexts[(ns, kind)] = KindContext(
                self.layout.kind(ns, kind),
                registry,
                self._channel(ns),
                self._client_id_bytes,
                utf8(kind),
            )
        return context

    # -- reads ---------------------------------------------------------------------------
    async def get(self, ns: str, kind: str, id: str) -> Record | None:
        """``GET`` of the record string (Redis hides it once expired)."""
        # overrides the default (get_many): one pre-packed GET, no MGET reply list
        context = self._kind(ns, kind)
        key = context.record_prefix + escape(id)
        if context.registry is None:  # cluster: redis-py routes the key to its master

            async def attempt() -> Record | None:
                reply = await self._require_client().execute_command("GET", key)
                return parse_record(reply, kind, id)

        else:
            packed = (b"*2\r\n$3\r\nGET\r\n" + bulk(key),)

            async def attempt() -> Record | None:
                return parse_record(await self._send_packed(packed), kind, id)

        return await self._run("get", attempt, idempotent=True)

    async def get_many(self, ns: str, kind: str, ids: Sequence[str]) -> dict[str, Record]:
        """One ``MGET``: every record of one kind shares a slot, also on a cluster."""
        unique = list(dict.fromkeys(ids))
        if not unique:
            return {}
        record_prefix = self._kind(ns, kind).record_prefix
        keys = [record_prefix + escape(id) for id in unique]

        async def attempt() -> dict[str, Record]:
            rows = await self._require_client().execute_command("MGET", *keys)
            out: dict[str, Record] = {}
            for id, raw in zip(unique, rows, strict=True):
                record = parse_record(raw, kind, id)
                if record is not None:
                    out[id] = record
            return out

        return await self._run("get_many", attempt, idempotent=True)

    # -- writes --------------------------------------------------------------------------
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
        """One ``put`` script: version, TTL, index, CAS, publish (and the kind registry).

        On a cluster the namespace's kind registry lives in another slot, so it
        is updated first by its own command (the registry may only ever hold
        more kinds than exist, never fewer).
        """
        if type(value) is not bytes:
            value = bytes(value)
        if len(value) > MAX_VALUE_SIZE:
            raise ValueTooLarge(f"{kind}/{id}", len(value), MAX_VALUE_SIZE, "redis")
        context = self._kind(ns, kind)
        expected = "" if expected_version is None else str(int(expected_version))
        if context.registry is None:
            attempt = self._put_on_cluster(ns, kind, context, id, value, ttl_millis(ttl), expected)
        else:
            attempt = self._put_standalone(context, id, value, ttl_millis(ttl), expected)
        version = await self._run("put", attempt, idempotent=expected_version is None)
        if version <= 0:
            raise _refused(version, kind, id, expected_version)
        return version

    def _put_on_cluster(
        self,
        ns: str,
        kind: str,
        context: KindContext,
        id: str,
        value: bytes,
        ttl_ms: str,
        expected: str,
    ) -> Callable[[], Awaitable[int]]:
        """One put attempt on a cluster: register the kind first (another slot), then write."""
        id_bytes = utf8(id)
        keys = context.keys
        calls = [
            self._register_kind(ns, kind),
            script_call(
                scripts.PUT,
                [context.record_prefix + escape(id_bytes), keys.index, keys.expiry],
                (id_bytes, BLANK_HEADER + value, ttl_ms, expected, context.channel,
                 context.client_id, context.kind),
            ),
        ]

        async def attempt() -> int:
            return int((await self._batch(calls, ordered=True))[-1])

        return attempt

    def _put_standalone(
        self, context: KindContext, id: str, value: bytes, ttl_ms: str, expected: str
    ) -> Callable[[], Awaitable[int]]:
        """One put attempt on a standalone server: one packed script that also registers."""
        id_bytes = utf8(id)
        record_key = context.record_prefix + escape(id_bytes)
        registry = context.registry
        assert registry is not None
        packed = (
            b"".join((
                PUT_HEAD, bulk(record_key), context.packed_index_expiry, bulk(registry),
                bulk(id_bytes), b"$%d\r\n" % (HEADER + len(value)), BLANK_HEADER,
            )),
            value,
            b"".join((
                b"\r\n", bulk(ttl_ms.encode()), bulk(expected.encode()), context.packed_publish
            )),
        )

        async def attempt() -> int:
            try:
                return int(await self._send_packed(packed))
            except rexc.NoScriptError:
                return int(
                    await self._require_client().execute_command(
                        "EVAL", scripts.PUT.source, 4, record_key, context.keys.index,
                        context.keys.expiry, registry, id_bytes, BLANK_HEADER + value,
                        ttl_ms, expected, context.channel, context.client_id, context.kind,
                    )
                )

        return attempt

    async def put_many(
        self, ns: str, kind: str, items: Mapping[str, bytes], *, ttl: float | None = None
    ) -> None:
        """One ``put_many`` script: atomic, one round trip (two on a cluster)."""
        if not items:
            return
        context = self._kind(ns, kind)
        keys, argv, stage = self._put_many_args(kind, context, items, ttl_millis(ttl))
        if stage:  # standalone, large values: they bypass Lua
            args = (b"%d" % len(keys), *keys, *argv)

            async def attempt() -> None:
                await self._staged(scripts.PUT_MANY, stage, args)

        elif context.registry is not None:  # standalone
            args = (b"%d" % len(keys), *keys, *argv)

            async def attempt() -> None:
                await self._eval_packed(scripts.PUT_MANY, args)

        else:  # cluster: register the kind first (another slot)
            calls = [self._register_kind(ns, kind), script_call(scripts.PUT_MANY, keys, argv)]

            async def attempt() -> None:
                await self._batch(calls, ordered=True)

        await self._run("put_many", attempt, idempotent=True)

    @staticmethod
    def _put_many_args(
        kind: str, context: KindContext, items: Mapping[str, bytes], ttl_ms: str
    ) -> tuple[list[bytes], list[bytes], list[tuple[bytes, bytes]]]:
        """Keys, arguments and staged ``(key, value)`` pairs of one ``put_many`` script.

        On a standalone server a value of :data:`STAGE_MIN` bytes or more is
        staged: its argument is empty and its staging key follows the record keys.
        """
        standalone = context.registry is not None
        keys: list[bytes] = list(context.put_keys)
        argv: list[bytes] = [
            ttl_ms.encode(), context.channel, context.client_id, context.kind,
            b"1" if standalone else b"0",
        ]
        stage: list[tuple[bytes, bytes]] = []
        for id, value in items.items():
            if type(value) is not bytes:
                value = bytes(value)
            if len(value) > MAX_VALUE_SIZE:
                raise ValueTooLarge(f"{kind}/{id}", len(value), MAX_VALUE_SIZE, "redis")
            id_bytes = utf8(id)
            keys.append(context.record_prefix + escape(id_bytes))
            argv.append(id_bytes)
            if standalone and len(value) >= STAGE_MIN:
                stage.append((context.keys.base + b"s:%d" % len(stage), value))
                argv.append(b"")
            else:
                argv.append(BLANK_HEADER + value)
        keys += (key for key, _ in stage)
        return keys, argv, stage

    async def delete(
        self, ns: str, kind: str, id: str, *, expected_version: int | None = None
    ) -> bool:
        """One ``delete`` script (CAS check, record, index and expiry entries, publish)."""
        context = self._kind(ns, kind)
        id_bytes = utf8(id)
        expected = "" if expected_version is None else str(int(expected_version))
        args = (
            3, context.record_prefix + escape(id_bytes), context.keys.index, context.keys.expiry,
            id_bytes, expected, context.channel, context.client_id, context.kind,
        )

        async def attempt() -> int:
            return int(await self._eval(scripts.DELETE, args))

        gone = await self._run("delete", attempt, idempotent=expected_version is None)
        if gone < 0:
            assert expected_version is not None
            raise ConflictError(f"{kind}/{id}", expected_version, (-1 - gone) or None)
        if gone == 2:
            raise uncomparable_record(kind, id)
        return gone == 1

    async def delete_many(self, ns: str, kind: str, ids: Sequence[str]) -> int:
        """One ``delete_many`` script: atomic, one round trip."""
        unique = [utf8(id) for id in dict.fromkeys(ids)]
        if not unique:
            return 0
        context = self._kind(ns, kind)
        call = script_call(
            scripts.DELETE_MANY,
            [
                context.keys.index,
                context.keys.expiry,
                *(context.record_prefix + escape(id) for id in unique),
            ],
            [context.channel, context.client_id, context.kind, *unique],
        )

        async def attempt() -> int:
            return int(await self._execute(call))

        return await self._run("delete_many", attempt, idempotent=True)

    # -- listing -------------------------------------------------------------------------
    async def scan(
        self,
        ns: str,
        kind: str,
        prefix: str = "",
        *,
        limit: int | None = None,
        cursor: str | None = None,
        reverse: bool = False,
        values: bool = True,
    ) -> list[tuple[str, Record | None]]:
        """``ZRANGEBYLEX`` over the kind's index, skipping (and removing) expired ids.

        One ``list`` script per step of at most 1000 index entries, reading
        the records in the same script when ``values``.
        """
        if limit is not None and limit <= 0:
            return []
        bounds = lex_range(prefix, cursor, reverse)
        if bounds is None:
            return []
        keys = self.layout.kind(ns, kind)

        async def attempt() -> list[tuple[str, Record | None]]:
            out: list[tuple[str, Record | None]] = []
            low, high = bounds
            while True:
                want = SCAN_STEP if limit is None else min(limit - len(out), SCAN_STEP)
                reply = await self._execute(
                    script_call(
                        scripts.LIST,
                        [keys.index, keys.expiry],
                        [low, high, want, int(reverse), int(values), SCAN_STEP],
                    )
                )
                exhausted, last, items = int(reply[0]), reply[1], reply[2:]
                _collect(out, items, kind, values)
                if exhausted or (limit is not None and len(out) >= limit) or not last:
                    return out
                if reverse:
                    high = b"(" + last
                else:
                    low = b"(" + last

        return await self._run("list", attempt, idempotent=True)


def _collect(
    out: list[tuple[str, Record | None]], items: Sequence[Any], kind: str, values: bool
) -> None:
    """Append one ``list`` script step's ids (and records when ``values``) to ``out``."""
    if values:
        for index in range(0, len(items), 2):
            id = text(items[index])
            out.append((id, parse_record(items[index + 1], kind, id)))
    else:
        out.extend((text(raw), None) for raw in items)
