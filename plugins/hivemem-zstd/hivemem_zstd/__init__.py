"""hivemem-zstd: a Zstandard compressor for the hivemem value pipeline.

Turn it on by naming it as the compressor, with options in the query string::

    hivemem.open_memory("sqlite:///agent.db", compressor="zstd?level=9&min_size=64")

Values written before it was switched on keep reading back (frames name
their codecs). Trained dictionaries make small values much smaller:
``hivemem zstd train`` stores one in the memory itself and writers turn it on
with ``compressor="zstd?dictionary=ID"``; every reader loads it from the store
on demand. Dictionaries can also be given as files or bytes (options
``dict_dir``/``dictionaries``; :func:`train_dictionary`).
Importing this module is cheap: ``zstandard`` is imported when a codec is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hivemem.plugin import Register, hookimpl

if TYPE_CHECKING:
    from .codec import ZstdCodec

__version__ = "0.1.0"


def _zstd(**options: Any) -> ZstdCodec:
    from .codec import ZstdCodec

    return ZstdCodec(**options)


def train_dictionary(samples: list[bytes], size: int, *, level: int = 3) -> bytes:
    """Train a zstd dictionary of at most ``size`` bytes on ``samples`` (see ``dictionaries``)."""
    from .dictionaries import train_dictionary as _train

    return _train(samples, size, level=level)


@hookimpl
def hivemem_register_compressors(register: Register) -> None:
    """zstd"""
    register(
        "zstd",
        _zstd,
        description="Zstandard, levels -131072..22, trained dictionaries, bounded decompress",
    )


@hookimpl
def hivemem_register_commands(cli: Any) -> None:
    """``hivemem zstd train`` and ``hivemem zstd dictionaries``."""
    from .cli import zstd

    cli.add_command(zstd)


__all__ = [
    "__version__",
    "hivemem_register_commands",
    "hivemem_register_compressors",
    "train_dictionary",
]
