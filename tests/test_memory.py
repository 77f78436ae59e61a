"""The Memory API: caching rules, single-flight, isolation, TTL, batches, rewrite."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import hivemem
import pytest
from hivemem.backend import Capabilities
from hivemem.builtin.memory_backend import MemoryBackend
from hivemem.errors import ConflictError, InvalidKey, ValueTooLarge
from hivemem.pipeline import Pipeline, read_header
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st


def arun(coro: Any) -> Any:
    return asyncio.run(coro)


class Counting:
    """Wraps a real backend's methods to count calls (instrumentation, not a stand-in)."""

    def __init__(self, backend: Any, *names: str) -> None:
        self.calls: dict[str, int] = dict.fromkeys(names, 0)
        for name in names:
            original = getattr(backend, name)

            async def wrapper(*a: Any, _n: str = name, _o: Any = original, **k: Any) -> Any:
                self.calls[_n] += 1
                return await _o(*a, **k)

            setattr(backend, name, wrapper)


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path}/mem.db"


def test_roundtrip_versions_and_cas(sqlite_url):
    async def main():
        async with hivemem.open_memory(sqlite_url, namespace="t") as mem:
            assert await mem.put("user", "u1", {"n": 1}) == 1
            assert await mem.put("user", "u1", {"n": 2}) == 2
            assert await mem.get_versioned("user", "u1") == ({"n": 2}, 2)
            with pytest.raises(ConflictError) as info:
                await mem.put("user", "u1", {"n": 3}, expected_version=1)
            assert "user/u1" in str(info.value)
            assert await mem.get("user", "u1") == {"n": 2}
            assert await mem.put("user", "u1", {"n": 3}, expected_version=2) == 3
            with pytest.raises(ConflictError):
                await mem.put("user", "u1", {"n": 4}, expected_version=0)
            assert await mem.put("user", "new", 1, expected_version=0) == 1
            assert await mem.delete("user", "u1") is True
            assert await mem.delete("user", "u1") is False
            assert await mem.get("user", "u1", "absent") == "absent"

    arun(main())


def test_update_is_exact_under_concurrency(sqlite_url):
    async def main():
        async with hivemem.open_memory(sqlite_url) as mem:
            await asyncio.gather(
                *(mem.update("c", "x", lambda v: (v or 0) + 1, retries=200) for _ in range(40))
            )
            assert await mem.get("c", "x", use_cache=False) == 40

    arun(main())


def test_cached_values_cannot_be_mutated_by_callers():
    async def main():
        async with hivemem.open_memory("memory://") as mem:
            value = {"list": [1, 2], "nested": {"a": 1}}
            await mem.put("k", "a", value)
            value["list"].append(3)  # mutate what was written
            got = await mem.get("k", "a")
            assert got == {"list": [1, 2], "nested": {"a": 1}}
            got["nested"]["a"] = 99  # mutate what was read
            again = await mem.get("k", "a")
            assert again == {"list": [1, 2], "nested": {"a": 1}}
            assert mem.metrics()["tiers"]["local"]["hits"] == 2

    arun(main())


def test_single_flight_one_backend_read_for_concurrent_misses():
    async def main():
        async with hivemem.open_memory("memory://", cache=["local://"]) as mem:
            await mem.put("k", "hot", {"v": 1}, cache=False)
            counter = Counting(mem.backend, "get")
            results = await asyncio.gather(*(mem.get("k", "hot") for _ in range(200)))
            assert all(r == {"v": 1} for r in results)
            assert counter.calls["get"] == 1
            # the followers got their own objects
            results[0]["v"] = 2
            assert results[1] == {"v": 1}

    arun(main())


def test_read_in_flight_during_a_write_never_caches_the_old_value():
    async def main():
        async with hivemem.open_memory("memory://") as mem:
            await mem.put("k", "a", "old", cache=False)
            gate = asyncio.Event()
            entered = asyncio.Event()
            original = mem.backend.get

            async def slow_get(*args, **kwargs):
                rec = await original(*args, **kwargs)
                entered.set()
                await gate.wait()
                return rec

            mem.backend.get = slow_get  # type: ignore[method-assign]
            reader = asyncio.ensure_future(mem.get("k", "a"))
            await entered.wait()
            await mem.put("k", "a", "new")
            gate.set()
            assert await reader == "old"  # it started before the write
            mem.backend.get = original  # type: ignore[method-assign]
            assert await mem.get("k", "a") == "new"  # and did not poison the cache

    arun(main())


