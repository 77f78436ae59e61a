"""The cache tiers of a Memory: in-process (local) tiers first, then tiers outside the process.

Rules (see docs/architecture.md):

* Reads go local -> remote (in URL order) -> the backend; a hit in a later tier
  fills the earlier ones. Concurrent misses of one key within a process share
  one backend read (single-flight); a remote tier offering ``lease`` limits
  refills across processes.
* Writes and deletes invalidate every tier. A local tier is then written
  through when no other write to the same key overlapped; remote tiers are
  invalidated (deleted), never written through, so two processes racing
  cannot leave an older value there.
* Every write bumps a per-key epoch (:class:`Epochs`): a read that started
  before a write never fills a tier after it.
* A local tier holds a private snapshot (``marshal``, or ``pickle`` for types
  marshal cannot hold; it never leaves the process) and every hit returns a
  fresh object.
* Every remote tier is sealed (:class:`~hivemem.sealing.SealedCache`): its
  keys and entries are authenticated with ``cache_secret`` or a key the
  encryptor derives, unless ``trust_remote_cache`` says the network is trusted.
"""

from __future__ import annotations

import asyncio
import marshal
import pickle
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from .cache import Cache, InProcessCache
from .codecs import Encryptor
from .config import MemoryConfig, mask_url
from .errors import ConfigError
from .metrics import Metrics
from .redact import plugin_acall
from .sealing import SealedCache, cache_secrets

T = TypeVar("T")

#: what :meth:`Tiers.read` returns for a key the backend does not hold
MISSING: Any = object()

#: how long a remote lease lasts (seconds) and the waits of a client that lost it
LEASE_SECONDS = 2.0
LEASE_WAITS = (0.005, 0.01, 0.02, 0.04, 0.08)


def snapshot(value: Any) -> bytes | None:
    """Private in-process copy of a decoded value (None when it cannot be copied)."""
    try:
        return b"m" + marshal.dumps(value)
    except ValueError:
        pass
    try:
        return b"p" + pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        return None


def restore(snap: bytes) -> Any:
    """A fresh object from a :func:`snapshot`."""
    if snap[:1] == b"m":
        return marshal.loads(snap[1:])
    return pickle.loads(snap[1:])


class Source(Protocol):
    """Where a tier miss is read from: the backend records of a namespace, decoded."""

    async def fetch(self, kind: str, id: str) -> tuple[bytes, float | None] | None:
        """``(frame, seconds left)`` of one record (None: no TTL), or None when absent."""

    async def fetch_many(
        self, kind: str, ids: Sequence[str]
    ) -> dict[str, tuple[bytes, float | None]]:
        """As :meth:`fetch` for several ids in one round trip (absent ids left out)."""

    def decode(self, kind: str, frame: bytes, id: str) -> Awaitable[Any]:
        """The value of a frame read for ``kind/id`` (awaitable)."""


class Epochs:
    """Per-key change counters, kept only while a read or write watches the key.

    A watcher notes the epoch when it starts (``begin``) and fills a cache at
    the end only if no write bumped the key meanwhile (``same``). Entries are
    dropped when the last watcher ends, so memory stays bounded by the number
    of operations in flight, not by the number of keys ever written.
    """

    __slots__ = ("watch",)

    def __init__(self) -> None:
        #: key -> [epoch, watchers]
        self.watch: dict[str, list[int]] = {}

    def begin(self, key: str) -> int:
        entry = self.watch.get(key)
        if entry is None:
            entry = self.watch[key] = [0, 0]
        entry[1] += 1
        return entry[0]

    def same(self, key: str, since: int) -> bool:
        entry = self.watch.get(key)
        return entry is not None and entry[0] == since

    def end(self, key: str) -> None:
        entry = self.watch.get(key)
        if entry is not None:
            entry[1] -= 1
            if entry[1] <= 0:
                del self.watch[key]

    def bump(self, key: str) -> None:
        entry = self.watch.get(key)
        if entry is not None:
            entry[0] += 1

    def bump_all(self) -> None:
        for entry in self.watch.values():
            entry[0] += 1


