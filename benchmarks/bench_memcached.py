"""The Memcached cache tier under a read-mostly workload, next to aiocache's cache layers.

Sections (select one with ``--only memcached.NAME``):

``workload``
    90 % reads / 10 % writes of ~1 KB entities over a key set with a
    zipf-like popularity (weight of the key of rank ``r`` is ``1 / r``),
    ``N`` operations issued by ``K`` concurrent tasks in one process, for a
    SQLite backend and for a Redis backend, each with four hivemem cache
    configurations (no cache; ``local://`` only; ``local://`` + ``memcached://``;
    ``memcached://`` only). The local cache holds 10 % of the keys, so the
    shared tier has misses of the local tier to serve. Next to them, the
    same workload over the same data through aiocache's caches composed in
    front of a cache-less hivemem ``Memory`` (aiocache 0.12 ships no
    multi-level cache class; the composition is spelled out below). Reports
    ops/s, p50/p99 latency per operation, per-tier hit ratios (hivemem's
    from ``Memory.metrics()``), backend reads per operation, and ratios: each
    configuration against "no cache" on the same backend, and hivemem
    against the aiocache configuration with the same tiers.
``stampede``
    200 concurrent loads of one cold key, with the backend's ``get``
    wrapped to count the reads it serves (instrumentation only): one
    ``Memory`` (or aiocache stack) per configuration, and four clients in
    one event loop sharing the Memcached server (50 loads each).

The benchmark starts its own ``memcached`` and ``redis-server`` processes on
free loopback ports (:mod:`hivemem.testing.servers`). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hivemem
from common import (
    Skip,
    Stats,
    dist_version,
    entity,
    fmt_num,
    has_module,
    print_table,
    print_title,
    ratio,
    run_main,
    wants,
    workdir,
)
from hivemem import Memory

#: importable modules this benchmark needs (``run.py`` skips it otherwise)
REQUIRES = ("hivemem_memcached", "hivemem_redis", "aiocache", "aiomcache", "redis")

NS = "bench"
KIND = "item"
#: codec settings passed explicitly so HIVEMEM_* variables cannot change the run
PLAIN = {"serializer": "json", "compressor": "none", "encryptor": "none", "namespace": NS}
#: cache TTL of every tier in both libraries (hivemem's default ``cache_ttl``)
CACHE_TTL = 300
#: connections per Memcached server for both libraries (hivemem's default)
MC_POOL = 4
#: the Memcached tier's counters reported after the workload (cumulative ones, not gauges)
MC_COUNTERS = (
    "sets",
    "deletes",
    "leases_won",
    "leases_lost",
    "timeouts",
    "errors",
    "skipped",
    "too_large",
)


@dataclass(frozen=True)
class Plan:
    """Sizes and iteration counts of one run."""

    keys: int  # distinct ids
    local_entries: int  # local cache capacity (max_entries)
    ops: int  # timed operations per configuration and round
    warmup: int  # untimed operations per configuration and round (after a cold start)
    rounds: int  # configurations interleaved this many times
    tasks: int  # concurrent tasks issuing the operations
    write_share: float
    zipf_s: float
    stampede_loads: int
    stampede_clients: int
    stampede_trials: int

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Plan:
        """Full or ``--quick`` plan."""
        if getattr(args, "quick", False):
            return cls(2_000, 200, 1_500, 600, 1, 16, 0.1, 1.0, 200, 4, 2)
        return cls(20_000, 2_000, 10_000, 5_000, 3, 32, 0.1, 1.0, 200, 4, 5)


# -- clients under test -------------------------------------------------------------------------


class Client(Protocol):
    """What the workload drives: one read or one write of an entity."""

    async def read(self, id: str) -> Any: ...

    async def write(self, id: str, value: Any) -> None: ...


@dataclass
class TierCounts:
    """Lookups per tier and backend reads, as counted at one moment."""

    l1: tuple[int, int] = (0, 0)  # (hits, misses)
    l2: tuple[int, int] = (0, 0)
    backend_reads: int = 0
    #: the hivemem Memcached tier's own counters (``cache.stats()``), numeric ones only
    memcached: dict[str, int] = field(default_factory=dict)

    def minus(self, earlier: TierCounts) -> TierCounts:
        """The counts accumulated since ``earlier``."""
        return TierCounts(
            (self.l1[0] - earlier.l1[0], self.l1[1] - earlier.l1[1]),
            (self.l2[0] - earlier.l2[0], self.l2[1] - earlier.l2[1]),
            self.backend_reads - earlier.backend_reads,
            {k: v - earlier.memcached.get(k, 0) for k, v in self.memcached.items()},
        )

    def plus(self, other: TierCounts) -> TierCounts:
        """Both counts added up."""
        keys = {*self.memcached, *other.memcached}
        return TierCounts(
            (self.l1[0] + other.l1[0], self.l1[1] + other.l1[1]),
            (self.l2[0] + other.l2[0], self.l2[1] + other.l2[1]),
            self.backend_reads + other.backend_reads,
            {k: self.memcached.get(k, 0) + other.memcached.get(k, 0) for k in keys},
        )


class HivememClient:
    """A :class:`hivemem.Memory` (with whatever cache tiers it was opened with)."""

    def __init__(self, memory: Memory) -> None:
        self.memory = memory

    async def read(self, id: str) -> Any:
        """``Memory.get``: local -> memcached -> backend."""
        return await self.memory.get(KIND, id)

    async def write(self, id: str, value: Any) -> None:
        """``Memory.put``: backend write, remote tiers deleted, local written through."""
        await self.memory.put(KIND, id, value)

    def counts(self) -> TierCounts:
        """Tier hits/misses and backend reads from ``Memory.metrics()``."""
        m = self.memory.metrics()
        tiers = m["tiers"]

        def pair(name: str) -> tuple[int, int]:
            t = tiers.get(name)
            return (t["hits"], t["misses"]) if t else (0, 0)

        mc = tiers.get("memcached", {}).get("cache", {})
        counters = {k: v for k, v in mc.items() if isinstance(v, int) and k in MC_COUNTERS}
        return TierCounts(pair("local"), pair("memcached"), m["reads"], counters)


class AiocacheReadThrough:
    """aiocache caches composed as a read-through stack over a cache-less hivemem ``Memory``.

    Read: ``l1.get`` -> ``l2.get`` (a hit fills ``l1``) -> ``inner.get``, then
    ``l2.set`` and ``l1.set`` with ``CACHE_TTL``. Write: ``inner.put``, then
    ``l2.delete`` and ``l1.set`` of the new value, the same write rule as
    hivemem's (remote tiers invalidated, the in-process tier written through).
    Either tier may be absent. There is no single-flight of concurrent misses
    and no guard against a read filling a tier with a value older than a
    concurrent write; ``SimpleMemoryCache`` keeps the caller's object (its
    default ``NullSerializer``), unbounded, with one event-loop timer per key
    for the TTL. ``l2`` keeps JSON (aiocache's default serializer for
    Memcached and Redis).
    """

    def __init__(self, inner: Memory, l1: Any | None, l2: Any | None) -> None:
        self.inner = inner
        self.l1 = l1
        self.l2 = l2
        self.l1_hits = self.l1_misses = self.l2_hits = self.l2_misses = 0

    async def read(self, id: str) -> Any:
        """Tier by tier, then the backend; fill the tiers that missed."""
        key = f"{KIND}:{id}"
        if self.l1 is not None:
            value = await self.l1.get(key)
            if value is not None:
                self.l1_hits += 1
                return value
            self.l1_misses += 1
        if self.l2 is not None:
            value = await self.l2.get(key)
            if value is not None:
                self.l2_hits += 1
                if self.l1 is not None:
                    await self.l1.set(key, value, ttl=CACHE_TTL)
                return value
            self.l2_misses += 1
        value = await self.inner.get(KIND, id)
        if value is not None:
            if self.l2 is not None:
                await self.l2.set(key, value, ttl=CACHE_TTL)
            if self.l1 is not None:
                await self.l1.set(key, value, ttl=CACHE_TTL)
        return value

    async def write(self, id: str, value: Any) -> None:
        """Backend write, delete from ``l2``, write through to ``l1``."""
        key = f"{KIND}:{id}"
        await self.inner.put(KIND, id, value)
        if self.l2 is not None:
            await self.l2.delete(key)
        if self.l1 is not None:
            await self.l1.set(key, value, ttl=CACHE_TTL)

    def counts(self) -> TierCounts:
        """Our own tier counters plus the inner ``Memory``'s backend reads."""
        return TierCounts(
            (self.l1_hits, self.l1_misses),
            (self.l2_hits, self.l2_misses),
            self.inner.metrics()["reads"],
        )


