"""The memory API: :func:`open_memory` and :class:`Memory`.

Lifecycle (see docs/architecture.md for the diagram)::

    open_memory(...)           build config, load plugins, build pipeline (no I/O)
    async with memory:         open backend, open caches, subscribe to invalidations
        await memory.put(...)  object -> serializer -> compressor -> encryptor -> backend
        await memory.get(...)  local cache -> remote caches -> backend -> decode
    (exit)                     unsubscribe, close caches, close backend

A ``Memory`` opens itself on first use when not used as a context manager.

Caching rules:

* Reads go local cache -> remote caches (in URL order) -> backend; a hit in a
  later tier fills the earlier ones. Concurrent misses of one key within a
  process share one backend read (single-flight); a remote cache offering
  ``lease`` limits refills across processes.
* Writes and deletes invalidate every tier. The in-process cache is then
  written through when no other write to the same key overlapped; remote
  caches are invalidated (deleted), never written through, so two processes
  racing cannot leave an older value there.
* Every write bumps a per-key epoch: a read that started before a write
  never fills a cache after it. So a cache never serves a value older than
  one acknowledged as written through the same ``Memory``.
* The in-process cache holds a private snapshot (``marshal``, or ``pickle``
  for types marshal cannot hold; it never leaves the process) and every hit
  returns a fresh object: callers cannot mutate what the cache holds.
"""

from __future__ import annotations

import asyncio
import marshal
import pickle
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import attrs

from .backend import Backend, NamespaceStats, SeriesEntry
from .cache import Cache, InProcessCache
from .codecs import RESOURCE_NS as _RESOURCE_NS
from .compat import SeedMethods
from .config import MemoryConfig, load_config, mask_url
from .errors import (
    BackendUnavailable,
    ConfigError,
    ConflictError,
    FrameError,
    HivememError,
    InvalidKey,
    ResourceMissing,
    ValueTooLarge,
)
from .metrics import Metrics
from .pipeline import Pipeline, read_header
from .plugins import Plugins, get_plugins
from .redact import plugin_acall, plugin_call, secrets_of
from .sealing import SealedCache, cache_secrets

T = TypeVar("T")

#: longest accepted namespace, kind and series name (characters)
MAX_NAME = 256
#: longest accepted id (characters)
MAX_ID = 4096

_MISSING = object()

#: the namespace holding codec resources (zstd dictionaries, ...); not for user data
RESOURCE_NS = _RESOURCE_NS


def _check_name(
    value: Any, what: str, max_len: int = MAX_NAME, *, allow_empty: bool = False
) -> str:
    if type(value) is not str:
        if isinstance(value, str):
            value = str(value)
        else:
            raise InvalidKey(f"{what} must be a str, got {type(value).__name__} {value!r:.80}")
    if not value and not allow_empty:
        raise InvalidKey(f"{what} must not be empty")
    if len(value) > max_len:
        raise InvalidKey(
            f"{what} {value[:40]!r}... is {len(value)} characters; the limit is {max_len}"
        )
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidKey(
                f"{what} {value!r:.80} is not valid Unicode (lone surrogate)"
            ) from None
    return value


def _snapshot(value: Any) -> bytes | None:
    """Private in-process copy of a decoded value (None when it cannot be copied)."""
    try:
        return b"m" + marshal.dumps(value)
    except ValueError:
        pass
    try:
        return b"p" + pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        return None


def _restore(snap: bytes) -> Any:
    if snap[:1] == b"m":
        return marshal.loads(snap[1:])
    return pickle.loads(snap[1:])


def _cache_key(ns: str, kind: str, id: str) -> str:
    return f"{len(ns)}:{ns}{len(kind)}:{kind}{id}"


@attrs.frozen
class Page:
    """One page of a prefix listing: values in id order and the cursor for the next page."""

    items: dict[str, Any]
    cursor: str | None


