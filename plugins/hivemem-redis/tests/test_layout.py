"""What the backend leaves in Redis: documented keys, consistent indexes, no keyspace scans."""

from __future__ import annotations

import pytest
from hivemem.testing.helpers import eventually
from hivemem_redis.keys import KeyLayout

pytestmark = pytest.mark.usefixtures("hivemem_runner")


def _keys(server, pattern: bytes) -> list[bytes]:
    return server.command("KEYS", pattern)


async def _workload(backend) -> None:
    await backend.put("ns", "user", "u1", b"x")
    await backend.put("ns", "user", "u2", b"y", ttl=30)
    await backend.put_many("ns", "user", {"u3": b"z", "u4": b"w"})
    await backend.get("ns", "user", "u1")
    await backend.get_many("ns", "user", ["u1", "u2"])
    await backend.list_ids("ns", "user", "u")
    await backend.list_records("ns", "user", "u", reverse=True)
    await backend.kinds("ns")
    await backend.append("ns", "history", b"m")
    await backend.read_series("ns", "history", latest=True, limit=5)
    await backend.series_names("ns")
    await backend.incr("ns", "q", "s", "a")
    await backend.get_counters("ns", "q", ["s"])
    await backend.namespace_stats("ns")
    await backend.delete("ns", "user", "u1")
    await backend.delete_many("ns", "user", ["u3"])
    await backend.delete_series("ns", "history")
    await backend.delete_counters("ns", "q", "s")
    await backend.drop_namespace("ns")


async def test_no_keyspace_scan_and_nothing_left_behind(redis_server_factory, make_backend):
    server = redis_server_factory()
    backend = await make_backend(server.url, prefix="datamcp:")
    await backend.put("keep", "user", "u", b"v")
    await _workload(backend)
    stats = server.command("INFO", "commandstats").decode()
    assert "cmdstat_keys:" not in stats and "cmdstat_scan:" not in stats
    assert "cmdstat_evalsha:" in stats
    # only the untouched namespace remains, and every key carries the prefix
    left = _keys(server, b"*")
    assert left and all(
        k.startswith(b"datamcp:{k:keep:user}:") or k == b"datamcp:{n:keep}:K" for k in left
    )


async def test_expired_ids_leave_the_index(redis_server, make_backend):
    backend = await make_backend(redis_server.url)
    kind_keys = KeyLayout(backend.settings.prefix).kind("ns", "k")
    await backend.put_many("ns", "k", {f"t{i}": b"" for i in range(50)}, ttl=0.1)
    # both index structures hold them (only a later write or listing purges: none yet,
    # however long the write took)
    assert redis_server.command("ZCARD", kind_keys.index) == 50
    assert redis_server.command("ZCARD", kind_keys.expiry) == 50
    await backend.put("ns", "k", "live", b"")

    async def only_live() -> bool:
        return await backend.list_ids("ns", "k") == ["live"]

    await eventually(only_live, timeout=30, what="expired ids hidden from listing")
    # the listing that met them removed them from both index structures
    assert redis_server.command("ZCARD", kind_keys.index) == 1
    assert redis_server.command("ZCARD", kind_keys.expiry) == 0


async def test_writes_purge_expired_index_entries_a_few_at_a_time(redis_server, make_backend):
    backend = await make_backend(redis_server.url)
    kind_keys = KeyLayout(backend.settings.prefix).kind("ns", "k")
    expiring = 40
    await backend.put_many("ns", "k", {f"t{i}": b"" for i in range(expiring)}, ttl=0.05)

    async def expired() -> bool:
        return await backend.get_many("ns", "k", [f"t{i}" for i in range(expiring)]) == {}

    await eventually(expired, timeout=30, what="expiry")
    # each write purges some expired entries, never all of them at once (bounded work)
    await backend.put("ns", "k", "w0", b"")
    left = redis_server.command("ZCARD", kind_keys.expiry)
    assert 0 < left < expiring
    writes = 1
    while left:  # ... and enough writes purge them all, the index too
        await backend.put("ns", "k", f"w{writes}", b"")
        writes += 1
        now = redis_server.command("ZCARD", kind_keys.expiry)
        assert now < left, "a write purged nothing"
        left = now
    assert writes < expiring
    assert redis_server.command("ZCARD", kind_keys.index) == writes


