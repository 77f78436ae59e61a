"""Configuration of hivemem-mongo: registration, options, URL redaction, the seed hook.

None of these tests talks to a server: building a backend does no I/O.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import hivemem_mongo
import pytest
from hivemem import make_plugins
from hivemem.plugin import ConfigError
from hivemem_mongo.backend import MongoBackend
from hivemem_mongo.settings import KNOWN_OPTIONS, MongoURL

DOC = Path(__file__).resolve().parents[3] / "docs" / "backends" / "mongo.md"


# -- registration ------------------------------------------------------------------------
def test_entry_point_registers_mongodb_schemes() -> None:
    plugins = make_plugins(allowed=["mongo"])
    entry = plugins.registry("backend").for_scheme("mongodb+srv")
    assert entry.name == "mongodb"
    assert set(entry.schemes) == {"mongodb", "mongodb+srv"}
    assert entry.distribution == "hivemem-mongo"
    built = entry.factory("mongodb://db.example:27017/")
    assert isinstance(built, MongoBackend)
    assert plugins.registry("backend").for_scheme("mongodb") is entry


def test_factory_does_no_io_and_reads_database_from_url() -> None:
    backend = hivemem_mongo.factory("mongodb://nowhere.invalid:1/agents?replicaSet=rs0")
    assert backend.database_name == "agents"
    assert backend._client is None  # nothing connected or resolved yet
    assert hivemem_mongo.factory("mongodb://h/").database_name == "hivemem"
    assert hivemem_mongo.factory("mongodb://h/x", database="y").database_name == "y"


def test_credentials_never_in_repr_or_describe() -> None:
    url = "mongodb://svcuser%40corp:s3cr%2Ft@db1.example:27017,db2.example/agents?authSource=admin"
    backend = MongoBackend(url)
    text = repr(backend) + backend._describe(RuntimeError("login s3cr/t svcuser@corp failed"))
    for secret in ("s3cr", "svcuser", "corp", "%40", "%2F"):
        assert secret not in text
    assert "db1.example:27017,db2.example" in text
    short = MongoBackend("mongodb://u:p@h/")
    message = short._describe(RuntimeError("ServerSelectionTimeoutError: user u, password p"))
    assert "ServerSelectionTimeoutError: user ***, password ***" in message


# -- options -------------------------------------------------------------------------------


def test_options_are_validated() -> None:
    with pytest.raises(ConfigError, match="unknown mongodb option"):
        MongoBackend("mongodb://h/", colection_prefix="x")
    with pytest.raises(ConfigError, match="chunk_size"):
        MongoBackend("mongodb://h/", chunk_size=10)
    with pytest.raises(ConfigError, match="read_concern"):
        MongoBackend("mongodb://h/", read_concern="strong")
    with pytest.raises(ConfigError, match="mongodb://"):
        MongoBackend("redis://h/")
    # the seed's Redis-style key prefix is accepted and has no effect
    assert MongoBackend("mongodb://h/", prefix="datamcp:").collection_prefix == "hivemem_"


def test_write_and_read_concern_reach_the_database() -> None:
    backend = MongoBackend(
        "mongodb://127.0.0.1:1/", write_concern="majority", read_concern="majority"
    )
    assert backend.write_concern is not None and backend.write_concern.document == {"w": "majority"}
    assert MongoBackend("mongodb://h/", write_concern="2").write_concern.document == {"w": 2}
    assert MongoBackend(
        "mongodb://h/", write_concern={"w": 1, "j": True}
    ).write_concern.document == {
        "w": 1,
        "j": True,
    }
    client = backend._build_client()  # AsyncMongoClient connects lazily: no I/O here
    try:
        assert client.options.retry_writes is True
        database = client.get_database(
            "x", write_concern=backend.write_concern, read_concern=backend.read_concern
        )
        assert database.write_concern.document == {"w": "majority"}
        assert database.read_concern.level == "majority"
    finally:
        asyncio.run(client.close())


def test_retry_writes_can_be_turned_off_in_the_url() -> None:
    client = MongoBackend("mongodb://127.0.0.1:1/?retryWrites=false")._build_client()
    try:
        assert client.options.retry_writes is False
    finally:
        asyncio.run(client.close())


def test_option_errors_have_one_shape_and_hide_secrets() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"chunk_size": 10}, "mongodb option chunk_size=10: must be >= 1024"),
        ({"chunk_size": 64 * 1024 * 1024}, "mongodb option chunk_size=67108864: must be <= "),
        ({"chunk_size": "big"}, "mongodb option chunk_size='big': expected an integer"),
        ({"seq_block": 0}, "mongodb option seq_block=0: must be >= 1"),
        ({"create_indexes": "maybe"}, "mongodb option create_indexes='maybe': expected true"),
        ({"read_concern": "strong"}, "mongodb option read_concern='strong': use one of "),
        ({"write_concern": 1.5}, "mongodb option write_concern=1.5: use 'majority'"),
    ]
    for options, message in cases:
        with pytest.raises(ConfigError) as info:
            MongoBackend("mongodb://h/", **options)
        assert str(info.value).startswith(message), (options, str(info.value))
    with pytest.raises(ConfigError) as info:
        MongoBackend("mongodb://h/", client_options="user:hunter2")
    assert str(info.value).startswith("mongodb option client_options='***': expected a mapping")
    assert "hunter2" not in str(info.value)


def test_options_are_coerced_from_strings_and_typed_values_alike() -> None:
    from_strings = MongoBackend(
        "mongodb://h/", chunk_size="4096", seq_block="3", create_indexes="false"
    )
    typed = MongoBackend("mongodb://h/", chunk_size=4096, seq_block=3, create_indexes=False)
    for backend in (from_strings, typed):
        assert (backend.chunk_size, backend.seq_block, backend.create_indexes) == (4096, 3, False)
    defaults = MongoBackend("mongodb://h/", database=None, collection_prefix=None)
    assert (defaults.database_name, defaults.collection_prefix) == ("hivemem", "hivemem_")
    assert defaults.chunk_size == 8 * 1024 * 1024 and defaults.seq_block == 256
    assert defaults.create_indexes is True


def test_every_option_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    for name in KNOWN_OPTIONS:
        assert f"| `{name}` |" in text, name


def test_url_shows_hosts_only() -> None:
    where = MongoURL("mongodb+srv://u:pw@cluster0.example/db?tlsCertificateKeyFilePassword=x1y")
    assert where.display == "mongodb+srv://cluster0.example"
    assert where.path_database == "db"
    assert where.redact("pw and x1y, not pwd") == "*** and ***, not pwd"


# -- the seed hook ---------------------------------------------------------------------------
def seed(memory_type: str, config: dict[str, Any], env: dict[str, str]) -> Any:
    return hivemem_mongo.hivemem_seed_backend(memory_type=memory_type, config=config, env=env)


ENV = {"MONGODB_URI": "mongodb://env-host:27017/", "MONGODB_DB": "env_db"}


def test_seed_explicit_config_wins_over_the_environment() -> None:
    config = {"connection_string": "mongodb://cfg-host/", "database_name": "cfg_db"}
    assert seed("mongodb", config, ENV) == {
        "url": "mongodb://cfg-host/",
        "backend_options": {"database": "cfg_db"},
    }
    aliases = {"uri": "mongodb://alias/", "db": "alias_db", "collection_prefix": "p_"}
    assert seed("mongodb", aliases, ENV) == {
        "url": "mongodb://alias/",
        "backend_options": {"database": "alias_db", "collection_prefix": "p_"},
    }
    # only the URL given: the database still comes from the environment
    assert seed("mongodb", {"uri": "mongodb://alias/"}, ENV) == {
        "url": "mongodb://alias/",
        "backend_options": {"database": "env_db"},
    }


def test_seed_uses_the_environment_when_config_is_empty() -> None:
    assert seed("mongodb", {}, ENV) == {
        "url": "mongodb://env-host:27017/",
        "backend_options": {"database": "env_db"},
    }
    assert seed("mongodb", {}, {"MONGODB_URI": "mongodb://env-host/"}) == {
        "url": "mongodb://env-host/",
        "backend_options": {"database": "agent_memory"},
    }


def test_seed_default_database_only_when_nothing_is_given() -> None:
    assert seed("mongodb", {}, {}) == {
        "url": "mongodb://localhost:27017/",
        "backend_options": {"database": "agent_memory"},
    }
    # a config without a database leaves it to the URL's path (else "hivemem")
    mapped = seed("mongodb", {"connection_string": "mongodb://h/agents"}, {})
    assert mapped == {"url": "mongodb://h/agents", "backend_options": {}}
    built = MongoBackend(mapped["url"], **mapped["backend_options"])
    assert built.database_name == "agents"


def test_seed_answers_only_for_mongodb() -> None:
    assert seed("mongo", {}, {})["backend_options"] == {"database": "agent_memory"}
    for other in ("redis", "sqlite", "memory", "memcached", "mongodbx", ""):
        assert seed(other, {"uri": "mongodb://h/"}, ENV) is None


def test_seed_hook_is_reached_through_the_plugin_manager() -> None:
    plugins = make_plugins(allowed=["mongo"])
    mapped = plugins.pm.hook.hivemem_seed_backend(memory_type="mongodb", config={}, env=ENV)
    assert mapped == {"url": "mongodb://env-host:27017/", "backend_options": {"database": "env_db"}}


def test_transaction_options_are_a_plain_mapping() -> None:
    # with_transaction(work, **options): a coroutine here would break every transaction
    backend = MongoBackend("mongodb://h/", write_concern="majority", read_concern="available")
    options = backend._transaction_options()
    assert isinstance(options, dict)
    assert options["write_concern"].document == {"w": "majority"}
    assert "read_concern" not in options  # "available" is not allowed in a transaction
    majority = MongoBackend("mongodb://h/", read_concern="majority")._transaction_options()
    assert majority["read_concern"].level == "majority"