def test_write_invalidates_and_delete_removes_from_cache():
    async def main():
        async with hivemem.open_memory("memory://shared-a", cache=["local://"]) as a:
            await a.put("k", "x", 1)
            assert await a.get("k", "x") == 1
            await a.put("k", "x", 2, cache=False)
            assert await a.get("k", "x") == 2
            await a.delete("k", "x")
            assert await a.get("k", "x") is None

    arun(main())


def test_cancelled_write_leaves_no_stale_cache_entry(sqlite_url):
    async def main():
        async with hivemem.open_memory(sqlite_url) as mem:
            await mem.put("k", "a", 0)
            assert await mem.get("k", "a") == 0
            for i in range(1, 30):
                task = asyncio.ensure_future(mem.put("k", "a", i))
                await asyncio.sleep(0)
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                stored = await mem.get("k", "a", use_cache=False)
                cached = await mem.get("k", "a")
                assert cached == stored
                assert stored in range(0, i + 1)

    arun(main())


def test_record_ttl_bounds_cache_lifetime():
    async def main():
        async with hivemem.open_memory("memory://", cache_ttl=60) as mem:
            await mem.put("k", "t", "v", ttl=0.15)
            assert await mem.get("k", "t") == "v"
            deadline = time.monotonic() + 5
            while await mem.get("k", "t") is not None:
                assert time.monotonic() < deadline, "cached value outlived its record TTL"
                await asyncio.sleep(0.02)
            assert await mem.list("k") == {}

    arun(main())


def test_batch_operations_are_one_backend_call_each(sqlite_url):
    async def main():
        async with hivemem.open_memory(sqlite_url, cache=[]) as mem:
            counter = Counting(mem.backend, "put_many", "get_many", "delete_many", "put", "get")
            seed = hivemem.SeedMemory(mem)
            await seed.save_entities("q", {f"s{i}": {"v": i} for i in range(300)})
            got = await seed.load_entities("q", [f"s{i}" for i in range(0, 300, 3)] + ["nope"])
            assert list(got) == [f"s{i}" for i in range(0, 300, 3)]
            assert got["s3"] == {"v": 3}
            assert await mem.delete_many("q", ["s0", "s1", "missing"]) == 2
            assert counter.calls == {
                "put_many": 1,
                "get_many": 1,
                "delete_many": 1,
                "put": 0,
                "get": 0,
            }

    arun(main())


def test_get_many_uses_and_fills_local_cache():
    async def main():
        async with hivemem.open_memory("memory://") as mem:
            await mem.put_many("k", {"a": 1, "b": 2, "c": 3})
            counter = Counting(mem.backend, "get_many")
            assert await mem.get_many("k", ["a", "b", "c"]) == {"a": 1, "b": 2, "c": 3}
            assert await mem.get_many("k", ["c", "a"]) == {"c": 3, "a": 1}
            assert counter.calls["get_many"] == 1

    arun(main())


def test_listing_pages_with_cursor():
    async def main():
        async with hivemem.open_memory("memory://") as mem:
            await mem.put_many("r", {f"a_{i:03d}": i for i in range(25)})
            await mem.put("r", "b_000", "other")
            seen: list[str] = []
            cursor = None
            while True:
                page = await mem.page("r", "a_", limit=10, cursor=cursor)
                seen += list(page.items)
                if page.cursor is None:
                    break
                cursor = page.cursor
            assert seen == [f"a_{i:03d}" for i in range(25)]
            assert list(await mem.list("r", "a_", limit=2, reverse=True)) == ["a_024", "a_023"]

    arun(main())


#: valid names: no lone surrogates (their rejection is tested below)
_chars = st.characters(exclude_categories=("Cs",))
names = st.text(_chars, min_size=1, max_size=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ns1=names, ns2=names, kind=names, id=st.text(_chars, min_size=1, max_size=30))
def test_namespaces_isolate_completely(ns1, ns2, kind, id):
    assume(ns1 != ns2 and "__hivemem__" not in (ns1, ns2))  # equal, or the reserved namespace

    async def main():
        async with hivemem.open_memory("memory://iso", namespace=ns1) as a:
            b = a.namespace_view(ns2)
            await a.drop()
            await b.drop()
            await a.put(kind, id, "A")
            assert await b.get(kind, id) is None
            assert await b.list(kind) == {}
            assert await b.kinds() == []
            await b.put(kind, id, "B")
            assert await a.get(kind, id) == "A"
            assert await b.get(kind, id) == "B"
            await a.append(kind, "sA")
            assert await b.read_series(kind) == []

    arun(main())


