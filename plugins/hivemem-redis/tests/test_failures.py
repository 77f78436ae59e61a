"""Failure behaviour against real, misbehaving servers: stopped, killed, restarted."""

from __future__ import annotations

import asyncio

import pytest
from hivemem.errors import BackendClosed, BackendUnavailable
from hivemem.testing.helpers import eventually

pytestmark = pytest.mark.usefixtures("hivemem_runner")


def _server_sockets(port: int) -> list[tuple[str, int]]:
    """``(state, rx_queue)`` of every local TCP socket on ``port``, from ``/proc/net/tcp*``.

    For an open connection ``rx_queue`` is the request bytes the server has not
    read yet; for the listening socket, the connections it has not accepted yet.
    """
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                found.append((fields[3], int(fields[4].split(":")[1], 16)))
    return found


def _rx_queued(port: int) -> bool:
    """True when a server-side connection on ``port`` holds unread request bytes."""
    return any(state == "01" and rx > 0 for state, rx in _server_sockets(port))


def _all_taken(port: int) -> bool:
    """True when the server on ``port`` has accepted every connection and read every byte."""
    return all(rx == 0 for _, rx in _server_sockets(port))


async def test_stopped_server_times_out_within_bound_then_recovers(
    redis_server_factory, make_backend, freeze
) -> None:
    server = redis_server_factory()
    timeout, retries = 0.4, 1
    backend = await make_backend(
        server.url, socket_timeout=timeout, retries=retries, retry_backoff=0.05
    )
    await backend.put("ns", "k", "a", b"before")
    # (retries + 1) attempts of `timeout` each: ten times that is a hang, not a slow call
    hang = 10 * (retries + 1) * timeout
    freeze(server)
    try:
        with pytest.raises(BackendUnavailable) as info:
            # a TimeoutError from wait_for (not BackendUnavailable) fails the test
            await asyncio.wait_for(backend.get("ns", "k", "a"), timeout=hang)
        assert f"127.0.0.1:{server.port}" in str(info.value)
        assert "no reply within" in str(info.value)
    finally:
        server.resume()

    async def read_back() -> bool:  # the same client recovers (a busy machine may need a retry)
        try:
            rec = await backend.get("ns", "k", "a")
        except BackendUnavailable:
            return False
        assert rec is not None and rec.value == b"before"
        return True

    await eventually(read_back, timeout=30, what="reads to recover")

    async def write() -> int | None:
        try:
            return await backend.put("ns", "k", "a", b"after")
        except BackendUnavailable:
            return None

    # a put is retried when an attempt times out, so it may have landed more than once
    assert await eventually(write, timeout=30, what="writes to recover") >= 2
    rec = await backend.get("ns", "k", "a")
    assert rec is not None and rec.value == b"after" and rec.version >= 2


async def test_down_server_is_unavailable_and_same_client_recovers(
    redis_server_factory, make_backend
) -> None:
    server = redis_server_factory(appendonly=True, appendfsync="always")
    # a killed server refuses at once: no timeout is involved, so a generous one
    backend = await make_backend(server.url, socket_timeout=10, retries=1, retry_backoff=0.01)
    await backend.put("ns", "k", "a", b"kept")
    server.kill()
    for call in (backend.get("ns", "k", "a"), backend.ping(), backend.incr("ns", "q", "s", "f")):
        with pytest.raises(BackendUnavailable, match=f"127.0.0.1:{server.port}"):
            await call
    server.restart()
    assert await backend.ping()
    assert (await backend.get("ns", "k", "a")).value == b"kept"
    assert await backend.incr("ns", "q", "s", "f") == 1.0


def _connections_received(server) -> int:
    """The server's ``total_connections_received`` (the connection asking counts too)."""
    info = server.command("INFO", "stats")
    return int(info.split(b"total_connections_received:")[1].split(b"\r\n")[0])


