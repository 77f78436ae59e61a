"""Configuration sources, precedence, the seed's variables and secret masking."""

from __future__ import annotations

import logging

import hivemem
import pytest
from hivemem.config import MemoryConfig, load_config, mask_url, seed_backend
from hivemem.errors import ConfigError

SECRET = "s3cr3t-Pa55"


def test_defaults_point_at_the_embedded_file(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    cfg = load_config(env={})
    assert cfg.url == f"sqlite:///{tmp_path}/hivemem/memory.db"
    assert (cfg.namespace, cfg.cache, cfg.serializer) == ("default", ["local://"], "json")


def test_precedence_toml_env_kwargs(tmp_path):
    toml = tmp_path / "hivemem.toml"
    toml.write_text(
        '[hivemem]\nurl = "memory://fromtoml"\nnamespace = "toml"\ncompressor = "zlib"\n'
        'cache = ["local://?max_entries=5"]\n[hivemem.codec_options.zlib]\nlevel = 9\n'
    )
    env = {"HIVEMEM_CONFIG": str(toml), "HIVEMEM_NAMESPACE": "env"}
    cfg = load_config(env=env)
    assert (cfg.url, cfg.namespace, cfg.compressor) == ("memory://fromtoml", "env", "zlib")
    assert cfg.codec_options == {"zlib": {"level": 9}}
    assert cfg.cache == ["local://?max_entries=5"]
    cfg = load_config("memory://arg", env=env, namespace="kw")
    assert (cfg.url, cfg.namespace) == ("memory://arg", "kw")


def test_unknown_setting_is_named(tmp_path):
    toml = tmp_path / "bad.toml"
    toml.write_text('url = "memory://"\ncompresor = "zlib"\n')
    with pytest.raises(ConfigError, match="compresor"):
        load_config(config_file=toml, env={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(config_file=tmp_path / "nope.toml", env={})


def test_hivemem_cache_env_splits_tiers():
    cfg = load_config(
        env={"HIVEMEM_CACHE": "local:// memcached://a:1,b:2", "HIVEMEM_URL": "memory://"}
    )
    assert cfg.cache == ["local://", "memcached://a:1,b:2"]
    assert load_config(env={"HIVEMEM_CACHE": "none", "HIVEMEM_URL": "memory://"}).cache == []


def test_seed_redis_variables_build_a_url_and_prefix():
    env = {
        "MEMORY_TYPE": "redis",
        "REDIS_HOST": "cache.internal",
        "REDIS_PORT": "6380",
        "REDIS_DB": "2",
        "REDIS_PASSWORD": SECRET,
        "REDIS_PREFIX": "datamcp:",
        "MEMORY_NAMESPACE": "agents",
    }
    cfg = load_config(env=env)
    assert cfg.url.startswith("redis://:") and cfg.url.endswith("@cache.internal:6380/2")
    assert cfg.backend_options == {"prefix": "datamcp:"}
    assert cfg.namespace == "agents"
    assert SECRET not in repr(cfg) and SECRET not in str(cfg.to_dict())


def test_seed_mongodb_variables():
    cfg = load_config(
        env={"MEMORY_TYPE": "mongodb", "MONGODB_URI": "mongodb://m:27017/", "MONGODB_DB": "mem"}
    )
    assert cfg.url == "mongodb://m:27017/" and cfg.backend_options == {"database": "mem"}
    with pytest.raises(ConfigError, match="MEMORY_TYPE='cassandra'"):
        load_config(env={"MEMORY_TYPE": "cassandra"})


def test_seed_config_dicts():
    assert seed_backend(
        "redis", {"host": "h", "port": 1, "db": 0, "password": None, "prefix": "datamcp:"}
    ) == {"url": "redis://h:1/0", "backend_options": {"prefix": "datamcp:"}}
    assert seed_backend("mongodb", {"connection_string": "mongodb://x/", "database_name": "d"}) == {
        "url": "mongodb://x/",
        "backend_options": {"database": "d"},
    }
    assert seed_backend("mongodb", {"uri": "mongodb://y/", "db": "e"})["backend_options"] == {
        "database": "e"
    }
    assert seed_backend("sqlite", {"path": "/tmp/a.db"})["url"] == "sqlite:////tmp/a.db"
    assert seed_backend("anything", {"url": "memory://z"})["url"] == "memory://z"


def test_secrets_never_in_repr_or_errors(caplog):
    caplog.set_level(logging.DEBUG)
    url = f"redis://user:{SECRET}@localhost:1/0"
    assert SECRET not in mask_url(url)
    assert SECRET not in mask_url(f"mongodb://h/?authSource=a&password={SECRET}")
    cfg = MemoryConfig(
        url=url, codec_options={"fernet": {"keys": SECRET}}, backend_options={"password": SECRET}
    )
    assert SECRET not in repr(cfg)
    # a missing plugin for that URL: the error names the scheme, not the password
    with pytest.raises(hivemem.PluginNotFound) as info:
        hivemem.open_memory(cfg, plugins=hivemem.make_plugins(blocked=["redis"]))
    assert SECRET not in str(info.value)
    mm = hivemem.DistributedMemoryManager(memory_type="memory", namespace="x")
    assert SECRET not in repr(mm)
    assert SECRET not in caplog.text


def test_bad_values_are_config_errors():
    with pytest.raises(ConfigError, match="namespace"):
        load_config("memory://", env={}, namespace="")
    with pytest.raises(ConfigError, match="no scheme"):
        load_config("just-a-path.db", env={})
    with pytest.raises(ConfigError, match="synchronous"):
        hivemem.open_memory("sqlite:///x.db?synchronous=sometimes")
    with pytest.raises(ConfigError, match="max_entries"):
        hivemem.open_memory("memory://", cache=["local://?max_entries=lots"])
    with pytest.raises(hivemem.PluginNotFound, match="zlib"):
        hivemem.open_memory("memory://", compressor="brotli")
