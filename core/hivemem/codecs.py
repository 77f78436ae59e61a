"""Base classes of the three codec kinds, with their optional capabilities declared.

A codec plugin subclasses one of them (through :mod:`hivemem.plugin`):

* :class:`Serializer` -- object <-> bytes (``dumps``/``loads``);
* :class:`Compressor` -- bytes <-> bytes; ``encode`` may decline (None) and
  ``decode`` must bound its output (``max_output_size``);
* :class:`Encryptor` -- bytes <-> bytes, authenticated.

Optional capabilities are methods with a default, so the pipeline calls them
without looking for them: codec resources (``resources_needed`` and
``add_resource``, for a zstd dictionary stored in the memory), rotation
(``needs_reencrypt``) and derived keys (``derive_keys``, which seal remote
cache entries when no ``cache_secret`` is set).

Codecs written before these classes existed (any object with ``name`` and
the two methods) keep working: the pipeline wraps them once, when it builds
them, in an adapter that supplies the defaults.
"""

from __future__ import annotations

import abc
from typing import Any

from .errors import Unsupported

#: the reserved namespace in which codec resources (zstd dictionaries, ...) are stored
RESOURCE_NS = "__hivemem__"


class Serializer(abc.ABC):
    """object <-> bytes: the first stage of the pipeline."""

    __slots__ = ()

    #: the name frames record for this serializer
    name: str = "serializer"

    @abc.abstractmethod
    def dumps(self, obj: Any) -> bytes:
        """Encode ``obj``; :class:`~hivemem.errors.SerializationError` when it cannot."""

    @abc.abstractmethod
    def loads(self, data: bytes) -> Any:
        """Decode what :meth:`dumps` wrote (bounded in what it allocates)."""


class ByteCodec(abc.ABC):
    """bytes <-> bytes: what compressors and encryptors share."""

    __slots__ = ()

    #: the name frames record for this codec
    name: str = "codec"

    @abc.abstractmethod
    def encode(self, data: bytes) -> bytes | None:
        """Transform ``data``; None declines (the frame then records no stage)."""

    @abc.abstractmethod
    def decode(self, data: bytes) -> bytes:
        """Invert :meth:`encode`; raise on anything it did not produce."""

    def resources_needed(self) -> list[tuple[str, str]]:
        """``(resource_kind, resource_id)`` this codec needs loaded before it writes."""
        return []

    def add_resource(self, resource_kind: str, resource_id: str, data: bytes) -> None:
        """Take a resource the memory loaded from the store. Default: none is used."""
        raise Unsupported(f"codec {self.name!r} uses no stored resources")


class Compressor(ByteCodec):
    """The second stage: ``decode`` must never return more than ``max_output_size`` bytes."""

    __slots__ = ()


class Encryptor(ByteCodec):
    """The last stage: authenticated encryption (any change to the payload is detected)."""

    __slots__ = ()

    def needs_reencrypt(self, data: bytes) -> bool:
        """True when ``data`` is not under the primary key (``rotate-keys`` rewrites it)."""
        return False

    def derive_keys(self, purpose: bytes) -> list[bytes]:
        """Keys for ``purpose`` derived from the configured keys, primary first. Default: none."""
        return []


class _Adapted:
    """Forwards to a codec written without the base classes, supplying their defaults."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name

    def __repr__(self) -> str:
        return repr(self.inner)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.inner, attr)


class _AdaptedSerializer(_Adapted, Serializer):
    def dumps(self, obj: Any) -> bytes:
        return self.inner.dumps(obj)  # type: ignore[no-any-return]

    def loads(self, data: bytes) -> Any:
        return self.inner.loads(data)


class _AdaptedByteCodec(_Adapted):
    def encode(self, data: bytes) -> bytes | None:
        return self.inner.encode(data)  # type: ignore[no-any-return]

    def decode(self, data: bytes) -> bytes:
        return self.inner.decode(data)  # type: ignore[no-any-return]

    def resources_needed(self) -> list[tuple[str, str]]:
        wants = getattr(self.inner, "resources_needed", None)
        return [] if wants is None else list(wants())

    def add_resource(self, resource_kind: str, resource_id: str, data: bytes) -> None:
        add = getattr(self.inner, "add_resource", None)
        if add is None:
            raise Unsupported(f"codec {self.name!r} uses no stored resources")
        add(resource_kind, resource_id, data)


class _AdaptedCompressor(_AdaptedByteCodec, Compressor):
    pass


class _AdaptedEncryptor(_AdaptedByteCodec, Encryptor):
    def needs_reencrypt(self, data: bytes) -> bool:
        check = getattr(self.inner, "needs_reencrypt", None)
        return False if check is None else bool(check(data))

    def derive_keys(self, purpose: bytes) -> list[bytes]:
        derive = getattr(self.inner, "derive_keys", None)
        return [] if derive is None else list(derive(purpose))


_BASES: dict[str, tuple[type, type]] = {
    "serializer": (Serializer, _AdaptedSerializer),
    "compressor": (Compressor, _AdaptedCompressor),
    "encryptor": (Encryptor, _AdaptedEncryptor),
}


def adapt(kind: str, codec: Any) -> Any:
    """``codec`` as an instance of its kind's base class (wrapped once when it is not one)."""
    base, adapter = _BASES[kind]
    return codec if isinstance(codec, base) else adapter(codec)


__all__ = ["RESOURCE_NS", "ByteCodec", "Compressor", "Encryptor", "Serializer", "adapt"]
