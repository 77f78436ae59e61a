"""Failure behaviour against real, misbehaving servers: stopped, killed, restarted."""

from __future__ import annotations

import asyncio
import time

import pytest
from hivemem.errors import BackendUnavailable
from hivemem.testing.helpers import eventually

pytestmark = pytest.mark.usefixtures("hivemem_runner")


def _rx_queued(port: int) -> bool:
    """True when a server-side socket on ``port`` holds unread request bytes."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            state = fields[3]
            rx = int(fields[4].split(":")[1], 16)
            if local_port == port and state == "01" and rx > 0:
                return True
    return False


async def test_stopped_server_times_out_within_bound_then_recovers(
    redis_server_factory, make_backend
) -> None:
    server = redis_server_factory()
    timeout, retries = 0.4, 1
    b = await make_backend(server.url, socket_timeout=timeout, retries=retries, retry_backoff=0.05)
    await b.put("ns", "k", "a", b"before")
    bound = (retries + 1) * timeout + 0.05 * 2 + 1.0  # attempts, backoff, scheduling slack
    server.pause()
    try:
        t0 = time.monotonic()
        with pytest.raises(BackendUnavailable) as info:
            await asyncio.wait_for(b.get("ns", "k", "a"), timeout=30)
        elapsed = time.monotonic() - t0
        assert elapsed < bound, f"took {elapsed:.2f}s, bound {bound:.2f}s"
        assert f"127.0.0.1:{server.port}" in str(info.value)
        assert "no reply within" in str(info.value)
    finally:
        server.resume()
    assert (await b.get("ns", "k", "a")).value == b"before"
    assert await b.put("ns", "k", "a", b"after") == 2


async def test_down_server_is_unavailable_and_same_client_recovers(
    redis_server_factory, make_backend
) -> None:
    server = redis_server_factory(appendonly=True, appendfsync="always")
    b = await make_backend(server.url, socket_timeout=1, retries=1, retry_backoff=0.01)
    await b.put("ns", "k", "a", b"kept")
    server.kill()
    for call in (b.get("ns", "k", "a"), b.ping(), b.incr("ns", "q", "s", "f")):
        with pytest.raises(BackendUnavailable, match=f"127.0.0.1:{server.port}"):
            await call
    server.restart()
    assert await b.ping()
    assert (await b.get("ns", "k", "a")).value == b"kept"
    assert await b.incr("ns", "q", "s", "f") == 1.0


async def test_increment_is_never_retried(redis_server_factory, make_backend) -> None:
    server = redis_server_factory()
    b = await make_backend(server.url, socket_timeout=0.3, retries=3, retry_backoff=0.01)
    await b.incr("ns", "q", "s", "f", 0)  # registers the kind, warms the connection
    server.pause()
    try:
        with pytest.raises(BackendUnavailable, match="not retried"):
            await b.incr("ns", "q", "s", "f", 1)
    finally:
        server.resume()
    observer = await make_backend(server.url, prefix=b.settings.prefix.decode())

    async def value() -> float:
        return (await observer.get_counters("ns", "q", ["s"]))["s"]["f"]

    # the one request the server received before it stopped runs once it resumes
    await eventually(value, timeout=5, what="the sent increment to run")
    for _ in range(20):  # any retried copies queued in the kernel would land now too
        assert await value() == 1.0


async def test_idempotent_reads_are_retried(redis_server_factory, make_backend) -> None:
    server = redis_server_factory()
    b = await make_backend(server.url, socket_timeout=0.2, retries=2, retry_backoff=0.01)
    await b.put("ns", "k", "a", b"v")
    before = int(
        server.command("INFO", "stats").split(b"total_connections_received:")[1].split(b"\r\n")[0]
    )
    server.pause()
    try:
        with pytest.raises(BackendUnavailable):
            await b.get("ns", "k", "a")
    finally:
        server.resume()

    def connections() -> int:
        info = server.command("INFO", "stats")
        return int(info.split(b"total_connections_received:")[1].split(b"\r\n")[0])

    # two retries after the first attempt: two fresh connections were opened
    assert await eventually(lambda: connections() - before >= 3, timeout=5, what="retries")


async def test_cancelled_read_never_leaks_its_reply(redis_server_factory, make_backend) -> None:
    server = redis_server_factory()
    b = await make_backend(server.url, max_connections=1, socket_timeout=10)
    await b.put("ns", "k", "a", b"A" * 1000)
    await b.put("ns", "k", "b", b"B")
    server.pause()
    try:
        task = asyncio.ensure_future(b.get("ns", "k", "a"))
        # wait until the request bytes sit in the stopped server's socket: the reply
        # to it is now in flight for the pooled connection
        await eventually(lambda: _rx_queued(server.port), timeout=5, what="request sent")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        server.resume()
    # the only pooled connection must have been discarded: "b" reads "B", never "A..."
    assert (await b.get("ns", "k", "b")).value == b"B"
    assert (await b.get("ns", "k", "a")).value == b"A" * 1000


async def test_cancelled_write_is_all_or_nothing(redis_server_factory, make_backend) -> None:
    server = redis_server_factory()
    b = await make_backend(server.url, socket_timeout=10)
    await b.put_many("ns", "k", {"x": b"0", "y": b"0"})
    server.pause()
    try:
        task = asyncio.ensure_future(b.put_many("ns", "k", {"x": b"1", "y": b"1"}))
        await eventually(lambda: _rx_queued(server.port), timeout=5, what="request sent")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        server.resume()
    recs = await b.get_many("ns", "k", ["x", "y"])
    assert recs["x"].value == recs["y"].value
    assert recs["x"].version == recs["y"].version
