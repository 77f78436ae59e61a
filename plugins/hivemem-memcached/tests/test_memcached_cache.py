"""MemcachedCache against a real memcached: keys, sizes, TTLs, leases, batches."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

from hivemem import make_plugins
from hivemem.testing.helpers import TRICKY_STRINGS, eventually
from hivemem.testing.servers import free_port
from hivemem_memcached import MemcachedCache
from hivemem_memcached.testing import MemcachedServer

EVIL_IDS = [
    "a b",
    "a\r\nb",
    "\r\nflush_all\r\n",
    "x\r\nflush_all\r\nget y",
    "k\r\nset other 0 0 1\r\nX",
    "\x00\x01\x7f",
    "tab\there",
    "ünïcødé 🧠 キー",
    "\ud800 lone surrogate",
    "",
    " ",
    "k" * 1000,
    "é" * 1000,
    "get",
    "END",
]


async def test_evil_ids_round_trip_and_disturb_nothing(
    mc: Any,
    memcached_server_factory: Callable[..., MemcachedServer],
    make_cache: Callable[..., MemcachedCache],
) -> None:
    memcached_server = memcached_server_factory()  # private: we count its items
    cache = make_cache(memcached_server.url)
    await cache.open()
    normal = {f"normal-{i}": f"value-{i}".encode() for i in range(50)}
    await cache.set_many(normal)
    for i, key in enumerate(EVIL_IDS):
        await cache.set(key, b"evil-%d" % i)
    tricky = {k: b"tricky-%d" % i for i, k in enumerate(TRICKY_STRINGS) if k not in EVIL_IDS}
    await cache.set_many(tricky)
    assert await cache.get_many(list(tricky)) == tricky
    for i, key in enumerate(EVIL_IDS):
        assert await cache.get(key) == b"evil-%d" % i, key
    assert await cache.get_many(list(normal)) == normal
    assert await cache.get_many(EVIL_IDS) == {k: b"evil-%d" % i for i, k in enumerate(EVIL_IDS)}
    stats = await mc.raw_stats(mc.address(memcached_server))
    # nothing was flushed, no stray key was written, every item is ours
    assert stats["cmd_flush"] == "0"
    assert int(stats["curr_items"]) == len(normal) + len(EVIL_IDS) + len(tricky)
    assert await mc.raw_get(cache, "other") is None
    for key in EVIL_IDS:
        await cache.delete(key)
        assert await cache.get(key) is None
    assert await cache.get_many(list(normal)) == normal
    assert cache.stats()["errors"] == 0


async def test_prefix_isolates_clients(
    memcached_server: MemcachedServer, make_cache: Callable[..., MemcachedCache]
) -> None:
    a = make_cache(memcached_server.url + "?prefix=app-a:")
    b = make_cache(memcached_server.url + "?prefix=app-b:")
    await a.set("k", b"from a")
    assert await b.get("k") is None
    assert await a.get("k") == b"from a"
    assert a.derived_key("k").startswith(b"app-a:")


async def test_stores_bytes_exactly_with_ttl(
    mc: Any,
    memcached_server: MemcachedServer, make_cache: Callable[..., MemcachedCache]
) -> None:
    cache = make_cache(memcached_server.url)
    frame = b"HM\x01" + bytes(range(256)) + b"\r\nEND\r\n"
    await cache.set("frame", frame)
    assert await mc.raw_get(cache, "frame") == frame
    # a TTL reaches memcached as the item's expiry (a long one: still there to look at)
    await cache.set("timed", frame, ttl=600)
    assert await cache.get("timed") == frame
    expiry = _expiry_of(memcached_server, cache.derived_key("timed"))
    assert expiry is not None and abs(expiry - (time.time() + 600)) < 60
    assert _expiry_of(memcached_server, cache.derived_key("frame")) == -1  # no TTL: none
    # a short TTL expires. memcached's clock ticks once a second, so a 1 s item may
    # already be gone by the first read: only the server's STORED reply is checked
    sets = cache.stats()["sets"]
    await cache.set("short", b"v", ttl=1)
    assert cache.stats()["sets"] == sets + 1

    async def expired() -> bool:
        return await cache.get("short") is None

    await eventually(expired, timeout=30, interval=0.1)
    await cache.set("gone", b"v")
    await cache.set("gone", b"w", ttl=-1)  # already expired: forget it
    assert await cache.get("gone") is None
    assert await cache.get("frame") == frame


def _expiry_of(server: MemcachedServer, derived: bytes) -> int | None:
    """The Unix time memcached will expire ``derived`` at (-1: never; None: no such item)."""
    for line in server.command("lru_crawler metadump all"):
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if unquote(fields.get("key", "")) == derived.decode():
            return int(fields["exp"])
    return None


async def test_oversized_values_are_not_cached_and_old_value_is_dropped(
    memcached_server: MemcachedServer, make_cache: Callable[..., MemcachedCache]
) -> None:
    cache = make_cache(memcached_server.url)
    await cache.set("k", b"small")
    await cache.set("k", b"x" * (2 * 1024 * 1024))
    assert await cache.get("k") is None  # not the stale small value either
    assert cache.stats()["too_large"] == 1
    limit = cache.max_value_size
    assert limit is not None and limit < 1024 * 1024
    await cache.set("edge", b"y" * limit)
    assert await cache.get("edge") == b"y" * limit
    assert cache.stats()["too_large"] == 1


async def test_configured_limit_and_server_refusal(
    memcached_server: MemcachedServer, make_cache: Callable[..., MemcachedCache]
) -> None:
    small = make_cache(memcached_server.url + "?max_value_size=1000")
    await small.set("a", b"x" * 1000)
    await small.set("b", b"x" * 1001)
    assert await small.get("a") == b"x" * 1000
    assert await small.get("b") is None
    # a limit above the server's item size: memcached refuses, the key is not served stale
    loose = make_cache(memcached_server.url + "?max_value_size=4000000")
    await loose.set("c", b"old")
    await loose.set("c", b"z" * (1024 * 1024 + 10))
    assert await loose.get("c") is None
    stats = loose.stats()
    assert stats["too_large"] == 1 and stats["servers_down"] == 0
    await loose.set("c", b"new")
    assert await loose.get("c") == b"new"


async def test_batches_span_servers_in_few_round_trips(
    mc: Any,
    memcached_server_factory: Callable[..., MemcachedServer],
    make_cache: Callable[..., MemcachedCache],
    counting_proxy: Callable[[MemcachedServer], Awaitable[Any]],
) -> None:
    one, two = memcached_server_factory(), memcached_server_factory()
    # the cache talks to each server through a proxy that counts the request lines
    proxies = [await counting_proxy(one), await counting_proxy(two)]
    behind = {p.address: p.target for p in proxies}
    cache = make_cache(f"memcached://{proxies[0].address},{proxies[1].address}")
    items = {f"key-{i}": f"value-{i}".encode() for i in range(1000)}
    await cache.set_many(items)
    owners = {cache.server_for(k) for k in items}
    assert owners == set(behind)
    # each key lives on the server rendezvous hashing names, and only there
    for key in list(items)[:50]:
        derived = cache.derived_key(key).decode()
        for address, server in behind.items():
            held = await mc.raw_get_derived(server, derived)
            assert held == (items[key] if address == cache.server_for(key) else None), key
    requests = [p.requests for p in proxies]
    keys = [p.get_keys for p in proxies]
    served = [int((await mc.raw_stats(mc.address(s)))["cmd_get"]) for s in (one, two)]
    got = await cache.get_many([*items, "absent"])
    assert got == items
    sent = [p.requests - r for p, r in zip(proxies, requests, strict=True)]
    asked = [p.get_keys - k for p, k in zip(proxies, keys, strict=True)]
    now = [int((await mc.raw_stats(mc.address(s)))["cmd_get"]) for s in (one, two)]
    # every key was asked for exactly once, on its own server (memcached counts the same)
    assert sum(asked) == 1001
    assert [b - a for a, b in zip(served, now, strict=True)] == asked
    # ... in a handful of multi-key requests per server: one request per key would be 1001
    assert all(n >= 1 for n in sent) and sum(sent) <= 20, sent
    await cache.delete_many(list(items)[:500])
    left = await cache.get_many(list(items))
    assert left == dict(list(items.items())[500:])
    stats = cache.stats()
    assert stats["hits"] == 1000 + 500 and stats["errors"] == 0
    print(f"\nget_many of 1001 keys over 2 servers: {sent} request lines, {asked} keys")


async def test_lease_has_exactly_one_winner_across_clients(
    memcached_server: MemcachedServer, make_cache: Callable[..., MemcachedCache]
) -> None:
    # three clients with their own pools stand in for three processes
    clients = [make_cache(memcached_server.url) for _ in range(3)]
    results = await asyncio.gather(*(clients[i % 3].lease("hot", 5) for i in range(150)))
    assert results.count(True) == 1
    assert await clients[0].get("hot") is None  # a lease never looks like a value
    await clients[1].release("hot")
    assert await clients[2].lease("hot", 5) is True
    assert await clients[0].lease("hot", 5) is False
    # an expired lease can be taken again
    assert await clients[0].lease("brief", 0.5) is True

    async def free_again() -> bool:
        return await clients[1].lease("brief", 5)

    await eventually(free_again, timeout=30, interval=0.1)
    assert sum(c.stats()["leases_won"] for c in clients) >= 3


async def test_lease_fails_open_when_the_server_is_gone(
    memcached_server_factory: Callable[..., MemcachedServer],
    make_cache: Callable[..., MemcachedCache],
) -> None:
    memcached_server = memcached_server_factory()
    cache = make_cache(memcached_server.url)
    memcached_server.kill()
    assert await cache.lease("k", 2) is True  # no one could wait on a dead server
    assert await cache.get("k") is None
    assert cache.stats()["errors"] >= 1


async def test_clear_flushes_every_server(
    mc: Any,
    memcached_server_factory: Callable[..., MemcachedServer],
    make_cache: Callable[..., MemcachedCache],
) -> None:
    one, two = memcached_server_factory(), memcached_server_factory()
    cache = make_cache(f"memcached://{mc.address(one)},{mc.address(two)}")
    await cache.set_many({f"k{i}": b"v" for i in range(100)})
    await cache.clear()
    assert await cache.get_many([f"k{i}" for i in range(100)]) == {}


async def test_open_against_nothing_is_not_an_error(
    clock: Any, make_cache: Callable[..., MemcachedCache],
) -> None:
    cache = make_cache(f"memcached://127.0.0.1:{free_port()}?timeout=0.2")
    cache.clock = clock  # the back-off does not run out while the test runs
    await cache.open()
    assert cache.stats()["servers_down"] == 1  # marked down at once, no waiting on it
    errors = cache.stats()["errors"]
    assert errors == 1  # open tried the server once
    assert await cache.get("k") is None
    await cache.set("k", b"v")
    assert await cache.get_many(["k", "j"]) == {}
    stats = cache.stats()
    # while it is down, no call goes to the server: none fails, each is skipped
    assert stats["errors"] == errors and stats["skipped"] >= 3
    # past the back-off one call probes it (and fails: nothing listens there)
    clock.advance(60)
    assert await cache.get("k") is None
    assert cache.stats()["errors"] == errors + 1


async def test_server_stats_report_evictions_field(
    mc: Any,
    memcached_server: MemcachedServer, make_cache: Callable[..., MemcachedCache]
) -> None:
    cache = make_cache(memcached_server.url)
    stats = await cache.server_stats()
    label = mc.address(memcached_server)
    assert stats[label] is not None and stats[label]["pid"] == str(memcached_server.pid)
    assert cache.stats()["evictions"] == 0


def test_registered_through_the_entry_point() -> None:
    plugins = make_plugins()
    entry = plugins.registry("cache").for_scheme("memcached")
    assert entry.name == "memcached"
    assert entry.distribution == "hivemem-memcached"
    cache = entry.factory("memcached://127.0.0.1:1?timeout=0.1")
    assert isinstance(cache, MemcachedCache)
    assert cache.in_process is False
    assert cache.settings.timeout == 0.1


def test_listed_by_hivemem_plugins() -> None:
    import json

    from click.testing import CliRunner
    from hivemem.cli import cli

    result = CliRunner().invoke(cli, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    row = rows["memcached"]
    assert row["distribution"] == "hivemem-memcached"
    assert [c["schemes"] for c in row["provides"]["cache"]] == [["memcached"]]
