"""``memcached://`` -- a shared cache tier on Memcached, built on ``aiomcache``.

What this module guarantees on top of the raw client:

* **Safe keys.** Every key is derived (:mod:`hivemem_memcached.keys`), so no
  user-supplied id can break or inject into the text protocol.
* **Bounded calls.** Every call to a server runs under ``asyncio.timeout``
  (default 0.25 s). A server that is down, refuses, or is stalled (SIGSTOP)
  turns into misses, never an exception and never a hang. After
  ``down_after`` consecutive failures the server is *marked down*: its keys
  miss at once without I/O, and after a back-off one caller probes it; the
  first success puts it back in use.
* **No poisoned connections.** ``aiomcache`` returns a connection to its pool
  in a ``finally`` block and only discards it on ``Exception``; a
  timeout/cancellation (``CancelledError``) therefore hands the next caller a
  connection whose previous reply is still in flight, and every later reply
  on it is read by the wrong request. Whenever a call is cut short, this
  cache retires that server's whole client (pool) and starts a fresh one; the
  retired client is closed once its last in-flight call finishes (each
  server's pools, health and dirty keys: :mod:`hivemem_memcached.server`).
* **No stale values after a lost invalidation.** A ``set``/``delete`` that
  fails or times out may or may not have reached the server (a stalled
  server executes buffered commands when it resumes). The key is then
  remembered as *dirty* for that server: reads of it miss, and the next read
  re-sends the delete, until a delete or set of it succeeds. If too many keys
  are dirty, the server is flushed before it is trusted again.
* **Oversized values** (over ``max_value_size``, default just under
  memcached's 1 MiB item limit) are not cached; any older value under the key
  is deleted so it cannot be served, and the event is counted as ``too_large``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import aiomcache
from hivemem.plugin import Cache

from .keys import derive_key, derive_lease_key, pick
from .server import FAILED, MAX_DIRTY, Failed, Server, key_locator
from .settings import ITEM_OVERHEAD, ITEM_SIZE_LIMIT, parse_url

log = logging.getLogger("hivemem.memcached")

T = TypeVar("T")

#: memcached reads an exptime above 30 days as an absolute Unix time
_RELATIVE_TTL_LIMIT = 30 * 24 * 3600
#: keys per ``get`` command line (several lines are pipelined concurrently)
_MULTI_GET_CHUNK = 100
#: longer keys are derived each time (the memo's memory stays small)
_KEY_MEMO_MAX_LEN = 256

_GET = aiomcache.Client.get
_SET = aiomcache.Client.set
_ADD = aiomcache.Client.add
_DELETE = aiomcache.Client.delete
_MULTI_GET = aiomcache.Client.multi_get


def exptime(ttl: float | None) -> int | None:
    """Memcached ``exptime`` for a TTL in seconds; None means "do not store".

    Memcached's clock ticks once a second, and an item with exptime ``n``
    expires somewhere in ``(n - 1, n]`` seconds. Rounding down therefore never
    lets an entry outlive its TTL for TTLs of one second or more; a TTL below
    one second becomes 1 (at most one second late). ``None``/``0`` means no
    expiry; a negative TTL means "already expired".
    """
    if ttl is None or ttl == 0:
        return 0
    if ttl < 0 or not math.isfinite(ttl):
        return None if ttl < 0 else 0
    seconds = max(1, int(ttl))
    if seconds > _RELATIVE_TTL_LIMIT:
        return int(time.time()) + seconds
    return seconds


class MemcachedCache(Cache):
    """A cache tier on one or more memcached servers.

    Construction parses the URL and does no I/O; :meth:`open` checks each
    server once (a server that does not answer is marked down and logged,
    never an error). All operations are safe to call concurrently.
    """

    name: ClassVar[str] = "memcached"
    in_process: ClassVar[bool] = False
    supports_lease: ClassVar[bool] = True
    #: the default limit; an instance carries its configured ``max_value_size``
    max_value_size: ClassVar[int | None] = ITEM_SIZE_LIMIT - ITEM_OVERHEAD

    def __init__(self, url: str = "memcached://127.0.0.1:11211", **options: Any) -> None:
        self.settings = parse_url(url, **options)
        self.max_value_size = self.settings.max_value_size  # type: ignore[misc]
        self._servers = [Server(address, self.settings) for address in self.settings.servers]
        self._server_ids = [server.id for server in self._servers]
        self._locate_short = key_locator(self.settings.prefix, self._servers, self._server_ids)
        self._timeout = self.settings.timeout
        self._down_after = self.settings.down_after
        self.hits = self.misses = self.sets = self.deletes = 0
        self.errors = self.timeouts = self.too_large = self.skipped = 0
        self.leases_won = self.leases_lost = 0
        self.evictions = 0
        #: the clock of marking servers down and of probe back-off (tests may replace it)
        self.clock: Callable[[], float] = time.monotonic
        self._closed = False

    def __repr__(self) -> str:
        servers = ",".join(server.label for server in self._servers)
        return f"MemcachedCache(memcached://{servers}, timeout={self.settings.timeout})"

    # -- plumbing ---------------------------------------------------------------------
    @property
    def servers(self) -> list[str]:
        """``host:port`` of every configured server, in URL order."""
        return [server.label for server in self._servers]

    def server_for(self, key: str) -> str:
        """``host:port`` of the server that holds ``key`` (rendezvous hashing)."""
        return self._route(derive_key(self.settings.prefix, key)).label

    def derived_key(self, key: str) -> bytes:
        """The memcached key that holds ``key``'s value (for inspection and tests)."""
        return derive_key(self.settings.prefix, key).encode("ascii")

    def _route(self, derived: str) -> Server:
        return pick(self._servers, self._server_ids, derived)

    def _locate(self, key: str) -> tuple[str, Server]:
        """``key``'s derived key and the server that holds it (memoised for short keys)."""
        if len(key) <= _KEY_MEMO_MAX_LEN:
            return self._locate_short(key)
        derived = derive_key(self.settings.prefix, key)
        return derived, self._route(derived)

    def _group(self, derived: Sequence[str]) -> dict[Server, list[str]]:
        groups: dict[Server, list[str]] = {}
        for key in derived:
            groups.setdefault(self._route(key), []).append(key)
        return groups

    def _admit(self, server: Server, writes: Sequence[str]) -> bool | None:
        """May a call go to ``server`` now? True: yes, as its probe; False: yes; None: no.

        Asked only when the cache is closed or the server is down (the fast
        path of :meth:`_call` checks both first). On None, ``writes`` are dirty.
        """
        if self._closed:
            server.mark_dirty(writes)
            return None
        if not server.is_down:
            return False
        if server.probing or self.clock() < server.down_until:
            self.skipped += 1
            server.mark_dirty(writes)
            return None
        server.probing = True
        return True

    def _failed(self, server: Server, *, probe: bool) -> None:
        was_down = server.is_down
        server.failures += 1
        if not server.is_down or (was_down and not probe):
            return
        server.down_until = self.clock() + server.backoff
        if not was_down:
            log.warning(
                "memcached %s marked down after %d failures; its keys are misses, "
                "next probe in %.2fs",
                server.label,
                server.failures,
                server.backoff,
            )
        server.backoff = min(server.backoff * 2, self.settings.max_retry_after)

    def _succeeded(self, server: Server) -> None:
        if server.is_down:
            log.warning("memcached %s answers again; back in use", server.label)
        server.failures = 0
        server.backoff = self.settings.retry_after
        server.down_until = 0.0

    def _refused(self, exc: Exception) -> bool:
        """True (and counted) when memcached answered a command with an error line."""
        text = str(exc)
        if not isinstance(exc, aiomcache.ClientException) or "SERVER_ERROR" not in text:
            return False
        if "too large" in text:
            self.too_large += 1
        else:
            self.errors += 1
        return True

    def _call_failed(
        self, server: Server, writes: Sequence[str], exc: Exception, *, running: bool, probe: bool
    ) -> None:
        """Count a call that raised ``exc`` and mark what it leaves uncertain."""
        if isinstance(exc, TimeoutError):
            self.timeouts += 1
            server.abandon(writes, running=running)
            if running:  # (cut while waiting for a slot: the server did nothing wrong)
                self._failed(server, probe=probe)
            return
        server.mark_dirty(writes)
        if self._refused(exc):
            self._succeeded(server)
        else:
            self.errors += 1
            log.debug("memcached %s call failed: %r", server.label, exc)
            self._failed(server, probe=probe)

    async def _call(
        self,
        server: Server,
        op: Callable[..., Awaitable[T]],
        *args: Any,
        writes: Sequence[str] = (),
        **kwargs: Any,
    ) -> T | Failed:
        """Run ``op(client, *args, **kwargs)`` on ``server`` within the timeout; FAILED on error.

        ``writes``: the derived keys ``op`` sets or deletes, dirty unless the call surely completes.
        """
        probe: bool | None = False
        if self._closed or server.failures >= self._down_after:
            probe = self._admit(server, writes)
            if probe is None:
                return FAILED
        client = server.client
        if client is None:
            client = server.current_client()
        inflight = server.inflight
        running = False
        try:
            async with asyncio.timeout(self._timeout):
                # the slot wait counts against the timeout; cut there, no connection was used
                await server.slots.acquire()
                running = True
                inflight[client] = inflight.get(client, 0) + 1
                try:
                    if server.must_flush:
                        await server.flush_now(client)
                    result = await op(client, *args, **kwargs)
                finally:
                    inflight[client] = inflight.get(client, 1) - 1
                    server.slots.release()
        except asyncio.CancelledError:
            server.abandon(writes, running=running)
            raise
        except Exception as exc:  # a cache failure (or the timeout) is a miss, never an error
            self._call_failed(server, writes, exc, running=running, probe=probe)
            await server.reap()
            return FAILED
        finally:
            if probe:
                server.probing = False
        if server.failures:
            self._succeeded(server)  # (with no failures there is nothing to reset)
        if server.retired:
            await server.reap()
        return result

    async def _bounded_each(
        self, items: Sequence[Any], fn: Callable[[Any], Awaitable[None]]
    ) -> None:
        """``fn`` over ``items`` with at most ``pool_size`` calls in flight.

        Calls queue here, outside their timeout, so a large batch never
        times out just waiting for a connection.
        """
        if len(items) == 1:
            await fn(items[0])
            return
        pending = iter(items)

        async def worker() -> None:
            for item in pending:
                await fn(item)

        await asyncio.gather(*(worker() for _ in range(min(len(items), self.settings.pool_size))))

    @staticmethod
    async def _gather(jobs: Sequence[Awaitable[None]]) -> None:
        """Await ``jobs`` (concurrently when there are several)."""
        if len(jobs) == 1:
            await jobs[0]
        elif jobs:
            await asyncio.gather(*jobs)

    # -- the Cache contract ----------------------------------------------------------
    async def open(self) -> None:
        """Check each server once; one that does not answer is marked down (no error)."""
        self._closed = False

        async def check(server: Server) -> None:
            if (
                await self._call(server, lambda client: client.version()) is FAILED
                and not server.is_down
            ):
                # no need to wait for more failures: skip it until the first probe
                server.failures = self.settings.down_after - 1
                self._failed(server, probe=False)

        await asyncio.gather(*(check(server) for server in self._servers))

    async def close(self) -> None:
        """Close every connection. Safe to call twice."""
        self._closed = True
        for server in self._servers:
            await server.close()

    async def get(self, key: str) -> bytes | None:
        """The cached frame, or None on a miss, a dirty key or an unavailable server."""
        derived, server = self._locate(key)
        if derived in server.dirty:
            value = (await self._get_derived([derived])).get(derived)
        else:
            value = await self._call(server, _GET, derived.encode("ascii"))
            if value is FAILED:
                value = None
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    async def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        """Values for ``keys`` (misses absent): one ``get`` line per server, concurrently."""
        by_derived: dict[str, list[str]] = {}
        for key in keys:
            by_derived.setdefault(self._locate(key)[0], []).append(key)
        found = await self._get_derived(list(by_derived))
        out: dict[str, bytes] = {}
        for derived, originals in by_derived.items():
            value = found.get(derived)
            for original in originals:
                if value is None:
                    self.misses += 1
                else:
                    self.hits += 1
                    out[original] = value
        return out

    async def _get_derived(self, derived: Sequence[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}

        async def fetch(server: Server, chunk: list[str]) -> None:
            dirty = [k for k in chunk if k in server.dirty]
            if dirty:
                # a lost invalidation: re-send it rather than trust what the server holds
                await self._delete_on(server, dirty)
                chunk = [k for k in chunk if k not in server.dirty and k not in dirty]
            if not chunk:
                return
            raw = [k.encode("ascii") for k in chunk]
            values = await self._call(server, _MULTI_GET, *raw)
            if isinstance(values, Failed):
                return
            for key, value in zip(chunk, values, strict=True):
                if value is not None:
                    found[key] = value

        await self._gather(
            [
                self._bounded_each(
                    [keys[i : i + _MULTI_GET_CHUNK] for i in range(0, len(keys), _MULTI_GET_CHUNK)],
                    lambda chunk, server=server: fetch(server, chunk),
                )
                for server, keys in self._group(derived).items()
            ]
        )
        return found

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store ``value`` (a frame) for ``ttl`` seconds (None: the ``ttl`` option)."""
        expire = exptime(ttl if ttl is not None else (self.settings.ttl or None))
        derived, server = self._locate(key)
        if expire is None:
            await self._delete_one(server, derived)
        elif len(value) > self.settings.max_value_size:
            # an older value under this key must not outlive this write
            self.too_large += 1
            await self._delete_one(server, derived)
        else:
            await self._set_on(server, derived, bytes(value), expire)

    async def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        """Store several values; an oversized one is not stored, its key deleted, and counted.

        A negative ``ttl`` (already expired) deletes the keys.
        """
        expire = exptime(ttl if ttl is not None else (self.settings.ttl or None))
        store: dict[str, bytes] = {}
        drop: list[str] = []
        for key, value in items.items():
            derived = self._locate(key)[0]
            if expire is None:
                drop.append(derived)
            elif len(value) > self.settings.max_value_size:
                # an older value under this key must not outlive this write
                self.too_large += 1
                drop.append(derived)
            else:
                store[derived] = bytes(value)
        jobs = [
            self._bounded_each(
                keys, lambda key, server=server: self._set_on(server, key, store[key], expire)
            )
            for server, keys in self._group(list(store)).items()
        ]
        jobs += [self._delete_on(server, keys) for server, keys in self._group(drop).items()]
        await self._gather(jobs)

    async def _set_on(self, server: Server, derived: str, value: bytes, expire: int | None) -> None:
        result = await self._call(
            server, _SET, derived.encode("ascii"), value, expire or 0, writes=(derived,)
        )
        if result is True:
            self.sets += 1
            server.dirty.pop(derived, None)

    async def delete(self, key: str) -> None:
        """Forget ``key`` on its server (a lost delete keeps the key dirty: it misses)."""
        derived, server = self._locate(key)
        await self._delete_one(server, derived)

    async def delete_many(self, keys: Sequence[str]) -> None:
        """Forget several keys, concurrently per server."""
        derived = list(dict.fromkeys(self._locate(k)[0] for k in keys))
        await self._gather(
            [self._delete_on(server, keys) for server, keys in self._group(derived).items()]
        )

    async def _delete_on(self, server: Server, derived: Sequence[str]) -> None:
        await self._bounded_each(derived, lambda key: self._delete_one(server, key))

    async def _delete_one(self, server: Server, derived: str) -> None:
        result = await self._call(server, _DELETE, derived.encode("ascii"), writes=(derived,))
        if not isinstance(result, Failed):
            self.deletes += 1
            server.dirty.pop(derived, None)

    async def clear(self) -> None:
        """Flush every server (memcached cannot delete by prefix).

        A server that cannot be reached is flushed before it is used again.
        """

        async def flush(server: Server) -> None:
            result = await self._call(server, lambda client: client.flush_all())
            if isinstance(result, Failed):
                server.must_flush = True
            else:
                server.dirty.clear()

        await asyncio.gather(*(flush(server) for server in self._servers))

    # -- stampede protection ----------------------------------------------------------
    async def lease(self, key: str, ttl: float) -> bool:
        """True when this client won the short refill lease of ``key`` (memcached ``add``).

        Exactly one of many concurrent contenders (in any process) wins until
        the lease is released or expires after ``ttl`` seconds (rounded up to
        a whole second). When the server cannot be reached the lease fails
        open (True): the caller reads the backend rather than waiting.
        """
        derived = derive_lease_key(self.settings.prefix, key)
        raw = derived.encode("ascii")
        seconds = max(1, math.ceil(ttl))
        result = await self._call(self._route(derived), _ADD, raw, b"1", seconds)
        if isinstance(result, Failed):
            return True
        if result:
            self.leases_won += 1
        else:
            self.leases_lost += 1
        return bool(result)

    async def release(self, key: str) -> None:
        """Give the lease of ``key`` back (no error when not held or expired)."""
        derived = derive_lease_key(self.settings.prefix, key)
        raw = derived.encode("ascii")
        await self._call(self._route(derived), _DELETE, raw)

    # -- introspection ----------------------------------------------------------------
    async def server_stats(self) -> dict[str, dict[str, str] | None]:
        """Each server's ``stats`` (decoded), or None when it did not answer.

        Also refreshes ``evictions`` in :meth:`stats` (the servers' total).
        """

        async def stats_of(server: Server) -> dict[str, str] | None:
            raw = await self._call(server, lambda client: client.stats())
            if isinstance(raw, Failed):
                return None
            return {name.decode(): (value or b"").decode() for name, value in raw.items()}

        results = await asyncio.gather(*(stats_of(server) for server in self._servers))
        out = {server.label: stats for server, stats in zip(self._servers, results, strict=True)}
        self.evictions = sum(int(stats.get("evictions", 0)) for stats in out.values() if stats)
        return out

    def stats(self) -> dict[str, Any]:
        """This client's counters plus server health.

        ``hits``/``misses`` per key read; ``sets``/``deletes`` completed;
        ``errors`` failed calls and ``timeouts`` calls cut at the timeout (both
        become misses); ``skipped`` calls not sent because the server was
        marked down; ``too_large`` values not cached for size; ``evictions`` the
        servers' total as of the last :meth:`server_stats` (0 until then).
        """
        return {
            "hits": self.hits,
            "misses": self.misses,
            "sets": self.sets,
            "deletes": self.deletes,
            "evictions": self.evictions,
            "errors": self.errors,
            "timeouts": self.timeouts,
            "too_large": self.too_large,
            "skipped": self.skipped,
            "leases_won": self.leases_won,
            "leases_lost": self.leases_lost,
            "servers": len(self._servers),
            "servers_down": sum(1 for server in self._servers if server.is_down),
            "dirty_keys": sum(len(server.dirty) for server in self._servers),
        }


__all__ = ["FAILED", "MAX_DIRTY", "MemcachedCache", "exptime"]
