"""Fixtures of the memcached plugin's tests.

Servers (``memcached_server``, session-scoped and shared; ``memcached_server_factory``
for private ones a test may pause or kill) and the ``hivemem_runner`` event
loop come from hivemem's conformance kit (``hivemem.testing``).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import aiomcache
import pytest
from hivemem.testing.plugin import start_server
from hivemem.testing.servers import MemcachedServer
from hivemem_memcached import MemcachedCache

_prefixes = itertools.count()


@pytest.fixture
def make_cache(hivemem_runner: asyncio.Runner) -> Iterator[Callable[..., MemcachedCache]]:
    """Build MemcachedCache instances (closed at teardown).

    Unless the URL sets one, each test gets its own key prefix, so tests
    sharing the session's memcached never see each other's keys.
    """
    made: list[MemcachedCache] = []
    prefix = f"t{next(_prefixes)}:"

    def make(url: str, **options: Any) -> MemcachedCache:
        if "prefix=" not in url and "prefix" not in options:
            options["prefix"] = prefix
        cache = MemcachedCache(url, **options)
        made.append(cache)
        return cache

    yield make
    for cache in made:
        hivemem_runner.run(cache.close())


@pytest.fixture(scope="module")
def memcached_pair() -> Iterator[tuple[MemcachedServer, MemcachedServer]]:
    """Two private memcached servers shared by one test module."""
    servers: list[MemcachedServer] = []
    try:
        for _ in range(2):
            servers.append(start_server(MemcachedServer()))
        yield servers[0], servers[1]
    finally:
        for server in servers:
            server.kill()  # a crash is fine for a cache, and much faster than SIGTERM
            server.cleanup()


class MemcachedTools:
    """Inspection helpers for the tests, handed out by the ``mc`` fixture."""

    @staticmethod
    def address(server: MemcachedServer) -> str:
        """``host:port`` of a test server, as the cache labels it."""
        return f"{server.host}:{server.port}"

    @staticmethod
    def pause(server: MemcachedServer, timeout: float = 5.0) -> None:
        """SIGSTOP ``server`` and wait (bounded poll) until the kernel reports it stopped.

        ``kill(SIGSTOP)`` returns before the target stops; a request sent in that
        window could still be answered and make a test pass or fail by luck.
        """
        server.pause()
        deadline = time.monotonic() + timeout
        while True:
            with open(f"/proc/{server.pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            if state in ("T", "t"):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"memcached {server.pid} did not stop (state {state})")
            time.sleep(0.001)

    @staticmethod
    async def raw_get(cache: MemcachedCache, key: str) -> bytes | None:
        """The bytes memcached holds for ``key``, read with a plain client (bypassing the cache)."""
        host, port = cache.server_for(key).rsplit(":", 1)
        client = aiomcache.Client(host, int(port), pool_size=1)
        try:
            return await client.get(cache.derived_key(key))
        finally:
            await client.close()

    @staticmethod
    async def raw_stats(label: str) -> dict[str, str]:
        """The ``stats`` of the server at ``host:port``, as text."""
        host, port = label.rsplit(":", 1)
        client = aiomcache.Client(host, int(port), pool_size=1)
        try:
            stats = await client.stats()
        finally:
            await client.close()
        return {k.decode(): (v or b"").decode() for k, v in stats.items()}

    @staticmethod
    def dump_keys(server: MemcachedServer, prefix: str) -> list[str]:
        """Every key on ``server`` starting with ``prefix`` (``lru_crawler metadump all``)."""
        from urllib.parse import unquote

        lines = server.command("lru_crawler metadump all")
        keys = [unquote(line.split()[0][4:]) for line in lines if line.startswith("key=")]
        return [k for k in keys if k.startswith(prefix)]

    @staticmethod
    async def raw_get_derived(server: MemcachedServer, derived: str) -> bytes | None:
        """The bytes memcached holds under an already derived key."""
        client = aiomcache.Client(server.host, server.port, pool_size=1)
        try:
            return await client.get(derived.encode("ascii"))
        finally:
            await client.close()


@pytest.fixture(scope="session")
def mc() -> type[MemcachedTools]:
    """Helpers that look at memcached directly (raw reads, stats, key dumps, SIGSTOP)."""
    return MemcachedTools
