"""The seed's documented Redis example runs unchanged (import line aside) on this plugin."""

from __future__ import annotations

import uuid

import pytest
from hivemem import DistributedMemoryManager


def unique_prefix() -> str:
    """A fresh key prefix for one test."""
    return f"t{uuid.uuid4().hex[:10]}:"


pytestmark = pytest.mark.usefixtures("hivemem_runner")


async def test_seed_redis_example(redis_server) -> None:
    prefix = unique_prefix()
    mm = DistributedMemoryManager(
        memory_type="redis",
        config={
            "host": redis_server.host,
            "port": redis_server.port,
            "db": 0,
            "password": None,
            "prefix": prefix,
        },
        namespace="example",
    )
    await mm.save_entity("user", "user123", {"name": "Ada", "prefs": {"lang": "en"}})
    assert await mm.load_entity("user", "user123") == {"name": "Ada", "prefs": {"lang": "en"}}
    await mm.save_entity("reward", "agent1_a", {"r": 1})
    await mm.save_entity("reward", "agent1_b", {"r": 2})
    await mm.save_entity("reward", "agent2_a", {"r": 3})
    found = await mm.load_entities_by_prefix("reward", "agent1_", limit=10)
    assert len(found) == 2
    assert await mm.ping()
    keys = redis_server.command("KEYS", "*" + prefix + "*")
    assert keys and all(k.startswith(prefix.encode()) for k in keys)
    assert prefix.encode() + b"{k:example:user}:r:user123" in keys
