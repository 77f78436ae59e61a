"""Redis backend vs the raw redis.asyncio client, side by side on one server.

Usage::

    python benchmarks/bench_redis.py                 # starts a private redis-server
    python benchmarks/bench_redis.py --url redis://127.0.0.1:6379/0 --n 2000

Measures, for a ~1 KB entity and a ~20 KB conversation history (JSON):

* single save / load: ``RedisBackend.put``/``get`` (+ json) vs raw ``SET``/``GET`` (+ json);
* a batch of 100: ``put_many``/``get_many`` vs 100 sequential backend calls
  (and raw ``MSET``/``MGET`` for reference);
* cross-process invalidation delay: a write here until the callback fires in a
  subscribed child process.

Prints a table of microseconds per operation and ratios. Numbers are this
machine's; the Memory-level and peer-library columns live in the lead's
benchmark harness.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from hivemem_redis.backend import RedisBackend


def entity_1k() -> dict[str, Any]:
    """A ~1 KB entity (user profile with preferences)."""
    return {
        "name": "Ada Lovelace",
        "email": "ada@example.org",
        "preferences": {f"pref_{i}": f"value-{i}" * 3 for i in range(20)},
        "tags": [f"tag{i}" for i in range(30)],
        "score": 0.875,
    }


def history_20k() -> list[dict[str, Any]]:
    """A ~20 KB conversation history."""
    return [
        {"role": "user" if i % 2 else "assistant", "content": ("lorem ipsum dolor " * 11)[:190],
         "ts": 1_700_000_000 + i}
        for i in range(90)
    ]


async def timed(fn: Callable[[], Awaitable[Any]], n: int) -> float:
    """Mean seconds per call of ``fn`` over ``n`` sequential calls (after a warm-up)."""
    for _ in range(min(50, n)):
        await fn()
    t0 = time.perf_counter()
    for _ in range(n):
        await fn()
    return (time.perf_counter() - t0) / n


async def bench_payload(
    url: str, name: str, payload: Any, n: int, rows: list[tuple[str, str, float, float]]
) -> None:
    """Fill ``rows`` with (operation, payload, raw s/op, hivemem s/op)."""
    prefix = f"bench{uuid.uuid4().hex[:6]}:"
    backend = RedisBackend(url, prefix=prefix)
    await backend.open()
    raw = aioredis.Redis.from_url(url)
    data = json.dumps(payload).encode()
    rkey = f"{prefix}raw:{name}"

    async def raw_save() -> None:
        await raw.set(rkey, json.dumps(payload).encode())

    async def raw_load() -> None:
        json.loads(await raw.get(rkey))

    async def hm_save() -> None:
        await backend.put("bench", name, "one", json.dumps(payload).encode())

    async def hm_load() -> None:
        rec = await backend.get("bench", name, "one")
        assert rec is not None
        json.loads(rec.value)

    rows.append(("save", name, await timed(raw_save, n), await timed(hm_save, n)))
    rows.append(("load", name, await timed(raw_load, n), await timed(hm_load, n)))

    ids = [f"id{i:03}" for i in range(100)]
    items = {i: data for i in ids}
    rounds = max(5, n // 100)

    async def seq_save() -> None:
        for i in ids:
            await backend.put("bench", name, i, data)

    async def batch_save() -> None:
        await backend.put_many("bench", name, items)

    async def seq_load() -> None:
        for i in ids:
            await backend.get("bench", name, i)

    async def batch_load() -> None:
        assert len(await backend.get_many("bench", name, ids)) == 100

    async def raw_mset() -> None:
        await raw.mset({f"{rkey}:{i}": data for i in ids})

    async def raw_mget() -> None:
        await raw.mget([f"{rkey}:{i}" for i in ids])

    rows.append(("100 x save, sequential vs put_many", name,
                 await timed(seq_save, rounds), await timed(batch_save, rounds)))
    rows.append(("100 x load, sequential vs get_many", name,
                 await timed(seq_load, rounds), await timed(batch_load, rounds)))
    rows.append(("100 x save, raw MSET vs put_many", name,
                 await timed(raw_mset, rounds), await timed(batch_save, rounds)))
    rows.append(("100 x load, raw MGET vs get_many", name,
                 await timed(raw_mget, rounds), await timed(batch_load, rounds)))
    await backend.drop_namespace("bench")
    await raw.delete(rkey, *(f"{rkey}:{i}" for i in ids))
    await raw.aclose()
    await backend.close()


def _listener(url: str, prefix: str, conn: Any) -> None:
    """Child process: subscribe and send the arrival time of each callback."""

    async def main() -> None:
        backend = RedisBackend(url, prefix=prefix)
        await backend.open()
        await backend.subscribe("inv", lambda kind, id: conn.send(time.time()))
        conn.send("ready")
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, conn.recv)  # parent says stop
        await backend.close()

    asyncio.run(main())


async def invalidation_delay(url: str, writes: int = 200) -> list[float]:
    """Seconds between a put here and the callback in another process, per write."""
    prefix = f"bench{uuid.uuid4().hex[:6]}:"
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_listener, args=(url, prefix, child))
    proc.start()
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(None, parent.recv) == "ready"
    backend = RedisBackend(url, prefix=prefix)
    await backend.open()
    delays = []
    for i in range(writes):
        t0 = time.time()
        await backend.put("inv", "user", f"u{i}", b"{}")
        seen = await loop.run_in_executor(None, parent.recv)
        delays.append(seen - t0)
    parent.send("stop")
    await loop.run_in_executor(None, proc.join, 30)
    await backend.drop_namespace("inv")
    await backend.close()
    return delays


def print_table(rows: list[tuple[str, str, float, float]]) -> None:
    """Print µs/op and the hivemem/raw ratio (for batches: the speed-up of the batch)."""
    head = f"{'operation':38} {'payload':8} {'baseline us':>12} {'hivemem us':>11} {'ratio':>7}"
    print(head)
    print("-" * len(head))
    for op, payload, base, hm in rows:
        print(f"{op:38} {payload:8} {base * 1e6:12.1f} {hm * 1e6:11.1f} {hm / base:7.2f}")
    print("ratio = hivemem time / baseline time (below 1: hivemem faster; for the")
    print("'sequential vs' rows 1/ratio is the batch's throughput gain)")


async def run(url: str, n: int) -> None:
    """Run every measurement against ``url`` and print the results."""
    rows: list[tuple[str, str, float, float]] = []
    await bench_payload(url, "1KB", entity_1k(), n, rows)
    await bench_payload(url, "20KB", history_20k(), n, rows)
    print(f"\nRedisBackend vs redis.asyncio on {url} ({n} sequential ops per cell)\n")
    print_table(rows)
    delays = await invalidation_delay(url)
    q = statistics.quantiles(delays, n=100)
    print(
        f"\ncross-process invalidation delay over {len(delays)} writes: "
        f"median {statistics.median(delays) * 1e3:.2f} ms, p99 {q[98] * 1e3:.2f} ms, "
        f"max {max(delays) * 1e3:.2f} ms"
    )


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="an existing Redis server (default: start one)")
    parser.add_argument("--n", type=int, default=2000, help="sequential ops per cell")
    args = parser.parse_args()
    if args.url:
        asyncio.run(run(args.url, args.n))
        return
    from hivemem.testing.servers import RedisServer

    with RedisServer() as server:
        asyncio.run(run(server.url, args.n))


if __name__ == "__main__":
    main()
