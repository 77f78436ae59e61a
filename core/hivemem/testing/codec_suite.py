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

:class:`PipelineCombinationSuite` (in :mod:`.pipeline_suite`, importable
from here too) round-trips values through every installed (serializer,
compressor, encryptor) combination and reads each frame back under every
other combination: reading follows the frame. The values and hostile frames
both suites use are in :mod:`.codec_values`.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import tracemalloc
import uuid
from collections.abc import Callable
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hivemem.errors import (
    CodecNotInstalled,
    DecryptionError,
    SerializationError,
    UnencryptedFrame,
    UntrustedCodec,
)
from hivemem.pipeline import Pipeline, read_header
from hivemem.plugins import Plugins

from .codec_values import (
    KEY,
    AttrsThing,
    DataThing,
    DictSubclass,
    MiB,
    basic_values,
    corrupt_variants,
    expect_frame_error,
    extended_values,
    pickle_canary,
    same_types,
)
from .helpers import build_frame, missing_fixture
from .pipeline_suite import PipelineCombinationSuite, pipeline_combinations

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
                assert same_types(codec.loads(data), value)

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
            assert same_types(pipeline.decode(frame, key=KEY), value)

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
            expect_frame_error(pipeline, frame[:n], f"frame truncated to {n} bytes")

    def test_flipped_bytes_raise(self, pipeline: Pipeline, codec_kind: str) -> None:
        """Every flipped byte raises FrameError naming the key."""
        frame = pipeline.encode(self._sample(codec_kind), key=KEY)
        for n, bad in enumerate(corrupt_variants(frame)):
            expect_frame_error(pipeline, bad, f"byte {n // 2} flipped")

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
            expect_frame_error(pipeline, bad, what)

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
            exc = expect_frame_error(pipeline, build_frame(stages, bad), what)
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
        exc = expect_frame_error(pipeline, frame, "unknown codec")
        assert isinstance(exc, UntrustedCodec)
        assert exc.codec == "hmkit-absent" and exc.stage == codec_kind
        allowed = make_pipeline(read_codecs=("hmkit-absent",), accept_plaintext=True)
        exc = expect_frame_error(allowed, frame, "allowed but not installed")
        assert isinstance(exc, CodecNotInstalled)
        assert exc.codec == "hmkit-absent" and exc.stage == codec_kind
        assert "hmkit-absent" in str(exc)

    def test_untrusted_codec_never_runs(
        self, pipeline: Pipeline, codec_kind: str, codec_name: str, tmp_path: Any
    ) -> None:
        """A frame naming an installed codec the reader does not allow (pickle) never runs it."""
        canary = tmp_path / "canary"
        payload = pickle_canary(canary)
        frames = {"pickle serializer": build_frame([("serializer", "pickle")], payload)}
        if codec_kind != "serializer":
            frames["pickle inside this codec"] = pipeline.encode(self._sample(codec_kind), KEY)
            stages, pos = read_header(frames["pickle inside this codec"], KEY)
            frames["pickle inside this codec"] = build_frame(
                [("serializer", "pickle"), *stages[1:]],
                frames["pickle inside this codec"][pos:],
            )
        for what, frame in frames.items():
            exc = expect_frame_error(pipeline, frame, what)
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
        expect_frame_error(pipeline, build_frame(bad, b"payload"), "repeated stage")
        expect_frame_error(
            pipeline, build_frame([(codec_kind, codec_name)], b"payload"), "no serializer first"
        )

    def test_plaintext_refused_under_encryption(
        self, pipeline: Pipeline, codec_kind: str, make_pipeline: Callable[..., Pipeline]
    ) -> None:
        """Encryptors: a frame without the encryption stage is refused unless migrating."""
        assert codec_kind == "encryptor"
        frame = build_frame([("serializer", "json")], b'{"forged": true}')
        exc = expect_frame_error(pipeline, frame, "plaintext frame")
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
            expect_frame_error(limited, frame, "decompression bomb")
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
        expect_frame_error(limited, too_big, "value over max_output_size")

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
            assert same_types(out, value), value
        out = codec.loads(codec.dumps(bytearray(b"ab")))
        assert out == b"ab" and isinstance(out, bytes | bytearray)
        out = codec.loads(codec.dumps(DictSubclass(a=1)))
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
            AttrsThing(),
            DataThing(),
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
            codec.dumps(AttrsThing())
        assert "AttrsThing" in str(info.value)


# -- not_applicable tables ---------------------------------------------------------------

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
