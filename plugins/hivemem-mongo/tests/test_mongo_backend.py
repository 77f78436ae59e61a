"""MongoDB-specific behaviour of hivemem-mongo: layout, chunking, failures, configuration.

The generic backend contract is checked by the conformance kit
(``test_mongo_conformance.py``); these tests cover what only this backend
has. Each runs against a real server when ``MONGODB_URI`` is set and against
the mongomock-motor stand-in otherwise (see :mod:`hivemem_mongo.testing`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
from bson import ObjectId
from hivemem.plugin import (
    BackendClosed,
    BackendUnavailable,
    ConflictError,
    prefix_upper,
)
from hivemem_mongo import documents
from hivemem_mongo.backend import MongoBackend
from hivemem_mongo.testing import MONGODB_URI, MongoTarget
from pymongo.errors import AutoReconnect

MIB = 1024 * 1024

pytestmark = pytest.mark.usefixtures("hivemem_runner")


class Clock:
    """A settable clock for expiry: TTL tests move time instead of sleeping."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    """Replace the backend's expiry clock with a :class:`Clock` starting at real now."""
    import time

    fake = Clock(time.time())
    monkeypatch.setattr(documents, "clock", fake)
    yield fake


class FailingCollection:
    """Wraps a collection; ``insert_many``/``find_one_and_update`` can fail on demand.

    ``fail_insert_after=k`` writes the first ``k`` documents of the next
    ``insert_many`` and then raises ``AutoReconnect``, as a dropped connection
    would. ``fail_update`` makes ``find_one_and_update`` raise before it runs.
    ``block`` (an event) makes ``insert_many`` wait after signalling ``entered``.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.fail_insert_after: int | None = None
        self.fail_update = False
        self.entered = asyncio.Event()
        self.block: asyncio.Event | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def insert_many(self, docs: list[dict[str, Any]], **kwargs: Any) -> Any:
        self.entered.set()
        if self.block is not None:
            await self.block.wait()
        if self.fail_insert_after is not None:
            keep = docs[: self.fail_insert_after]
            if keep:
                await self.inner.insert_many(keep, **kwargs)
            raise AutoReconnect("connection closed by test during insert_many")
        return await self.inner.insert_many(docs, **kwargs)

    async def find_one_and_update(self, *args: Any, **kwargs: Any) -> Any:
        if self.fail_update:
            raise AutoReconnect("connection closed by test before the flip")
        return await self.inner.find_one_and_update(*args, **kwargs)


async def chunk_docs(backend: MongoBackend, **query: Any) -> list[dict[str, Any]]:
    """Raw chunk documents (for asserting what the layout leaves behind)."""
    return await backend._chunks.find(query, {"_id": 0, "d": 0}).to_list(None)


# -- lifecycle ---------------------------------------------------------------------------
async def test_unreachable_server_names_host_not_password() -> None:
    backend = MongoBackend(
        "mongodb://admin:hunter2hunter2@127.0.0.1:1/?serverSelectionTimeoutMS=300"
        "&connectTimeoutMS=300",
    )
    with pytest.raises(BackendUnavailable) as info:
        await backend.open()
    message = str(info.value)
    assert "127.0.0.1:1" in message
    assert "hunter2" not in message and "admin" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__
    await backend.close()
    await backend.close()  # twice is safe


async def test_calls_before_open_and_after_close_fail_clearly(mongo: MongoTarget) -> None:
    from hivemem_mongo.testing import backend_options

    url, opts = backend_options(mongo.client, mongo.prefix)
    backend = MongoBackend(url, **opts)
    with pytest.raises(BackendClosed) as before:
        await backend.get("ns", "k", "x")
    assert str(before.value) == "mongodb backend is not open (call open() first)"
    await backend.open()
    await backend.put("ns", "k", "x", b"1")
    await backend.close()
    with pytest.raises(BackendClosed) as after:
        await backend.get("ns", "k", "x")
    assert str(after.value) == "mongodb backend is closed"
    # the backend's own extra calls are refused the same way
    with pytest.raises(BackendClosed, match="is closed"):
        await backend.collect_garbage()
    with pytest.raises(BackendClosed, match="is closed"):
        await backend.explain_listing("ns", "k")


# -- layout and indexes -----------------------------------------------------------------
async def test_indexes_match_the_documented_layout(backend: MongoBackend) -> None:
    records = await backend._records.index_information()
    assert records["hm_key"]["key"] == [("ns", 1), ("kind", 1), ("id", 1)]
    assert records["hm_key"]["unique"] is True
    assert records["hm_ttl"]["key"] == [("expires_at", 1)]
    assert records["hm_ttl"]["expireAfterSeconds"] == 0
    chunks = await backend._chunks.index_information()
    assert chunks["hm_chunk"]["key"] == [("ns", 1), ("kind", 1), ("id", 1), ("g", 1), ("n", 1)]
    assert chunks["hm_ttl"]["expireAfterSeconds"] == 0
    series = await backend._series.index_information()
    assert series["hm_series"]["key"] == [("ns", 1), ("name", 1), ("ts", 1), ("seq", 1)]
    counters = await backend._counters.index_information()
    assert counters["hm_counter"]["unique"] is True


async def test_record_document_shape(backend: MongoBackend, clock: Clock) -> None:
    await backend.put("ns", "user", "u1", b"abc", ttl=30)
    doc = await backend._records.find_one({"ns": "ns", "kind": "user", "id": "u1"})
    assert doc["v"] == b"abc" and doc["ver"] == 1 and doc["size"] == 3
    assert abs(documents.from_date(doc["expires_at"]) - (clock.now + 30)) < 0.002
    await backend.put("ns", "user", "u1", b"abcd")
    doc = await backend._records.find_one({"ns": "ns", "kind": "user", "id": "u1"})
    assert doc["ver"] == 2 and doc["expires_at"] is None and "g" not in doc


async def test_prefix_upper_bound_is_encodable() -> None:
    assert documents.id_upper("a\ud7ff") == "a\ue000"
    assert documents.id_upper("ab") == prefix_upper("ab") == "ac"
    assert documents.id_upper("\U0010ffff") is None


async def test_listing_orders_by_code_point_including_edge_characters(
    backend: MongoBackend,
) -> None:
    ids = [
        "",
        "\x00",
        "a",
        "a\x00",
        "a\x00b",
        "a\x7f",
        "a\x80",
        "a\ud7ff",
        "a\ue000",
        "a\uffff",
        "a\U0001f600",
        "a\U0010ffff",
        "b",
        "\U0010ffff",
    ]
    await backend.put_many("ns", "k", {i: i.encode("utf-8", "surrogatepass") for i in ids})
    assert await backend.list_ids("ns", "k") == sorted(ids)
    assert await backend.list_ids("ns", "k", reverse=True) == sorted(ids, reverse=True)
    a_ids = sorted(i for i in ids if i.startswith("a"))
    assert await backend.list_ids("ns", "k", "a") == a_ids
    assert await backend.list_ids("ns", "k", "a\ud7ff") == ["a\ud7ff"]
    assert await backend.list_ids("ns", "k", "a\x00") == ["a\x00", "a\x00b"]
    page = await backend.list_ids("ns", "k", "a", limit=3, cursor="a\x7f")
    assert page == a_ids[a_ids.index("a\x7f") + 1 :][:3]
    back = await backend.list_ids("ns", "k", "a", limit=2, cursor="a\ue000", reverse=True)
    assert back == ["a\ud7ff", "a\x80"]


@pytest.mark.real_server
async def test_prefix_listing_is_an_index_range_scan(backend: MongoBackend) -> None:
    await backend.put_many("ns", "reward", {f"agent{i % 50}_{i:05d}": b"x" for i in range(2000)})
    await backend.put_many("ns", "other", {f"agent1_{i:05d}": b"x" for i in range(500)})
    plan = await backend.explain_listing("ns", "reward", "agent1_", limit=10)
    stages = json.dumps(plan["queryPlanner"]["winningPlan"], default=str)
    assert '"IXSCAN"' in stages and '"COLLSCAN"' not in stages
    assert '"hm_key"' in stages
    stats = await backend._listing(
        "ns", "reward", "agent1_", None, None, False, {"_id": 0, "id": 1}
    ).explain()
    execution = stats["executionStats"]
    assert execution["nReturned"] == 40
    # cost follows what is returned, not the 2500 documents stored
    assert execution["totalKeysExamined"] <= 41
    assert execution["totalDocsExamined"] <= 40


# -- versions, CAS and TTL -------------------------------------------------------------------------
async def test_cas_create_and_update(backend: MongoBackend) -> None:
    assert await backend.put("ns", "p", "x", b"1", expected_version=0) == 1
    with pytest.raises(ConflictError) as info:
        await backend.put("ns", "p", "x", b"2", expected_version=0)
    assert info.value.actual == 1
    assert await backend.put("ns", "p", "x", b"2", expected_version=1) == 2
    with pytest.raises(ConflictError) as info:
        await backend.put("ns", "p", "x", b"3", expected_version=1)
    assert (info.value.expected, info.value.actual) == (1, 2)
    assert (await backend.get("ns", "p", "x")).value == b"2"
    with pytest.raises(ConflictError):
        await backend.delete("ns", "p", "x", expected_version=5)
    assert await backend.delete("ns", "p", "x", expected_version=2)
    assert await backend.get("ns", "p", "x") is None


async def test_expired_record_is_hidden_before_the_ttl_monitor_runs(
    backend: MongoBackend, clock: Clock
) -> None:
    await backend.put("ns", "s", "gone", b"1", ttl=5)
    await backend.put("ns", "s", "kept", b"2")
    await backend.put("ns", "t", "only", b"3", ttl=5)
    clock.now += 6
    raw = await backend._records.count_documents({"ns": "ns"})
    assert raw == 3  # still stored: only our read filter hides them
    assert await backend.get("ns", "s", "gone") is None
    assert await backend.get_many("ns", "s", ["gone", "kept"]) == {
        "kept": (await backend.get("ns", "s", "kept"))
    }
    assert await backend.list_ids("ns", "s") == ["kept"]
    assert await backend.kinds("ns") == ["s"]
    stats = await backend.namespace_stats("ns")
    assert list(stats.kinds) == ["s"] and stats.kinds["s"].count == 1
    assert await backend.delete("ns", "s", "gone") is False
    assert await backend.delete_many("ns", "s", ["gone", "kept"]) == 1
    # an expired record counts as absent: CAS create succeeds and versions restart
    assert await backend.put("ns", "t", "only", b"4", expected_version=0) == 1


async def test_put_on_expired_record_restarts_version(backend: MongoBackend, clock: Clock) -> None:
    await backend.put("ns", "k", "x", b"1", ttl=1)
    assert await backend.put("ns", "k", "x", b"2", ttl=1) == 2
    clock.now += 2
    assert await backend.put("ns", "k", "x", b"3") == 1
    rec = await backend.get("ns", "k", "x")
    assert rec is not None and rec.version == 1 and rec.expires_at is None
    await backend.put_many("ns", "k", {"x": b"4", "y": b"5"}, ttl=1)
    both = await backend.get_many("ns", "k", ["x", "y"])
    assert {id: record.version for id, record in both.items()} == {"x": 2, "y": 1}
    clock.now += 2
    await backend.put_many("ns", "k", {"x": b"6"})
    assert (await backend.get("ns", "k", "x")).version == 1


# -- chunked values -----------------------------------------------------------------
async def test_value_over_16_mib_round_trips(backend: MongoBackend) -> None:
    big = bytes(range(256)) * (17 * MIB // 256) + b"tail"
    assert len(big) > 16 * MIB
    assert await backend.put("ns", "policy", "v1", big) == 1
    docs = await chunk_docs(backend, ns="ns", kind="policy", id="v1")
    assert len(docs) == 3  # 8 MiB + 8 MiB + 1 MiB and the tail
    record = await backend._records.find_one({"ns": "ns", "id": "v1"}, {"v": 1, "g": 1, "n": 1})
    assert "v" not in record and record["n"] == 3
    got = await backend.get("ns", "policy", "v1")
    assert got is not None and got.value == big and got.version == 1
    listed = await backend.list_records("ns", "policy")
    assert [(id, record.value == big) for id, record in listed] == [("v1", True)]
    stats = await backend.namespace_stats("ns")
    assert stats.kinds["policy"].bytes == len(big)


async def test_chunk_generations_are_replaced_and_cleaned(mongo: MongoTarget) -> None:
    backend = await mongo.backend(chunk_size=4096)
    one = b"1" * 20_000
    two = b"2" * 9_000
    await backend.put("ns", "k", "x", one)
    first = {doc["g"] for doc in await chunk_docs(backend, id="x")}
    assert len(first) == 1 and len(await chunk_docs(backend, id="x")) == 5
    assert await backend.put("ns", "k", "x", two) == 2
    docs = await chunk_docs(backend, id="x")
    assert len(docs) == 3 and {doc["g"] for doc in docs}.isdisjoint(first)
    assert (await backend.get("ns", "k", "x")).value == two
    # chunked -> inline drops the chunks, inline -> chunked creates them
    assert await backend.put("ns", "k", "x", b"small") == 3
    assert await chunk_docs(backend, id="x") == []
    await backend.put("ns", "k", "x", one)
    await backend.put_many("ns", "k", {"x": b"tiny", "y": two})
    assert {doc["id"] for doc in await chunk_docs(backend)} == {"y"}
    got = await backend.get_many("ns", "k", ["x", "y"])
    assert (got["x"].value, got["y"].value) == (b"tiny", two)
    assert await backend.delete("ns", "k", "y")
    assert await chunk_docs(backend) == []
    await backend.put_many("ns", "k", {"a": one, "b": two})
    assert await backend.delete_many("ns", "k", ["a", "b", "missing"]) == 2
    assert await chunk_docs(backend) == []


async def test_chunked_ttl_and_cas(mongo: MongoTarget, clock: Clock) -> None:
    backend = await mongo.backend(chunk_size=4096)
    value = bytes(range(256)) * 64
    await backend.put("ns", "k", "x", value, ttl=10)
    assert {documents.from_date(doc["expires_at"]) for doc in await chunk_docs(backend)} == {
        (await backend.get("ns", "k", "x")).expires_at
    }
    with pytest.raises(ConflictError):
        await backend.put("ns", "k", "x", value[::-1], expected_version=7)
    docs = await chunk_docs(backend)
    assert len({doc["g"] for doc in docs}) == 1  # the losing write removed its chunks
    assert await backend.put("ns", "k", "x", value[::-1], expected_version=1) == 2
    clock.now += 11  # the rewrite had no ttl: it never expires, nor do its chunks
    rec = await backend.get("ns", "k", "x")
    assert rec is not None and rec.value == value[::-1] and rec.expires_at is None
    assert {doc["expires_at"] for doc in await chunk_docs(backend)} == {None}


async def test_failure_while_writing_chunks_leaves_old_value_readable(mongo: MongoTarget) -> None:
    backend = await mongo.backend(chunk_size=4096)
    old = b"old!" * 5000
    await backend.put("ns", "k", "x", old)
    failing = FailingCollection(backend._chunks)
    backend._chunks = failing
    failing.fail_insert_after = 2
    with pytest.raises(BackendUnavailable, match="AutoReconnect"):
        await backend.put("ns", "k", "x", b"new!" * 6000)
    rec = await backend.get("ns", "k", "x")
    assert rec is not None and rec.value == old and rec.version == 1
    failing.fail_insert_after = None
    # the same failure on the stand-in let the cleanup through; make it strand chunks
    stray = {
        "ns": "ns",
        "kind": "k",
        "id": "x",
        "g": ObjectId.from_datetime(dt.datetime(2001, 1, 1)),
        "n": 0,
        "d": b"zz",
        "expires_at": None,
    }
    await failing.inner.insert_one(stray)
    assert await backend.collect_garbage(min_age=3600) == 1
    assert (await backend.get("ns", "k", "x")).value == old
    assert len({doc["g"] for doc in await chunk_docs(backend)}) == 1


async def test_failure_at_the_flip_leaves_old_value_and_no_new_chunks(
    mongo: MongoTarget,
) -> None:
    backend = await mongo.backend(chunk_size=4096)
    old = b"o" * 10_000
    await backend.put("ns", "k", "x", old)
    before = await chunk_docs(backend)
    failing = FailingCollection(backend._records)
    backend._records = failing
    failing.fail_update = True
    with pytest.raises(BackendUnavailable):
        await backend.put("ns", "k", "x", b"n" * 30_000)
    failing.fail_update = False
    assert (await backend.get("ns", "k", "x")).value == old
    assert await chunk_docs(backend) == before


async def test_cancelled_chunked_write_completes(mongo: MongoTarget) -> None:
    backend = await mongo.backend(chunk_size=4096)
    await backend.put("ns", "k", "x", b"a" * 10_000)
    failing = FailingCollection(backend._chunks)
    failing.block = asyncio.Event()
    backend._chunks = failing
    task = asyncio.ensure_future(backend.put("ns", "k", "x", b"b" * 10_000))
    await failing.entered.wait()
    task.cancel()
    failing.block.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.gather(*backend._pending)  # the shielded write runs to its end
    rec = await backend.get("ns", "k", "x")
    assert rec is not None and rec.value == b"b" * 10_000 and rec.version == 2
    assert len({doc["g"] for doc in await chunk_docs(backend)}) == 1


async def test_collect_garbage_keeps_young_and_live_generations(mongo: MongoTarget) -> None:
    backend = await mongo.backend(chunk_size=4096)
    await backend.put("ns", "k", "live", b"L" * 9000)
    two_minutes_ago = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=120)
    young = {"ns": "ns", "kind": "k", "id": "live", "g": ObjectId(), "n": 0, "d": b"y"}
    aged = {**young, "g": ObjectId.from_datetime(two_minutes_ago)}
    await backend._chunks.insert_many([young, aged])
    assert await backend.collect_garbage(min_age=3600) == 0
    assert await backend.collect_garbage(min_age=60) == 1  # only the aged stray
    left = {doc["g"] for doc in await chunk_docs(backend)}
    assert young["g"] in left and aged["g"] not in left and len(left) == 2
    assert (await backend.get("ns", "k", "live")).value == b"L" * 9000


# -- batches, series, counters -----------------------------------------------------------------
async def test_batches_larger_than_one_query(backend: MongoBackend) -> None:
    backend.batch_size = 40  # 1000 in production; small here so several batches run quickly
    items = {f"id{i:04d}": str(i).encode() for i in range(130)}
    await backend.put_many("ns", "k", items)
    got = await backend.get_many("ns", "k", [*items, "missing", "id0001"])
    assert len(got) == 130 and got["id0129"].value == b"129"
    assert all(rec.version == 1 for rec in got.values())
    await backend.put_many("ns", "k", items)
    again = await backend.get_many("ns", "k", list(items))
    assert {record.version for record in again.values()} == {2}
    for i in range(0, 130, 3):
        await backend.incr("ns", "k", f"id{i:04d}", "hits")
    assert len(await backend.get_counters("ns", "k", list(items))) == 44
    assert len(await backend.list_ids("ns", "k", "id01")) == 30
    assert await backend.delete_many("ns", "k", list(items)[:100]) == 100
    assert await backend._records.count_documents({"ns": "ns"}) == 30


async def test_series_sequence_blocks_are_unique_across_clients(mongo: MongoTarget) -> None:
    one = await mongo.backend(seq_block=3)
    two = await mongo.backend(seq_block=3)
    seqs = []
    for i in range(8):
        writer = one if i % 3 else two
        seqs.append((await writer.append("ns", "rewards", b"%d" % i, ts=100.0)).seq)
    assert len(set(seqs)) == 8
    entries = await one.read_series("ns", "rewards")
    assert [entry.seq for entry in entries] == sorted(seqs)
    # within one client, ties on ts keep insertion order
    own_seqs = {seq for i, seq in enumerate(seqs) if i % 3}
    own = [entry.value for entry in entries if entry.seq in own_seqs]
    assert own == [b"%d" % i for i in range(8) if i % 3]


async def test_replace_series_swaps_whole_series(backend: MongoBackend) -> None:
    for step in range(5):
        await backend.append("ns", "loss", b"old%d" % step, ts=float(step))
    await backend.append("ns", "other", b"keep", ts=1.0)
    await backend.replace_series("ns", "loss", [(2.0, b"b"), (1.0, b"a"), (2.0, b"c")])
    got = await backend.read_series("ns", "loss")
    assert [(entry.ts, entry.value) for entry in got] == [(1.0, b"a"), (2.0, b"b"), (2.0, b"c")]
    assert await backend._series.count_documents({"ns": "ns", "name": "loss"}) == 3
    assert [entry.value for entry in await backend.read_series("ns", "other")] == [b"keep"]
    await backend.replace_series("ns", "loss", [])
    assert await backend.series_names("ns") == ["other"]


async def test_counters_are_one_document_per_field(backend: MongoBackend) -> None:
    odd = "a.b$c\x00"
    assert await backend.incr("ns", "q", "s1", odd, 0.5) == 0.5
    assert await backend.incr("ns", "q", "s1", odd, -2) == -1.5
    assert await backend.incr("ns", "q", "s1", "", 3) == 3.0
    results = await asyncio.gather(*(backend.incr("ns", "q", "s2", "n") for _ in range(50)))
    assert sorted(results) == [float(i) for i in range(1, 51)]
    assert await backend.get_counters("ns", "q", ["s1", "s2", "s3"]) == {
        "s1": {odd: -1.5, "": 3.0},
        "s2": {"n": 50.0},
    }
    assert await backend._counters.count_documents({"ns": "ns", "id": "s1"}) == 2
    assert await backend.delete_counters("ns", "q", "s1")
    assert not await backend.delete_counters("ns", "q", "s1")


async def test_drop_namespace_removes_every_collection_of_it(mongo: MongoTarget) -> None:
    backend = await mongo.backend(chunk_size=4096)
    for ns in ("a", "b"):
        await backend.put(ns, "k", "big", b"x" * 10_000)
        await backend.append(ns, "s", b"1")
        await backend.incr(ns, "c", "i", "f")
    await backend.drop_namespace("a")
    for coll in (backend._records, backend._chunks, backend._series, backend._counters):
        assert await coll.count_documents({"ns": "a"}) == 0
        assert await coll.count_documents({"ns": "b"}) > 0
    assert (await backend.get("b", "k", "big")).value == b"x" * 10_000


async def test_stats_are_json_and_name_no_secret(backend: MongoBackend) -> None:
    await backend.put("ns", "k", "x", b"1")
    stats = await backend.stats()
    json.dumps(stats)
    assert stats["backend"] == "mongodb" and stats["records"] >= 1
    assert stats["database"] == backend.database_name
    assert await backend.ping() is True


# -- real server only -----------------------------------------------------------------
@pytest.mark.real_server
async def test_motor_client_works_the_same_way() -> None:
    from hivemem_mongo.testing import TEST_DB, drop_collections
    from motor.motor_asyncio import AsyncIOMotorClient

    client = AsyncIOMotorClient(MONGODB_URI)
    prefix = "hmt_motor_"
    backend = MongoBackend(MONGODB_URI, client=client, database=TEST_DB, collection_prefix=prefix)
    try:
        await backend.open()
        await backend.put_many("ns", "k", {"a": b"1", "b": b"2" * (9 * MIB)})
        assert (await backend.get("ns", "k", "b")).value == b"2" * (9 * MIB)
        assert await backend.list_ids("ns", "k") == ["a", "b"]
        await backend.replace_series("ns", "s", [(1.0, b"x")])
        stats = await backend.namespace_stats("ns")
        assert stats.kinds["k"].count == 2 and stats.series["s"].length == 1
    finally:
        await backend.close()
        await drop_collections(client, prefix)
        client.close()


@pytest.mark.real_server
async def test_transactions_detected_from_the_topology(backend: MongoBackend) -> None:
    hello = await backend._db.command("hello")
    replicated = bool(hello.get("setName")) or hello.get("msg") == "isdbgrid"
    assert backend.transactions is replicated
    await backend.replace_series("ns", "s", [(1.0, b"a"), (2.0, b"b")])
    assert [entry.value for entry in await backend.read_series("ns", "s")] == [b"a", b"b"]
