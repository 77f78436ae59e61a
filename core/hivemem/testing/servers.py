"""A generic launcher for real servers in tests (plugins bring the servers themselves).

A :class:`ServerProcess` starts a server binary as a child process listening
on ``127.0.0.1`` only, on a free port, with its files in a private
temporary directory. Readiness is a bounded poll: the manager connects and
speaks the server's own protocol until the server answers *and* reports the
process id of the child it started, so a test never talks to a stranger
that happened to grab the port. Nothing here sleeps to synchronise. The
child dies with the test run, even when the run is killed.

A free port is picked by binding ``127.0.0.1:0``; the small race between
releasing it and the server binding it is handled by retrying the start on a
new port a bounded number of times.

When a binary is missing, :class:`ServerBinaryMissing` says which Debian
package provides it; :func:`hivemem.testing.plugin.start_server` turns that
into a skip (or a failure when ``CI`` is set).

Each plugin owns the managers and pytest fixtures of its own server, built
on this module: ``hivemem_redis.testing`` (``RedisServer``,
``RedisCluster``, the ``redis_server``/``redis_cluster`` fixtures) and
``hivemem_memcached.testing`` (``MemcachedServer``, ``memcached_server``).
Their old names here still work, with a :class:`DeprecationWarning` naming
the new import.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import importlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = [
    "HOST",
    "MOVED",
    "ServerBinaryMissing",
    "ServerError",
    "ServerProcess",
    "find_binary",
    "free_port",
    "moved",
    "recv_until",
    "require_binary",
]

HOST = "127.0.0.1"

_EXTRA_DIRS = ("/usr/sbin", "/usr/local/sbin", "/usr/local/bin", "/usr/bin", "/sbin", "/bin")
_START_ATTEMPTS = 5
_POLL_INTERVAL = 0.02


class ServerError(RuntimeError):
    """A test server could not be started, reached or stopped."""


class ServerBinaryMissing(ServerError):
    """The server binary is not installed; the message names the apt package."""

    def __init__(self, binary: str, package: str | None = None) -> None:
        self.binary = binary
        self.package = package or binary
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


def require_binary(name: str, package: str | None = None) -> str:
    """:func:`find_binary`, or :class:`ServerBinaryMissing` naming ``package``."""
    path = find_binary(name)
    if path is None:
        raise ServerBinaryMissing(name, package)
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


def recv_until(sock: socket.socket, buf: bytearray, done: Callable[[bytearray], bool]) -> None:
    """Read from ``sock`` into ``buf`` until ``done(buf)``; ConnectionError when it closes."""
    while not done(buf):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        buf.extend(chunk)


# -- process management ---------------------------------------------------------------

#: running servers (strong references, so a forgotten server is still killed at exit)
_LIVE: set[ServerProcess] = set()


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


class ServerProcess:
    """Common lifecycle of one server child process; a server module subclasses it.

    A subclass names its ``binary`` (and the Debian ``package`` providing it,
    when the names differ), builds the command line in :meth:`_argv` and
    says in :meth:`_probe` whether the server on ``self.port`` answers and is
    this manager's child (``self.pid``). Start and stop are bounded polls.
    """

    binary: str = ""
    #: the Debian package providing ``binary`` (None: the package has the binary's name)
    package: str | None = None
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

    def start(self) -> ServerProcess:
        """Start the server and wait (bounded) until it answers; return self."""
        return self._start(self._fixed_port, wait_for_port=False)

    def _start(self, pinned_port: int | None, *, wait_for_port: bool) -> ServerProcess:
        if self.running:
            return self
        binary = require_binary(self.binary, self.package)
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

    def restart(self) -> ServerProcess:
        """Stop (if running) and start again on the same port with the same data directory."""
        self.stop()
        return self._start(self.port or self._fixed_port, wait_for_port=True)

    def __enter__(self) -> ServerProcess:
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


# -- names that moved to the plugins that own their servers ---------------------------

#: old name here -> (the module it moved to, the distribution that ships it)
MOVED: dict[str, tuple[str, str]] = {
    "RedisServer": ("hivemem_redis.testing", "hivemem-redis"),
    "RedisCluster": ("hivemem_redis.testing", "hivemem-redis"),
    "redis_command": ("hivemem_redis.testing", "hivemem-redis"),
    "MemcachedServer": ("hivemem_memcached.testing", "hivemem-memcached"),
    "memcached_command": ("hivemem_memcached.testing", "hivemem-memcached"),
}


def moved(name: str, old_module: str) -> Any:
    """The object ``name`` from its new home, with a DeprecationWarning naming the import.

    Raises ImportError naming the distribution to install when that plugin is
    not installed.
    """
    module, distribution = MOVED[name]
    warnings.warn(
        f"{old_module}.{name} moved to the {distribution} plugin: "
        f"use 'from {module} import {name}'",
        DeprecationWarning,
        stacklevel=3,
    )
    try:
        home = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is None or not (exc.name == module or module.startswith(exc.name + ".")):
            raise
        raise ImportError(
            f"{name} now comes from {module}, in the {distribution} plugin, which is not "
            f"installed: pip install {distribution}",
            name=module,
        ) from None
    return getattr(home, name)


def __getattr__(name: str) -> Any:
    if name in MOVED:
        return moved(name, __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