async def test_drop_namespace_in_batches(any_url, make_backend):
    backend = await make_backend(any_url)
    await backend.put_many("big", "k", {f"{i:05}": b"v" for i in range(2500)})
    for i in range(1100):  # more counter ids than one drop script handles
        await backend.incr("big", "k", f"{i}", "f")
    await backend.put("small", "k", "x", b"")
    await backend.drop_namespace("big")
    assert await backend.list_ids("big", "k", limit=1) == []
    assert await backend.get_counters("big", "k", ["0", "600", "1099"]) == {}
    assert await backend.list_ids("small", "k") == ["x"]


async def test_kinds_spread_over_every_cluster_master(redis_cluster, make_backend):
    backend = await make_backend(redis_cluster.url)
    for i in range(30):
        await backend.put("ns", f"kind{i}", "id", b"v")
    prefix = backend.settings.prefix
    per_node = [len(node.command("KEYS", prefix + b"*")) for node in redis_cluster.nodes]
    assert all(n > 0 for n in per_node), per_node
    assert len(await backend.kinds("ns")) == 30


async def test_record_is_a_header_then_the_value(redis_server, make_backend):
    backend = await make_backend(redis_server.url)
    kind_keys = KeyLayout(backend.settings.prefix).kind("ns", "k")
    await backend.put("ns", "k", "a", b"hello")
    await backend.put("ns", "k", "a", b"world")
    stored = redis_server.command("GET", kind_keys.record("a"))
    assert stored == b"0000000000000002" + b"0" * 16 + b"world"
    await backend.put("ns", "k", "t", b"v", ttl=60)
    raw = redis_server.command("GET", kind_keys.record("t"))
    expires_ms = int(raw[16:32], 16)
    assert raw[:16] == b"0000000000000001" and raw[32:] == b"v"
    # header, server-side TTL and expiry index agree to the millisecond
    assert redis_server.command("PEXPIRETIME", kind_keys.record("t")) == expires_ms
    assert int(float(redis_server.command("ZSCORE", kind_keys.expiry, b"t"))) == expires_ms


@pytest.mark.parametrize("flush", [False, True], ids=["cached-script", "after-script-flush"])
async def test_large_batch_values_are_staged_and_leave_nothing_behind(
    redis_server, make_backend, flush
):
    from hivemem_redis.records import STAGE_MIN

    backend = await make_backend(redis_server.url)
    kind_keys = KeyLayout(backend.settings.prefix).kind("ns", "k")
    big = {f"big{i}": bytes([65 + i]) * (STAGE_MIN + i) for i in range(3)}
    small = {"s1": b"x", "s2": b"y" * 100}
    await backend.put("ns", "k", "big1", b"old", ttl=60)  # version 1, with a TTL to clear
    if flush:
        redis_server.command("SCRIPT", "FLUSH")  # the staged transaction must fall back to EVAL
    await backend.put_many("ns", "k", {**big, **small})
    got = await backend.get_many("ns", "k", [*big, *small])
    assert {k: r.value for k, r in got.items()} == {**big, **small}
    assert got["big1"].version == 2 and got["big0"].version == 1
    assert all(r.expires_at is None for r in got.values())
    # big1's TTL entry went with its TTL
    assert redis_server.command("ZCARD", kind_keys.expiry) == 0
    await backend.put_many("ns", "k", big, ttl=30)
    got = await backend.get_many("ns", "k", list(big))
    assert all(r.expires_at is not None for r in got.values())
    assert redis_server.command("ZCARD", kind_keys.expiry) == 3
    assert sorted(await backend.list_ids("ns", "k")) == sorted([*big, *small])
    staging = kind_keys.index[:-1] + b"s*"
    assert redis_server.command("KEYS", staging) == []


async def test_every_write_path_recovers_from_a_script_flush(redis_server, make_backend):
    """After ``SCRIPT FLUSH`` (a restart, a failover) each path falls back to EVAL once."""
    backend = await make_backend(redis_server.url)
    await backend.put("ns", "k", "a", b"1")
    checks = [
        lambda: backend.put("ns", "k", "a", b"2"),
        lambda: backend.put("ns", "k", "b", b"x", expected_version=0),
        lambda: backend.put_many("ns", "k", {"c": b"3", "d": b"4"}),
        lambda: backend.delete("ns", "k", "d"),
        lambda: backend.delete_many("ns", "k", ["c"]),
        lambda: backend.list_ids("ns", "k"),
    ]
    for check in checks:
        redis_server.command("SCRIPT", "FLUSH")
        await check()
    assert await backend.list_ids("ns", "k") == ["a", "b"]
    assert (await backend.get("ns", "k", "a")).version == 2
