"""hivemem's cache conformance suite against one and against two memcached servers."""

from __future__ import annotations

from typing import Any

import pytest
from hivemem.testing import NOT_FOR_REMOTE_CACHES, CacheSuite
from hivemem.testing.servers import MemcachedServer
from hivemem_memcached import MemcachedCache


class TestOneServer(CacheSuite):
    """The session's shared memcached."""

    not_applicable = NOT_FOR_REMOTE_CACHES

    @pytest.fixture
    def cache_url(self, memcached_server: MemcachedServer) -> str:
        return memcached_server.url


class TestTwoServers(CacheSuite):
    """Keys spread over two servers by rendezvous hashing."""

    not_applicable = NOT_FOR_REMOTE_CACHES

    @pytest.fixture
    def cache_url(self, mc: Any, memcached_pair: tuple[MemcachedServer, MemcachedServer]) -> str:
        one, two = memcached_pair
        return f"memcached://{mc.address(one)},{mc.address(two)}"

    async def test_both_servers_hold_keys(self, cache: MemcachedCache) -> None:
        items = {f"spread-{i}": b"v" for i in range(64)}
        await cache.set_many(items)
        assert {cache.server_for(k) for k in items} == set(cache.servers)
        assert await cache.get_many(list(items)) == items
