"""Optional capabilities are declared methods with defaults, not attributes found by getattr.

A backend that cannot tell about other clients' writes inherits a
``subscribe`` that returns None; a cache without cross-process leases
inherits ``lease`` (always "refill yourself") and ``supports_lease = False``;
an in-process cache is an :class:`~hivemem.cache.InProcessCache`, and one
that only claims ``in_process`` is refused with a clear error.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import hivemem
import pytest
from hivemem.backend import Backend
from hivemem.builtin.local_cache import LocalCache
from hivemem.builtin.memory_backend import MemoryBackend
from hivemem.cache import Cache, InProcessCache
from hivemem.plugins import hookimpl, make_plugins


class _DictCache(Cache):
    """A remote-style cache with no lease support (what a minimal plugin writes)."""

    name: ClassVar[str] = "dictcache"

    def __init__(self, url: str = "dictcache://") -> None:
        self.data: dict[str, bytes] = {}

    async def close(self) -> None:
        self.data.clear()

    async def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self.data[key] = value

    async def delete(self, key: str) -> None:
        self.data.pop(key, None)

    async def clear(self) -> None:
        self.data.clear()

    def stats(self) -> dict[str, Any]:
        return {"hits": 0, "misses": 0, "sets": 0, "evictions": 0, "errors": 0}


class _ClaimsInProcess(_DictCache):
    name: ClassVar[str] = "claims"
    in_process: ClassVar[bool] = True


class _Plugin:
    @hookimpl
    def hivemem_register_caches(self, register: Any) -> None:
        register("dictcache", _DictCache, schemes=["dictcache"])
        register("claims", _ClaimsInProcess, schemes=["claims"])


def test_backend_subscribe_defaults_to_none() -> None:
    async def subscribe() -> object:
        backend = MemoryBackend("memory://")
        await backend.open()
        try:
            return await backend.subscribe("ns", lambda k, i: None)
        finally:
            await backend.close()

    assert asyncio.run(subscribe()) is None
    assert "subscribe" not in Backend.__abstractmethods__


def test_cache_lease_defaults() -> None:
    cache = _DictCache()
    assert cache.supports_lease is False
    assert asyncio.run(cache.lease("k", 1.0)) is True
    assert asyncio.run(cache.release("k")) is None
    assert isinstance(LocalCache(), InProcessCache)


def test_in_process_cache_async_methods_use_the_sync_ones() -> None:
    cache = LocalCache()

    async def go() -> tuple[bytes | None, bytes | None]:
        await cache.set("k", b"v")
        got = await cache.get("k")
        await cache.delete("k")
        return got, await cache.get("k")

    assert asyncio.run(go()) == (b"v", None)


def test_a_remote_cache_without_leases_works_in_a_memory() -> None:
    plugins = make_plugins(plugins={"caps": _Plugin()})

    async def go() -> Any:
        async with hivemem.open_memory(
            "memory://", plugins=plugins, cache="local:// dictcache://", trust_remote_cache=True
        ) as mem:
            await mem.put("k", "1", {"v": 1})
            mem.clear_local_cache()
            first = await mem.get("k", "1")  # backend read, fills the remote tier
            mem.clear_local_cache()
            second = await mem.get("k", "1")  # remote hit
            return first, second, mem.metrics()["tiers"]["dictcache"]["hits"]

    assert asyncio.run(go()) == ({"v": 1}, {"v": 1}, 1)


def test_claiming_in_process_without_the_base_class_is_a_config_error() -> None:
    plugins = make_plugins(plugins={"caps": _Plugin()})
    with pytest.raises(hivemem.ConfigError, match="InProcessCache"):
        hivemem.open_memory("memory://", plugins=plugins, cache="claims://")


class _LegacyRot13:
    """A compressor written against the old duck-typed contract (no base class)."""

    name = "legacyrot"

    def __init__(self) -> None:
        self.resources: dict[str, bytes] = {}

    def encode(self, data: bytes) -> bytes | None:
        return bytes((b + 13) % 256 for b in data)

    def decode(self, data: bytes) -> bytes:
        return bytes((b - 13) % 256 for b in data)

    def add_resource(self, kind: str, id: str, data: bytes) -> None:
        self.resources[f"{kind}/{id}"] = data


class _LegacyPlugin:
    @hookimpl
    def hivemem_register_compressors(self, register: Any) -> None:
        register("legacyrot", _LegacyRot13)


def test_a_codec_without_the_base_classes_is_adapted_once() -> None:
    from hivemem.codecs import Compressor
    from hivemem.errors import Unsupported
    from hivemem.pipeline import Pipeline

    plugins = make_plugins(plugins={"l": _LegacyPlugin()})
    pipeline = Pipeline(compressor="legacyrot", plugins=plugins)
    codec = pipeline.compressor
    assert isinstance(codec, Compressor) and codec.name == "legacyrot"
    assert codec.resources_needed() == []  # the default the old codec lacked
    codec.add_resource("dict", "1", b"x")  # forwarded to the old codec's own method
    assert codec.resources == {"dict/1": b"x"}
    assert pipeline.decode(pipeline.encode({"a": [1, 2]})) == {"a": [1, 2]}
    assert pipeline.codec("compressor", "legacyrot") is codec  # built and wrapped once
    with pytest.raises(Unsupported):
        Compressor.add_resource(codec, "dict", "1", b"x")


def test_plugin_module_exports_what_plugins_need() -> None:
    import hivemem.plugin as plugin

    for name in plugin.__all__:
        assert getattr(plugin, name) is not None, name
    from hivemem.cli import guarded

    assert plugin.guarded is guarded