def test_invalid_names_are_rejected_with_the_value():
    async def main():
        async with hivemem.open_memory("memory://") as mem:
            with pytest.raises(InvalidKey, match="kind must not be empty"):
                await mem.put("", "x", 1)
            with pytest.raises(InvalidKey, match="lone surrogate"):
                await mem.put("k", "bad\ud800", 1)
            with pytest.raises(InvalidKey, match="4097 characters"):
                await mem.get("k", "x" * 4097)
            with pytest.raises(InvalidKey, match="must be a str"):
                await mem.get("k", 12)  # type: ignore[arg-type]
            assert await mem.get("k", "x" * 4096) is None
            assert await mem.kinds() == []

    arun(main())
    with pytest.raises(hivemem.ConfigError, match="namespace"):
        hivemem.open_memory("memory://", namespace="")


class _Small(MemoryBackend):
    """The memory backend with a declared value size limit."""

    capabilities = Capabilities(max_value_size=200)


class _SmallPlugin:
    @hivemem.hookimpl
    def hivemem_register_backends(self, register):
        register("small", lambda url: _Small("memory://"), schemes=("small",))


def test_value_too_large_names_key_and_keeps_old_value():
    plugins = hivemem.make_plugins(plugins={"small": _SmallPlugin()})
    mem = hivemem.open_memory("small://", plugins=plugins)

    async def main():
        async with mem:
            await mem.put("doc", "d1", "small")
            with pytest.raises(ValueTooLarge, match="doc/d1"):
                await mem.put("doc", "d1", "x" * 1000)
            assert await mem.get("doc", "d1") == "small"

    arun(main())


def test_summary_and_metrics_are_structured(sqlite_url):
    # the stored bytes, computed apart from the store: one json frame per value
    frame = Pipeline("json", "none", "none").encode
    user_bytes = len(frame({"x": 1})) + len(frame({"x": 2}))
    reward_bytes = len(frame(1.0)) + len(frame(3.0))

    async def main():
        async with hivemem.open_memory(sqlite_url, namespace="s") as mem:
            await mem.put_many("user", {"a": {"x": 1}, "b": {"x": 2}})
            await mem.append("rewards", 1.0, ts=100.0)
            await mem.append("rewards", 3.0, ts=200.0)
            await mem.get("user", "a")  # a local-cache miss, read from the backend
            await mem.get("user", "a")  # a local-cache hit
            s = await mem.summary()
            assert s.kinds == {"user": {"count": 2, "bytes": user_bytes}}
            assert s.series == {
                "rewards": {"length": 2, "bytes": reward_bytes, "oldest": 100.0, "newest": 200.0}
            }
            # and the backend holds exactly those frames
            stored = await mem.backend.read_series("s", "rewards")
            assert sum(len(e.value) for e in stored) == reward_bytes
            m = mem.metrics()
            assert {k: m[k] for k in ("reads", "writes", "cache_hits", "cache_misses")} == {
                "reads": 1,  # only the miss reached the backend
                "writes": 4,  # two records and two series entries
                "cache_hits": 1,
                "cache_misses": 1,
            }
            assert m["errors"] == 0 and m["cache_hit_ratio"] == 0.5
            get = m["operations"]["get"]
            assert get["count"] == 2 and get["p50_ms"] <= get["p95_ms"] <= get["p99_ms"]
            assert (m["tiers"]["local"]["hits"], m["tiers"]["local"]["misses"]) == (1, 1)
            assert m["tiers"]["local"]["hit_ratio"] == 0.5
            assert await mem.aggregate_series("rewards") == {
                "count": 2,
                "sum": 4.0,
                "mean": 2.0,
                "min": 1.0,
                "max": 3.0,
            }

    arun(main())


