"""Real Redis, Redis Cluster and Memcached servers for tests.

Each manager starts the server binary from the Debian package as a child
process listening on ``127.0.0.1`` only, on a free port, with its files in a
private temporary directory. Readiness is a bounded poll: the manager
connects and speaks the server's own protocol (``PING`` for Redis, ``stats``
for Memcached) until the server answers *and* reports the process id of the
child it started, so a test never talks to a stranger that happened to grab
the port. Nothing here sleeps to synchronise.

::

    with RedisServer(appendonly=True) as server:
        ...  # server.url == "redis://127.0.0.1:PORT/0"
        server.kill()      # SIGKILL, like a crash
        server.restart()   # same port, same data directory

A free port is picked by binding ``127.0.0.1:0``; the small race between
releasing it and the server binding it is handled by retrying the start on a
new port a bounded number of times.

When a binary is missing, :class:`ServerBinaryMissing` says which Debian
package provides it; the pytest fixtures in :mod:`hivemem.testing.plugin`
turn that into a skip (or a failure when ``CI`` is set).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = [
    "APT_PACKAGES",
    "MemcachedServer",
    "RedisCluster",
    "RedisServer",
    "ServerBinaryMissing",
    "ServerError",
    "find_binary",
    "free_port",
    "memcached_command",
    "redis_command",
]

HOST = "127.0.0.1"

#: Debian package that provides each binary the managers run
APT_PACKAGES: dict[str, str] = {
    "redis-server": "redis-server",
    "redis-cli": "redis-tools",
    "memcached": "memcached",
}

_EXTRA_DIRS = ("/usr/sbin", "/usr/local/sbin", "/usr/local/bin", "/usr/bin", "/sbin", "/bin")
_START_ATTEMPTS = 5
_POLL_INTERVAL = 0.02


class ServerError(RuntimeError):
    """A test server could not be started, reached or stopped."""


class ServerBinaryMissing(ServerError):
    """The server binary is not installed; the message names the apt package."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.package = APT_PACKAGES.get(binary, binary)
        super().__init__(
            f"{binary} is not installed; install it with: apt-get install -y {self.package}"
        )


def find_binary(name: str) -> str | None:
    """Absolute path of the executable ``name`` (PATH, then the sbin/bin dirs), or None."""
    found = shutil.which(name)
    if found:
        return found
    for directory in _EXTRA_DIRS:
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _require_binary(name: str) -> str:
    path = find_binary(name)
    if path is None:
        raise ServerBinaryMissing(name)
    return path


def _parent_death_hook() -> Any:
    """A ``preexec_fn`` making the child die with this process (Linux), or None.

    Test runs that are killed (a CI timeout, SIGKILL) never run fixture
    teardown or ``atexit``; without this their servers would live on.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def hook() -> None:
        prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return hook


def free_port(host: str = HOST) -> int:
    """A TCP port that was free on ``host`` a moment ago (bind to port 0, then release)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# -- tiny protocol clients (no client library needed in core) ------------------------


def _recv_until(sock: socket.socket, buf: bytearray, predicate: Any) -> None:
    while not predicate(buf):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        buf.extend(chunk)


def _resp_parse(sock: socket.socket, buf: bytearray) -> tuple[Any, bytearray]:
    """Parse one RESP2 reply from ``buf`` (reading more from ``sock`` as needed)."""

    def line() -> bytes:
        _recv_until(sock, buf, lambda b: b"\r\n" in b)
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
        _recv_until(sock, buf, lambda b: len(b) >= size + 2)
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