# -- configurations -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """One cache configuration in front of a backend.

    ``local`` is ``"bounded"`` (``plan.local_entries``), ``"all"`` (room for
    every key) or None; ``l2`` is ``"memcached"``, ``"redis"`` (aiocache only)
    or None. ``peer`` names the configuration of the other library with the
    same tiers.
    """

    label: str
    library: str  # "hivemem" or "aiocache"
    local: str | None
    l2: str | None
    peer: str | None = None


NO_CACHE = "hivemem, no cache"
CONFIGS: tuple[Config, ...] = (
    Config(NO_CACHE, "hivemem", None, None),
    Config("hivemem, local (10% of keys)", "hivemem", "bounded", None),
    Config("hivemem, local (10%) + memcached", "hivemem", "bounded", "memcached"),
    Config("hivemem, memcached only", "hivemem", None, "memcached", "aiocache, memcached only"),
    Config(
        "hivemem, local (all keys) + memcached",
        "hivemem",
        "all",
        "memcached",
        "aiocache, memory -> memcached",
    ),
    Config(
        "aiocache, memory -> memcached",
        "aiocache",
        "all",
        "memcached",
        "hivemem, local (all keys) + memcached",
    ),
    Config("aiocache, memcached only", "aiocache", None, "memcached", "hivemem, memcached only"),
    Config(
        "aiocache, memory -> redis",
        "aiocache",
        "all",
        "redis",
        "hivemem, local (all keys) + memcached",
    ),
)


@dataclass(frozen=True)
class Servers:
    """Addresses of the servers this benchmark started."""

    memcached: str  # memcached://127.0.0.1:PORT
    mc_host: str
    mc_port: int
    redis_backend: str  # redis://127.0.0.1:PORT/0 (the hivemem Redis backend)
    cache_redis_host: str  # a second redis-server, only for aiocache's RedisCache
    cache_redis_port: int


@dataclass(frozen=True)
class BackendSpec:
    """A backend URL under a short label."""

    label: str
    url: str


def hivemem_caches(config: Config, plan: Plan, servers: Servers) -> list[str]:
    """The ``cache=`` list of a hivemem configuration."""
    caches: list[str] = []
    if config.local == "bounded":
        caches.append(f"local://?max_entries={plan.local_entries}")
    elif config.local == "all":
        caches.append(f"local://?max_entries={plan.keys * 2}")
    if config.l2 == "memcached":
        caches.append(f"{servers.memcached}?pool_size={MC_POOL}")
    return caches


def open_plain(url: str, caches: list[str]) -> Memory:
    """``open_memory`` with the plain json pipeline, these tiers and ``CACHE_TTL``."""
    return hivemem.open_memory(url, **PLAIN, cache=caches, cache_ttl=CACHE_TTL)


async def open_client(
    config: Config, backend: BackendSpec, plan: Plan, servers: Servers, stack: AsyncExitStack
) -> HivememClient | AiocacheReadThrough:
    """Open the client of ``config`` (closed when ``stack`` closes)."""
    if config.library == "hivemem":
        memory = open_plain(backend.url, hivemem_caches(config, plan, servers))
        await stack.enter_async_context(memory)
        return HivememClient(memory)
    from aiocache import MemcachedCache, RedisCache, SimpleMemoryCache

    inner = open_plain(backend.url, [])
    await stack.enter_async_context(inner)
    l1 = SimpleMemoryCache(namespace=NS) if config.local else None
    l2: Any = None
    if config.l2 == "memcached":
        l2 = MemcachedCache(
            endpoint=servers.mc_host, port=servers.mc_port, pool_size=MC_POOL, namespace=NS
        )
    elif config.l2 == "redis":
        l2 = RedisCache(
            endpoint=servers.cache_redis_host, port=servers.cache_redis_port, namespace=NS
        )
    for cache in (l1, l2):
        if cache is not None:
            stack.push_async_callback(cache.close)
    return AiocacheReadThrough(inner, l1, l2)


async def flush_shared(servers: Servers) -> None:
    """Empty the Memcached server and aiocache's Redis cache server."""
    from aiocache import MemcachedCache, RedisCache

    for cache in (
        MemcachedCache(endpoint=servers.mc_host, port=servers.mc_port),
        RedisCache(endpoint=servers.cache_redis_host, port=servers.cache_redis_port),
    ):
        try:
            await cache.clear()
        finally:
            await cache.close()


