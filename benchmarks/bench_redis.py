"""Redis: hivemem next to raw ``redis.asyncio``, aiocache and cashews on one server.

Usage::

    .venv/bin/python benchmarks/run.py --only redis [--quick]
    .venv/bin/python benchmarks/bench_redis.py [--quick] [--url redis://127.0.0.1:6379/0]

Without ``--url`` a private ``redis-server`` (no persistence) is started on a
free loopback port; every client talks to that one server over TCP.

Sections (``--only redis.latency`` etc.):

1. **latency** -- one save / one load at a time, all targets interleaved in
   slices: raw ``redis.asyncio`` ``SET``/``GET`` + ``json``; hivemem's
   ``RedisBackend.put``/``get`` + ``json``; hivemem ``Memory`` without a local
   cache (its own codec pipeline) and a ``Memory`` local-cache hit; aiocache
   ``RedisCache`` (JSON serializer) and cashews (redis backend, its default
   pickle serializer). With hiredis installed, raw and backend run once more
   on redis-py's pure-Python reply parser. Ratio = p50 / p50 of the raw row
   using the same parser.
2. **batch** -- ``put_many``/``get_many`` of 100 against 100 sequential calls,
   for the backend, ``Memory`` and raw ``MSET``/``MGET`` vs ``SET``/``GET``.
3. **invalidation** -- a write here until the invalidation callback fires in
   another (spawned) process.

The issue's targets, printed at the end: backend single-operation overhead
within 1.3x of raw; a batch of 100 at least 10x the throughput of 100
sequential calls; a local-cache hit at least 20x faster than a raw ``GET``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import shutil
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import redis.asyncio as aioredis  # noqa: E402
from common import (  # noqa: E402 - the benchmarks directory is not a package
    Skip,
    Stats,
    build_parser,
    dist_version,
    entity,
    fmt_num,
    history,
    print_table,
    print_title,
    ratio,
    time_interleaved,
    wants,
)

REQUIRES = ("hivemem_redis",)

Op = Callable[[int], Awaitable[Any]]
IDS = [f"id{i:03}" for i in range(100)]


def _has_hiredis() -> bool:
    try:
        from redis.utils import HIREDIS_AVAILABLE
    except ImportError:  # pragma: no cover - very old redis-py
        return False
    return bool(HIREDIS_AVAILABLE)


def _python_parser_client(url: str) -> Any:
    """A ``redis.asyncio`` client forced onto redis-py's pure-Python RESP3 parser."""
    from redis._parsers import _AsyncRESP3Parser

    return aioredis.Redis.from_url(url, parser_class=_AsyncRESP3Parser, protocol=3)


