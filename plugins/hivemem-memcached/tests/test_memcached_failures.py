"""Failure behaviour against real memcached processes: SIGSTOP, SIGKILL, lost replies.

No test here depends on the speed of the machine. Where time is the thing
under test (a call to a stalled server must come back as a miss, not hang) it
is bounded at ``HANG``, ten times the timeout. When a marked-down server is
probed again is driven by a clock the test moves by hand (``cache.clock``),
and what happened is read from the cache's counters (``timeouts``,
``skipped``, ``servers_down``) and from the servers themselves.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from hivemem.testing.helpers import eventually
from hivemem_memcached import MemcachedCache
from hivemem_memcached.testing import MemcachedServer

T = TypeVar("T")

TIMEOUT = 0.2
FAST = f"timeout={TIMEOUT}&retry_after=0.1&max_retry_after=0.4"
#: a call slower than this did not time out: it hung
HANG = 10 * TIMEOUT


async def answered(call: Awaitable[T], what: str = "the call") -> T:
    """``call``'s result; fails the test when it has not come back within ``HANG``."""
    try:
        async with asyncio.timeout(HANG):
            return await call
    except TimeoutError:
        pytest.fail(f"{what} hung: no answer within {HANG:g}s (the timeout is {TIMEOUT:g}s)")


async def _down_server_costs_no_waiting(cache: MemcachedCache, items: dict[str, bytes]) -> None:
    """Marked down (the clock stands still): every call answers at once, none reaches it.

    A read is a miss, a write is lost (and its key dirty), a lease fails open.
    """
    stats = cache.stats()
    timeouts, skipped = stats["timeouts"], stats["skipped"]
    assert await answered(cache.get_many(list(items)), "get_many") == {}
    await answered(cache.set("k3", b"new"), "set")
    await answered(cache.delete("k4"), "delete")
    assert await answered(cache.lease("k5", 2), "lease") is True
    assert [await answered(cache.get(k), "get") for k in items] == [None] * len(items)
    stats = cache.stats()
    assert stats["timeouts"] == timeouts  # none of them waited on the stalled server
    assert stats["skipped"] > skipped


async def _every_value_comes_back(
    cache: MemcachedCache, clock: Any, items: dict[str, bytes]
) -> None:
    """After the server resumes, every value is served again and none is stale."""

    async def every_value_back() -> bool:
        clock.advance(60)  # a probe may go out on every round
        got = await cache.get_many(list(items))
        # never stale: k4 was deleted and k3 rewritten while the server was stalled
        assert "k4" not in got and got.get("k3") in (None, b"new"), got
        assert all(v == items[k] for k, v in got.items() if k != "k3"), got
        return set(got) >= set(items) - {"k3", "k4"} and cache.stats()["servers_down"] == 0

    await eventually(every_value_back, timeout=30, what="the resumed server serving again")


async def test_stalled_server_gives_bounded_misses_then_hits_again(
    mc: Any,
    clock: Any,
    memcached_server_factory: Callable[..., MemcachedServer],
    make_cache: Callable[..., MemcachedCache],
) -> None:
    memcached_server = memcached_server_factory()
    cache = make_cache(f"{memcached_server.url}?{FAST}")
    cache.clock = clock
    items = {f"k{i}": f"v{i}".encode() for i in range(20)}
    await cache.set_many(items)
    mc.pause(memcached_server)
    try:
        started = time.perf_counter()
        # 20 concurrent reads meet the stalled server: each is a miss, none hangs
        concurrent = await answered(asyncio.gather(*(cache.get(k) for k in items)), "reads")
        stalled_for = time.perf_counter() - started
        assert concurrent == [None] * len(items)
        stats = cache.stats()
        assert stats["timeouts"] >= 1 and stats["servers_down"] == 1
        await _down_server_costs_no_waiting(cache, items)
        timeouts = cache.stats()["timeouts"]
        # past the back-off exactly one caller probes the (still stalled) server
        clock.advance(60)
        probed = await answered(asyncio.gather(*(cache.get(k) for k in items)), "reads")
        assert probed == [None] * len(items)
        assert cache.stats()["timeouts"] == timeouts + 1
        assert cache.stats()["servers_down"] == 1
    finally:
        memcached_server.resume()
    print(f"\nstalled server: 20 concurrent reads answered in {stalled_for * 1000:.0f} ms "
          f"(timeout {TIMEOUT * 1000:.0f} ms)")
    await _every_value_comes_back(cache, clock, items)


def _hit_or_cut(cache: MemcachedCache, got: bytes | None, want: bytes, timeouts: int) -> bool:
    """``got`` is ``want``, or a miss that a counted timeout explains (a busy machine)."""
    return got == want or (got is None and cache.stats()["timeouts"] > timeouts)