# -- workload -----------------------------------------------------------------------------------


def item_id(i: int) -> str:
    """Zero-padded entity ids."""
    return f"{i:08d}"


def zipf_ops(plan: Plan, n: int, seed: int) -> list[tuple[bool, int]]:
    """``n`` operations ``(is_write, key index)``: keys by zipf-like popularity, 10 % writes.

    The key of popularity rank ``r`` (1-based) has weight ``1 / r**s``; ranks
    are mapped to key indexes through a fixed shuffle so hot keys are spread
    over the id space.
    """
    rng = random.Random(seed)
    ranks = list(range(plan.keys))
    random.Random(0).shuffle(ranks)
    cum = list(itertools.accumulate(1.0 / (r + 1) ** plan.zipf_s for r in range(plan.keys)))
    picks = rng.choices(range(plan.keys), cum_weights=cum, k=n)
    return [(rng.random() < plan.write_share, ranks[r]) for r in picks]


@dataclass
class RunResult:
    """One timed run of the workload."""

    wall_s: float
    samples_ns: list[int]
    counts: TierCounts

    @property
    def ops_per_s(self) -> float:
        """Operations completed per second of wall time (all tasks together)."""
        return len(self.samples_ns) / self.wall_s


async def drive(
    client: Client, ops: list[tuple[bool, int]], values: list[dict[str, Any]], tasks: int
) -> tuple[float, list[int]]:
    """Run ``ops`` from ``tasks`` concurrent tasks; wall seconds and per-op nanoseconds."""
    samples = [0] * len(ops)
    feed = iter(range(len(ops)))
    clock = time.perf_counter_ns
    version = itertools.count()

    async def worker() -> None:
        for i in feed:  # shared iterator: each operation is taken by exactly one task
            is_write, k = ops[i]
            t0 = clock()
            if is_write:
                await client.write(item_id(k), {**values[k], "score": next(version)})
            else:
                await client.read(item_id(k))
            samples[i] = clock() - t0

    gc.collect()
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    return time.perf_counter() - started, samples


