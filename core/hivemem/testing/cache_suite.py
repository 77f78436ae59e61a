"""The cache conformance suite: the rules of :mod:`hivemem.cache`, as tests.

::

    from hivemem.testing import CacheSuite

    class TestMemcachedCache(CacheSuite):
        @pytest.fixture
        def cache_url(self, memcached_server):
            return memcached_server.url

The cache is opened through the plugin registry by URL scheme. Caches that
are ``in_process`` are also checked for LRU order and their entry and byte
budgets, through ``bounded_cache_factory`` (by default: the cache factory
called with ``max_entries=`` and ``max_bytes=`` keyword options).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, ClassVar
from urllib.parse import urlsplit

import pytest

from hivemem.cache import Cache

from .helpers import TRICKY_STRINGS, eventually, missing_fixture

__all__ = ["NOT_FOR_REMOTE_CACHES", "CacheSuite", "open_cache"]

_STAT_KEYS = ("hits", "misses", "sets", "evictions", "errors")


def open_cache(url: str, plugins: Any, **options: Any) -> Cache:
    """Build (not open) a cache for ``url`` through ``plugins``' cache registry."""
    scheme = urlsplit(url).scheme
    cache = plugins.registry("cache").for_scheme(scheme).factory(url, **options)
    if not isinstance(cache, Cache):
        raise TypeError(f"cache factory for {scheme}:// returned {type(cache).__name__}")
    return cache


def _keys() -> list[str]:
    long_a = "k" * 999 + "a"
    long_b = "k" * 999 + "b"
    keys = [*TRICKY_STRINGS, long_a, long_b, "k" * 1000, "with space", "two  spaces", "tab\tkey"]
    keys += ["line\r\nbreak", "get foo", "delete k", "\r\nEND\r\n", "é" * 300]
    return list(dict.fromkeys(keys))


#: ``not_applicable`` entries for a cache outside the process (budgets are the server's)
NOT_FOR_REMOTE_CACHES: dict[str, str] = {
    name: "cache is not in_process (budgets are the server's business)"
    for name in ("test_lru_eviction_order", "test_entry_budget", "test_byte_budget")
}


