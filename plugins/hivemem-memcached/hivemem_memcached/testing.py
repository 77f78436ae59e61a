"""Real memcached servers for tests: the manager and the pytest fixtures that start it.

A pytest plugin, registered through the ``pytest11`` entry point of
hivemem-memcached, so every test run with the plugin installed has the
fixtures without a ``conftest.py``:

* ``memcached_server`` -- a ``memcached`` shared by the session (tests must
  not kill it); ``memcached_server.url`` is ``memcached://127.0.0.1:PORT``;
* ``memcached_server_factory`` -- private servers with their own options
  (``memcached_server_factory(item_size=2 << 20)``), for tests that kill,
  pause or restart them; all stop after the test.

:class:`MemcachedServer` is built on the generic launcher of the conformance
kit (:mod:`hivemem.testing.servers`): it listens on ``127.0.0.1`` only (TCP,
no UDP), on a free port, and readiness is a bounded poll on ``stats`` that
also checks the process id. A missing binary skips the test with the
``apt-get`` command that installs it (fails under ``CI``).
:func:`memcached_command` speaks the text protocol over a raw socket.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator, Sequence

import pytest
from hivemem.testing.plugin import server_factory, start_server
from hivemem.testing.servers import ServerProcess, recv_until

__all__ = ["MemcachedServer", "memcached_command", "memcached_server", "memcached_server_factory"]


def memcached_command(host: str, port: int, command: str, *, timeout: float = 5.0) -> list[str]:
    """Send one text-protocol command (``stats``, ``version``, ...) and return its lines."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(command.encode() + b"\r\n")
        buf = bytearray()
        terminators = (b"END\r\n", b"OK\r\n", b"ERROR\r\n")

        def done(reply: bytearray) -> bool:
            if reply.startswith(b"VERSION ") and reply.endswith(b"\r\n"):
                return True
            return any(reply.endswith(end) for end in terminators)

        recv_until(sock, buf, done)
        return buf.decode(errors="replace").splitlines()


class MemcachedServer(ServerProcess):
    """A ``memcached`` child process on a free loopback port (TCP only, ``-U 0``).

    ``memory_mb`` is the cache size (``-m``), ``item_size`` the largest item
    in bytes (``-I``, default the server's 1 MiB).
    """

    binary = "memcached"
    label = "memcached"

    def __init__(
        self,
        port: int | None = None,
        *,
        memory_mb: int = 64,
        item_size: int | None = None,
        extra_args: Sequence[str] = (),
        data_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__(port, data_dir=data_dir)
        self.memory_mb = int(memory_mb)
        self.item_size = item_size
        self.extra_args = tuple(extra_args)

    def _argv(self, port: int) -> list[str]:
        argv = ["-l", self.host, "-p", str(port), "-U", "0", "-m", str(self.memory_mb)]
        if self.item_size is not None:
            argv += ["-I", str(int(self.item_size))]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            argv += ["-u", "root"]  # memcached refuses to run as root without it
        return argv + list(self.extra_args)

    def _probe(self) -> bool:
        lines = memcached_command(self.host, self.port, "stats", timeout=1.0)
        return f"STAT pid {self.pid}" in lines

    @property
    def url(self) -> str:
        """``memcached://127.0.0.1:PORT``."""
        return f"memcached://{self.host}:{self.port}"

    def command(self, command: str, *, timeout: float = 5.0) -> list[str]:
        """Run one text-protocol command (see :func:`memcached_command`)."""
        return memcached_command(self.host, self.port, command, timeout=timeout)

    def flush_all(self) -> None:
        """Invalidate every item."""
        self.command("flush_all")

    def start(self) -> MemcachedServer:
        """Start memcached and wait until it answers ``stats``; return self."""
        super().start()
        return self

    def restart(self) -> MemcachedServer:
        """Stop and start again on the same port (memcached keeps no data)."""
        super().restart()
        return self

    def __enter__(self) -> MemcachedServer:
        return self.start()


# -- fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def memcached_server() -> Iterator[MemcachedServer]:
    """A real ``memcached`` shared by the session (tests must not kill it)."""
    server = start_server(MemcachedServer())
    try:
        yield server
    finally:
        server.stop(cleanup=True)


@pytest.fixture
def memcached_server_factory() -> Iterator[Callable[..., MemcachedServer]]:
    """Start private memcached servers: ``memcached_server_factory(item_size=2 << 20)``."""
    yield from server_factory(MemcachedServer)