async def run_config(
    config: Config,
    backend: BackendSpec,
    plan: Plan,
    servers: Servers,
    values: list[dict[str, Any]],
    warm: list[tuple[bool, int]],
    timed: list[tuple[bool, int]],
) -> RunResult:
    """Cold start (empty tiers), warm-up, then the timed operations of one configuration."""
    await flush_shared(servers)
    async with AsyncExitStack() as stack:
        client = await open_client(config, backend, plan, servers, stack)
        await drive(client, warm, values, plan.tasks)
        before = client.counts()
        wall, samples = await drive(client, timed, values, plan.tasks)
        return RunResult(wall, samples, client.counts().minus(before))


@dataclass
class Aggregate:
    """All rounds of one configuration."""

    rounds: list[RunResult] = field(default_factory=list)

    @property
    def ops_per_s(self) -> float:
        """Median over rounds."""
        return statistics.median(r.ops_per_s for r in self.rounds)

    @property
    def stats(self) -> Stats:
        """Latency over every timed operation of every round."""
        return Stats.from_ns([s for r in self.rounds for s in r.samples_ns])

    @property
    def counts(self) -> TierCounts:
        """Tier and backend counts summed over rounds."""
        total = TierCounts()
        for r in self.rounds:
            total = total.plus(r.counts)
        return total

    @property
    def n_ops(self) -> int:
        """Timed operations over all rounds."""
        return sum(len(r.samples_ns) for r in self.rounds)


