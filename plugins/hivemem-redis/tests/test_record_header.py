"""A stored record string is input: a corrupt header is a FrameError naming the record.

Garbage is written straight into Redis with a separate redis-py client, at
the record's real key, over a record that the backend wrote (so its index
entry exists), on the standalone server and on the 3-master cluster. Every
read path (``get``, ``get_many``, ``list_records``, ``Memory.get``/``list``)
must raise :class:`~hivemem.errors.FrameError` naming ``kind/id`` -- never a
bare ``ValueError`` and never "absent" -- while the other records of the kind
still read. Write scripts must treat the header as "no version".
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import hivemem
import pytest
import redis
from hivemem.errors import FrameError
from hivemem_redis.backend import RedisBackend
from hivemem_redis.keys import KeyLayout
from redis.cluster import ClusterNode, RedisCluster

pytestmark = pytest.mark.usefixtures("hivemem_runner")

NS, KIND, BAD = "ns", "doc", "bad"
LABEL = f"{KIND}/{BAD}"

#: stored strings that are not a record: each would once have been misread
GARBAGE: dict[str, bytes] = {
    # shorter than the 32-byte header (int() used to parse the 10 bytes it got)
    "truncated": b"0000000001",
    # 32 bytes of header that are not hex digits, then a value
    "non_hex": b"zz" * 16 + b"value",
    # int(..., 16) accepts surrounding spaces, a sign and underscores
    "spaced": b" 000000000000001" + b"0" * 16 + b"value",
    "signed": b"-000000000000001" + b"0" * 16 + b"value",
    "underscored": b"0_00000000000001" + b"0" * 16 + b"value",
    # used to read as "absent"
    "empty": b"",
}
#: the corrupt strings that GETRANGE does not mistake for a missing record
NON_EMPTY = [name for name, raw in GARBAGE.items() if raw]


@dataclass
class Store:
    """One Redis deployment: the backend URL and a separate raw redis-py client."""

    url: str
    raw: Any

    def set(self, key: bytes, value: bytes) -> None:
        """Write ``value`` at ``key`` behind the backend's back."""
        assert self.raw.set(key, value)

    def exists(self, key: bytes) -> bool:
        """Whether ``key`` exists."""
        return bool(self.raw.exists(key))


@pytest.fixture(params=["standalone", "cluster"])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """The session's standalone server, then its cluster, each with a raw client."""
    if request.param == "cluster":
        cluster = request.getfixturevalue("redis_cluster")
        nodes = [ClusterNode(host, port) for host, port in cluster.addresses]
        store = Store(cluster.url, RedisCluster(startup_nodes=nodes))
    else:
        server = request.getfixturevalue("redis_server")
        store = Store(server.url, redis.Redis(host=server.host, port=server.port))
    try:
        yield store
    finally:
        store.raw.close()


MakeBackend = Callable[..., Awaitable[RedisBackend]]


def _record_key(backend: RedisBackend, id: str) -> bytes:
    return KeyLayout(backend.settings.prefix).kind(NS, KIND).record(id)


async def _corrupt_kind(store: Store, make_backend: MakeBackend, garbage: bytes) -> RedisBackend:
    """A kind with records ``a``, ``bad`` and ``c``; ``bad`` then overwritten with garbage."""
    backend = await make_backend(store.url)
    await backend.put_many(NS, KIND, {"a": b"A", BAD: b"B", "c": b"C"})
    store.set(_record_key(backend, BAD), garbage)
    return backend


def _names_the_record(exc: pytest.ExceptionInfo[FrameError]) -> None:
    assert exc.value.key == LABEL
    assert repr(LABEL) in str(exc.value)


@pytest.mark.parametrize("case", list(GARBAGE))
async def test_every_read_path_raises_frame_error_naming_the_record(
    store: Store, make_backend: MakeBackend, case: str
) -> None:
    backend = await _corrupt_kind(store, make_backend, GARBAGE[case])
    with pytest.raises(FrameError) as exc:
        await backend.get(NS, KIND, BAD)
    _names_the_record(exc)
    with pytest.raises(FrameError) as exc:
        await backend.get_many(NS, KIND, ["a", BAD, "c"])
    _names_the_record(exc)
    with pytest.raises(FrameError) as exc:
        await backend.list_records(NS, KIND)
    _names_the_record(exc)
    with pytest.raises(FrameError) as exc:
        await backend.list_records(NS, KIND, reverse=True, limit=2)
    _names_the_record(exc)


@pytest.mark.parametrize("case", list(GARBAGE))
async def test_the_other_records_still_read(
    store: Store, make_backend: MakeBackend, case: str
) -> None:
    backend = await _corrupt_kind(store, make_backend, GARBAGE[case])
    a = await backend.get(NS, KIND, "a")
    assert a is not None and (a.value, a.version) == (b"A", 1)
    many = await backend.get_many(NS, KIND, ["a", "c", "missing"])
    assert {id: r.value for id, r in many.items()} == {"a": b"A", "c": b"C"}
    first = await backend.list_records(NS, KIND, limit=1)
    assert [(id, r.value) for id, r in first] == [("a", b"A")]
    assert [(id, r.value) for id, r in await backend.list_records(NS, KIND, "c")] == [("c", b"C")]
    # the id is stored, so id listings and the kind statistics keep it
    assert await backend.list_ids(NS, KIND) == ["a", BAD, "c"]
    stats = await backend.namespace_stats(NS)
    assert stats.kinds[KIND].count == 3
    assert stats.kinds[KIND].bytes == 2 + max(len(GARBAGE[case]) - 32, 0)
    # ... and the statistics walk did not drop its index entry
    assert await backend.list_ids(NS, KIND) == ["a", BAD, "c"]
    assert await backend.kinds(NS) == [KIND]


