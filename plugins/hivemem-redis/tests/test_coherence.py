"""Cross-process coherence of ``Memory`` local caches over one real Redis server.

Process B (a child) reads one key in a loop through a ``Memory`` with an
in-process cache (default ``cache_ttl`` of 300 s, so without invalidation it
would serve a stale value for minutes). Process A (this test) writes the key
through its own ``Memory`` with a local cache. The contract checked here and
documented in docs/backends/redis.md:

* with the invalidation subscription up, B serves a value older than one
  acknowledged to A for at most ``STALE_BOUND`` (1 s) -- measured: around a
  millisecond;
* when B's subscription connection is killed, messages published meanwhile
  are lost; B drops its whole local cache once it has resubscribed, so it
  serves the old value for at most about the reconnect backoff, never for
  ``cache_ttl``. The test stops B (SIGSTOP) before the kill, so the write
  whose message B misses is published while B cannot possibly be subscribed,
  however slow the machine.
"""

from __future__ import annotations

import asyncio
import json
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import hivemem
import pytest
from hivemem.testing.helpers import eventually
from hivemem_redis.keys import KeyLayout

pytestmark = pytest.mark.usefixtures("hivemem_runner")

WORKER = str(Path(__file__).with_name("_worker.py"))
#: the documented bound: a write acknowledged to A is served by B no later than this
STALE_BOUND = 1.0
#: reconnect backoff of both processes in the killed-subscription test (seconds)
BACKOFF = 1.0


