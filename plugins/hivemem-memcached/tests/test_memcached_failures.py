"""Failure behaviour against real memcached processes: SIGSTOP, SIGKILL, lost replies."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

import pytest
from hivemem.testing.helpers import eventually
from hivemem.testing.servers import MemcachedServer
from hivemem_memcached import MemcachedCache

FAST = "timeout=0.2&retry_after=0.1&max_retry_after=0.4"
TIMEOUT = 0.2
#: a call must come back within the timeout plus scheduling slack (generous for busy CI)
BOUND = TIMEOUT * 3


async def timed(coro: object) -> tuple[object, float]:
    started = time.perf_counter()
    result = await coro  # type: ignore[misc]
    return result, time.perf_counter() - started


async def test_stalled_server_gives_bounded_misses_then_hits_again(
    mc: Any,
    memcached_server_factory: Callable[..., MemcachedServer],
    make_cache: Callable[..., MemcachedCache],
) -> None:
    memcached_server = memcached_server_factory()
    cache = make_cache(f"{memcached_server.url}?{FAST}")
    items = {f"k{i}": f"v{i}".encode() for i in range(20)}
    await cache.set_many(items)
    mc.pause(memcached_server)
    try:
        concurrent = await asyncio.gather(*(timed(cache.get(k)) for k in items))
        batch, batch_time = await timed(cache.get_many(list(items)))
        _, set_time = await timed(cache.set("k3", b"new"))
        _, delete_time = await timed(cache.delete("k4"))
        lease, lease_time = await timed(cache.lease("k5", 2))
        later = [await timed(cache.get(k)) for k in items]
    finally:
        memcached_server.resume()
    assert all(value is None for value, _ in concurrent + later)
    assert batch == {} and lease is True
    times = [t for _, t in concurrent + later] + [batch_time, set_time, delete_time, lease_time]
    worst = max(times)
    assert worst < BOUND, f"slowest call took {worst:.3f}s"
    stats = cache.stats()
    assert stats["timeouts"] >= 1 and stats["servers_down"] == 1 and stats["skipped"] >= 1
    print(f"\nstalled server: slowest call {worst * 1000:.0f} ms (timeout {TIMEOUT * 1000:.0f} ms)")

    async def hit() -> bool:
        return await cache.get("k0") == b"v0"

    await eventually(hit, timeout=10)
    got = await cache.get_many(list(items))
    # values written or deleted while stalled are never served stale
    assert "k4" not in got and got.get("k3") in (None, b"new")
    assert {k: v for k, v in got.items() if k not in ("k3", "k4")} == {
        k: v for k, v in items.items() if k not in ("k3", "k4")
    }
    assert cache.stats()["servers_down"] == 0


@pytest.mark.parametrize("cut", ["timeout", "cancel"])
async def test_a_cut_call_never_poisons_later_replies(
    mc: Any,
    cut: str,
    memcached_server_factory: Callable[..., MemcachedServer],
    make_cache: Callable[..., MemcachedCache],
) -> None:
    """aiomcache would reuse a connection whose reply is still in flight; we must not."""
    memcached_server = memcached_server_factory()
    # one connection, never marked down: every later call would reuse a poisoned connection
    cache = make_cache(f"{memcached_server.url}?timeout={TIMEOUT}&pool_size=1&down_after=1000")
    items = {f"k{i}": f"v{i}".encode() for i in range(10)}
    await cache.set_many(items)
    mc.pause(memcached_server)
    try:
        if cut == "timeout":
            assert await cache.get("k0") is None
            await cache.delete("absent")
            await cache.set("k9", b"v9")
        else:
            for call in (
                lambda: cache.get("k0"),
                lambda: cache.delete("absent"),
                lambda: cache.set("k9", b"v9"),
            ):
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(call(), TIMEOUT / 4)
    finally:
        memcached_server.resume()
    # the stalled replies (VALUE k0 ..., NOT_FOUND, STORED) now arrive on the old connection
    for key, value in items.items():
        if key != "k9":  # k9's set was cut: it is dirty and misses once
            assert await cache.get(key) == value, key
    without_k9 = {k: v for k, v in items.items() if k != "k9"}
    assert await cache.get_many(list(items)) in (items, without_k9)
    assert cache.stats()["errors"] == 0


async def test_a_lost_invalidation_is_never_served_stale(
    mc: Any,
    memcached_server_factory: Callable[..., MemcachedServer],
    make_cache: Callable[..., MemcachedCache],
) -> None:
    memcached_server = memcached_server_factory()
    cache = make_cache(f"{memcached_server.url}?{FAST}")
    await cache.set_many({"victim": b"old", "probe": b"p"})
    mc.pause(memcached_server)
    try:
        assert await cache.get("other1") is None
        assert await cache.get("other2") is None
        assert cache.stats()["servers_down"] == 1
        skipped = cache.stats()["skipped"]
        await cache.delete("victim")  # marked down: never sent
        assert cache.stats()["skipped"] == skipped + 1
    finally:
        memcached_server.resume()

    async def back() -> bool:
        return await cache.get("probe") == b"p"

    await eventually(back, timeout=10)
    assert await mc.raw_get(cache, "victim") == b"old"  # the server still holds the stale value
    assert await cache.get("victim") is None  # ... but it is never served
    assert await mc.raw_get(cache, "victim") is None  # and the delete was replayed
    await cache.set("victim", b"fresh")
    assert await cache.get("victim") == b"fresh"


async def test_killing_one_of_two_servers_mid_load(
    mc: Any,
    memcached_server_factory: Callable[..., MemcachedServer],
    make_cache: Callable[..., MemcachedCache],
) -> None:
    one, two = memcached_server_factory(), memcached_server_factory()
    cache = make_cache(f"memcached://{mc.address(one)},{mc.address(two)}?{FAST}")
    items = {f"key-{i}": f"value-{i}".encode() * 10 for i in range(400)}
    await cache.set_many(items)
    keys = list(items)
    survivor = mc.address(one)
    reads = wrong = 0
    killed = asyncio.Event()
    enough = asyncio.Event()
    stop = asyncio.Event()

    async def reader(seed: int) -> None:
        nonlocal reads, wrong, mark
        rng = random.Random(seed)
        while not stop.is_set():
            batch = rng.sample(keys, 5)
            got = await cache.get_many(batch)
            single = rng.choice(keys)
            value = await cache.get(single)
            wrong += sum(1 for k, v in got.items() if items[k] != v)
            wrong += value is not None and value != items[single]
            reads += 6
            if reads >= 3000 and not killed.is_set():
                two.kill()
                killed.set()
                mark = reads
            if killed.is_set() and reads >= 9000:
                enough.set()

    mark = 0
    tasks = [asyncio.create_task(reader(i)) for i in range(8)]
    try:
        await asyncio.wait_for(enough.wait(), 60)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    assert killed.is_set() and reads - mark > 5000
    assert wrong == 0
    on_one = [k for k in keys if cache.server_for(k) == survivor]
    on_two = [k for k in keys if cache.server_for(k) != survivor]
    assert on_one and on_two
    # the survivor's share still hits, the dead server's share misses
    assert await cache.get_many(keys) == {k: items[k] for k in on_one}
    stats = cache.stats()
    assert stats["servers_down"] == 1 and stats["errors"] >= 1

    two.restart()

    async def refilled() -> bool:
        await cache.set(on_two[0], items[on_two[0]])
        return await cache.get(on_two[0]) == items[on_two[0]]

    await eventually(refilled, timeout=10)
    assert cache.stats()["servers_down"] == 0


async def test_tiny_server_evicts_but_never_returns_a_wrong_value(
    memcached_server_factory: Callable[..., MemcachedServer],
    make_cache: Callable[..., MemcachedCache],
) -> None:
    # memcached wants items of at most half its memory
    server = memcached_server_factory(memory_mb=1, item_size=512 * 1024)
    cache = make_cache(server.url, max_value_size=400_000)
    rng = random.Random(7)

    def value(i: int, size: int) -> bytes:
        return (f"<{i}>".encode() * (size // 4 + 1))[:size]

    sizes = {f"item-{i}": rng.choice([100, 1000, 5000, 20_000]) for i in range(3000)}
    written = {k: value(i, size) for i, (k, size) in enumerate(sizes.items())}
    total = sum(len(v) for v in written.values())
    assert total > 15 * 1024 * 1024  # far past the server's 1 MB
    keys = list(written)
    for start in range(0, len(keys), 200):
        await cache.set_many({k: written[k] for k in keys[start : start + 200]})
    got = await cache.get_many(keys)
    assert got, "something must survive"
    assert all(written[k] == v for k, v in got.items())
    kept = sum(len(v) for v in got.values())
    assert len(got) < len(keys) and kept < total / 2
    for key in rng.sample(keys, 200):
        hit = await cache.get(key)
        assert hit is None or hit == written[key]
    await cache.server_stats()
    stats = cache.stats()
    assert stats["evictions"] > 0 and stats["servers_down"] == 0
    print(
        f"\n-m 1: wrote {total >> 20} MiB in {len(keys)} values; {len(got)} values "
        f"({kept >> 10} KiB) survived; {stats['evictions']} evictions; cache stats {stats}"
    )
