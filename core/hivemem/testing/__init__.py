"""hivemem's conformance kit: backend, cache and codec suites plus real-server fixtures.

A plugin's test module is mostly one class that points a suite at its factory::

    import pytest
    from hivemem.testing import BackendSuite

    class TestMyBackend(BackendSuite):
        @pytest.fixture
        def backend_url(self, redis_server):
            return redis_server.url

The fixtures (``hivemem_runner``, ``hivemem_plugins``) come from the pytest
plugin :mod:`hivemem.testing.plugin`, loaded automatically through the
``pytest11`` entry point; real-server fixtures come from the plugin that
owns the server, the same way (``redis_server`` and ``redis_cluster`` from
``hivemem_redis.testing``, ``memcached_server`` from
``hivemem_memcached.testing``), on the kit's generic launcher
(:mod:`hivemem.testing.servers`). A test that cannot run
here (a missing server, plugin or suite fixture) skips with the reason, and
fails when the ``CI`` environment variable is ``true``: see
:func:`skip_or_fail` and :func:`require_module`. The suites import
hypothesis, so they are loaded lazily: ``import hivemem.testing`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .backend_suite import KIT_NAMESPACES, BackendSuite, open_backend
    from .cache_suite import NOT_FOR_REMOTE_CACHES, CacheSuite, open_cache
    from .codec_suite import (
        NOT_FOR_COMPRESSORS,
        NOT_FOR_ENCRYPTORS,
        NOT_FOR_SERIALIZERS,
        CodecSuite,
    )
    from .helpers import (
        TRICKY_STRINGS,
        build_frame,
        eventually,
        in_ci,
        missing_fixture,
        require_capability,
        require_module,
        skip_or_fail,
    )
    from .pipeline_suite import PipelineCombinationSuite, pipeline_combinations
    from .plugin import missing_binary, server_factory, start_server
    from .servers import (
        ServerBinaryMissing,
        ServerError,
        ServerProcess,
        find_binary,
        free_port,
    )
    from .stateful import BackendStateMachine, run_backend_state_machine

_EXPORTS: dict[str, str] = {
    "BackendSuite": "backend_suite",
    "KIT_NAMESPACES": "backend_suite",
    "open_backend": "backend_suite",
    "CacheSuite": "cache_suite",
    "open_cache": "cache_suite",
    "CodecSuite": "codec_suite",
    "NOT_FOR_COMPRESSORS": "codec_suite",
    "NOT_FOR_ENCRYPTORS": "codec_suite",
    "NOT_FOR_SERIALIZERS": "codec_suite",
    "NOT_FOR_REMOTE_CACHES": "cache_suite",
    "PipelineCombinationSuite": "pipeline_suite",
    "pipeline_combinations": "pipeline_suite",
    "TRICKY_STRINGS": "helpers",
    "build_frame": "helpers",
    "eventually": "helpers",
    "require_capability": "helpers",
    "require_module": "helpers",
    "skip_or_fail": "helpers",
    "missing_fixture": "helpers",
    "in_ci": "helpers",
    "missing_binary": "plugin",
    "start_server": "plugin",
    "server_factory": "plugin",
    "ServerBinaryMissing": "servers",
    "ServerProcess": "servers",
    "ServerError": "servers",
    "find_binary": "servers",
    "free_port": "servers",
    "BackendStateMachine": "stateful",
    "run_backend_state_machine": "stateful",
}

__all__ = [
    "KIT_NAMESPACES",
    "NOT_FOR_COMPRESSORS",
    "NOT_FOR_ENCRYPTORS",
    "NOT_FOR_REMOTE_CACHES",
    "NOT_FOR_SERIALIZERS",
    "TRICKY_STRINGS",
    "BackendStateMachine",
    "BackendSuite",
    "CacheSuite",
    "CodecSuite",
    "PipelineCombinationSuite",
    "ServerBinaryMissing",
    "ServerError",
    "ServerProcess",
    "build_frame",
    "eventually",
    "find_binary",
    "free_port",
    "in_ci",
    "missing_binary",
    "missing_fixture",
    "open_backend",
    "open_cache",
    "pipeline_combinations",
    "require_capability",
    "require_module",
    "run_backend_state_machine",
    "server_factory",
    "skip_or_fail",
    "start_server",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        from .servers import MOVED, moved

        if name in MOVED:  # RedisServer, MemcachedServer, ...: now in their plugins
            return moved(name, __name__)
        raise AttributeError(f"module 'hivemem.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
