"""What the backend leaves in Redis: documented keys, consistent indexes, no keyspace scans."""

from __future__ import annotations

import pytest
from hivemem.testing.helpers import eventually
from hivemem_redis.keys import KeyLayout

pytestmark = pytest.mark.usefixtures("hivemem_runner")


def _keys(server, pattern: bytes) -> list[bytes]:
    return server.command("KEYS", pattern)


async def _workload(b) -> None:
    await b.put("ns", "user", "u1", b"x")
    await b.put("ns", "user", "u2", b"y", ttl=30)
    await b.put_many("ns", "user", {"u3": b"z", "u4": b"w"})
    await b.get("ns", "user", "u1")
    await b.get_many("ns", "user", ["u1", "u2"])
    await b.list_ids("ns", "user", "u")
    await b.list_records("ns", "user", "u", reverse=True)
    await b.kinds("ns")
    await b.append("ns", "history", b"m")
    await b.read_series("ns", "history", latest=True, limit=5)
    await b.series_names("ns")
    await b.incr("ns", "q", "s", "a")
    await b.get_counters("ns", "q", ["s"])
    await b.namespace_stats("ns")
    await b.delete("ns", "user", "u1")
    await b.delete_many("ns", "user", ["u3"])
    await b.delete_series("ns", "history")
    await b.delete_counters("ns", "q", "s")
    await b.drop_namespace("ns")


async def test_no_keyspace_scan_and_nothing_left_behind(redis_server_factory, make_backend):
    server = redis_server_factory()
    b = await make_backend(server.url, prefix="datamcp:")
    await b.put("keep", "user", "u", b"v")
    await _workload(b)
    stats = server.command("INFO", "commandstats").decode()
    assert "cmdstat_keys:" not in stats and "cmdstat_scan:" not in stats
    assert "cmdstat_evalsha:" in stats
    # only the untouched namespace remains, and every key carries the prefix
    left = _keys(server, b"*")
    assert left and all(
        k.startswith(b"datamcp:{k:keep:user}:") or k == b"datamcp:{n:keep}:K" for k in left
    )


async def test_expired_ids_leave_the_index(redis_server, make_backend):
    b = await make_backend(redis_server.url)
    kk = KeyLayout(b.settings.prefix).kind("ns", "k")
    await b.put_many("ns", "k", {f"t{i}": b"" for i in range(50)}, ttl=0.1)
    # both index structures hold them (only a later write or listing purges: none yet,
    # however long the write took)
    assert redis_server.command("ZCARD", kk.index) == 50
    assert redis_server.command("ZCARD", kk.expiry) == 50
    await b.put("ns", "k", "live", b"")

    async def only_live() -> bool:
        return await b.list_ids("ns", "k") == ["live"]

    await eventually(only_live, timeout=30, what="expired ids hidden from listing")
    # the listing that met them removed them from both index structures
    assert redis_server.command("ZCARD", kk.index) == 1
    assert redis_server.command("ZCARD", kk.expiry) == 0


async def test_writes_purge_expired_index_entries_a_few_at_a_time(redis_server, make_backend):
    b = await make_backend(redis_server.url)
    kk = KeyLayout(b.settings.prefix).kind("ns", "k")
    expiring = 40
    await b.put_many("ns", "k", {f"t{i}": b"" for i in range(expiring)}, ttl=0.05)

    async def expired() -> bool:
        return await b.get_many("ns", "k", [f"t{i}" for i in range(expiring)]) == {}

    await eventually(expired, timeout=30, what="expiry")
    # each write purges some expired entries, never all of them at once (bounded work)
    await b.put("ns", "k", "w0", b"")
    left = redis_server.command("ZCARD", kk.expiry)
    assert 0 < left < expiring
    writes = 1
    while left:  # ... and enough writes purge them all, the index too
        await b.put("ns", "k", f"w{writes}", b"")
        writes += 1
        now = redis_server.command("ZCARD", kk.expiry)
        assert now < left, "a write purged nothing"
        left = now
    assert writes < expiring
    assert redis_server.command("ZCARD", kk.index) == writes