async def fill_backend(url: str, values: list[dict[str, Any]]) -> None:
    """Store every entity (fresh namespace), in batches of 1,000."""
    async with open_plain(url, []) as memory:
        await memory.drop()
        for start in range(0, len(values), 1000):
            await memory.put_many(
                KIND, {item_id(i): values[i] for i in range(start, min(len(values), start + 1000))}
            )


def hit_pct(pair: tuple[int, int]) -> str:
    """``hits / lookups`` as a percentage, ``-`` without lookups."""
    hits, misses = pair
    return "-" if hits + misses == 0 else f"{100 * hits / (hits + misses):.1f}"


async def bench_workload(
    plan: Plan, servers: Servers, backends: list[BackendSpec]
) -> dict[str, dict[str, Aggregate]]:
    """Section 1: the read-mostly workload on each backend, every configuration."""
    print_title("1. read-mostly workload (90% reads / 10% writes), zipf-like key popularity")
    print(
        f"{plan.keys:,} entities of ~1 KB (JSON); key of popularity rank r drawn with weight "
        f"1/r^{plan.zipf_s:g}; {plan.write_share:.0%} of operations are writes (put of the "
        f"entity with a new score). {plan.tasks} concurrent tasks in one process and event loop.\n"
        f"Each configuration: fresh Memory / aiocache stack, Memcached and Redis cache flushed, "
        f"{plan.warmup:,} untimed operations, then {plan.ops:,} timed ones; configurations "
        f"interleaved over {plan.rounds} round(s). ops/s = timed operations / wall time "
        f"(median of rounds); latency = per operation, all rounds pooled.\n"
        f"local (10%) = local://?max_entries={plan.local_entries:,}; local (all keys) = room "
        f"for every key, like aiocache's unbounded SimpleMemoryCache. TTL {CACHE_TTL} s in every "
        f"tier; {MC_POOL} connections to Memcached in both libraries.\n"
        "aiocache rows: SimpleMemoryCache (L1) and MemcachedCache / RedisCache (L2) composed "
        "by this benchmark as a read-through stack over a cache-less hivemem Memory on the same "
        "backend and data (aiocache 0.12 has no multi-level cache class). Reads L1 -> L2 -> "
        "Memory.get, fills L2 and L1; writes Memory.put, delete L2, set L1. No single-flight, "
        "no stale-fill guard; L1 holds the caller's object, L2 holds JSON. "
        "'memory -> redis' uses a second redis-server as L2."
    )
    warm_ops = zipf_ops(plan, plan.warmup, seed=11)
    timed_ops = [zipf_ops(plan, plan.ops, seed=100 + r) for r in range(plan.rounds)]
    values = [entity(i) for i in range(plan.keys)]
    results: dict[str, dict[str, Aggregate]] = {}
    for backend in backends:
        t0 = time.perf_counter()
        await fill_backend(backend.url, values)
        took = time.perf_counter() - t0
        print(f"\n  {backend.label}: stored {plan.keys:,} entities in {took:.1f} s")
        per: dict[str, Aggregate] = {c.label: Aggregate() for c in CONFIGS}
        for r in range(plan.rounds):
            order = CONFIGS[r % len(CONFIGS) :] + CONFIGS[: r % len(CONFIGS)]
            for config in order:
                result = await run_config(
                    config, backend, plan, servers, values, warm_ops, timed_ops[r]
                )
                per[config.label].rounds.append(result)
            print(f"  {backend.label}: round {r + 1}/{plan.rounds} done")
        results[backend.label] = per
        print_workload(backend, per)
    print_pairs(results)
    return results