async def test_absent_is_still_none(store: Store, make_backend: MakeBackend) -> None:
    backend = await _corrupt_kind(store, make_backend, GARBAGE["empty"])
    assert await backend.get(NS, KIND, "never-written") is None
    assert await backend.get_many(NS, KIND, ["never-written"]) == {}


@pytest.mark.parametrize("case", NON_EMPTY)
async def test_compare_and_set_refuses_a_corrupt_header(
    store: Store, make_backend: MakeBackend, case: str
) -> None:
    backend = await _corrupt_kind(store, make_backend, GARBAGE[case])
    for expected in (0, 1):
        with pytest.raises(FrameError) as exc:
            await backend.put(NS, KIND, BAD, b"new", expected_version=expected)
        _names_the_record(exc)
        with pytest.raises(FrameError) as exc:
            await backend.delete(NS, KIND, BAD, expected_version=expected)
        _names_the_record(exc)
    # nothing was changed by the refused writes
    assert store.raw.get(_record_key(backend, BAD)) == GARBAGE[case]


@pytest.mark.parametrize("case", list(GARBAGE))
async def test_an_unconditional_put_replaces_a_corrupt_record(
    store: Store, make_backend: MakeBackend, case: str
) -> None:
    backend = await _corrupt_kind(store, make_backend, GARBAGE[case])
    assert await backend.put(NS, KIND, BAD, b"fixed") == 1
    rec = await backend.get(NS, KIND, BAD)
    assert rec is not None and (rec.value, rec.version, rec.expires_at) == (b"fixed", 1, None)
    assert await backend.put(NS, KIND, BAD, b"again", expected_version=1) == 2
    assert [id for id, _ in await backend.list_records(NS, KIND)] == ["a", BAD, "c"]


@pytest.mark.parametrize("case", list(GARBAGE))
async def test_put_many_replaces_a_corrupt_record(
    store: Store, make_backend: MakeBackend, case: str
) -> None:
    backend = await _corrupt_kind(store, make_backend, GARBAGE[case])
    await backend.put_many(NS, KIND, {BAD: b"fixed", "a": b"A2"})
    got = await backend.get_many(NS, KIND, [BAD, "a"])
    assert {id: (r.value, r.version) for id, r in got.items()} == {
        BAD: (b"fixed", 1),
        "a": (b"A2", 2),
    }


@pytest.mark.parametrize("case", list(GARBAGE))
async def test_an_unconditional_delete_removes_a_corrupt_record(
    store: Store, make_backend: MakeBackend, case: str
) -> None:
    backend = await _corrupt_kind(store, make_backend, GARBAGE[case])
    key = _record_key(backend, BAD)
    assert await backend.delete(NS, KIND, BAD) is True
    assert not store.exists(key)
    assert await backend.get(NS, KIND, BAD) is None
    assert await backend.list_ids(NS, KIND) == ["a", "c"]
    assert await backend.delete(NS, KIND, BAD) is False


async def test_a_series_entry_shorter_than_its_seq_is_a_frame_error(
    store: Store, make_backend: MakeBackend
) -> None:
    backend = await make_backend(store.url)
    await backend.append(NS, "log", b"ok", ts=1.0)
    entries = KeyLayout(backend.settings.prefix).series(NS, "log").entries
    store.raw.zadd(entries, {b"\x00\x01": 2.0})
    with pytest.raises(FrameError) as exc:
        await backend.read_series(NS, "log")
    assert exc.value.key == "series:log"
    assert [e.value for e in await backend.read_series(NS, "log", end=2.0)] == [b"ok"]


@pytest.mark.parametrize("case", ["truncated", "non_hex", "empty"])
async def test_memory_reads_raise_frame_error_naming_kind_and_id(store: Store, case: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}:"
    options = {"prefix": prefix}
    async with hivemem.open_memory(store.url, namespace=NS, backend_options=options) as mem:
        await mem.put(KIND, "a", {"n": 1})
        await mem.put(KIND, BAD, {"n": 2})
    key = KeyLayout(prefix.encode()).kind(NS, KIND).record(BAD)
    store.set(key, GARBAGE[case])
    # a fresh memory: nothing of the old values in any in-process cache
    async with hivemem.open_memory(store.url, namespace=NS, backend_options=options) as mem:
        with pytest.raises(FrameError) as exc:
            await mem.get(KIND, BAD)
        _names_the_record(exc)
        with pytest.raises(FrameError) as exc:
            await mem.list(KIND)
        _names_the_record(exc)
        with pytest.raises(FrameError) as exc:
            await mem.get_many(KIND, ["a", BAD])
        _names_the_record(exc)
        assert await mem.get(KIND, "a") == {"n": 1}
        assert await mem.list(KIND, "a") == {"a": {"n": 1}}
