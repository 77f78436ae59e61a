"""The zstd codec on its own: options, round-trips, declining, corrupt input, threads."""

from __future__ import annotations

import os
import threading

import pytest
import zstandard
from hivemem_zstd.codec import ZstdCodec
from hypothesis import given, settings
from hypothesis import strategies as st


def test_defaults() -> None:
    codec = ZstdCodec()
    assert (codec.level, codec.min_size, codec.max_output_size) == (3, 64, 64 * 1024 * 1024)
    assert codec.dictionary is None and codec.dictionary_ids == []
    assert codec.name == "zstd"


def test_options_from_strings() -> None:
    codec = ZstdCodec(level="9", min_size="128", max_output_size="2MiB")
    assert (codec.level, codec.min_size, codec.max_output_size) == (9, 128, 2 * 1024 * 1024)
    assert ZstdCodec(max_output_size="512k").max_output_size == 512 * 1024
    assert ZstdCodec(max_output_size="1G").max_output_size == 1024**3
    assert ZstdCodec(level="-5").level == -5


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"level": "fast"}, "level"),
        ({"level": 23}, "level"),
        ({"level": True}, "level"),
        ({"min_size": "-1"}, "min_size"),
        ({"min_size": "lots"}, "min_size"),
        ({"max_output_size": "0"}, "max_output_size"),
        ({"max_output_size": "64 parsecs"}, "max_output_size"),
        ({"dictionary": "abc"}, "dictionary"),
        ({"dictionary": "0"}, "dictionary"),
        ({"dictionary": str(2**32)}, "dictionary"),
        ({"dictionaries": [b"x"]}, "dictionaries"),
        ({"dictionaries": {1: b"not a dictionary"}}, "dictionaries"),
        ({"dict_dir": "/nonexistent/hivemem-zstd-dicts"}, "dict_dir"),
    ],
)
def test_bad_options_name_the_option(options: dict[str, object], named: str) -> None:
    with pytest.raises(ValueError, match=f"'{named}'"):
        ZstdCodec(**options)  # type: ignore[arg-type]


def test_declines_below_min_size_and_when_it_does_not_shrink() -> None:
    codec = ZstdCodec(min_size=64)
    assert codec.encode(b"a" * 63) is None
    assert codec.encode(b"a" * 64) is not None
    incompressible = os.urandom(4096)
    assert codec.encode(incompressible) is None


def test_compresses_and_writes_a_standard_frame_with_its_size() -> None:
    data = b'{"role":"user","content":"hello"}' * 200
    out = ZstdCodec(level=9).encode(data)
    assert out is not None and len(out) < len(data) // 10
    params = zstandard.get_frame_parameters(out)
    assert params.content_size == len(data)
    assert params.dict_id == 0
    # any zstd implementation reads it
    assert zstandard.ZstdDecompressor().decompress(out) == data


@settings(max_examples=200)
@given(data=st.binary(max_size=5000), level=st.sampled_from([-3, 1, 3, 9, 19]))
def test_round_trip_arbitrary_bytes(data: bytes, level: int) -> None:
    codec = ZstdCodec(level=level, min_size=0)
    out = codec.encode(data)
    if out is None:
        assert len(zstandard.ZstdCompressor(level=level).compress(data)) >= len(data)
    else:
        assert codec.decode(out) == data


@given(data=st.binary(min_size=200, max_size=2000).map(lambda b: b * 3))
def test_decode_rejects_every_truncation(data: bytes) -> None:
    codec = ZstdCodec(min_size=0)
    out = codec.encode(data)
    assert out is not None
    for cut in range(len(out)):
        with pytest.raises(ValueError):
            codec.decode(out[:cut])


def test_decode_rejects_trailing_data_and_non_frames() -> None:
    codec = ZstdCodec()
    out = codec.encode(b"x" * 1000)
    assert out is not None
    with pytest.raises(ValueError, match="corrupt zstd frame"):
        codec.decode(out + b"junk")
    with pytest.raises(ValueError, match="not a zstd frame"):
        codec.decode(b"definitely not zstd")
    with pytest.raises(ValueError, match="not a zstd frame"):
        codec.decode(b"")


def _streamed(data: bytes) -> bytes:
    """A frame whose header does not state its content size."""
    obj = zstandard.ZstdCompressor().compressobj()
    return obj.compress(data) + obj.flush()


def test_frames_without_content_size_decode_and_are_checked() -> None:
    data = b"conversation turn " * 5000
    frame = _streamed(data)
    assert zstandard.get_frame_parameters(frame).content_size == zstandard.CONTENTSIZE_UNKNOWN
    codec = ZstdCodec()
    assert codec.decode(frame) == data
    with pytest.raises(ValueError, match="truncated"):
        codec.decode(frame[:-3])
    with pytest.raises(ValueError, match="after the zstd frame"):
        codec.decode(frame + b"x" * 100)
    with pytest.raises(ValueError, match="max_output_size"):
        ZstdCodec(max_output_size=len(data) - 1).decode(frame)
    assert ZstdCodec(max_output_size=len(data)).decode(frame) == data


def test_max_output_size_is_inclusive_for_sized_frames() -> None:
    data = b"q" * 10_000
    frame = ZstdCodec().encode(data)
    assert frame is not None
    assert ZstdCodec(max_output_size=10_000).decode(frame) == data
    with pytest.raises(ValueError, match="would expand to 10000 bytes"):
        ZstdCodec(max_output_size=9_999).decode(frame)


def test_threads_share_one_codec() -> None:
    codec = ZstdCodec(level=5)
    payloads = [(f"thread {i} ".encode() * (50 + i)) for i in range(8)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(payloads))

    def work(payload: bytes) -> None:
        try:
            barrier.wait()
            for _ in range(300):
                out = codec.encode(payload)
                assert out is not None
                assert codec.decode(out) == payload
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_repr_shows_settings() -> None:
    assert repr(ZstdCodec(level=7)).startswith("ZstdCodec(level=7, min_size=64")
