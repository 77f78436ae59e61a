"""Codec and pipeline conformance suites.

:class:`CodecSuite` checks one serializer, compressor or encryptor::

    from hivemem.testing import CodecSuite

    class TestZstd(CodecSuite):
        @pytest.fixture
        def codec_kind(self):
            return "compressor"

        @pytest.fixture
        def codec_name(self):
            return "zstd"

Values round-trip through a :class:`~hivemem.pipeline.Pipeline` using the
codec (hypothesis); truncated, bit-flipped and foreign frames raise
:class:`~hivemem.errors.FrameError` naming the key, never garbage; a
compressor's output is bounded (a 100+ MB bomb fails without allocating the
expansion); a serializer refuses what it cannot store with
:class:`~hivemem.errors.SerializationError`.

:class:`PipelineCombinationSuite` round-trips values through every
installed (serializer, compressor, encryptor) combination and reads each
frame back under every other combination: reading follows the frame.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import itertools
import math
import tracemalloc
import uuid
from collections.abc import Callable
from typing import Any, ClassVar

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hivemem.errors import (
    CodecNotInstalled,
    DecryptionError,
    FrameError,
    SerializationError,
    UnencryptedFrame,
    UntrustedCodec,
)
from hivemem.pipeline import Pipeline, read_header
from hivemem.plugins import Plugins, make_plugins

from .helpers import build_frame, missing_fixture

__all__ = [
    "NOT_FOR_COMPRESSORS",
    "NOT_FOR_ENCRYPTORS",
    "NOT_FOR_SERIALIZERS",
    "CodecSuite",
    "PipelineCombinationSuite",
    "basic_values",
    "extended_values",
    "pipeline_combinations",
]

KEY = "hmkit:codec/key\x00é"
MiB = 1024 * 1024

# -- value strategies ----------------------------------------------------------------------

_basic_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
#: values every serializer must round-trip: JSON's data model with 64-bit ints
basic_values = st.recursive(
    _basic_scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)

_offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda minutes: dt.timezone(dt.timedelta(minutes=minutes))
)
_hashables = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=10)
    | st.binary(max_size=10)
)
_hashable_keys = _hashables | st.tuples(_hashables, _hashables)
_extended_scalars = (
    _basic_scalars
    | st.integers()
    | st.floats(allow_nan=False)
    | st.binary(max_size=40)
    | st.datetimes()
    | st.datetimes(timezones=_offsets)
    | st.dates()
    | st.times()
    | st.times(timezones=_offsets)
    | st.timedeltas()
    | st.decimals(allow_nan=False)
    | st.uuids()
)
#: the json serializer's documented types (see :mod:`hivemem.builtin.codecs`), nested
extended_values = st.recursive(
    _extended_scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        | st.dictionaries(_hashable_keys, inner, max_size=4)
        | st.sets(_hashables, max_size=4)
        | st.frozensets(_hashables, max_size=4)
    ),
    max_leaves=16,
)


def _same_types(a: Any, b: Any) -> bool:
    """Equal values whose containers and tagged scalars kept their exact types."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same_types(v, b[k]) for k, v in a.items())
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same_types(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@attrs.define
class _AttrsThing:
    x: int = 1


class _DictSub(dict):  # type: ignore[type-arg]
    """A dict subclass: comes back as (at least) a dict."""


@dataclasses.dataclass
class _DataThing:
    x: int = 1


def _corrupt_variants(frame: bytes) -> list[bytes]:
    """Every single-bit (0x01) and whole-byte (0xFF) flip of ``frame``."""
    out = []
    for i in range(len(frame)):
        for mask in (0x01, 0xFF):
            out.append(frame[:i] + bytes([frame[i] ^ mask]) + frame[i + 1 :])
    return out


class _Canary:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        import pathlib

        return (pathlib.Path(self.path).touch, ())


def _pickle_canary(path: Any) -> bytes:
    """A pickle that creates ``path`` when unpickled (what an attacker would store)."""
    import pickle

    return pickle.dumps(_Canary(str(path)))


def _expect_frame_error(pipeline: Pipeline, frame: bytes, what: str) -> FrameError:
    try:
        value = pipeline.decode(frame, key=KEY)
    except FrameError as exc:
        assert exc.key == KEY, f"{what}: FrameError does not name the key"
        assert repr(KEY) in str(exc), f"{what}: message does not name the key"
        return exc
    raise AssertionError(f"{what}: decoded to {value!r} instead of raising FrameError")


# -- CodecSuite ----------------------------------------------------------------------------


class CodecSuite:
    """Conformance tests for one codec; subclass and set ``codec_kind`` and ``codec_name``."""

    #: hypothesis examples per property
    max_examples: ClassVar[int] = 60
    #: serializers: round-trip the json serializer's documented extra types too
    extended_types: ClassVar[bool] = True
    #: serializers: True for serializers (like pickle) that store arbitrary objects
    serializes_arbitrary_objects: ClassVar[bool] = False
    #: compressors: size of the decompression bomb and the output bound set for it
    bomb_size: ClassVar[int] = 128 * MiB
    bomb_output_limit: ClassVar[int] = 1 * MiB

    # -- fixtures the author provides / may override ---------------------------------
    @pytest.fixture
    def codec_kind(self) -> str:
        """``"serializer"``, ``"compressor"`` or ``"encryptor"``. Subclasses provide it."""
        missing_fixture(type(self), "codec_kind")

    @pytest.fixture
    def codec_name(self) -> str:
        """The registered codec name. Subclasses provide it."""
        missing_fixture(type(self), "codec_name")

    @pytest.fixture
    def codec_options(self) -> dict[str, Any]:
        """Keyword options for the codec factory (encryption keys ...)."""
        return {}

    @pytest.fixture
    def codec(
        self,
        codec_kind: str,
        codec_name: str,
        codec_options: dict[str, Any],
        hivemem_plugins: Plugins,
    ) -> Any:
        """An instance of the codec, made through the plugin registry."""
        return hivemem_plugins.registry(codec_kind).get(codec_name).factory(**codec_options)

    @pytest.fixture
    def make_pipeline(
        self,
        codec_kind: str,
        codec_name: str,
        codec_options: dict[str, Any],
        hivemem_plugins: Plugins,
    ) -> Callable[..., Pipeline]:
        """``make(**extra_codec_options)``: a Pipeline whose ``codec_kind`` stage is the codec."""
        if codec_kind not in ("serializer", "compressor", "encryptor"):
            raise ValueError(f"codec_kind must be serializer/compressor/encryptor: {codec_kind!r}")

        def make(
            *, read_codecs: tuple[str, ...] = (), accept_plaintext: bool = False, **extra: Any
        ) -> Pipeline:
            stages = {"serializer": "json", "compressor": "none", "encryptor": "none"}
            stages[codec_kind] = codec_name
            return Pipeline(
                **stages,
                options={codec_name: {**codec_options, **extra}},
                plugins=hivemem_plugins,
                read_codecs=read_codecs,
                accept_plaintext=accept_plaintext,
            )

        return make

    @pytest.fixture
    def pipeline(self, make_pipeline: Callable[..., Pipeline]) -> Pipeline:
        """The pipeline with the codec under test and default options."""
        return make_pipeline()

    @pytest.fixture
    def compression_bomb(self, codec: Any, codec_kind: str) -> bytes:
        """A compressor payload that expands to :attr:`bomb_size` bytes of zeros."""
        if codec_kind != "compressor":
            pytest.skip("only compressors decompress")
        payload = codec.encode(bytes(self.bomb_size))
        assert payload is not None, "compressor declined a block of zeros"
        return bytes(payload)

    def _values(self, codec_kind: str) -> st.SearchStrategy[Any]:
        if codec_kind == "serializer" and self.extended_types:
            return extended_values
        return basic_values

    def _sample(self, codec_kind: str) -> Any:
        """A value whose frame carries the codec's stage (compressible, container)."""
        return {"text": "hivemem " * 200, "n": list(range(50)), "nested": {"k": [1.5, None]}}

    # -- all codecs ---------------------------------------------------------------------
    def test_registered_under_its_name(self, codec: Any, codec_kind: str, codec_name: str) -> None:
        """The registry entry builds a codec with the right name and methods."""
        assert getattr(codec, "name", None) == codec_name
        if codec_kind == "serializer":
            assert callable(codec.dumps) and callable(codec.loads)
        else:
            assert callable(codec.encode) and callable(codec.decode)

    def test_codec_round_trip(self, codec: Any, codec_kind: str) -> None:
        """The codec alone round-trips (property-based)."""
        if codec_kind == "serializer":

            @settings(max_examples=self.max_examples, deadline=None)
            @given(self._values(codec_kind))
            def check(value: Any) -> None:
                data = codec.dumps(value)
                assert isinstance(data, bytes)
                assert _same_types(codec.loads(data), value)

        else:
            data_strategy = st.binary(max_size=2048) | st.text(alphabet="ab ", max_size=5000).map(
                str.encode
            )

            @settings(max_examples=self.max_examples, deadline=None)
            @given(data_strategy)
            def check(data: bytes) -> None:
                out = codec.encode(data)
                if out is None:
                    return  # declined (too small, or would not shrink): stage omitted
                assert isinstance(out, bytes)
                assert codec.decode(out) == data

        check()

    def test_pipeline_round_trip(self, pipeline: Pipeline, codec_kind: str) -> None:
        """Values round-trip through a Pipeline using the codec (property-based)."""

        @settings(
            max_examples=self.max_examples,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(self._values(codec_kind))
        def check(value: Any) -> None:
            frame = pipeline.encode(value, key=KEY)
            assert _same_types(pipeline.decode(frame, key=KEY), value)

        check()

    def test_frame_names_the_codec(
        self, pipeline: Pipeline, codec_kind: str, codec_name: str
    ) -> None:
        """Frames name the codec's stage in their header."""
        frame = pipeline.encode(self._sample(codec_kind), key=KEY)
        stages, _ = read_header(frame, KEY)
        if codec_name != "none":
            assert (codec_kind, codec_name) in stages
        assert stages[0][0] == "serializer"

    def test_truncated_frames_raise(self, pipeline: Pipeline, codec_kind: str) -> None:
        """Every truncation raises FrameError naming the key."""
        frame = pipeline.encode(self._sample(codec_kind), key=KEY)
        for n in range(len(frame)):
            _expect_frame_error(pipeline, frame[:n], f"frame truncated to {n} bytes")

    def test_flipped_bytes_raise(self, pipeline: Pipeline, codec_kind: str) -> None:
        """Every flipped byte raises FrameError naming the key."""
        frame = pipeline.encode(self._sample(codec_kind), key=KEY)
        for n, bad in enumerate(_corrupt_variants(frame)):
            _expect_frame_error(pipeline, bad, f"byte {n // 2} flipped")

    def test_foreign_data_raises(self, pipeline: Pipeline, codec_kind: str) -> None:
        """Wrong magic, other versions and random data raise FrameError."""
        frame = pipeline.encode(self._sample(codec_kind), key=KEY)
        for what, bad in {
            "wrong magic": b"XX" + frame[2:],
            "future frame version": frame[:2] + b"\x09" + frame[3:],
            "empty": b"",
            "plain json": b'{"a": 1}',
            "reversed": frame[::-1],
            "doubled": frame + frame,
            "nul bytes": b"\x00" * 64,
        }.items():
            _expect_frame_error(pipeline, bad, what)

    def test_payload_damage_behind_a_valid_checksum(
        self, pipeline: Pipeline, codec_kind: str
    ) -> None:
        """Behind a valid CRC, the codec itself rejects damage (encryptors: any change)."""
        frame = pipeline.encode(self._sample(codec_kind), key=KEY)
        stages, pos = read_header(frame, KEY)
        payload = frame[pos:]
        damaged = {
            "half": payload[: len(payload) // 2],
            "last byte cut": payload[:-1],
            "first byte cut": payload[1:],
            "empty": b"",
        }
        if codec_kind == "encryptor":
            # authenticated encryption: any change is detected
            for i in range(0, len(payload), max(1, len(payload) // 40)):
                damaged[f"bit {i}"] = payload[:i] + bytes([payload[i] ^ 1]) + payload[i + 1 :]
        for what, bad in damaged.items():
            exc = _expect_frame_error(pipeline, build_frame(stages, bad), what)
            if codec_kind == "encryptor":
                assert isinstance(exc, DecryptionError), what

    def test_uninstalled_codec_is_named(
        self, pipeline: Pipeline, codec_kind: str, make_pipeline: Callable[..., Pipeline]
    ) -> None:
        """A frame naming an unknown codec is untrusted; allowed but missing: CodecNotInstalled."""
        stages = [("serializer", "json")]
        if codec_kind == "serializer":
            stages = [("serializer", "hmkit-absent")]
        else:
            stages.append((codec_kind, "hmkit-absent"))
        frame = build_frame(stages, b"payload")
        exc = _expect_frame_error(pipeline, frame, "unknown codec")
        assert isinstance(exc, UntrustedCodec)
        assert exc.codec == "hmkit-absent" and exc.stage == codec_kind
        allowed = make_pipeline(read_codecs=("hmkit-absent",), accept_plaintext=True)
        exc = _expect_frame_error(allowed, frame, "allowed but not installed")
        assert isinstance(exc, CodecNotInstalled)
        assert exc.codec == "hmkit-absent" and exc.stage == codec_kind
        assert "hmkit-absent" in str(exc)

    def test_untrusted_codec_never_runs(
        self, pipeline: Pipeline, codec_kind: str, codec_name: str, tmp_path: Any
    ) -> None:
        """A frame naming an installed codec the reader does not allow (pickle) never runs it."""
        canary = tmp_path / "canary"
        payload = _pickle_canary(canary)
        frames = {"pickle serializer": build_frame([("serializer", "pickle")], payload)}
        if codec_kind != "serializer":
            frames["pickle inside this codec"] = pipeline.encode(self._sample(codec_kind), KEY)
            stages, pos = read_header(frames["pickle inside this codec"], KEY)
            frames["pickle inside this codec"] = build_frame(
                [("serializer", "pickle"), *stages[1:]],
                frames["pickle inside this codec"][pos:],
            )
        for what, frame in frames.items():
            exc = _expect_frame_error(pipeline, frame, what)
            assert isinstance(exc, UntrustedCodec), what
            assert exc.codec == "pickle" and "pickle" in str(exc)
        assert not canary.exists(), "a pickle frame ran code in the reader"

    def test_stage_order_is_enforced(
        self, pipeline: Pipeline, codec_kind: str, codec_name: str
    ) -> None:
        """Repeated or reordered stages are refused before any codec runs."""
        if codec_kind == "serializer":
            bad = [("serializer", codec_name), ("serializer", codec_name)]
        else:
            bad = [("serializer", "json"), (codec_kind, codec_name), (codec_kind, codec_name)]
        _expect_frame_error(pipeline, build_frame(bad, b"payload"), "repeated stage")
        _expect_frame_error(
            pipeline, build_frame([(codec_kind, codec_name)], b"payload"), "no serializer first"
        )

    def test_plaintext_refused_under_encryption(
        self, pipeline: Pipeline, codec_kind: str, make_pipeline: Callable[..., Pipeline]
    ) -> None:
        """Encryptors: a frame without the encryption stage is refused unless migrating."""
        assert codec_kind == "encryptor"
        frame = build_frame([("serializer", "json")], b'{"forged": true}')
        exc = _expect_frame_error(pipeline, frame, "plaintext frame")
        assert isinstance(exc, UnencryptedFrame)
        migrating = make_pipeline(accept_plaintext=True)
        assert migrating.decode(frame, KEY) == {"forged": True}
        again = migrating.reencode(frame, KEY)
        assert again is not None and pipeline.decode(again, KEY) == {"forged": True}

    # -- compressors --------------------------------------------------------------------
    def test_decompression_is_bounded(
        self,
        codec_kind: str,
        codec_name: str,
        compression_bomb: bytes,
        make_pipeline: Callable[..., Pipeline],
    ) -> None:
        """A 100+ MB bomb fails under max_output_size without the expansion."""
        assert codec_kind == "compressor"
        assert len(compression_bomb) < self.bomb_size // 100, "not much of a bomb"
        limited = make_pipeline(max_output_size=self.bomb_output_limit)
        frame = build_frame([("serializer", "json"), ("compressor", codec_name)], compression_bomb)
        tracemalloc.start()
        try:
            _expect_frame_error(limited, frame, "decompression bomb")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        # never allocate the expansion: at most a few times the output bound
        assert peak < 8 * self.bomb_output_limit + 16 * MiB, f"peak {peak} bytes"

    def test_output_bound_still_allows_values_below_it(
        self, codec_kind: str, make_pipeline: Callable[..., Pipeline]
    ) -> None:
        """max_output_size admits values below it and rejects larger ones."""
        if codec_kind != "compressor":
            pytest.skip("only compressors decompress")
        limited = make_pipeline(max_output_size=64 * 1024)
        value = "z" * 60_000
        assert limited.decode(limited.encode(value, key=KEY), key=KEY) == value
        too_big = make_pipeline().encode("z" * 70_000, key=KEY)
        _expect_frame_error(limited, too_big, "value over max_output_size")

    # -- serializers --------------------------------------------------------------------
    def test_documented_types_round_trip(self, codec: Any, codec_kind: str) -> None:
        """The json serializer's documented extra types round-trip exactly."""
        if codec_kind != "serializer":
            pytest.skip("only serializers store objects")
        if not self.extended_types:
            pytest.skip("serializer does not claim the json serializer's extra types")

        tz = dt.timezone(dt.timedelta(hours=5, minutes=30))
        values: list[Any] = [
            (1, "two", (3.0,)),
            {1, 2, 3},
            {"b", "a"},
            frozenset({1, "mixed", None}),
            set(),
            b"\x00\xff" * 10,
            dt.datetime(2024, 2, 29, 12, 30, 45, 123456),
            dt.datetime(2024, 2, 29, 12, 30, 45, tzinfo=tz),
            dt.datetime(1, 1, 1),
            dt.date(1999, 12, 31),
            dt.time(23, 59, 59, 999999),
            dt.time(1, 2, tzinfo=tz),
            dt.timedelta(days=-3, seconds=5, microseconds=7),
            decimal.Decimal("3.14159265358979323846264338327950288"),
            decimal.Decimal("-0.0"),
            uuid.UUID("12345678-1234-5678-1234-567812345678"),
            {1: "int key", 2.5: "float key", None: "none key", (1, "t"): "tuple key"},
            {"__hm__": "bytes", "v": "AAAA"},
            {"x": {"__hm__": "tuple", "v": [1]}},
            float("inf"),
            float("-inf"),
            2**100,
            [{"deep": [(1, b"x", {dt.date(2020, 1, 1)})]}],
        ]
        for value in values:
            out = codec.loads(codec.dumps(value))
            assert _same_types(out, value), value
        out = codec.loads(codec.dumps(bytearray(b"ab")))
        assert out == b"ab" and isinstance(out, bytes | bytearray)
        out = codec.loads(codec.dumps(_DictSub(a=1)))
        assert out == {"a": 1} and isinstance(out, dict)
        nan = codec.loads(codec.dumps(float("nan")))
        assert isinstance(nan, float) and math.isnan(nan)
        aware = codec.loads(codec.dumps(values[7]))
        assert aware.utcoffset() == dt.timedelta(hours=5, minutes=30)

    def test_unsupported_types_raise(self, codec: Any, codec_kind: str, pipeline: Pipeline) -> None:
        """Objects the serializer cannot store raise SerializationError."""
        if codec_kind != "serializer":
            pytest.skip("only serializers store objects")
        if self.serializes_arbitrary_objects:
            pytest.skip("serializer stores arbitrary objects by design")
        for value in (
            object(),
            _AttrsThing(),
            _DataThing(),
            len,
            {"nested": [object()]},
            "\ud800",
        ):
            with pytest.raises(SerializationError):
                codec.dumps(value)
            with pytest.raises(SerializationError) as info:
                pipeline.encode(value, key=KEY)
            assert repr(KEY) in str(info.value)
        with pytest.raises(SerializationError) as info:
            codec.dumps(_AttrsThing())
        assert "_AttrsThing" in str(info.value)


# -- pipeline combinations -------------------------------------------------------------------


#: ``not_applicable`` entries for a serializer's CodecSuite
_ONLY_COMPRESSORS: dict[str, str] = {
    "test_decompression_is_bounded": "only compressors decompress",
    "test_output_bound_still_allows_values_below_it": "only compressors decompress",
}
_ONLY_SERIALIZERS: dict[str, str] = {
    "test_documented_types_round_trip": "only serializers store objects",
    "test_unsupported_types_raise": "only serializers store objects",
}
_ONLY_ENCRYPTORS: dict[str, str] = {
    "test_plaintext_refused_under_encryption": "only encryptors are required on every frame",
}
NOT_FOR_SERIALIZERS: dict[str, str] = {**_ONLY_COMPRESSORS, **_ONLY_ENCRYPTORS}
#: ``not_applicable`` entries for a compressor's CodecSuite
NOT_FOR_COMPRESSORS: dict[str, str] = {**_ONLY_SERIALIZERS, **_ONLY_ENCRYPTORS}
#: ``not_applicable`` entries for an encryptor's CodecSuite
NOT_FOR_ENCRYPTORS: dict[str, str] = {**_ONLY_COMPRESSORS, **_ONLY_SERIALIZERS}


def pipeline_combinations(plugins: Plugins) -> list[tuple[str, str, str]]:
    """Every installed ``(serializer, compressor, encryptor)`` combination (with ``none``)."""
    serializers = plugins.registry("serializer").names()
    compressors = sorted(set(plugins.registry("compressor").names()) | {"none"})
    encryptors = sorted(set(plugins.registry("encryptor").names()) | {"none"})
    return list(itertools.product(serializers, compressors, encryptors))


class PipelineCombinationSuite:
    """Round-trips and cross-reads through every installed codec combination.

    Override ``hivemem_plugins`` to choose which plugins take part and
    ``codec_options`` (``{codec_name: {option: value}}``) to give encryptors
    their keys.
    """

    #: hypothesis examples (each runs through every combination)
    max_examples: ClassVar[int] = 25

    @pytest.fixture
    def codec_options(self) -> dict[str, dict[str, Any]]:
        """Options per codec name, shared by every pipeline (keys for encryptors)."""
        return {}

    @pytest.fixture
    def combinations(self, hivemem_plugins: Plugins) -> list[tuple[str, str, str]]:
        """The combinations under test."""
        return pipeline_combinations(hivemem_plugins)

    @pytest.fixture
    def pipelines(
        self,
        combinations: list[tuple[str, str, str]],
        codec_options: dict[str, dict[str, Any]],
        hivemem_plugins: Plugins,
    ) -> dict[tuple[str, str, str], Pipeline]:
        """One pipeline per combination."""
        return {
            combo: Pipeline(*combo, options=codec_options, plugins=hivemem_plugins)
            for combo in combinations
        }

    SAMPLES: ClassVar[list[Any]] = [
        None,
        {"small": 1},
        {"text": "compress me " * 2000, "list": list(range(300))},
        ["ünïcödé", "\U0001f600" * 100, -1.5, 2**62, True],
        "",
    ]

    def test_there_is_something_to_combine(self, combinations: list[tuple[str, str, str]]) -> None:
        """At least one combination is installed, none twice."""
        assert combinations
        assert all(len(c) == 3 for c in combinations)
        assert len(set(combinations)) == len(combinations)

    def test_every_combination_round_trips(
        self, pipelines: dict[tuple[str, str, str], Pipeline]
    ) -> None:
        """Every combination round-trips (property-based)."""

        @settings(
            max_examples=self.max_examples,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(basic_values | st.text(alphabet="ab", min_size=300, max_size=3000))
        def check(value: Any) -> None:
            for combo, pipeline in pipelines.items():
                out = pipeline.decode(pipeline.encode(value, key=KEY), key=KEY)
                assert _same_types(out, value), combo

        check()

    def test_reading_follows_the_frame(
        self,
        pipelines: dict[tuple[str, str, str], Pipeline],
        codec_options: dict[str, dict[str, Any]],
        hivemem_plugins: Plugins,
    ) -> None:
        """A frame reads under every reader that trusts its codecs, and under no other.

        A reader trusts what it writes plus ``read_codecs``; with an encryptor
        configured it refuses frames without one (unless ``accept_plaintext``).
        """
        names = {n for combo in pipelines for n in combo if n != "none"}
        for value in self.SAMPLES:
            frames = {combo: p.encode(value, key=KEY) for combo, p in pipelines.items()}
            for writer, frame in frames.items():
                stages, _ = read_header(frame, KEY)  # a compressor may have declined
                written = {name for _, name in stages}
                for reader_combo, reader in pipelines.items():
                    trusted = written <= set(reader_combo)
                    plaintext = reader_combo[2] != "none" and writer[2] == "none"
                    if trusted and not plaintext:
                        out = reader.decode(frame, key=KEY)
                        assert _same_types(out, value), (writer, reader_combo)
                        continue
                    with pytest.raises(FrameError) as info:
                        reader.decode(frame, key=KEY)
                    expected = UntrustedCodec if not trusted else UnencryptedFrame
                    assert isinstance(info.value, expected), (writer, reader_combo)
                    assert info.value.key == KEY
            for reader_combo in pipelines:  # a migrating reader that allows every codec
                lenient = Pipeline(
                    *reader_combo,
                    options=codec_options,
                    plugins=hivemem_plugins,
                    read_codecs=sorted(names),
                    accept_plaintext=True,
                )
                for writer, frame in frames.items():
                    assert _same_types(lenient.decode(frame, key=KEY), value), writer

    def test_frames_name_their_stages(
        self,
        pipelines: dict[tuple[str, str, str], Pipeline],
        hivemem_plugins: Plugins,
    ) -> None:
        """Headers list applied stages in order, all resolvable; no rewrite needed."""
        big = self.SAMPLES[2]
        for (ser, comp, enc), pipeline in pipelines.items():
            for value in (big, {"small": 1}):
                frame = pipeline.encode(value, key=KEY)
                stages, _ = read_header(frame, KEY)
                assert stages[0] == ("serializer", ser)
                kinds = [kind for kind, _ in stages]
                assert kinds == sorted(kinds, key=["serializer", "compressor", "encryptor"].index)
                assert (("encryptor", enc) in stages) == (enc != "none")
                if comp == "none":
                    assert "compressor" not in kinds
                for kind, name in stages:
                    hivemem_plugins.registry(kind).get(name)  # every name resolves
                assert pipeline.reencode(frame, KEY) is None, "own frame needs no rewrite"
            if comp != "none":
                stages, _ = read_header(pipeline.encode(big, key=KEY), KEY)
                assert ("compressor", comp) in stages, "a highly compressible value stays raw"

    def test_missing_codec_names_its_package(self) -> None:
        """A missing first-party codec error names its pip package."""
        import hivemem.builtin

        builtin_only = make_plugins(entrypoints=False, plugins={"builtin": hivemem.builtin})
        reader = Pipeline(plugins=builtin_only, read_codecs=["zstd", "fernet"])
        for stage, name, package in (
            ("compressor", "zstd", "hivemem-zstd"),
            ("encryptor", "fernet", "hivemem-fernet"),
        ):
            frame = build_frame([("serializer", "json"), (stage, name)], b"opaque")
            with pytest.raises(CodecNotInstalled) as info:
                reader.decode(frame, key=KEY)
            assert (info.value.codec, info.value.stage) == (name, stage)
            assert info.value.package == package and package in str(info.value)
            assert info.value.key == KEY
