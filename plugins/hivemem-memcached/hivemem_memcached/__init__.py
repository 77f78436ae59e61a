"""hivemem-memcached: a shared Memcached cache tier for hivemem.

Turn it on with a cache URL next to the in-process cache::

    hivemem.open_memory("sqlite:///agent.db",
                        cache="local:// memcached://10.0.0.5:11211,10.0.0.6:11211")

The cache holds encoded frames (never plaintext when an encryptor is on),
derives fixed-length protocol-safe keys, spreads them over several servers
by rendezvous hashing and turns a down or stalled server into misses within
a bounded timeout. See ``docs/caches/memcached.md``.

Importing this module is cheap: ``aiomcache`` is imported when a cache is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hivemem.plugin import Register, hookimpl

if TYPE_CHECKING:
    from .cache import MemcachedCache

__version__ = "0.1.0"


def _memcached_cache(url: str, **options: Any) -> MemcachedCache:
    from .cache import MemcachedCache

    return MemcachedCache(url, **options)


@hookimpl
def hivemem_register_caches(register: Register) -> None:
    """memcached://host:port[,host:port...]"""
    register(
        "memcached",
        _memcached_cache,
        schemes=("memcached",),
        description=(
            "shared Memcached tier (aiomcache): frames only, hashed keys, "
            "rendezvous hashing over servers, bounded timeouts"
        ),
    )


def __getattr__(name: str) -> Any:
    if name == "MemcachedCache":
        from .cache import MemcachedCache

        return MemcachedCache
    raise AttributeError(name)


__all__ = ["MemcachedCache", "hivemem_register_caches"]
