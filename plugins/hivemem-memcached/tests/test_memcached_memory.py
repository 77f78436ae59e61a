"""The Memcached tier inside a real Memory: local -> memcached -> SQLite."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from hivemem import Memory, make_plugins, open_memory
from hivemem.pipeline import MAGIC
from hivemem.sealing import SEAL_VERSION, TAG_SIZE
from hivemem_memcached import MemcachedCache
from hivemem_memcached.testing import MemcachedServer

_names = itertools.count()
#: the secret every process of a deployment shares to authenticate cache entries
SECRET = "memcached-tests-shared-secret-0123456789"


def count_backend_reads(memory: Memory) -> list[int]:
    """Wrap the backend's ``get`` so every record read is counted (returns the counter)."""
    backend = memory.backend
    original = backend.get
    counter = [0]

    async def counting_get(*args: Any, **kwargs: Any) -> Any:
        counter[0] += 1
        return await original(*args, **kwargs)

    backend.get = counting_get  # type: ignore[method-assign]
    return counter


def memcached_of(memory: Memory) -> MemcachedCache:
    """The MemcachedCache inside the memory's sealed remote tier."""
    caches = [
        c.inner for _, c in memory.caches if isinstance(getattr(c, "inner", None), MemcachedCache)
    ]
    assert len(caches) == 1
    return caches[0]


class Tiered:
    """``async with tiered(**settings) as memory`` over one SQLite file and one memcached."""

    def __init__(self, db: Path, server: MemcachedServer) -> None:
        self.db = db
        self.server = server
        #: the memcached key prefix of every memory this factory opens
        self.prefix = f"mem{next(_names)}:"

    @asynccontextmanager
    async def __call__(self, **settings: Any) -> AsyncIterator[Memory]:
        settings.setdefault("namespace", "agents")
        settings.setdefault("cache_secret", SECRET)
        memory = open_memory(
            f"sqlite:///{self.db}",
            # a generous timeout: a reply held up by a busy machine must not become a miss
            cache=f"local:// {self.server.url}?prefix={self.prefix}&timeout=10",
            **settings,
        )
        async with memory:
            yield memory


@pytest.fixture
def tiered(tmp_path: Path, memcached_server: MemcachedServer) -> Tiered:
    """A :class:`Tiered` factory over ``tmp_path`` and the session's memcached."""
    return Tiered(tmp_path / "tiers.db", memcached_server)


async def test_reads_go_local_then_memcached_then_backend(
    tiered: Tiered, hivemem_runner: asyncio.Runner
) -> None:
    async with tiered() as memory:
        reads = count_backend_reads(memory)
        await memory.put("user", "u1", {"name": "Ada"})
        memory.clear_local_cache()
        assert await memory.get("user", "u1") == {"name": "Ada"}  # backend, fills both
        assert await memory.get("user", "u1") == {"name": "Ada"}  # local hit
        memory.clear_local_cache()
        assert await memory.get("user", "u1") == {"name": "Ada"}  # memcached hit
        assert reads[0] == 1
        tiers = memory.metrics()["tiers"]
        assert (tiers["local"]["hits"], tiers["local"]["misses"]) == (1, 2)
        assert (tiers["memcached"]["hits"], tiers["memcached"]["misses"]) == (1, 1)
        mc = tiers["memcached"]["cache"]
        assert mc["hits"] == 1 and mc["sets"] == 1 and mc["errors"] == 0


async def test_a_write_invalidates_both_tiers(
    tiered: Tiered, hivemem_runner: asyncio.Runner
) -> None:
    async with tiered() as writer, tiered() as reader:
        await writer.put("user", "u1", {"v": 1})
        assert await reader.get("user", "u1") == {"v": 1}  # fills memcached and reader's local
        reader.clear_local_cache()
        assert await reader.get("user", "u1") == {"v": 1}
        assert memcached_of(reader).stats()["hits"] == 1
        await writer.put("user", "u1", {"v": 2})
        assert await writer.get("user", "u1") == {"v": 2}
        writer.clear_local_cache()
        reader.clear_local_cache()
        assert await writer.get("user", "u1") == {"v": 2}
        assert await reader.get("user", "u1") == {"v": 2}  # memcached was invalidated
        await writer.delete("user", "u1")
        reader.clear_local_cache()
        assert await reader.get("user", "u1") is None
        assert await writer.get("user", "u1") is None


async def test_cold_key_stampede_reads_the_backend_once_per_process(
    tiered: Tiered, hivemem_runner: asyncio.Runner
) -> None:
    """200 concurrent loads of a cold key in each of 4 clients (own pools, like processes)."""
    async with tiered() as seed:
        await seed.put("policy", "p1", {"weights": list(range(100))})
    async with (
        tiered() as a, tiered() as b, tiered() as c, tiered() as d,
    ):
        clients = [a, b, c, d]
        counters = [count_backend_reads(m) for m in clients]
        for m in clients:
            m.clear_local_cache()
        results = await asyncio.gather(
            *(m.get("policy", "p1") for m in clients for _ in range(200))
        )
        assert all(r == {"weights": list(range(100))} for r in results)
        per_client = [n[0] for n in counters]
        stats = [memcached_of(m).stats() for m in clients]
        # single-flight: the 200 loads of one client share at most one backend read
        assert all(n <= 1 for n in per_client), per_client
        # whatever the timing, the lease never costs reads: at most one per client ...
        assert 1 <= sum(per_client) <= len(clients), per_client
        # ... one client won the refill lease, every client asked for it or found the
        # value, and a client that did not read the backend got the value from memcached
        assert sum(s["leases_won"] for s in stats) >= 1, stats
        for n, s in zip(per_client, stats, strict=True):
            assert s["leases_won"] + s["leases_lost"] + s["hits"] >= 1, s
            assert n == 1 or s["hits"] >= 1, s
        print(f"\nstampede: backend reads per client {per_client}; leases "
              f"{[(s['leases_won'], s['leases_lost']) for s in stats]}")