@pytest.mark.parametrize("cut", ["timeout", "cancel"])
async def test_a_cut_call_never_poisons_later_replies(
    mc: Any,
    cut: str,
    memcached_server_factory: Callable[..., MemcachedServer],
    make_cache: Callable[..., MemcachedCache],
) -> None:
    """aiomcache would reuse a connection whose reply is still in flight; we must not."""
    memcached_server = memcached_server_factory()
    # "timeout": the cache's own timeout cuts each call; "cancel": the caller does,
    # long before the cache's timeout could
    timeout = TIMEOUT if cut == "timeout" else 60
    # one connection, never marked down: every later call would reuse a poisoned connection
    cache = make_cache(f"{memcached_server.url}?timeout={timeout}&pool_size=1&down_after=1000")
    items = {f"k{i}": f"v{i}".encode() for i in range(10)}
    await cache.set_many(items)
    mc.pause(memcached_server)
    try:
        if cut == "timeout":
            assert await answered(cache.get("k0"), "get") is None
            await answered(cache.delete("absent"), "delete")
            await answered(cache.set("k9", b"v9"), "set")
            assert cache.stats()["timeouts"] == 3
        else:
            for call in (
                lambda: cache.get("k0"),
                lambda: cache.delete("absent"),
                lambda: cache.set("k9", b"v9"),
            ):
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(call(), 0.05)  # the server is stopped: never sooner
            assert cache.stats()["timeouts"] == 0
    finally:
        memcached_server.resume()
    # the stalled replies (VALUE k0 ..., NOT_FOUND, STORED) now arrive on the old
    # connection: a poisoned pool would hand them to these reads
    for key, value in items.items():
        if key != "k9":  # k9's set was cut: it is dirty and misses once
            timeouts = cache.stats()["timeouts"]
            got = await cache.get(key)
            assert _hit_or_cut(cache, got, value, timeouts), (key, got)
    without_k9 = {k: v for k, v in items.items() if k != "k9"}
    timeouts = cache.stats()["timeouts"]
    got_many = await cache.get_many(list(items))
    assert all(items[k] == v for k, v in got_many.items()), got_many
    assert got_many in (items, without_k9) or cache.stats()["timeouts"] > timeouts
    assert cache.stats()["errors"] == 0


async def test_a_lost_invalidation_is_never_served_stale(
    mc: Any,
    clock: Any,
    memcached_server_factory: Callable[..., MemcachedServer],
    make_cache: Callable[..., MemcachedCache],
) -> None:
    memcached_server = memcached_server_factory()
    cache = make_cache(f"{memcached_server.url}?{FAST}")
    cache.clock = clock
    await cache.set_many({"victim": b"old", "probe": b"p"})
    mc.pause(memcached_server)
    try:
        # down_after (2) reads time out: the server is marked down
        assert await answered(cache.get("other1"), "get") is None
        assert await answered(cache.get("other2"), "get") is None
        assert cache.stats()["servers_down"] == 1
        # and stays down while the clock stands still: this delete is never sent
        await answered(cache.delete("victim"), "delete")
    finally:
        memcached_server.resume()

    async def back() -> bool:
        clock.advance(60)  # let a probe through
        return await cache.get("probe") == b"p"

    await eventually(back, timeout=30, what="the resumed server answering")
    assert await mc.raw_get(cache, "victim") == b"old"  # the server still holds the stale value

    async def replayed() -> bool:
        clock.advance(60)
        assert await cache.get("victim") is None  # ... but it is never served
        return await mc.raw_get(cache, "victim") is None  # and reading it re-sent the delete

    await eventually(replayed, timeout=30, what="the lost delete being re-sent")

    async def fresh() -> bool:
        clock.advance(60)
        await cache.set("victim", b"fresh")
        got = await cache.get("victim")
        assert got in (None, b"fresh"), got
        return got == b"fresh"

    await eventually(fresh, timeout=30, what="a new value being served")


async def _read_while_killing(
    cache: MemcachedCache, items: dict[str, bytes], kill: Callable[[], None]
) -> tuple[int, int, int]:
    """8 readers until 9000 reads, ``kill()`` at 3000: (reads, wrong values, reads at kill)."""
    keys = list(items)
    reads = wrong = mark = 0
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
                kill()
                killed.set()
                mark = reads
            if killed.is_set() and reads >= 9000:
                enough.set()

    tasks = [asyncio.create_task(reader(i)) for i in range(8)]
    try:
        await asyncio.wait_for(enough.wait(), 60)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    assert killed.is_set()
    return reads, wrong, mark


async def test_killing_one_of_two_servers_mid_load(
    mc: Any,
    memcached_server_factory: Callable[..., MemcachedServer],
    make_cache: Callable[..., MemcachedCache],
) -> None:
    one, two = memcached_server_factory(), memcached_server_factory()
    # a killed server refuses connections at once: the generous timeout is never waited
    # for, while a busy machine cannot turn a survivor's slow reply into a miss
    cache = make_cache(
        f"memcached://{mc.address(one)},{mc.address(two)}?retry_after=0.1&max_retry_after=0.4"
    )
    items = {f"key-{i}": f"value-{i}".encode() * 10 for i in range(400)}
    await cache.set_many(items)
    keys = list(items)
    survivor = mc.address(one)
    reads, wrong, mark = await _read_while_killing(cache, items, two.kill)
    assert reads - mark > 5000
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

    await eventually(refilled, timeout=30)
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