def memcached_command(host: str, port: int, command: str, *, timeout: float = 5.0) -> list[str]:
    """Send one text-protocol command (``stats``, ``version``, ...) and return its lines."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(command.encode() + b"\r\n")
        buf = bytearray()
        terminators = (b"END\r\n", b"OK\r\n", b"ERROR\r\n")

        def done(b: bytearray) -> bool:
            if b.startswith(b"VERSION ") and b.endswith(b"\r\n"):
                return True
            return any(b.endswith(t) for t in terminators)

        _recv_until(sock, buf, done)
        return buf.decode(errors="replace").splitlines()


# -- process management ---------------------------------------------------------------

#: running servers (strong references, so a forgotten server is still killed at exit)
_LIVE: set[_ServerProcess] = set()


@atexit.register
def _kill_leftovers() -> None:
    for server in list(_LIVE):
        with contextlib.suppress(Exception):
            server.kill()


class _EarlyExit(ServerError):
    pass


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _wait_port_free(host: str, port: int, deadline: float) -> None:
    """Poll until ``port`` can be bound again (a killed server's socket is gone)."""
    while not _port_is_free(host, port) and time.monotonic() < deadline:
        time.sleep(_POLL_INTERVAL)  # polling interval, bounded by the deadline


class _ServerProcess:
    """Common lifecycle of one server child process."""

    binary: str = ""
    label: str = "server"
    start_timeout: float = 15.0
    stop_timeout: float = 10.0

    def __init__(self, port: int | None = None, *, data_dir: str | os.PathLike[str] | None = None):
        self.host = HOST
        self._fixed_port = port
        self.port: int = port or 0
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.process: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None
        self._paused = False

    # -- subclass hooks ----------------------------------------------------------
    def _argv(self, port: int) -> list[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _probe(self) -> bool:  # pragma: no cover - abstract
        """True when the server on self.port answers and is our child."""
        raise NotImplementedError

    def _pick_ports(self) -> None:
        self.port = free_port(self.host)
        self._pick_extra_ports()

    def _pick_extra_ports(self) -> None:
        """Pick any further port the server needs (kept across restarts)."""

    # -- public ------------------------------------------------------------------
    @property
    def url(self) -> str:  # pragma: no cover - overridden
        """Connection URL of this server."""
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        """Process id of the running server, None when stopped."""
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        """True while the child process exists (even when paused)."""
        return self.process is not None and self.process.poll() is None

    @property
    def log_path(self) -> Path | None:
        """The file receiving the server's stdout and stderr."""
        return self.data_dir / "server.log" if self.data_dir is not None else None

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines the server logged (for error messages)."""
        path = self.log_path
        if path is None or not path.exists():
            return ""
        text = path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def start(self) -> _ServerProcess:
        """Start the server and wait (bounded) until it answers; return self."""
        return self._start(self._fixed_port, wait_for_port=False)

    def _start(self, pinned_port: int | None, *, wait_for_port: bool) -> _ServerProcess:
        if self.running:
            return self
        binary = _require_binary(self.binary)
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix=f"hivemem-{self.label}-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        last: Exception | None = None
        for _attempt in range(_START_ATTEMPTS):
            if pinned_port is None:
                self._pick_ports()
            else:
                self.port = pinned_port
                self._pick_extra_ports()
                if wait_for_port:  # a restart: the old process may still hold the socket
                    _wait_port_free(self.host, pinned_port, time.monotonic() + 5.0)
            try:
                self._spawn(binary)
                self._wait_ready()
            except _EarlyExit as exc:
                last = exc
                self._reap()
                if "already in use" not in str(exc).lower():
                    break  # not the port race: retrying will not help
                if pinned_port is not None and not wait_for_port:
                    break  # the caller chose a port that is taken
                continue
            except BaseException:
                self.kill()
                if not wait_for_port:
                    self.cleanup()
                raise
            _LIVE.add(self)
            return self
        if not wait_for_port:
            self.cleanup()  # a first start that failed leaves nothing behind
        raise ServerError(f"{self.label} did not start: {last}")

    def _spawn(self, binary: str) -> None:
        assert self.data_dir is not None and self.log_path is not None
        self._log_file = open(self.log_path, "ab")  # closed in _reap
        self.process = subprocess.Popen(
            [binary, *self._argv(self.port)],
            cwd=self.data_dir,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C reaches pytest, which stops us in teardown
            preexec_fn=_parent_death_hook(),  # dies with us, even on SIGKILL
        )
        self._paused = False

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.start_timeout
        while True:
            with contextlib.suppress(OSError, ServerError):
                if self._probe():
                    return
            try:
                self.process.wait(timeout=0.02)
            except subprocess.TimeoutExpired:
                pass
            else:
                raise _EarlyExit(
                    f"{self.label} exited with code {self.process.returncode} on port "
                    f"{self.port}:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise ServerError(
                    f"{self.label} on port {self.port} not ready after {self.start_timeout}s:\n"
                    f"{self.log_tail()}"
                )

    def _reap(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                if self.process.poll() is None:
                    self.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=self.stop_timeout)
        self.process = None
        self._paused = False
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def stop(self, *, cleanup: bool = False) -> None:
        """Stop gracefully (SIGTERM, then SIGKILL past a deadline). Safe to call twice.

        ``cleanup`` also deletes the data directory when this manager created it.
        """
        proc = self.process
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                if self._paused:
                    proc.send_signal(signal.SIGCONT)
                proc.terminate()
            try:
                proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                pass
        self._reap()
        _LIVE.discard(self)
        if cleanup:
            self.cleanup()

    def cleanup(self) -> None:
        """Delete the data directory (when this manager created it)."""
        if self._own_dir and self.data_dir is not None and not self.running:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None

    def kill(self) -> None:
        """SIGKILL the server, like a crash (no shutdown work is done)."""
        self._reap()
        _LIVE.discard(self)

    def pause(self) -> None:
        """SIGSTOP the server: connections stay open but nothing answers."""
        if not self.running:
            raise ServerError(f"{self.label} is not running")
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """SIGCONT a paused server."""
        if not self.running:
            raise ServerError(f"{self.label} is not running")
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)
        self._paused = False

    @property
    def paused(self) -> bool:
        """True between :meth:`pause` and :meth:`resume`."""
        return self._paused and self.running

    def restart(self) -> _ServerProcess:
        """Stop (if running) and start again on the same port with the same data directory."""
        self.stop()
        return self._start(self.port or self._fixed_port, wait_for_port=True)

    def __enter__(self) -> _ServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop(cleanup=True)

    def __repr__(self) -> str:
        state = "paused" if self.paused else "running" if self.running else "stopped"
        return f"<{type(self).__name__} {self.host}:{self.port} {state}>"


class RedisServer(_ServerProcess):
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


class MemcachedServer(_ServerProcess):
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
        cli = _require_binary("redis-cli")
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
