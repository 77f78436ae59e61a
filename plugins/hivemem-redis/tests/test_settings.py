"""URL and option parsing; credentials never leak into reprs or errors."""

from __future__ import annotations

import pytest
from hivemem.errors import BackendUnavailable, ConfigError
from hivemem_redis.backend import RedisBackend
from hivemem_redis.settings import parse, passthrough_kwargs


def test_standalone_url_parts() -> None:
    s = parse("redis://alice:s3cret@db.example:6380/4?socket_timeout=1.5&retries=0", {})
    parts = (s.host, s.port, s.db, s.username, s.password)
    assert parts == ("db.example", 6380, 4, "alice", "s3cret")
    assert s.socket_timeout == 1.5 and s.retries == 0
    assert s.label == "db.example:6380"
    assert "s3cret" not in repr(s)
    assert not s.cluster and not s.tls


def test_defaults_and_seed_options() -> None:
    s = parse(
        "redis://",
        {"host": "h", "port": 7000, "db": 2, "password": "pw", "prefix": "datamcp:"},
    )
    assert (s.host, s.port, s.db, s.password, s.prefix) == ("h", 7000, 2, "pw", b"datamcp:")
    assert parse("redis://localhost", {}).prefix == b"hivemem:"
    assert parse("redis://localhost", {"prefix": None}).prefix == b"hivemem:"


def test_tls_unix_and_cluster() -> None:
    assert parse("rediss://h:1/0", {}).tls
    u = parse("unix:///run/redis.sock?db=3", {})
    assert (u.path, u.db, u.label) == ("/run/redis.sock", 3, "unix:/run/redis.sock")
    c = parse("redis+cluster://u:pw@a:7000,b:7001,[::1]:7002", {})
    assert c.cluster and c.nodes == (("a", 7000), ("b", 7001), ("::1", 7002))
    assert c.label == "a:7000,b:7001,::1:7002" and c.password == "pw"
    assert parse("rediss+cluster://a:1", {}).tls


def test_passthrough_options_are_typed() -> None:
    s = parse("redis://h/0?health_check_interval=3&client_name=agent", {})
    kwargs = passthrough_kwargs(s)
    assert kwargs["health_check_interval"] == 3 and kwargs["client_name"] == "agent"


@pytest.mark.parametrize(
    ("url", "options", "needle"),
    [
        ("http://h", {}, "scheme"),
        ("redis://h", {"prefix": "a{b}:"}, "prefix"),
        ("redis://h", {"retries": -1}, "retries"),
        ("redis://h", {"socket_timeout": "soon"}, "socket_timeout"),
        ("redis://h", {"invalidation": "maybe"}, "invalidation"),
        ("redis+cluster://a:1/2", {}, "database 0"),
        ("redis+cluster://", {}, "host:port"),
        ("unix://", {}, "socket path"),
    ],
)
def test_bad_settings_are_config_errors(url: str, options: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        parse(url, options)


def test_password_stays_out_of_repr_and_errors(hivemem_runner) -> None:
    backend = RedisBackend(
        "redis://bob:hunter2@127.0.0.1:1/0", socket_connect_timeout=0.5, retries=0
    )
    assert "hunter2" not in repr(backend)
    with pytest.raises(BackendUnavailable) as info:
        hivemem_runner.run(backend.open())
    assert "127.0.0.1:1" in str(info.value)
    assert "hunter2" not in str(info.value)
    hivemem_runner.run(backend.close())