def test_rewrite_moves_old_frames_to_current_codecs_keeping_ttl(sqlite_url):
    async def main():
        async with hivemem.open_memory(sqlite_url, namespace="rw") as plain:
            await plain.put_many("doc", {f"d{i}": "text " * 100 for i in range(30)})
            await plain.put("doc", "ttl", "text " * 100, ttl=300)
        async with hivemem.open_memory(sqlite_url, namespace="rw", compressor="zlib") as mem:
            assert await mem.get("doc", "d1") == "text " * 100  # old frame still reads
            report = await mem.rewrite()
            assert (report.scanned, report.rewritten) == (31, 31)
            again = await mem.rewrite()
            assert (again.rewritten, again.skipped) == (0, 31)
            rec = await mem.backend.get("rw", "doc", "ttl")
            stages, _ = read_header(rec.value)
            assert ("compressor", "zlib") in stages
            assert rec.expires_at is not None and rec.expires_at - time.time() > 200
            assert await mem.get("doc", "ttl", use_cache=False) == "text " * 100

    arun(main())


def test_seed_example_runs_as_documented():
    from hivemem import DistributedMemoryManager

    async def main():
        memory_manager = DistributedMemoryManager(
            memory_type="memory", config={}, namespace="example"
        )
        await memory_manager.save_entity(
            "user",
            "user123",
            {
                "name": "John Doe",
                "email": "john@example.com",
                "preferences": {"theme": "dark", "language": "en"},
            },
        )
        user = await memory_manager.load_entity("user", "user123")
        assert user["preferences"]["theme"] == "dark"
        assert await memory_manager.delete_entity("user", "user123") is True
        await memory_manager.save_conversation_history([{"role": "user", "content": "hi"}])
        await memory_manager.save_conversation_history([{"role": "user", "content": "new"}])
        assert await memory_manager.load_conversation_history() == [
            {"role": "user", "content": "new"}
        ]
        await memory_manager.save_tool_usage("search", {"q": "x"}, "r")
        usage = await memory_manager.load_tool_usage()
        assert usage["search"][0]["args"] == {"q": "x"}
        assert await memory_manager.get_tool_names() == ["search"]
        for t in range(20):
            await memory_manager.save_entity("reward", f"agent1_{1700000000 + t}", {"reward": t})
        rewards = await memory_manager.load_entities_by_prefix("reward", "agent1_", limit=10)
        assert [r["reward"] for r in rewards.values()] == list(range(10))
        recent = await memory_manager.load_entities_by_prefix(
            "reward", "agent1_", limit=10, newest=True
        )
        assert [r["reward"] for r in recent.values()] == list(range(10, 20))
        summary = await memory_manager.get_memory_summary()
        assert "reward: 20 entities" in summary and "search: 1 uses" in summary
        memory_manager.clear_cache()
        metrics = memory_manager.get_metrics()
        assert {"reads", "writes", "cache_hits", "cache_misses", "errors"} <= set(metrics)
        # 21 entity puts, 1 delete, 2 history replacements, 1 tool-usage append
        assert metrics["writes"] == 25
        assert await memory_manager.ping() is True
        assert await memory_manager.get_entity_types() == ["reward"]
        await memory_manager.close()

    arun(main())


def test_factory_memory_types_and_url():
    from hivemem import DistributedMemoryBackend, DistributedMemoryFactory

    m = DistributedMemoryFactory.create_memory_backend("memory")
    assert isinstance(m, DistributedMemoryBackend)
    r = DistributedMemoryFactory.create_memory_backend(
        "sqlite", path="/tmp/hivemem-factory-test.db"
    )
    assert r.config.url == "sqlite:////tmp/hivemem-factory-test.db"
    with pytest.raises(hivemem.ConfigError, match="needs config"):
        DistributedMemoryFactory.create_memory_backend("cassandra")


