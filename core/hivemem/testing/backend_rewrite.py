"""Backend suite, in-place series rewrites (optional: ``supports_series_rewrite``)."""

from __future__ import annotations

import asyncio

from hivemem.backend import Backend, SeriesEntry

from .backend_base import NS, NS2, BackendTestBase, MiB, rng
from .helpers import require_capability

__all__ = ["SeriesRewriteTests"]


class SeriesRewriteTests(BackendTestBase):
    """:meth:`~hivemem.backend.Backend.rewrite_series`: compare-and-set by value, in place."""

    async def test_rewrite_series_replaces_in_place(self, backend: Backend) -> None:
        """rewrite_series swaps values; ts, seq and order stay; the count is exact."""
        require_capability(backend, "supports_series_rewrite")
        for n, ts in enumerate((3.0, 1.0, 2.0, 2.0, 0.5, 2.0)):
            await backend.append(NS, "s", b"old%d" % n, ts=ts)
        before = await backend.read_series(NS, "s")
        picked = [before[0], before[2], before[3], before[5]]
        changes = [(e.seq, e.value, b"new-" + e.value * 3) for e in picked[:3]]
        changes.append((picked[3].seq, picked[3].value, picked[3].value))  # same value: counts
        assert await backend.rewrite_series(NS, "s", changes) == 4
        after = await backend.read_series(NS, "s")
        assert [(e.ts, e.seq) for e in after] == [(e.ts, e.seq) for e in before]
        wanted = {seq: new for seq, _, new in changes}
        assert [e.value for e in after] == [wanted.get(e.seq, e.value) for e in before]
        assert all(type(e.value) is bytes for e in after)
        # reads by range and latest-N see the rewritten values in the same places
        window = await backend.read_series(NS, "s", start=2.0, end=3.0)
        assert window == [e for e in after if 2.0 <= e.ts < 3.0]
        assert await backend.read_series(NS, "s", limit=2, latest=True) == after[-2:]
        # and back again: the rewritten values are now the ones compared against
        back = [(e.seq, wanted[e.seq], e.value) for e in picked]
        assert await backend.rewrite_series(NS, "s", back) == 4
        assert await backend.read_series(NS, "s") == before

    async def test_rewrite_series_skips_changed_values(self, backend: Backend) -> None:
        """An entry whose value is no longer ``old`` is left alone and not counted."""
        require_capability(backend, "supports_series_rewrite")
        for i in range(4):
            await backend.append(NS, "s", b"v%d" % i, ts=float(i))
        e0, e1, e2, e3 = await backend.read_series(NS, "s")
        # another writer got to e1 first
        assert await backend.rewrite_series(NS, "s", [(e1.seq, b"v1", b"theirs")]) == 1
        changes = [
            (e0.seq, b"v0", b"mine0"),  # still current: applied
            (e1.seq, b"v1", b"mine1"),  # stale: the other writer wins
            (e2.seq, b"v", b"mine2"),  # a prefix of the value is not the value
            (e3.seq, b"v3\x00", b"mine3"),  # nor is a longer one
        ]
        assert await backend.rewrite_series(NS, "s", changes) == 1
        after = await backend.read_series(NS, "s")
        assert [e.value for e in after] == [b"mine0", b"theirs", b"v2", b"v3"]
        assert [(e.ts, e.seq) for e in after] == [(e.ts, e.seq) for e in (e0, e1, e2, e3)]

    async def test_rewrite_series_ignores_missing_entries(self, backend: Backend) -> None:
        """Unknown seqs, entries of other series and deleted series are not written."""
        require_capability(backend, "supports_series_rewrite")
        await backend.append(NS, "s", b"same", ts=1.0)
        for _ in range(3):
            await backend.append(NS, "t", b"same", ts=1.0)
        (mine,) = await backend.read_series(NS, "s")
        others = await backend.read_series(NS, "t")
        # seqs are unique within a series only: take those of "t" that "s" does not have
        foreign = [e.seq for e in others if e.seq != mine.seq]
        unused = max(e.seq for e in [mine, *others]) + 1_000_000
        changes = [*((seq, b"same", b"stolen") for seq in foreign), (unused, b"same", b"ghost")]
        assert await backend.rewrite_series(NS, "s", changes) == 0
        assert await backend.read_series(NS, "s") == [mine]
        assert await backend.read_series(NS, "t") == others
        assert await backend.rewrite_series(NS, "nope", [(mine.seq, b"same", b"x")]) == 0
        assert await backend.read_series(NS, "nope") == []
        assert await backend.delete_series(NS, "s") == 1
        assert await backend.rewrite_series(NS, "s", [(mine.seq, b"same", b"late")]) == 0
        assert await backend.read_series(NS, "s") == []
        assert await backend.series_names(NS) == ["t"]
        # entries swapped out by replace_series are gone too
        await backend.replace_series(NS, "t", [(1.0, b"fresh")])
        stale = [(e.seq, b"same", b"late") for e in others]
        assert await backend.rewrite_series(NS, "t", stale) == 0
        assert [e.value for e in await backend.read_series(NS, "t")] == [b"fresh"]

    async def test_rewrite_series_keeps_later_appends(self, backend: Backend) -> None:
        """Entries appended between the read and the rewrite survive unchanged and in order."""
        require_capability(backend, "supports_series_rewrite")
        for i in range(5):
            await backend.append(NS, "s", b"v%d" % i, ts=float(i))
        read = await backend.read_series(NS, "s")
        appended = [
            await backend.append(NS, "s", b"late-a", ts=2.0),  # ties a rewritten ts
            await backend.append(NS, "s", b"late-b", ts=-1.0),  # before everything
            await backend.append(NS, "s", b"late-c", ts=9.0),  # after everything
            await backend.append(NS, "s", b"v0", ts=0.0),  # even with a rewritten value
        ]
        changes = [(e.seq, e.value, e.value.upper()) for e in read]
        assert await backend.rewrite_series(NS, "s", changes) == len(read)
        after = await backend.read_series(NS, "s")
        rewritten = [SeriesEntry(e.ts, e.seq, e.value.upper()) for e in read]
        assert after == sorted(rewritten + appended, key=lambda e: (e.ts, e.seq))

    async def test_rewrite_series_with_concurrent_appends(self, backend: Backend) -> None:
        """Appends racing a rewrite are never lost, reordered or rewritten."""
        require_capability(backend, "supports_series_rewrite")
        for i in range(200):
            await backend.append(NS, "s", b"v%d" % i, ts=float(i % 50))
        read = await backend.read_series(NS, "s")
        changes = [(e.seq, e.value, b"r" + e.value) for e in read]
        halves = (changes[:100], changes[100:])
        results = await asyncio.gather(
            backend.rewrite_series(NS, "s", halves[0]),
            *(backend.append(NS, "s", b"v%d" % i, ts=float(i % 50)) for i in range(30)),
            backend.rewrite_series(NS, "s", halves[1]),
            *(backend.append(NS, "s", b"w%d" % i, ts=float(i)) for i in range(30)),
        )
        counts = [r for r in results if isinstance(r, int)]
        appended = [r for r in results if isinstance(r, SeriesEntry)]
        assert counts == [100, 100] and len(appended) == 60
        rewritten = [SeriesEntry(e.ts, e.seq, b"r" + e.value) for e in read]
        after = await backend.read_series(NS, "s")
        assert after == sorted(rewritten + appended, key=lambda e: (e.ts, e.seq))

    async def test_rewrite_series_isolation(self, backend: Backend) -> None:
        """A rewrite touches its own series only: other series and namespaces are untouched."""
        require_capability(backend, "supports_series_rewrite")
        names = ("s", "s:", "t")
        for ns in (NS, NS2):
            for name in names:
                for i in range(3):
                    await backend.append(ns, name, b"v%d" % i, ts=float(i))
        model = {
            (ns, name): await backend.read_series(ns, name) for ns in (NS, NS2) for name in names
        }
        # the entries of NS/"s", addressed to other series first, then to their own; seqs
        # are unique within a series only, so another series may hold the same seq and value
        changes = [(e.seq, e.value, b"x") for e in model[(NS, "s")]]
        for target in ((NS2, "s"), (NS, "t"), (NS, "s:"), (NS, "s")):
            entries = model[target]
            hits = {
                seq for seq, old, _ in changes for e in entries if (e.seq, e.value) == (seq, old)
            }
            assert await backend.rewrite_series(*target, changes) == len(hits), target
            model[target] = [
                SeriesEntry(e.ts, e.seq, b"x") if e.seq in hits else e for e in entries
            ]
            for key, expected in model.items():
                assert await backend.read_series(*key) == expected, (target, key)
        assert [e.value for e in model[(NS, "s")]] == [b"x"] * 3
        stats = await backend.namespace_stats(NS)
        assert stats.series["s"].length == 3 and stats.series["s"].bytes == 3

    async def test_rewrite_series_empty_changes(self, backend: Backend) -> None:
        """An empty change list returns 0 and changes nothing (and creates no series)."""
        require_capability(backend, "supports_series_rewrite")
        await backend.append(NS, "s", b"a", ts=1.0)
        before = await backend.read_series(NS, "s")
        assert await backend.rewrite_series(NS, "s", []) == 0
        assert await backend.rewrite_series(NS, "missing", []) == 0
        assert await backend.read_series(NS, "s") == before
        assert await backend.series_names(NS) == ["s"]

    async def test_rewrite_series_binary_and_large_values(self, backend: Backend) -> None:
        """Empty, binary and large values are compared and stored byte for byte."""
        require_capability(backend, "supports_series_rewrite")
        limit = backend.capabilities.max_value_size
        size = min(MiB, limit) if limit else MiB
        big = rng().randbytes(size)
        values = [b"", b"\x00", bytes(range(256)), b"*1\r\n$4\r\nPING\r\n", b"\xff\xfe\xc3\x28"]
        for i, value in enumerate(values):
            await backend.append(NS, "s", value, ts=float(i))
        e_empty, e_nul, e_all, e_resp, e_bad = await backend.read_series(NS, "s")
        changes = [
            (e_empty.seq, b"", big),  # empty -> 1 MiB
            (e_nul.seq, b"", b"never"),  # b"" does not match b"\x00"
            (e_all.seq, bytes(range(256)), b""),  # binary -> empty
            (e_resp.seq, b"*1\r\n$4\r\nPING\r\n", bytes(range(255, -1, -1))),
            (e_bad.seq, b"\xff\xfe\xc3", b"never"),
        ]
        assert await backend.rewrite_series(NS, "s", changes) == 3
        got = [e.value for e in await backend.read_series(NS, "s")]
        assert got == [big, b"\x00", b"", bytes(range(255, -1, -1)), b"\xff\xfe\xc3\x28"]
        # a large old value is compared in full: one flipped last byte does not match
        flipped = big[:-1] + bytes([big[-1] ^ 1])
        assert await backend.rewrite_series(NS, "s", [(e_empty.seq, flipped, b"x")]) == 0
        assert await backend.rewrite_series(NS, "s", [(e_empty.seq, big, b"small")]) == 1
        assert (await backend.read_series(NS, "s"))[0].value == b"small"

    async def test_cancelled_rewrite_series_is_never_torn(self, backend: Backend) -> None:
        """A cancelled rewrite leaves each entry old or new, never torn, and loses none."""
        require_capability(backend, "supports_series_rewrite")
        for j in range(16):
            await backend.append(NS, "s", bytes([j]) * 8192, ts=float(j))
        for i in range(self.cancel_rounds // 2):
            before = await backend.read_series(NS, "s")
            new = i.to_bytes(4, "big") + bytes([i % 256]) * 8192
            changes = [(e.seq, e.value, new) for e in before]
            await self._cancel_after(backend.rewrite_series(NS, "s", changes), i % 7)
            after = await backend.read_series(NS, "s")
            assert [(e.ts, e.seq) for e in after] == [(e.ts, e.seq) for e in before]
            for old, now in zip(before, after, strict=True):
                assert now.value in (old.value, new), "torn value after a cancelled rewrite"
        current = await backend.read_series(NS, "s")
        changes = [(e.seq, e.value, b"final") for e in current]
        assert await backend.rewrite_series(NS, "s", changes) == 16
        assert [e.value for e in await backend.read_series(NS, "s")] == [b"final"] * 16
