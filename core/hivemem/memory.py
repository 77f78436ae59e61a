"""The memory API: :func:`open_memory` and :class:`Memory`.

``open_memory(...)`` builds the configuration and the parts (no I/O);
``async with memory:`` opens them (see :mod:`hivemem.parts` and the diagram in
docs/architecture.md); a ``Memory`` also opens itself on first use. A put goes
object -> serializer -> compressor -> encryptor -> backend; a get local cache
-> remote caches -> backend -> decode.

``Memory`` is a facade: it checks names and delegates to parts with one job
each -- :mod:`~hivemem.tiers` (the cache tiers: local/remote, epochs,
single-flight, leases, sealing; the caching rules are written there),
:mod:`~hivemem.frames` (values to frames, codec resources),
:mod:`~hivemem.instrument` (every operation timed and counted),
:mod:`~hivemem.maintenance` (rewrite, summary, aggregation) and
:mod:`~hivemem.parts` (building and opening them together). The seed's
entity-level API is the adapter :class:`hivemem.seed.SeedMemory`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from time import perf_counter
from typing import Any

from . import maintenance
from .backend import Backend, SeriesEntry, check_ttl
from .cache import Cache
from .config import MemoryConfig, load_config, mask_url
from .errors import BackendUnavailable, ConflictError, UpdateConflict
from .frames import Frames, Page, RecordReader
from .instrument import measured, measured_pages
from .maintenance import MemorySummary, RewriteReport
from .metrics import Metrics
from .names import MAX_ID, MAX_NAME, RESOURCE_NS, cache_key, check_name, check_namespace
from .parts import MemoryParts
from .pipeline import Pipeline
from .plugins import Plugins, get_plugins
from .seed import SEED_NAMES, deprecated_seed_method
from .tiers import MISSING, Tiers

#: the cache key of a record (kept under its old name for callers of ``hivemem.memory``)
_cache_key = cache_key


class Memory:
    """Durable memory for one namespace over a backend, caches and a codec pipeline.

    Build it with :func:`open_memory`. Values are anything the configured
    serializer accepts (the default ``json`` serializer: JSON types plus
    datetimes, bytes, sets, tuples, ...). ``kind`` and ``id`` are any
    non-empty strings (up to 256 and 4096 characters).
    """

    def __init__(self, parts: MemoryParts, namespace: str) -> None:
        self._parts = parts
        self.namespace = check_namespace(namespace)
        self._tiers: Tiers = parts.tiers
        self._frames: Frames = parts.frames
        self._metrics: Metrics = parts.metrics
        self._reader = RecordReader(parts.frames, parts.metrics, self.namespace)

    def __repr__(self) -> str:
        return f"Memory({mask_url(self._parts.config.url)!r}, namespace={self.namespace!r})"

    def __getattr__(self, name: str) -> Any:
        if name in SEED_NAMES:  # moved to SeedMemory; still answered, with a warning
            return deprecated_seed_method(self, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # -- what it is made of ------------------------------------------------------------
    @property
    def config(self) -> MemoryConfig:
        """The configuration this memory was built from (secrets masked in its repr)."""
        return self._parts.config

    @property
    def backend(self) -> Backend:
        """The backend instance."""
        return self._parts.backend

    @property
    def pipeline(self) -> Pipeline:
        """The value pipeline."""
        return self._frames.pipeline

    @property
    def caches(self) -> list[tuple[str, Cache]]:
        """``[(tier name, cache)]`` in read order."""
        return list(self._tiers.caches)

    def namespace_view(self, namespace: str) -> Memory:
        """A Memory for another namespace sharing this one's connections and caches."""
        return Memory(self._parts, namespace)

    # -- lifecycle ---------------------------------------------------------------------
    async def open(self) -> Memory:
        """Connect backend and caches (idempotent); subscribe to invalidations."""
        await self._parts.open(self.namespace, self._on_remote_write)
        return self

    async def close(self) -> None:
        """Unsubscribe, close caches and backend. Safe to call twice."""
        await self._parts.close()

    async def __aenter__(self) -> Memory:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _on_remote_write(self, kind: str, id: str | None) -> None:
        if id is None:
            self._tiers.clear_local()
        else:
            self._tiers.bump(cache_key(self.namespace, kind, id))

    async def _ready(self) -> Backend:
        if not self._parts.opened:
            await self.open()
        return self._parts.backend

    # -- codec resources ---------------------------------------------------------------
    @measured("put_resource")
    async def put_resource(self, resource_kind: str, resource_id: str, data: bytes) -> None:
        """Store a codec resource (e.g. a zstd dictionary) for every process using this store.

        Resources live in the reserved namespace ``__hivemem__`` as raw bytes
        (not through the pipeline: they must be readable before any codec is).
        """
        resource_kind = check_name(resource_kind, "resource kind")
        resource_id = check_name(resource_id, "resource id")
        await (await self._ready()).put(RESOURCE_NS, resource_kind, resource_id, bytes(data))

    @measured("get_resource")
    async def get_resource(self, resource_kind: str, resource_id: str) -> bytes | None:
        """A stored codec resource, or None."""
        record = await (await self._ready()).get(RESOURCE_NS, resource_kind, resource_id)
        return None if record is None else record.value

    # -- records -----------------------------------------------------------------------
    @measured("put")
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
        kind, id = check_name(kind, "kind"), check_name(id, "id", MAX_ID)
        check_ttl(ttl)
        frame = self._frames.encode(value, kind, id)
        backend = await self._ready()
        key = cache_key(self.namespace, kind, id)
        write = backend.put(
            self.namespace, kind, id, frame, ttl=ttl, expected_version=expected_version
        )
        version = await self._tiers.write(key, write, value, ttl, cache)
        self._metrics.writes += 1
        return version

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
        # hot path: a local-cache hit (~2 µs). Timed and counted inline exactly as @measured
        # does: the wrapper's extra coroutine would add a fifth to a hit
        started = perf_counter()
        try:
            kind, id = check_name(kind, "kind"), check_name(id, "id", MAX_ID)
            key = cache_key(self.namespace, kind, id)
            value = self._tiers.get_local(key) if use_cache else MISSING
            if value is MISSING:
                await self._ready()
                value = await self._tiers.read(
                    key, kind, id, self._reader, use_cache=use_cache, cache_ttl=cache_ttl
                )
        except BaseException:
            self._metrics.failed("get")
            raise
        stats = self._metrics.ops.get("get") or self._metrics.op("get")
        stats.count += 1
        stats.samples.append(perf_counter() - started)
        return default if value is MISSING else value

    @measured("get_versioned")
    async def get_versioned(self, kind: str, id: str) -> tuple[Any, int] | None:
        """``(value, version)`` straight from the backend (for compare-and-set), or None."""
        kind, id = check_name(kind, "kind"), check_name(id, "id", MAX_ID)
        record = await (await self._ready()).get(self.namespace, kind, id)
        self._metrics.reads += 1
        if record is None:
            return None
        return await self._frames.decode(record.value, f"{kind}/{id}"), record.version

    @measured("update")
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
        """Read-modify-write with compare-and-set, retried on conflict; returns the new value.

        Gives up with :class:`UpdateConflict` (a ConflictError) after ``retries`` lost races.
        """
        lost: list[tuple[int, int | None]] = []
        for _ in range(retries):
            current = await self.get_versioned(kind, id)
            value, version = (default, 0) if current is None else current
            new = fn(value)
            try:
                await self.put(kind, id, new, expected_version=version, ttl=ttl)
                return new
            except ConflictError as exc:
                lost = [*lost[-4:], (version, exc.actual)]
        raise UpdateConflict(f"{kind}/{id}", retries, lost)

    @measured("delete")
    async def delete(self, kind: str, id: str, *, expected_version: int | None = None) -> bool:
        """Delete; True when a live record was removed."""
        kind, id = check_name(kind, "kind"), check_name(id, "id", MAX_ID)
        backend = await self._ready()
        removed = await self._tiers.invalidating(
            [cache_key(self.namespace, kind, id)],
            backend.delete(self.namespace, kind, id, expected_version=expected_version),
        )
        self._metrics.writes += 1
        return removed

    @measured("put_many")
    async def put_many(
        self, kind: str, items: Mapping[str, Any], *, ttl: float | None = None
    ) -> None:
        """Store several values of one kind in one backend round trip."""
        kind = check_name(kind, "kind")
        check_ttl(ttl)
        frames = {
            check_name(id, "id", MAX_ID): self._frames.encode(value, kind, id)
            for id, value in items.items()
        }
        if not frames:
            return
        backend = await self._ready()
        keys = [cache_key(self.namespace, kind, id) for id in frames]
        await self._tiers.invalidating(
            keys, backend.put_many(self.namespace, kind, frames, ttl=ttl)
        )
        self._metrics.writes += len(frames)

    @measured("get_many")
    async def get_many(
        self, kind: str, ids: Iterable[str], *, use_cache: bool = True
    ) -> dict[str, Any]:
        """``{id: value}`` for the ids that exist, in the order asked; one backend round trip."""
        kind = check_name(kind, "kind")
        wanted = [check_name(id, "id", MAX_ID) for id in dict.fromkeys(ids)]
        keys = {id: cache_key(self.namespace, kind, id) for id in wanted}
        await self._ready()
        found = await self._tiers.read_many(kind, keys, self._reader, use_cache=use_cache)
        return {id: found[id] for id in wanted if id in found}

    @measured("delete_many")
    async def delete_many(self, kind: str, ids: Iterable[str]) -> int:
        """Delete several ids in one backend round trip; return how many existed."""
        kind = check_name(kind, "kind")
        wanted = [check_name(id, "id", MAX_ID) for id in dict.fromkeys(ids)]
        backend = await self._ready()
        keys = [cache_key(self.namespace, kind, id) for id in wanted]
        removed = await self._tiers.invalidating(
            keys, backend.delete_many(self.namespace, kind, wanted)
        )
        self._metrics.writes += len(wanted)
        return removed

    # -- listings ----------------------------------------------------------------------
    @measured("list")
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
        return (await self._page(kind, prefix, limit, cursor, reverse)).items

    @measured("list")
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
        return await self._page(kind, prefix, limit, cursor, reverse)

    async def _page(
        self, kind: str, prefix: str, limit: int | None, cursor: str | None, reverse: bool
    ) -> Page:
        kind = check_name(kind, "kind")
        prefix = check_name(prefix, "prefix", MAX_ID, allow_empty=True)
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        await self._ready()
        return await self._reader.page(kind, prefix, limit, cursor, reverse)

    @measured("list_ids")
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
        kind = check_name(kind, "kind")
        prefix = check_name(prefix, "prefix", MAX_ID, allow_empty=True)
        return await (await self._ready()).list_ids(
            self.namespace, kind, prefix, limit=limit, cursor=cursor, reverse=reverse
        )

    @measured_pages("iter_pages")
    async def iter_pages(
        self, kind: str, prefix: str = "", *, page_size: int = 500
    ) -> AsyncIterator[list[tuple[str, Any]]]:
        """Async iterator over pages ``[(id, value), ...]`` of a whole kind."""
        cursor = None
        while True:
            page = await self._page(kind, prefix, page_size, cursor, False)
            if page.items:
                yield list(page.items.items())
            if page.cursor is None:
                return
            cursor = page.cursor

    @measured("kinds")
    async def kinds(self) -> list[str]:
        """Kinds with at least one live record in this namespace."""
        return await (await self._ready()).kinds(self.namespace)

    # -- series ------------------------------------------------------------------------
    @measured("append")
    async def append(self, series: str, value: Any, *, ts: float | None = None) -> SeriesEntry:
        """Append ``value`` to a series without rewriting it; returns the entry (frame bytes)."""
        series = check_name(series, "series")
        frame = self._frames.encode(value, "series:" + series, "")
        entry = await (await self._ready()).append(self.namespace, series, frame, ts=ts)
        self._metrics.writes += 1
        return entry

    @measured("replace_series")
    async def replace_series(
        self, series: str, values: Sequence[Any], *, ts: float | Sequence[float] | None = None
    ) -> None:
        """Atomically replace a series with ``values`` (all at time ``ts``, default now)."""
        series = check_name(series, "series")
        if ts is None or isinstance(ts, int | float):
            stamps = [float(time.time() if ts is None else ts)] * len(values)
        else:
            stamps = [float(stamp) for stamp in ts]
            if len(stamps) != len(values):
                raise ValueError("ts must have one timestamp per value")
        entries = [
            (stamp, self._frames.encode(value, "series:" + series, str(position)))
            for position, (stamp, value) in enumerate(zip(stamps, values, strict=True))
        ]
        await (await self._ready()).replace_series(self.namespace, series, entries)
        self._metrics.writes += 1

    @measured("read_series")
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
        series = check_name(series, "series")
        entries = await (await self._ready()).read_series(
            self.namespace, series, start=start, end=end, limit=limit, latest=latest
        )
        self._metrics.reads += 1
        decode = self._frames.decode
        return [
            (entry.ts, await decode(entry.value, f"series:{series}#{entry.seq}"))
            for entry in entries
        ]

    @measured("series_names")
    async def series_names(self, prefix: str = "") -> list[str]:
        """Names of non-empty series starting with ``prefix``."""
        return await (await self._ready()).series_names(self.namespace, prefix)

    @measured("delete_series")
    async def delete_series(self, series: str) -> int:
        """Delete a series; return how many entries it had."""
        series = check_name(series, "series")
        return await (await self._ready()).delete_series(self.namespace, series)

    @measured("aggregate_series")
    async def aggregate_series(
        self,
        series: str,
        field: str | None = None,
        *,
        start: float | None = None,
        end: float | None = None,
    ) -> dict[str, float | int | None]:
        """count/sum/mean/min/max of numeric values (or of ``value[field]``) in a time range."""
        return maintenance.aggregate(await self.read_series(series, start=start, end=end), field)

    # -- counters ----------------------------------------------------------------------
    @measured("incr")
    async def incr(self, kind: str, id: str, field: str, amount: float = 1.0) -> float:
        """Atomically add ``amount`` to a numeric field; returns the new value.

        Counters are stored as plain numbers beside records (not through the
        codec pipeline) so the backend can update them atomically.
        """
        kind, id = check_name(kind, "kind"), check_name(id, "id", MAX_ID)
        field = check_name(field, "field", MAX_NAME, allow_empty=True)
        backend = await self._ready()
        value = await backend.incr(self.namespace, kind, id, field, float(amount))
        self._metrics.writes += 1
        return value

    @measured("counters")
    async def counters(self, kind: str, ids: Iterable[str]) -> dict[str, dict[str, float]]:
        """``{id: {field: value}}`` for the ids that have counters (one round trip)."""
        kind = check_name(kind, "kind")
        wanted = [check_name(id, "id", MAX_ID) for id in dict.fromkeys(ids)]
        return await (await self._ready()).get_counters(self.namespace, kind, wanted)

    @measured("delete_counters")
    async def delete_counters(self, kind: str, id: str) -> bool:
        """Remove every counter field of one id."""
        kind, id = check_name(kind, "kind"), check_name(id, "id", MAX_ID)
        return await (await self._ready()).delete_counters(self.namespace, kind, id)

    # -- whole namespace ---------------------------------------------------------------
    @measured("summary")
    async def summary(self) -> MemorySummary:
        """Counts and bytes per kind, series lengths and time spans, cache stats."""
        backend = await self._ready()
        stats = await backend.namespace_stats(self.namespace)
        url = mask_url(self._parts.config.url)
        return maintenance.summarize(self.namespace, backend, url, stats, self._tiers.stats())

    def metrics(self) -> dict[str, Any]:
        """Per-operation counts, errors, latency p50/p95/p99 and per-tier cache hit ratios."""
        return self._metrics.to_dict(self._tiers.stats())

    def clear_local_cache(self) -> None:
        """Drop every entry of the in-process cache tiers (synchronous)."""
        self._tiers.clear_local()

    @measured("clear_caches")
    async def clear_caches(self) -> None:
        """Drop every entry of every cache tier."""
        await self._tiers.clear()

    @measured("ping")
    async def ping(self) -> bool:
        """True when the backend answers; never raises."""
        try:
            return bool(await (await self._ready()).ping())
        except Exception:
            return False

    @measured("stats")
    async def stats(self) -> dict[str, Any]:
        """Backend facts plus cache stats."""
        backend = await self._ready()
        return {"backend": await backend.stats(), "caches": self._tiers.stats()}

    @measured("drop")
    async def drop(self) -> None:
        """Delete everything in this namespace (records, series, counters) and its cache entries."""
        await (await self._ready()).drop_namespace(self.namespace)
        await self._tiers.clear()

    @measured("rewrite")
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

        For key rotation (``hivemem rotate-keys``) and for compressing old data;
        a concurrent writer always wins, an interrupted run can simply be started
        again (see :class:`~hivemem.maintenance.Rewriter`). ``kinds``/``series``:
        what to scan (default every kind and series; with ``kinds`` given and
        ``series`` not, no series). ``check_only`` writes nothing and counts what
        would be rewritten; ``decrypt`` allows rewriting encrypted frames in the
        clear; ``progress(scanned, rewritten)`` is called after every batch.
        """
        options = maintenance.RewriteOptions(batch_size, progress, check_only, decrypt)
        backend = await self._ready()
        rewriter = maintenance.Rewriter(backend, self.namespace, self._frames, self._tiers, options)
        return await rewriter.run(kinds, series)


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
    parts = MemoryParts(config, plugins or get_plugins())
    return Memory(parts, config.namespace)


__all__ = [
    "MAX_ID",
    "MAX_NAME",
    "RESOURCE_NS",
    "BackendUnavailable",
    "Memory",
    "MemorySummary",
    "Page",
    "RewriteReport",
    "UpdateConflict",
    "open_memory",
]
