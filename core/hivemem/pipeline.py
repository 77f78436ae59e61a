"""The value pipeline and its self-describing frame.

write: object -> serializer -> compressor -> encryptor -> frame bytes
read:  frame bytes -> encryptor^-1 -> compressor^-1 -> serializer^-1 -> object

Frame layout (version 1, all integers big-endian)::

    b"HM" 0x01              magic and frame version
    N                       1 byte: number of stages
    N x (tag, len, name)    tag b"s"/b"c"/b"e" (serializer/compressor/encryptor),
                            1-byte name length, ASCII name
    payload length          4 bytes
    crc32(payload)          4 bytes
    payload

Stages are listed in the order they were applied; a stage that did nothing
(``none``, or a compressor that declined a small value) is omitted. A reader
decodes by the header, never by today's configuration, so values written
before compression or encryption was switched on, or under an old key, still
read back. A truncated or corrupt frame, or one that names a codec that is not
installed, raises a :class:`~hivemem.errors.FrameError` naming the key.

Readers decode only what they trust. Before any codec runs, every stage a
frame names must be one the configuration writes or one named in
``read_codecs`` (:class:`~hivemem.errors.UntrustedCodec` otherwise), the
stages must come in the order writers produce them (serializer, then at most
one compressor, then at most one encryptor), and with an encryptor configured
the frame must carry an encryption stage
(:class:`~hivemem.errors.UnencryptedFrame`) unless the pipeline runs in
plaintext-migration mode (``accept_plaintext``). ``pickle`` is trusted only
when it is the configured serializer or named in ``read_codecs``.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

from .codecs import ByteCodec, Compressor, Encryptor, Serializer, adapt
from .errors import (
    CodecNotInstalled,
    ConfigError,
    DecryptionError,
    FrameError,
    PluginNotFound,
    ResourceMissing,
    SerializationError,
    UnencryptedFrame,
    UntrustedCodec,
    ValueTooLarge,
)
from .plugins import KNOWN_PACKAGES, Plugins, get_plugins
from .redact import plugin_call

MAGIC = b"HM\x01"
_TAGS = {"serializer": b"s", "compressor": b"c", "encryptor": b"e"}
_KIND_OF_TAG = {ord("s"): "serializer", ord("c"): "compressor", ord("e"): "encryptor"}
_STAGE_ORDER = {"serializer": 0, "compressor": 1, "encryptor": 2}
_TRAILER = struct.Struct(">II")


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """Split ``"zstd?level=9&min_size=64"`` into ``("zstd", {"level": "9", ...})``."""
    from urllib.parse import parse_qsl

    name, _, query = spec.partition("?")
    return name.strip(), dict(parse_qsl(query, keep_blank_values=True))


def _header(stages: list[tuple[str, str]]) -> bytes:
    parts = [MAGIC, bytes([len(stages)])]
    for kind, name in stages:
        raw = name.encode("ascii")
        if not 0 < len(raw) < 256:
            raise ConfigError(f"codec name {name!r} must be 1-255 ASCII characters")
        parts.append(_TAGS[kind] + bytes([len(raw)]) + raw)
    return b"".join(parts)


def read_header(frame: bytes, key: str | None = None) -> tuple[list[tuple[str, str]], int]:
    """Parse a frame header: ``([(kind, name), ...], payload_offset)``. Checks length and CRC."""
    if len(frame) < len(MAGIC) + 1 + _TRAILER.size or frame[:2] != MAGIC[:2]:
        raise FrameError("not a hivemem frame (bad magic or too short)", key)
    if frame[2] != MAGIC[2]:
        raise FrameError(f"unsupported frame version {frame[2]}", key)
    count = frame[3]
    pos = 4
    stages: list[tuple[str, str]] = []
    try:
        for _ in range(count):
            kind = _KIND_OF_TAG[frame[pos]]
            length = frame[pos + 1]
            name = frame[pos + 2 : pos + 2 + length].decode("ascii")
            if len(name) != length:
                raise IndexError
            stages.append((kind, name))
            pos += 2 + length
        size, crc = _TRAILER.unpack_from(frame, pos)
    except (KeyError, IndexError, UnicodeDecodeError, struct.error):
        raise FrameError("corrupt or truncated frame header", key) from None
    pos += _TRAILER.size
    if len(frame) - pos != size:
        raise FrameError(
            f"truncated frame: payload is {len(frame) - pos} bytes, header says {size}", key
        )
    if zlib.crc32(frame[pos:]) != crc:
        raise FrameError("corrupt frame: checksum mismatch", key)
    return stages, pos


class Pipeline:
    """Encodes objects into frames and decodes frames back, by their headers.

    ``serializer``, ``compressor`` and ``encryptor`` are names (optionally
    with ``?option=value``); ``options`` maps a codec name to extra keyword
    arguments for its factory (used for both writing and reading).
    ``read_codecs`` names codecs trusted for reading besides the configured
    ones (for example the old compressor while migrating); ``accept_plaintext``
    reads unencrypted frames although an encryptor is configured (the
    migration mode ``hivemem rotate-keys --encrypt-plaintext`` uses).
    """

    def __init__(
        self,
        serializer: str = "json",
        compressor: str = "none",
        encryptor: str = "none",
        *,
        options: Mapping[str, Mapping[str, Any]] | None = None,
        plugins: Plugins | None = None,
        read_codecs: Iterable[str] = (),
        accept_plaintext: bool = False,
    ) -> None:
        self.plugins = plugins or get_plugins()
        self._options: dict[str, dict[str, Any]] = {
            name: dict(opts) for name, opts in (options or {}).items()
        }
        self._instances: dict[tuple[str, str], Any] = {}
        names = self._parse_specs(serializer=serializer, compressor=compressor, encryptor=encryptor)
        self.serializer_name = names["serializer"]
        self.compressor_name = names["compressor"]
        self.encryptor_name = names["encryptor"]
        # Build the write-side codecs now: a bad name fails at configuration time.
        self.serializer: Serializer = self._codec("serializer", self.serializer_name)
        self.compressor: Compressor | None = (
            None
            if self.compressor_name == "none"
            else self._codec("compressor", self.compressor_name)
        )
        self.encryptor: Encryptor | None = (
            None if self.encryptor_name == "none" else self._codec("encryptor", self.encryptor_name)
        )
        #: the frame header written, without and with the compressor
        self._headers: dict[bool, bytes] = self._write_headers()
        if isinstance(read_codecs, str):
            read_codecs = read_codecs.replace(",", " ").split()
        #: codec names trusted for reading besides the configured ones
        self.read_codecs: frozenset[str] = frozenset(
            n for n in (parse_spec(c)[0] for c in read_codecs) if n and n != "none"
        )
        self.accept_plaintext = bool(accept_plaintext)
        self._writes = {(k, n) for k, n in names.items() if n != "none"}
        #: headers already judged trustworthy -> their stages (only trusted ones are kept,
        #: so the memo is bounded by the configuration, not by what a store holds)
        self._trusted: dict[bytes, list[tuple[str, str]]] = {}

    def _parse_specs(self, **specs: str) -> dict[str, str]:
        """Stage -> codec name; a spec's ``?option=value`` joins that codec's options."""
        names = {}
        for kind, spec in specs.items():
            name, spec_opts = parse_spec(spec)
            if spec_opts:
                self._options.setdefault(name, {}).update(spec_opts)
            names[kind] = name
        return names

    def _write_headers(self) -> dict[bool, bytes]:
        base: list[tuple[str, str]] = [("serializer", self.serializer_name)]
        enc: list[tuple[str, str]] = (
            [("encryptor", self.encryptor_name)] if self.encryptor is not None else []
        )
        compressed = (
            [*base, ("compressor", self.compressor_name), *enc]
            if self.compressor is not None
            else base + enc
        )
        return {False: _header(base + enc), True: _header(compressed)}

    def __repr__(self) -> str:
        return (
            f"Pipeline(serializer={self.serializer_name!r}, compressor={self.compressor_name!r}, "
            f"encryptor={self.encryptor_name!r})"
        )

    @property
    def names(self) -> dict[str, str]:
        """The configured write-side codec names per stage."""
        return {
            "serializer": self.serializer_name,
            "compressor": self.compressor_name,
            "encryptor": self.encryptor_name,
        }

    def _codec(self, kind: str, name: str, key: str | None = None) -> Any:
        cache_key = (kind, name)
        inst = self._instances.get(cache_key)
        if inst is not None:
            return inst
        try:
            entry = self.plugins.registry(kind).get(name)
        except PluginNotFound:
            if key is not None:
                raise CodecNotInstalled(name, kind, key, KNOWN_PACKAGES.get(name)) from None
            raise
        options = self._options.get(name, {})
        # a codec's error may quote its options (keys): scrubbed, and never chained
        secrets = [str(v) for v in options.values() if isinstance(v, str | bytes)]
        inst = adapt(
            kind, plugin_call(kind, name, secrets, "the value pipeline", entry.factory, **options)
        )
        self._instances[cache_key] = inst
        return inst

    # -- write ---------------------------------------------------------------
    def encode(
        self, obj: Any, key: str | None = None, *, limit: int | None = None, where: str = "backend"
    ) -> bytes:
        """Serialize, compress, encrypt; return a frame.

        With ``limit``, a frame that would exceed it raises
        :class:`~hivemem.errors.ValueTooLarge` as soon as that is certain
        (after serializing when nothing can shrink the value, else after
        compressing), before the later stages build more copies of it.
        """
        try:
            data = self.serializer.dumps(obj)
        except SerializationError as exc:
            if key is not None and "key" not in str(exc):
                raise SerializationError(f"{exc} (key {key!r})") from None
            raise
        compressed = False
        if self.compressor is not None:
            out = self.compressor.encode(data)
            if out is not None:
                data = out
                compressed = True
        if limit is not None and len(data) > limit:  # later stages only add bytes
            raise ValueTooLarge(key, len(data), limit, where)
        if self.encryptor is not None:
            data = self.encryptor.encode(data)  # type: ignore[assignment]
        return b"".join(
            (self._headers[compressed], _TRAILER.pack(len(data), zlib.crc32(data)), data)
        )

    # -- read ----------------------------------------------------------------
    def trusts(self, kind: str, name: str) -> bool:
        """True when this reader decodes stage ``kind`` written with codec ``name``."""
        return (kind, name) in self._writes or name in self.read_codecs

    def check_stages(self, stages: list[tuple[str, str]], key: str | None = None) -> None:
        """Refuse a frame this reader does not trust, before any codec runs.

        FrameError when the stages are not in writer order (serializer first,
        then at most one compressor and one encryptor); UntrustedCodec for a
        codec outside the allowed set; UnencryptedFrame when an encryptor is
        configured, the frame carries none and plaintext is not accepted.
        """
        if not stages or stages[0][0] != "serializer":
            raise FrameError("frame names no serializer", key)
        last = -1
        for kind, _name in stages:
            order = _STAGE_ORDER[kind]
            if order <= last:
                raise FrameError("frame stages out of order or repeated", key)
            last = order
        for kind, name in stages:
            if not self.trusts(kind, name):
                raise UntrustedCodec(name, kind, key)
        if (
            self.encryptor is not None
            and not self.accept_plaintext
            and stages[-1][0] != "encryptor"
        ):
            raise UnencryptedFrame(key)

    def _trusted_stages(self, frame: bytes, key: str | None) -> tuple[list[tuple[str, str]], int]:
        stages, pos = read_header(frame, key)
        head = frame[: pos - _TRAILER.size]
        if head not in self._trusted:
            self.check_stages(stages, key)
            self._trusted[head] = stages
        return stages, pos

    def decode(self, frame: bytes, key: str | None = None) -> Any:
        """Decode a trusted frame by its header; FrameError (naming ``key``) when it cannot."""
        stages, pos = self._trusted_stages(frame, key)
        data = frame[pos:]
        for kind, name in reversed(stages[1:]):
            codec = self._codec(kind, name, key)
            try:
                data = codec.decode(data)
            except ResourceMissing as exc:
                raise ResourceMissing(
                    exc.resource_kind, exc.resource_id, key, stage=(kind, name)
                ) from None
            except DecryptionError as exc:
                if exc.key is None and key is not None:
                    raise DecryptionError(str(exc), key) from None
                raise
            except Exception as exc:  # a codec's own error: never return garbage
                if kind == "encryptor":  # say nothing an attacker could use
                    raise DecryptionError(
                        f"{kind} {name!r} cannot decode value: {type(exc).__name__}", key
                    ) from None
                raise FrameError(f"{kind} {name!r} cannot decode value: {exc}", key) from None
        serializer = self._codec("serializer", stages[0][1], key)
        try:
            return serializer.loads(data)
        except FrameError as exc:  # e.g. a decode budget: keep the class, name the record
            if exc.key is None and key is not None:
                raise type(exc)(str(exc), key) from None
            raise
        except Exception as exc:
            raise FrameError(
                f"serializer {stages[0][1]!r} cannot decode value: {type(exc).__name__}", key
            ) from None

    def codec(self, kind: str, name: str) -> Any:
        """The codec instance this pipeline uses for ``name`` at stage ``kind``."""
        return self._codec(kind, name)

    def resources_needed(self) -> list[tuple[str, str, str, str]]:
        """``(stage, codec, resource_kind, resource_id)`` the write-side codecs need loaded."""
        out = []
        for kind, codec in (("compressor", self.compressor), ("encryptor", self.encryptor)):
            if codec is not None:
                out += [(kind, codec.name, rk, rid) for rk, rid in codec.resources_needed()]
        return out

    def _stale_key(self, frame: bytes, pos: int) -> bool:
        return self.encryptor is not None and self.encryptor.needs_reencrypt(frame[pos:])

    def reencode(self, frame: bytes, key: str | None = None) -> bytes | None:
        """A frame of the same value under today's codecs and primary key; None when current.

        Used by key rotation and by ``Memory.rewrite`` to compress old values.
        """
        stages, pos = self._trusted_stages(frame, key)
        header = frame[: pos - _TRAILER.size]
        if header == self._headers[True] and not self._stale_key(frame, pos):
            return None
        new = self.encode(self.decode(frame, key), key)
        new_stages, _ = read_header(new, key)
        if new_stages == stages and not self._stale_key(frame, pos):
            return None  # e.g. a value too small for the compressor
        return new


__all__ = ["MAGIC", "ByteCodec", "Pipeline", "Serializer", "parse_spec", "read_header"]