class Targets:
    """Every client of the run, opened on one server, each with its own key prefix."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.tag = uuid.uuid4().hex[:6]
        self.hiredis = _has_hiredis()
        self.closers: list[Callable[[], Awaitable[Any]]] = []

    async def open(self) -> None:
        """Connect everything (and fail early when the server does not answer)."""
        import hivemem
        from hivemem_redis.backend import RedisBackend

        url, tag = self.url, self.tag
        self.raw = aioredis.Redis.from_url(url)
        self.backend = RedisBackend(url, prefix=f"bench{tag}b:")
        await self.backend.open()
        self.closers += [self.raw.aclose, self.backend.close]
        self.raw_py: Any = None
        self.backend_py: Any = None
        if self.hiredis:
            self.raw_py = _python_parser_client(url)
            self.backend_py = RedisBackend(
                url, prefix=f"bench{tag}p:", client=_python_parser_client(url)
            )
            await self.backend_py.open()
            self.closers += [self.raw_py.aclose, self.backend_py.close]
        opts = {"prefix": f"bench{tag}m:"}
        self.memory = hivemem.open_memory(url, namespace="bench", cache=[], backend_options=opts)
        await self.memory.open()
        opts = {"prefix": f"bench{tag}l:"}
        self.cached = hivemem.open_memory(
            url, namespace="bench", cache=["local://"], backend_options=opts
        )
        await self.cached.open()
        self.closers += [self.memory.close, self.cached.close]
        self.aiocache: Any = None
        self.cashews: Any = None
        self.skipped: list[str] = []
        try:
            from aiocache import RedisCache
            from aiocache.serializers import JsonSerializer

            host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
            self.aiocache = RedisCache(
                serializer=JsonSerializer(), endpoint=host, port=int(port), namespace=f"ac{tag}"
            )
            await self.aiocache.set("probe", 1)
            self.closers.append(self.aiocache.close)
        except Exception as exc:  # not installed or incompatible: report, do not fail
            self.aiocache = None
            self.skipped.append(f"aiocache: {type(exc).__name__}: {exc}")
        try:
            from cashews import Cache

            self.cashews = Cache()
            self.cashews.setup(url)
            await self.cashews.set(f"cw{tag}:probe", 1)
            self.closers.append(self.cashews.close)
        except Exception as exc:
            self.cashews = None
            self.skipped.append(f"cashews: {type(exc).__name__}: {exc}")

    async def close(self) -> None:
        """Close every client, then drop what the run wrote (all its keys carry the tag)."""
        for close in reversed(self.closers):
            try:
                await close()
            except Exception:
                pass
        async with aioredis.Redis.from_url(self.url) as r:
            leftovers = await r.keys(f"*{self.tag}*")  # benchmark cleanup, not a hivemem path
            if leftovers:
                await r.delete(*leftovers)


# -- 1. latency -------------------------------------------------------------------------------


def _latency_ops(t: Targets, name: str, value: Any) -> tuple[dict[str, Op], dict[str, Op]]:
    """Save and load operations of every target for one payload."""
    raw_key = [f"bench{t.tag}r:{name}:{i}" for i in IDS]
    b = t.backend

    def raw_pair(client: Any) -> tuple[Op, Op]:
        async def save(i: int) -> None:
            await client.set(raw_key[i % 100], json.dumps(value).encode())

        async def load(i: int) -> None:
            json.loads(await client.get(raw_key[i % 100]))

        return save, load

    def backend_pair(backend: Any) -> tuple[Op, Op]:
        async def save(i: int) -> None:
            await backend.put("bench", name, IDS[i % 100], json.dumps(value).encode())

        async def load(i: int) -> None:
            rec = await backend.get("bench", name, IDS[i % 100])
            json.loads(rec.value)

        return save, load

    async def mem_save(i: int) -> None:
        await t.memory.put(name, IDS[i % 100], value)

    async def mem_load(i: int) -> None:
        await t.memory.get(name, IDS[i % 100])

    async def hit(i: int) -> None:
        await t.cached.get(name, IDS[i % 100])

    saves: dict[str, Op] = {}
    loads: dict[str, Op] = {}
    parser = " (hiredis)" if t.hiredis else ""
    saves[f"raw redis.asyncio SET+json{parser}"], loads[f"raw redis.asyncio GET+json{parser}"] = (
        raw_pair(t.raw)
    )
    saves[f"hivemem RedisBackend.put+json{parser}"], loads[
        f"hivemem RedisBackend.get+json{parser}"
    ] = backend_pair(b)
    if t.hiredis:
        saves["raw redis.asyncio SET+json (py parser)"], loads[
            "raw redis.asyncio GET+json (py parser)"
        ] = raw_pair(t.raw_py)
        saves["hivemem RedisBackend.put+json (py parser)"], loads[
            "hivemem RedisBackend.get+json (py parser)"
        ] = backend_pair(t.backend_py)
    saves["hivemem Memory.put, no local cache"] = mem_save
    loads["hivemem Memory.get, no local cache"] = mem_load
    loads["hivemem Memory.get, local-cache hit"] = hit
    if t.aiocache is not None:
        ac, ak = t.aiocache, [f"{name}:{i}" for i in IDS]

        async def ac_save(i: int) -> None:
            await ac.set(ak[i % 100], value)

        async def ac_load(i: int) -> None:
            await ac.get(ak[i % 100])

        saves["aiocache RedisCache.set (json)"] = ac_save
        loads["aiocache RedisCache.get (json)"] = ac_load
    if t.cashews is not None:
        cw, ck = t.cashews, [f"cw{t.tag}:{name}:{i}" for i in IDS]

        async def cw_save(i: int) -> None:
            await cw.set(ck[i % 100], value)

        async def cw_load(i: int) -> None:
            await cw.get(ck[i % 100])

        saves["cashews set (redis, pickle)"] = cw_save
        loads["cashews get (redis, pickle)"] = cw_load
    return saves, loads


def _reference(label: str, rows: dict[str, Stats]) -> Stats:
    """The raw row a row is compared with: same operation, same reply parser."""
    py = "(py parser)" in label
    for name, stats in rows.items():
        if name.startswith("raw ") and (("(py parser)" in name) == py):
            return stats
    return next(iter(rows.values()))


async def latency(t: Targets, n: int, summary: dict[str, float]) -> None:
    """Section 1: interleaved single-operation latency of every target."""
    print_title("1. save / load latency, one call at a time")
    print(
        f"{n} timed calls per row after {min(n, 200)} warm-up calls, over 100 ids, all rows "
        "of a table interleaved in 20 slices. x raw = p50 / p50 of the raw row using the same "
        "reply parser. Memory rows include hivemem's codec pipeline (json serializer + frame)."
    )
    for name, value in (("entity ~1 KB", entity(1)), ("history ~20 KB", history(1))):
        short = "1KB" if "1 KB" in name else "20KB"
        saves, loads = _latency_ops(t, short, value)
        for what, ops in (("save", saves), ("load", loads)):
            if what == "load":  # everything readable before the timed loads
                for i in range(100):
                    for op in saves.values():
                        await op(i)
                for i in range(100):  # fill the local cache: the hit row measures hits
                    await t.cached.put(short, IDS[i], value)
            rows = await time_interleaved(ops, n, min(n, 200), chunks=20)
            table = []
            for label, st in rows.items():
                ref = _reference(label, rows)
                table.append(
                    [label, fmt_num(st.ops_per_s), fmt_num(st.p50_us), fmt_num(st.p99_us),
                     ratio(st.p50_us, ref.p50_us)]
                )
                summary[f"{what} {short} {label}"] = st.p50_us
            print_table(
                ["target", "ops/s", "p50 µs", "p99 µs", "x raw"], table,
                title=f"{what} — {name}",
            )


# -- 2. batch ---------------------------------------------------------------------------------


def _batch_ops(t: Targets, short: str, value: Any) -> dict[str, tuple[Op, Op]]:
    """``{label: (100 sequential calls, one batch of 100)}`` for one payload."""
    b, mem = t.backend, t.memory
    data = json.dumps(value).encode()
    items = dict.fromkeys(IDS, data)
    keys = [f"bench{t.tag}r:{short}:{i}" for i in IDS]

    async def seq_put(_: int) -> None:
        for i in IDS:
            await b.put("bench", short, i, data)

    async def put_many(_: int) -> None:
        await b.put_many("bench", short, items)

    async def seq_get(_: int) -> None:
        for i in IDS:
            await b.get("bench", short, i)

    async def get_many(_: int) -> None:
        await b.get_many("bench", short, IDS)

    async def mem_seq_put(_: int) -> None:
        for i in IDS:
            await mem.put(short, i, value)

    async def mem_put_many(_: int) -> None:
        await mem.put_many(short, dict.fromkeys(IDS, value))

    async def mem_seq_get(_: int) -> None:
        for i in IDS:
            await mem.get(short, i)

    async def mem_get_many(_: int) -> None:
        await mem.get_many(short, IDS)

    async def raw_seq_set(_: int) -> None:
        for k in keys:
            await t.raw.set(k, data)

    async def raw_mset(_: int) -> None:
        await t.raw.mset(dict.fromkeys(keys, data))

    async def raw_seq_get(_: int) -> None:
        for k in keys:
            await t.raw.get(k)

    async def raw_mget(_: int) -> None:
        await t.raw.mget(keys)

    return {
        "RedisBackend put": (seq_put, put_many),
        "RedisBackend get": (seq_get, get_many),
        "Memory put (no local cache)": (mem_seq_put, mem_put_many),
        "Memory get (no local cache)": (mem_seq_get, mem_get_many),
        "raw SET / MSET": (raw_seq_set, raw_mset),
        "raw GET / MGET": (raw_seq_get, raw_mget),
    }


async def batch(t: Targets, rounds: int, summary: dict[str, float]) -> None:
    """Section 2: batches of 100 against 100 sequential calls."""
    print_title("2. batch of 100 vs 100 sequential calls")
    print(
        f"median of {rounds} interleaved rounds, each writing/reading the same 100 ids. "
        "speedup = sequential time / batch time (the batch's throughput gain)."
    )
    table = []
    for name, value in (("entity ~1 KB", entity(2)), ("history ~20 KB", history(2))):
        short = "b1KB" if "1 KB" in name else "b20KB"
        pairs = _batch_ops(t, short, value)
        ops: dict[str, Op] = {}
        for label, (seq, many) in pairs.items():
            ops[f"{label} seq"] = seq
            ops[f"{label} batch"] = many
        for label in ("RedisBackend put", "Memory put (no local cache)", "raw SET / MSET"):
            await pairs[label][1](0)  # everything readable before the timed rounds
        rows = await time_interleaved(ops, rounds, 2, chunks=min(rounds, 10))
        for label in pairs:
            seq, many = rows[f"{label} seq"].p50_us, rows[f"{label} batch"].p50_us
            table.append(
                [f"{label} — {name}", fmt_num(seq / 1000, 2), fmt_num(many / 1000, 2),
                 fmt_num(100 / (seq / 1e6)), fmt_num(100 / (many / 1e6)), ratio(seq, many)]
            )
            summary[f"batch {short} {label}"] = seq / many
        bm = rows["RedisBackend put batch"].p50_us / rows["raw SET / MSET batch"].p50_us
        gm = rows["RedisBackend get batch"].p50_us / rows["raw GET / MGET batch"].p50_us
        summary[f"put_many/MSET {short}"] = bm
        summary[f"get_many/MGET {short}"] = gm
    print_table(
        ["operation", "100 seq ms", "batch ms", "seq rec/s", "batch rec/s", "speedup"], table
    )
    for short, name in (("b1KB", "1 KB"), ("b20KB", "20 KB")):
        print(
            f"put_many / raw MSET ({name}): {summary[f'put_many/MSET {short}']:.2f}x, "
            f"get_many / raw MGET: {summary[f'get_many/MGET {short}']:.2f}x"
        )


# -- 3. invalidation --------------------------------------------------------------------------


def _listener(url: str, prefix: str, conn: Any) -> None:
    """Child process: subscribe and send the arrival time of each callback."""
    from hivemem_redis.backend import RedisBackend

    async def run() -> None:
        backend = RedisBackend(url, prefix=prefix)
        await backend.open()
        await backend.subscribe("inv", lambda kind, id: conn.send(time.monotonic()))
        conn.send("ready")
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # parent says stop
        await backend.close()

    asyncio.run(run())


async def invalidation(url: str, writes: int, summary: dict[str, float]) -> None:
    """Section 3: seconds between a put here and the callback in another process."""
    from hivemem_redis.backend import RedisBackend

    print_title("3. cross-process invalidation delay")
    prefix = f"bench{uuid.uuid4().hex[:6]}i:"
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_listener, args=(url, prefix, child))
    proc.start()
    loop = asyncio.get_running_loop()
    backend = RedisBackend(url, prefix=prefix)
    try:
        assert await loop.run_in_executor(None, parent.recv) == "ready"
        await backend.open()
        delays = []
        for i in range(writes):
            t0 = time.monotonic()
            await backend.put("inv", "user", f"u{i % 50}", b"{}")
            seen = await loop.run_in_executor(None, parent.recv)
            delays.append(seen - t0)
        parent.send("stop")
        await loop.run_in_executor(None, proc.join, 30)
        await backend.drop_namespace("inv")
    finally:
        await backend.close()
        if proc.is_alive():
            proc.kill()
    ordered = sorted(delays)
    p50 = statistics.median(ordered) * 1e3
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1e3
    summary["invalidation p50 ms"], summary["invalidation p99 ms"] = p50, p99
    print(
        f"{writes} writes, put start -> callback in the other process: p50 {p50:.2f} ms, "
        f"p99 {p99:.2f} ms, max {ordered[-1] * 1e3:.2f} ms"
    )


# -- summary and entry point ------------------------------------------------------------------


def print_targets(summary: dict[str, float], hiredis: bool) -> None:
    """The issue's three targets, as measured in this run."""
    print_title("targets")
    parser = " (hiredis)" if hiredis else ""
    rows = []
    for short in ("1KB", "20KB"):
        for what, op in (("save", "put"), ("load", "get")):
            raw = summary.get(f"{what} {short} raw redis.asyncio {'SET' if op == 'put' else 'GET'}"
                              f"+json{parser}")
            hm = summary.get(f"{what} {short} hivemem RedisBackend.{op}+json{parser}")
            if raw and hm:
                rows.append([f"backend {what} {short} / raw (target <= 1.30x)", f"{hm / raw:.2f}x"])
    for short in ("b1KB", "b20KB"):
        for label in ("RedisBackend put", "RedisBackend get"):
            value = summary.get(f"batch {short} {label}")
            if value:
                rows.append([f"{label} batch speedup {short[1:]} (target >= 10x)", f"{value:.1f}x"])
    for short in ("1KB", "20KB"):
        raw = summary.get(f"load {short} raw redis.asyncio GET+json{parser}")
        hit = summary.get(f"load {short} hivemem Memory.get, local-cache hit")
        if raw and hit:
            rows.append([f"raw GET / local-cache hit {short} (target >= 20x)", f"{raw / hit:.1f}x"])
    print_table(["target", "measured"], rows)