def seal_remote(
    config: MemoryConfig, caches: list[tuple[str, Cache]], encryptor: Encryptor | None
) -> list[tuple[str, Cache]]:
    """Wrap every cache outside the process so its keys and entries are authenticated."""
    if all(cache.in_process for _, cache in caches):
        return caches
    secrets = cache_secrets(config.cache_secret, encryptor)
    if secrets is None and not config.trust_remote_cache:
        tier = next(
            mask_url(url)
            for url, (_, cache) in zip(config.cache, caches, strict=True)
            if not cache.in_process
        )
        raise ConfigError(
            f"cache tier {tier} is outside the process and anyone who reaches it can write "
            "entries: set cache_secret (HIVEMEM_CACHE_SECRET, 16+ characters, the same in "
            "every process), or configure an encryptor that derives one (fernet), or set "
            "trust_remote_cache = true (HIVEMEM_TRUST_REMOTE_CACHE=1) on a trusted network"
        )
    return [
        (name, cache if cache.in_process else SealedCache(cache, secrets)) for name, cache in caches
    ]


class Tiers:
    """The cache tiers of one Memory and its namespace views, with their bookkeeping."""

    def __init__(
        self, caches: list[tuple[str, Cache]], metrics: Metrics, cache_ttl: float | None
    ) -> None:
        #: ``[(tier name, cache)]`` in read order
        self.caches = caches
        self.local: list[tuple[str, InProcessCache]] = []
        self.remote: list[tuple[str, Cache]] = []
        for name, cache in caches:
            if isinstance(cache, InProcessCache):
                self.local.append((name, cache))
            elif cache.in_process:
                raise ConfigError(
                    f"cache {name!r} says in_process but does not subclass "
                    "hivemem.cache.InProcessCache (get_now/set_now/delete_now/clear_now)"
                )
            else:
                self.remote.append((name, cache))
        self.metrics = metrics
        self.cache_ttl = cache_ttl
        self.epochs = Epochs()
        #: key -> writes of it in flight
        self.writing: dict[str, int] = {}
        #: key -> the backend read other misses of it wait for (single-flight)
        self.inflight: dict[str, asyncio.Future[Any]] = {}
        self.opened: list[Cache] = []

    # -- lifecycle ---------------------------------------------------------------------
    async def open(self, urls: Sequence[str], secrets: Collection[str]) -> None:
        """Open every tier (``urls`` name them in errors, masked)."""
        for url, (name, cache) in zip(urls, self.caches, strict=True):
            await plugin_acall("cache", name, secrets, mask_url(url), cache.open)
            self.opened.append(cache)

    async def close(self) -> None:
        """Close every tier that was opened."""
        opened, self.opened = self.opened, []
        for cache in opened:
            await cache.close()

    def stats(self) -> dict[str, dict[str, Any]]:
        """``{tier name: cache stats}``."""
        return {name: cache.stats() for name, cache in self.caches}

    # -- invalidation --------------------------------------------------------------------
    def bump(self, key: str) -> None:
        """A write of ``key`` happened (here or in another process): drop it locally."""
        self.epochs.bump(key)
        self.inflight.pop(key, None)
        for _, cache in self.local:
            cache.delete_now(key)

    def clear_local(self) -> None:
        """Drop every local entry; reads in flight fill nothing."""
        self.epochs.bump_all()
        self.inflight.clear()
        for _, cache in self.local:
            cache.clear_now()

    async def clear(self) -> None:
        """Drop every entry of every tier."""
        self.clear_local()
        for _, cache in self.remote:
            await cache.clear()

    async def invalidate_remote(self, keys: list[str]) -> None:
        """Delete ``keys`` from the remote tiers (a failing tier is skipped)."""
        if not self.remote or not keys:
            return
        caches = [cache for _, cache in self.remote]

        async def delete_everywhere() -> None:
            for cache in caches:
                try:
                    if len(keys) == 1:
                        await cache.delete(keys[0])
                    else:
                        await cache.delete_many(keys)
                except Exception:
                    pass

        # shielded: a cancelled writer still invalidates
        await asyncio.shield(asyncio.ensure_future(delete_everywhere()))

    async def invalidating(self, keys: list[str], call: Awaitable[T]) -> T:
        """Run a backend write with every tier invalidated around it (even if cancelled)."""
        for key in keys:
            self.bump(key)
        try:
            return await call
        finally:
            for key in keys:
                self.bump(key)
            await self.invalidate_remote(keys)

    # -- writes --------------------------------------------------------------------------
    async def write(
        self, key: str, call: Awaitable[T], value: Any, ttl: float | None, write_through: bool
    ) -> T:
        """Run the backend write of one key, then invalidate remote tiers and, when no other
        write of the key overlapped, write ``value`` through to the local tiers."""
        self.bump(key)
        since = self.epochs.begin(key)
        self.writing[key] = self.writing.get(key, 0) + 1
        try:
            result = await call
            await self.invalidate_remote([key])
            if (
                write_through
                and self.local
                and self.writing.get(key) == 1
                and self.epochs.same(key, since)
            ):
                self._write_through(key, value, ttl)
            return result
        finally:
            self.epochs.end(key)
            left = self.writing[key] - 1
            if left:
                self.writing[key] = left
            else:
                del self.writing[key]

    def _write_through(self, key: str, value: Any, record_ttl: float | None) -> None:
        snap = snapshot(value)
        if snap is None or snap[:1] != b"m":
            return
        if record_ttl:
            ttl = min(record_ttl, self.cache_ttl or record_ttl)
        else:
            ttl = self.cache_ttl
        for _, cache in self.local:
            cache.set_now(key, snap, ttl)

    # -- reads of one key ----------------------------------------------------------------
    def get_local(self, key: str) -> Any:
        """A fresh copy of the value of ``key`` from the first local tier holding it, or
        :data:`MISSING`; counts each tier's hit or miss."""
        # hot path: every Memory.get with a cache starts here (Metrics.hit and restore inlined)
        for name, cache in self.local:
            snap = cache.get_now(key)
            if snap is not None:
                hits = self.metrics.tier_hits
                hits[name] = hits.get(name, 0) + 1
                return marshal.loads(snap[1:]) if snap[:1] == b"m" else pickle.loads(snap[1:])
            self.metrics.miss(name)
        return MISSING

    def ttl(self, record_ttl: float | None, cache_ttl: float | None) -> float | None:
        """A tier entry's TTL: the record's remaining TTL bounded by the cache TTL."""
        limit = cache_ttl if cache_ttl is not None else self.cache_ttl
        if record_ttl is None:
            return limit
        return record_ttl if limit is None else min(record_ttl, limit)

    async def read(
        self,
        key: str,
        kind: str,
        id: str,
        source: Source,
        *,
        use_cache: bool,
        cache_ttl: float | None,
    ) -> Any:
        """The value of ``key`` (``kind/id``) after the local tiers missed, or :data:`MISSING`."""
        if not use_cache:
            return await self._read_through(key, kind, id, source, False, cache_ttl)
        flight = self.inflight.get(key)
        if flight is not None:
            return await self._follow(flight, key, kind, id, source, cache_ttl)
        return await self._lead(key, kind, id, source, cache_ttl)

    async def _lead(
        self, key: str, kind: str, id: str, source: Source, cache_ttl: float | None
    ) -> Any:
        """Read for every concurrent miss of ``key`` in this process."""
        flight = asyncio.get_running_loop().create_future()
        self.inflight[key] = flight
        try:
            value = await self._read_through(key, kind, id, source, True, cache_ttl)
        except asyncio.CancelledError:
            flight.cancel()
            raise
        except BaseException as exc:
            flight.set_exception(exc)
            flight.exception()  # followers re-raise it; mark it retrieved
            raise
        else:
            flight.set_result(value)
            return value
        finally:
            if self.inflight.get(key) is flight:
                del self.inflight[key]

    async def _follow(
        self,
        flight: asyncio.Future[Any],
        key: str,
        kind: str,
        id: str,
        source: Source,
        cache_ttl: float | None,
    ) -> Any:
        """Share the leader's read of ``key``; read alone if the leader was cancelled."""
        try:
            value = await asyncio.shield(flight)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not flight.cancelled() or (task is not None and task.cancelling()):
                raise
            return await self._read_through(key, kind, id, source, True, cache_ttl)
        if value is MISSING:
            return value
        # followers must not share the leader's object
        snap = snapshot(value)
        return value if snap is None else restore(snap)

    async def _read_through(
        self,
        key: str,
        kind: str,
        id: str,
        source: Source,
        use_cache: bool,
        cache_ttl: float | None,
    ) -> Any:
        """Remote tiers, then the backend; fills the tiers the value was not in."""
        since = self.epochs.begin(key)
        try:
            frame, leased = None, None
            if use_cache and self.remote:
                frame, leased = await self._remote_get(key)
            ttl_left: float | None = None
            try:
                if frame is not None:
                    value = await source.decode(kind, frame, id)
                else:
                    found = await source.fetch(kind, id)
                    if found is None:
                        return MISSING
                    frame, ttl_left = found
                    # decode first: a frame this reader refuses is never put in a shared tier
                    value = await source.decode(kind, frame, id)
                    if use_cache and self.remote and self.epochs.same(key, since):
                        await self._fill_remote(key, frame, self.ttl(ttl_left, cache_ttl))
            finally:
                if leased is not None:
                    await _release(leased, key)
            if use_cache and self.local and self.epochs.same(key, since):
                # a value that came from a remote tier keeps only the remote TTL bound
                self._fill_local(key, value, self.ttl(ttl_left, cache_ttl))
            return value
        finally:
            self.epochs.end(key)

    async def _remote_get(self, key: str) -> tuple[bytes | None, Cache | None]:
        """The frame of ``key`` in the first remote tier holding it; else maybe a lease."""
        for name, cache in self.remote:
            try:
                frame = await cache.get(key)
            except Exception:
                frame = None
            if frame is not None:
                self.metrics.hit(name)
                return frame, None
            self.metrics.miss(name)
        return await self._lease_or_wait(key)

    async def _lease_or_wait(self, key: str) -> tuple[bytes | None, Cache | None]:
        """Cross-process stampede guard: one client refills, the others wait briefly."""
        cache = next((tier for _, tier in self.remote if tier.supports_lease), None)
        if cache is None:
            return None, None
        try:
            if await cache.lease(key, LEASE_SECONDS):
                return None, cache
            # Another process is refilling: wait for its value, or for its lease to
            # end without one (it saw a write, or failed) and take over the refill.
            for delay in LEASE_WAITS:
                await asyncio.sleep(delay)
                frame = await cache.get(key)
                if frame is not None:
                    return frame, None
                if await cache.lease(key, LEASE_SECONDS):
                    return None, cache
        except Exception:
            return None, None
        return None, None

    async def _fill_remote(self, key: str, frame: bytes, ttl: float | None) -> None:
        for _, cache in self.remote:
            try:  # a cache refuses (and counts) values past its item limit
                await cache.set(key, frame, ttl)
            except Exception:  # a failing cache is a miss, not an error
                pass

    def _fill_local(self, key: str, value: Any, ttl: float | None) -> bytes | None:
        snap = snapshot(value)
        if snap is not None:
            for _, cache in self.local:
                cache.set_now(key, snap, ttl)
        return snap

    # -- reads of several keys -----------------------------------------------------------
    async def read_many(
        self, kind: str, keys: Mapping[str, str], source: Source, *, use_cache: bool
    ) -> dict[str, Any]:
        """``{id: value}`` for the ids of ``keys`` (``{id: cache key}``) of ``kind`` that exist."""
        found: dict[str, Any] = {}
        missing = self._local_many(keys, found) if use_cache else list(keys)
        since = {id: self.epochs.begin(keys[id]) for id in missing}
        try:
            if use_cache and missing and self.remote:
                missing = await self._remote_many(kind, keys, missing, since, source, found)
            if missing:
                await self._fetch_many(kind, keys, missing, since, source, found, use_cache)
        finally:
            for id in since:
                self.epochs.end(keys[id])
        return found

    def _local_many(self, keys: Mapping[str, str], found: dict[str, Any]) -> list[str]:
        missing = list(keys)
        for name, cache in self.local:
            hits, missing = self._split(name, keys, missing, cache.get_now)
            for id, snap in hits:
                found[id] = restore(snap)
        return missing

    def _split(
        self,
        tier: str,
        keys: Mapping[str, str],
        missing: list[str],
        lookup: Callable[[str], bytes | None],
    ) -> tuple[list[tuple[str, bytes]], list[str]]:
        """``(hits, still missing)`` of one tier for ``missing``, counted in the metrics."""
        hits: list[tuple[str, bytes]] = []
        still: list[str] = []
        for id in missing:
            item = lookup(keys[id])
            if item is None:
                self.metrics.miss(tier)
                still.append(id)
            else:
                self.metrics.hit(tier)
                hits.append((id, item))
        return hits, still

    async def _remote_many(
        self,
        kind: str,
        keys: Mapping[str, str],
        missing: list[str],
        since: Mapping[str, int],
        source: Source,
        found: dict[str, Any],
    ) -> list[str]:
        for name, cache in self.remote:
            try:
                got = await cache.get_many([keys[id] for id in missing])
            except Exception:
                got = {}
            hits, missing = self._split(name, keys, missing, got.get)
            for id, frame in hits:
                found[id] = await self._decode_fill(
                    source.decode(kind, frame, id), keys[id], since[id]
                )
        return missing

    async def _fetch_many(
        self,
        kind: str,
        keys: Mapping[str, str],
        missing: list[str],
        since: Mapping[str, int],
        source: Source,
        found: dict[str, Any],
        use_cache: bool,
    ) -> None:
        records = await source.fetch_many(kind, missing)
        fill: dict[str, bytes] = {}
        for id in missing:
            record = records.get(id)
            if record is None:
                continue
            frame, ttl_left = record
            found[id] = await self._decode_fill(
                source.decode(kind, frame, id), keys[id], since[id], ttl_left, use_cache
            )
            if self.epochs.same(keys[id], since[id]) and ttl_left is None:
                fill[keys[id]] = frame
        if use_cache and fill:
            for _, cache in self.remote:
                try:
                    await cache.set_many(fill, self.cache_ttl)
                except Exception:
                    pass

    async def _decode_fill(
        self,
        decoding: Awaitable[Any],
        key: str,
        since: int,
        ttl_left: float | None = None,
        use_cache: bool = True,
    ) -> Any:
        """Await a value's decoding and fill the local tiers with it (when no write intervened)."""
        value = await decoding
        if use_cache and self.local and self.epochs.same(key, since):
            snap = self._fill_local(key, value, self.ttl(ttl_left, None))
            if snap is not None:
                return restore(snap)
        return value


async def _release(cache: Cache, key: str) -> None:
    try:
        await cache.release(key)
    except Exception:
        pass


__all__ = [
    "MISSING",
    "Epochs",
    "Source",
    "Tiers",
    "restore",
    "seal_remote",
    "snapshot",
]
