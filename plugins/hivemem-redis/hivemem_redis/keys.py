"""The Redis key layout of the hivemem backend (documented in ``docs/backends/redis.md``).

Every name a caller chooses (namespace, kind, id, series name) is UTF-8
encoded and then *escaped* before it becomes part of a key: the four bytes
``%``, ``:``, ``{`` and ``}`` are replaced by ``%25``, ``%3A``, ``%7B`` and
``%7D``. An escaped component therefore never contains ``:`` (the separator),
nor a brace (so it can never open or close a Redis Cluster hash tag), and
escaping is injective (``%`` itself is escaped), so two different tuples can
never produce the same key. Every other byte -- including NUL, newlines and
non-ASCII -- is kept as is: Redis keys are binary safe.

Layout, with ``P`` the configured prefix (default ``hivemem:``) and ``E(x)``
the escaped form of ``x``::

    P{k:E(ns):E(kind)}:r:E(id)   string: 32-byte header (version, expires_at ms: 16 hex
                                 digits each, 0 = no expiry) followed by the value
    P{k:E(ns):E(kind)}:i         zset, all scores 0, members = raw ids (lex index)
    P{k:E(ns):E(kind)}:x         zset, score = expires_at ms, members = ids with a TTL
    P{k:E(ns):E(kind)}:c:E(id)   hash {field: float} (counters)
    P{k:E(ns):E(kind)}:C         set of ids that have counters
    P{k:E(ns):E(kind)}:s:N       staging strings of put_many; exist only inside MULTI/EXEC
    P{s:E(ns):E(series)}:z       zset, score = ts, member = 8-byte seq + value
    P{s:E(ns):E(series)}:m       hash {q: last seq, b: stored bytes}
    P{n:E(ns)}:K                 set of kinds that ever held a record or counter
    P{n:E(ns)}:S                 zset, all scores 0, members = series names
    P{n:E(ns)}:inv               pub/sub channel of invalidation messages

The text between braces is the Redis Cluster hash tag: everything about one
``(ns, kind)`` shares a slot (so a record, its index entries and its expiry
entry change together in one Lua script), every series has a slot of its own,
and the per-namespace registries share a third.
"""

from __future__ import annotations

import attrs

_ESCAPES = {
    ord("%"): b"%25",
    ord(":"): b"%3A",
    ord("{"): b"%7B",
    ord("}"): b"%7D",
}
_SPECIAL = frozenset(_ESCAPES)


def utf8(name: str) -> bytes:
    """UTF-8 bytes of ``name`` (Redis compares these with memcmp: code-point order)."""
    return name.encode("utf-8")


def escape(component: str | bytes) -> bytes:
    """Escape one key component (see the module docstring)."""
    raw = utf8(component) if isinstance(component, str) else component
    if not _SPECIAL.intersection(raw):
        return raw
    return b"".join(_ESCAPES.get(byte, bytes((byte,))) for byte in raw)


def unescape(raw: bytes) -> bytes:
    """Inverse of :func:`escape` (used by tests and the docs' examples)."""
    out = bytearray()
    at = 0
    while at < len(raw):
        if raw[at] == ord("%"):
            out.append(int(raw[at + 1 : at + 3], 16))
            at += 3
        else:
            out.append(raw[at])
            at += 1
    return bytes(out)


@attrs.frozen
class KindKeys:
    """Keys of one ``(namespace, kind)``; all share one cluster slot."""

    base: bytes  # P{k:ns:kind}:

    @property
    def index(self) -> bytes:
        """Lexicographic id index."""
        return self.base + b"i"

    @property
    def expiry(self) -> bytes:
        """Expiry zset (score = expires_at in ms)."""
        return self.base + b"x"

    @property
    def record_prefix(self) -> bytes:
        """Record keys are this prefix plus the escaped id (Lua scripts build them too)."""
        return self.base + b"r:"

    @property
    def counter_prefix(self) -> bytes:
        """Counter hashes are this prefix plus the escaped id."""
        return self.base + b"c:"

    @property
    def counter_ids(self) -> bytes:
        """Set of ids that hold counters."""
        return self.base + b"C"

    def record(self, id: str) -> bytes:
        """The record string of ``id``."""
        return self.base + b"r:" + escape(id)

    def counters(self, id: str) -> bytes:
        """The counter hash of ``id``."""
        return self.base + b"c:" + escape(id)


@attrs.frozen
class SeriesKeys:
    """Keys of one series; they share one cluster slot."""

    base: bytes  # P{s:ns:name}:

    @property
    def entries(self) -> bytes:
        """Sorted set of entries (score ts, member seq+value)."""
        return self.base + b"z"

    @property
    def meta(self) -> bytes:
        """Hash with the seq counter ``q`` and the stored byte total ``b``."""
        return self.base + b"m"


@attrs.frozen
class NamespaceKeys:
    """Per-namespace registries and the invalidation channel (one slot)."""

    base: bytes  # P{n:ns}:

    @property
    def kinds(self) -> bytes:
        """Set of kinds that ever held a record or counter."""
        return self.base + b"K"

    @property
    def series(self) -> bytes:
        """Lex index of series names."""
        return self.base + b"S"

    @property
    def channel(self) -> bytes:
        """Pub/sub channel for invalidation messages."""
        return self.base + b"inv"


@attrs.frozen
class KeyLayout:
    """Builds every key from the configured prefix."""

    prefix: bytes = b"hivemem:"

    def kind(self, ns: str, kind: str) -> KindKeys:
        """Keys of ``(ns, kind)``."""
        return KindKeys(self.prefix + b"{k:" + escape(ns) + b":" + escape(kind) + b"}:")

    def series(self, ns: str, name: str) -> SeriesKeys:
        """Keys of series ``name`` in ``ns``."""
        return SeriesKeys(self.prefix + b"{s:" + escape(ns) + b":" + escape(name) + b"}:")

    def namespace(self, ns: str) -> NamespaceKeys:
        """Registries of ``ns``."""
        return NamespaceKeys(self.prefix + b"{n:" + escape(ns) + b"}:")
