"""The contract every cache plugin implements.

A cache maps string keys to byte values with an optional TTL. It is a hint,
never the source of truth: ``get`` may always miss, and a cache that cannot
reach its server reports misses (and counts them) rather than raising.

The :class:`~hivemem.memory.Memory` builds the keys (unambiguous strings
derived from namespace, kind and id; arbitrary Unicode, any length) and
decides what the bytes are:

* for an ``in_process`` cache, a private snapshot of the decoded value that
  never leaves the process;
* for any other cache, the encoded frame exactly as stored in the backend,
  so with encryption on no plaintext leaves the process.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar


class Cache(abc.ABC):
    """Abstract cache. Construction does no I/O; :meth:`open` connects."""

    name: ClassVar[str] = "cache"
    #: True when values never leave this process (the Memory then stores
    #: decoded snapshots instead of frames)
    in_process: ClassVar[bool] = False
    #: largest value accepted, None for no limit; larger values are not cached
    max_value_size: ClassVar[int | None] = None

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Connect. Default: nothing to do."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release resources. Safe to call twice."""

    @abc.abstractmethod
    async def get(self, key: str) -> bytes | None:
        """The cached bytes or None (miss, expired, or server unavailable)."""

    async def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        """Cached values for ``keys`` (misses absent). Override for one round trip."""
        out: dict[str, bytes] = {}
        for key in keys:
            value = await self.get(key)
            if value is not None:
                out[key] = value
        return out

    @abc.abstractmethod
    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store ``value``; ``ttl`` in seconds (None: until evicted)."""

    async def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        """Store several values. Override for one round trip."""
        for key, value in items.items():
            await self.set(key, value, ttl)

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Forget ``key`` (no error when absent)."""

    async def delete_many(self, keys: Sequence[str]) -> None:
        """Forget several keys. Override for one round trip."""
        for key in keys:
            await self.delete(key)

    @abc.abstractmethod
    async def clear(self) -> None:
        """Forget everything this cache holds for this client."""

    # -- optional: cross-process stampede protection (remote caches) ------------------
    #: True when :meth:`lease` really arbitrates between processes
    supports_lease: ClassVar[bool] = False

    async def lease(self, key: str, ttl: float) -> bool:
        """Try to win a short lease (``ttl`` seconds) to refill ``key`` from the backend.

        True: this client refills (and calls :meth:`release` after); False:
        another process holds it, so wait briefly for its value instead of
        reading the backend too (Memcached ``add``). Default: always True
        (no arbitration); a cache that implements it sets ``supports_lease``.
        """
        return True

    async def release(self, key: str) -> None:  # noqa: B027 - optional hook
        """Give up a lease won with :meth:`lease`. Default: nothing to do."""

    @abc.abstractmethod
    def stats(self) -> dict[str, Any]:
        """Counters: at least ``hits``, ``misses``, ``sets``, ``evictions``, ``errors``."""


class InProcessCache(Cache):
    """A cache whose values never leave the process: it holds decoded snapshots.

    The :class:`~hivemem.memory.Memory` reads and writes it synchronously on
    the hot path (``get_now``/``set_now``/``delete_now``/``clear_now``), so
    these must never block; the async methods of :class:`Cache` default to
    them.
    """

    in_process: ClassVar[bool] = True

    @abc.abstractmethod
    def get_now(self, key: str) -> bytes | None:
        """The cached bytes or None, without blocking."""

    @abc.abstractmethod
    def set_now(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store ``value`` without blocking (``ttl`` seconds; None: the cache's default)."""

    @abc.abstractmethod
    def delete_now(self, key: str) -> None:
        """Forget ``key`` without blocking."""

    @abc.abstractmethod
    def clear_now(self) -> None:
        """Forget everything without blocking."""

    async def get(self, key: str) -> bytes | None:
        """See :meth:`Cache.get` (:meth:`get_now`)."""
        return self.get_now(key)

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """See :meth:`Cache.set` (:meth:`set_now`)."""
        self.set_now(key, value, ttl)

    async def delete(self, key: str) -> None:
        """See :meth:`Cache.delete` (:meth:`delete_now`)."""
        self.delete_now(key)

    async def clear(self) -> None:
        """See :meth:`Cache.clear` (:meth:`clear_now`)."""
        self.clear_now()


__all__ = ["Cache", "InProcessCache"]
