"""Backend suite, TTL: absolute expiry, hidden from every read, cleared by a plain write."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from hivemem.backend import Backend, KindStats

from .backend_base import NS, NS2, BackendTestBase
from .helpers import eventually, require_capability

__all__ = ["EXPIRY_LISTINGS", "TtlTests"]

#: records that outlive the expiry tests, and records written with the short TTL
EXPIRY_LIVE: dict[str, bytes] = {"a": b"1", "b1": b"22", "b3": b"333", "c": b"4444"}
EXPIRY_DOOMED: dict[str, bytes] = {
    "": b"x", "b": b"x", "b0": b"x", "b2": b"x", "b4": b"x", "d": b"x",
}  # fmt: skip
#: (prefix, cursor, limit): cursors at live and at expired ids; limit 1 pages through
_WINDOWS: list[tuple[str, str | None, int | None]] = [
    ("", None, None),
    ("b", None, None),
    ("", "b1", None),
    ("b", "b2", None),
    ("b", None, 1),
    ("", None, 1),
]
#: kind -> (method, reverse, prefix, cursor, limit): one listing per kind
EXPIRY_LISTINGS: dict[str, tuple[str, bool, str, str | None, int | None]] = {
    f"t-{method}-{n}-{reverse}": (method, reverse, *window)
    for method in ("list_ids", "list_records")
    for reverse in (False, True)
    for n, window in enumerate(_WINDOWS)
}


class TtlTests(BackendTestBase):
    """Records written with a TTL (``supports_ttl``)."""

    async def test_ttl_sets_expires_at(self, backend: Backend) -> None:
        """A TTL write reports its absolute expiry."""
        require_capability(backend, "supports_ttl")
        before = time.time()
        await backend.put(NS, "k", "a", b"1", ttl=30)
        after = time.time()
        rec = await backend.get(NS, "k", "a")
        assert rec is not None and rec.expires_at is not None
        assert before + 30 - 1 <= rec.expires_at <= after + 30 + 1

    async def test_ttl_expiry_hides_record_everywhere(self, backend: Backend) -> None:
        """An expired record is invisible to every read and listing."""
        require_capability(backend, "supports_ttl")
        ttl = self.short_ttl
        written = time.monotonic()
        await backend.put(NS, "t-control", "gone", b"c", ttl=ttl)
        # one expiring record per read path, so no read can clean up for another
        paths = ("get", "get_many", "list_ids", "list_records", "kinds", "stats")
        for path in paths:
            await backend.put(NS, f"t-{path}", "gone", b"g", ttl=ttl)
            await backend.put(NS, f"t-{path}", "keep", b"k")
        await backend.put(NS, "t-lonely", "gone", b"g", ttl=ttl)
        control = await backend.get(NS, "t-control", "gone")
        if time.monotonic() - written < ttl:  # a loaded machine may already be past it
            assert control is not None
        live_kinds = sorted(f"t-{path}" for path in paths)
        checks: dict[str, Callable[[], Any]] = {
            "get": lambda: backend.get(NS, "t-get", "gone"),
            "get_many": lambda: backend.get_many(NS, "t-get_many", ["gone", "keep"]),
            "list_ids": lambda: backend.list_ids(NS, "t-list_ids"),
            "list_records": lambda: backend.list_records(NS, "t-list_records", reverse=True),
            "kinds": lambda: backend.kinds(NS),
            "stats": lambda: backend.namespace_stats(NS),
        }
        wanted: dict[str, Callable[[Any], bool]] = {
            "get": lambda got: got is None,
            "get_many": lambda got: set(got) == {"keep"},
            "list_ids": lambda got: got == ["keep"],
            "list_records": lambda got: [i for i, _ in got] == ["keep"],
            "kinds": lambda got: got == live_kinds,
            "stats": lambda got: (
                sorted(got.kinds) == live_kinds and all(k.count == 1 for k in got.kinds.values())
            ),
        }

        async def control_gone() -> bool:
            return await backend.get(NS, "t-control", "gone") is None

        await eventually(control_gone, timeout=self.expiry_timeout, what="expiry")
        for path in paths:

            async def hidden(path: str = path) -> bool:
                return wanted[path](await checks[path]())

            await eventually(hidden, timeout=self.expiry_timeout, what=f"expiry seen by {path}")
        assert await backend.delete(NS, "t-get", "gone") is False
        assert await backend.delete_many(NS, "t-lonely", ["gone"]) == 0
        assert await backend.delete(NS, "t-get", "keep") is True

    async def test_expiry_is_seen_by_the_first_read_of_every_kind(self, backend: Backend) -> None:
        """Once expired, a record is hidden from every read at once: each path is read once.

        Every read path has a kind of its own (so no read can clean up lazily
        for another): get, get_many, list_ids and list_records in both
        directions, with and without prefix, cursor and a limit that pages
        through expired ids, namespace_stats (count and bytes) and, in a second
        namespace, kinds(). The records that expire are written first and a
        control record with the same TTL last; once the control is gone every
        earlier record has expired by the store's own clock, so each path is
        checked exactly once, with no polling that a clean-up could satisfy.
        """
        require_capability(backend, "supports_ttl")
        read_kinds = ["t-get", "t-get_many", "t-stats", *EXPIRY_LISTINGS]
        await self._write_doomed_and_live(backend, read_kinds)

        async def control_gone() -> bool:
            return await backend.get(NS, "t-control", "x") is None

        await eventually(control_gone, timeout=self.expiry_timeout, what="control expiry")
        for id_ in EXPIRY_DOOMED:
            rec = await backend.get(NS, "t-get", id_)
            assert rec is None, f"get returned expired record {id_!r}"
        for id_, value in EXPIRY_LIVE.items():
            rec = await backend.get(NS, "t-get", id_)
            assert rec is not None and rec.value == value, id_
        got = await backend.get_many(NS, "t-get_many", [*EXPIRY_DOOMED, *EXPIRY_LIVE, "b0"])
        assert {i: r.value for i, r in got.items()} == EXPIRY_LIVE, (
            "get_many returned expired records"
        )
        for kind, listing in EXPIRY_LISTINGS.items():
            await self._check_listing_after_expiry(backend, kind, *listing)
        stats = await backend.namespace_stats(NS)
        size = sum(len(v) for v in EXPIRY_LIVE.values())
        expected = {kind: KindStats(len(EXPIRY_LIVE), size) for kind in sorted(read_kinds)}
        assert stats.kinds == expected, f"namespace_stats counted expired records: {stats.kinds}"
        got_kinds = await backend.kinds(NS2)
        assert got_kinds == ["t-kinds"], f"kinds() returned expired records' kinds: {got_kinds}"

    async def _write_doomed_and_live(self, backend: Backend, read_kinds: list[str]) -> None:
        """Every read kind gets the live records and the doomed ones (by put_many and put).

        The control record, with the same TTL, is written last: it expires last.
        """
        ttl = self.short_ttl
        doomed = list(EXPIRY_DOOMED.items())
        for kind in read_kinds:
            await backend.put_many(NS, kind, EXPIRY_LIVE)
            await backend.put_many(NS, kind, dict(doomed[:3]), ttl=ttl)
            for id_, value in doomed[3:]:
                await backend.put(NS, kind, id_, value, ttl=ttl)
        await backend.put(NS, "t-lonely", "b0", b"x", ttl=ttl)
        await backend.put_many(NS2, "t-kinds", EXPIRY_LIVE)
        await backend.put(NS2, "t-kinds", "b0", b"x", ttl=ttl)
        await backend.put(NS2, "t-kinds-lonely", "b0", b"x", ttl=ttl)
        await backend.put(NS, "t-control", "x", b"x", ttl=ttl)  # last: it expires last

    @staticmethod
    async def _check_listing_after_expiry(
        backend: Backend,
        kind: str,
        method: str,
        reverse: bool,
        prefix: str,
        cursor: str | None,
        limit: int | None,
    ) -> None:
        """One listing (paged by ``limit`` when given) shows exactly the live records."""
        what = f"{method}(prefix={prefix!r}, cursor={cursor!r}, limit={limit}, {reverse=})"
        want = sorted((i for i in EXPIRY_LIVE if i.startswith(prefix)), reverse=reverse)
        if cursor is not None:
            want = [i for i in want if (i < cursor if reverse else i > cursor)]
        rows: list[Any] = []
        if limit is None:
            rows = await getattr(backend, method)(NS, kind, prefix, cursor=cursor, reverse=reverse)
        else:
            page_cursor = cursor
            for _ in range(len(EXPIRY_LIVE) + len(EXPIRY_DOOMED) + 1):  # bounded: stuck cursors
                page = await getattr(backend, method)(
                    NS, kind, prefix, limit=limit, cursor=page_cursor, reverse=reverse
                )
                if not page:
                    break
                assert len(page) <= limit, what
                rows += page
                page_cursor = page[-1] if method == "list_ids" else page[-1][0]
        if method == "list_ids":
            assert rows == want, f"{what} returned expired records: {rows}"
        else:
            assert [i for i, _ in rows] == want, f"{what} returned expired records: {rows}"
            assert all(r.value == EXPIRY_LIVE[i] for i, r in rows), what

    async def test_expired_record_is_recreated_at_version_one(self, backend: Backend) -> None:
        """A record written after expiry is a new record (version 1)."""
        require_capability(backend, "supports_ttl")
        await backend.put(NS, "k", "a", b"1")
        await backend.put(NS, "k", "a", b"2", ttl=self.short_ttl)

        async def gone() -> bool:
            return await backend.get(NS, "k", "a") is None

        await eventually(gone, timeout=self.expiry_timeout, what="expiry")
        if backend.capabilities.supports_cas:
            assert await backend.put(NS, "k", "a", b"3", expected_version=0) == 1
        else:
            assert await backend.put(NS, "k", "a", b"3") == 1

    async def test_write_without_ttl_clears_ttl(self, backend: Backend) -> None:
        """A write without ttl clears an earlier TTL (put, put_many, CAS put)."""
        require_capability(backend, "supports_ttl")
        ttl = self.short_ttl
        await backend.put(NS, "k", "control", b"c", ttl=ttl)
        await backend.put(NS, "k", "put", b"1", ttl=ttl)
        await backend.put(NS, "k", "put", b"2")
        await backend.put_many(NS, "k", {"many": b"1"}, ttl=ttl)
        await backend.put_many(NS, "k", {"many": b"2"})
        if backend.capabilities.supports_cas:
            await backend.put(NS, "k", "cas", b"1", ttl=ttl)
            await backend.put(NS, "k", "cas", b"2", expected_version=1)
        # the control may already have expired on a loaded machine; the others never expire
        survivors = [i for i in await backend.list_ids(NS, "k") if i != "control"]
        expected = ["many", "put"] + (["cas"] if backend.capabilities.supports_cas else [])
        assert sorted(survivors) == sorted(expected)
        for id_ in survivors:
            rec = await backend.get(NS, "k", id_)
            assert rec is not None and rec.expires_at is None, id_

        async def control_gone() -> bool:
            return await backend.get(NS, "k", "control") is None

        # once a record written at the same time with the same TTL has expired,
        # the rewritten ones must still be there
        await eventually(control_gone, timeout=self.expiry_timeout, what="control expiry")
        got = await backend.get_many(NS, "k", survivors)
        assert sorted(got) == sorted(survivors)
        assert all(r.value == b"2" for r in got.values())

    async def test_put_many_ttl(self, backend: Backend) -> None:
        """put_many applies its TTL to every item."""
        require_capability(backend, "supports_ttl")
        written = time.monotonic()
        await backend.put_many(NS, "k", {"a": b"1", "b": b"2"}, ttl=self.short_ttl)
        await backend.put(NS, "k", "c", b"3")
        got = await backend.get_many(NS, "k", ["a", "b"])
        if time.monotonic() - written < self.short_ttl:  # too soon for either to have expired
            assert sorted(got) == ["a", "b"]
        assert all(r.expires_at is not None for r in got.values())  # what is left carries a TTL

        async def gone() -> bool:
            return await backend.list_ids(NS, "k") == ["c"]

        await eventually(gone, timeout=self.expiry_timeout, what="put_many expiry")
        assert set(await backend.get_many(NS, "k", ["a", "b", "c"])) == {"c"}
