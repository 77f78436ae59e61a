"""Protocol-safe key derivation and rendezvous (highest-random-weight) hashing.

Memcached's text protocol takes keys of at most 250 bytes with no spaces or
control characters, and a key is just a token on a command line: a key with
``\\r\\n`` in it would end the command and start another. hivemem's cache keys
are arbitrary Unicode of any length, so they are never sent as they are: each
is replaced by ``prefix + hex(BLAKE2b-256(utf-8 bytes of the key))``, a fixed
length string of ``[0-9a-f]`` after a validated prefix. Distinct keys collide
only with the probability of a 256-bit hash collision.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TypeVar

DIGEST_SIZE = 32
#: domain separation: record keys and lease keys never share a derived key
_VALUE_PERSON = b"hivemem-mc-val"
_LEASE_PERSON = b"hivemem-mc-lease"

S = TypeVar("S")


def _digest(key: str, person: bytes) -> str:
    # surrogatepass: every Python str (even one with lone surrogates) maps to distinct bytes
    data = key.encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=DIGEST_SIZE, person=person).hexdigest()


def derive_key(prefix: str, key: str) -> str:
    """The memcached key that stores ``key``'s value."""
    return prefix + _digest(key, _VALUE_PERSON)


def derive_lease_key(prefix: str, key: str) -> str:
    """The memcached key of the refill lease of ``key`` (distinct from its value key)."""
    return prefix + "lease:" + _digest(key, _LEASE_PERSON)


def hrw_weight(server_id: bytes, derived: str) -> int:
    """Rendezvous weight of ``derived`` on the server named ``server_id``."""
    digest = hashlib.blake2b(derived.encode("ascii"), digest_size=8, key=server_id[:64]).digest()
    return int.from_bytes(digest, "big")


def pick(servers: Sequence[S], server_ids: Sequence[bytes], derived: str) -> S:
    """The server with the highest weight for ``derived``.

    Removing a server moves exactly the keys it owned (each to the server
    with the next highest weight); adding one takes about 1/n of the keys
    and moves nothing else.
    """
    if len(servers) == 1:
        return servers[0]
    best = max(range(len(servers)), key=lambda i: hrw_weight(server_ids[i], derived))
    return servers[best]


__all__ = ["DIGEST_SIZE", "derive_key", "derive_lease_key", "hrw_weight", "pick"]
