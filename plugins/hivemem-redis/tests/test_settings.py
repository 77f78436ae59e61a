"""URL and option parsing; credentials never leak into reprs or errors."""

from __future__ import annotations

import pytest
from hivemem.errors import BackendUnavailable, ConfigError
from hivemem_redis.backend import RedisBackend
from hivemem_redis.settings import OWN_OPTIONS, parse, passthrough_kwargs


def test_standalone_url_parts() -> None:
    settings = parse("redis://alice:s3cret@db.example:6380/4?socket_timeout=1.5&retries=0", {})
    parts = (settings.host, settings.port, settings.db, settings.username, settings.password)
    assert parts == ("db.example", 6380, 4, "alice", "s3cret")
    assert settings.socket_timeout == 1.5 and settings.retries == 0
    assert settings.label == "db.example:6380"
    assert "s3cret" not in repr(settings)
    assert not settings.cluster and not settings.tls


def test_defaults_and_seed_options() -> None:
    settings = parse(
        "redis://",
        {"host": "h", "port": 7000, "db": 2, "password": "pw", "prefix": "datamcp:"},
    )
    parts = (settings.host, settings.port, settings.db, settings.password, settings.prefix)
    assert parts == ("h", 7000, 2, "pw", b"datamcp:")
    assert parse("redis://localhost", {}).prefix == b"hivemem:"
    assert parse("redis://localhost", {"prefix": None}).prefix == b"hivemem:"


def test_tls_unix_and_cluster() -> None:
    assert parse("rediss://h:1/0", {}).tls
    unix = parse("unix:///run/redis.sock?db=3", {})
    assert (unix.path, unix.db, unix.label) == ("/run/redis.sock", 3, "unix:/run/redis.sock")
    cluster = parse("redis+cluster://u:pw@a:7000,b:7001,[::1]:7002", {})
    assert cluster.cluster and cluster.nodes == (("a", 7000), ("b", 7001), ("::1", 7002))
    assert cluster.label == "a:7000,b:7001,::1:7002" and cluster.password == "pw"
    assert parse("rediss+cluster://a:1", {}).tls


def test_passthrough_options_are_typed() -> None:
    settings = parse("redis://h/0?health_check_interval=3&client_name=agent", {})
    kwargs = passthrough_kwargs(settings)
    assert kwargs["health_check_interval"] == 3 and kwargs["client_name"] == "agent"


@pytest.mark.parametrize(
    ("url", "options", "needle"),
    [
        ("http://h", {}, "scheme"),
        ("redis://h", {"prefix": "a{b}:"}, "prefix"),
        ("redis://h", {"retries": -1}, "retries"),
        ("redis://h", {"socket_timeout": "soon"}, "socket_timeout"),
        ("redis://h", {"invalidation": "maybe"}, "invalidation"),
        ("redis://h", {"socket_timeout": 0}, "socket_timeout"),
        ("redis://h", {"max_connections": 0}, "max_connections"),
        ("redis://h/x", {}, "db"),
        ("redis://h", {"port": "x"}, "port"),
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


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"retries": "x"}, "redis option retries='x': expected an integer"),
        (
            {"socket_timeout": "soon"},
            "redis option socket_timeout='soon': expected a number of seconds",
        ),
        ({"retry_backoff": -1}, "redis option retry_backoff=-1: must be >= 0"),
        ({"invalidation": "maybe"}, "redis option invalidation='maybe': expected true or false"),
    ],
)
def test_option_errors_have_one_shape(options: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse("redis://:hunter2@h/0", options)
    assert str(info.value) == message


def test_own_options_are_documented() -> None:
    assert list(OWN_OPTIONS) == [
        "prefix", "socket_timeout", "socket_connect_timeout", "retries", "retry_backoff",
        "retry_backoff_cap", "max_connections", "invalidation", "client",
    ]
    assert all(OWN_OPTIONS.values())
    settings = parse("redis://h/0", {"client_name": "agent"})
    assert settings.passthrough == {"client_name": "agent"}  # only undeclared options pass
