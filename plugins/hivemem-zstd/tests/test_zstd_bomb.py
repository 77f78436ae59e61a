"""Decompression bombs: tiny frames that claim or expand to 1 GiB are refused cheaply."""

from __future__ import annotations

import resource
import struct
import tracemalloc
import zlib
from collections.abc import Callable

import pytest
import zstandard
from hivemem.errors import FrameError
from hivemem.pipeline import MAGIC, Pipeline
from hivemem.plugins import Plugins
from hivemem_zstd.codec import ZstdCodec

GiB = 1 << 30
MiB = 1 << 20


def _zeros_frame(total: int, *, state_size: bool) -> bytes:
    """A real zstd frame of ``total`` zero bytes, built without holding them in memory."""
    obj = zstandard.ZstdCompressor(level=1).compressobj(size=total if state_size else -1)
    chunk = bytes(MiB)
    parts = [obj.compress(chunk) for _ in range(total // MiB)]
    parts.append(obj.flush())
    return b"".join(parts)


def _lying_frame(claimed: int) -> bytes:
    """A hand-made frame whose header claims ``claimed`` bytes but holds one 128 KiB RLE block."""
    magic = struct.pack("<I", 0xFD2FB528)
    descriptor = bytes([0b1110_0000])  # 8-byte content size, single segment, no checksum
    block = struct.pack("<I", 1 | (1 << 1) | (128 * 1024) << 3)[:3] + b"\0"  # last, RLE
    return magic + descriptor + struct.pack("<Q", claimed) + block


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    return {
        "sized": _zeros_frame(GiB, state_size=True),
        "unsized": _zeros_frame(GiB, state_size=False),
        "lying": _lying_frame(4 * GiB),
    }


def _measure(fn: Callable[[], object]) -> tuple[BaseException | None, int, int]:
    """Run ``fn``; return (error, traced peak bytes, peak RSS growth in bytes).

    A bomb attacks memory, so that is what the tests bound (never time).
    """
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tracemalloc.start()
    error: BaseException | None = None
    try:
        fn()
    except BaseException as exc:
        error = exc
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before
    return error, peak, rss_growth


def test_bombs_are_tiny(bombs: dict[str, bytes]) -> None:
    assert all(len(b) < 64 * 1024 for b in bombs.values())
    assert zstandard.get_frame_parameters(bombs["sized"]).content_size == GiB
    assert (
        zstandard.get_frame_parameters(bombs["unsized"]).content_size
        == zstandard.CONTENTSIZE_UNKNOWN
    )


@pytest.mark.parametrize("kind", ["sized", "lying"])
def test_header_claiming_a_gigabyte_is_rejected_before_allocating(
    bombs: dict[str, bytes], kind: str
) -> None:
    codec = ZstdCodec()  # default max_output_size: 64 MiB
    error, peak, rss_growth = _measure(lambda: codec.decode(bombs[kind]))
    assert isinstance(error, ValueError)
    assert "would expand to" in str(error) and "max_output_size=67108864" in str(error)
    assert peak < MiB
    assert rss_growth < 32 * MiB


def test_unsized_gigabyte_stops_at_the_limit(bombs: dict[str, bytes]) -> None:
    codec = ZstdCodec(max_output_size=MiB)
    error, peak, rss_growth = _measure(lambda: codec.decode(bombs["unsized"]))
    assert isinstance(error, ValueError)
    assert "expands past max_output_size=1048576" in str(error)
    assert peak < 4 * MiB
    assert rss_growth < 64 * MiB


def test_unsized_gigabyte_with_default_limit(bombs: dict[str, bytes]) -> None:
    codec = ZstdCodec()
    error, peak, rss_growth = _measure(lambda: codec.decode(bombs["unsized"]))
    assert isinstance(error, ValueError)
    assert "expands past max_output_size=67108864" in str(error)
    assert peak < 80 * MiB  # the limit plus a few MiB, never the gigabyte
    assert rss_growth < 256 * MiB


def test_pipeline_turns_a_bomb_into_a_frame_error(
    plugins: Plugins, bombs: dict[str, bytes]
) -> None:
    # a well-formed hivemem frame (layout documented in hivemem.pipeline) around the bomb
    header = MAGIC + bytes([2]) + b"s\x04json" + b"c\x04zstd"
    payload = bombs["sized"]
    frame = header + struct.pack(">II", len(payload), zlib.crc32(payload)) + payload
    pipe = Pipeline("json", "zstd", plugins=plugins)
    error, peak, _ = _measure(lambda: pipe.decode(frame, key="bomb/1"))
    assert isinstance(error, FrameError)
    assert "bomb/1" in str(error)
    assert peak < 2 * MiB
