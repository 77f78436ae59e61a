"""Backend suite, lifecycle and cancellation: ping, stats, close, reopen, sharing, cancels."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from hivemem.backend import Backend

from .backend_base import NS, BackendTestBase
from .helpers import require_capability

__all__ = ["CancellationTests", "LifecycleTests"]


class LifecycleTests(BackendTestBase):
    """Open, close, persistence across reopen and sharing between clients."""

    async def test_ping(self, backend: Backend) -> None:
        """ping answers True on a healthy store."""
        assert await backend.ping() is True

    async def test_stats_are_json(self, backend: Backend) -> None:
        """stats() is JSON-serializable."""
        await backend.put(NS, "k", "a", b"1")
        stats = await backend.stats()
        assert isinstance(stats, dict)
        assert json.loads(json.dumps(stats)) == stats

    async def test_close_twice_is_safe(self, backend_factory: Callable[[], Backend]) -> None:
        """close may be called twice."""
        other = backend_factory()
        await other.open()
        assert await other.ping() is True
        await other.close()
        await other.close()

    async def test_close_without_open_is_safe(self, backend_factory: Callable[[], Backend]) -> None:
        """close on a never-opened backend is harmless."""
        other = backend_factory()
        await other.close()

    async def test_persistent_data_survives_reopen(
        self, backend_factory: Callable[[], Backend]
    ) -> None:
        """Persistent backends keep records, series and counters across reopen."""
        first = backend_factory()
        require_capability(first, "persistent")
        caps = first.capabilities
        await first.open()
        try:
            await first.drop_namespace(NS)
            await first.put(NS, "k", "a", b"durable")
            await first.put(NS, "k", "a", b"durable2")
            if caps.supports_series:
                await first.append(NS, "s", b"e", ts=1.0)
            if caps.supports_counters:
                await first.incr(NS, "q", "a", "n", 3)
        finally:
            await first.close()
        again = backend_factory()
        await again.open()
        try:
            rec = await again.get(NS, "k", "a")
            assert rec is not None and (rec.value, rec.version) == (b"durable2", 2)
            if caps.supports_series:
                assert [e.value for e in await again.read_series(NS, "s")] == [b"e"]
            if caps.supports_counters:
                assert await again.get_counters(NS, "q", ["a"]) == {"a": {"n": 3.0}}
            await again.drop_namespace(NS)
        finally:
            await again.close()

    async def test_shared_between_clients(
        self, backend: Backend, backend_factory: Callable[[], Backend]
    ) -> None:
        """Shared backends show one client's writes to another."""
        require_capability(backend, "shared")
        other = backend_factory()
        await other.open()
        try:
            await backend.put(NS, "k", "a", b"from-first")
            rec = await other.get(NS, "k", "a")
            assert rec is not None and rec.value == b"from-first"
            assert await other.put(NS, "k", "a", b"from-second") == 2
            rec = await backend.get(NS, "k", "a")
            assert rec is not None and (rec.value, rec.version) == (b"from-second", 2)
            if backend.capabilities.supports_counters:
                await asyncio.gather(
                    *(c.incr(NS, "q", "x", "n") for c in (backend, other) for _ in range(20))
                )
                assert await other.get_counters(NS, "q", ["x"]) == {"x": {"n": 40.0}}
        finally:
            await other.close()


class CancellationTests(BackendTestBase):
    """A cancelled call happened completely or not at all, and leaves the client usable."""

    async def test_cancelled_put_is_all_or_nothing(self, backend: Backend) -> None:
        """A cancelled put leaves the old or the new value, never a torn one."""
        size = 64 * 1024
        written: set[bytes] = set()
        for i in range(self.cancel_rounds):
            value = i.to_bytes(4, "big") + bytes([i % 256]) * size
            written.add(value)
            await self._cancel_after(backend.put(NS, "k", "x", value), i % 7)
            rec = await backend.get(NS, "k", "x")
            assert rec is None or rec.value in written, "torn value after a cancelled put"
        await backend.put(NS, "k", "other", b"other")
        final = await backend.put(NS, "k", "x", b"final")
        rec = await backend.get(NS, "k", "x")
        assert rec is not None and rec.value == b"final" and rec.version == final
        rec = await backend.get(NS, "k", "other")
        assert rec is not None and rec.value == b"other"

    async def test_cancelled_put_many_is_never_torn(self, backend: Backend) -> None:
        """A cancelled put_many never leaves torn values."""
        ids = [f"m{j}" for j in range(16)]
        written: set[bytes] = set()
        for i in range(self.cancel_rounds // 2):
            value = i.to_bytes(4, "big") + bytes([i % 256]) * 8192
            written.add(value)
            await self._cancel_after(backend.put_many(NS, "k", dict.fromkeys(ids, value)), i % 7)
            got = await backend.get_many(NS, "k", ids)
            assert all(r.value in written for r in got.values()), "torn value after cancel"
        await backend.put_many(NS, "k", dict.fromkeys(ids, b"final"))
        got = await backend.get_many(NS, "k", ids)
        assert {k: r.value for k, r in got.items()} == dict.fromkeys(ids, b"final")

    async def test_cancelled_reads_leave_client_consistent(self, backend: Backend) -> None:
        """Cancelled reads never leave a reply that answers a later call."""
        values = {f"r{j}": (b"%d-" % j) * (1000 + j) for j in range(8)}
        await backend.put_many(NS, "k", values)
        for i in range(self.cancel_rounds):
            id_ = f"r{i % 8}"
            await self._cancel_after(backend.get(NS, "k", id_), i % 5)
            await self._cancel_after(backend.get_many(NS, "k", list(values)), (i + 2) % 5)
            # a reply left behind by a cancelled call must never answer the next one
            probe = f"r{(i + 3) % 8}"
            rec = await backend.get(NS, "k", probe)
            assert rec is not None and rec.value == values[probe]
        got = await backend.list_records(NS, "k")
        assert {i: r.value for i, r in got} == values

    async def test_cancelled_incr_counts_once_or_not_at_all(self, backend: Backend) -> None:
        """A cancelled incr adds its amount once or not at all."""
        require_capability(backend, "supports_counters")
        last = 0.0
        for i in range(self.cancel_rounds // 2):
            await self._cancel_after(backend.incr(NS, "q", "c", "n"), i % 5)
            got = await backend.get_counters(NS, "q", ["c"])
            value = got.get("c", {}).get("n", 0.0)
            # each cancelled call adds one or nothing: never twice, never a fraction
            assert value == int(value) and last <= value <= i + 1, (i, value)
            last = value
        assert await backend.incr(NS, "q", "c", "n", 0.5) - 0.5 >= last
