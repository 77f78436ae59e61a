"""Frames: self-describing, read by header, loud on damage."""

from __future__ import annotations

import datetime as dt
import struct
import uuid
import zlib
from decimal import Decimal

import attrs
import pytest
from hivemem.errors import CodecNotInstalled, FrameError, SerializationError, UntrustedCodec
from hivemem.pipeline import MAGIC, Pipeline, read_header
from hivemem.plugins import make_plugins
from hypothesis import given
from hypothesis import strategies as st


def test_header_names_every_applied_stage():
    frame = Pipeline(compressor="zlib?min_size=0").encode({"a": "x" * 500}, "k/1")
    assert frame.startswith(MAGIC)
    stages, _ = read_header(frame)
    assert stages == [("serializer", "json"), ("compressor", "zlib")]
    small = Pipeline(compressor="zlib").encode({"a": 1}, "k/2")  # below min_size: declined
    assert read_header(small)[0] == [("serializer", "json")]


def test_reading_follows_the_frame_within_the_codecs_the_reader_trusts():
    old = Pipeline(compressor="zlib?min_size=0").encode(["old"] * 100)
    with pytest.raises(UntrustedCodec, match="compressor 'zlib'"):
        Pipeline().decode(old, "doc/1")  # zlib is neither written nor allowed
    migrating = Pipeline(serializer="pickle", read_codecs=["zlib", "json"])
    assert migrating.decode(old) == ["old"] * 100  # decoded by the header, not the config
    pickled = migrating.encode({"s": {1, 2}})
    with pytest.raises(UntrustedCodec, match="serializer 'pickle'") as info:
        Pipeline().decode(pickled, "doc/2")
    assert info.value.key == "doc/2" and info.value.codec == "pickle"
    assert Pipeline(read_codecs="pickle").decode(pickled) == {"s": {1, 2}}  # said in so many words
    plain = Pipeline().encode({"a": 1})
    assert Pipeline(compressor="zlib").decode(plain) == {"a": 1}  # fewer stages: still trusted


@pytest.mark.parametrize(
    "damage",
    [
        lambda f: f[:-1],  # truncated payload
        lambda f: f[:5],  # truncated header
        lambda f: f[:-3] + bytes([f[-3] ^ 0x40]) + f[-2:],  # flipped bit
        lambda f: b"XX" + f[2:],  # wrong magic
        lambda f: f[:2] + b"\x09" + f[3:],  # future version
        lambda f: b"",
    ],
)
def test_damaged_frames_raise_frame_error_naming_the_key(damage):
    frame = Pipeline().encode({"important": True})
    with pytest.raises(FrameError) as info:
        Pipeline().decode(damage(frame), "user/u1")
    assert "user/u1" in str(info.value)


def _forge(stages: list[tuple[bytes, str]], payload: bytes) -> bytes:
    head = MAGIC + bytes([len(stages)])
    for tag, name in stages:
        head += tag + bytes([len(name)]) + name.encode()
    return head + struct.pack(">II", len(payload), zlib.crc32(payload)) + payload


def test_unknown_codec_names_codec_key_and_package():
    frame = _forge([(b"s", "json"), (b"c", "zstd")], b"whatever")
    plugins = make_plugins(blocked=["zstd"])
    with pytest.raises(UntrustedCodec):
        Pipeline(plugins=plugins).decode(frame, "doc/7")
    with pytest.raises(CodecNotInstalled) as info:
        Pipeline(plugins=plugins, read_codecs=["zstd"]).decode(frame, "doc/7")
    msg = str(info.value)
    assert "'zstd'" in msg and "doc/7" in msg and "pip install hivemem-zstd" in msg
    frame = _forge([(b"s", "cbor9")], b"x")
    with pytest.raises(CodecNotInstalled, match="serializer 'cbor9'"):
        Pipeline(read_codecs=["cbor9"]).decode(frame, "doc/8")


def test_codec_failure_is_a_frame_error_not_garbage():
    frame = _forge([(b"s", "json"), (b"c", "zlib")], b"definitely not deflate")
    with pytest.raises(FrameError, match="compressor 'zlib' cannot decode"):
        Pipeline(compressor="zlib").decode(frame, "k")
    frame = _forge([(b"s", "json")], b"{not json")
    with pytest.raises(FrameError, match="serializer 'json'"):
        Pipeline().decode(frame, "k")


def test_zlib_bomb_is_bounded():
    bomb = zlib.compress(b"\0" * (50 * 1024 * 1024), 9)
    frame = _forge([(b"s", "json"), (b"c", "zlib")], bomb)
    reader = Pipeline(compressor="zlib", options={"zlib": {"max_output_size": 1024 * 1024}})
    with pytest.raises(FrameError):
        reader.decode(frame, "bomb")


# the serializer keeps the UTC offset, not a zone name (documented)
fixed_offsets = st.builds(
    dt.timezone,
    st.timedeltas(min_value=dt.timedelta(hours=-23), max_value=dt.timedelta(hours=23)),
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
    | st.datetimes(timezones=st.none() | fixed_offsets)
    | st.dates()
    | st.uuids()
    | st.decimals(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.frozensets(st.integers() | st.text(), max_size=4)
        | st.dictionaries(st.text() | st.integers(), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_json_serializer_round_trips_documented_types(value):
    pipe = Pipeline()
    assert pipe.decode(pipe.encode(value)) == value


def test_json_serializer_refuses_objects_clearly():
    @attrs.define
    class Point:
        x: int

    with pytest.raises(SerializationError, match=r"Point.*attrs\.asdict"):
        Pipeline().encode(Point(1), "pt/1")
    with pytest.raises(SerializationError, match="object"):
        Pipeline().encode(object())


def test_user_dicts_cannot_forge_tags():
    value = {"__hm__": "datetime", "v": "2020-01-01T00:00:00"}
    assert Pipeline().decode(Pipeline().encode(value)) == value
    mixed = {1: "int key", "1": "str key", (1, 2): "tuple key"}
    assert Pipeline().decode(Pipeline().encode(mixed)) == mixed
    special = [
        float("inf"),
        dt.timedelta(days=2, microseconds=5),
        Decimal("1.10"),
        uuid.UUID(int=7),
    ]
    assert Pipeline().decode(Pipeline().encode(special)) == special
