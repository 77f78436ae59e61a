"""hivemem's codec conformance kit, pointed at the fernet encryptor."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.fernet import Fernet
from hivemem.testing import NOT_FOR_ENCRYPTORS, CodecSuite, PipelineCombinationSuite

PRIMARY = Fernet.generate_key().decode()
OLD = Fernet.generate_key().decode()


class TestFernetCodec(CodecSuite):
    """The encryptor suite: round-trips, damaged and tampered frames raise DecryptionError."""

    not_applicable = NOT_FOR_ENCRYPTORS

    @pytest.fixture
    def codec_kind(self) -> str:
        return "encryptor"

    @pytest.fixture
    def codec_name(self) -> str:
        return "fernet"

    @pytest.fixture
    def codec_options(self) -> dict[str, Any]:
        return {"keys": f"{PRIMARY},{OLD}"}


class TestFernetInEveryCombination(PipelineCombinationSuite):
    """Every installed serializer x compressor x encryptor, reading across all of them."""

    @pytest.fixture
    def codec_options(self) -> dict[str, dict[str, Any]]:
        return {"fernet": {"keys": [PRIMARY, OLD]}}