@pytest.mark.usefixtures("hivemem_runner")
class CacheSuite:
    """Conformance tests for a :class:`~hivemem.cache.Cache`; subclass and set ``cache_url``."""

    #: short TTL (seconds) used by expiry tests; remote caches may round it up
    short_ttl: ClassVar[float] = 0.2
    #: how long an expiry may take to become visible
    expiry_timeout: ClassVar[float] = 10.0

    # -- fixtures the author provides / may override ---------------------------------
    @pytest.fixture
    def cache_url(self) -> str:
        """The URL of the cache under test. Subclasses must provide it."""
        missing_fixture(type(self), "cache_url")

    @pytest.fixture
    def cache_options(self) -> dict[str, Any]:
        """Extra keyword arguments for the cache factory (default none)."""
        return {}

    @pytest.fixture
    def cache_factory(
        self, cache_url: str, cache_options: dict[str, Any], hivemem_plugins: Any
    ) -> Callable[..., Cache]:
        """``make(**extra_options)`` returns a fresh, unopened cache."""

        def make(**extra: Any) -> Cache:
            return open_cache(cache_url, hivemem_plugins, **{**cache_options, **extra})

        return make

    @pytest.fixture
    def bounded_cache_factory(
        self, cache_factory: Callable[..., Cache]
    ) -> Callable[[int, int], Cache]:
        """``make(max_entries, max_bytes)`` for in-process budget tests."""
        return lambda entries, size: cache_factory(max_entries=entries, max_bytes=size)

    @pytest.fixture
    def cache(
        self, cache_factory: Callable[..., Cache], hivemem_runner: asyncio.Runner
    ) -> Iterator[Cache]:
        """The opened cache, cleared before and after."""
        c = cache_factory()
        try:
            hivemem_runner.run(c.open())
            hivemem_runner.run(c.clear())
            yield c
            hivemem_runner.run(c.clear())
        finally:
            hivemem_runner.run(c.close())

    @pytest.fixture
    def bounded(
        self,
        cache: Cache,
        bounded_cache_factory: Callable[[int, int], Cache],
        hivemem_runner: asyncio.Runner,
    ) -> Iterator[Callable[[int, int], Awaitable[Cache]]]:
        """``await make(max_entries, max_bytes)``: an opened bounded cache (in-process only)."""
        if not type(cache).in_process:
            pytest.skip("cache is not in_process (budgets are the server's business)")
        made: list[Cache] = []

        async def make(entries: int, size: int) -> Cache:
            c = bounded_cache_factory(entries, size)
            await c.open()
            made.append(c)
            return c

        yield make
        for c in made:
            hivemem_runner.run(c.close())

    # -- basics -------------------------------------------------------------------------
    async def test_get_missing(self, cache: Cache) -> None:
        """A key never set misses."""
        assert await cache.get("hmkit:missing") is None

    async def test_set_get_overwrite(self, cache: Cache) -> None:
        """set stores; a second set replaces."""
        await cache.set("hmkit:a", b"1")
        assert await cache.get("hmkit:a") == b"1"
        await cache.set("hmkit:a", b"22")
        assert await cache.get("hmkit:a") == b"22"

    async def test_delete(self, cache: Cache) -> None:
        """delete forgets one key; deleting a missing key is fine."""
        await cache.set("hmkit:a", b"1")
        await cache.set("hmkit:b", b"2")
        await cache.delete("hmkit:a")
        assert await cache.get("hmkit:a") is None
        assert await cache.get("hmkit:b") == b"2"
        await cache.delete("hmkit:a")
        await cache.delete("hmkit:never")

    async def test_clear(self, cache: Cache) -> None:
        """clear forgets everything; the cache stays usable."""
        await cache.set_many({f"hmkit:{i}": b"x" for i in range(10)})
        await cache.clear()
        assert await cache.get_many([f"hmkit:{i}" for i in range(10)]) == {}
        await cache.set("hmkit:after", b"y")
        assert await cache.get("hmkit:after") == b"y"

    async def test_many(self, cache: Cache) -> None:
        """get_many/set_many/delete_many agree with the single-key calls."""
        items = {f"hmkit:m{i}": b"v%d" % i for i in range(20)}
        await cache.set_many(items)
        got = await cache.get_many([*items, "hmkit:missing"])
        assert got == items
        await cache.delete_many(["hmkit:m0", "hmkit:m1", "hmkit:missing"])
        got = await cache.get_many(list(items))
        assert got == {k: v for k, v in items.items() if k not in ("hmkit:m0", "hmkit:m1")}
        assert await cache.get_many([]) == {}
        await cache.set_many({})
        await cache.delete_many([])

    # -- keys and values ----------------------------------------------------------------
    async def test_arbitrary_keys_never_disturb_each_other(self, cache: Cache) -> None:
        """Long, spaced, multi-line and Unicode keys never collide."""
        keys = _keys()
        values = {k: b"%d" % n for n, k in enumerate(keys)}
        for key, value in values.items():
            await cache.set(key, value)
        for key, value in values.items():
            assert await cache.get(key) == value, repr(key[:30])
        assert await cache.get_many(keys) == values
        await cache.delete("k" * 999 + "a")
        assert await cache.get("k" * 999 + "a") is None
        assert await cache.get("k" * 999 + "b") == values["k" * 999 + "b"]
        assert await cache.get("k" * 1000) == values["k" * 1000]
        await cache.delete_many(["a", "a:"])
        assert await cache.get("a:b") == values["a:b"]
        assert await cache.get("ab") == values["ab"]

    async def test_binary_values(self, cache: Cache) -> None:
        """Every byte value and protocol look-alikes round-trip."""
        rng = random.Random(7)
        limit = type(cache).max_value_size
        big = 100 * 1024 if limit is None else min(100 * 1024, limit // 2)
        values = {
            "hmkit:empty": b"",
            "hmkit:all": bytes(range(256)) * 4,
            "hmkit:proto": b"\r\nEND\r\nSTORED\r\n",
            "hmkit:nul": b"\x00" * 17,
            "hmkit:big": rng.randbytes(big),
        }
        await cache.set_many(values)
        for key, value in values.items():
            assert await cache.get(key) == value, key

    async def test_too_large_values_are_not_cached(self, cache: Cache) -> None:
        """A value over max_value_size is silently not cached."""
        limit = type(cache).max_value_size
        if limit is None:
            pytest.skip("cache declares no max_value_size")
        await cache.set("hmkit:small", b"s")
        await cache.set("hmkit:huge", b"x" * (limit + 1))
        assert await cache.get("hmkit:huge") is None
        assert await cache.get("hmkit:small") == b"s"

    # -- TTL ----------------------------------------------------------------------------
    async def test_ttl_expiry(self, cache: Cache) -> None:
        """TTL entries expire; entries without TTL stay."""
        await cache.set("hmkit:keep", b"k")
        await cache.set("hmkit:ttl", b"t", ttl=self.short_ttl)
        await cache.set_many({"hmkit:ttl-many": b"t"}, ttl=self.short_ttl)
        assert await cache.get("hmkit:ttl") == b"t"

        async def gone() -> bool:
            got = await cache.get_many(["hmkit:ttl", "hmkit:ttl-many"])
            return got == {}

        await eventually(gone, timeout=self.expiry_timeout, what="cache ttl expiry")
        assert await cache.get("hmkit:keep") == b"k"

    async def test_set_without_ttl_clears_ttl(self, cache: Cache) -> None:
        """A set without ttl replaces an earlier TTL."""
        await cache.set("hmkit:control", b"c", ttl=self.short_ttl)
        await cache.set("hmkit:x", b"1", ttl=self.short_ttl)
        await cache.set("hmkit:x", b"2")

        async def control_gone() -> bool:
            return await cache.get("hmkit:control") is None

        await eventually(control_gone, timeout=self.expiry_timeout, what="control expiry")
        assert await cache.get("hmkit:x") == b"2"

    # -- stats --------------------------------------------------------------------------
    async def test_stats(self, cache: Cache) -> None:
        """stats() has the required counters and they move."""
        before = cache.stats()
        for key in _STAT_KEYS:
            assert key in before, f"stats() lacks {key!r}"
            assert isinstance(before[key], int) and before[key] >= 0, key
        await cache.set("hmkit:s", b"1")
        assert await cache.get("hmkit:s") == b"1"
        assert await cache.get("hmkit:s-missing") is None
        after = cache.stats()
        assert after["sets"] >= before["sets"] + 1
        assert after["hits"] >= before["hits"] + 1
        assert after["misses"] >= before["misses"] + 1

    # -- in-process budgets -------------------------------------------------------------
    async def test_lru_eviction_order(
        self, bounded: Callable[[int, int], Awaitable[Cache]]
    ) -> None:
        """The least recently used entry goes first."""
        c = await bounded(3, 1 << 20)
        for key in ("a", "b", "c"):
            await c.set(key, key.encode())
        assert await c.get("a") == b"a"  # a is now the most recently used
        await c.set("d", b"d")
        assert await c.get("b") is None
        assert await c.get_many(["a", "c", "d"]) == {"a": b"a", "c": b"c", "d": b"d"}
        assert c.stats()["evictions"] == 1

    async def test_entry_budget(self, bounded: Callable[[int, int], Awaitable[Cache]]) -> None:
        """max_entries is never exceeded; the newest entries stay."""
        c = await bounded(10, 1 << 20)
        keys = [f"e{i}" for i in range(50)]
        for key in keys:
            await c.set(key, b"v")
        got = await c.get_many(keys)
        assert len(got) == 10
        assert sorted(got) == sorted(keys[-10:])
        assert c.stats()["evictions"] == 40

    async def test_byte_budget(self, bounded: Callable[[int, int], Awaitable[Cache]]) -> None:
        """max_bytes is never exceeded; an oversized value is not stored."""
        budget = 4096
        c = await bounded(1000, budget)
        keys = [f"b{i}" for i in range(20)]
        for key in keys:
            await c.set(key, b"x" * 1000)
        got = await c.get_many(keys)
        assert 1 <= len(got) <= 4
        assert sum(len(k) + len(v) for k, v in got.items()) <= budget
        assert keys[-1] in got
        await c.set("huge", b"y" * (budget + 1))
        assert await c.get("huge") is None
        assert await c.get(keys[-1]) == b"x" * 1000
