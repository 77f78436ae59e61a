"""Authenticated entries for caches outside the process.

A cache beyond the process (Memcached) is a store that anyone who reaches its
port can write to, and the text protocol has no authentication. So the
:class:`~hivemem.memory.Memory` never hands such a cache a bare frame or a key
made of public names: every remote tier is wrapped in a :class:`SealedCache`.

* **Keys** are ``BLAKE2b(name key, memory key)``: someone who knows the
  namespace, kind and id but not the secret cannot compute where a record's
  entry lives.
* **Values** are ``b"\\x01" + tag + frame`` where ``tag`` is an HMAC-SHA256
  over the derived key and the frame. An entry that does not verify under
  one of the configured secrets (forged, truncated, or copied from another
  key) is a miss, counted as ``forged`` in the tier's stats, never a value.

The secrets come from the setting ``cache_secret`` (comma-separated: the
first one signs and names keys, every one verifies) or, when that is unset,
from the encryptor (``derive_keys(purpose)``, which the Fernet encryptor
implements from its keys). With neither, a remote tier is refused unless the
configuration says ``trust_remote_cache = true`` (a trusted network), and then
entries pass unauthenticated under names derivable from public names.

What a MAC cannot stop: someone with access to the cache can delete entries
(misses only) or put back an *older* authenticated entry of the same record
that they saw earlier, which is served until the entry's TTL ends or a write
through any process deletes it. Reads never go beyond the cache TTL on it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Any

from .cache import Cache
from .codecs import Encryptor
from .errors import ConfigError

#: first byte of a sealed entry (the format version)
SEAL_VERSION = b"\x01"
#: bytes of the MAC tag
TAG_SIZE = 32
_OVERHEAD = 1 + TAG_SIZE
_NAME_PURPOSE = b"hivemem cache names v1"
_MAC_PURPOSE = b"hivemem cache mac v1"


def _subkey(secret: bytes, purpose: bytes) -> bytes:
    return hmac.new(secret, purpose, hashlib.sha256).digest()


def cache_secrets(cache_secret: str | None, encryptor: Encryptor | None) -> list[bytes] | None:
    """The secrets remote cache entries are sealed with (first signs), or None when none is set.

    ``cache_secret`` wins; otherwise an encryptor offering ``derive_keys(purpose)``
    provides them (derived, so the encryption keys themselves are never used twice).
    """
    if cache_secret is not None and cache_secret.strip():
        parts = [p.strip() for p in cache_secret.split(",") if p.strip()]
        for i, part in enumerate(parts, start=1):
            if len(part) < 16:
                raise ConfigError(
                    f"cache_secret #{i} is {len(part)} characters; use at least 16 "
                    "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
                )
        return [p.encode("utf-8") for p in parts]
    if encryptor is not None:
        keys = encryptor.derive_keys(b"hivemem remote cache")
        if keys:
            return list(keys)
    return None


class SealedCache(Cache):
    """A remote cache tier whose keys are secret-derived and whose values carry a MAC.

    ``secrets`` None means the unauthenticated, trusted-network mode: entries
    pass through unchanged under the memory's own keys.
    """

    name = "sealed"
    in_process = False

    def __init__(self, inner: Cache, secrets: Sequence[bytes] | None) -> None:
        self.inner = inner
        self.name = inner.name  # type: ignore[misc]
        self.supports_lease = inner.supports_lease  # type: ignore[misc]
        self.sealed = secrets is not None
        if secrets is not None and not secrets:
            raise ConfigError("sealed cache needs at least one secret")
        self._name_key = _subkey(secrets[0], _NAME_PURPOSE)[:32] if secrets else b""
        self._mac_keys = [_subkey(s, _MAC_PURPOSE)[:32] for s in secrets or ()]
        limit = inner.max_value_size
        self.max_value_size = (  # type: ignore[misc]
            None if limit is None else (limit - _OVERHEAD if self.sealed else limit)
        )
        self.forged = 0

    def __repr__(self) -> str:
        return f"SealedCache({self.inner!r}, sealed={self.sealed})"

    # -- keys and seals ------------------------------------------------------------------
    def _key(self, key: str) -> str:
        if not self.sealed:
            return key
        raw = key.encode("utf-8", "surrogatepass")
        return "s1:" + hashlib.blake2b(raw, key=self._name_key, digest_size=20).hexdigest()

    @staticmethod
    def _tag(mac_key: bytes, derived: str, frame: bytes) -> bytes:
        # HMAC-SHA256: OpenSSL's SHA-256 is about twice as fast as hashlib's BLAKE2b
        # on large frames (benchmarks/README.md, bench_security)
        h = hmac.new(mac_key, derived.encode("ascii", "surrogatepass") + b"\x00", "sha256")
        h.update(frame)
        return h.digest()

    def seal(self, derived: str, frame: bytes) -> bytes:
        """The stored form of ``frame`` at the derived key ``derived``."""
        if not self.sealed:
            return frame
        return SEAL_VERSION + self._tag(self._mac_keys[0], derived, frame) + frame

    def unseal(self, derived: str, data: bytes | None) -> bytes | None:
        """The frame inside ``data`` when it verifies, else None (counted as forged)."""
        if data is None or not self.sealed:
            return data
        if len(data) > _OVERHEAD and data[:1] == SEAL_VERSION:
            tag, frame = data[1:_OVERHEAD], data[_OVERHEAD:]
            for mac_key in self._mac_keys:
                if hmac.compare_digest(tag, self._tag(mac_key, derived, frame)):
                    return frame
        self.forged += 1
        return None

    # -- the Cache contract --------------------------------------------------------------
    async def open(self) -> None:
        """Open the wrapped cache."""
        await self.inner.open()

    async def close(self) -> None:
        """Close the wrapped cache."""
        await self.inner.close()

    async def get(self, key: str) -> bytes | None:
        """The verified frame at ``key`` or None."""
        derived = self._key(key)
        return self.unseal(derived, await self.inner.get(derived))

    async def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        """Verified frames for ``keys`` (misses and forgeries absent), one round trip."""
        derived = {self._key(k): k for k in keys}
        got = await self.inner.get_many(list(derived))
        out: dict[str, bytes] = {}
        for dkey, data in got.items():
            frame = self.unseal(dkey, data)
            if frame is not None:
                out[derived[dkey]] = frame
        return out

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store ``value`` sealed."""
        derived = self._key(key)
        await self.inner.set(derived, self.seal(derived, value), ttl)

    async def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        """Store several values sealed, one round trip where the cache allows."""
        sealed = {}
        for key, value in items.items():
            derived = self._key(key)
            sealed[derived] = self.seal(derived, value)
        await self.inner.set_many(sealed, ttl)

    async def delete(self, key: str) -> None:
        """Forget ``key``."""
        await self.inner.delete(self._key(key))

    async def delete_many(self, keys: Sequence[str]) -> None:
        """Forget several keys."""
        await self.inner.delete_many([self._key(k) for k in keys])

    async def clear(self) -> None:
        """Clear the wrapped cache."""
        await self.inner.clear()

    async def lease(self, key: str, ttl: float) -> bool:
        """The wrapped cache's refill lease for ``key``."""
        return await self.inner.lease(self._key(key), ttl)

    async def release(self, key: str) -> None:
        """Release a refill lease taken with :meth:`lease`."""
        await self.inner.release(self._key(key))

    def stats(self) -> dict[str, Any]:
        """The wrapped cache's counters plus ``forged`` (entries that failed verification)."""
        out = dict(self.inner.stats())
        out["forged"] = self.forged
        out["authenticated"] = self.sealed
        return out


__all__ = ["SEAL_VERSION", "TAG_SIZE", "SealedCache", "cache_secrets"]