async def test_drop_namespace_in_batches(any_url, make_backend):
    b = await make_backend(any_url)
    await b.put_many("big", "k", {f"{i:05}": b"v" for i in range(2500)})
    for i in range(1100):  # more counter ids than one drop script handles
        await b.incr("big", "k", f"{i}", "f")
    await b.put("small", "k", "x", b"")
    await b.drop_namespace("big")
    assert await b.list_ids("big", "k", limit=1) == []
    assert await b.get_counters("big", "k", ["0", "600", "1099"]) == {}
    assert await b.list_ids("small", "k") == ["x"]


async def test_kinds_spread_over_every_cluster_master(redis_cluster, make_backend):
    b = await make_backend(redis_cluster.url)
    for i in range(30):
        await b.put("ns", f"kind{i}", "id", b"v")
    prefix = b.settings.prefix
    per_node = [len(node.command("KEYS", prefix + b"*")) for node in redis_cluster.nodes]
    assert all(n > 0 for n in per_node), per_node
    assert len(await b.kinds("ns")) == 30


async def test_record_is_a_header_then_the_value(redis_server, make_backend):
    b = await make_backend(redis_server.url)
    kk = KeyLayout(b.settings.prefix).kind("ns", "k")
    await b.put("ns", "k", "a", b"hello")
    await b.put("ns", "k", "a", b"world")
    assert redis_server.command("GET", kk.record("a")) == b"0000000000000002" + b"0" * 16 + b"world"
    await b.put("ns", "k", "t", b"v", ttl=60)
    raw = redis_server.command("GET", kk.record("t"))
    expires_ms = int(raw[16:32], 16)
    assert raw[:16] == b"0000000000000001" and raw[32:] == b"v"
    # header, server-side TTL and expiry index agree to the millisecond
    assert redis_server.command("PEXPIRETIME", kk.record("t")) == expires_ms
    assert int(float(redis_server.command("ZSCORE", kk.expiry, b"t"))) == expires_ms


@pytest.mark.parametrize("flush", [False, True], ids=["cached-script", "after-script-flush"])
async def test_large_batch_values_are_staged_and_leave_nothing_behind(
    redis_server, make_backend, flush
):
    from hivemem_redis.backend import STAGE_MIN

    b = await make_backend(redis_server.url)
    kk = KeyLayout(b.settings.prefix).kind("ns", "k")
    big = {f"big{i}": bytes([65 + i]) * (STAGE_MIN + i) for i in range(3)}
    small = {"s1": b"x", "s2": b"y" * 100}
    await b.put("ns", "k", "big1", b"old", ttl=60)  # version 1, with a TTL to clear
    if flush:
        redis_server.command("SCRIPT", "FLUSH")  # the staged transaction must fall back to EVAL
    await b.put_many("ns", "k", {**big, **small})
    got = await b.get_many("ns", "k", [*big, *small])
    assert {k: r.value for k, r in got.items()} == {**big, **small}
    assert got["big1"].version == 2 and got["big0"].version == 1
    assert all(r.expires_at is None for r in got.values())
    assert redis_server.command("ZCARD", kk.expiry) == 0  # big1's TTL entry went with its TTL
    await b.put_many("ns", "k", big, ttl=30)
    got = await b.get_many("ns", "k", list(big))
    assert all(r.expires_at is not None for r in got.values())
    assert redis_server.command("ZCARD", kk.expiry) == 3
    assert sorted(await b.list_ids("ns", "k")) == sorted([*big, *small])
    staging = kk.index[:-1] + b"s*"
    assert redis_server.command("KEYS", staging) == []


async def test_every_write_path_recovers_from_a_script_flush(redis_server, make_backend):
    """After ``SCRIPT FLUSH`` (a restart, a failover) each path falls back to EVAL once."""
    b = await make_backend(redis_server.url)
    await b.put("ns", "k", "a", b"1")
    checks = [
        lambda: b.put("ns", "k", "a", b"2"),
        lambda: b.put("ns", "k", "b", b"x", expected_version=0),
        lambda: b.put_many("ns", "k", {"c": b"3", "d": b"4"}),
        lambda: b.delete("ns", "k", "d"),
        lambda: b.delete_many("ns", "k", ["c"]),
        lambda: b.list_ids("ns", "k"),
    ]
    for check in checks:
        redis_server.command("SCRIPT", "FLUSH")
        await check()
    assert await b.list_ids("ns", "k") == ["a", "b"]
    assert (await b.get("ns", "k", "a")).version == 2
