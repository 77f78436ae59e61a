"""The real-server managers start, answer, stop and stay on loopback.

The generic launcher is the kit's (:mod:`hivemem.testing.servers`); the
Redis and memcached managers and fixtures belong to their plugins
(``hivemem_redis.testing``, ``hivemem_memcached.testing``), whose old names
in the kit still work with a DeprecationWarning naming the new import.
"""

from __future__ import annotations

import importlib
import os
import socket
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from hivemem.testing import servers
from hivemem.testing.helpers import skip_or_fail
from hivemem.testing.plugin import missing_binary, start_server
from hivemem.testing.servers import ServerBinaryMissing, ServerError, find_binary, free_port
from hivemem_memcached.testing import MemcachedServer
from hivemem_redis.testing import RedisCluster, RedisServer

LOOPBACK_HEX = "0100007F"  # 127.0.0.1 as /proc/net/tcp writes it


def _listeners(port: int, table: str = "tcp") -> list[str]:
    """Local addresses (hex) of sockets on ``port`` in /proc/net/<table> (LISTEN only for TCP)."""
    out = []
    for name in (table, table + "6"):
        path = Path("/proc/net") / name
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            addr, hexport = fields[1].rsplit(":", 1)
            state = fields[3]
            if int(hexport, 16) == port and (table != "tcp" or state == "0A"):
                out.append(addr)
    return out


def _assert_loopback_only(port: int, *, udp: bool = False) -> None:
    if not Path("/proc/net/tcp").exists():
        skip_or_fail("no /proc/net to inspect listening sockets (CI needs Linux)")
    assert _listeners(port) == [LOOPBACK_HEX]
    if udp:
        assert _listeners(port, "udp") == []


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
    except ConnectionRefusedError:
        return True
    return False


# -- redis ----------------------------------------------------------------------------------


def test_session_redis_server(redis_server: RedisServer) -> None:
    assert redis_server.host == "127.0.0.1"
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert redis_server.command("PING") == "PONG"
    _assert_loopback_only(redis_server.port)


def test_redis_lifecycle(redis_server_factory: Callable[..., RedisServer]) -> None:
    server = redis_server_factory()
    port, data_dir = server.port, server.data_dir
    assert server.running and server.pid is not None
    assert server.command("SET", "k", b"\x00\r\nv") == "OK"
    assert server.command("GET", "k") == b"\x00\r\nv"

    server.pause()
    assert server.paused
    with pytest.raises(OSError):
        server.command("PING", timeout=0.3)  # stopped process: the reply never comes
    server.resume()
    assert server.command("PING") == "PONG"

    server.kill()
    assert not server.running and _refused(port)
    server.restart()
    assert (server.port, server.data_dir) == (port, data_dir)
    assert server.command("PING") == "PONG"
    assert server.command("GET", "k") is None  # no AOF: a crash loses the data

    server.stop()
    server.stop()
    assert not server.running and _refused(port)


def test_redis_aof_survives_kill(redis_server_factory: Callable[..., RedisServer]) -> None:
    server = redis_server_factory(appendonly=True, appendfsync="always")
    server.command("RPUSH", "log", "a", "b")
    server.kill()
    server.restart()
    assert server.command("LRANGE", "log", 0, -1) == [b"a", b"b"]
    info = server.command("CONFIG", "GET", "appendonly")
    assert info == [b"appendonly", b"yes"]


def test_redis_extra_args_and_fixed_port(redis_server_factory: Callable[..., RedisServer]) -> None:
    port = free_port()
    server = redis_server_factory(port, extra_args=("--maxmemory", "7mb"))
    assert server.port == port
    assert server.command("CONFIG", "GET", "maxmemory") == [b"maxmemory", str(7 << 20).encode()]
    _assert_loopback_only(port)


def test_context_manager_removes_its_directory() -> None:
    with start_server(RedisServer()) as server:
        data_dir = server.data_dir
        assert data_dir is not None and data_dir.is_dir()
        assert server.command("PING") == "PONG"
        port = server.port
    assert not data_dir.exists()
    assert _refused(port)