async def test_increment_is_never_retried(redis_server_factory, make_backend, freeze) -> None:
    server = redis_server_factory()
    backend = await make_backend(server.url, socket_timeout=0.3, retries=3, retry_backoff=0.01)
    await backend.incr("ns", "q", "s", "f", 0)  # registers the kind, warms the connection
    observer = await make_backend(server.url, prefix=backend.settings.prefix.decode())

    async def value() -> float:
        return (await observer.get_counters("ns", "q", ["s"]))["s"]["f"]

    assert await value() == 0.0  # (warms the observer's connection too)
    opened = _connections_received(server)
    freeze(server)
    try:
        with pytest.raises(BackendUnavailable, match="not retried"):
            await backend.incr("ns", "q", "s", "f", 1)
    finally:
        server.resume()
    # the one request the server received before it stopped runs once it resumes
    await eventually(value, timeout=30, what="the sent increment to run")
    # once the server has accepted every connection and read every byte sent to it,
    # any copy would have run too; a retry opens a new connection (whose copy may
    # stall in the handshake): none was opened but the one asking
    await eventually(lambda: _all_taken(server.port), timeout=30, what="all requests read")
    assert await value() == 1.0
    assert _connections_received(server) - opened == 1


async def test_idempotent_reads_are_retried(redis_server_factory, make_backend, freeze) -> None:
    server = redis_server_factory()
    backend = await make_backend(server.url, socket_timeout=0.2, retries=2, retry_backoff=0.01)
    await backend.put("ns", "k", "a", b"v")
    before = _connections_received(server)
    freeze(server)
    try:
        with pytest.raises(BackendUnavailable):
            await backend.get("ns", "k", "a")
    finally:
        server.resume()
    # two retries after the first attempt opened two fresh connections (+1: the asking one)
    await eventually(lambda: _all_taken(server.port), timeout=30, what="all connections taken")
    assert _connections_received(server) - before == 3


async def test_cancelled_read_never_leaks_its_reply(
    redis_server_factory, make_backend, freeze
) -> None:
    server = redis_server_factory()
    backend = await make_backend(server.url, max_connections=1, socket_timeout=10)
    await backend.put("ns", "k", "a", b"A" * 1000)
    await backend.put("ns", "k", "b", b"B")
    freeze(server)
    try:
        task = asyncio.ensure_future(backend.get("ns", "k", "a"))
        # wait until the request bytes sit in the stopped server's socket: the reply
        # to it is now in flight for the pooled connection
        await eventually(lambda: _rx_queued(server.port), timeout=30, what="request sent")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        server.resume()
    # the only pooled connection must have been discarded: "b" reads "B", never "A..."
    assert (await backend.get("ns", "k", "b")).value == b"B"
    assert (await backend.get("ns", "k", "a")).value == b"A" * 1000


async def test_cancelled_write_is_all_or_nothing(
    redis_server_factory, make_backend, freeze
) -> None:
    server = redis_server_factory()
    backend = await make_backend(server.url, socket_timeout=10)
    await backend.put_many("ns", "k", {"x": b"0", "y": b"0"})
    freeze(server)
    try:
        task = asyncio.ensure_future(backend.put_many("ns", "k", {"x": b"1", "y": b"1"}))
        await eventually(lambda: _rx_queued(server.port), timeout=30, what="request sent")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        server.resume()
    recs = await backend.get_many("ns", "k", ["x", "y"])
    assert recs["x"].value == recs["y"].value
    assert recs["x"].version == recs["y"].version


async def test_call_in_flight_when_closed_is_backend_closed(
    redis_server_factory, make_backend, freeze
) -> None:
    server = redis_server_factory()
    backend = await make_backend(server.url, socket_timeout=10, retries=2, retry_backoff=0.01)
    await backend.put("ns", "k", "a", b"v")
    freeze(server)
    try:
        task = asyncio.ensure_future(backend.get("ns", "k", "a"))
        await eventually(lambda: _rx_queued(server.port), timeout=30, what="request sent")
        await backend.close()
        # closing drops the connection under the call; its retry finds no client and
        # stops there: BackendClosed itself, neither retried nor wrapped
        with pytest.raises(BackendClosed, match=r"^redis backend is closed$"):
            await task
    finally:
        server.resume()
