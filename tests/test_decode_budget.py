"""The json serializer's structure budget: decoding is bounded in memory, not only in bytes.

A zstd frame of a few KB can expand to ~60 MiB of ``[[],[],...]`` -- under the
compressor's ``max_output_size`` -- and every two-byte ``[]`` becomes a 56-byte
Python list. The json options ``max_containers`` and ``max_size`` refuse such a
value before :mod:`json` parses it, and refuse to write one readers would refuse.
"""

from __future__ import annotations

import asyncio
import struct
import tracemalloc
import zlib
from typing import Any

import hivemem
import pytest
import zstandard
from hivemem.builtin.codecs import DEFAULT_MAX_CONTAINERS, DEFAULT_MAX_SIZE, JsonSerializer
from hivemem.errors import ConfigError, DecodeLimitExceeded, FrameError, SerializationError
from hivemem.pipeline import MAGIC, Pipeline
from hivemem.plugins import Plugins
from hivemem.testing.codec_suite import basic_values, extended_values
from hypothesis import given, settings

MiB = 1 << 20


def _containers(data: bytes) -> int:
    """What the budget counts: the ``[`` and ``{`` bytes of a JSON text."""
    return data.count(b"[") + data.count(b"{")


def _python_containers(value: Any) -> int:
    """Containers the decoded value really holds (lists, dicts, tuples, sets)."""
    if isinstance(value, dict):
        return 1 + sum(_python_containers(k) + _python_containers(v) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return 1 + sum(_python_containers(v) for v in value)
    return 0


def _empty_lists_bomb(total: int) -> bytes:
    """A real zstd frame of ``[[],[],...]``, ``total`` bytes once decompressed.

    Built in 1 MiB steps so the test never holds the whole text.
    """
    count = (total - 2) // 3 + 1  # "[" + "[],"*(count-1) + "[]" + "]"
    size = 1 + 3 * (count - 1) + 2 + 1
    obj = zstandard.ZstdCompressor(level=19).compressobj(size=size)
    parts = [obj.compress(b"[")]
    step = MiB // 3
    left = count - 1
    while left:
        n = min(step, left)
        parts.append(obj.compress(b"[]," * n))
        left -= n
    parts.append(obj.compress(b"[]]"))
    parts.append(obj.flush())
    return b"".join(parts)


def _frame(payload: bytes) -> bytes:
    """A hivemem frame (layout documented in :mod:`hivemem.pipeline`): json, then zstd."""
    header = MAGIC + bytes([2]) + b"s\x04json" + b"c\x04zstd"
    return header + struct.pack(">II", len(payload), zlib.crc32(payload)) + payload


# -- the bomb -----------------------------------------------------------------------------


def test_empty_lists_bomb_is_refused_before_parsing(hivemem_plugins: Plugins) -> None:
    payload = _empty_lists_bomb(60 * MiB)
    params = zstandard.get_frame_parameters(payload)
    assert params.content_size >= 60 * MiB - 3  # expands to ~60 MiB: under max_output_size
    assert len(payload) < 16 * 1024  # from a few KB
    frame = _frame(payload)
    pipe = Pipeline("json", "zstd", plugins=hivemem_plugins)

    tracemalloc.start()
    try:
        with pytest.raises(DecodeLimitExceeded) as info:
            pipe.decode(frame, "k/id")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert isinstance(info.value, FrameError)
    assert info.value.key == "k/id" and "'k/id'" in str(info.value)
    assert "max_containers is 1000000" in str(info.value)
    assert "holds 20971521 containers" in str(info.value)  # 20971520 [] and the outer list
    # The decompressed text itself is 60 MiB; before the budget, json.loads went on to
    # build 20,971,520 lists: ~1.41 GiB traced peak (~1.4 GB RSS growth) for this frame.
    assert peak < 200 * MiB, f"peak {peak} bytes"


# -- options ------------------------------------------------------------------------------


def test_defaults() -> None:
    s = JsonSerializer()
    assert (s.max_containers, s.max_size) == (DEFAULT_MAX_CONTAINERS, DEFAULT_MAX_SIZE)
    assert (DEFAULT_MAX_CONTAINERS, DEFAULT_MAX_SIZE) == (1_000_000, 64 * MiB)


def test_options_from_spec_string(hivemem_plugins: Plugins) -> None:
    pipe = Pipeline("json?max_containers=5000&max_size=70000", plugins=hivemem_plugins)
    assert isinstance(pipe.serializer, JsonSerializer)
    assert pipe.serializer.max_containers == 5000
    assert pipe.serializer.max_size == 70000


def test_options_from_mapping(hivemem_plugins: Plugins) -> None:
    pipe = Pipeline(
        "json", options={"json": {"max_containers": "7", "max_size": 900}}, plugins=hivemem_plugins
    )
    assert isinstance(pipe.serializer, JsonSerializer)
    assert (pipe.serializer.max_containers, pipe.serializer.max_size) == (7, 900)
    with pytest.raises(SerializationError, match="max_containers is 7") as info:
        pipe.encode([[]] * 7, "k/big")
    assert "'k/big'" in str(info.value)
    assert pipe.decode(pipe.encode([[]] * 6, "k/ok"), "k/ok") == [[]] * 6


@pytest.mark.parametrize("option", ["max_containers", "max_size"])
@pytest.mark.parametrize("bad", ["0", "-5", "many", "", "1.5", None])
def test_invalid_option_is_named(hivemem_plugins: Plugins, option: str, bad: Any) -> None:
    with pytest.raises(ValueError, match=option):
        JsonSerializer(**{option: bad})
    with pytest.raises(ConfigError, match=option):
        Pipeline("json", options={"json": {option: bad}}, plugins=hivemem_plugins)
    if bad is not None:
        with pytest.raises(ConfigError, match=option):
            Pipeline(f"json?{option}={bad}", plugins=hivemem_plugins)


# -- the boundary -------------------------------------------------------------------------


def test_just_under_the_container_budget_decodes_just_over_is_refused() -> None:
    value = [[] for _ in range(4999)]  # 5000 containers in 14998 bytes
    data = JsonSerializer().dumps(value)
    assert _containers(data) == 5000

    at = JsonSerializer(max_containers=5000)
    assert at.dumps(value) == data
    assert at.loads(data) == value

    under = JsonSerializer(max_containers=4999)
    with pytest.raises(DecodeLimitExceeded) as info:
        under.loads(data)
    assert str(info.value) == (
        "json value holds 5000 containers; the json option max_containers is 4999"
    )
    with pytest.raises(SerializationError, match=r"holds 5000 containers.*max_containers is 4999"):
        under.dumps(value)


def test_just_under_the_size_budget_decodes_just_over_is_refused() -> None:
    value = {"text": "x" * 1000}
    data = JsonSerializer().dumps(value)

    at = JsonSerializer(max_size=len(data))
    assert at.dumps(value) == data
    assert at.loads(data) == value

    under = JsonSerializer(max_size=len(data) - 1)
    with pytest.raises(DecodeLimitExceeded) as info:
        under.loads(data)
    assert str(info.value) == (
        f"json value is {len(data)} bytes; the json option max_size is {len(data) - 1}"
    )
    with pytest.raises(SerializationError, match="max_size"):
        under.dumps(value)


def test_brackets_inside_strings_count_conservatively() -> None:
    value = {"text": "[" * 50}  # one real container, 51 counted
    data = JsonSerializer().dumps(value)
    with pytest.raises(DecodeLimitExceeded, match="holds 51 containers"):
        JsonSerializer(max_containers=50).loads(data)
    assert JsonSerializer(max_containers=51).loads(data) == value


class _Uncountable(bytes):
    """Bytes whose count() must not be called."""

    def count(self, *args: Any) -> int:  # type: ignore[override]
        raise AssertionError("counted a value too short to exceed the budget")


def test_values_no_longer_than_the_budget_are_not_counted() -> None:
    data = _Uncountable(JsonSerializer().dumps([[[]]] * 10))  # 30 containers, 41 bytes
    assert JsonSerializer(max_containers=len(data)).loads(data) == [[[]]] * 10
    with pytest.raises(AssertionError, match="counted"):
        JsonSerializer(max_containers=len(data) - 1).loads(data)


@settings(max_examples=200, deadline=None)
@given(extended_values)
def test_round_trip_unchanged_within_budget(value: Any) -> None:
    data = JsonSerializer().dumps(value)
    counted = _containers(data)
    assert _python_containers(value) <= counted  # the count never under-counts
    within = JsonSerializer(max_containers=max(counted, 1), max_size=len(data))
    assert within.dumps(value) == data
    assert within.loads(data) == value
    if counted > 1:
        over = JsonSerializer(max_containers=counted - 1)
        with pytest.raises(DecodeLimitExceeded):
            over.loads(data)
        with pytest.raises(SerializationError):
            over.dumps(value)


@settings(max_examples=100, deadline=None)
@given(basic_values)
def test_plain_json_round_trips_under_default_budget(value: Any) -> None:
    s = JsonSerializer()
    assert s.loads(s.dumps(value)) == value


# -- through the Memory -------------------------------------------------------------------


def test_memory_refuses_to_write_and_read_past_the_budget(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path}/mem.db"
    strict = {"json": {"max_containers": 10}}
    big = [[i] for i in range(20)]  # 21 containers

    async def main() -> None:
        async with hivemem.open_memory(url, namespace="t", codec_options=strict) as mem:
            with pytest.raises(SerializationError, match="max_containers is 10") as info:
                await mem.put("doc", "big", big)
            assert "doc/big" in str(info.value)
            assert await mem.get("doc", "big", "absent") == "absent"  # nothing was stored
            small = {"a": [1, 2], "b": {"c": []}}
            await mem.put("doc", "small", small)
            assert await mem.get("doc", "small") == small

        # a writer with the default budget stores it; the strict reader refuses it
        async with hivemem.open_memory(url, namespace="t") as mem:
            await mem.put("doc", "big", big)
            assert await mem.get("doc", "big") == big
        async with hivemem.open_memory(url, namespace="t", codec_options=strict) as mem:
            with pytest.raises(DecodeLimitExceeded, match="max_containers is 10") as refused:
                await mem.get("doc", "big")
            assert "doc/big" in str(refused.value)

    asyncio.run(main())


def test_oversize_write_is_refused_before_the_frame_is_built() -> None:
    """A value past json's max_size costs one JSON text, not text + bytes + frame."""
    import tracemalloc

    from hivemem.errors import SerializationError
    from hivemem.pipeline import Pipeline

    value = "x" * (96 * 1024 * 1024)
    pipeline = Pipeline()
    tracemalloc.start()
    try:
        with pytest.raises(SerializationError, match="max_size") as info:
            pipeline.encode(value, "doc/big")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "doc/big" in str(info.value)
    assert peak < 1.5 * len(value), f"{peak / 2**20:.0f} MiB traced for a 96 MiB value"
