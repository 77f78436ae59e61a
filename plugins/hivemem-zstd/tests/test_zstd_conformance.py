"""hivemem's codec conformance kit, pointed at the zstd compressor."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest
from hivemem.testing import (
    NOT_FOR_COMPRESSORS,
    CodecSuite,
    PipelineCombinationSuite,
    in_ci,
    require_module,
)


class TestZstdCodec(CodecSuite):
    """The compressor suite: round-trips, damaged frames, bounded decompression."""

    not_applicable = NOT_FOR_COMPRESSORS

    @pytest.fixture
    def codec_kind(self) -> str:
        return "compressor"

    @pytest.fixture
    def codec_name(self) -> str:
        return "zstd"


class TestZstdWithDictionaryCodec(TestZstdCodec):
    """The same suite with a trained dictionary in use."""

    @pytest.fixture
    def codec_options(self) -> dict[str, Any]:
        from hivemem_zstd import train_dictionary
        from hivemem_zstd.dictionaries import dictionary_id

        samples = [f'{{"text": "hivemem {i}", "n": [{i}, {i * 7}]}}'.encode() for i in range(400)]
        trained = train_dictionary(samples, 2048)
        return {
            "dictionaries": {dictionary_id(trained): trained},
            "dictionary": dictionary_id(trained),
        }


class TestZstdInEveryCombination(PipelineCombinationSuite):
    """Every installed serializer x compressor x encryptor, reading across all of them."""

    @pytest.fixture
    def codec_options(self) -> dict[str, dict[str, Any]]:
        if importlib.util.find_spec("hivemem_fernet") is None and not in_ci():
            return {}  # the combinations simply lack fernet
        require_module("hivemem_fernet")  # under CI a missing fernet fails, not shrinks the run
        from cryptography.fernet import Fernet

        return {"fernet": {"keys": Fernet.generate_key().decode()}}
