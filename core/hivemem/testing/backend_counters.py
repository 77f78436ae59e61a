"""Backend suite, counters and namespaces: incr, batches, kinds, stats, drop_namespace."""

from __future__ import annotations

import asyncio

from hivemem.backend import Backend, KindStats, NamespaceStats

from .backend_base import NS, NS2, BackendTestBase
from .helpers import require_capability

__all__ = ["CounterTests", "NamespaceTests"]


class CounterTests(BackendTestBase):
    """Numeric counters (``supports_counters``)."""

    async def test_incr(self, backend: Backend) -> None:
        """incr creates at 0, adds floats and negatives, returns the new value."""
        require_capability(backend, "supports_counters")
        assert await backend.incr(NS, "q", "s1", "a") == 1.0
        assert await backend.incr(NS, "q", "s1", "a") == 2.0
        assert await backend.incr(NS, "q", "s1", "a", 0.5) == 2.5
        assert await backend.incr(NS, "q", "s1", "a", -4) == -1.5
        value = await backend.incr(NS, "q", "s1", "b", -0.25)
        assert value == -0.25 and isinstance(value, float)
        assert await backend.get_counters(NS, "q", ["s1"]) == {"s1": {"a": -1.5, "b": -0.25}}

    async def test_concurrent_incr_is_exact(self, backend: Backend) -> None:
        """50 concurrent increments are all counted."""
        require_capability(backend, "supports_counters")
        await asyncio.gather(*(backend.incr(NS, "q", "hot", "n") for _ in range(50)))
        await asyncio.gather(*(backend.incr(NS, "q", "hot", "f", 0.25) for _ in range(50)))
        got = await backend.get_counters(NS, "q", ["hot"])
        assert got == {"hot": {"n": 50.0, "f": 12.5}}

    async def test_get_counters_batch(self, backend: Backend) -> None:
        """get_counters returns every field of the ids that have counters."""
        require_capability(backend, "supports_counters")
        await backend.incr(NS, "q", "a", "x", 1)
        await backend.incr(NS, "q", "a", "y", 2)
        await backend.incr(NS, "q", "b", "x", 3)
        await backend.incr(NS, "q2", "c", "x", 4)
        got = await backend.get_counters(NS, "q", ["a", "b", "c", "missing", "a"])
        assert got == {"a": {"x": 1.0, "y": 2.0}, "b": {"x": 3.0}}
        assert await backend.get_counters(NS, "q", []) == {}
        assert await backend.get_counters(NS2, "q", ["a"]) == {}

    async def test_delete_counters(self, backend: Backend) -> None:
        """delete_counters removes all fields of one id."""
        require_capability(backend, "supports_counters")
        await backend.incr(NS, "q", "a", "x")
        await backend.incr(NS, "q", "a", "y")
        await backend.incr(NS, "q", "b", "x")
        assert await backend.delete_counters(NS, "q", "a") is True
        assert await backend.delete_counters(NS, "q", "a") is False
        assert await backend.get_counters(NS, "q", ["a", "b"]) == {"b": {"x": 1.0}}
        assert await backend.incr(NS, "q", "a", "x") == 1.0

    async def test_counters_are_not_records(self, backend: Backend) -> None:
        """Counters and records of the same id are independent."""
        require_capability(backend, "supports_counters")
        await backend.put(NS, "k", "a", b"rec")
        await backend.incr(NS, "k", "a", "n", 5)
        await backend.incr(NS, "only-counters", "z", "n")
        rec = await backend.get(NS, "k", "a")
        assert rec is not None and (rec.value, rec.version) == (b"rec", 1)
        assert await backend.kinds(NS) == ["k"]
        assert await backend.list_ids(NS, "only-counters") == []
        await backend.delete(NS, "k", "a")
        assert await backend.get_counters(NS, "k", ["a"]) == {"a": {"n": 5.0}}


class NamespaceTests(BackendTestBase):
    """Kinds, namespace statistics and dropping a namespace."""

    async def test_kinds(self, backend: Backend) -> None:
        """kinds() lists, sorted, the kinds that hold live records."""
        assert await backend.kinds(NS) == []
        await backend.put(NS, "b", "1", b"x")
        await backend.put(NS, "a", "1", b"x")
        await backend.put(NS, "a:b", "1", b"x")
        await backend.put(NS2, "z", "1", b"x")
        assert await backend.kinds(NS) == ["a", "a:b", "b"]
        await backend.delete(NS, "b", "1")
        assert await backend.kinds(NS) == ["a", "a:b"]
        assert await backend.kinds(NS2) == ["z"]

    async def test_namespace_stats(self, backend: Backend) -> None:
        """namespace_stats counts records and bytes per kind and spans per series."""
        empty = await backend.namespace_stats(NS)
        assert isinstance(empty, NamespaceStats)
        assert empty.kinds == {} and empty.series == {}
        await backend.put_many(NS, "k", {"a": b"12345", "b": b"123"})
        await backend.put(NS, "j", "a", b"1")
        await backend.put(NS2, "k", "zz", b"1" * 100)
        stats = await backend.namespace_stats(NS)
        assert stats.kinds == {"j": KindStats(1, 1), "k": KindStats(2, 8)}
        if backend.capabilities.supports_series:
            await backend.append(NS, "s", b"abc", ts=5.0)
            await backend.append(NS, "s", b"de", ts=2.0)
            stats = await backend.namespace_stats(NS)
            s = stats.series["s"]
            assert (s.length, s.bytes, s.oldest, s.newest) == (2, 5, 2.0, 5.0)
            assert list(stats.series) == ["s"]

    async def test_drop_namespace_isolation(self, backend: Backend) -> None:
        """drop_namespace removes one namespace, not its look-alikes."""
        for ns in (NS, NS2, "hmkit/a", "hmkit/a:b"):
            await backend.put(ns, "k", "id", ns.encode())
            if backend.capabilities.supports_series:
                await backend.append(ns, "s", ns.encode(), ts=1.0)
            if backend.capabilities.supports_counters:
                await backend.incr(ns, "k", "id", "n")
        await backend.drop_namespace(NS)
        await backend.drop_namespace("hmkit/a")
        assert await backend.get(NS, "k", "id") is None
        assert await backend.kinds(NS) == []
        assert await backend.get("hmkit/a", "k", "id") is None
        for ns in (NS2, "hmkit/a:b"):
            rec = await backend.get(ns, "k", "id")
            assert rec is not None and rec.value == ns.encode()
        if backend.capabilities.supports_series:
            assert await backend.read_series(NS, "s") == []
            assert await backend.series_names("hmkit/a") == []
            assert [e.value for e in await backend.read_series(NS2, "s")] == [NS2.encode()]
        if backend.capabilities.supports_counters:
            assert await backend.get_counters(NS, "k", ["id"]) == {}
            assert await backend.get_counters("hmkit/a:b", "k", ["id"]) == {"id": {"n": 1.0}}
        await backend.drop_namespace("never-used-namespace")

    async def test_empty_namespace_is_a_namespace(self, backend: Backend) -> None:
        """The empty string is a namespace of its own."""
        await backend.put("", "hmkit/a", "b", b"empty-ns")
        await backend.put(NS, "hmkit/a", "b", b"kit")
        rec = await backend.get("", "hmkit/a", "b")
        assert rec is not None and rec.value == b"empty-ns"
        assert await backend.list_ids("", "hmkit/a") == ["b"]
