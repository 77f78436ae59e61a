"""hivemem's cache conformance suite against one and against two memcached servers."""

from __future__ import annotations

from typing import Any

import pytest
from hivemem.testing import NOT_FOR_REMOTE_CACHES, CacheSuite
from hivemem_memcached import MemcachedCache
from hivemem_memcached.testing import MemcachedServer

#: the suite is not about timeouts: a reply held up by a busy machine must not become a
#: miss (the plugin's default timeout is 0.25 s)
NOT_ABOUT_TIMEOUTS = "timeout=10"
#: memcached's clock ticks once a second and an item with exptime ``n`` lives for
#: (n - 1, n] seconds: a sub-second TTL (exptime 1) may be gone before the suite reads
#: it back, a 2 s one lives at least 1 s
MEMCACHED_SHORT_TTL = 2.0


class TestOneServer(CacheSuite):
    """The session's shared memcached."""

    not_applicable = NOT_FOR_REMOTE_CACHES
    short_ttl = MEMCACHED_SHORT_TTL

    @pytest.fixture
    def cache_url(self, memcached_server: MemcachedServer) -> str:
        return f"{memcached_server.url}?{NOT_ABOUT_TIMEOUTS}"


class TestTwoServers(CacheSuite):
    """Keys spread over two servers by rendezvous hashing."""

    not_applicable = NOT_FOR_REMOTE_CACHES
    short_ttl = MEMCACHED_SHORT_TTL

    @pytest.fixture
    def cache_url(self, mc: Any, memcached_pair: tuple[MemcachedServer, MemcachedServer]) -> str:
        one, two = memcached_pair
        return f"memcached://{mc.address(one)},{mc.address(two)}?{NOT_ABOUT_TIMEOUTS}"

    async def test_both_servers_hold_keys(self, cache: MemcachedCache) -> None:
        items = {f"spread-{i}": b"v" for i in range(64)}
        await cache.set_many(items)
        assert {cache.server_for(k) for k in items} == set(cache.servers)
        assert await cache.get_many(list(items)) == items