@attrs.frozen
class MemorySummary:
    """Structured contents of a namespace (``Memory.summary()``)."""

    namespace: str
    backend: str
    url: str
    kinds: dict[str, dict[str, int]]
    series: dict[str, dict[str, Any]]
    caches: dict[str, dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return attrs.asdict(self)


@attrs.frozen
class RewriteReport:
    """What ``Memory.rewrite()`` did (or, with ``check_only``, would do).

    ``scanned``/``rewritten``/``skipped`` count records; ``series_scanned`` and
    ``series_rewritten`` count series entries. ``conflicts``: records or
    entries another writer changed meanwhile (left to the writer; a rerun
    checks them again). ``failed``: frames that could not be re-encoded (not
    readable with the configured codecs and keys, or that would lose their
    encryption); ``failures`` names the first of them.
    """

    scanned: int
    rewritten: int
    skipped: int
    conflicts: int
    series_scanned: int = 0
    series_rewritten: int = 0
    failed: int = 0
    failures: tuple[str, ...] = ()

    @property
    def done(self) -> bool:
        """True when nothing was left behind: no conflicts and no failures."""
        return self.conflicts == 0 and self.failed == 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        data = attrs.asdict(self)
        data["failures"] = list(self.failures)
        return data


#: how many failure messages a RewriteReport keeps
_MAX_FAILURES = 20


class _Rewriter:
    """Re-encodes frames for :meth:`Memory.rewrite`, counting what it could not."""

    def __init__(self, memory: Memory, decrypt: bool) -> None:
        self.memory = memory
        self.pipeline = memory._core.pipeline
        self.decrypt = decrypt
        self.failed = 0
        self.failures: list[str] = []

    def fail(self, message: str) -> None:
        self.failed += 1
        if len(self.failures) < _MAX_FAILURES:
            self.failures.append(message)

    async def frame(self, frame: bytes, label: str) -> bytes | None:
        """The frame under today's codecs and primary key; None when current or unreadable."""
        try:
            try:
                new = self.pipeline.reencode(frame, label)
            except ResourceMissing:
                await self.memory._decode(frame, label)  # loads the codec resource
                new = self.pipeline.reencode(frame, label)
        except FrameError as exc:
            self.fail(f"{type(exc).__name__}: {exc}")
            return None
        if (
            new is not None
            and self.pipeline.encryptor is None
            and not self.decrypt
            and read_header(frame, label)[0][-1][0] == "encryptor"
        ):
            self.fail(
                f"{label}: is encrypted but no encryptor is configured, so rewriting would "
                "store it in the clear (configure the encryptor, or pass decrypt=True)"
            )
            return None
        return new


class _Epochs:
    """Per-key change counters, kept only while a read or write watches the key.

    A watcher notes the epoch when it starts (``begin``) and fills a cache at
    the end only if no write bumped the key meanwhile (``same``). Entries are
    dropped when the last watcher ends, so memory stays bounded by the number
    of operations in flight, not by the number of keys ever written.
    """

    __slots__ = ("watch",)

    def __init__(self) -> None:
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


class _Core:
    """State shared by a Memory and its namespace views."""

    def __init__(self, config: MemoryConfig, plugins: Plugins) -> None:
        self.config = config
        self.plugins = plugins
        backend_entry = plugins.registry("backend").for_scheme(config.scheme)
        secrets = secrets_of(config)
        #: name of the plugin providing the backend (errors name it)
        self.backend_plugin = backend_entry.name
        self.backend: Backend = plugin_call(
            "backend",
            backend_entry.name,
            secrets,
            mask_url(config.url),
            backend_entry.factory,
            config.url,
            **config.backend_options,
        )
        self.caches: list[tuple[str, Cache]] = []
        cache_registry = plugins.registry("cache")
        for url in config.cache:
            entry = cache_registry.for_scheme(url.split("://", 1)[0].lower())
            cache = plugin_call("cache", entry.name, secrets, mask_url(url), entry.factory, url)
            name = entry.name
            while any(name == n for n, _ in self.caches):
                name += "'"
            self.caches.append((name, cache))
        self.pipeline = Pipeline(
            config.serializer,
            config.compressor,
            config.encryptor,
            options=config.codec_options,
            plugins=plugins,
            read_codecs=config.read_codecs,
            accept_plaintext=config.accept_plaintext,
        )
        self.caches = self._seal_remote(self.caches)
        self.local: list[tuple[str, InProcessCache]] = []
        self.remote: list[tuple[str, Cache]] = []
        for name, cache in self.caches:
            if isinstance(cache, InProcessCache):
                self.local.append((name, cache))
            elif cache.in_process:
                raise ConfigError(
                    f"cache {name!r} says in_process but does not subclass "
                    "hivemem.cache.InProcessCache (get_now/set_now/delete_now/clear_now)"
                )
            else:
                self.remote.append((name, cache))
        self.metrics = Metrics()
        self.opened = False
        self.closed = False
        self.open_lock: asyncio.Lock | None = None
        self.epochs = _Epochs()
        self.writing: dict[str, int] = {}
        self.inflight: dict[str, asyncio.Future[Any]] = {}
        self.unsubscribe: list[Callable[[], Awaitable[None]]] = []
        self.max_value = self.backend.capabilities.max_value_size

    def _seal_remote(self, caches: list[tuple[str, Cache]]) -> list[tuple[str, Cache]]:
        """Wrap every cache outside the process so its keys and entries are authenticated."""
        if all(c.in_process for _, c in caches):
            return caches
        secrets = cache_secrets(self.config.cache_secret, self.pipeline.encryptor)
        if secrets is None and not self.config.trust_remote_cache:
            tier = next(mask_url(u) for u, (_, c) in zip(self.config.cache, caches, strict=True)
                        if not c.in_process)
            raise ConfigError(
                f"cache tier {tier} is outside the process and anyone who reaches it can write "
                "entries: set cache_secret (HIVEMEM_CACHE_SECRET, 16+ characters, the same in "
                "every process), or configure an encryptor that derives one (fernet), or set "
                "trust_remote_cache = true (HIVEMEM_TRUST_REMOTE_CACHE=1) on a trusted network"
            )
        return [(n, c if c.in_process else SealedCache(c, secrets)) for n, c in caches]

    def bump(self, key: str) -> None:
        self.epochs.bump(key)
        self.inflight.pop(key, None)
        for _, cache in self.local:
            cache.delete_now(key)

    def invalidate_all_local(self) -> None:
        self.epochs.bump_all()
        self.inflight.clear()
        for _, cache in self.local:
            cache.clear_now()


class Memory(SeedMethods):
    """Durable memory for one namespace over a backend, caches and a codec pipeline.

    Build it with :func:`open_memory`. Values are anything the configured
    serializer accepts (the default ``json`` serializer: JSON types plus
    datetimes, bytes, sets, tuples, ...). ``kind`` and ``id`` are any
    non-empty strings (up to 256 and 4096 characters).
    """

    def __init__(self, core: _Core, namespace: str) -> None:
        self._core = core
        self.namespace = _check_name(namespace, "namespace")
        if self.namespace == RESOURCE_NS:
            raise InvalidKey(f"namespace {RESOURCE_NS!r} is reserved for codec resources")
        self._b = core.backend

    # -- lifecycle ---------------------------------------------------------------
    def __repr__(self) -> str:
        return f"Memory({mask_url(self._core.config.url)!r}, namespace={self.namespace!r})"

    @property
    def config(self) -> MemoryConfig:
        """The configuration this memory was built from (secrets masked in its repr)."""
        return self._core.config

    @property
    def backend(self) -> Backend:
        """The backend instance."""
        return self._core.backend

    @property
    def pipeline(self) -> Pipeline:
        """The value pipeline."""
        return self._core.pipeline

    @property
    def caches(self) -> list[tuple[str, Cache]]:
        """``[(tier name, cache)]`` in read order."""
        return list(self._core.caches)

    def namespace_view(self, namespace: str) -> Memory:
        """A Memory for another namespace sharing this one's connections and caches."""
        return Memory(self._core, namespace)

    async def open(self) -> Memory:
        """Connect backend and caches (idempotent); subscribe to invalidations."""
        core = self._core
        if core.opened:
            return self
        if core.closed:
            raise HivememError("this Memory was closed; open a new one")
        if core.open_lock is None:
            core.open_lock = asyncio.Lock()
        async with core.open_lock:
            if core.opened:
                return self
            secrets = secrets_of(core.config)
            target = mask_url(core.config.url)
            await plugin_acall("backend", core.backend_plugin, secrets, target, core.backend.open)
            opened: list[Cache] = []
            try:
                for url, (name, cache) in zip(core.config.cache, core.caches, strict=True):
                    await plugin_acall("cache", name, secrets, mask_url(url), cache.open)
                    opened.append(cache)
                for stage, name, rkind, rid in core.pipeline.resources_needed():
                    await self._load_resource(stage, name, rkind, rid)
                if core.local:
                    unsubscribe = await core.backend.subscribe(
                        self.namespace, self._on_remote_write
                    )
                    if unsubscribe is not None:
                        core.unsubscribe.append(unsubscribe)
            except BaseException:
                for cache in opened:
                    await cache.close()
                await core.backend.close()
                raise
            core.opened = True
        return self

    def _on_remote_write(self, kind: str, id: str | None) -> None:
        if id is None:
            self._core.invalidate_all_local()
        else:
            self._core.bump(_cache_key(self.namespace, kind, id))

    async def close(self) -> None:
        """Unsubscribe, close caches and backend. Safe to call twice."""
        core = self._core
        if core.closed:
            return
        core.closed = True
        if not core.opened:
            return
        for unsubscribe in core.unsubscribe:
            try:
                await unsubscribe()
            except Exception:
                pass
        for _, cache in core.caches:
            await cache.close()
        await core.backend.close()

    async def __aenter__(self) -> Memory:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _ready(self) -> Backend:
        if not self._core.opened:
            await self.open()
        return self._core.backend

    def _fail(self, op: str) -> None:
        self._core.metrics.errors += 1
        self._core.metrics.op(op).errors += 1

    def _done(self, op: str, started: float) -> None:
        stats = self._core.metrics.op(op)
        stats.count += 1
        stats.samples.append(time.perf_counter() - started)

    def _encode(self, value: Any, kind: str, id: str) -> bytes:
        limit = self._core.max_value
        frame = self._core.pipeline.encode(
            value, f"{kind}/{id}", limit=limit, where=self._core.backend.name
        )
        if limit is not None and len(frame) > limit:
            raise ValueTooLarge(f"{kind}/{id}", len(frame), limit, self._core.backend.name)
        return frame

    # -- codec resources ---------------------------------------------------------------
    async def _load_resource(self, stage: str, name: str, rkind: str, rid: str) -> None:
        rec = await self._core.backend.get(RESOURCE_NS, rkind, rid)
        if rec is None:
            raise ResourceMissing(
                rkind, rid, stage=(stage, name), detail="which is not stored in this memory"
            )
        self._core.pipeline.codec(stage, name).add_resource(rkind, rid, rec.value)

    async def _decode(self, frame: bytes, label: str) -> Any:
        """Decode a frame, loading a codec resource from the store when one is missing."""
        try:
            return self._core.pipeline.decode(frame, label)
        except ResourceMissing as exc:
            if exc.stage is None:
                raise
            try:
                await self._load_resource(*exc.stage, exc.resource_kind, exc.resource_id)
            except ResourceMissing:
                raise ResourceMissing(
                    exc.resource_kind,
                    exc.resource_id,
                    exc.key,
                    stage=exc.stage,
                    detail="which is not stored in this memory",
                ) from None
            return self._core.pipeline.decode(frame, label)

    async def put_resource(self, resource_kind: str, resource_id: str, data: bytes) -> None:
        """Store a codec resource (e.g. a zstd dictionary) for every process using this store.

        Resources live in the reserved namespace ``__hivemem__`` as raw bytes
        (not through the pipeline: they must be readable before any codec is).
        """
        await (await self._ready()).put(
            RESOURCE_NS,
            _check_name(resource_kind, "resource kind"),
            _check_name(resource_id, "resource id"),
            bytes(data),
        )

    async def get_resource(self, resource_kind: str, resource_id: str) -> bytes | None:
        """A stored codec resource, or None."""
        rec = await (await self._ready()).get(RESOURCE_NS, resource_kind, resource_id)
        return None if rec is None else rec.value

    # -- records -------------------------------------------------------------------
    async def put(
        self,
        kind: str,
        id: str,
        value: Any,
        *,
        ttl: float | None = None,
        expected_version: int | None = None,
        cache: bool = True,
    ) -> int:
        """Store ``value``; return its new version.

        ``ttl`` expires the record after that many seconds. ``expected_version``
        makes the write conditional (0: only if absent) and raises
        :class:`~hivemem.errors.ConflictError` when another writer got there
        first. ``cache=False`` skips writing the value through to the local cache.
        """
        started = time.perf_counter()
        kind = _check_name(kind, "kind")
        id = _check_name(id, "id", MAX_ID)
        if ttl is not None and not ttl > 0:
            raise ValueError(f"ttl must be > 0 seconds, got {ttl!r}")
        core = self._core
        try:
            frame = self._encode(value, kind, id)
            backend = await self._ready()
            key = _cache_key(self.namespace, kind, id)
            core.bump(key)
            gen = core.epochs.begin(key)
            core.writing[key] = core.writing.get(key, 0) + 1
            try:
                version = await backend.put(
                    self.namespace, kind, id, frame, ttl=ttl, expected_version=expected_version
                )
                core.metrics.writes += 1
                await self._invalidate_remote([key])
                if (
                    cache
                    and core.local
                    and core.writing.get(key) == 1
                    and core.epochs.same(key, gen)
                ):
                    snap = _snapshot(value)
                    if snap is not None and snap[:1] == b"m":
                        cache_ttl = (
                            min(ttl, core.config.cache_ttl or ttl) if ttl else core.config.cache_ttl
                        )
                        for _, c in core.local:
                            c.set_now(key, snap, cache_ttl)
            finally:
                core.epochs.end(key)
                left = core.writing[key] - 1
                if left:
                    core.writing[key] = left
                else:
                    del core.writing[key]
        except ConflictError:
            self._fail("put")
            raise
        except BaseException:
            self._fail("put")
            raise
        self._done("put", started)
        return version

    async def _invalidating(self, keys: list[str], call: Awaitable[T]) -> T:
        """Run a backend write with every tier invalidated around it (even if cancelled)."""
        for key in keys:
            self._core.bump(key)
        try:
            return await call
        finally:
            for key in keys:
                self._core.bump(key)
            await self._invalidate_remote(keys)

    async def _invalidate_remote(self, keys: list[str]) -> None:
        if not self._core.remote or not keys:
            return
        caches = [c for _, c in self._core.remote]

        async def run() -> None:
            for c in caches:
                try:
                    if len(keys) == 1:
                        await c.delete(keys[0])
                    else:
                        await c.delete_many(keys)
                except Exception:
                    pass

        # shielded: a cancelled writer still invalidates
        await asyncio.shield(asyncio.ensure_future(run()))

    async def get(
        self,
        kind: str,
        id: str,
        default: Any = None,
        *,
        use_cache: bool = True,
        cache_ttl: float | None = None,
    ) -> Any:
        """The value at ``kind/id``, or ``default`` when absent or expired."""
        started = time.perf_counter()
        kind = _check_name(kind, "kind")
        id = _check_name(id, "id", MAX_ID)
        core = self._core
        key = _cache_key(self.namespace, kind, id)
        if use_cache and core.local:
            for name, cache in core.local:
                snap = cache.get_now(key)
                if snap is not None:
                    core.metrics.hit(name)
                    self._done("get", started)
                    return _restore(snap)
                core.metrics.miss(name)
        try:
            if not use_cache:
                value = await self._load(kind, id, key, False, cache_ttl)
            else:
                value = await self._single_flight(kind, id, key, cache_ttl)
        except BaseException:
            self._fail("get")
            raise
        self._done("get", started)
        return default if value is _MISSING else value

    async def _single_flight(self, kind: str, id: str, key: str, cache_ttl: float | None) -> Any:
        """Concurrent misses of one key share the first caller's backend read."""
        core = self._core
        flight = core.inflight.get(key)
        if flight is not None:
            try:
                value = await asyncio.shield(flight)
                if value is _MISSING:
                    return value
                # followers must not share the leader's object
                snap = _snapshot(value)
                return value if snap is None else _restore(snap)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not flight.cancelled() or (task is not None and task.cancelling()):
                    raise
                # the leader was cancelled, not us: read for ourselves
                return await self._load(kind, id, key, True, cache_ttl)
        flight = asyncio.get_running_loop().create_future()
        core.inflight[key] = flight
        try:
            value = await self._load(kind, id, key, True, cache_ttl)
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
            if core.inflight.get(key) is flight:
                del core.inflight[key]

    async def _load(
        self, kind: str, id: str, key: str, use_cache: bool, cache_ttl: float | None
    ) -> Any:
        core = self._core
        gen = core.epochs.begin(key)
        try:
            return await self._load_watched(kind, id, key, use_cache, cache_ttl, gen)
        finally:
            core.epochs.end(key)

    async def _load_watched(
        self, kind: str, id: str, key: str, use_cache: bool, cache_ttl: float | None, gen: int
    ) -> Any:
        core = self._core
        backend = await self._ready()
        label = f"{kind}/{id}"
        frame: bytes | None = None
        leased: Cache | None = None
        if use_cache:
            for name, cache in core.remote:
                try:
                    frame = await cache.get(key)
                except Exception:
                    frame = None
                if frame is not None:
                    core.metrics.hit(name)
                    break
                core.metrics.miss(name)
            if frame is None and core.remote:
                frame, leased = await self._lease_or_wait(key)
        ttl_left: float | None = None
        value: Any = _MISSING
        try:
            if frame is None:
                rec = await backend.get(self.namespace, kind, id)
                core.metrics.reads += 1
                if rec is None:
                    return _MISSING
                frame = rec.value
                if rec.expires_at is not None:
                    ttl_left = max(0.001, rec.expires_at - time.time())
                # decode first: a frame this reader refuses is never put in a shared tier
                value = await self._decode(frame, label)
                if use_cache and core.remote and core.epochs.same(key, gen):
                    for _, cache in core.remote:
                        try:  # a cache refuses (and counts) values past its item limit
                            await cache.set(key, frame, self._ttl(ttl_left, cache_ttl))
                        except Exception:  # a failing cache is a miss, not an error
                            pass
        finally:
            if leased is not None:
                try:
                    await leased.release(key)
                except Exception:
                    pass
        if value is _MISSING:  # came from a remote tier
            value = await self._decode(frame, label)
        if use_cache and core.local and core.epochs.same(key, gen):
            snap = _snapshot(value)
            if snap is not None:
                # a value that came from a remote cache keeps only the remote TTL bound
                ttl = self._ttl(ttl_left, cache_ttl)
                for _, c in core.local:
                    c.set_now(key, snap, ttl)
        return value

    def _ttl(self, record_ttl: float | None, cache_ttl: float | None) -> float | None:
        limit = cache_ttl if cache_ttl is not None else self._core.config.cache_ttl
        if record_ttl is None:
            return limit
        return record_ttl if limit is None else min(record_ttl, limit)

    async def _lease_or_wait(self, key: str) -> tuple[bytes | None, Cache | None]:
        """Cross-process stampede guard: one client refills, the others wait briefly."""
        for _, cache in self._core.remote:
            if not cache.supports_lease:
                continue
            lease = cache.lease
            try:
                if await lease(key, 2.0):
                    return None, cache
                # Another process is refilling: wait for its value, or for its lease to
                # end without one (it saw a write, or failed) and take over the refill.
                for delay in (0.005, 0.01, 0.02, 0.04, 0.08):
                    await asyncio.sleep(delay)
                    frame = await cache.get(key)
                    if frame is not None:
                        return frame, None
                    if await lease(key, 2.0):
                        return None, cache
            except Exception:
                return None, None
            return None, None
        return None, None

    async def get_versioned(self, kind: str, id: str) -> tuple[Any, int] | None:
        """``(value, version)`` straight from the backend (for compare-and-set), or None."""
        started = time.perf_counter()
        kind = _check_name(kind, "kind")
        id = _check_name(id, "id", MAX_ID)
        try:
            backend = await self._ready()
            rec = await backend.get(self.namespace, kind, id)
            self._core.metrics.reads += 1
            result = (
                None
                if rec is None
                else (await self._decode(rec.value, f"{kind}/{id}"), rec.version)
            )
        except BaseException:
            self._fail("get_versioned")
            raise
        self._done("get_versioned", started)
        return result

    async def update(
        self,
        kind: str,
        id: str,
        fn: Callable[[Any], Any],
        *,
        default: Any = None,
        retries: int = 20,
        ttl: float | None = None,
    ) -> Any:
        """Read-modify-write with compare-and-set, retried on conflict; returns the new value."""
        for _ in range(retries):
            current = await self.get_versioned(kind, id)
            value, version = (default, 0) if current is None else current
            new = fn(value)
            try:
                await self.put(kind, id, new, expected_version=version, ttl=ttl)
                return new
            except ConflictError:
                continue
        raise ConflictError(f"{kind}/{id}", -1, None)

    async def delete(self, kind: str, id: str, *, expected_version: int | None = None) -> bool:
        """Delete; True when a live record was removed."""
        started = time.perf_counter()
        kind = _check_name(kind, "kind")
        id = _check_name(id, "id", MAX_ID)
        core = self._core
        try:
            backend = await self._ready()
            removed = await self._invalidating(
                [_cache_key(self.namespace, kind, id)],
                backend.delete(self.namespace, kind, id, expected_version=expected_version),
            )
            core.metrics.writes += 1
        except BaseException:
            self._fail("delete")
            raise
        self._done("delete", started)
        return removed

    async def put_many(
        self, kind: str, items: Mapping[str, Any], *, ttl: float | None = None
    ) -> None:
        """Store several values of one kind in one backend round trip."""
        started = time.perf_counter()
        kind = _check_name(kind, "kind")
        if ttl is not None and not ttl > 0:
            raise ValueError(f"ttl must be > 0 seconds, got {ttl!r}")
        core = self._core
        try:
            frames = {
                _check_name(id, "id", MAX_ID): self._encode(v, kind, id) for id, v in items.items()
            }
            if not frames:
                return
            backend = await self._ready()
            keys = [_cache_key(self.namespace, kind, id) for id in frames]
            await self._invalidating(keys, backend.put_many(self.namespace, kind, frames, ttl=ttl))
            core.metrics.writes += len(frames)
        except BaseException:
            self._fail("put_many")
            raise
        self._done("put_many", started)

    async def get_many(
        self, kind: str, ids: Iterable[str], *, use_cache: bool = True
    ) -> dict[str, Any]:
        """``{id: value}`` for the ids that exist, in the order asked; one backend round trip."""
        started = time.perf_counter()
        kind = _check_name(kind, "kind")
        wanted = [_check_name(id, "id", MAX_ID) for id in dict.fromkeys(ids)]
        core = self._core
        found: dict[str, Any] = {}
        keys: dict[str, str] = {}
        watched: list[str] = []
        try:
            keys = {id: _cache_key(self.namespace, kind, id) for id in wanted}
            missing = list(wanted)
            if use_cache:
                for name, cache in core.local:
                    still = []
                    for id in missing:
                        snap = cache.get_now(keys[id])
                        if snap is None:
                            core.metrics.miss(name)
                            still.append(id)
                        else:
                            core.metrics.hit(name)
                            found[id] = _restore(snap)
                    missing = still
            gens = {id: core.epochs.begin(keys[id]) for id in missing}
            watched = list(gens)
            backend = await self._ready()
            if use_cache and missing:
                for name, cache in core.remote:
                    try:
                        got = await cache.get_many([keys[id] for id in missing])
                    except Exception:
                        got = {}
                    still = []
                    for id in missing:
                        frame = got.get(keys[id])
                        if frame is None:
                            core.metrics.miss(name)
                            still.append(id)
                        else:
                            core.metrics.hit(name)
                            found[id] = await self._decode_fill(
                                frame, kind, id, keys[id], gens[id], None, use_cache
                            )
                    missing = still
            if missing:
                records = await backend.get_many(self.namespace, kind, missing)
                core.metrics.reads += len(missing)
                fill: dict[str, bytes] = {}
                for id in missing:
                    rec = records.get(id)
                    if rec is None:
                        continue
                    ttl_left = (
                        None if rec.expires_at is None else max(0.001, rec.expires_at - time.time())
                    )
                    found[id] = await self._decode_fill(
                        rec.value, kind, id, keys[id], gens[id], ttl_left, use_cache
                    )
                    if core.epochs.same(keys[id], gens[id]) and rec.expires_at is None:
                        fill[keys[id]] = rec.value
                if use_cache and fill:
                    for _, cache in core.remote:
                        try:
                            await cache.set_many(fill, core.config.cache_ttl)
                        except Exception:
                            pass
        except BaseException:
            self._fail("get_many")
            raise
        finally:
            for id in watched:
                core.epochs.end(keys[id])
        self._done("get_many", started)
        return {id: found[id] for id in wanted if id in found}

    async def _decode_fill(
        self,
        frame: bytes,
        kind: str,
        id: str,
        key: str,
        gen: int,
        ttl_left: float | None,
        use_cache: bool,
    ) -> Any:
        core = self._core
        value = await self._decode(frame, f"{kind}/{id}")
        if use_cache and core.local and core.epochs.same(key, gen):
            snap = _snapshot(value)
            if snap is not None:
                for _, c in core.local:
                    c.set_now(key, snap, self._ttl(ttl_left, None))
                return _restore(snap)
        return value

    async def delete_many(self, kind: str, ids: Iterable[str]) -> int:
        """Delete several ids in one backend round trip; return how many existed."""
        started = time.perf_counter()
        kind = _check_name(kind, "kind")
        wanted = [_check_name(id, "id", MAX_ID) for id in dict.fromkeys(ids)]
        core = self._core
        try:
            backend = await self._ready()
            keys = [_cache_key(self.namespace, kind, id) for id in wanted]
            n = await self._invalidating(keys, backend.delete_many(self.namespace, kind, wanted))
            core.metrics.writes += len(wanted)
        except BaseException:
            self._fail("delete_many")
            raise
        self._done("delete_many", started)
        return n

    async def list(
        self,
        kind: str,
        prefix: str = "",
        *,
        limit: int | None = None,
        cursor: str | None = None,
        reverse: bool = False,
    ) -> dict[str, Any]:
        """``{id: value}`` for ids starting with ``prefix`` in id order (descending: ``reverse``).

        Costs what it returns (an index range), not what is stored.
        """
        return (await self.page(kind, prefix, limit=limit, cursor=cursor, reverse=reverse)).items

    async def page(
        self,
        kind: str,
        prefix: str = "",
        *,
        limit: int | None = None,
        cursor: str | None = None,
        reverse: bool = False,
    ) -> Page:
        """Like :meth:`list` plus the cursor of the next page (None on the last page)."""
        started = time.perf_counter()
        kind = _check_name(kind, "kind")
        prefix = _check_name(prefix, "prefix", MAX_ID, allow_empty=True)
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        try:
            backend = await self._ready()
            rows = await backend.list_records(
                self.namespace, kind, prefix, limit=limit, cursor=cursor, reverse=reverse
            )
            self._core.metrics.reads += len(rows)
            items = {id: await self._decode(rec.value, f"{kind}/{id}") for id, rec in rows}
        except BaseException:
            self._fail("list")
            raise
        self._done("list", started)
        next_cursor = rows[-1][0] if rows and limit is not None and len(rows) == limit else None
        return Page(items, next_cursor)

    async def list_ids(
        self,
        kind: str,
        prefix: str = "",
        *,
        limit: int | None = None,
        cursor: str | None = None,
        reverse: bool = False,
    ) -> list[str]:
        """Ids starting with ``prefix`` in id order, without reading values."""
        kind = _check_name(kind, "kind")
        prefix = _check_name(prefix, "prefix", MAX_ID, allow_empty=True)
        backend = await self._ready()
        return await backend.list_ids(
            self.namespace, kind, prefix, limit=limit, cursor=cursor, reverse=reverse
        )

    async def iter_pages(self, kind: str, prefix: str = "", *, page_size: int = 500) -> Any:
        """Async iterator over pages ``[(id, value), ...]`` of a whole kind."""
        cursor = None
        while True:
            page = await self.page(kind, prefix, limit=page_size, cursor=cursor)
            if page.items:
                yield list(page.items.items())
            if page.cursor is None:
                return
            cursor = page.cursor

    async def kinds(self) -> list[str]:
        """Kinds with at least one live record in this namespace."""
        return await (await self._ready()).kinds(self.namespace)

    # -- series --------------------------------------------------------------------
    async def append(self, series: str, value: Any, *, ts: float | None = None) -> SeriesEntry:
        """Append ``value`` to a series without rewriting it; returns the entry (frame bytes)."""
        started = time.perf_counter()
        series = _check_name(series, "series")
        try:
            frame = self._encode(value, "series:" + series, "")
            entry = await (await self._ready()).append(self.namespace, series, frame, ts=ts)
            self._core.metrics.writes += 1
        except BaseException:
            self._fail("append")
            raise
        self._done("append", started)
        return entry

    async def replace_series(
        self, series: str, values: Sequence[Any], *, ts: float | Sequence[float] | None = None
    ) -> None:
        """Atomically replace a series with ``values`` (all at time ``ts``, default now)."""
        started = time.perf_counter()
        series = _check_name(series, "series")
        now = time.time()
        if ts is None or isinstance(ts, int | float):
            stamps = [float(now if ts is None else ts)] * len(values)
        else:
            stamps = [float(t) for t in ts]
            if len(stamps) != len(values):
                raise ValueError("ts must have one timestamp per value")
        try:
            entries = [
                (stamps[i], self._encode(v, "series:" + series, str(i)))
                for i, v in enumerate(values)
            ]
            await (await self._ready()).replace_series(self.namespace, series, entries)
            self._core.metrics.writes += 1
        except BaseException:
            self._fail("replace_series")
            raise
        self._done("replace_series", started)

    async def read_series(
        self,
        series: str,
        *,
        start: float | None = None,
        end: float | None = None,
        limit: int | None = None,
        latest: bool = False,
    ) -> list[tuple[float, Any]]:
        """``[(ts, value)]`` with ``start <= ts < end``; ``latest=True``: the last ``limit``."""
        started = time.perf_counter()
        series = _check_name(series, "series")
        try:
            entries = await (await self._ready()).read_series(
                self.namespace, series, start=start, end=end, limit=limit, latest=latest
            )
            self._core.metrics.reads += 1
            out = [(e.ts, await self._decode(e.value, f"series:{series}#{e.seq}")) for e in entries]
        except BaseException:
            self._fail("read_series")
            raise
        self._done("read_series", started)
        return out

    async def series_names(self, prefix: str = "") -> list[str]:
        """Names of non-empty series starting with ``prefix``."""
        return await (await self._ready()).series_names(self.namespace, prefix)

    async def delete_series(self, series: str) -> int:
        """Delete a series; return how many entries it had."""
        series = _check_name(series, "series")
        return await (await self._ready()).delete_series(self.namespace, series)

    async def aggregate_series(
        self,
        series: str,
        field: str | None = None,
        *,
        start: float | None = None,
        end: float | None = None,
    ) -> dict[str, float | int | None]:
        """count/sum/mean/min/max of numeric values (or of ``value[field]``) in a time range."""
        rows = await self.read_series(series, start=start, end=end)
        nums: list[float] = []
        for _, value in rows:
            v = value.get(field) if field is not None and isinstance(value, dict) else value
            if isinstance(v, int | float) and not isinstance(v, bool):
                nums.append(float(v))
        if not nums:
            return {"count": 0, "sum": 0.0, "mean": None, "min": None, "max": None}
        return {
            "count": len(nums),
            "sum": sum(nums),
            "mean": sum(nums) / len(nums),
            "min": min(nums),
            "max": max(nums),
        }

    # -- counters ------------------------------------------------------------------
    async def incr(self, kind: str, id: str, field: str, amount: float = 1.0) -> float:
        """Atomically add ``amount`` to a numeric field; returns the new value.

        Counters are stored as plain numbers beside records (not through the
        codec pipeline) so the backend can update them atomically.
        """
        started = time.perf_counter()
        kind = _check_name(kind, "kind")
        id = _check_name(id, "id", MAX_ID)
        field = _check_name(field, "field", MAX_NAME, allow_empty=True)
        try:
            value = await (await self._ready()).incr(self.namespace, kind, id, field, float(amount))
            self._core.metrics.writes += 1
        except BaseException:
            self._fail("incr")
            raise
        self._done("incr", started)
        return value

    async def counters(self, kind: str, ids: Iterable[str]) -> dict[str, dict[str, float]]:
        """``{id: {field: value}}`` for the ids that have counters (one round trip)."""
        kind = _check_name(kind, "kind")
        wanted = [_check_name(id, "id", MAX_ID) for id in dict.fromkeys(ids)]
        return await (await self._ready()).get_counters(self.namespace, kind, wanted)

    async def delete_counters(self, kind: str, id: str) -> bool:
        """Remove every counter field of one id."""
        kind = _check_name(kind, "kind")
        id = _check_name(id, "id", MAX_ID)
        return await (await self._ready()).delete_counters(self.namespace, kind, id)

    # -- whole namespace ---------------------------------------------------------------
    async def summary(self) -> MemorySummary:
        """Counts and bytes per kind, series lengths and time spans, cache stats."""
        stats: NamespaceStats = await (await self._ready()).namespace_stats(self.namespace)
        return MemorySummary(
            namespace=self.namespace,
            backend=self._core.backend.name,
            url=mask_url(self._core.config.url),
            kinds={k: {"count": s.count, "bytes": s.bytes} for k, s in stats.kinds.items()},
            series={
                k: {"length": s.length, "bytes": s.bytes, "oldest": s.oldest, "newest": s.newest}
                for k, s in stats.series.items()
            },
            caches={name: cache.stats() for name, cache in self._core.caches},
        )

    def metrics(self) -> dict[str, Any]:
        """Per-operation counts, errors, latency p50/p95/p99 and per-tier cache hit ratios."""
        return self._core.metrics.to_dict({name: c.stats() for name, c in self._core.caches})

    def clear_local_cache(self) -> None:
        """Drop every entry of the in-process cache tiers (synchronous)."""
        self._core.invalidate_all_local()

    async def clear_caches(self) -> None:
        """Drop every entry of every cache tier."""
        self._core.invalidate_all_local()
        for _, cache in self._core.remote:
            await cache.clear()

    async def ping(self) -> bool:
        """True when the backend answers; never raises."""
        try:
            return bool(await (await self._ready()).ping())
        except Exception:
            return False

    async def stats(self) -> dict[str, Any]:
        """Backend facts plus cache stats."""
        backend = await self._ready()
        return {
            "backend": await backend.stats(),
            "caches": {name: c.stats() for name, c in self._core.caches},
        }

    async def drop(self) -> None:
        """Delete everything in this namespace (records, series, counters) and its cache entries."""
        await (await self._ready()).drop_namespace(self.namespace)
        await self.clear_caches()

    async def rewrite(
        self,
        kinds: Iterable[str] | None = None,
        *,
        series: Iterable[str] | None = None,
        batch_size: int = 200,
        progress: Callable[[int, int], None] | None = None,
        check_only: bool = False,
        decrypt: bool = False,
    ) -> RewriteReport:
        """Re-encode every record and series entry not written with today's codecs/keys.

        Used for key rotation (``hivemem rotate-keys``) and for turning on
        compression for old data. Each record is rewritten with compare-and-set
        on the version it was read at and keeps its remaining TTL; each series
        entry with the backend's compare-and-set by value
        (:meth:`~hivemem.backend.Backend.rewrite_series`), keeping its time and
        order. A concurrent writer always wins and nothing is lost; an
        interrupted run can simply be started again.

        ``kinds``/``series`` choose what to scan: by default every kind and
        every series; with ``kinds`` given and ``series`` not, no series.
        ``check_only`` writes nothing and counts what would be rewritten.
        A frame that is encrypted is never rewritten without encryption unless
        ``decrypt`` says so. ``progress(scanned, rewritten)`` is called after
        every batch.
        """
        backend = await self._ready()
        work = _Rewriter(self, decrypt)
        scanned = rewritten = skipped = conflicts = 0
        if kinds is None:
            kind_list = await backend.kinds(self.namespace)
            series_list = (
                await backend.series_names(self.namespace) if series is None else list(series)
            )
        else:
            kind_list = list(kinds)
            series_list = [] if series is None else list(series)
        for kind in kind_list:
            cursor: str | None = None
            while True:
                rows = await backend.list_records(
                    self.namespace, kind, "", limit=batch_size, cursor=cursor
                )
                for id, rec in rows:
                    scanned += 1
                    new = await work.frame(rec.value, f"{kind}/{id}")
                    ttl = None
                    if rec.expires_at is not None:
                        ttl = rec.expires_at - time.time()
                    if new is None or (ttl is not None and ttl <= 0):
                        skipped += 1
                        continue
                    if check_only:
                        rewritten += 1
                        continue
                    try:
                        await self._invalidating(
                            [_cache_key(self.namespace, kind, id)],
                            backend.put(
                                self.namespace,
                                kind,
                                id,
                                new,
                                ttl=ttl,
                                expected_version=rec.version,
                            ),
                        )
                        rewritten += 1
                    except ConflictError:
                        conflicts += 1
                if progress is not None:
                    progress(scanned, rewritten)
                if len(rows) < batch_size:
                    break
                cursor = rows[-1][0]
        series_scanned = series_rewritten = 0
        for name in series_list:
            async for entries in self._series_pages(backend, name, batch_size):
                changes = []
                for entry in entries:
                    series_scanned += 1
                    new = await work.frame(entry.value, f"series:{name}#{entry.seq}")
                    if new is not None:
                        changes.append((entry.seq, entry.value, new))
                if changes and check_only:
                    series_rewritten += len(changes)
                elif changes:
                    done = await backend.rewrite_series(self.namespace, name, changes)
                    series_rewritten += done
                    conflicts += len(changes) - done
                if progress is not None:
                    progress(scanned + series_scanned, rewritten + series_rewritten)
        return RewriteReport(
            scanned,
            rewritten,
            skipped,
            conflicts,
            series_scanned,
            series_rewritten,
            work.failed,
            tuple(work.failures),
        )

    async def _series_pages(self, backend: Backend, series: str, size: int) -> Any:
        """Async iterator over a whole series in ``(ts, seq)`` order, ``size`` entries a page."""
        start: float | None = None
        last: tuple[float, int] | None = None
        limit = size
        while True:
            page = await backend.read_series(self.namespace, series, start=start, limit=limit)
            fresh = [e for e in page if last is None or (e.ts, e.seq) > last]
            if fresh:
                yield fresh
            if len(page) < limit:
                return
            if not fresh:  # a full page of entries sharing one timestamp: read further
                limit *= 2
                continue
            limit = size
            last = (fresh[-1].ts, fresh[-1].seq)
            start = fresh[-1].ts


def open_memory(
    url_or_config: str | MemoryConfig | Mapping[str, Any] | None = None,
    *,
    plugins: Plugins | None = None,
    **settings: Any,
) -> Memory:
    """Build a :class:`Memory` (no I/O yet; use ``async with`` or ``await m.open()``).

    ``url_or_config`` is a backend URL (``"sqlite:///agent.db"``,
    ``"redis://localhost:6379/0"``, ``"memory://"``), a settings mapping or a
    :class:`~hivemem.config.MemoryConfig`; ``settings`` override single
    settings (``namespace=``, ``cache=``, ``compressor=``, ...). With nothing
    given, the environment and the embedded default (a SQLite file under
    ``~/.local/share/hivemem``) apply. Unknown URL schemes and codec names
    raise :class:`~hivemem.errors.PluginNotFound` listing what is installed.
    """
    if isinstance(settings.get("cache"), str):
        settings["cache"] = settings["cache"].split()
    config = load_config(url_or_config, **settings)
    core = _Core(config, plugins or get_plugins())
    return Memory(core, config.namespace)


__all__ = ["BackendUnavailable", "Memory", "MemorySummary", "Page", "RewriteReport", "open_memory"]
