"""``RedisBackend``: the hivemem backend contract on Redis and Redis Cluster.

See ``docs/backends/redis.md`` for the full story; in short:

* Keys follow :mod:`hivemem_redis.keys` (escaped components, hash tags per
  ``(ns, kind)``, per series and per namespace registry).
* A record is one string (32-byte header, then the value): ``get`` is a
  ``GET`` and ``get_many`` an ``MGET``. Every record write is one Lua script
  in one slot (atomic, also on Redis Cluster); batches are one script: one
  round trip. ``put_many`` stages large values with ``MSET`` inside a
  ``MULTI``/``EXEC`` so they never pass through Lua (see scripts.py).
* The hot paths (``get``, ``put``, ``put_many``) pack their RESP commands
  themselves on a standalone server; redis-py's generic packer cost more than
  the rest of the client-side work.
* Prefix listing walks a lexicographic index (``ZRANGEBYLEX``); series are
  sorted sets scored by timestamp. ``KEYS``/``SCAN`` are never used.
* ``rewrite_series`` replaces entry values in place with a script that
  compares each entry's stored value (``ZSCORE`` of ``seq + old``) before it
  swaps the member, keeping the score.
* A stored record string is input: one too short for its header (the empty
  string too) or with a non-hex header raises ``FrameError`` naming
  ``kind/id`` on every read path; write scripts treat such a header as no
  version (compare-and-set refuses it, an unconditional write replaces it).
* Expired records vanish from reads at once (Redis expires the record string);
  their index entries are removed by the listing that meets them and, a few
  at a time, by every write to the same kind.
* Retries (with exponential backoff) only for idempotent calls; ``incr``,
  ``append``, ``rewrite_series`` and compare-and-set writes are never
  retried. redis-py's own retries are switched off so nothing below retries
  behind our back.
* redis-py discards a connection whose reply is still in flight when the
  awaiting task is cancelled (``disconnect_on_error`` on ``BaseException``),
  so a cancelled call can never hand its reply to the next caller; the
  tests check it against a real server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import operator
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import redis.asyncio as aioredis
from hivemem.backend import (
    Backend,
    Capabilities,
    KindStats,
    NamespaceStats,
    Record,
    SeriesEntry,
    SeriesStats,
    prefix_upper_bytes,
)
from hivemem.errors import (
    BackendUnavailable,
    ConflictError,
    FrameError,
    HivememError,
    ValueTooLarge,
)
from redis import exceptions as rexc

from . import scripts
from .invalidation import InvalidationHub
from .keys import KeyLayout, KindKeys, escape, utf8
from .scripts import Script
from .settings import RedisSettings, parse, passthrough_kwargs

log = logging.getLogger("hivemem.redis")
T = TypeVar("T")

#: Redis refuses bulk strings above proto-max-bulk-len (512 MiB by default)
MAX_VALUE_SIZE = 512 * 1024 * 1024 - 1024
#: index entries a listing script examines before it yields the server
_SCAN_STEP = 1000
#: records a drop/stats script handles per call
_BATCH = 1000
#: old plus new value bytes after which rewrite_series starts another script
_REWRITE_BYTES = 16 * 1024 * 1024
#: the first seq an 8-byte series member prefix cannot hold
_NO_SEQ = 1 << 64
#: bytes of the record header (version and expiry, 16 hex digits each)
HEADER = 32
#: what the client puts in front of a value; the write script overwrites it with the header
_BLANK = b"0" * HEADER
#: values from this size on skip Lua on a standalone server (staged, see scripts.py)
STAGE_MIN = 8 * 1024
#: (ns, kind) pairs whose keys a backend keeps ready
_KIND_CACHE = 1024

_CONN_ERRORS: tuple[type[BaseException], ...] = (
    rexc.ConnectionError,
    rexc.TimeoutError,
    rexc.ClusterDownError,
    rexc.TryAgainError,
    OSError,
)


class _Call:
    """One command for :meth:`RedisBackend._batch`: a raw command or a script call."""

    __slots__ = ("args", "script")

    def __init__(self, *args: Any, script: Script | None = None) -> None:
        self.script = script
        self.args = args

    def command(self, use_sha: bool = True) -> tuple[Any, ...]:
        if self.script is None:
            return self.args
        keys, argv = self.args
        head = ("EVALSHA", self.script.sha) if use_sha else ("EVAL", self.script.source)
        return (*head, len(keys), *keys, *argv)


def _script(script: Script, keys: Sequence[bytes], argv: Sequence[Any]) -> _Call:
    return _Call(list(keys), list(argv), script=script)


def _ms(ttl: float | None) -> str:
    if ttl is None:
        return ""
    if not ttl > 0:
        raise ValueError(f"ttl must be > 0 seconds, got {ttl!r}")
    return str(max(1, round(ttl * 1000)))


def _bulk(data: bytes) -> bytes:
    """One RESP bulk string."""
    return b"$%d\r\n%s\r\n" % (len(data), data)


def _evalsha_head(script: Script, nargs: int, nkeys: int) -> bytes:
    """The packed start of ``EVALSHA sha nkeys`` for a command of ``nargs`` arguments."""
    return b"*%d\r\n" % (nargs + 3) + _bulk(b"EVALSHA") + _bulk(script.sha.encode()) + _bulk(
        b"%d" % nkeys
    )


#: EVALSHA put with 4 keys and 7 arguments, packed once
_PUT_HEAD = _evalsha_head(scripts.PUT, 11, 4)
#: arguments at least this long are written as chunks of their own, never copied
_BIG = 4096


def _pack(args: Sequence[bytes], out: list[bytes] | None = None) -> list[bytes]:
    """Pack one command of bytes arguments as RESP chunks (appended to ``out``).

    About 10x faster than redis-py's generic packer for long argument lists;
    long arguments become chunks of their own.
    """
    out = [] if out is None else out
    buf = [b"*%d\r\n" % len(args)]
    for arg in args:
        if len(arg) >= _BIG:
            buf.append(b"$%d\r\n" % len(arg))
            out.append(b"".join(buf))
            out.append(arg)
            buf = [b"\r\n"]
        else:
            buf.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    out.append(b"".join(buf))
    return out


#: the low 64 bits of the parsed header (the expiry in ms)
_LOW64 = (1 << 64) - 1


def _parse(raw: bytes | None, kind: str, id: str) -> Record | None:
    """A record from its stored string: 16 hex digits of version, 16 of expiry ms, value.

    None when Redis has no such key. A stored string too short for its header
    (the empty string included) or a header that is not hex digits raises
    :class:`~hivemem.errors.FrameError` naming ``kind/id``: a store is input,
    not memory. ``isalnum`` shuts out what ``int`` would also accept (spaces,
    signs, ``_``); ``int`` then refuses every other non-hex letter. One
    ``int`` over all 32 digits costs what the two 16-digit ones used to.
    """
    if raw is None:
        return None
    h = raw[:HEADER]
    try:
        if len(h) != HEADER or not h.isalnum():
            raise ValueError
        x = int(h, 16)
    except ValueError:
        raise _corrupt(raw, kind, id) from None
    e = x & _LOW64
    return Record(raw[HEADER:], x >> 64, e / 1000 if e else None)


def _corrupt(raw: bytes, kind: str, id: str) -> FrameError:
    """The error for a stored record string whose header cannot be read.

    It never quotes the stored bytes: they may be (part of) a plaintext value.
    """
    if len(raw) < HEADER:
        what = f"is {len(raw)} bytes, shorter than its {HEADER}-byte header"
    else:
        what = f"has a header that is not {HEADER} hex digits"
    return FrameError(f"redis record string {what}", f"{kind}/{id}")


def _uncomparable(kind: str, id: str) -> FrameError:
    """The error of a compare-and-set write that met a record with a corrupt header."""
    return FrameError(
        "redis record header is corrupt, so its version cannot be compared; "
        "an unconditional put or delete replaces the record",
        f"{kind}/{id}",
    )


class _KindCtx:
    """Per-``(ns, kind)`` keys and constant script arguments (built once, then cached)."""

    __slots__ = ("channel", "cid", "kind", "kk", "put_keys", "put_mid", "put_tail", "registry")

    def __init__(
        self, kk: KindKeys, registry: bytes | None, channel: bytes, cid: bytes, kind: bytes
    ) -> None:
        self.kk = kk
        self.registry = registry
        self.channel = channel
        self.cid = cid
        self.kind = kind
        #: keys after the record key in the put script (idx, exp[, kinds registry])
        self.put_keys: tuple[bytes, ...] = (kk.index, kk.expiry) + (
            (registry,) if registry is not None else ()
        )
        #: packed pieces of the standalone put command that never change for this kind
        self.put_mid = _bulk(kk.index) + _bulk(kk.expiry)
        self.put_tail = _bulk(channel) + _bulk(cid) + _bulk(kind)


def _ts(value: float) -> str:
    return repr(float(value))


def _pairs(reply: Sequence[Any]) -> list[tuple[Any, Any]]:
    """(member, score) pairs from a WITHSCORES reply, flat or already paired by redis-py."""
    if reply and isinstance(reply[0], list | tuple):
        return [(m, sc) for m, sc in reply]
    return list(zip(reply[::2], reply[1::2], strict=True))


def _s(raw: bytes) -> str:
    return raw.decode("utf-8")


class RedisBackend(Backend):
    """Redis / Redis Cluster backend; see the module docstring and docs/backends/redis.md."""

    name: ClassVar[str] = "redis"
    capabilities: ClassVar[Capabilities] = Capabilities(
        persistent=True,
        shared=True,
        max_value_size=MAX_VALUE_SIZE,
        supports_series_rewrite=True,
    )

    def __init__(self, url: str = "redis://localhost:6379/0", **options: Any) -> None:
        self.settings: RedisSettings = parse(url, options)
        self.layout = KeyLayout(self.settings.prefix)
        self.client_id = uuid.uuid4().hex
        self._cid = self.client_id.encode("ascii")
        self._kinds: dict[tuple[str, str], _KindCtx] = {}
        self._client: Any = self.settings.client
        self._owns_client = self._client is None
        self._hub: InvalidationHub | None = None
        self._open_lock: asyncio.Lock | None = None
        self._closed = False

    def __repr__(self) -> str:
        kind = "cluster" if self.settings.cluster else "redis"
        return f"RedisBackend({kind} {self.settings.label}, prefix={self.settings.prefix!r})"

    @property
    def label(self) -> str:
        """``host:port`` (or socket path / node list) used in errors; never a credential."""
        return self.settings.label

    @property
    def invalidation_stats(self) -> dict[str, int]:
        """Invalidation listener counters: ``reconnects`` and ``delivered`` callbacks."""
        hub = self._hub
        if hub is None:
            return {"reconnects": 0, "delivered": 0}
        return {"reconnects": hub.reconnects, "delivered": hub.delivered}

    @property
    def is_cluster(self) -> bool:
        """True for ``redis+cluster://``."""
        return self.settings.cluster

    # -- connection ----------------------------------------------------------------
    def _client_kwargs(self) -> dict[str, Any]:
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        s = self.settings
        kwargs: dict[str, Any] = passthrough_kwargs(s)
        kwargs.update(
            username=s.username,
            password=s.password,
            socket_timeout=s.socket_timeout,
            socket_connect_timeout=s.socket_connect_timeout,
            decode_responses=False,
            # our own retry layer decides what may be retried (never incr)
            retry=Retry(NoBackoff(), 0),
        )
        if s.max_connections is not None:
            kwargs["max_connections"] = s.max_connections
        return kwargs

    def _build_client(self) -> Any:
        s = self.settings
        kwargs = self._client_kwargs()
        if s.cluster:
            from redis.asyncio.cluster import ClusterNode, RedisCluster

            if s.tls:
                kwargs["ssl"] = True
            return RedisCluster(
                startup_nodes=[ClusterNode(h, p) for h, p in s.nodes],
                require_full_coverage=True,
                **kwargs,
            )
        if s.path is not None:
            return aioredis.Redis(unix_socket_path=s.path, db=s.db, **kwargs)
        if s.tls:
            kwargs["ssl"] = True
        return aioredis.Redis(host=s.host, port=s.port, db=s.db, **kwargs)

    def _pubsub_factory(self) -> Callable[[], Any]:
        """A callable returning a fresh standalone client for the pub/sub connection."""
        s = self.settings

        def make() -> Any:
            kwargs = self._client_kwargs()
            kwargs.pop("max_connections", None)
            if s.cluster:
                nodes = list(s.nodes)
                client = self._client
                if client is not None:
                    try:
                        nodes = [(n.host, n.port) for n in client.get_primaries()] or nodes
                    except Exception:  # fall back to the startup nodes
                        pass
                host, port = random.choice(nodes)
                return aioredis.Redis(host=host, port=port, ssl=s.tls, **kwargs)
            if self.settings.client is not None:
                pool_kwargs = dict(self.settings.client.connection_pool.connection_kwargs)
                pool_kwargs["socket_timeout"] = s.socket_timeout
                pool_kwargs["retry"] = kwargs["retry"]
                return aioredis.Redis(
                    connection_pool=aioredis.ConnectionPool(
                        connection_class=self.settings.client.connection_pool.connection_class,
                        **pool_kwargs,
                    )
                )
            if s.path is not None:
                return aioredis.Redis(unix_socket_path=s.path, db=s.db, **kwargs)
            return aioredis.Redis(host=s.host, port=s.port, db=s.db, ssl=s.tls, **kwargs)

        return make

    async def open(self) -> None:
        """Create the client and check that the server answers."""
        if self._closed:
            raise BackendUnavailable(f"redis backend for {self.label} is closed")
        if self._client is None:
            self._client = self._build_client()
        else:
            self._check_user_client(self._client)
        await self.ping()

    @staticmethod
    def _check_user_client(client: Any) -> None:
        kwargs = getattr(client, "connection_kwargs", None)
        if kwargs is None:
            kwargs = client.connection_pool.connection_kwargs
        if kwargs.get("decode_responses"):
            raise HivememError(
                "redis option client: the client must use decode_responses=False "
                "(hivemem stores bytes)"
            )

    async def close(self) -> None:
        """Stop the invalidation listener and close the client we created. Safe twice."""
        self._closed = True
        hub, self._hub = self._hub, None
        if hub is not None:
            await hub.close()
        client, self._client = self._client, None
        if client is not None and self._owns_client:
            try:
                await client.aclose()
            except Exception:  # closing a dead connection
                log.debug("closing redis client for %s failed", self.label, exc_info=True)

    def _c(self) -> Any:
        if self._client is None:
            if self._closed:
                raise BackendUnavailable(f"redis backend for {self.label} is closed")
            self._client = self._build_client()
        return self._client

    # -- error handling and retries ----------------------------------------------------
    def _unavailable(self, exc: BaseException, what: str, note: str = "") -> BackendUnavailable:
        if isinstance(exc, rexc.TimeoutError | asyncio.TimeoutError):
            reason = f"no reply within {self.settings.socket_timeout:g}s"
        else:
            reason = f"{type(exc).__name__}: {exc}"
        pw = self.settings.password
        if pw:
            reason = reason.replace(pw, "***")
        return BackendUnavailable(f"redis {self.label}: {what} failed ({reason}){note}")

    async def _run(self, what: str, fn: Callable[[], Awaitable[T]], *, idempotent: bool) -> T:
        """Run ``fn``; retry connection failures with backoff only when ``idempotent``."""
        attempts = 1 + (self.settings.retries if idempotent else 0)
        for attempt in range(attempts):
            try:
                return await fn()
            except _CONN_ERRORS as exc:
                if attempt + 1 >= attempts:
                    note = "" if idempotent else "; not retried, the outcome is unknown"
                    raise self._unavailable(exc, what, note) from None
                delay = min(
                    self.settings.retry_backoff_cap, self.settings.retry_backoff * 2**attempt
                )
                log.debug("redis %s: %s failed (%r); retry in %.3fs", self.label, what, exc, delay)
                await asyncio.sleep(delay * (0.5 + random.random() / 2))
            except rexc.AuthenticationError as exc:
                raise BackendUnavailable(
                    f"redis {self.label}: authentication failed ({type(exc).__name__})"
                ) from None
            except rexc.ResponseError as exc:
                raise HivememError(f"redis {self.label}: {what} failed: {exc}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _exec(self, call: _Call) -> Any:
        client = self._c()
        if call.script is None:
            return await client.execute_command(*call.args)
        try:
            return await client.execute_command(*call.command(True))
        except rexc.NoScriptError:
            return await client.execute_command(*call.command(False))

    async def _batch(self, calls: Sequence[_Call], *, ordered: bool) -> list[Any]:
        """Run ``calls`` in one round trip where possible; raise the first error.

        Standalone: one non-transactional pipeline (executed in order). Cluster:
        in order, one after the other, when ``ordered`` (the calls may live on
        different masters); otherwise concurrently.
        """
        if not calls:
            return []
        if len(calls) == 1:
            return [await self._exec(calls[0])]
        client = self._c()
        if self.is_cluster:
            if ordered:
                return [await self._exec(c) for c in calls]
            return list(await asyncio.gather(*(self._exec(c) for c in calls)))
        pipe = client.pipeline(transaction=False)
        for c in calls:
            pipe.execute_command(*c.command(True))
        results = list(await pipe.execute(raise_on_error=False))
        for i, res in enumerate(results):
            if isinstance(res, rexc.NoScriptError):
                # the script did not run: run it (and everything after it) again in order
                for j in range(i, len(calls)):
                    results[j] = await self._exec(calls[j])
                break
        for res in results:
            if isinstance(res, Exception):
                raise res
        return results

    def _channel(self, ns: str) -> bytes:
        return self.layout.namespace(ns).channel if self.settings.invalidation else b""

    # -- basics --------------------------------------------------------------------------
    async def purge_residue(self) -> list[str]:
        """What may still hold old values after a rewrite: Redis' own files and copies.

        Nothing is run on the server: rewriting the AOF or saving a snapshot
        is an operator's decision (it costs I/O and may be disabled).
        """
        return [
            "Redis: the append-only file keeps old values until it is rewritten: run "
            "BGREWRITEAOF on every primary and replica (redis-cli BGREWRITEAOF)",
            "Redis: RDB snapshots keep old values until the next save (BGSAVE); "
            "backups and replicas' files made before now still hold them",
        ]

    async def ping(self) -> bool:
        """``PING`` the server (every master on a cluster)."""

        async def go() -> bool:
            client = self._c()
            if self.is_cluster:
                from redis.asyncio.cluster import RedisCluster

                await client.execute_command("PING", target_nodes=RedisCluster.PRIMARIES)
                return True
            return bool(await client.execute_command("PING"))

        return await self._run("ping", go, idempotent=True)

    async def stats(self) -> dict[str, Any]:
        """Server version, mode, memory and persistence facts; JSON-serializable."""

        async def go() -> dict[str, Any]:
            client = self._c()
            out: dict[str, Any] = {
                "backend": "redis",
                "mode": "cluster" if self.is_cluster else "standalone",
                "server": self.label,
                "prefix": self.settings.prefix.decode("utf-8", "replace"),
                "redis_py": getattr(aioredis, "__version__", None)
                or __import__("redis").__version__,
            }
            fields = ("redis_version", "used_memory", "aof_enabled", "connected_clients")
            if self.is_cluster:
                from redis.asyncio.cluster import RedisCluster

                per_node = await client.info(target_nodes=RedisCluster.PRIMARIES)
                out["masters"] = {
                    str(node): {f: info.get(f) for f in fields} for node, info in per_node.items()
                }
            else:
                info = await client.info()
                out.update({f: info.get(f) for f in fields})
            return out

        return await self._run("stats", go, idempotent=True)

    # -- records ---------------------------------------------------------------------------
    def _kind(self, ns: str, kind: str) -> _KindCtx:
        """Keys and constant script arguments of ``(ns, kind)``, cached (bounded)."""
        ctx = self._kinds.get((ns, kind))
        if ctx is None:
            if len(self._kinds) >= _KIND_CACHE:
                self._kinds.clear()
            kk = self.layout.kind(ns, kind)
            registry = None if self.is_cluster else self.layout.namespace(ns).kinds
            ctx = self._kinds[(ns, kind)] = _KindCtx(
                kk, registry, self._channel(ns), self._cid, utf8(kind)
            )
        return ctx

    async def _eval(self, script: Script, args: Sequence[Any]) -> Any:
        """One script call (``args`` = numkeys, keys..., argv...); EVAL on ``NOSCRIPT``."""
        client = self._c()
        try:
            return await client.execute_command("EVALSHA", script.sha, *args)
        except rexc.NoScriptError:
            return await client.execute_command("EVAL", script.source, *args)

    async def _send(self, packed: Sequence[bytes]) -> Any:
        """Write one command already packed as RESP and read its reply (standalone only).

        The hot paths (``get``, ``put``, ``put_many``) pack their commands
        themselves: their shape is fixed, most pieces are packed once per kind
        and the value is sent as its own chunk. redis-py's generic packer took
        about 20 us for the arguments of a ``put`` (a raw ``SET``: 7 us); this
        takes about 2 us. Timeouts, health checks and dropping a connection
        whose reply was interrupted stay redis-py's (``send_packed_command``
        and ``read_response``).
        """
        pool = self._c().connection_pool
        conn = await pool.get_connection()
        try:
            await conn.send_packed_command(packed)
            return await conn.read_response()
        finally:
            await pool.release(conn)

    async def _eval_packed(self, script: Script, args: Sequence[bytes]) -> Any:
        """:meth:`_eval` through :func:`_pack` and :meth:`_send` (standalone only)."""
        try:
            return await self._send(_pack((b"EVALSHA", script.sha.encode(), *args)))
        except rexc.NoScriptError:
            return await self._send(_pack((b"EVAL", script.source, *args)))

    async def _transaction(self, packed: list[bytes], count: int) -> list[Any]:
        """``MULTI``, ``count`` packed commands, ``EXEC``: one write, one pooled connection.

        Standalone only. Returns EXEC's replies (error replies as exception
        objects, in place). Every reply is read before anything is raised, so
        the connection stays in step; redis-py drops a connection whose read
        is interrupted (timeout, cancellation), so nothing half-read is reused.
        """
        pool = self._c().connection_pool
        conn = await pool.get_connection()
        try:
            await conn.send_packed_command(
                [b"*1\r\n$5\r\nMULTI\r\n", *packed, b"*1\r\n$4\r\nEXEC\r\n"]
            )
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
            mset.append(b"%s$%d\r\n%s" % (_bulk(key), HEADER + len(value), _BLANK))
            mset.append(value)
            mset.append(b"\r\n")
        delete = _pack((b"DEL", *(key for key, _ in stage)))
        for head in ((b"EVALSHA", script.sha.encode()), (b"EVAL", script.source)):
            replies = await self._transaction([*mset, *_pack((*head, *args)), *delete], 3)
            result = replies[1]
            if isinstance(result, rexc.NoScriptError) or (
                isinstance(result, rexc.ResponseError) and "NOSCRIPT" in str(result)
            ):
                continue
            if isinstance(result, Exception):
                raise result
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    async def get(self, ns: str, kind: str, id: str) -> Record | None:
        """``GET`` of the record string (Redis hides it once expired)."""
        ctx = self._kind(ns, kind)
        key = ctx.kk.base + b"r:" + escape(id)
        if ctx.registry is None:  # cluster: redis-py routes the key to its master

            async def go() -> Record | None:
                return _parse(await self._c().execute_command("GET", key), kind, id)

        else:
            packed = (b"*2\r\n$3\r\nGET\r\n" + _bulk(key),)

            async def go() -> Record | None:
                return _parse(await self._send(packed), kind, id)

        return await self._run("get", go, idempotent=True)

    async def get_many(self, ns: str, kind: str, ids: Sequence[str]) -> dict[str, Record]:
        """One ``MGET``: every record of one kind shares a slot, also on a cluster."""
        unique = list(dict.fromkeys(ids))
        if not unique:
            return {}
        rp = self._kind(ns, kind).kk.base + b"r:"
        keys = [rp + escape(i) for i in unique]

        async def go() -> dict[str, Record]:
            rows = await self._c().execute_command("MGET", *keys)
            out: dict[str, Record] = {}
            for id, raw in zip(unique, rows, strict=True):
                rec = _parse(raw, kind, id)
                if rec is not None:
                    out[id] = rec
            return out

        return await self._run("get_many", go, idempotent=True)

    def _register_kind(self, ns: str, kind: str) -> _Call:
        return _Call("SADD", self.layout.namespace(ns).kinds, utf8(kind))

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
        ttl_ms = _ms(ttl)
        if type(value) is not bytes:
            value = bytes(value)
        if len(value) > MAX_VALUE_SIZE:
            raise ValueTooLarge(f"{kind}/{id}", len(value), MAX_VALUE_SIZE, "redis")
        ctx = self._kind(ns, kind)
        idb = utf8(id)
        expected = "" if expected_version is None else str(int(expected_version))
        kk = ctx.kk
        rec = kk.base + b"r:" + escape(idb)
        tail = (ttl_ms, expected, ctx.channel, ctx.cid, ctx.kind)

        if ctx.registry is None:  # cluster: register the kind first (another slot)
            calls = [
                self._register_kind(ns, kind),
                _script(scripts.PUT, [rec, kk.index, kk.expiry], (idb, _BLANK + value, *tail)),
            ]

            async def go() -> int:
                return int((await self._batch(calls, ordered=True))[-1])

        else:  # standalone: one script that also registers the kind
            packed = (
                b"".join((
                    _PUT_HEAD, _bulk(rec), ctx.put_mid, _bulk(ctx.registry), _bulk(idb),
                    b"$%d\r\n" % (HEADER + len(value)), _BLANK,
                )),
                value,
                b"".join((b"\r\n", _bulk(ttl_ms.encode()), _bulk(expected.encode()), ctx.put_tail)),
            )

            async def go() -> int:
                try:
                    return int(await self._send(packed))
                except rexc.NoScriptError:
                    return int(
                        await self._c().execute_command(
                            "EVAL", scripts.PUT.source, 4, rec, kk.index, kk.expiry,
                            ctx.registry, idb, _BLANK + value, *tail,
                        )
                    )

        version = await self._run("put", go, idempotent=expected_version is None)
        if version <= 0:
            assert expected_version is not None
            if version == 0:
                raise _uncomparable(kind, id)
            raise ConflictError(f"{kind}/{id}", expected_version, (-1 - version) or None)
        return version

    async def put_many(
        self, ns: str, kind: str, items: Mapping[str, bytes], *, ttl: float | None = None
    ) -> None:
        """One ``put_many`` script: atomic, one round trip (two on a cluster)."""
        ttl_ms = _ms(ttl)
        if not items:
            return
        ctx = self._kind(ns, kind)
        rp = ctx.kk.base + b"r:"
        standalone = ctx.registry is not None
        keys: list[bytes] = list(ctx.put_keys)
        argv: list[bytes] = [
            ttl_ms.encode(), ctx.channel, ctx.cid, ctx.kind, b"1" if standalone else b"0"
        ]
        stage: list[tuple[bytes, bytes]] = []
        for id, value in items.items():
            if type(value) is not bytes:
                value = bytes(value)
            if len(value) > MAX_VALUE_SIZE:
                raise ValueTooLarge(f"{kind}/{id}", len(value), MAX_VALUE_SIZE, "redis")
            idb = utf8(id)
            keys.append(rp + escape(idb))
            argv.append(idb)
            if standalone and len(value) >= STAGE_MIN:
                stage.append((ctx.kk.base + b"s:%d" % len(stage), value))
                argv.append(b"")
            else:
                argv.append(_BLANK + value)
        keys += (key for key, _ in stage)
        args = (b"%d" % len(keys), *keys, *argv)

        if stage:  # standalone, large values: they bypass Lua

            async def go() -> None:
                await self._staged(scripts.PUT_MANY, stage, args)

        elif standalone:

            async def go() -> None:
                await self._eval_packed(scripts.PUT_MANY, args)

        else:
            calls = [self._register_kind(ns, kind), _script(scripts.PUT_MANY, keys, argv)]

            async def go() -> None:
                await self._batch(calls, ordered=True)

        await self._run("put_many", go, idempotent=True)

    async def delete(
        self, ns: str, kind: str, id: str, *, expected_version: int | None = None
    ) -> bool:
        """One ``delete`` script (CAS check, record, index and expiry entries, publish)."""
        ctx = self._kind(ns, kind)
        idb = utf8(id)
        expected = "" if expected_version is None else str(int(expected_version))
        args = (
            3, ctx.kk.base + b"r:" + escape(idb), ctx.kk.index, ctx.kk.expiry,
            idb, expected, ctx.channel, ctx.cid, ctx.kind,
        )

        async def go() -> int:
            return int(await self._eval(scripts.DELETE, args))

        gone = await self._run("delete", go, idempotent=expected_version is None)
        if gone < 0:
            assert expected_version is not None
            raise ConflictError(f"{kind}/{id}", expected_version, (-1 - gone) or None)
        if gone == 2:
            raise _uncomparable(kind, id)
        return gone == 1

    async def delete_many(self, ns: str, kind: str, ids: Sequence[str]) -> int:
        """One ``delete_many`` script: atomic, one round trip."""
        unique = [utf8(i) for i in dict.fromkeys(ids)]
        if not unique:
            return 0
        ctx = self._kind(ns, kind)
        rp = ctx.kk.base + b"r:"
        call = _script(
            scripts.DELETE_MANY,
            [ctx.kk.index, ctx.kk.expiry, *(rp + escape(i) for i in unique)],
            [ctx.channel, ctx.cid, ctx.kind, *unique],
        )

        async def go() -> int:
            return int(await self._exec(call))

        return await self._run("delete_many", go, idempotent=True)

    def _bounds(
        self, prefix: str, cursor: str | None, reverse: bool
    ) -> tuple[bytes, bytes] | None:
        """``ZRANGEBYLEX`` (min, max) for ids starting with ``prefix`` beyond ``cursor``."""
        pb = utf8(prefix)
        upper = prefix_upper_bytes(pb)
        lo = b"[" + pb if pb else b"-"
        hi = b"(" + upper if upper is not None else b"+"
        if cursor is not None:
            cb = utf8(cursor)
            if reverse:
                if upper is None or cb < upper:
                    hi = b"(" + cb
                if cb <= pb:
                    return None
            else:
                if cb >= pb:
                    lo = b"(" + cb
                if upper is not None and cb >= upper:
                    return None
        return lo, hi

    async def _list(
        self,
        ns: str,
        kind: str,
        prefix: str,
        limit: int | None,
        cursor: str | None,
        reverse: bool,
        with_values: bool,
    ) -> list[tuple[str, Record | None]]:
        if limit is not None and limit <= 0:
            return []
        kk = self.layout.kind(ns, kind)
        bounds = self._bounds(prefix, cursor, reverse)
        if bounds is None:
            return []
        lo, hi = bounds

        async def go() -> list[tuple[str, Record | None]]:
            out: list[tuple[str, Record | None]] = []
            nonlocal_lo, nonlocal_hi = lo, hi
            while True:
                want = _SCAN_STEP if limit is None else min(limit - len(out), _SCAN_STEP)
                res = await self._exec(
                    _script(
                        scripts.LIST,
                        [kk.index, kk.expiry],
                        [
                            nonlocal_lo, nonlocal_hi, want, int(reverse), int(with_values),
                            _SCAN_STEP,
                        ],
                    )
                )
                exhausted, last, items = int(res[0]), res[1], res[2:]
                if with_values:
                    for i in range(0, len(items), 2):
                        id = _s(items[i])
                        out.append((id, _parse(items[i + 1], kind, id)))
                else:
                    out.extend((_s(i), None) for i in items)
                if exhausted or (limit is not None and len(out) >= limit) or not last:
                    return out
                if reverse:
                    nonlocal_hi = b"(" + last
                else:
                    nonlocal_lo = b"(" + last

        return await self._run("list", go, idempotent=True)

    async def list_ids(
        self,
        ns: str,
        kind: str,
        prefix: str = "",
        *,
        limit: int | None = None,
        cursor: str | None = None,
        reverse: bool = False,
    ) -> list[str]:
        """``ZRANGEBYLEX`` over the kind's index, skipping (and removing) expired ids."""
        rows = await self._list(ns, kind, prefix, limit, cursor, reverse, False)
        return [id for id, _ in rows]

    async def list_records(
        self,
        ns: str,
        kind: str,
        prefix: str = "",
        *,
        limit: int | None = None,
        cursor: str | None = None,
        reverse: bool = False,
    ) -> list[tuple[str, Record]]:
        """Like :meth:`list_ids`, reading the records in the same script."""
        rows = await self._list(ns, kind, prefix, limit, cursor, reverse, True)
        return [(id, rec) for id, rec in rows if rec is not None]

    async def _registered_kinds(self, ns: str) -> list[str]:
        members = await self._c().execute_command("SMEMBERS", self.layout.namespace(ns).kinds)
        return sorted(_s(m) for m in members)

    async def kinds(self, ns: str) -> list[str]:
        """Kinds in the namespace registry that still hold a live record (one probe each)."""

        async def go() -> list[str]:
            registered = await self._registered_kinds(ns)
            calls = []
            for kind in registered:
                kk = self.layout.kind(ns, kind)
                calls.append(
                    _script(
                        scripts.LIST,
                        [kk.index, kk.expiry],
                        [b"-", b"+", 1, 0, 0, _SCAN_STEP],
                    )
                )
            results = await self._batch(calls, ordered=False)
            return [k for k, res in zip(registered, results, strict=True) if len(res) > 2]

        return await self._run("kinds", go, idempotent=True)

    async def namespace_stats(self, ns: str) -> NamespaceStats:
        """Walks each registered kind's index in steps of 1000 and each series' summary."""

        async def kind_stats(kk: KindKeys) -> tuple[int, int]:
            lo, count, size = b"-", 0, 0
            while True:
                done, last, n, b = await self._exec(
                    _script(
                        scripts.KIND_STATS, [kk.index, kk.expiry], [lo, _BATCH]
                    )
                )
                count += int(n)
                size += int(b)
                if int(done) or not last:
                    return count, size
                lo = b"(" + last

        async def go() -> NamespaceStats:
            kinds: dict[str, KindStats] = {}
            for kind in await self._registered_kinds(ns):
                count, size = await kind_stats(self.layout.kind(ns, kind))
                if count:
                    kinds[kind] = KindStats(count, size)
            names = await self._series_registry(ns, "")
            calls = []
            for name in names:
                sk = self.layout.series(ns, name)
                calls.append(_script(scripts.SERIES_STATS, [sk.entries, sk.meta], []))
            series: dict[str, SeriesStats] = {}
            for name, res in zip(names, await self._batch(calls, ordered=False), strict=True):
                if int(res[0]):
                    series[name] = SeriesStats(
                        int(res[0]), int(res[1]), float(res[2]), float(res[3])
                    )
            return NamespaceStats(kinds, series)

        return await self._run("namespace_stats", go, idempotent=True)

    async def drop_namespace(self, ns: str) -> None:
        """Delete every kind and series listed in the namespace registries (admin operation).

        Walks the registries (never the keyspace) and deletes in slot-local
        scripts of 1000 records each. Writers racing with a drop of the same
        namespace may leave their own writes behind (still registered, so
        ``kinds()`` and the next drop see them).
        """
        nk = self.layout.namespace(ns)

        async def go() -> None:
            client = self._c()
            for kind in await self._registered_kinds(ns):
                kk = self.layout.kind(ns, kind)
                while not int(
                    await self._exec(
                        _script(
                            scripts.DROP_KIND,
                            [kk.index, kk.expiry, kk.counter_ids],
                            [kk.record_prefix, kk.counter_prefix, _BATCH],
                        )
                    )
                ):
                    pass
                # unregister, then re-register if a writer created data meanwhile
                # (a write that creates a record or counter registers the kind)
                await client.execute_command("SREM", nk.kinds, utf8(kind))
                left = await self._batch(
                    [_Call("EXISTS", kk.index), _Call("EXISTS", kk.counter_ids)], ordered=True
                )
                if any(int(n) for n in left):
                    await client.execute_command("SADD", nk.kinds, utf8(kind))
            names = await self._series_registry(ns, "")
            calls = []
            for name in names:
                sk = self.layout.series(ns, name)
                calls.append(_script(scripts.DELETE_SERIES, [sk.entries, sk.meta], []))
            await self._batch(calls, ordered=False)
            if names:
                await client.execute_command("ZREM", nk.series, *(utf8(n) for n in names))
            if self.settings.invalidation:
                msg = json.dumps([self.client_id, None, None])
                await client.execute_command("PUBLISH", nk.channel, msg)

        await self._run("drop_namespace", go, idempotent=True)

    # -- series ------------------------------------------------------------------------------
    def _series_ordered(self, ns: str, series: str, call: _Call) -> list[_Call]:
        """Register the name before *and* after the write (see delete_series)."""
        reg = _Call("ZADD", self.layout.namespace(ns).series, 0, utf8(series))
        return [reg, call, reg]

    async def append(
        self, ns: str, series: str, value: bytes, *, ts: float | None = None
    ) -> SeriesEntry:
        """One ``append`` script (per-series seq from ``HINCRBY``); never retried."""
        ts = time.time() if ts is None else float(ts)
        value = bytes(value)
        sk = self.layout.series(ns, series)
        call = _script(scripts.APPEND, [sk.entries, sk.meta], [_ts(ts), value])
        calls = self._series_ordered(ns, series, call)

        async def go() -> SeriesEntry:
            _, seq, _ = await self._batch(calls, ordered=True)
            return SeriesEntry(ts, int(seq), value)

        return await self._run("append", go, idempotent=False)

    async def replace_series(
        self, ns: str, series: str, entries: Sequence[tuple[float, bytes]]
    ) -> None:
        """One ``replace_series`` script: the old entries go and the new arrive atomically."""
        if not entries:
            await self.delete_series(ns, series)
            return
        sk = self.layout.series(ns, series)
        argv: list[Any] = []
        for ts, value in entries:
            argv += [_ts(ts), bytes(value)]
        calls = self._series_ordered(
            ns, series, _script(scripts.REPLACE_SERIES, [sk.entries, sk.meta], argv)
        )

        async def go() -> None:
            await self._batch(calls, ordered=True)

        await self._run("replace_series", go, idempotent=True)

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
        sk = self.layout.series(ns, series)
        keys = [sk.entries, sk.meta]
        calls: list[_Call] = []
        argv: list[bytes] = []
        size = 0
        for seq, old, new in changes:
            seq = operator.index(seq)
            if not 0 <= seq < _NO_SEQ:
                continue
            old, new = bytes(old), bytes(new)
            argv += (seq.to_bytes(8, "big"), old, new)
            size += len(old) + len(new)
            if len(argv) >= 3 * _BATCH or size >= _REWRITE_BYTES:
                calls.append(_script(scripts.REWRITE_SERIES, keys, argv))
                argv, size = [], 0
        if argv:
            calls.append(_script(scripts.REWRITE_SERIES, keys, argv))
        if not calls:
            return 0

        async def go() -> int:
            return sum(int(n) for n in await self._batch(calls, ordered=True))

        return await self._run("rewrite_series", go, idempotent=False)

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
        lo = "-inf" if start is None else _ts(start)
        hi = "+inf" if end is None else "(" + _ts(end)
        tail: tuple[Any, ...] = ("WITHSCORES",)
        if limit is not None:
            tail += ("LIMIT", 0, int(limit))
        args = ("ZREVRANGEBYSCORE", key, hi, lo) if latest else ("ZRANGEBYSCORE", key, lo, hi)

        async def go() -> list[SeriesEntry]:
            reply = await self._c().execute_command(*args, *tail)
            out = []
            for member, score in _pairs(reply):
                if len(member) < 8:
                    raise FrameError(
                        f"redis series entry is {len(member)} bytes, shorter than its 8-byte seq",
                        f"series:{series}",
                    )
                out.append(
                    SeriesEntry(float(score), int.from_bytes(member[:8], "big"), bytes(member[8:]))
                )
            if latest:
                out.reverse()
            return out

        return await self._run("read_series", go, idempotent=True)

    async def _series_registry(self, ns: str, prefix: str) -> list[str]:
        bounds = self._bounds(prefix, None, False)
        assert bounds is not None
        raw = await self._c().execute_command(
            "ZRANGEBYLEX", self.layout.namespace(ns).series, *bounds
        )
        return [_s(r) for r in raw]

    async def series_names(self, ns: str, prefix: str = "") -> list[str]:
        """``ZRANGEBYLEX`` over the namespace's series registry, keeping non-empty series."""

        async def go() -> list[str]:
            names = await self._series_registry(ns, prefix)
            calls = [_Call("EXISTS", self.layout.series(ns, n).entries) for n in names]
            found = await self._batch(calls, ordered=False)
            return [n for n, ok in zip(names, found, strict=True) if int(ok)]

        return await self._run("series_names", go, idempotent=True)

    async def delete_series(self, ns: str, series: str) -> int:
        """Delete the entries, then unregister the name unless an append raced in.

        Appenders register the name before and after their write, so "remove
        the name, then re-add it if entries exist again" never loses a live
        series even on Redis Cluster, where the registry lives on another slot.
        """
        sk = self.layout.series(ns, series)
        reg = self.layout.namespace(ns).series
        name = utf8(series)
        calls = [
            _script(scripts.DELETE_SERIES, [sk.entries, sk.meta], []),
            _Call("ZREM", reg, name),
            _Call("EXISTS", sk.entries),
        ]

        async def go() -> int:
            removed, _, again = await self._batch(calls, ordered=True)
            if int(again):
                await self._c().execute_command("ZADD", reg, 0, name)
            return int(removed)

        return await self._run("delete_series", go, idempotent=True)

    # -- counters --------------------------------------------------------------------------------
    async def incr(self, ns: str, kind: str, id: str, field: str, amount: float = 1.0) -> float:
        """``HINCRBYFLOAT`` in a script that also records the id; never retried."""
        kk = self.layout.kind(ns, kind)
        keys = [kk.counters(id), kk.counter_ids]
        if not self.is_cluster:  # the script registers the kind itself: one command
            keys.append(self.layout.namespace(ns).kinds)
        call = _script(
            scripts.INCR, keys, [utf8(field), repr(float(amount)), utf8(id), utf8(kind)]
        )
        calls = [call] if not self.is_cluster else [self._register_kind(ns, kind), call]

        async def go() -> float:
            return float((await self._batch(calls, ordered=True))[-1])

        return await self._run("incr", go, idempotent=False)

    async def get_counters(
        self, ns: str, kind: str, ids: Sequence[str]
    ) -> dict[str, dict[str, float]]:
        """``HGETALL`` per id in one pipeline (one slot)."""
        unique = list(dict.fromkeys(ids))
        if not unique:
            return {}
        kk = self.layout.kind(ns, kind)
        calls = [_Call("HGETALL", kk.counters(i)) for i in unique]

        async def go() -> dict[str, dict[str, float]]:
            out: dict[str, dict[str, float]] = {}
            for id, fields in zip(unique, await self._batch(calls, ordered=False), strict=True):
                if isinstance(fields, list):  # raw RESP2 reply when no callback applied
                    fields = dict(zip(fields[::2], fields[1::2], strict=True))
                if fields:
                    out[id] = {_s(k): float(v) for k, v in fields.items()}
            return out

        return await self._run("get_counters", go, idempotent=True)

    async def delete_counters(self, ns: str, kind: str, id: str) -> bool:
        """``DEL`` of the counter hash plus its registry entry, atomically."""
        kk = self.layout.kind(ns, kind)
        call = _script(scripts.DELETE_COUNTERS, [kk.counters(id), kk.counter_ids], [utf8(id)])

        async def go() -> bool:
            return int(await self._exec(call)) > 0

        return await self._run("delete_counters", go, idempotent=True)

    # -- invalidation ------------------------------------------------------------------------------
    async def subscribe(
        self, ns: str, callback: Callable[[str, str | None], None]
    ) -> Callable[[], Awaitable[None]]:
        """Call ``callback(kind, id)`` when another client writes in ``ns``.

        ``id=None`` means "anything in the namespace may have changed": sent
        for ``drop_namespace`` and after the subscription connection was lost
        (messages may have been missed meanwhile). Returns the unsubscribe
        coroutine function.
        """
        if self._hub is None:
            self._hub = InvalidationHub(
                self._pubsub_factory(),
                self.client_id,
                label=self.label,
                timeout=self.settings.socket_timeout + self.settings.socket_connect_timeout,
                backoff=self.settings.retry_backoff,
                backoff_cap=self.settings.retry_backoff_cap,
            )
        return await self._hub.subscribe(self.layout.namespace(ns).channel, callback)