def print_workload(backend: BackendSpec, per: dict[str, Aggregate]) -> None:
    """The per-configuration table of one backend."""
    base = per[NO_CACHE]
    rows = []
    for config in CONFIGS:
        agg = per[config.label]
        s, c = agg.stats, agg.counts
        rows.append(
            [
                config.label,
                fmt_num(agg.ops_per_s),
                fmt_num(s.p50_us),
                fmt_num(s.p99_us),
                hit_pct(c.l1) if config.local else "-",
                hit_pct(c.l2) if config.l2 else "-",
                f"{c.backend_reads / agg.n_ops:.3f}",
                ratio(agg.ops_per_s, base.ops_per_s),
                ratio(s.p50_us, base.stats.p50_us),
                ratio(s.p99_us, base.stats.p99_us),
            ]
        )
    print_table(
        [
            "configuration",
            "ops/s",
            "p50 µs",
            "p99 µs",
            "L1 hit %",
            "L2 hit %",
            "backend reads/op",
            "ops/s x none",
            "p50 x none",
            "p99 x none",
        ],
        rows,
        title=f"{backend.label} backend ({backend.url.split('?')[0].split('://')[0]}://)",
    )
    print(
        "L1 = local:// or SimpleMemoryCache, L2 = memcached:// or aiocache's MemcachedCache / "
        "RedisCache; hit % = hits / lookups in that tier (hivemem: Memory.metrics()['tiers']).\n"
        "backend reads/op = backend record reads per timed operation (Memory.metrics()['reads']"
        "); x none = this row / 'hivemem, no cache' on the same backend."
    )
    rows = []
    for config in CONFIGS:
        if config.library != "hivemem" or config.l2 != "memcached":
            continue
        agg = per[config.label]
        counters = agg.counts.memcached
        rows.append(
            [
                config.label,
                *(fmt_num(counters.get(k, 0) / agg.n_ops * 1000) for k in MC_COUNTERS),
            ]
        )
    print_table(
        ["hivemem memcached tier, per 1,000 ops", *MC_COUNTERS],
        rows,
        title=f"{backend.label}: the Memcached tier's own counters over the timed operations "
        "(cache.stats() under Memory.metrics())",
    )


def print_pairs(results: dict[str, dict[str, Aggregate]]) -> None:
    """hivemem against the aiocache configuration with the same tiers, per backend."""
    rows = []
    for backend, per in results.items():
        for config in CONFIGS:
            if config.library != "hivemem" or config.peer is None:
                continue
            for peer in CONFIGS:
                if peer.library != "aiocache" or peer.peer != config.label:
                    continue
                h, a = per[config.label], per[peer.label]
                rows.append(
                    [
                        f"{backend}: {config.label} / {peer.label}",
                        ratio(h.ops_per_s, a.ops_per_s),
                        ratio(h.stats.p50_us, a.stats.p50_us),
                        ratio(h.stats.p99_us, a.stats.p99_us),
                        ratio(h.counts.backend_reads / h.n_ops, a.counts.backend_reads / a.n_ops),
                    ]
                )
    print_table(
        ["hivemem / aiocache", "ops/s", "p50", "p99", "backend reads"],
        rows,
        title="hivemem vs aiocache with the same tiers (ratios hivemem / aiocache; "
        "ops/s above 1 and latency below 1 favour hivemem)",
    )
    print(
        "'memory -> redis' is set against hivemem's local + memcached: hivemem has no Redis "
        "cache tier, so the L2 servers differ (Memcached vs Redis)."
    )


# -- stampede -----------------------------------------------------------------------------------