def test_port_race_is_retried(
    monkeypatch: pytest.MonkeyPatch, redis_server_factory: Callable[..., RedisServer]
) -> None:
    """The picked port is taken before the server binds it: start retries on another."""
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen(1)
    taken = squatter.getsockname()[1]
    real = servers.free_port
    picks: list[int] = []

    def racy_free_port(host: str = "127.0.0.1") -> int:
        port = taken if not picks else real(host)
        picks.append(port)
        return port

    monkeypatch.setattr(servers, "free_port", racy_free_port)
    try:
        server = redis_server_factory()
    finally:
        squatter.close()
    assert picks[0] == taken and server.port != taken
    assert server.command("PING") == "PONG"


def test_fixed_port_in_use_fails_clearly() -> None:
    if find_binary("redis-server") is None:
        missing_binary(ServerBinaryMissing("redis-server"))  # fails under CI
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen(1)
        server = RedisServer(squatter.getsockname()[1])
        with pytest.raises(ServerError, match="already in use"):
            server.start()
        assert not server.running
        server.cleanup()


def test_redis_cluster(redis_cluster: RedisCluster) -> None:
    assert len(redis_cluster.nodes) == 3
    assert redis_cluster.url == "redis+cluster://" + ",".join(
        f"127.0.0.1:{n.port}" for n in redis_cluster.nodes
    )
    for node in redis_cluster.nodes:
        _assert_loopback_only(node.port)
        info = node.command("CLUSTER", "INFO").decode()
        assert "cluster_state:ok" in info
    slots = redis_cluster.nodes[0].command("CLUSTER", "SLOTS")
    assert sum(end - start + 1 for start, end, *_ in slots) == 16384
    assert {master[1] for _, _, master, *_ in slots} == {n.port for n in redis_cluster.nodes}
    # a key lives on exactly one node; the others redirect with MOVED
    answers = []
    for node in redis_cluster.nodes:
        try:
            answers.append(node.command("SET", "hmkit-key", "v"))
        except ServerError as exc:
            assert "MOVED" in str(exc)
    assert answers == ["OK"]


# -- memcached ------------------------------------------------------------------------------


def test_session_memcached_server(memcached_server: MemcachedServer) -> None:
    assert memcached_server.url == f"memcached://127.0.0.1:{memcached_server.port}"
    assert memcached_server.command("version")[0].startswith("VERSION ")
    _assert_loopback_only(memcached_server.port, udp=True)


def test_memcached_lifecycle(memcached_server_factory: Callable[..., MemcachedServer]) -> None:
    server = memcached_server_factory(memory_mb=16, item_size=2 * 1024 * 1024)
    port = server.port
    settings = server.command("stats settings")
    assert "STAT item_size_max 2097152" in settings
    assert "STAT maxbytes 16777216" in settings
    assert "STAT udpport 0" in settings
    with socket.create_connection((server.host, port), timeout=5) as conn:
        conn.sendall(b"set hm 0 0 2\r\nhi\r\nget hm\r\n")
        buf = b""
        while not buf.endswith(b"END\r\n"):
            buf += conn.recv(4096)
    assert buf == b"STORED\r\nVALUE hm 0 2\r\nhi\r\nEND\r\n"

    server.pause()
    with pytest.raises(OSError):
        server.command("version", timeout=0.3)
    server.resume()
    server.kill()
    assert _refused(port)
    server.restart()
    assert server.port == port
    assert server.command("get hm") == ["END"]  # memcached keeps nothing
    server.stop()
    assert _refused(port)


# -- binaries -------------------------------------------------------------------------------


def test_find_binary() -> None:
    assert find_binary("hmkit-no-such-binary") is None
    sh = find_binary("sh")
    assert sh is not None and os.access(sh, os.X_OK)


class _Absent(RedisServer):
    binary = "hmkit-no-such-binary"


def test_missing_binary_names_the_package() -> None:
    with pytest.raises(ServerBinaryMissing) as info:
        _Absent().start()
    assert "apt-get install -y" in str(info.value)
    missing = ServerBinaryMissing("memcached")
    assert missing.package == "memcached"
    assert str(missing).endswith("apt-get install -y memcached")
    tools = ServerBinaryMissing("redis-cli", "redis-tools")
    assert tools.package == "redis-tools"
    assert (
        str(tools) == "redis-cli is not installed; install it with: apt-get install -y redis-tools"
    )


