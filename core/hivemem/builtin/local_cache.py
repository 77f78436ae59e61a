"""``local://`` -- in-process LRU cache with TTL, an entry budget and a byte budget.

URL options: ``local://?max_entries=10000&max_bytes=67108864&ttl=300``
(``ttl`` is the default TTL in seconds for entries set without one; 0 means
none); a bad value reads ``local cache option NAME=VALUE: ...``. The cache
holds bytes; the :class:`~hivemem.memory.Memory` stores a private snapshot of
each decoded value and builds a fresh object on every hit, so no caller can
mutate what the cache holds.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from ..cache import InProcessCache
from ..errors import ConfigError
from ..options import Option, parse_options

#: the URL query options (keyword options override them)
OPTIONS = (
    Option("max_entries", "int", 10_000, minimum=0, doc="most entries held; 0 caches nothing"),
    Option("max_bytes", "int", 64 * 1024 * 1024, minimum=0, doc="most bytes of keys and values"),
    Option("ttl", "seconds", 0.0, minimum=0, nullable=True, doc="default TTL; 0 or empty: none"),
)


class LocalCache(InProcessCache):
    """LRU + TTL, bounded by entries and bytes; all operations O(1)."""

    name: ClassVar[str] = "local"
    in_process: ClassVar[bool] = True

    def __init__(self, url: str = "local://", **options: Any) -> None:
        parts = urlsplit(url)
        if parts.scheme != "local":
            raise ConfigError(f"local cache needs a local:// URL, got {parts.scheme!r}")
        values, unknown = parse_options(
            "local cache", OPTIONS, dict(parse_qsl(parts.query)), options
        )
        if unknown:
            raise ConfigError(f"unknown local cache option(s): {', '.join(sorted(unknown))}")
        self.max_entries: int = values["max_entries"]
        self.max_bytes: int = values["max_bytes"]
        #: TTL in seconds of entries set without one (None: until evicted)
        self.default_ttl: float | None = values["ttl"] or None
        self._data: OrderedDict[str, tuple[bytes, float | None]] = OrderedDict()
        self._bytes = 0
        self.hits = self.misses = self.sets = self.evictions = self.expirations = 0

    def __repr__(self) -> str:
        return f"LocalCache(max_entries={self.max_entries}, max_bytes={self.max_bytes})"

    def __len__(self) -> int:
        return len(self._data)

    @property
    def size_bytes(self) -> int:
        """Bytes currently held (values plus keys)."""
        return self._bytes

    def get_now(self, key: str) -> bytes | None:
        """Synchronous get (the cache never blocks)."""
        item = self._data.get(key)
        if item is None:
            self.misses += 1
            return None
        value, expires = item
        if expires is not None and expires <= time.monotonic():
            self._drop(key)
            self.expirations += 1
            self.misses += 1
            return None
        self._data.move_to_end(key)
        self.hits += 1
        return value

    def set_now(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Synchronous set; evicts least recently used entries past either budget."""
        size = len(value) + len(key)
        if size > self.max_bytes or self.max_entries == 0:
            self._drop(key)
            return
        ttl = ttl if ttl is not None else self.default_ttl
        expires = time.monotonic() + ttl if ttl else None
        self._drop(key)
        self._data[key] = (value, expires)
        self._bytes += size
        self.sets += 1
        while len(self._data) > self.max_entries or self._bytes > self.max_bytes:
            old_key, (old_value, _) = self._data.popitem(last=False)
            self._bytes -= len(old_value) + len(old_key)
            self.evictions += 1

    def _drop(self, key: str) -> bool:
        item = self._data.pop(key, None)
        if item is None:
            return False
        self._bytes -= len(item[0]) + len(key)
        return True

    def delete_now(self, key: str) -> None:
        """Synchronous delete."""
        self._drop(key)

    def clear_now(self) -> None:
        """Synchronous clear (the seed's ``clear_cache()`` is sync)."""
        self._data.clear()
        self._bytes = 0

    async def close(self) -> None:
        """Drop everything."""
        self.clear_now()

    def stats(self) -> dict[str, Any]:
        """hits, misses, sets, evictions, expirations, entries, bytes."""
        return {
            "hits": self.hits,
            "misses": self.misses,
            "sets": self.sets,
            "evictions": self.evictions,
            "expirations": self.expirations,
            "errors": 0,
            "entries": len(self._data),
            "bytes": self._bytes,
        }
