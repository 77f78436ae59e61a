"""Plugins written against the contract before the reshape still load and pass the whole kit.

:class:`LegacyBackend` is what a third-party backend looked like then: it
implements every method the old ``Backend`` declared abstract (``get``,
``list_ids``, ``list_records``, ``namespace_stats``, ``stats`` included; no
``scan``), checks its own TTLs and imports from ``hivemem.backend``,
``hivemem.plugins`` and ``hivemem.hookspecs`` -- not from ``hivemem.plugin``.
The base class builds its ``scan`` from its listings and guards its
lifecycle; registered as a plugin, it passes every test of
:class:`~hivemem.testing.BackendSuite`, the new contract tests included.

The codecs are duck-typed objects without the codec base classes, registered
the old way, with their kit classes declaring ``extended_types = False`` as
before: the pipeline adapts them once and they pass
:class:`~hivemem.testing.CodecSuite`. (How the adapter supplies the optional
methods is tested in ``tests/test_capabilities.py``.)
"""

from __future__ import annotations

import bz2
import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import pytest
from hivemem.backend import (
    Backend,
    Capabilities,
    NamespaceStats,
    Record,
    SeriesEntry,
)
from hivemem.builtin.memory_backend import MemoryBackend
from hivemem.errors import SerializationError
from hivemem.hookspecs import Register
from hivemem.plugins import Plugins, hookimpl, make_plugins
from hivemem.testing import NOT_FOR_COMPRESSORS, NOT_FOR_SERIALIZERS, BackendSuite, CodecSuite


class LegacyBackend(Backend):
    """A backend written against the old 22-method contract, wrapping a memory backend."""

    name: ClassVar[str] = "legacy"
    capabilities: ClassVar[Capabilities] = Capabilities(
        persistent=False, shared=False, supports_series_rewrite=True
    )

    def __init__(self, url: str, **options: Any) -> None:
        self.url = url
        self.inner = MemoryBackend("memory://")

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def ping(self) -> bool:
        return await self.inner.ping()

    async def stats(self) -> dict[str, Any]:
        return {"backend": self.name, "inner": await self.inner.stats()}

    async def get(self, ns: str, kind: str, id: str) -> Record | None:
        return await self.inner.get(ns, kind, id)

    async def get_many(self, ns: str, kind: str, ids: Sequence[str]) -> dict[str, Record]:
        return await self.inner.get_many(ns, kind, ids)

    async def put(
        self,
        ns: str,
        kind: str,
        id: str,
        value: bytes,
        *,
        ttl: float | None = None,
        expected_version: int | None = None,
    ) -> int:
        if ttl is not None and ttl <= 0:  # the old contract left this to each backend
            raise ValueError(f"ttl must be > 0, got {ttl}")
        return await self.inner.put(ns, kind, id, value, ttl=ttl, expected_version=expected_version)

    async def put_many(
        self, ns: str, kind: str, items: Mapping[str, bytes], *, ttl: float | None = None
    ) -> None:
        await self.inner.put_many(ns, kind, items, ttl=ttl)

    async def delete(
        self, ns: str, kind: str, id: str, *, expected_version: int | None = None
    ) -> bool:
        return await self.inner.delete(ns, kind, id, expected_version=expected_version)

    async def delete_many(self, ns: str, kind: str, ids: Sequence[str]) -> int:
        return await self.inner.delete_many(ns, kind, ids)

    async def list_ids(
        self,
        ns: str,
        kind: str,
        prefix: str = "",
        *,
        limit: int | None = None,
        cursor: str | None = None,
        reverse: bool = False,
    ) -> list[str]:
        return await self.inner.list_ids(
            ns, kind, prefix, limit=limit, cursor=cursor, reverse=reverse
        )

    async def list_records(
        self,
        ns: str,
        kind: str,
        prefix: str = "",
        *,
        limit: int | None = None,
        cursor: str | None = None,
        reverse: bool = False,
    ) -> list[tuple[str, Record]]:
        return await self.inner.list_records(
            ns, kind, prefix, limit=limit, cursor=cursor, reverse=reverse
        )

    async def kinds(self, ns: str) -> list[str]:
        return await self.inner.kinds(ns)

    async def namespace_stats(self, ns: str) -> NamespaceStats:
        return await self.inner.namespace_stats(ns)

    async def drop_namespace(self, ns: str) -> None:
        await self.inner.drop_namespace(ns)

    async def append(
        self, ns: str, series: str, value: bytes, *, ts: float | None = None
    ) -> SeriesEntry:
        return await self.inner.append(ns, series, value, ts=ts)

    async def replace_series(
        self, ns: str, series: str, entries: Sequence[tuple[float, bytes]]
    ) -> None:
        await self.inner.replace_series(ns, series, entries)

    async def read_series(
        self,
        ns: str,
        series: str,
        *,
        start: float | None = None,
        end: float | None = None,
        limit: int | None = None,
        latest: bool = False,
    ) -> list[SeriesEntry]:
        return await self.inner.read_series(
            ns, series, start=start, end=end, limit=limit, latest=latest
        )

    async def series_names(self, ns: str, prefix: str = "") -> list[str]:
        return await self.inner.series_names(ns, prefix)

    async def delete_series(self, ns: str, series: str) -> int:
        return await self.inner.delete_series(ns, series)

    async def rewrite_series(
        self, ns: str, series: str, changes: Sequence[tuple[int, bytes, bytes]]
    ) -> int:
        return await self.inner.rewrite_series(ns, series, changes)

    async def incr(self, ns: str, kind: str, id: str, field: str, amount: float = 1.0) -> float:
        return await self.inner.incr(ns, kind, id, field, amount)

    async def get_counters(
        self, ns: str, kind: str, ids: Sequence[str]
    ) -> dict[str, dict[str, float]]:
        return await self.inner.get_counters(ns, kind, ids)

    async def delete_counters(self, ns: str, kind: str, id: str) -> bool:
        return await self.inner.delete_counters(ns, kind, id)