@pytest.mark.parametrize("ci", ["", "false"])
def test_missing_binary_skips_outside_ci(monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y"):
        start_server(_Absent())


@pytest.mark.parametrize("ci", ["true", "1", "TRUE"])
def test_missing_binary_fails_in_ci(monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y"):
        start_server(_Absent())


def test_cluster_without_redis_cli_names_redis_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    """redis-cli comes from redis-tools: the cluster says so before starting any node."""
    real = servers.find_binary
    monkeypatch.setattr(
        servers, "find_binary", lambda name: None if name == "redis-cli" else real(name)
    )
    cluster = RedisCluster(masters=3)
    with pytest.raises(ServerBinaryMissing) as info:
        cluster.start()
    assert (info.value.binary, info.value.package) == ("redis-cli", "redis-tools")
    assert not any(node.running for node in cluster.nodes)


# -- the server fixtures belong to their plugins ----------------------------------------------

MOVED = [
    ("RedisServer", "hivemem_redis.testing", "hivemem-redis"),
    ("RedisCluster", "hivemem_redis.testing", "hivemem-redis"),
    ("redis_command", "hivemem_redis.testing", "hivemem-redis"),
    ("MemcachedServer", "hivemem_memcached.testing", "hivemem-memcached"),
    ("memcached_command", "hivemem_memcached.testing", "hivemem-memcached"),
]


@pytest.mark.parametrize(("name", "module", "distribution"), MOVED)
@pytest.mark.parametrize("old", ["hivemem.testing", "hivemem.testing.servers"])
def test_old_names_warn_and_name_the_new_import(
    old: str, name: str, module: str, distribution: str
) -> None:
    new = getattr(importlib.import_module(module), name)
    with pytest.warns(DeprecationWarning) as caught:
        got = getattr(importlib.import_module(old), name)
    assert got is new
    (warning,) = caught
    assert str(warning.message) == (
        f"{old}.{name} moved to the {distribution} plugin: use 'from {module} import {name}'"
    )
    assert warning.filename == __file__  # points at the caller, not at the kit


@pytest.mark.parametrize(("name", "module", "distribution"), MOVED)
def test_old_names_without_the_plugin_say_what_to_install(
    monkeypatch: pytest.MonkeyPatch, name: str, module: str, distribution: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # as if the plugin were not installed
    with pytest.warns(DeprecationWarning), pytest.raises(ImportError) as info:
        getattr(servers, name)
    assert str(info.value) == (
        f"{name} now comes from {module}, in the {distribution} plugin, which is not "
        f"installed: pip install {distribution}"
    )


def test_unknown_names_are_still_attribute_errors() -> None:
    with pytest.raises(AttributeError, match="hmkit_nothing"):
        servers.hmkit_nothing  # noqa: B018


@pytest.mark.parametrize(
    ("entry_point", "module"),
    [
        ("hivemem_redis", "hivemem_redis.testing"),
        ("hivemem_memcached", "hivemem_memcached.testing"),
    ],
)
def test_server_fixtures_come_from_the_plugins_entry_point(
    pytestconfig: pytest.Config, entry_point: str, module: str
) -> None:
    assert pytestconfig.pluginmanager.get_plugin(entry_point) is sys.modules[module]
    assert pytestconfig.pluginmanager.get_plugin("hivemem-missing-server-fixtures") is None


_USES_REDIS = """
    def test_uses_redis(redis_server):
        pass

    def test_uses_memcached(memcached_server_factory):
        pass
"""


@pytest.mark.parametrize("ci", ["", "true"])
def test_a_missing_server_plugin_skips_or_fails_naming_the_package(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str
) -> None:
    monkeypatch.setenv("CI", ci)
    pytester.makepyfile(test_subject=textwrap.dedent(_USES_REDIS))
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "-p", "no:hivemem_redis", "-rsE", "test_subject.py"
    )
    if ci:
        result.assert_outcomes(passed=1, errors=1)
        result.stdout.fnmatch_lines(["ERROR *test_uses_redis*pip install hivemem-redis*CI is set*"])
    else:
        result.assert_outcomes(passed=1, skipped=1)
        result.stdout.fnmatch_lines(
            [
                "SKIPPED *the redis_server fixture comes from hivemem_redis.testing, in the "
                "hivemem-redis plugin, which is not installed or not loaded (-p no:...): "
                "pip install hivemem-redis"
            ]
        )