def test_ping_never_raises(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")

    async def main():
        mem = hivemem.open_memory(f"sqlite:///{blocker}/sub/x.db")
        assert await mem.ping() is False

    arun(main())


class _PadCodec:
    """A test compressor whose output depends on a stored resource (like a zstd dictionary)."""

    name = "pad"

    def __init__(self, pad: str | None = None) -> None:
        self.pads: dict[str, bytes] = {}
        self.want = pad

    def resources_needed(self):
        return [] if self.want is None or self.want in self.pads else [("pad", self.want)]

    def add_resource(self, kind, id, data):
        self.pads[id] = data

    def encode(self, data):
        return self.want.encode() + b":" + bytes(a ^ self.pads[self.want][0] for a in data)

    def decode(self, data):
        pid, _, body = data.partition(b":")
        pad = self.pads.get(pid.decode())
        if pad is None:
            raise hivemem.errors.ResourceMissing("pad", pid.decode())
        return bytes(a ^ pad[0] for a in body)


class _PadPlugin:
    @hivemem.hookimpl
    def hivemem_register_compressors(self, register):
        register("pad", _PadCodec)


def test_codec_resources_load_from_the_store_in_every_reader():
    plugins = hivemem.make_plugins(plugins={"pad": _PadPlugin()})

    async def main():
        async with hivemem.open_memory("memory://res", plugins=plugins) as admin:
            await admin.put_resource("pad", "p1", b"\x2a")
        writer = hivemem.open_memory("memory://res", plugins=plugins, compressor="pad?pad=p1")
        reader = hivemem.open_memory("memory://res", plugins=plugins, cache=[], read_codecs=["pad"])
        async with writer, reader:
            await writer.put("doc", "d", {"secret": "abc"})
            raw = (await writer.backend.get("default", "doc", "d")).value
            assert b"secret" not in raw  # the codec really transformed it
            assert await reader.get("doc", "d") == {"secret": "abc"}  # loaded "p1" on demand
            assert list(await reader.list("doc")) == ["d"]
        missing = hivemem.open_memory("memory://res", plugins=plugins, compressor="pad?pad=p9")
        with pytest.raises(hivemem.errors.ResourceMissing, match="p9"):
            await missing.open()
        with pytest.raises(InvalidKey, match="reserved"):
            hivemem.open_memory("memory://", namespace="__hivemem__")

    arun(main())


def test_bookkeeping_stays_bounded_by_operations_in_flight():
    async def main():
        async with hivemem.open_memory("memory://") as mem:
            for i in range(2000):
                await mem.put("k", f"id{i}", i)
                await mem.get("k", f"id{i}")
                await mem.delete("k", f"id{i}")
            await mem.get_many("k", [f"id{i}" for i in range(100)])
            tiers = mem._tiers
            assert tiers.epochs.watch == {} and tiers.writing == {} and tiers.inflight == {}

    arun(main())


def test_update_that_gives_up_says_what_happened():
    async def main():
        async with hivemem.open_memory("memory://", cache=[]) as mem:
            await mem.put("c", "x", 0)
            original = mem.backend.get

            async def read_then_someone_writes(ns, kind, id):
                record = await original(ns, kind, id)
                await mem.backend.put(ns, kind, id, record.value)  # another writer
                return record

            mem.backend.get = read_then_someone_writes  # type: ignore[method-assign]
            with pytest.raises(ConflictError) as info:
                await mem.update("c", "x", lambda v: v + 1, retries=3)
            message = str(info.value)
            assert "'c/x'" in message and "gave up after 3 attempts" in message
            assert "version read -> version found: 1 -> 2, 2 -> 3, 3 -> 4)" in message
            assert "-1" not in message
            assert info.value.attempts == 3
            assert info.value.versions == ((1, 2), (2, 3), (3, 4))
            mem.backend.get = original  # type: ignore[method-assign]
            assert await mem.get("c", "x") == 0  # no attempt's value was stored
            assert mem.metrics()["operations"]["update"]["errors"] == 1

    arun(main())


#: every Memory operation and arguments that run it on a namespace holding one record
OPERATIONS: dict[str, tuple[Any, ...]] = {
    "put": ("k", "a", 1),
    "get": ("k", "a"),
    "get_versioned": ("k", "a"),
    "update": ("k", "a", lambda v: v + 1),
    "get_many": ("k", ["a", "b"]),
    "put_many": ("k", {"b": 2}),
    "list": ("k",),
    "page": ("k",),
    "list_ids": ("k",),
    "kinds": (),
    "append": ("s", 1.0),
    "replace_series": ("s", [1.0, 2.0]),
    "read_series": ("s",),
    "series_names": (),
    "aggregate_series": ("s",),
    "incr": ("q", "a", "f"),
    "counters": ("q", ["a"]),
    "delete_counters": ("q", "a"),
    "delete_series": ("s",),
    "put_resource": ("r", "r1", b"x"),
    "get_resource": ("r", "r1"),
    "summary": (),
    "stats": (),
    "ping": (),
    "clear_caches": (),
    "rewrite": (),
    "delete": ("k", "a"),
    "delete_many": ("k", ["b"]),
    "drop": (),
}


def test_every_operation_is_timed_and_counted():
    import inspect

    public = {
        name
        for name, fn in vars(hivemem.Memory).items()
        if not name.startswith("_")
        and name not in ("open", "close")
        and (inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn))
    }
    assert public == set(OPERATIONS) | {"iter_pages"}

    async def main():
        async with hivemem.open_memory("memory://") as mem:
            await mem.put("k", "a", 1)
            for name, args in OPERATIONS.items():
                await getattr(mem, name)(*args)
            await mem.put_many("k", {"a": 1, "b": 2})
            pages = [page async for page in mem.iter_pages("k", page_size=1)]
            ops = mem.metrics()["operations"]
            for name in OPERATIONS:
                op = "list" if name == "page" else name
                assert ops[op]["count"] >= 1 and ops[op]["p50_ms"] is not None, name
            assert ops["iter_pages"]["count"] == len(pages) == 2
            with pytest.raises(InvalidKey):
                await mem.list_ids("")
            assert ops["list_ids"]["errors"] == 0  # the dict above is a snapshot
            assert mem.metrics()["operations"]["list_ids"]["errors"] == 1

    arun(main())


