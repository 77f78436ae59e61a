"""The core's builtin plugins run the same conformance kit every plugin runs."""

from __future__ import annotations

from typing import Any

import hivemem.builtin
import pytest
from hivemem.plugins import Plugins, make_plugins
from hivemem.testing import (
    NOT_FOR_COMPRESSORS,
    NOT_FOR_SERIALIZERS,
    BackendSuite,
    CacheSuite,
    CodecSuite,
    PipelineCombinationSuite,
    pipeline_combinations,
)


@pytest.fixture
def hivemem_plugins() -> Plugins:
    """Only the builtin plugin, loaded through its entry point like any other."""
    return make_plugins(allowed=["builtin"], blocked=[])


class TestMemoryBackend(BackendSuite):
    not_applicable = {
        "test_persistent_data_survives_reopen": "memory:// is not persistent",
        "test_shared_between_clients": "memory:// is private to one backend",
    }

    @pytest.fixture
    def backend_url(self) -> str:
        return "memory://"


class TestNamedMemoryBackend(BackendSuite):
    not_applicable = {
        "test_persistent_data_survives_reopen": "memory:// is not persistent",
        "test_shared_between_clients": "memory:// is not shared between processes",
    }

    @pytest.fixture
    def backend_url(self) -> str:
        return "memory://hmkit-named"


class TestSQLiteBackend(BackendSuite):
    @pytest.fixture
    def backend_url(self, tmp_path: Any) -> str:
        return f"sqlite:///{tmp_path}/kit.db"


class TestLocalCache(CacheSuite):
    not_applicable = {
        "test_too_large_values_are_not_cached": "local:// bounds bytes by its budget instead"
    }

    @pytest.fixture
    def cache_url(self) -> str:
        return "local://?max_entries=5000"


class TestJsonSerializer(CodecSuite):
    not_applicable = NOT_FOR_SERIALIZERS

    @pytest.fixture
    def codec_kind(self) -> str:
        return "serializer"

    @pytest.fixture
    def codec_name(self) -> str:
        return "json"


class TestPickleSerializer(CodecSuite):
    serializes_arbitrary_objects = True
    not_applicable = {
        **NOT_FOR_SERIALIZERS,
        "test_unsupported_types_raise": "pickle stores arbitrary objects by design",
        "test_untrusted_codec_never_runs": "a reader configured to write pickle trusts it",
    }

    @pytest.fixture
    def codec_kind(self) -> str:
        return "serializer"

    @pytest.fixture
    def codec_name(self) -> str:
        return "pickle"


class TestZlibCompressor(CodecSuite):
    not_applicable = NOT_FOR_COMPRESSORS

    @pytest.fixture
    def codec_kind(self) -> str:
        return "compressor"

    @pytest.fixture
    def codec_name(self) -> str:
        return "zlib"


class TestBuiltinPipelines(PipelineCombinationSuite):
    pass


def test_builtin_combinations_are_all_listed(hivemem_plugins: Plugins) -> None:
    combos = pipeline_combinations(hivemem_plugins)
    assert combos == [
        ("json", "none", "none"),
        ("json", "zlib", "none"),
        ("pickle", "none", "none"),
        ("pickle", "zlib", "none"),
    ]


def test_builtin_plugin_is_the_entry_point_module(hivemem_plugins: Plugins) -> None:
    entry = hivemem_plugins.registry("backend").for_scheme("sqlite")
    assert entry.plugin == "builtin"
    assert hivemem_plugins.pm.get_plugin("builtin") is hivemem.builtin
