"""Trained zstd dictionaries: training, loading and validation.

A trained dictionary carries its own 32-bit id in its header; zstd writes that
id into every frame compressed with it, so a reader knows which dictionary a
payload needs without any hivemem-side bookkeeping. Small values -- the 100 B
to 2 KB records agent memory is mostly made of -- compress several times
better with a dictionary trained on their kind than without one.

Dictionaries are normally stored in the memory (codec resource ``zstd-dict``,
see :mod:`hivemem_zstd.codec`); the loaders here serve the optional
``dictionaries`` and ``dict_dir`` options.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import zstandard

#: the first four bytes of a trained (non raw-content) zstd dictionary
DICT_MAGIC = b"\x37\xa4\x30\xec"

#: smallest dictionary zstd accepts to train
MIN_DICT_SIZE = 256

#: least sample input to train on (zstd's trainer misbehaves on a few bytes)
MIN_SAMPLES = 8
MIN_SAMPLE_BYTES = 1024


def dictionary_id(data: bytes) -> int:
    """The id stored in a trained dictionary's header; ValueError if ``data`` is not one."""
    if len(data) < 8 or data[:4] != DICT_MAGIC:
        raise ValueError("not a trained zstd dictionary (bad magic)")
    (dict_id,) = struct.unpack_from("<I", data, 4)
    if dict_id == 0:
        raise ValueError("zstd dictionary has id 0, which frames cannot reference")
    return int(dict_id)


def train_dictionary(samples: list[bytes], size: int, *, level: int = 3) -> bytes:
    """Train a zstd dictionary of at most ``size`` bytes on ``samples``; return its bytes.

    ``samples`` should be real values of one kind (entities, Q-table rows, ...):
    a few hundred to a few thousand of them, totalling ten to a hundred times
    ``size`` (at least 8 samples and 1 KiB). ``level`` is the compression
    level the dictionary is tuned for.
    The returned bytes start with :data:`DICT_MAGIC` and carry a content-derived
    dictionary id (see :func:`dictionary_id`). Raises ValueError when the
    samples are too few or too small to train on.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < MIN_DICT_SIZE:
        raise ValueError(f"dictionary size must be an integer >= {MIN_DICT_SIZE}, got {size!r}")
    clean = [bytes(sample) for sample in samples if len(sample) > 0]
    total = sum(len(sample) for sample in clean)
    if len(clean) < MIN_SAMPLES or total < MIN_SAMPLE_BYTES:
        raise ValueError(
            f"need at least {MIN_SAMPLES} non-empty samples and {MIN_SAMPLE_BYTES} bytes to "
            f"train a zstd dictionary, got {len(clean)} samples of {total} bytes in all"
        )
    try:
        trained = zstandard.train_dictionary(size, clean, level=level)
    except zstandard.ZstdError as exc:
        raise ValueError(
            f"cannot train a {size}-byte zstd dictionary on {len(clean)} samples "
            f"({total} bytes in all; use more samples or a smaller size): {exc}"
        ) from None
    return trained.as_bytes()


def _as_id(option: str, raw: Any) -> int:
    if isinstance(raw, bool):
        raise ValueError(f"zstd option {option!r}: dictionary id must be an integer, got {raw!r}")
    try:
        dict_id = int(raw.strip(), 0) if isinstance(raw, str) else int(raw)
    except (TypeError, ValueError):
        raise ValueError(
            f"zstd option {option!r}: dictionary id must be an integer, got {raw!r}"
        ) from None
    if not 0 < dict_id < 2**32:
        raise ValueError(f"zstd option {option!r}: dictionary id {dict_id} is out of range")
    return dict_id


def load_mapping(dictionaries: Mapping[Any, Any]) -> dict[int, bytes]:
    """Validate a ``{dict_id: bytes}`` mapping (ids may be ints or digit strings)."""
    if not isinstance(dictionaries, Mapping):
        raise ValueError(
            "zstd option 'dictionaries' must be a mapping of dictionary id to dictionary bytes"
        )
    out: dict[int, bytes] = {}
    for raw_id, data in dictionaries.items():
        dict_id = _as_id("dictionaries", raw_id)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ValueError(
                f"zstd option 'dictionaries': entry {dict_id} must be bytes, "
                f"got {type(data).__name__}"
            )
        data = bytes(data)
        try:
            actual = dictionary_id(data)
        except ValueError as exc:
            raise ValueError(f"zstd option 'dictionaries': entry {dict_id}: {exc}") from None
        if actual != dict_id:
            raise ValueError(
                f"zstd option 'dictionaries': entry {dict_id} holds dictionary id {actual}"
            )
        out[dict_id] = data
    return out


def load_directory(path: str | os.PathLike[str]) -> dict[int, bytes]:
    """Load every regular, non-hidden file of ``path`` as a trained dictionary.

    Each file's dictionary id is read from its header, so file names are free
    (``hivemem zstd train --out`` suggests ``<kind>-<id>.zdict``). A file that
    is not a trained dictionary, or two files with the same id and different
    contents, raise ValueError naming the files.
    """
    directory = Path(path)
    if not directory.is_dir():
        raise ValueError(f"zstd option 'dict_dir': {str(directory)!r} is not a directory")
    out: dict[int, bytes] = {}
    origin: dict[int, Path] = {}
    for file in sorted(directory.iterdir()):
        if file.name.startswith(".") or not file.is_file():
            continue
        data = file.read_bytes()
        try:
            dict_id = dictionary_id(data)
        except ValueError as exc:
            raise ValueError(f"zstd option 'dict_dir': {str(file)!r}: {exc}") from None
        if dict_id in out and out[dict_id] != data:
            raise ValueError(
                f"zstd option 'dict_dir': {str(origin[dict_id])!r} and {str(file)!r} are "
                f"different dictionaries with the same id {dict_id}"
            )
        out[dict_id] = data
        origin[dict_id] = file
    return out


def merge(sources: Iterable[dict[int, bytes]]) -> dict[int, bytes]:
    """Union of several ``{id: bytes}`` maps; ValueError if one id maps to two dictionaries."""
    out: dict[int, bytes] = {}
    for source in sources:
        for dict_id, data in source.items():
            if dict_id in out and out[dict_id] != data:
                raise ValueError(
                    f"zstd dictionaries: id {dict_id} is given twice with different contents"
                )
            out[dict_id] = data
    return out


def parse_dictionary_id(raw: Any) -> int | None:
    """The ``dictionary`` option: an id, or None for ``None``/``""``/``"none"``."""
    if raw is None or (isinstance(raw, str) and raw.strip().lower() in ("", "none")):
        return None
    return _as_id("dictionary", raw)


__all__ = [
    "DICT_MAGIC",
    "MIN_DICT_SIZE",
    "dictionary_id",
    "load_directory",
    "load_mapping",
    "merge",
    "parse_dictionary_id",
    "train_dictionary",
]
