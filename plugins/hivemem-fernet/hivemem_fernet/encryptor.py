"""The ``fernet`` encryptor: authenticated encryption with key rotation.

Payload format: a Fernet token (version, timestamp, IV, AES-128-CBC
ciphertext, HMAC-SHA256) stored as raw bytes rather than base64 text, which
saves a quarter of the size; ``base64.urlsafe_b64encode(payload)`` is the
standard token that any Fernet implementation decrypts.

Keys are never stored on the instance in text form and never appear in a
repr, an exception message or a log line. Operators tell keys apart by their
*key id*, the first 8 hex digits of the SHA-256 of the key (:func:`key_id`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NoReturn

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from hivemem.plugin import ConfigError, DecryptionError, Encryptor

ENV_KEYS = "HIVEMEM_FERNET_KEYS"
ENV_KEY_FILE = "HIVEMEM_FERNET_KEY_FILE"

_HOW = (
    f"set the fernet option 'keys', the environment variable {ENV_KEYS} (comma-separated, "
    f"primary first), the option 'key_file' or {ENV_KEY_FILE} (one key per line, primary "
    "first); `hivemem fernet generate-key` makes a key"
)


def generate_key() -> str:
    """A new random Fernet key (32 bytes, url-safe base64) as text."""
    return Fernet.generate_key().decode("ascii")


def key_id(key: str | bytes) -> str:
    """A short, non-secret identifier of ``key``: 8 hex digits of its SHA-256."""
    raw = key.encode("ascii") if isinstance(key, str) else bytes(key)
    return hashlib.sha256(raw.strip()).hexdigest()[:8]


def _split(value: Any) -> list[str | bytes]:
    """Keys from a comma-separated string or an iterable of strings/bytes."""
    if isinstance(value, str | bytes):
        text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
        return [part.strip() for part in text.split(",") if part.strip()]
    if isinstance(value, Iterable):
        out: list[str | bytes] = []
        for item in value:
            if not isinstance(item, str | bytes):
                raise ConfigError(
                    f"fernet option 'keys' must hold strings, got a {type(item).__name__}"
                )
            if item.strip():
                out.append(item.strip())
        return out
    raise ConfigError(
        f"fernet option 'keys' must be a comma-separated string or a list, "
        f"got a {type(value).__name__}"
    )


def _read_key_file(path: str | os.PathLike[str], setting: str) -> list[str | bytes]:
    file = Path(path)
    try:
        text = file.read_text(encoding="ascii")
    except FileNotFoundError:
        raise ConfigError(
            f"fernet key file {str(file)!r} (from {setting}) does not exist"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(
            f"fernet key file {str(file)!r} (from {setting}) is not ASCII text"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read fernet key file {str(file)!r} (from {setting}): {exc.strerror}"
        ) from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def resolve_keys(
    keys: Any = None, key_file: str | os.PathLike[str] | None = None
) -> tuple[list[str | bytes], str]:
    """The configured keys (primary first) and the name of the setting they came from.

    Precedence: option ``keys``, env ``HIVEMEM_FERNET_KEYS``, option
    ``key_file``, env ``HIVEMEM_FERNET_KEY_FILE``. ConfigError when none is set
    or the one that is set holds no key.
    """
    if keys is not None and _split(keys):
        return _split(keys), "option 'keys'"
    env_keys = os.environ.get(ENV_KEYS, "")
    if env_keys.strip():
        return _split(env_keys), ENV_KEYS
    files = ((key_file, "option 'key_file'"), (os.environ.get(ENV_KEY_FILE), ENV_KEY_FILE))
    for path, setting in files:
        if path is not None and str(path).strip():
            found = _read_key_file(str(path).strip(), setting)
            if not found:
                raise ConfigError(f"fernet key file {str(path)!r} (from {setting}) holds no key")
            return found, setting
    raise ConfigError(f"fernet encryption is on but no key is configured: {_HOW}")


def _raw(key: str | bytes) -> bytes:
    text = key.encode("ascii", "replace") if isinstance(key, str) else key
    return base64.urlsafe_b64decode(text.strip())


def _build(key: str | bytes, position: int, source: str) -> Fernet:
    """A Fernet for ``key``; strict: trailing characters after the padding are an error too."""
    raw = key.encode("ascii", "replace") if isinstance(key, str) else key
    try:
        if len(base64.b64decode(raw, altchars=b"-_", validate=True)) != 32:
            raise ValueError
        return Fernet(raw)
    except (ValueError, TypeError, binascii.Error):
        raise ConfigError(
            f"fernet key #{position} (from {source}) is not a valid Fernet key: it must be "
            "32 bytes in url-safe base64 (44 characters)"
        ) from None


class FernetEncryptor(Encryptor):
    """Fernet encryptor for the hivemem pipeline; several keys for rotation.

    Options: ``keys`` (comma-separated string or list; first is the primary,
    used for new values; all are tried for reading), else
    ``HIVEMEM_FERNET_KEYS``, else ``key_file`` / ``HIVEMEM_FERNET_KEY_FILE``
    (one key per line, ``#`` comments allowed). Tokens carry no TTL: expiry
    is the backend's job.
    """

    name = "fernet"
    __slots__ = ("_derive", "_fernet", "_key_ids", "_primary", "_source")

    def __init__(self, keys: Any = None, key_file: str | os.PathLike[str] | None = None) -> None:
        found, source = resolve_keys(keys, key_file)
        fernets = [_build(key, i, source) for i, key in enumerate(found, start=1)]
        self._key_ids = tuple(key_id(key) for key in found)
        self._source = source
        self._primary = fernets[0]
        self._fernet = MultiFernet(fernets)
        # one pseudo-random key per configured key, for keys derived for other purposes
        self._derive = tuple(
            hmac.new(b"hivemem-fernet derive", _raw(key), hashlib.sha256).digest() for key in found
        )

    def __repr__(self) -> str:
        return f"FernetEncryptor(key_ids={list(self._key_ids)}, source={self._source!r})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("FernetEncryptor holds secret keys and cannot be pickled")

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Non-secret ids of the configured keys, primary first (see :func:`key_id`)."""
        return self._key_ids

    def encode(self, data: bytes) -> bytes:
        """Encrypt and authenticate ``data`` under the primary key."""
        return base64.urlsafe_b64decode(self._primary.encrypt(data))

    def decode(self, data: bytes) -> bytes:
        """Decrypt ``data`` with any configured key.

        DecryptionError (never garbage, never None) when no key authenticates
        it: the value was written under a key that is not configured, or it
        was tampered with or truncated.
        """
        try:
            return self._fernet.decrypt(base64.urlsafe_b64encode(data))
        except InvalidToken:
            raise DecryptionError(
                "fernet cannot decrypt value: written under a key that is not configured, "
                f"or tampered with or truncated (configured key ids: {', '.join(self._key_ids)})"
            ) from None

    def derive_keys(self, purpose: bytes) -> list[bytes]:
        """32-byte keys for ``purpose`` derived from each configured key, primary first.

        hivemem seals entries of caches outside the process with them when no
        ``cache_secret`` is configured; knowing a derived key reveals nothing
        of the Fernet key it came from.
        """
        return [hmac.new(prk, purpose, hashlib.sha256).digest() for prk in self._derive]

    def needs_reencrypt(self, data: bytes) -> bool:
        """True when ``data`` is not decryptable by the primary key alone (rotation needed)."""
        try:
            self._primary.decrypt(base64.urlsafe_b64encode(data))
        except InvalidToken:
            return True
        return False


__all__ = [
    "ENV_KEYS",
    "ENV_KEY_FILE",
    "FernetEncryptor",
    "generate_key",
    "key_id",
    "resolve_keys",
]