def test_seed_names_on_a_memory_still_work_with_a_deprecation_warning():
    async def main():
        async with hivemem.open_memory("memory://") as mem:
            with pytest.warns(DeprecationWarning, match=r"SeedMemory\(memory\)\.save_entity"):
                await mem.save_entity("user", "u1", {"n": 1})
            with pytest.warns(DeprecationWarning, match="load_entities_by_prefix"):
                assert await mem.load_entities_by_prefix("user", "u") == {"u1": {"n": 1}}
            assert await mem.get("user", "u1") == {"n": 1}
        assert not isinstance(mem, hivemem.DistributedMemoryBackend)
        with pytest.raises(AttributeError, match="no attribute 'save_entitie'"):
            mem.save_entitie  # noqa: B018 - only the seed's own names are forwarded

    arun(main())


def test_seed_adapter_wraps_a_memory_and_forwards_the_rest():
    async def main():
        mem = hivemem.open_memory("memory://", namespace="seed")
        async with hivemem.SeedMemory(mem) as seed:
            assert isinstance(seed, hivemem.DistributedMemoryBackend)
            assert seed.memory is mem and seed.config is mem.config
            await seed.save_entity("user", "u1", {"n": 1})
            assert await seed.get("user", "u1") == {"n": 1}  # Memory's vocabulary too
            await seed.save_learning_feedback("a1", "thumbs", {"up": True})
            await seed.save_learning_feedback("a2", "thumbs", {"up": False})
            feedback = await seed.get_learning_feedback(agent_name="a2")
            assert [f["feedback_data"] for f in feedback] == [{"up": False}]
            assert await seed.load_entities_by_type("user") == {"u1": {"n": 1}}
        manager = hivemem.DistributedMemoryManager(memory_type="memory", config={})
        assert isinstance(manager.backend, hivemem.SeedMemory)
        assert manager.backend.memory is manager.memory
        assert manager.namespace == "datamcp"

    arun(main())


def test_no_import_circle_between_the_facade_and_the_seed_api():
    import ast
    import pathlib

    package = pathlib.Path(hivemem.__file__).parent

    def imports(module: str) -> set[str]:
        tree = ast.parse((package / f"{module}.py").read_text())
        found = set()
        for node in tree.body:  # module level only (not TYPE_CHECKING blocks)
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                found |= {node.module} if node.module else {a.name for a in node.names}
        return found

    graph = {name: imports(name) for name in ("memory", "seed", "compat", "tiers", "parts")}
    assert "compat" not in graph["memory"] and "memory" not in graph["seed"]
    seen, stack = set(), ["memory"]
    while stack:
        module = stack.pop()
        if module in seen or not (package / f"{module}.py").exists():
            continue
        seen.add(module)
        stack += imports(module)
    assert "compat" not in seen and "memory" not in (seen - {"memory"})