class ReadCounter:
    """Counts the calls of a backend's ``get`` (wrapped on the instance; instrumentation only)."""

    def __init__(self) -> None:
        self.reads = 0

    def wrap(self, memory: Memory) -> None:
        """Replace ``memory.backend.get`` by a counting pass-through."""
        backend = memory.backend
        original: Callable[..., Awaitable[Any]] = backend.get

        async def get(*args: Any, **kwargs: Any) -> Any:
            self.reads += 1
            return await original(*args, **kwargs)

        backend.get = get  # type: ignore[method-assign]


@dataclass(frozen=True)
class StampedeCase:
    """One stampede configuration: a base configuration, clients, and aiocache's lock."""

    label: str
    config: Config
    clients: int
    redlock: bool = False


def stampede_cases(plan: Plan) -> list[StampedeCase]:
    """Every stampede configuration, in table order."""
    by = {c.label: c for c in CONFIGS}
    n = plan.stampede_clients
    return [
        StampedeCase(NO_CACHE, by[NO_CACHE], 1),
        StampedeCase("hivemem, local", by["hivemem, local (10% of keys)"], 1),
        StampedeCase("hivemem, local + memcached", by["hivemem, local (10%) + memcached"], 1),
        StampedeCase("hivemem, memcached only", by["hivemem, memcached only"], 1),
        StampedeCase(
            f"hivemem, local + memcached, {n} clients",
            by["hivemem, local (10%) + memcached"],
            n,
        ),
        StampedeCase(f"hivemem, memcached only, {n} clients", by["hivemem, memcached only"], n),
        StampedeCase("aiocache, memory -> memcached", by["aiocache, memory -> memcached"], 1),
        StampedeCase(
            "aiocache, memory -> memcached + RedLock",
            by["aiocache, memory -> memcached"],
            1,
            redlock=True,
        ),
        StampedeCase(
            f"aiocache, memory -> memcached + RedLock, {n} clients",
            by["aiocache, memory -> memcached"],
            n,
            redlock=True,
        ),
    ]


async def locked_read(client: AiocacheReadThrough, id: str) -> Any:
    """aiocache's ``cached_stampede`` pattern: on an L1/L2 miss, ``RedLock`` on L2, re-check."""
    from aiocache.lock import RedLock

    key = f"{KIND}:{id}"
    if client.l1 is not None:
        value = await client.l1.get(key)
        if value is not None:
            return value
    value = await client.l2.get(key)
    if value is not None:
        return value
    async with RedLock(client.l2, key, 2):
        value = await client.l2.get(key)
        if value is not None:
            return value
        return await client.read(id)


async def stampede_trial(
    case: StampedeCase, backend: BackendSpec, plan: Plan, servers: Servers, cold_id: str
) -> tuple[int, float, list[int]]:
    """Backend reads, wall seconds and per-load ns of one cold-key stampede."""
    async with AsyncExitStack() as stack:
        counter = ReadCounter()
        clients = []
        for _ in range(case.clients):
            client = await open_client(case.config, backend, plan, servers, stack)
            memory = client.memory if isinstance(client, HivememClient) else client.inner
            counter.wrap(memory)
            clients.append(client)
        per_client = plan.stampede_loads // case.clients
        clock = time.perf_counter_ns

        async def load(client: Any) -> int:
            t0 = clock()
            if case.redlock:
                value = await locked_read(client, cold_id)
            else:
                value = await client.read(cold_id)
            if value is None:
                raise RuntimeError(f"cold key {cold_id} not found")
            return clock() - t0

        started = time.perf_counter()
        samples = await asyncio.gather(*(load(c) for c in clients for _ in range(per_client)))
        return counter.reads, time.perf_counter() - started, list(samples)


def cold_id(backend: BackendSpec, trial: int, case: int) -> str:
    """A key of its own for every backend, trial and configuration."""
    return f"cold-{backend.label}-{trial}-{case}"