class LegacyJson:
    """A serializer from before the codec base classes: a name and two methods."""

    name = "legacyjson"

    def dumps(self, obj: Any) -> bytes:
        try:
            return json.dumps(obj, ensure_ascii=False, allow_nan=False).encode("utf-8")
        except (TypeError, ValueError, UnicodeEncodeError) as exc:
            raise SerializationError(f"legacyjson cannot store it: {exc}") from None

    def loads(self, data: bytes) -> Any:
        return json.loads(data.decode("utf-8"))


class LegacyBz2:
    """A compressor from before the codec base classes, bounding what it decompresses."""

    name = "legacybz2"

    def __init__(self, max_output_size: int | str = 64 * 1024 * 1024) -> None:
        self.max_output_size = int(max_output_size)

    def encode(self, data: bytes) -> bytes | None:
        out = bz2.compress(data)
        return out if len(out) < len(data) else None

    def decode(self, data: bytes) -> bytes:
        stream = bz2.BZ2Decompressor()
        out = stream.decompress(data, self.max_output_size)
        if not stream.eof:
            raise ValueError("truncated bz2 stream, or output over max_output_size")
        if stream.unused_data:
            raise ValueError("trailing bytes after the bz2 stream")
        return out


class LegacyPlugin:
    """Registered the old way: hookimpl from hivemem.plugins, Register from hivemem.hookspecs."""

    @hookimpl
    def hivemem_register_backends(self, register: Register) -> None:
        register("legacy", LegacyBackend, schemes=("legacy",), description="old contract")

    @hookimpl
    def hivemem_register_serializers(self, register: Register) -> None:
        register("legacyjson", LegacyJson)

    @hookimpl
    def hivemem_register_compressors(self, register: Register) -> None:
        register("legacybz2", LegacyBz2)


@pytest.fixture
def hivemem_plugins() -> Plugins:
    """The installed plugins plus the legacy one."""
    return make_plugins(plugins={"legacy": LegacyPlugin()})


def test_the_legacy_backend_implements_the_old_contract_only() -> None:
    """It overrides every old abstract method and no scan; the base class supplies one."""
    old = {
        "close", "ping", "stats", "get", "get_many", "put", "put_many", "delete",
        "delete_many", "list_ids", "list_records", "kinds", "namespace_stats",
        "drop_namespace", "append", "replace_series", "read_series", "series_names",
        "delete_series", "incr", "get_counters", "delete_counters",
    }  # fmt: skip
    own = {name for name, value in vars(LegacyBackend).items() if callable(value)}
    assert old <= own
    # the scan it has is the one the base class built on its listings (and guards)
    assert LegacyBackend.scan.__wrapped__ is Backend._scan_from_listing
    assert not LegacyBackend.__abstractmethods__


class TestLegacyBackend(BackendSuite):
    """The whole backend kit against the old-contract backend."""

    not_applicable = {
        "test_persistent_data_survives_reopen": "the legacy backend wraps a private memory://",
        "test_shared_between_clients": "the legacy backend wraps a private memory://",
    }

    @pytest.fixture
    def backend_url(self) -> str:
        return "legacy://"


class TestLegacySerializer(CodecSuite):
    """The whole codec kit against the duck-typed serializer (no extra JSON types)."""

    extended_types = False
    not_applicable = {
        **NOT_FOR_SERIALIZERS,
        "test_documented_types_round_trip": "the legacy serializer claims no extra types",
    }

    @pytest.fixture
    def codec_kind(self) -> str:
        return "serializer"

    @pytest.fixture
    def codec_name(self) -> str:
        return "legacyjson"


class TestLegacyCompressor(CodecSuite):
    """The whole codec kit against the duck-typed compressor."""

    not_applicable = NOT_FOR_COMPRESSORS

    @pytest.fixture
    def codec_kind(self) -> str:
        return "compressor"

    @pytest.fixture
    def codec_name(self) -> str:
        return "legacybz2"


def test_legacy_codecs_are_adapted_once(hivemem_plugins: Plugins) -> None:
    """The registry hands out the old objects; the pipeline wraps each in its base class."""
    from hivemem.codecs import Compressor, Serializer
    from hivemem.pipeline import Pipeline

    pipeline = Pipeline("legacyjson", "legacybz2", plugins=hivemem_plugins)
    serializer = pipeline.codec("serializer", "legacyjson")
    compressor = pipeline.codec("compressor", "legacybz2")
    assert isinstance(serializer, Serializer) and isinstance(compressor, Compressor)
    assert isinstance(serializer.inner, LegacyJson) and isinstance(compressor.inner, LegacyBz2)
    assert pipeline.codec("serializer", "legacyjson") is serializer
    assert pipeline.codec("compressor", "legacybz2") is compressor
    value = {"text": "legacy " * 500, "n": [1, 2.5, None]}
    assert pipeline.decode(pipeline.encode(value, key="k"), key="k") == value
