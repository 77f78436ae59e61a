"""Where the seed API's data lands: arguments > environment > TOML (HIVEMEM_CONFIG) > defaults.

Each test sets one source, saves an entity through ``DistributedMemoryManager``
(or the factory), then opens the store it should be in independently (with an
empty environment) and reads the record back; and checks where it must not be.
The user's real default file is never touched: ``XDG_DATA_HOME`` is ``tmp_path``.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import hivemem
import pytest
from hivemem import DistributedMemoryFactory, DistributedMemoryManager
from hivemem.memory import _cache_key

pytestmark = pytest.mark.usefixtures("hivemem_runner")

ENTITY = {"name": "Ada", "prefs": {"lang": "en"}}
SEED_VARIABLES = ("MEMORY_TYPE", "MEMORY_NAMESPACE")
SEED_PREFIXES = ("HIVEMEM_", "REDIS_", "MONGODB_")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No seed or hivemem variable from the caller; the default file under ``tmp_path``."""
    for name in list(os.environ):
        if name in SEED_VARIABLES or name.startswith(SEED_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "hivemem" / "memory.db"


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix of this test's own on the shared Redis server."""
    return f"env{uuid.uuid4().hex[:10]}:"


async def save_through_manager(**arguments: Any) -> DistributedMemoryManager:
    manager = DistributedMemoryManager(**arguments)
    async with manager:
        await manager.save_entity("user", "u1", ENTITY)
    return manager


async def read_back(url: str, namespace: str, **settings: Any) -> Any:
    """The entity as stored at ``url``/``namespace``, read with no environment at all."""
    async with hivemem.open_memory(url, namespace=namespace, cache=[], env={}, **settings) as m:
        return await m.get("user", "u1")


def redis_keys(redis_server: Any, prefix: str) -> list[bytes]:
    return redis_server.command("KEYS", prefix + "*")


# -- defaults ------------------------------------------------------------------------------


async def test_nothing_set_lands_in_the_embedded_file_namespace_datamcp(clean_env):
    manager = await save_through_manager()
    assert manager.memory.config.url == "sqlite:///" + str(clean_env)
    assert await read_back(f"sqlite:///{clean_env}", "datamcp") == ENTITY
    assert manager.namespace == "datamcp" and manager.memory_type == "sqlite"


# -- each variable alone -------------------------------------------------------------------


async def test_memory_type_sqlite_with_its_path(monkeypatch, tmp_path, clean_env):
    path = tmp_path / "seed.db"
    monkeypatch.setenv("MEMORY_TYPE", "sqlite")
    monkeypatch.setenv("HIVEMEM_SQLITE_PATH", str(path))
    await save_through_manager()
    assert await read_back(f"sqlite:///{path}", "datamcp") == ENTITY
    assert not clean_env.exists()


async def test_memory_type_memory(monkeypatch, clean_env):
    monkeypatch.setenv("MEMORY_TYPE", "memory")
    manager = DistributedMemoryManager()
    async with manager:
        await manager.save_entity("user", "u1", ENTITY)
        assert manager.memory.config.url == "memory://"
        stored = await manager.memory.backend.get("datamcp", "user", "u1")
        assert stored is not None  # in the process's memory store, not a cache
    assert not clean_env.exists()


async def test_memory_type_redis_with_its_host_and_port(
    monkeypatch, redis_server, redis_prefix, clean_env
):
    monkeypatch.setenv("MEMORY_TYPE", "redis")
    monkeypatch.setenv("REDIS_HOST", redis_server.host)
    monkeypatch.setenv("REDIS_PORT", str(redis_server.port))
    monkeypatch.setenv("REDIS_PREFIX", redis_prefix)
    await save_through_manager()
    options = {"backend_options": {"prefix": redis_prefix}}
    assert await read_back(redis_server.url, "datamcp", **options) == ENTITY
    assert redis_keys(redis_server, redis_prefix)
    assert not clean_env.exists()


async def test_hivemem_url(monkeypatch, tmp_path, clean_env):
    path = tmp_path / "url.db"
    monkeypatch.setenv("HIVEMEM_URL", f"sqlite:///{path}")
    await save_through_manager()
    assert await read_back(f"sqlite:///{path}", "datamcp") == ENTITY
    assert not clean_env.exists()


@pytest.mark.parametrize("variable", ["MEMORY_NAMESPACE", "HIVEMEM_NAMESPACE"])
async def test_namespace_variable(monkeypatch, variable, clean_env):
    monkeypatch.setenv(variable, "from-env")
    manager = await save_through_manager()
    assert manager.namespace == "from-env"
    assert await read_back(f"sqlite:///{clean_env}", "from-env") == ENTITY
    assert await read_back(f"sqlite:///{clean_env}", "datamcp") is None


async def test_hivemem_cache_none_keeps_no_cache_tier(monkeypatch, clean_env):
    monkeypatch.setenv("HIVEMEM_CACHE", "none")
    manager = DistributedMemoryManager()
    async with manager:
        assert manager.memory.caches == []
        await manager.save_entity("user", "u1", ENTITY)
        assert await manager.load_entity("user", "u1") == ENTITY
        url = f"sqlite:///{clean_env}"
        async with hivemem.open_memory(url, namespace="datamcp", env={}) as other:
            await other.put("user", "u1", {"changed": True})
        # no tier kept the old value: the next read is the store's
        assert await manager.load_entity("user", "u1") == {"changed": True}


async def test_hivemem_cache_names_the_tier_the_value_lands_in(monkeypatch, clean_env):
    monkeypatch.setenv("HIVEMEM_CACHE", "local://?max_entries=7")
    manager = DistributedMemoryManager()
    async with manager:
        await manager.save_entity("user", "u1", ENTITY)
        [(name, tier)] = manager.memory.caches
        assert name == "local" and tier.max_entries == 7
        assert tier.get_now(_cache_key("datamcp", "user", "u1")) is not None
    assert await read_back(f"sqlite:///{clean_env}", "datamcp") == ENTITY


async def test_hivemem_config_toml(monkeypatch, tmp_path, clean_env):
    path = tmp_path / "toml.db"
    toml = tmp_path / "hivemem.toml"
    toml.write_text(f'[hivemem]\nurl = "sqlite:///{path}"\nnamespace = "from-toml"\n')
    monkeypatch.setenv("HIVEMEM_CONFIG", str(toml))
    manager = await save_through_manager()
    assert manager.namespace == "from-toml"
    assert await read_back(f"sqlite:///{path}", "from-toml") == ENTITY
    assert not clean_env.exists()


# -- what wins -----------------------------------------------------------------------------


async def test_memory_type_argument_beats_memory_type_redis_in_env(
    monkeypatch, tmp_path, redis_server, redis_prefix
):
    monkeypatch.setenv("MEMORY_TYPE", "redis")
    monkeypatch.setenv("REDIS_HOST", redis_server.host)
    monkeypatch.setenv("REDIS_PORT", str(redis_server.port))
    monkeypatch.setenv("REDIS_PREFIX", redis_prefix)
    path = tmp_path / "arg.db"
    await save_through_manager(memory_type="sqlite", config={"path": str(path)})
    assert await read_back(f"sqlite:///{path}", "datamcp") == ENTITY
    assert redis_keys(redis_server, redis_prefix) == []


async def test_memory_type_argument_alone_beats_hivemem_url(monkeypatch, tmp_path, clean_env):
    monkeypatch.setenv("HIVEMEM_URL", f"sqlite:///{tmp_path / 'env.db'}")
    monkeypatch.setenv("HIVEMEM_SQLITE_PATH", str(tmp_path / "seed.db"))
    await save_through_manager(memory_type="sqlite")
    assert await read_back(f"sqlite:///{tmp_path / 'seed.db'}", "datamcp") == ENTITY
    assert not (tmp_path / "env.db").exists()


async def test_config_keys_beat_their_variables_one_by_one(monkeypatch, redis_server, redis_prefix):
    monkeypatch.setenv("REDIS_HOST", redis_server.host)
    monkeypatch.setenv("REDIS_PORT", "1")  # wrong: the config's port must win
    monkeypatch.setenv("REDIS_PREFIX", redis_prefix)  # not in config: the variable applies
    await save_through_manager(memory_type="redis", config={"port": redis_server.port})
    options = {"backend_options": {"prefix": redis_prefix}}
    assert await read_back(redis_server.url, "datamcp", **options) == ENTITY


async def test_config_url_beats_hivemem_url(monkeypatch, tmp_path):
    monkeypatch.setenv("HIVEMEM_URL", f"sqlite:///{tmp_path / 'env.db'}")
    await save_through_manager(config={"url": f"sqlite:///{tmp_path / 'arg.db'}"})
    assert await read_back(f"sqlite:///{tmp_path / 'arg.db'}", "datamcp") == ENTITY
    assert not (tmp_path / "env.db").exists()


async def test_namespace_argument_beats_both_variables(monkeypatch, clean_env):
    monkeypatch.setenv("MEMORY_NAMESPACE", "seed-env")
    monkeypatch.setenv("HIVEMEM_NAMESPACE", "hivemem-env")
    manager = await save_through_manager(namespace="arg")
    assert manager.namespace == "arg"
    assert await read_back(f"sqlite:///{clean_env}", "arg") == ENTITY


async def test_hivemem_namespace_beats_memory_namespace(monkeypatch, clean_env):
    monkeypatch.setenv("MEMORY_NAMESPACE", "seed-env")
    monkeypatch.setenv("HIVEMEM_NAMESPACE", "hivemem-env")
    assert (await save_through_manager()).namespace == "hivemem-env"
    assert await read_back(f"sqlite:///{clean_env}", "hivemem-env") == ENTITY


async def test_environment_beats_toml(monkeypatch, tmp_path):
    toml = tmp_path / "hivemem.toml"
    toml.write_text(f'url = "sqlite:///{tmp_path / "toml.db"}"\nnamespace = "from-toml"\n')
    monkeypatch.setenv("HIVEMEM_CONFIG", str(toml))
    monkeypatch.setenv("MEMORY_NAMESPACE", "from-env")
    monkeypatch.setenv("HIVEMEM_URL", f"sqlite:///{tmp_path / 'env.db'}")
    await save_through_manager()
    assert await read_back(f"sqlite:///{tmp_path / 'env.db'}", "from-env") == ENTITY
    assert not (tmp_path / "toml.db").exists()


async def test_cache_argument_beats_hivemem_cache(monkeypatch):
    monkeypatch.setenv("HIVEMEM_CACHE", "none")
    manager = DistributedMemoryManager(memory_type="memory", cache=["local://"])
    assert [name for name, _ in manager.memory.caches] == ["local"]


# -- the factory ---------------------------------------------------------------------------


async def test_factory_reads_the_seed_variables_of_its_memory_type(
    monkeypatch, redis_server, redis_prefix
):
    monkeypatch.setenv("REDIS_HOST", redis_server.host)
    monkeypatch.setenv("REDIS_PORT", str(redis_server.port))
    monkeypatch.setenv("REDIS_PREFIX", redis_prefix)
    backend = DistributedMemoryFactory.create_memory_backend("redis", namespace="factory")
    assert isinstance(backend, hivemem.DistributedMemoryBackend)
    async with backend:
        await backend.save_entity("user", "u1", ENTITY)
    options = {"backend_options": {"prefix": redis_prefix}}
    assert await read_back(redis_server.url, "factory", **options) == ENTITY


async def test_factory_without_memory_type_follows_the_environment(
    monkeypatch, tmp_path, clean_env
):
    monkeypatch.setenv("MEMORY_TYPE", "sqlite")
    monkeypatch.setenv("HIVEMEM_SQLITE_PATH", str(tmp_path / "factory.db"))
    monkeypatch.setenv("MEMORY_NAMESPACE", "factory-env")
    async with DistributedMemoryFactory.create_memory_backend() as backend:
        await backend.save_entity("user", "u1", ENTITY)
    assert await read_back(f"sqlite:///{tmp_path / 'factory.db'}", "factory-env") == ENTITY
    assert not clean_env.exists()