async def bench_stampede(plan: Plan, servers: Servers, backends: list[BackendSpec]) -> None:
    """Section 2: concurrent loads of one cold key; backend reads counted."""
    print_title(f"2. cold-start stampede: {plan.stampede_loads} concurrent loads of one cold key")
    print(
        f"The key exists in the backend and in no cache tier. {plan.stampede_trials} trials per "
        "row, each on a new key with fresh clients; backend reads = calls of the backend's get "
        "(wrapped to count them). 'N clients' = N Memory objects (or aiocache stacks, each "
        f"with its own SimpleMemoryCache) in one event loop, {plan.stampede_loads} // N loads "
        "each, sharing the Memcached server.\n"
        "RedLock = aiocache.lock.RedLock on the L2 cache around the miss path, as aiocache's "
        "cached_stampede decorator does (lease 2 s)."
    )
    rows = []
    for backend in backends:
        async with open_plain(backend.url, []) as writer:
            for trial in range(plan.stampede_trials):
                for c in range(len(stampede_cases(plan))):
                    await writer.put(KIND, cold_id(backend, trial, c), entity(10_000_000 + c))
        for c, case in enumerate(stampede_cases(plan)):
            reads: list[int] = []
            walls: list[float] = []
            samples: list[int] = []
            for trial in range(plan.stampede_trials):
                await flush_shared(servers)
                n, wall, s = await stampede_trial(
                    case, backend, plan, servers, cold_id(backend, trial, c)
                )
                reads.append(n)
                walls.append(wall)
                samples += s
            st = Stats.from_ns(samples)
            rows.append(
                [
                    f"{backend.label}: {case.label}",
                    f"{statistics.median(reads):g}",
                    str(max(reads)),
                    fmt_num(statistics.median(walls) * 1000, 2),
                    fmt_num(st.p50_us / 1000, 2),
                    fmt_num(st.p99_us / 1000, 2),
                ]
            )
    print_table(
        [
            "configuration",
            "backend reads (median)",
            "max",
            "wall ms (median)",
            "load p50 ms",
            "load p99 ms",
        ],
        rows,
    )


# -- entry point --------------------------------------------------------------------------------


@contextmanager
def started_servers() -> Iterator[Servers]:
    """A memcached and two redis-server processes on free loopback ports (stopped afterwards)."""
    from hivemem.testing.servers import ServerBinaryMissing
    from hivemem_memcached.testing import MemcachedServer
    from hivemem_redis.testing import RedisServer

    try:
        with (
            MemcachedServer(memory_mb=256) as mc,
            RedisServer() as backend_redis,
            RedisServer() as cache_redis,
        ):
            yield Servers(
                memcached=mc.url,
                mc_host=mc.host,
                mc_port=mc.port,
                redis_backend=backend_redis.url,
                cache_redis_host=cache_redis.host,
                cache_redis_port=cache_redis.port,
            )
    except ServerBinaryMissing as exc:
        raise Skip(str(exc)) from None


async def run(args: argparse.Namespace) -> None:
    """Start the servers and run the selected sections."""
    absent = [m for m in REQUIRES if not has_module(m)]
    if absent:
        raise Skip(f"needs {', '.join(absent)} (not installed)")
    plan = Plan.from_args(args)
    print(
        "versions: "
        + ", ".join(
            f"{d} {dist_version(d)}"
            for d in ("hivemem-memcached", "hivemem-redis", "aiocache", "aiomcache", "redis")
        )
    )
    with workdir(args, "hivemem-bench-mc-") as tmp, started_servers() as servers:
        print(f"servers: {servers.memcached}, Redis backend {servers.redis_backend}")
        backends = [
            BackendSpec("SQLite", f"sqlite:///{tmp / 'mc.db'}?synchronous=normal"),
            BackendSpec("Redis", servers.redis_backend),
        ]
        print(
            "backends: SQLite (WAL, synchronous=normal), Redis (no persistence); "
            "memcached -m 256, both on loopback"
        )
        if wants(args, "memcached", "workload"):
            await bench_workload(plan, servers, backends)
        if wants(args, "memcached", "stampede"):
            await bench_stampede(plan, servers, backends)


def main(args: argparse.Namespace | None = None) -> None:
    """Run the benchmark (``args`` from ``run.py``, or this script's command line)."""
    run_main(run, args)


if __name__ == "__main__":
    main()
