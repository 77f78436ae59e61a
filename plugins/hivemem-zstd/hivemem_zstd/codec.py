"""The ``zstd`` compressor: bounded, dictionary-aware Zstandard.

Payload format: one standard zstd frame (RFC 8878) with its content size in
the header and, when a trained dictionary was used, that dictionary's id.
Nothing hivemem-specific is added, so ``zstd -d -D dict`` can read a payload.

Trained dictionaries are codec resources of kind :data:`RESOURCE_KIND`
(``"zstd-dict"``) whose id is the dictionary id in decimal. They normally live
in the memory itself (``hivemem zstd train`` stores them with
``Memory.put_resource``): a payload that names a dictionary this codec has not
loaded makes ``decode`` raise :class:`~hivemem.errors.ResourceMissing`, the
Memory fetches the dictionary from the store, hands it to :meth:`ZstdCodec.add_resource`
and decodes again. Dictionaries can also be given as files or bytes (options
``dict_dir``/``dictionaries``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

import zstandard
from hivemem.plugin import Compressor, ResourceMissing

from . import dictionaries as _dicts
from .options import parse_int, parse_size

DEFAULT_LEVEL = 3
DEFAULT_MIN_SIZE = 64
DEFAULT_MAX_OUTPUT_SIZE = 64 * 1024 * 1024

#: the codec-resource kind of trained dictionaries (resource id: the dictionary id in decimal)
RESOURCE_KIND = "zstd-dict"

#: zstd's fastest negative level (``--fast=131072``) and strongest level
MIN_LEVEL = -(1 << 17)
MAX_LEVEL = zstandard.MAX_COMPRESSION_LEVEL

#: output piece size and input step when the frame does not state its size
_STREAM_CHUNK = 128 * 1024
_STREAM_INPUT_STEP = 64
#: zstd's own default limit on the decoding window (ZSTD_WINDOWLOG_LIMIT_DEFAULT)
_DEFAULT_WINDOW_LIMIT = 1 << 27


def _window_limit(max_output_size: int) -> int:
    """Largest decoding window to allow (zstd allocates it before producing output).

    At least 8 MiB (what zstd's levels up to 19 use), at most zstd's default
    limit of 128 MiB, and otherwise the power of two covering ``max_output_size``.
    """
    limit = 1 << 23
    while limit < max_output_size and limit < _DEFAULT_WINDOW_LIMIT:
        limit <<= 1
    return limit


class ZstdCodec(Compressor):
    """Zstandard compressor for the hivemem pipeline.

    Options (ints or strings, as they arrive from ``"zstd?level=9&min_size=64"``):

    * ``level`` -- compression level, default 3 (negative levels are zstd's ``--fast``).
    * ``min_size`` -- values shorter than this are not compressed (``encode``
      returns None and the frame records no compression); default 64 bytes.
    * ``max_output_size`` -- largest value ``decode`` will produce, default
      64 MiB; accepts ``"256MiB"``-style strings. Larger frames are rejected
      with ValueError before their output is allocated.
    * ``dictionary`` -- id of the dictionary to compress new values with
      (normally the newest one); unset, values are compressed without one.
      When it is not given by the two options below, :meth:`resources_needed`
      asks for it and the Memory loads it from the store when it opens.
    * ``dictionaries`` -- ``{dict_id: dictionary bytes}`` of trained dictionaries.
    * ``dict_dir`` -- a directory whose files are trained dictionaries.

    Every dictionary known to the codec -- from the options or loaded from the
    store with :meth:`add_resource` -- stays available for reading.

    Instances are safe to share between threads: zstd contexts are per thread.
    """

    name = "zstd"

    def __init__(
        self,
        level: int | str = DEFAULT_LEVEL,
        min_size: int | str = DEFAULT_MIN_SIZE,
        max_output_size: int | str = DEFAULT_MAX_OUTPUT_SIZE,
        dictionaries: Mapping[Any, bytes] | None = None,
        dict_dir: str | os.PathLike[str] | None = None,
        dictionary: int | str | None = None,
    ) -> None:
        self.level = parse_int("level", level, minimum=MIN_LEVEL, maximum=MAX_LEVEL)
        self.min_size = parse_size("min_size", min_size)
        self.max_output_size = parse_size("max_output_size", max_output_size, minimum=1)
        sources = []
        if dictionaries is not None:
            sources.append(_dicts.load_mapping(dictionaries))
        if dict_dir is not None and str(dict_dir) != "":
            sources.append(_dicts.load_directory(dict_dir))
        self._dict_bytes = _dicts.merge(sources)
        self.dictionary = _dicts.parse_dictionary_id(dictionary)
        self._dicts: dict[int, zstandard.ZstdCompressionDict] = {}
        self._dicts_lock = threading.Lock()
        self._window = _window_limit(self.max_output_size)
        self._local = threading.local()
        #: the write-side dictionary, precomputed once for all threads; None until loaded
        self._write_dict: zstandard.ZstdCompressionDict | None = None
        if self.dictionary is not None and self.dictionary in self._dict_bytes:
            self._write_dict = self._prepare_write_dict(self.dictionary)

    def __repr__(self) -> str:
        return (
            f"ZstdCodec(level={self.level}, min_size={self.min_size}, "
            f"max_output_size={self.max_output_size}, dictionary={self.dictionary}, "
            f"dictionaries={sorted(self._dict_bytes)})"
        )

    @property
    def dictionary_ids(self) -> list[int]:
        """Ids of every known dictionary: configured or loaded (all are usable for reading)."""
        return sorted(self._dict_bytes)

    # -- codec resources ---------------------------------------------------------
    def resources_needed(self) -> list[tuple[str, str]]:
        """``[("zstd-dict", id)]`` when the ``dictionary`` to write with is not loaded yet.

        The Memory loads what is listed here from the store before its first
        operation (and fails with ResourceMissing if the store lacks it).
        """
        if self.dictionary is None or self.dictionary in self._dict_bytes:
            return []
        return [(RESOURCE_KIND, str(self.dictionary))]

    def add_resource(self, resource_kind: str, resource_id: str, data: bytes) -> None:
        """Register the trained dictionary ``data`` as dictionary ``resource_id``.

        ``resource_kind`` must be ``"zstd-dict"`` and ``resource_id`` the
        decimal id in the dictionary's header; adding a dictionary already
        known is a no-op. Raises ValueError for another kind, a malformed id,
        bytes that are not a trained dictionary, an id that does not match the
        header, or a different dictionary under an id already known.
        """
        if resource_kind != RESOURCE_KIND:
            raise ValueError(
                f"zstd codec resources are of kind {RESOURCE_KIND!r}, not {resource_kind!r}"
            )
        if not isinstance(resource_id, str) or not resource_id.isdigit():
            raise ValueError(
                f"zstd dictionary resource id must be a decimal dictionary id, got {resource_id!r}"
            )
        dict_id = int(resource_id)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ValueError(f"zstd dictionary {dict_id} must be bytes, got {type(data).__name__}")
        data = bytes(data)
        try:
            actual = _dicts.dictionary_id(data)
        except ValueError as exc:
            raise ValueError(f"zstd dictionary resource {dict_id}: {exc}") from None
        if actual != dict_id:
            raise ValueError(
                f"zstd dictionary resource {dict_id} holds dictionary id {actual} in its header"
            )
        with self._dicts_lock:
            known = self._dict_bytes.get(dict_id)
            if known is not None and known != data:
                raise ValueError(
                    f"zstd dictionary {dict_id} is already known with different contents"
                )
            self._dict_bytes[dict_id] = data
        if dict_id == self.dictionary and self._write_dict is None:
            self._write_dict = self._prepare_write_dict(dict_id)

    # -- contexts --------------------------------------------------------------
    def _prepare_write_dict(self, dict_id: int) -> zstandard.ZstdCompressionDict:
        """Validate dictionary ``dict_id`` and precompute it for compressing at ``level``."""
        found = self._dictionary(dict_id)
        found.precompute_compress(level=self.level)
        return found

    def _dictionary(self, dict_id: int) -> zstandard.ZstdCompressionDict:
        found = self._dicts.get(dict_id)
        if found is None:
            with self._dicts_lock:
                found = self._dicts.get(dict_id)
                if found is None:
                    found = zstandard.ZstdCompressionDict(
                        self._dict_bytes[dict_id], dict_type=zstandard.DICT_TYPE_FULLDICT
                    )
                    self._dicts[dict_id] = found
        return found

    def _compressor(self) -> zstandard.ZstdCompressor:
        cctx: zstandard.ZstdCompressor | None = getattr(self._local, "cctx", None)
        if cctx is None:
            if self.dictionary is not None and self._write_dict is None:
                raise ResourceMissing(RESOURCE_KIND, str(self.dictionary))
            cctx = zstandard.ZstdCompressor(
                level=self.level,
                dict_data=self._write_dict,
                write_content_size=True,
                write_dict_id=True,
                write_checksum=False,
            )
            self._local.cctx = cctx
        return cctx

    def _decompressor(self, dict_id: int) -> zstandard.ZstdDecompressor:
        cache: dict[int, zstandard.ZstdDecompressor] | None = getattr(self._local, "dctx", None)
        if cache is None:
            cache = self._local.dctx = {}
        dctx = cache.get(dict_id)
        if dctx is None:
            if dict_id == 0:
                dctx = zstandard.ZstdDecompressor(max_window_size=self._window)
            else:
                if dict_id not in self._dict_bytes:
                    raise ResourceMissing(RESOURCE_KIND, str(dict_id))
                dctx = zstandard.ZstdDecompressor(
                    dict_data=self._dictionary(dict_id), max_window_size=self._window
                )
            cache[dict_id] = dctx
        return dctx

    # -- codec -----------------------------------------------------------------
    def encode(self, data: bytes) -> bytes | None:
        """Compress ``data``; None (store it uncompressed) below ``min_size`` or if no gain.

        Raises :class:`~hivemem.errors.ResourceMissing` when the ``dictionary``
        to write with has not been loaded (a Memory loads it when it opens).
        """
        if len(data) < self.min_size:
            return None
        out = self._compressor().compress(data)
        return out if len(out) < len(data) else None

    def decode(self, data: bytes) -> bytes:
        """Decompress one zstd frame, producing at most ``max_output_size`` bytes.

        Raises ValueError for a payload that is not a zstd frame, is corrupt or
        truncated, would expand past ``max_output_size`` (checked from the
        frame header before anything is allocated, or while streaming when the
        header does not state the size). A payload compressed with a
        dictionary this codec does not know raises
        :class:`~hivemem.errors.ResourceMissing` ``("zstd-dict", "<id>")``: a
        Memory then loads that dictionary from the store and decodes again.
        """
        try:
            params = zstandard.get_frame_parameters(data)
        except zstandard.ZstdError as exc:
            raise ValueError(f"not a zstd frame: {exc}") from None
        size = params.content_size
        if size == zstandard.CONTENTSIZE_ERROR:
            raise ValueError("corrupt zstd frame header")
        known = size != zstandard.CONTENTSIZE_UNKNOWN
        if known and size > self.max_output_size:
            raise ValueError(
                f"zstd frame would expand to {size} bytes, past "
                f"max_output_size={self.max_output_size}"
            )
        if params.window_size > self._window:
            raise ValueError(
                f"zstd frame needs a {params.window_size}-byte window, more than the "
                f"{self._window} bytes allowed with max_output_size={self.max_output_size}"
            )
        dctx = self._decompressor(params.dict_id)
        if not known:
            return self._decode_streaming(dctx, data)
        try:
            return dctx.decompress(data, allow_extra_data=False)
        except zstandard.ZstdError as exc:
            raise ValueError(f"corrupt zstd frame: {exc}") from None

    def needs_recompress(self, data: bytes) -> bool:
        """True when ``data`` was not compressed with the configured ``dictionary`` (or none).

        The compressor's counterpart of an encryptor's ``needs_reencrypt``: a
        rewrite pass can use it to move values off an old dictionary.
        """
        try:
            dict_id = zstandard.get_frame_parameters(data).dict_id
        except zstandard.ZstdError:
            return True
        return dict_id != (self.dictionary or 0)

    def _decode_streaming(self, dctx: zstandard.ZstdDecompressor, data: bytes) -> bytes:
        """Decompress a frame of unstated size, stopping as soon as it passes the limit.

        Input is fed in small slices: one zstd block expands to at most 128 KiB
        and takes at least a few bytes, so the output of one step is bounded
        and the limit is overshot by at most a few MiB, never by the expansion.
        """
        dobj = dctx.decompressobj(write_size=_STREAM_CHUNK)
        chunks: list[bytes] = []
        total = 0
        pos = 0
        try:
            while pos < len(data) and not dobj.eof:
                chunk = dobj.decompress(data[pos : pos + _STREAM_INPUT_STEP])
                pos += _STREAM_INPUT_STEP
                total += len(chunk)
                if total > self.max_output_size:
                    raise ValueError(
                        f"zstd frame expands past max_output_size={self.max_output_size}"
                    )
                chunks.append(chunk)
        except zstandard.ZstdError as exc:
            raise ValueError(f"corrupt zstd frame: {exc}") from None
        if not dobj.eof:
            raise ValueError("truncated zstd frame")
        if dobj.unused_data or pos < len(data):
            raise ValueError("unexpected data after the zstd frame")
        return b"".join(chunks)


__all__ = [
    "DEFAULT_LEVEL",
    "DEFAULT_MAX_OUTPUT_SIZE",
    "DEFAULT_MIN_SIZE",
    "RESOURCE_KIND",
    "ZstdCodec",
]
