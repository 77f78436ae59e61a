"""Real Redis servers for tests: managers and the pytest fixtures that start them.

A pytest plugin, registered through the ``pytest11`` entry point of
hivemem-redis, so every test run with the plugin installed has the
fixtures without a ``conftest.py``:

* ``redis_server`` -- a ``redis-server`` shared by the session (tests must
  not kill it); ``redis_server.url`` is ``redis://127.0.0.1:PORT/0``;
* ``redis_server_factory`` -- private servers with their own options
  (``redis_server_factory(appendonly=True)``), for tests that kill, pause or
  restart them; all stop after the test;
* ``redis_cluster`` -- a real 3-master Redis Cluster shared by the session.

The managers (:class:`RedisServer`, :class:`RedisCluster`) are built on the
generic launcher of the conformance kit (:mod:`hivemem.testing.servers`):
each server listens on ``127.0.0.1`` only, on a free port, with its files in
a private directory, and readiness is a bounded poll on ``PING`` that also
checks the process id. A missing binary skips the test with the ``apt-get``
command that installs it (fails under ``CI``)::

    with RedisServer(appendonly=True) as server:
        ...  # server.url == "redis://127.0.0.1:PORT/0"
        server.kill()      # SIGKILL, like a crash
        server.restart()   # same port, same data directory

:func:`redis_command` talks RESP over a raw socket: no client library needed.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import Any

import pytest
from hivemem.testing.plugin import server_factory, start_server
from hivemem.testing.servers import (
    ServerError,
    ServerProcess,
    free_port,
    recv_until,
    require_binary,
)

__all__ = [
    "RedisCluster",
    "RedisServer",
    "redis_cluster",
    "redis_command",
    "redis_server",
    "redis_server_factory",
]


# -- a tiny RESP client (no client library needed) ------------------------------------


def _resp_parse(sock: socket.socket, buf: bytearray) -> tuple[Any, bytearray]:
    """Parse one RESP2 reply from ``buf`` (reading more from ``sock`` as needed)."""

    def line() -> bytes:
        recv_until(sock, buf, lambda pending: b"\r\n" in pending)
        end = buf.index(b"\r\n")
        out = bytes(buf[:end])
        del buf[: end + 2]
        return out

    head = line()
    kind, rest = head[:1], head[1:]
    if kind == b"+":
        return rest.decode(), buf
    if kind == b"-":
        raise ServerError(f"redis error: {rest.decode(errors='replace')}")
    if kind == b":":
        return int(rest), buf
    if kind == b"$":
        size = int(rest)
        if size < 0:
            return None, buf
        recv_until(sock, buf, lambda pending: len(pending) >= size + 2)
        data = bytes(buf[:size])
        del buf[: size + 2]
        return data, buf
    if kind == b"*":
        count = int(rest)
        if count < 0:
            return None, buf
        items = []
        for _ in range(count):
            item, buf = _resp_parse(sock, buf)
            items.append(item)
        return items, buf
    raise ServerError(f"unexpected redis reply {head[:40]!r}")


def redis_command(host: str, port: int, *args: str | bytes | int, timeout: float = 5.0) -> Any:
    """Send one command to a Redis server over a raw socket and return the parsed reply.

    Simple strings come back as ``str``, bulk strings as ``bytes``, errors
    raise :class:`ServerError`.
    """
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        raw = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(b"".join(parts))
        reply, _ = _resp_parse(sock, bytearray())
        return reply


# -- servers ------------------------------------------------------------------------


class RedisServer(ServerProcess):
    """A ``redis-server`` child process on a free loopback port.

    ``appendonly``/``appendfsync`` configure the AOF (with ``appendonly=True``
    data survives :meth:`kill` + :meth:`restart`, up to the fsync policy);
    RDB snapshots are off. ``extra_args`` are appended to the command line
    (``("--maxmemory", "10mb")``). ``cluster_enabled`` starts a cluster-mode
    node (used by :class:`RedisCluster`) whose bus port is also picked free.
    """

    binary = "redis-server"
    label = "redis"

    def __init__(
        self,
        port: int | None = None,
        *,
        appendonly: bool = False,
        appendfsync: str = "everysec",
        extra_args: Sequence[str] = (),
        cluster_enabled: bool = False,
        data_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__(port, data_dir=data_dir)
        if appendfsync not in ("always", "everysec", "no"):
            raise ValueError(f"appendfsync must be always, everysec or no, got {appendfsync!r}")
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.extra_args = tuple(extra_args)
        self.cluster_enabled = cluster_enabled
        self.cluster_port: int | None = None

    def _pick_ports(self) -> None:
        self.cluster_port = None  # a new client port gets a new bus port too
        super()._pick_ports()

    def _pick_extra_ports(self) -> None:
        if self.cluster_enabled and self.cluster_port is None:
            bus = free_port(self.host)
            while bus == self.port:
                bus = free_port(self.host)
            self.cluster_port = bus

    def _argv(self, port: int) -> list[str]:
        argv = [
            "--port", str(port),
            "--bind", self.host,
            "--dir", str(self.data_dir),
            "--daemonize", "no",
            "--protected-mode", "no",
            "--save", "",
            "--logfile", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", self.appendfsync,
            "--enable-debug-command", "local",
        ]  # fmt: skip
        if self.cluster_enabled:
            argv += [
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "2000",
                "--cluster-port", str(self.cluster_port),
            ]  # fmt: skip
        return argv + list(self.extra_args)

    def _probe(self) -> bool:
        if redis_command(self.host, self.port, "PING", timeout=1.0) != "PONG":
            return False
        info = redis_command(self.host, self.port, "INFO", "server", timeout=1.0)
        return f"process_id:{self.pid}\r\n".encode() in info

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://{self.host}:{self.port}/0"

    def command(self, *args: str | bytes | int, timeout: float = 5.0) -> Any:
        """Run one Redis command on this server over a raw socket (see :func:`redis_command`)."""
        return redis_command(self.host, self.port, *args, timeout=timeout)

    def flushall(self) -> None:
        """Delete every key of every database."""
        self.command("FLUSHALL")

    def start(self) -> RedisServer:
        """Start redis-server and wait until it answers PING; return self."""
        super().start()
        return self

    def restart(self) -> RedisServer:
        """Stop and start again on the same port (and bus port) with the same data."""
        super().restart()
        return self

    def __enter__(self) -> RedisServer:
        return self.start()


class RedisCluster:
    """A real Redis Cluster of ``masters`` cluster-mode ``redis-server`` nodes, no replicas.

    :meth:`start` starts the nodes, joins them with ``redis-cli --cluster
    create`` and waits (bounded) until every node reports ``cluster_state:ok``.
    """

    create_timeout: float = 60.0
    ready_timeout: float = 30.0

    def __init__(self, masters: int = 3, *, extra_args: Sequence[str] = ()) -> None:
        if masters < 3:
            raise ValueError("a Redis Cluster needs at least 3 masters")
        self.masters = masters
        self.nodes: list[RedisServer] = [
            RedisServer(cluster_enabled=True, extra_args=extra_args) for _ in range(masters)
        ]

    @property
    def url(self) -> str:
        """``redis+cluster://127.0.0.1:P1,127.0.0.1:P2,...``."""
        return "redis+cluster://" + ",".join(f"{n.host}:{n.port}" for n in self.nodes)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """``(host, port)`` of every node."""
        return [(n.host, n.port) for n in self.nodes]

    def start(self) -> RedisCluster:
        """Start every node, create the cluster and wait until it serves all slots."""
        cli = require_binary("redis-cli", "redis-tools")
        try:
            for node in self.nodes:
                node.start()
            if self._state_ok_everywhere():
                return self
            result = subprocess.run(
                [
                    cli,
                    "--cluster",
                    "create",
                    *(f"{n.host}:{n.port}" for n in self.nodes),
                    "--cluster-replicas",
                    "0",
                    "--cluster-yes",
                ],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=self.create_timeout,
                check=False,
            )
            if result.returncode != 0:
                raise ServerError(
                    "redis-cli --cluster create failed: "
                    + (result.stdout + result.stderr).decode(errors="replace")[-2000:]
                )
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _state_ok_everywhere(self) -> bool:
        for node in self.nodes:
            try:
                info = node.command("CLUSTER", "INFO", timeout=1.0)
            except (OSError, ServerError):
                return False
            text = info.decode() if isinstance(info, bytes) else str(info)
            fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
            if fields.get("cluster_state") != "ok":
                return False
            if fields.get("cluster_slots_assigned") != "16384":
                return False
            if fields.get("cluster_known_nodes") != str(self.masters):
                return False
        return True

    def wait_ready(self, timeout: float | None = None) -> None:
        """Poll ``CLUSTER INFO`` on every node until all say ``cluster_state:ok``."""
        deadline = time.monotonic() + (timeout or self.ready_timeout)
        while not self._state_ok_everywhere():
            for node in self.nodes:
                if not node.running:
                    raise ServerError(f"cluster node {node.port} exited:\n{node.log_tail()}")
            if time.monotonic() > deadline:
                raise ServerError("redis cluster did not reach cluster_state:ok in time")
            # the pause between polls is a bounded wait on a node process
            with contextlib.suppress(subprocess.TimeoutExpired):
                assert self.nodes[0].process is not None
                self.nodes[0].process.wait(timeout=0.05)

    def command_all(self, *args: str | bytes | int) -> list[Any]:
        """Run one command on every node; return the replies in node order."""
        return [node.command(*args) for node in self.nodes]

    def flushall(self) -> None:
        """Delete every key on every node."""
        self.command_all("FLUSHALL")

    def stop(self, *, cleanup: bool = False) -> None:
        """Stop every node. Safe to call twice."""
        for node in self.nodes:
            node.stop(cleanup=cleanup)

    def kill(self) -> None:
        """SIGKILL every node."""
        for node in self.nodes:
            node.kill()

    @property
    def running(self) -> bool:
        """True when every node process is alive."""
        return all(node.running for node in self.nodes)

    def __enter__(self) -> RedisCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop(cleanup=True)

    def __iter__(self) -> Iterator[RedisServer]:
        return iter(self.nodes)

    def __repr__(self) -> str:
        return f"<RedisCluster {self.url}>"


# -- fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real ``redis-server`` shared by the session (tests must not kill it)."""
    server = start_server(RedisServer())
    try:
        yield server
    finally:
        server.stop(cleanup=True)


@pytest.fixture
def redis_server_factory() -> Iterator[Callable[..., RedisServer]]:
    """Start private Redis servers: ``redis_server_factory(appendonly=True)``; all stop after."""
    yield from server_factory(RedisServer)


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """A real 3-master Redis Cluster shared by the session."""
    cluster = RedisCluster(masters=3)
    try:
        start_server(cluster)
        yield cluster
    finally:
        cluster.stop(cleanup=True)
