"""Fixtures of the memcached plugin's tests.

Servers (``memcached_server``, session-scoped and shared; ``memcached_server_factory``
for private ones a test may pause or kill) come from this plugin's own pytest
plugin (``hivemem_memcached.testing``, a ``pytest11`` entry point), the
``hivemem_runner`` event loop from hivemem's conformance kit (``hivemem.testing``).

Nothing here depends on how fast or how busy the machine is: caches get a
generous timeout unless a test is about timeouts (and then says so in its
URL), back-off is driven by a :class:`StoppedClock` the test moves by hand,
and round trips are counted by a :class:`CountingProxy` on the wire.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aiomcache
import pytest
from hivemem.testing import start_server
from hivemem_memcached import MemcachedCache
from hivemem_memcached.testing import MemcachedServer

_prefixes = itertools.count()

#: the timeout of caches whose test is not about timeouts: a reply held up by a busy
#: machine must not turn into a miss (the plugin's default is 0.25 s)
GENEROUS_TIMEOUT = 10.0


@pytest.fixture
def make_cache(hivemem_runner: asyncio.Runner) -> Iterator[Callable[..., MemcachedCache]]:
    """Build MemcachedCache instances (closed at teardown).

    Unless the URL sets one, each test gets its own key prefix, so tests
    sharing the session's memcached never see each other's keys, and a
    timeout of ``GENEROUS_TIMEOUT``; tests about timeouts set theirs.
    """
    made: list[MemcachedCache] = []
    prefix = f"t{next(_prefixes)}:"

    def make(url: str, **options: Any) -> MemcachedCache:
        if "prefix=" not in url and "prefix" not in options:
            options["prefix"] = prefix
        if "timeout=" not in url and "timeout" not in options:
            options["timeout"] = GENEROUS_TIMEOUT
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
    def pause(server: MemcachedServer) -> None:
        """SIGSTOP ``server`` and return once the kernel reports it stopped.

        ``kill(SIGSTOP)`` returns before the target stops; a request sent in that
        window could still be answered and make a test pass or fail by luck.
        ``waitid`` with ``WNOWAIT`` only observes the child's stop (nothing is reaped).
        """
        server.pause()
        assert server.pid is not None
        info = os.waitid(os.P_PID, server.pid, os.WSTOPPED | os.WEXITED | os.WNOWAIT)
        if info is None or info.si_code != os.CLD_STOPPED:
            raise AssertionError(f"memcached {server.pid} exited instead of stopping")

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


class StoppedClock:
    """A clock that moves only when the test moves it (for ``MemcachedCache.clock``).

    A server marked down stays down until the test advances the clock past its
    back-off: which calls are skipped and which one probes no longer depends
    on how long the calls before took.
    """

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> StoppedClock:
    """A fresh :class:`StoppedClock`; install it with ``cache.clock = clock``."""
    return StoppedClock()


_STORAGE = {b"set", b"add", b"replace", b"append", b"prepend", b"cas"}


class CountingProxy:
    """A loopback TCP proxy in front of one memcached that counts the requests it forwards.

    The client's byte stream is parsed as memcached's text protocol (the data
    block of a storage command is skipped by its declared length), so
    ``commands[b"get"]`` is the number of ``get`` request lines -- one
    multi-key ``get k1 k2 k3`` counts once, three single ``get``s three times
    -- and ``get_keys`` the keys they asked for. Bytes are forwarded unchanged.
    """

    def __init__(self, server: MemcachedServer) -> None:
        self.target = server
        self.commands: Counter[bytes] = Counter()
        self.get_keys = 0
        self.port = 0
        self._listener: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[Any]] = set()

    @property
    def address(self) -> str:
        """``host:port`` of the proxy (what a cache's URL names)."""
        return f"127.0.0.1:{self.port}"

    @property
    def requests(self) -> int:
        """``get``/``gets`` request lines forwarded so far."""
        return self.commands[b"get"] + self.commands[b"gets"]

    async def start(self) -> CountingProxy:
        self._listener = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._listener.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        for writer in list(self._writers):
            writer.close()
        if self._handlers:  # each ends once its sockets are closed
            await asyncio.wait(list(self._handlers), timeout=10)
        if self._listener is not None:
            await self._listener.wait_closed()

    def _count(self, buf: bytearray, skip: int) -> int:
        """Count the complete command lines in ``buf`` (consumed); return data bytes to skip."""
        while True:
            if skip:
                n = min(skip, len(buf))
                del buf[:n]
                skip -= n
                if skip:
                    return skip
            end = buf.find(b"\r\n")
            if end < 0:
                return 0
            words = bytes(buf[:end]).split()
            del buf[: end + 2]
            if not words:
                continue
            self.commands[words[0]] += 1
            if words[0] in (b"get", b"gets"):
                self.get_keys += len(words) - 1
            elif words[0] in _STORAGE and len(words) >= 5:
                skip = int(words[4]) + 2  # the data block and its CRLF

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        me = asyncio.current_task()
        assert me is not None
        self._handlers.add(me)
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(
                self.target.host, self.target.port
            )
        except OSError:
            writer.close()
            self._writers.discard(writer)
            self._handlers.discard(me)
            return
        self._writers.add(up_writer)

        async def upstream() -> None:
            buf, skip = bytearray(), 0
            while data := await reader.read(65536):
                buf += data
                skip = self._count(buf, skip)
                up_writer.write(data)
                await up_writer.drain()

        async def downstream() -> None:
            while data := await up_reader.read(65536):
                writer.write(data)
                await writer.drain()

        pumps = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
        try:
            # either side closing (or failing) ends the pair
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            for w in (writer, up_writer):
                w.close()
                self._writers.discard(w)
            await asyncio.gather(*pumps, return_exceptions=True)
            self._handlers.discard(me)


@pytest.fixture
def counting_proxy(
    hivemem_runner: asyncio.Runner,
) -> Iterator[Callable[[MemcachedServer], Awaitable[CountingProxy]]]:
    """``await counting_proxy(server)``: a started :class:`CountingProxy`, closed after the test."""
    made: list[CountingProxy] = []

    async def make(server: MemcachedServer) -> CountingProxy:
        proxy = await CountingProxy(server).start()
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        hivemem_runner.run(proxy.close())