async def test_memory_works_with_memcached_down(
    tmp_path: Path, hivemem_runner: asyncio.Runner
) -> None:
    from hivemem.testing.servers import free_port

    url = f"memcached://127.0.0.1:{free_port()}?timeout=0.2"
    async with open_memory(
        f"sqlite:///{tmp_path / 'down.db'}", cache=f"local:// {url}", cache_secret=SECRET
    ) as m:
        await m.put("user", "u1", {"v": 1})
        m.clear_local_cache()
        assert await m.get("user", "u1") == {"v": 1}
        await m.delete("user", "u1")
        assert await m.get("user", "u1") is None
        tier = m.metrics()["tiers"]["memcached"]
        assert tier["hits"] == 0 and tier["cache"]["servers_down"] == 1


def _codec_settings() -> list[Any]:
    params = [pytest.param({"compressor": "zlib"}, id="zlib")]
    plugins = make_plugins()
    if "fernet" in plugins.registry("encryptor").names():
        from cryptography.fernet import Fernet

        key = Fernet.generate_key().decode()
        fernet = {"encryptor": "fernet", "codec_options": {"fernet": {"keys": key}}}
        params.append(pytest.param(fernet, id="fernet"))
        params.append(pytest.param({**fernet, "compressor": "zlib"}, id="zlib+fernet"))
    return params


@pytest.mark.parametrize("codecs", _codec_settings())
async def test_memcached_holds_frames_never_plaintext(
    mc: Any,
    codecs: dict[str, Any],
    tiered: Tiered,
    memcached_server: MemcachedServer,
    hivemem_runner: asyncio.Runner,
) -> None:
    secret = "the launch code is 0000 " * 20
    async with tiered(**codecs) as memory:
        await memory.put("note", "n1", {"text": secret})
        memory.clear_local_cache()
        assert await memory.get("note", "n1") == {"text": secret}
        stored = await memory.backend.get(memory.namespace, "note", "n1")
        assert stored is not None
        keys = mc.dump_keys(memcached_server, tiered.prefix)
        assert len(keys) == 1
        raw = await mc.raw_get_derived(memcached_server, keys[0])
    assert raw is not None and raw[:1] == SEAL_VERSION
    frame = raw[1 + TAG_SIZE :]  # behind the MAC tag: exactly the backend's frame
    assert frame[:3] == MAGIC and frame == stored.value
    assert b"launch code" not in raw
    names = [codecs.get("compressor"), codecs.get("encryptor")]
    assert all(name.encode() in frame[:40] for name in names if name)


_CHILD = r"""
import asyncio, json, sys
from hivemem import Memory, open_memory

async def main(db, cache):
    memory = open_memory(
        f"sqlite:///{db}", cache=cache, namespace="agents", cache_secret=sys.argv[3]
    )
    async with memory:
        backend = memory.backend
        original = backend.get
        reads = 0

        async def counting_get(*args, **kwargs):
            nonlocal reads
            reads += 1
            return await original(*args, **kwargs)

        backend.get = counting_get
        print("ready", flush=True)
        sys.stdin.readline()  # the parent's "go"
        values = await asyncio.gather(*(memory.get("policy", "p1") for _ in range(200)))
        ok = all(v == {"weights": list(range(100))} for v in values)
        mc = [c for _, c in memory.caches if not c.in_process][0].stats()
        print(json.dumps({"reads": reads, "ok": ok, "mc": mc}), flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2]))  # argv[3]: the shared cache secret
"""


def test_cold_key_stampede_across_real_processes(
    tmp_path: Path, memcached_server: MemcachedServer, hivemem_runner: asyncio.Runner
) -> None:
    """4 processes x 200 concurrent loads of one cold key: backend reads per process and total."""
    import json
    import subprocess
    import sys

    db = tmp_path / "procs.db"
    cache = f"local:// {memcached_server.url}?prefix=procs{next(_names)}:&timeout=10"

    async def seed() -> None:
        async with open_memory(f"sqlite:///{db}", cache="local://", namespace="agents") as m:
            await m.put("policy", "p1", {"weights": list(range(100))})

    hivemem_runner.run(seed())
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(db), cache, SECRET],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        for _ in range(4)
    ]
    try:
        for child in children:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        for child in children:  # release them together
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        results = [json.loads(child.communicate(timeout=60)[0]) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    reads = [r["reads"] for r in results]
    assert all(r["ok"] for r in results)
    assert all(n <= 1 for n in reads), reads  # single-flight within each process
    # how many processes the lease spares a read depends on timing (a waiter gives up
    # after a short while); that it never costs one does not
    assert 1 <= sum(reads) <= len(children), reads
    won = [r["mc"]["leases_won"] for r in results]
    assert sum(won) >= 1, won
    for r in results:  # a process that did not read the backend got the value from memcached
        assert r["reads"] == 1 or r["mc"]["hits"] >= 1, r
    print(f"\nstampede across 4 processes x 200 loads: backend reads {reads}, leases won {won}")