class _Reader:
    """Process B: ``_worker.py read``; collects its ``(value, monotonic time)`` reports."""

    def __init__(self, url: str, prefix: str, ns: str, backoff: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, WORKER, "read", url, prefix, ns, str(backoff)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: asyncio.Queue[str] = asyncio.Queue()
        self.seen: list[tuple[Any, float]] = []
        self.stats: dict[str, int] = {}
        loop = asyncio.get_running_loop()
        self._pump_done = loop.run_in_executor(None, self._pump, loop)

    def _pump(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            loop.call_soon_threadsafe(self.lines.put_nowait, line.strip())

    async def ready(self) -> None:
        assert await asyncio.wait_for(self.lines.get(), 30) == "ready"

    async def until(self, value: Any, timeout: float = 10.0) -> float:
        """Wait for B to report ``value``; return the monotonic time B first read it."""
        deadline = time.monotonic() + timeout
        while True:
            line = await asyncio.wait_for(self.lines.get(), max(0.01, deadline - time.monotonic()))
            report = json.loads(line)
            if "stats" in report:
                self.stats = report["stats"]
                raise AssertionError(f"reader stopped before reporting {value!r}")
            self.seen.append((report["v"], report["t"]))
            if report["v"] == value:
                return float(report["t"])

    async def finish(self) -> None:
        """Wait for B's final statistics (after it read ``"stop"``) and its exit."""
        while not self.stats:
            report = json.loads(await asyncio.wait_for(self.lines.get(), 30))
            if "stats" in report:
                self.stats = report["stats"]
            else:
                self.seen.append((report["v"], report["t"]))
        await asyncio.get_running_loop().run_in_executor(None, self.proc.wait, 30)
        await self._pump_done
        assert self.proc.returncode == 0, self.proc.stderr.read() if self.proc.stderr else ""

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def _memory(url: str, prefix: str, ns: str, backoff: float = 0.05) -> hivemem.Memory:
    options = {"prefix": prefix, "retry_backoff": backoff, "retry_backoff_cap": backoff}
    return hivemem.open_memory(url, namespace=ns, cache=["local://"], backend_options=options)


def _stale_windows(acked: list[tuple[int, float]], seen: list[tuple[Any, float]]) -> list[float]:
    """For each acknowledged write ``i``: how long B kept serving values older than ``i``.

    B reports every change of what it reads; it reads continuously, so after
    it first reported a value ``>= i`` it never served anything older (also
    asserted). The window is that report's time minus ``i``'s acknowledgement.
    """
    numbers = [(v, t) for v, t in seen if isinstance(v, int)]
    values = [v for v, _ in numbers]
    assert values == sorted(values), f"B went back to an older value: {values}"
    windows = []
    for i, t_ack in acked:
        first = next(t for v, t in numbers if v >= i)
        windows.append(max(0.0, first - t_ack))
    return windows


def _quantile(data: list[float], q: float) -> float:
    ordered = sorted(data)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def test_a_write_in_one_process_is_never_served_stale_by_another(
    redis_server_factory,
) -> None:
    server = redis_server_factory()
    prefix, ns = f"t{uuid.uuid4().hex[:10]}:", "shared"
    reader = _Reader(server.url, prefix, ns, 0.05)
    try:
        async with _memory(server.url, prefix, ns) as mem:
            await mem.put("doc", "K", 0)
            await reader.ready()
            await reader.until(0)
            acked: list[tuple[int, float]] = []
            # lock step: each write waits until B has seen it, so every write is measured
            for i in range(1, 201):
                await mem.put("doc", "K", i)
                acked.append((i, time.monotonic()))
                await reader.until(i)
            lockstep = _stale_windows(acked, reader.seen)
            # a burst: 300 writes back to back; B may skip values, never serve old ones late
            burst_start = len(acked)
            for i in range(201, 501):
                await mem.put("doc", "K", i)
                acked.append((i, time.monotonic()))
            await reader.until(500)
            await mem.put("doc", "K", "stop")
            await reader.finish()
        windows = _stale_windows(acked, reader.seen)
    finally:
        reader.kill()
    burst = windows[burst_start:]
    assert max(windows) < STALE_BOUND, f"stale for {max(windows):.3f}s"
    # B really served from its local cache between writes (else the test proves nothing)
    assert reader.stats["hits"] > 2 * len(acked), reader.stats
    assert reader.stats["reconnects"] == 0
    print(
        f"\nstale window after an acknowledged write (lock step, {len(lockstep)} writes): "
        f"p50 {statistics.median(lockstep) * 1e3:.2f} ms, p99 {_quantile(lockstep, 0.99) * 1e3:.2f}"
        f" ms, max {max(lockstep) * 1e3:.2f} ms; burst of {len(burst)}: p50 "
        f"{statistics.median(burst) * 1e3:.2f} ms, max {max(burst) * 1e3:.2f} ms; "
        f"B's local hits {reader.stats['hits']}, misses {reader.stats['misses']}"
    )


async def _write_in_step(mem: Any, reader: _Reader, values: tuple[int, ...], **wait: Any) -> None:
    """A writes each value in turn and waits until B has served it."""
    for value in values:
        await mem.put("doc", "K", value)
        await reader.until(value, **wait)


async def test_killed_subscription_drops_the_local_cache_on_reconnect(
    redis_server_factory, freeze
) -> None:
    server = redis_server_factory()
    prefix, ns = f"t{uuid.uuid4().hex[:10]}:", "shared"
    channel = KeyLayout(prefix.encode()).namespace(ns).channel

    def subscribers() -> int:
        return int(server.command("PUBSUB", "NUMSUB", channel)[1])

    reader = _Reader(server.url, prefix, ns, BACKOFF)
    try:
        async with _memory(server.url, prefix, ns, BACKOFF) as mem:
            await mem.put("doc", "K", 0)
            await reader.ready()
            await reader.until(0)
            await _write_in_step(mem, reader, (1, 2))
            assert subscribers() == 2
            # B is stopped, then both processes lose their pub/sub connection: B cannot
            # resubscribe before the next write, however long anything takes
            freeze(reader.proc)
            assert server.command("CLIENT", "KILL", "TYPE", "pubsub") == 2
            # A resubscribes on its own (B cannot: it is stopped)
            await eventually(
                lambda: mem.backend.invalidation_stats["reconnects"] == 1 and subscribers() == 1,
                timeout=60, what="A to resubscribe",
            )
            await mem.put("doc", "K", 3)
            # the write published to A alone: B's copy of the message is lost for good
            assert subscribers() == 1
            reader.proc.send_signal(signal.SIGCONT)
            t_resumed = time.monotonic()
            # B serves 2 from its cache until it has resubscribed and dropped everything;
            # without the drop it would serve 2 for cache_ttl (300 s)
            t_seen = await reader.until(3, timeout=60)
            window = t_seen - t_resumed
            # and coherence by message is back afterwards
            await _write_in_step(mem, reader, (4, 5, 6), timeout=60)
            await mem.put("doc", "K", "stop")
            await reader.finish()
    finally:
        reader.kill()
    assert [v for v, _ in reader.seen] == [0, 1, 2, 3, 4, 5, 6, "stop"]
    # B learnt of 4, 5 and 6 by message: it reconnected only once
    assert reader.stats["reconnects"] == 1, reader.stats
    print(f"\nafter CLIENT KILL TYPE pubsub: B served the old value for {window * 1e3:.0f} ms "
          f"after it was resumed (reconnect backoff {BACKOFF * 500:.0f}-{BACKOFF * 1000:.0f} ms)")
