"""One memcached server as the cache sees it: its client pools, its health, its dirty keys.

``aiomcache`` returns a connection to its pool in a ``finally`` block and only
discards it on ``Exception``; a timeout or cancellation (``CancelledError``)
therefore hands the next caller a connection whose previous reply is still
in flight. So a call cut short *retires* the server's whole client (pool):
new calls get a fresh client, and the retired one is closed once its last
in-flight call has finished (:meth:`Server.reap`).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections import deque
from collections.abc import Callable, Sequence

import aiomcache

from .keys import derive_key, pick
from .settings import MemcachedSettings, ServerAddress

#: dirty keys remembered per server before it is flushed instead
MAX_DIRTY = 10_000
#: recently used keys whose derived key and server are remembered (per cache)
KEY_MEMO_SIZE = 4096


class Failed:
    """Sentinel type: the call did not complete (server down, error or timeout)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "FAILED"


FAILED = Failed()


class FairSlots:
    """A fair (FIFO) counting gate: at most ``n`` holders, waiters served in order.

    ``asyncio.Semaphore`` with less work per call. A released slot is handed
    straight to the oldest waiter, so a caller that releases and asks again
    queues behind the others: no waiter is starved until its timeout.
    """

    __slots__ = ("free", "waiters")

    def __init__(self, n: int) -> None:
        self.free = n
        self.waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        """Take a slot, waiting in line when none is free."""
        if self.free > 0 and not self.waiters:
            self.free -= 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(fut)
        try:
            await fut
        except BaseException:
            if fut.done() and not fut.cancelled():
                self.release()  # handed a slot, then cut: pass it on
            else:
                try:
                    self.waiters.remove(fut)
                except ValueError:
                    pass
            raise

    def release(self) -> None:
        """Give the slot to the oldest waiter, or back to the pool."""
        waiters = self.waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(None)  # the slot goes to this waiter
                return
        self.free += 1


class Server:
    """One memcached server: its client, health, and keys whose invalidation may be lost."""

    def __init__(self, address: ServerAddress, settings: MemcachedSettings) -> None:
        self.address = address
        self.label = address.label
        self.id = hashlib.blake2b(self.label.encode(), digest_size=32).digest()
        self._settings = settings
        self.client: aiomcache.Client | None = None
        #: in-flight calls per client (current and retired ones)
        self.inflight: dict[aiomcache.Client, int] = {}
        self.retired: list[aiomcache.Client] = []
        #: bounds calls in flight to the pool size; waiters queue in order
        self.slots = FairSlots(settings.pool_size)
        self.failures = 0
        self.down_until = 0.0
        self.backoff = settings.retry_after
        self.probing = False
        #: derived keys whose last write/delete did not surely reach this server
        self.dirty: dict[str, None] = {}
        #: too many dirty keys: flush the server before trusting it again
        self.must_flush = False

    def __repr__(self) -> str:
        return f"<memcached server {self.label} {'down' if self.is_down else 'up'}>"

    @property
    def is_down(self) -> bool:
        """True after ``down_after`` consecutive failures (until a call succeeds)."""
        return self.failures >= self._settings.down_after

    def current_client(self) -> aiomcache.Client:
        """The client new calls use (a fresh one after the last was retired)."""
        if self.client is None:
            self.client = aiomcache.Client(
                self.address.host,
                self.address.port,
                pool_size=self._settings.pool_size,
                pool_minsize=1,
            )
        return self.client

    def mark_dirty(self, derived: Sequence[str]) -> None:
        """Remember keys whose write may or may not have landed (too many: flush later)."""
        for key in derived:
            self.dirty[key] = None
        if len(self.dirty) > MAX_DIRTY:
            self.dirty.clear()
            self.must_flush = True

    def abandon(self, writes: Sequence[str], *, running: bool) -> None:
        """A call was cut short: its writes are dirty; a started one poisons its pool."""
        self.mark_dirty(writes)
        if running:
            # its reply may still arrive on that connection: never reuse the pool
            self.retire_client()

    def retire_client(self) -> None:
        """Stop handing out the current client; it is closed when its last call ends."""
        if self.client is not None:
            self.retired.append(self.client)
            self.client = None

    async def flush_now(self, client: aiomcache.Client) -> None:
        """Flush the server through ``client`` and forget the dirty keys it covered."""
        await client.flush_all()
        self.must_flush = False
        self.dirty.clear()

    async def reap(self) -> None:
        """Close retired clients that no call is using any more."""
        idle = [client for client in self.retired if not self.inflight.get(client)]
        for client in idle:
            self.retired.remove(client)
            self.inflight.pop(client, None)
            await client.close()

    async def close(self) -> None:
        """Close every client (the current one and retired ones)."""
        self.retire_client()
        clients, self.retired = self.retired, []
        self.inflight.clear()
        for client in clients:
            await client.close()


def key_locator(
    prefix: str, servers: Sequence[Server], server_ids: Sequence[bytes]
) -> Callable[[str], tuple[str, Server]]:
    """A small LRU memo of key -> (derived key, server): hot keys skip the hashing."""

    @functools.lru_cache(maxsize=KEY_MEMO_SIZE)
    def locate(key: str) -> tuple[str, Server]:
        derived = derive_key(prefix, key)
        return derived, pick(servers, server_ids, derived)

    return locate


__all__ = ["FAILED", "MAX_DIRTY", "Failed", "FairSlots", "Server", "key_locator"]
