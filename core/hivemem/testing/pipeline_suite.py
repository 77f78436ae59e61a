"""Pipeline conformance: every installed codec combination round-trips and cross-reads.

:class:`PipelineCombinationSuite` round-trips values through every
installed (serializer, compressor, encryptor) combination and reads each
frame back under every other combination: reading follows the frame.
"""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hivemem.errors import CodecNotInstalled, FrameError, UnencryptedFrame, UntrustedCodec
from hivemem.pipeline import Pipeline, read_header
from hivemem.plugins import Plugins, make_plugins

from .codec_values import KEY, basic_values, same_types
from .helpers import build_frame

__all__ = ["PipelineCombinationSuite", "pipeline_combinations"]


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
                assert same_types(out, value), combo

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
                        assert same_types(out, value), (writer, reader_combo)
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
                    assert same_types(lenient.decode(frame, key=KEY), value), writer

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
