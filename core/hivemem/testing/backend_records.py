"""Backend suite, records: versions, compare-and-set, batches and values."""

from __future__ import annotations

import asyncio

import pytest

from hivemem.backend import Backend, Record
from hivemem.errors import ConflictError, HivememError

from .backend_base import NS, BackendTestBase, MiB, rng
from .helpers import require_capability

__all__ = ["RecordTests"]


class RecordTests(BackendTestBase):
    """Single records, compare-and-set, batches, binary and large values."""

    async def test_get_missing_is_none(self, backend: Backend) -> None:
        """get of an id never written is None."""
        assert await backend.get(NS, "k", "missing") is None

    async def test_put_then_get(self, backend: Backend) -> None:
        """put returns version 1; get returns the exact bytes, version 1, no expiry."""
        version = await backend.put(NS, "k", "a", b"value")
        assert version == 1
        rec = await backend.get(NS, "k", "a")
        assert isinstance(rec, Record)
        assert rec.value == b"value"
        assert type(rec.value) is bytes
        assert rec.version == 1
        assert rec.expires_at is None

    async def test_versions_grow_by_one(self, backend: Backend) -> None:
        """Each write bumps the version by exactly one."""
        versions = [await backend.put(NS, "k", "a", b"v%d" % i) for i in range(5)]
        assert versions == [1, 2, 3, 4, 5]
        rec = await backend.get(NS, "k", "a")
        assert rec is not None and rec.version == 5 and rec.value == b"v4"

    async def test_delete(self, backend: Backend) -> None:
        """delete is True once, then False; other records stay."""
        await backend.put(NS, "k", "a", b"1")
        await backend.put(NS, "k", "b", b"2")
        assert await backend.delete(NS, "k", "a") is True
        assert await backend.get(NS, "k", "a") is None
        assert await backend.delete(NS, "k", "a") is False
        assert await backend.delete(NS, "k", "never") is False
        rec = await backend.get(NS, "k", "b")
        assert rec is not None and rec.value == b"2"

    async def test_recreated_record_starts_at_version_one(self, backend: Backend) -> None:
        """A record created again after delete starts at version 1."""
        await backend.put(NS, "k", "a", b"1")
        await backend.put(NS, "k", "a", b"2")
        await backend.delete(NS, "k", "a")
        assert await backend.put(NS, "k", "a", b"3") == 1

    async def test_overwrite_replaces_value_entirely(self, backend: Backend) -> None:
        """A shorter value fully replaces a longer one (no stale tail)."""
        await backend.put(NS, "k", "a", b"x" * 1000)
        await backend.put(NS, "k", "a", b"y")
        rec = await backend.get(NS, "k", "a")
        assert rec is not None and rec.value == b"y"

    # -- compare-and-set ----------------------------------------------------------------
    async def test_cas_expected_zero_creates(self, backend: Backend) -> None:
        """expected_version=0 creates; a second create conflicts and changes nothing."""
        require_capability(backend, "supports_cas")
        assert await backend.put(NS, "k", "a", b"1", expected_version=0) == 1
        with pytest.raises(ConflictError) as info:
            await backend.put(NS, "k", "a", b"2", expected_version=0)
        assert isinstance(info.value, HivememError)
        assert info.value.expected == 0
        assert info.value.actual == 1
        rec = await backend.get(NS, "k", "a")
        assert rec is not None and (rec.value, rec.version) == (b"1", 1)

    async def test_cas_expected_version_n(self, backend: Backend) -> None:
        """expected_version=n succeeds only at version n; conflicts change nothing."""
        require_capability(backend, "supports_cas")
        await backend.put(NS, "k", "a", b"1")
        await backend.put(NS, "k", "a", b"2")
        assert await backend.put(NS, "k", "a", b"3", expected_version=2) == 3
        for stale in (1, 2, 4, 100):
            with pytest.raises(ConflictError) as info:
                await backend.put(NS, "k", "a", b"bad", expected_version=stale)
            assert info.value.expected == stale
            assert info.value.actual == 3
        rec = await backend.get(NS, "k", "a")
        assert rec is not None and (rec.value, rec.version) == (b"3", 3)

    async def test_cas_on_missing_record(self, backend: Backend) -> None:
        """CAS on a missing record conflicts with actual=None and creates nothing."""
        require_capability(backend, "supports_cas")
        with pytest.raises(ConflictError) as info:
            await backend.put(NS, "k", "a", b"1", expected_version=1)
        assert info.value.actual is None
        assert await backend.get(NS, "k", "a") is None
        assert await backend.list_ids(NS, "k") == []

    async def test_cas_conflict_keeps_ttl_and_value(self, backend: Backend) -> None:
        """A losing CAS does not apply its value or its TTL."""
        require_capability(backend, "supports_cas")
        await backend.put(NS, "k", "a", b"keep")
        with pytest.raises(ConflictError):
            await backend.put(NS, "k", "a", b"x", ttl=0.05, expected_version=7)
        rec = await backend.get(NS, "k", "a")
        assert rec is not None
        assert (rec.value, rec.version, rec.expires_at) == (b"keep", 1, None)

    async def test_cas_delete(self, backend: Backend) -> None:
        """delete honours expected_version like put."""
        require_capability(backend, "supports_cas")
        await backend.put(NS, "k", "a", b"1")
        await backend.put(NS, "k", "a", b"2")
        with pytest.raises(ConflictError) as info:
            await backend.delete(NS, "k", "a", expected_version=1)
        assert (info.value.expected, info.value.actual) == (1, 2)
        rec = await backend.get(NS, "k", "a")
        assert rec is not None and rec.version == 2
        with pytest.raises(ConflictError):
            await backend.delete(NS, "k", "a", expected_version=0)
        assert await backend.delete(NS, "k", "a", expected_version=2) is True
        assert await backend.get(NS, "k", "a") is None
        # "must not exist" holds for a missing record: nothing to delete, no conflict
        assert await backend.delete(NS, "k", "a", expected_version=0) is False
        with pytest.raises(ConflictError):
            await backend.delete(NS, "k", "a", expected_version=2)

    async def test_cas_create_race_has_one_winner(self, backend: Backend) -> None:
        """Concurrent creates with expected_version=0: exactly one wins."""
        require_capability(backend, "supports_cas")

        async def attempt(i: int) -> int | None:
            try:
                return await backend.put(NS, "k", "race", b"%d" % i, expected_version=0)
            except ConflictError:
                return None

        results = await asyncio.gather(*(attempt(i) for i in range(20)))
        winners = [i for i, r in enumerate(results) if r is not None]
        assert len(winners) == 1, results
        rec = await backend.get(NS, "k", "race")
        assert rec is not None and rec.value == b"%d" % winners[0] and rec.version == 1

    async def test_cas_read_modify_write_loses_no_update(self, backend: Backend) -> None:
        """A CAS retry loop from many tasks loses no increment."""
        require_capability(backend, "supports_cas")
        await backend.put(NS, "k", "ctr", b"0")

        async def bump() -> None:
            for _ in range(1000):  # bounded retry loop
                rec = await backend.get(NS, "k", "ctr")
                assert rec is not None
                try:
                    await backend.put(
                        NS, "k", "ctr", b"%d" % (int(rec.value) + 1), expected_version=rec.version
                    )
                    return
                except ConflictError:
                    await asyncio.sleep(0)
            raise AssertionError("CAS retry loop never succeeded")

        await asyncio.gather(*(bump() for _ in range(15)))
        rec = await backend.get(NS, "k", "ctr")
        assert rec is not None and rec.value == b"15" and rec.version == 16

    # -- batches ------------------------------------------------------------------------
    async def test_get_many(self, backend: Backend) -> None:
        """get_many returns live ids only, tolerates duplicates and empty input."""
        await backend.put_many(NS, "k", {"a": b"1", "b": b"2", "c": b"3"})
        got = await backend.get_many(NS, "k", ["a", "missing", "c", "a", "c"])
        assert set(got) == {"a", "c"}
        assert got["a"].value == b"1" and got["c"].value == b"3"
        assert got["a"].version == 1
        assert await backend.get_many(NS, "k", []) == {}
        assert await backend.get_many(NS, "other-kind", ["a"]) == {}

    async def test_put_many_versions_and_overwrite(self, backend: Backend) -> None:
        """put_many creates at 1 and bumps existing versions."""
        await backend.put(NS, "k", "a", b"old")
        await backend.put_many(NS, "k", {"a": b"new", "b": b"fresh"})
        got = await backend.get_many(NS, "k", ["a", "b"])
        assert (got["a"].value, got["a"].version) == (b"new", 2)
        assert (got["b"].value, got["b"].version) == (b"fresh", 1)
        await backend.put_many(NS, "k", {})
        assert await backend.list_ids(NS, "k") == ["a", "b"]

    async def test_delete_many(self, backend: Backend) -> None:
        """delete_many counts each live record once."""
        await backend.put_many(NS, "k", {"a": b"1", "b": b"2", "c": b"3"})
        assert await backend.delete_many(NS, "k", ["a", "a", "missing", "c"]) == 2
        assert await backend.list_ids(NS, "k") == ["b"]
        assert await backend.delete_many(NS, "k", []) == 0
        assert await backend.delete_many(NS, "k", ["a"]) == 0

    async def test_large_batches(self, backend: Backend) -> None:
        """Batches larger than typical chunk sizes round-trip."""
        items = {f"id{i:05d}": b"v%d" % i for i in range(1500)}
        await backend.put_many(NS, "k", items)
        got = await backend.get_many(NS, "k", list(items))
        assert {k: r.value for k, r in got.items()} == items
        assert await backend.list_ids(NS, "k") == sorted(items)
        assert len(await backend.list_records(NS, "k", "id01")) == 500
        assert await backend.delete_many(NS, "k", list(items)) == 1500
        assert await backend.list_ids(NS, "k") == []

    # -- values -------------------------------------------------------------------------
    async def test_binary_values(self, backend: Backend) -> None:
        """Every byte value, empty values and protocol look-alikes round-trip."""
        values = {
            "empty": b"",
            "nul": b"\x00",
            "all": bytes(range(256)) * 4,
            "high": bytes(range(255, -1, -1)),
            "crlf": b"\r\n\r\n",
            "resp": b"*1\r\n$4\r\nPING\r\n",
            "utf8-invalid": b"\xff\xfe\xc3\x28",
        }
        for id_, value in values.items():
            await backend.put(NS, "k", id_, value)
        for id_, value in values.items():
            rec = await backend.get(NS, "k", id_)
            assert rec is not None and rec.value == value, id_
        got = await backend.list_records(NS, "k")
        assert {i: r.value for i, r in got} == values

    async def test_large_values(self, backend: Backend) -> None:
        """Values up to min(max_value_size, large_value_size) round-trip."""
        limit = backend.capabilities.max_value_size
        top = min(self.large_value_size, limit) if limit else self.large_value_size
        seeded = rng()
        sizes = sorted({s for s in (64 * 1024, MiB, top) if s <= top})
        for size in sizes:
            value = seeded.randbytes(size)
            await backend.put(NS, "big", f"v{size}", value)
            rec = await backend.get(NS, "big", f"v{size}")
            assert rec is not None and len(rec.value) == size and rec.value == value
        many = {f"m{i}": seeded.randbytes(min(top, MiB) // 4) for i in range(4)}
        await backend.put_many(NS, "big", many)
        got = await backend.get_many(NS, "big", list(many))
        assert {k: r.value for k, r in got.items()} == many