async def run(url: str, quick: bool, args: argparse.Namespace) -> None:
    """Every selected section against ``url``."""
    t = Targets(url)
    await t.open()
    print(
        f"server {url}; redis-py {dist_version('redis')}, hiredis "
        f"{dist_version('hiredis') if t.hiredis else 'not installed'}, aiocache "
        f"{dist_version('aiocache') or '-'}, cashews {dist_version('cashews') or '-'}"
    )
    info = await t.raw.info("server")
    print(f"redis-server {info.get('redis_version')}, {info.get('arch_bits')}-bit, loopback TCP")
    for reason in t.skipped:
        print(f"skipped peer {reason}")
    summary: dict[str, float] = {}
    try:
        if wants(args, "redis", "latency"):
            await latency(t, 300 if quick else 2000, summary)
        if wants(args, "redis", "batch"):
            await batch(t, 8 if quick else 30, summary)
    finally:
        await t.close()
    if wants(args, "redis", "invalidation"):
        await invalidation(url, 100 if quick else 500, summary)
    print_targets(summary, t.hiredis)


def main(args: argparse.Namespace | None = None) -> None:
    """Entry point for ``benchmarks/run.py`` (parsed args) or the command line (None)."""
    if args is None:
        parser = build_parser()
        parser.add_argument("--url", help="an existing Redis server (default: start one)")
        args = parser.parse_args()
    url = getattr(args, "url", None)
    quick = bool(getattr(args, "quick", False))
    if url:
        asyncio.run(run(url, quick, args))
        return
    if shutil.which("redis-server") is None:
        raise Skip("redis-server is not installed")
    from hivemem_redis.testing import RedisServer

    with RedisServer() as server:
        asyncio.run(run(server.url, quick, args))


if __name__ == "__main__":
    main()
