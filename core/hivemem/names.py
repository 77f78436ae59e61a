"""What a valid namespace, kind, id and series name is, and the cache key of a record."""

from __future__ import annotations

from typing import Any

from .codecs import RESOURCE_NS as _RESOURCE_NS
from .errors import InvalidKey

#: longest accepted namespace, kind and series name (characters)
MAX_NAME = 256
#: longest accepted id (characters)
MAX_ID = 4096

#: the namespace holding codec resources (zstd dictionaries, ...); not for user data
RESOURCE_NS = _RESOURCE_NS


def check_name(value: Any, what: str, max_len: int = MAX_NAME, *, allow_empty: bool = False) -> str:
    """``value`` as a str when it is a usable name; else :class:`InvalidKey` naming it."""
    # hot path: every operation checks its names; the common case returns on the first line
    if type(value) is str and 0 < len(value) <= max_len and value.isascii():
        return value
    if type(value) is not str:
        if isinstance(value, str):
            value = str(value)
        else:
            raise InvalidKey(f"{what} must be a str, got {type(value).__name__} {value!r:.80}")
    if not value and not allow_empty:
        raise InvalidKey(f"{what} must not be empty")
    if len(value) > max_len:
        raise InvalidKey(
            f"{what} {value[:40]!r}... is {len(value)} characters; the limit is {max_len}"
        )
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidKey(
                f"{what} {value!r:.80} is not valid Unicode (lone surrogate)"
            ) from None
    return value


def check_namespace(namespace: Any) -> str:
    """A namespace users may write to (not the reserved resource namespace)."""
    namespace = check_name(namespace, "namespace")
    if namespace == RESOURCE_NS:
        raise InvalidKey(f"namespace {RESOURCE_NS!r} is reserved for codec resources")
    return namespace


def cache_key(namespace: str, kind: str, id: str) -> str:
    """The key of one record in every cache tier (unambiguous: lengths prefix the parts)."""
    return f"{len(namespace)}:{namespace}{len(kind)}:{kind}{id}"


__all__ = ["MAX_ID", "MAX_NAME", "RESOURCE_NS", "cache_key", "check_name", "check_namespace"]
