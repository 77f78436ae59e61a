"""Backend suite, series: (ts, seq) order, ranges, latest-N, replace, names, delete."""

from __future__ import annotations

import time
from typing import Any

from hivemem.backend import Backend, SeriesEntry

from .backend_base import NS, NS2, BackendTestBase, rng
from .helpers import require_capability

__all__ = ["TIE_ORDER", "SeriesTests"]

#: what a read that breaks ties on ts by anything but seq is told
TIE_ORDER = "entries with equal ts are not in append (seq) order"


class SeriesTests(BackendTestBase):
    """Append-only series (``supports_series``)."""

    async def test_append_and_read(self, backend: Backend) -> None:
        """append returns the stored entry; read_series returns them all."""
        require_capability(backend, "supports_series")
        entries = [await backend.append(NS, "s", b"v%d" % i, ts=float(i)) for i in range(5)]
        assert all(isinstance(e, SeriesEntry) for e in entries)
        assert [e.ts for e in entries] == [0.0, 1.0, 2.0, 3.0, 4.0]
        assert len({e.seq for e in entries}) == 5
        got = await backend.read_series(NS, "s")
        assert got == entries
        assert [e.value for e in got] == [b"v%d" % i for i in range(5)]

    async def test_append_default_ts_is_now(self, backend: Backend) -> None:
        """append without ts stamps the current time."""
        require_capability(backend, "supports_series")
        before = time.time()
        entry = await backend.append(NS, "s", b"x")
        after = time.time()
        assert before - 1 <= entry.ts <= after + 1
        assert (await backend.read_series(NS, "s"))[0].ts == entry.ts

    async def test_series_order_by_ts_then_seq(self, backend: Backend) -> None:
        """Entries order by (ts, seq); equal ts keeps append order."""
        require_capability(backend, "supports_series")
        plan = [3.0, 1.0, 2.0, 1.0, 3.0, 1.0, 2.5]
        appended = [await backend.append(NS, "s", b"%d" % n, ts=ts) for n, ts in enumerate(plan)]
        got = await backend.read_series(NS, "s")
        assert got == sorted(appended, key=lambda e: (e.ts, e.seq))
        # entries with the same ts keep the order they were appended in
        ones = [e.value for e in got if e.ts == 1.0]
        assert ones == [b"1", b"3", b"5"]
        assert len({e.seq for e in got}) == len(plan)

    async def test_series_range_start_inclusive_end_exclusive(self, backend: Backend) -> None:
        """start is inclusive, end exclusive."""
        require_capability(backend, "supports_series")
        for ts in (1.0, 2.0, 2.0, 3.0, 4.0, 5.0):
            await backend.append(NS, "s", b"%g" % ts, ts=ts)

        async def tss(**kw: Any) -> list[float]:
            return [e.ts for e in await backend.read_series(NS, "s", **kw)]

        assert await tss(start=2.0, end=4.0) == [2.0, 2.0, 3.0]
        assert await tss(start=2.0) == [2.0, 2.0, 3.0, 4.0, 5.0]
        assert await tss(end=2.0) == [1.0]
        assert await tss(start=2.5, end=2.6) == []
        assert await tss(start=4.0, end=4.0) == []
        assert await tss(start=0.0, end=100.0) == [1.0, 2.0, 2.0, 3.0, 4.0, 5.0]
        assert await tss(start=1.5, end=4.5) == [2.0, 2.0, 3.0, 4.0]

    async def test_series_limit_and_latest(self, backend: Backend) -> None:
        """limit takes the first N; latest=True the last N, still ascending."""
        require_capability(backend, "supports_series")
        for i in range(10):
            await backend.append(NS, "s", b"%d" % i, ts=float(i))

        async def vals(**kw: Any) -> list[bytes]:
            return [e.value for e in await backend.read_series(NS, "s", **kw)]

        assert await vals(limit=3) == [b"0", b"1", b"2"]
        assert await vals(limit=3, latest=True) == [b"7", b"8", b"9"]
        assert await vals(limit=0) == []
        assert await vals(limit=0, latest=True) == []
        assert await vals(limit=50, latest=True) == [b"%d" % i for i in range(10)]
        assert await vals(start=2.0, end=6.0, limit=2, latest=True) == [b"4", b"5"]
        assert await vals(start=2.0, end=6.0, limit=2) == [b"2", b"3"]
        assert await vals(latest=True) == [b"%d" % i for i in range(10)]

    async def test_latest_with_ts_ties(self, backend: Backend) -> None:
        """latest=True breaks ts ties by seq."""
        require_capability(backend, "supports_series")
        for i in range(6):
            await backend.append(NS, "s", b"%d" % i, ts=7.0)
        got = await backend.read_series(NS, "s", limit=2, latest=True)
        assert [e.value for e in got] == [b"4", b"5"]

    async def test_series_equal_ts_keep_seq_order_whatever_the_values(
        self, backend: Backend
    ) -> None:
        """Ties on ts are ordered by seq (append order), never by value, in every read.

        Ties are appended in descending and in shuffled value order, interleaved
        with other timestamps, so a store that breaks ties by value (say, a
        sorted set keyed by ts and value) reorders them. Plain, limited,
        latest-N and ranged reads, replace_series and (with
        ``supports_series_rewrite``) values rewritten into the opposite order
        must all keep (ts, seq) order.
        """
        require_capability(backend, "supports_series")
        descending = [b"%d" % i for i in range(9, -1, -1)]
        shuffled = [b"v%02d" % i for i in range(10)]
        rng(5).shuffle(shuffled)
        plan = [
            (7.0, b"late"),
            *((5.0, v) for v in descending[:5]),
            (1.0, b"early"),
            *((3.0, v) for v in shuffled[:6]),
            *((5.0, v) for v in descending[5:]),
            *((3.0, v) for v in shuffled[6:]),
        ]
        appended = [await backend.append(NS, "s", v, ts=ts) for ts, v in plan]
        expected = sorted(appended, key=lambda e: (e.ts, e.seq))
        tied = {ts: [e.value for e in expected if e.ts == ts] for ts in (3.0, 5.0)}
        assert tied == {3.0: shuffled, 5.0: descending}, TIE_ORDER
        await self._check_tied_reads(backend, expected)
        await self._check_replace_keeps_given_order(backend)
        if backend.capabilities.supports_series_rewrite:
            await self._check_rewrite_keeps_order(backend, expected)

    @staticmethod
    async def _check_tied_reads(backend: Backend, expected: list[SeriesEntry]) -> None:
        """Plain, limited, latest-N and ranged reads of series ``s`` return ``expected``'s order."""

        async def read(**kw: Any) -> list[SeriesEntry]:
            return await backend.read_series(NS, "s", **kw)

        assert await read() == expected, TIE_ORDER
        for n in (1, 2, 4, 8, 13, 30):
            assert await read(limit=n) == expected[:n], f"limit={n}: {TIE_ORDER}"
            assert await read(limit=n, latest=True) == expected[-n:], f"latest {n}: {TIE_ORDER}"
        for start, end in ((5.0, 7.0), (3.0, 5.0), (3.0, 3.5), (5.0, None), (None, 5.0)):
            window = [
                e
                for e in expected
                if (start is None or e.ts >= start) and (end is None or e.ts < end)
            ]
            where = f"start={start}, end={end}"
            assert await read(start=start, end=end) == window, f"{where}: {TIE_ORDER}"
            for n in (1, 3, 7):
                got = await read(start=start, end=end, limit=n)
                assert got == window[:n], f"{where}, limit={n}: {TIE_ORDER}"
                got = await read(start=start, end=end, limit=n, latest=True)
                assert got == window[-n:], f"{where}, latest {n}: {TIE_ORDER}"

    @staticmethod
    async def _check_replace_keeps_given_order(backend: Backend) -> None:
        """replace_series keeps the given order among equal timestamps."""
        given = [(2.0, b"z"), (1.0, b"m"), (2.0, b"m"), (2.0, b"a"), (2.0, b"q"), (2.0, b"\x00")]
        await backend.replace_series(NS, "r", given)
        got = [(e.ts, e.value) for e in await backend.read_series(NS, "r")]
        assert got == sorted(given, key=lambda e: e[0]), f"replace_series: {TIE_ORDER}"
        got = [(e.ts, e.value) for e in await backend.read_series(NS, "r", limit=2, latest=True)]
        assert got == given[-2:], f"replace_series, latest 2: {TIE_ORDER}"

    @staticmethod
    async def _check_rewrite_keeps_order(backend: Backend, expected: list[SeriesEntry]) -> None:
        """Rewriting the ts=3 ties to values descending in seq order moves nothing."""
        ties = [e for e in expected if e.ts == 3.0]
        changes = [(e.seq, e.value, bytes([0xFF - n])) for n, e in enumerate(ties)]
        assert await backend.rewrite_series(NS, "s", changes) == len(ties)
        after = await backend.read_series(NS, "s")
        assert [(e.ts, e.seq) for e in after] == [(e.ts, e.seq) for e in expected], TIE_ORDER
        got_values = [e.value for e in after if e.ts == 3.0]
        assert got_values == [new for _, _, new in changes], f"rewrite_series: {TIE_ORDER}"

    async def test_replace_series(self, backend: Backend) -> None:
        """replace_series swaps the whole series; empty removes it."""
        require_capability(backend, "supports_series")
        for i in range(5):
            await backend.append(NS, "s", b"old%d" % i, ts=float(i))
        await backend.replace_series(NS, "s", [(3.0, b"c"), (1.0, b"a"), (2.0, b"b"), (2.0, b"b2")])
        got = await backend.read_series(NS, "s")
        assert [(e.ts, e.value) for e in got] == [
            (1.0, b"a"),
            (2.0, b"b"),
            (2.0, b"b2"),
            (3.0, b"c"),
        ]
        assert len({e.seq for e in got}) == 4
        new = await backend.append(NS, "s", b"d", ts=2.0)
        got = await backend.read_series(NS, "s")
        assert len({e.seq for e in got}) == 5
        assert [e.value for e in got] == [b"a", b"b", b"b2", b"d", b"c"]
        assert got[3] == new
        await backend.replace_series(NS, "fresh", [(1.0, b"x")])
        assert [e.value for e in await backend.read_series(NS, "fresh")] == [b"x"]
        await backend.replace_series(NS, "s", [])
        assert await backend.read_series(NS, "s") == []
        assert await backend.series_names(NS) == ["fresh"]

    async def test_series_names(self, backend: Backend) -> None:
        """series_names lists non-empty series by prefix, per namespace."""
        require_capability(backend, "supports_series")
        names = ["r:a", "r:b", "r", "q", "r\x00", "rr", "\U0010ffff", "r\U0010ffff"]
        for name in names:
            await backend.append(NS, name, b"x", ts=1.0)
        await backend.append(NS2, "r:zz", b"x", ts=1.0)
        assert await backend.series_names(NS) == sorted(names)
        assert await backend.series_names(NS, "r") == sorted(n for n in names if n.startswith("r"))
        assert await backend.series_names(NS, "r:") == ["r:a", "r:b"]
        assert await backend.series_names(NS, "\U0010ffff") == ["\U0010ffff"]
        assert await backend.series_names(NS, "zzz") == []
        assert await backend.series_names(NS2) == ["r:zz"]

    async def test_delete_series(self, backend: Backend) -> None:
        """delete_series reports the entries removed and leaves others."""
        require_capability(backend, "supports_series")
        for i in range(4):
            await backend.append(NS, "s", b"%d" % i, ts=float(i))
        await backend.append(NS, "t", b"keep", ts=1.0)
        assert await backend.delete_series(NS, "s") == 4
        assert await backend.read_series(NS, "s") == []
        assert await backend.delete_series(NS, "s") == 0
        assert await backend.series_names(NS) == ["t"]
        assert [e.value for e in await backend.read_series(NS, "t")] == [b"keep"]

    async def test_series_binary_values_and_float_ts(self, backend: Backend) -> None:
        """Binary values and fractional/negative timestamps round-trip."""
        require_capability(backend, "supports_series")
        values = [b"", bytes(range(256)), b"\r\n*1\r\n", b"\x00" * 10]
        stamps = [0.0, 1_700_000_000.125, -5.5, 1e-3]
        for ts, value in zip(stamps, values, strict=True):
            await backend.append(NS, "s", value, ts=ts)
        got = await backend.read_series(NS, "s")
        assert [(e.ts, e.value) for e in got] == sorted(zip(stamps, values, strict=True))
