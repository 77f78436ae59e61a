"""``rewrite_series`` on Redis: in-place, compare-and-set by value, appends never lost.

Every test runs on the session's standalone server and on its 3-master
cluster (``any_url``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from hivemem_redis.backend import RedisBackend
from hivemem_redis.series import REWRITE_BYTES, REWRITE_CHANGES

pytestmark = pytest.mark.usefixtures("hivemem_runner")

NS, SERIES = "ns", "log"
MakeBackend = Callable[..., Awaitable[RedisBackend]]


async def _entries(backend: RedisBackend, series: str = SERIES) -> list[tuple[float, int, bytes]]:
    return [(e.ts, e.seq, e.value) for e in await backend.read_series(NS, series)]


async def _stored_bytes(backend: RedisBackend, series: str = SERIES) -> int:
    return (await backend.namespace_stats(NS)).series[series].bytes


def test_the_capability_is_declared() -> None:
    assert RedisBackend.capabilities.supports_series_rewrite is True


async def test_values_are_replaced_with_ts_and_seq_unchanged(
    any_url: str, make_backend: MakeBackend
) -> None:
    backend = await make_backend(any_url)
    # equal timestamps: their order is the seq's, which must survive the rewrite
    for ts, value in [(1.0, b"a"), (2.0, b"b"), (2.0, b"c"), (2.0, b"d"), (3.5, b"e")]:
        await backend.append(NS, SERIES, value, ts=ts)
    before = await _entries(backend)
    n = await backend.rewrite_series(NS, SERIES, [(3, b"c", b"C-longer"), (1, b"a", b"")])
    assert n == 2
    assert await _entries(backend) == [
        (1.0, 1, b""),
        (2.0, 2, b"b"),
        (2.0, 3, b"C-longer"),
        (2.0, 4, b"d"),
        (3.5, 5, b"e"),
    ]
    assert [(ts, seq) for ts, seq, _ in await _entries(backend)] == [(t, q) for t, q, _ in before]
    assert await _stored_bytes(backend) == len(b"bC-longerde")
    # the next append still gets the next seq and lands in (ts, seq) order
    assert (await backend.append(NS, SERIES, b"f", ts=2.0)).seq == 6
    assert [seq for _, seq, _ in await _entries(backend)] == [1, 2, 3, 4, 6, 5]


async def test_an_entry_whose_value_differs_is_left_alone(
    any_url: str, make_backend: MakeBackend
) -> None:
    backend = await make_backend(any_url)
    for value in (b"x", b"x", b"y"):
        await backend.append(NS, SERIES, value, ts=1.0)
    before = await _entries(backend)
    # wrong old value; another entry's value; a prefix of the value; the value plus a byte
    changes = [(3, b"x", b"new"), (2, b"y", b"new"), (3, b"", b"new"), (1, b"x\x00", b"new")]
    assert await backend.rewrite_series(NS, SERIES, changes) == 0
    assert await _entries(backend) == before
    # equal values at two seqs: only the named seq changes
    assert await backend.rewrite_series(NS, SERIES, [(2, b"x", b"z")]) == 1
    assert [v for _, _, v in await _entries(backend)] == [b"x", b"z", b"y"]


async def test_missing_seqs_and_series_are_ignored(any_url: str, make_backend: MakeBackend) -> None:
    backend = await make_backend(any_url)
    await backend.append(NS, SERIES, b"v", ts=1.0)
    await backend.append(NS, SERIES, b"w", ts=2.0)
    changes = [(0, b"v", b"n"), (3, b"v", b"n"), (-1, b"v", b"n"), (2**64 + 1, b"v", b"n")]
    assert await backend.rewrite_series(NS, SERIES, changes) == 0
    assert await backend.rewrite_series(NS, SERIES, []) == 0
    assert [v for _, _, v in await _entries(backend)] == [b"v", b"w"]
    # a series that does not exist stays absent (no meta key, no registry entry)
    assert await backend.rewrite_series(NS, "nothing", [(1, b"v", b"n")]) == 0
    assert await backend.read_series(NS, "nothing") == []
    assert await backend.series_names(NS) == [SERIES]
    assert list((await backend.namespace_stats(NS)).series) == [SERIES]
    # a deleted entry's seq is never matched again, even by a value it once held
    await backend.delete_series(NS, SERIES)
    assert await backend.rewrite_series(NS, SERIES, [(1, b"v", b"n")]) == 0
    assert await backend.read_series(NS, SERIES) == []


async def test_count_and_chained_changes(any_url: str, make_backend: MakeBackend) -> None:
    backend = await make_backend(any_url)
    for value in (b"a", b"b", b"c"):
        await backend.append(NS, SERIES, value)
    changes = [
        (1, b"a", b"a1"),
        (1, b"a1", b"a2"),  # applies to what the change before wrote
        (1, b"a", b"lost"),  # a no longer holds "a"
        (2, b"b", b"b"),  # unchanged value: still a replaced entry
        (3, b"zzz", b"c1"),
    ]
    assert await backend.rewrite_series(NS, SERIES, changes) == 3
    assert [v for _, _, v in await _entries(backend)] == [b"a2", b"b", b"c"]
    assert await _stored_bytes(backend) == 4


async def test_binary_empty_and_large_values(any_url: str, make_backend: MakeBackend) -> None:
    backend = await make_backend(any_url)
    binary = bytes(range(256)) * 3
    big = bytes(i % 251 for i in range(1024 * 1024))
    for value in (b"", binary, b"\x00", b"small"):
        await backend.append(NS, SERIES, value, ts=5.0)
    n = await backend.rewrite_series(
        NS,
        SERIES,
        [(1, b"", binary), (2, binary, b""), (3, b"\x00", big), (4, b"small", b"\r\n\x00")],
    )
    assert n == 4
    assert [v for _, _, v in await _entries(backend)] == [binary, b"", big, b"\r\n\x00"]
    assert await _stored_bytes(backend) == len(binary) + len(big) + 3
    # a 1 MiB old value is compared exactly, then replaced
    assert await backend.rewrite_series(NS, SERIES, [(3, big[:-1] + b"?", b"no")]) == 0
    assert await backend.rewrite_series(NS, SERIES, [(3, big, b"yes")]) == 1
    assert [v for _, _, v in await _entries(backend)] == [binary, b"", b"yes", b"\r\n\x00"]
    assert await _stored_bytes(backend) == len(binary) + 3 + 3


async def test_long_change_lists_run_in_chunks_and_all_apply(
    any_url: str, make_backend: MakeBackend
) -> None:
    backend = await make_backend(any_url)
    count = 2 * REWRITE_CHANGES + 7
    await backend.replace_series(NS, SERIES, [(float(i), b"%d" % i) for i in range(count)])
    changes = [(i + 1, b"%d" % i, b"v%d" % i) for i in range(count)]
    assert await backend.rewrite_series(NS, SERIES, changes) == count
    assert await _entries(backend) == [(float(i), i + 1, b"v%d" % i) for i in range(count)]
    # and by bytes: more old + new bytes than one script carries
    big = [bytes([i]) * (1024 * 1024) for i in range(REWRITE_BYTES // (2 * 1024 * 1024) + 2)]
    await backend.replace_series(NS, "big", [(1.0, v) for v in big])
    changes = [(i + 1, v, v[:1]) for i, v in enumerate(big)]
    assert await backend.rewrite_series(NS, "big", changes) == len(big)
    assert [v for _, _, v in await _entries(backend, "big")] == [v[:1] for v in big]
    assert await _stored_bytes(backend, "big") == len(big)


async def test_appends_made_meanwhile_are_kept_in_order(
    any_url: str, make_backend: MakeBackend
) -> None:
    writer = await make_backend(any_url)
    # another client on the same keys: its appends race with the rewrite's scripts
    appender = await make_backend(any_url, prefix=writer.settings.prefix)
    count = 3 * REWRITE_CHANGES
    await writer.replace_series(NS, SERIES, [(float(i), b"old%d" % i) for i in range(count)])
    done = asyncio.Event()
    appended: list[tuple[float, int, bytes]] = []
    during = 0  # appends acknowledged while the rewrite was still going

    async def append_until_done() -> None:
        nonlocal during
        i = 0
        while not done.is_set() or i < 20:
            e = await appender.append(NS, SERIES, b"new%d" % i, ts=float(i * 97 % count))
            appended.append((e.ts, e.seq, e.value))
            during += not done.is_set()
            i += 1

    async def rewrite() -> int:
        # one call of three chunks, then calls of 300 changes: appends land in between
        try:
            changes = [(i + 1, b"old%d" % i, b"rewritten%d" % i) for i in range(count)]
            n = await writer.rewrite_series(NS, SERIES, changes[: 3 * REWRITE_CHANGES // 2])
            for at in range(3 * REWRITE_CHANGES // 2, count, 300):
                n += await writer.rewrite_series(NS, SERIES, changes[at : at + 300])
            return n
        finally:
            done.set()

    n, _ = await asyncio.gather(rewrite(), append_until_done())
    assert n == count
    assert during > 0, "no append overlapped the rewrite"
    got = await _entries(writer)
    rewritten = [(float(i), i + 1, b"rewritten%d" % i) for i in range(count)]
    assert sorted(rewritten + appended, key=lambda e: (e[0], e[1])) == got
    # the appends got fresh seqs, in the order they were acknowledged
    seqs = [seq for _, seq, _ in appended]
    assert seqs == sorted(seqs) and seqs[0] > count
    total = sum(len(v) for _, _, v in got)
    assert await _stored_bytes(writer) == total
