"""Several OS processes against one real server: exact atomic updates, invalidation."""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest


def unique_prefix() -> str:
    """A fresh key prefix for one test."""
    return f"t{uuid.uuid4().hex[:10]}:"


WORKER = str(Path(__file__).with_name("_worker.py"))
PROCS = 4

pytestmark = pytest.mark.usefixtures("hivemem_runner")


def _spawn(*args: str, stdin: int | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, WORKER, *args],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(procs: list[subprocess.Popen[str]]) -> list[str]:
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        outs.append(out)
    return outs


async def test_concurrent_incr_from_processes_is_exact(any_url, make_backend) -> None:
    prefix = unique_prefix()
    n = 200
    procs = [_spawn("incr", any_url, prefix, str(n), "0.5") for _ in range(PROCS)]
    await asyncio.get_running_loop().run_in_executor(None, _finish, procs)
    backend = await make_backend(any_url, prefix=prefix)
    assert await backend.get_counters("ns", "q", ["state"]) == {"state": {"value": PROCS * n * 0.5}}


async def test_compare_and_set_from_processes_loses_no_update(any_url, make_backend) -> None:
    prefix = unique_prefix()
    n = 40
    procs = [_spawn("cas", any_url, prefix, str(n)) for _ in range(PROCS)]
    await asyncio.get_running_loop().run_in_executor(None, _finish, procs)
    backend = await make_backend(any_url, prefix=prefix)
    rec = await backend.get("ns", "policy", "p")
    assert json.loads(rec.value) == PROCS * n
    assert rec.version == PROCS * n


class _Listener:
    """A child process subscribed to one namespace; reads its callback lines."""

    def __init__(self, url: str, prefix: str, ns: str) -> None:
        self.proc = _spawn("listen", url, prefix, ns, stdin=subprocess.PIPE)
        self.lines: asyncio.Queue[str] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        self._reader = loop.run_in_executor(None, self._pump, loop)

    def _pump(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            loop.call_soon_threadsafe(self.lines.put_nowait, line.strip())

    async def next(self, timeout: float = 10.0) -> str:
        return await asyncio.wait_for(self.lines.get(), timeout)

    async def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        await asyncio.get_running_loop().run_in_executor(None, self.proc.wait, 30)
        await self._reader
        assert self.proc.returncode == 0, self.proc.stderr.read() if self.proc.stderr else ""


async def test_write_in_one_process_invalidates_another(any_url, make_backend) -> None:
    prefix = unique_prefix()
    listener = _Listener(any_url, prefix, "shared")
    try:
        assert await listener.next(30) == "ready"
        writer = await make_backend(any_url, prefix=prefix)
        own: list[tuple[str, str | None]] = []
        unsubscribe = await writer.subscribe("shared", lambda k, i: own.append((k, i)))
        delays = []
        for i in range(20):
            t0 = time.time()
            await writer.put("shared", "user", f"u{i}", b"{}")
            kind, id, seen = json.loads(await listener.next())
            assert (kind, id) == ("user", f"u{i}")
            delays.append(seen - t0)
        await writer.delete("shared", "user", "u0")
        assert json.loads(await listener.next())[:2] == ["user", "u0"]
        await writer.put_many("shared", "tool", {"a": b"1", "b": b"2"})
        got = {tuple(json.loads(await listener.next())[:2]) for _ in range(2)}
        assert got == {("tool", "a"), ("tool", "b")}
        await writer.delete_many("shared", "tool", ["a", "b", "missing"])
        got = {tuple(json.loads(await listener.next())[:2]) for _ in range(2)}
        assert got == {("tool", "a"), ("tool", "b")}
        await writer.put("other-namespace", "user", "x", b"")
        await writer.drop_namespace("shared")
        # the write to another namespace produced nothing; the drop says "everything"
        assert json.loads(await listener.next())[:2] == ["", None]
        assert own == []  # a client never hears its own writes
        await unsubscribe()
        print(
            f"\ninvalidation delay over {len(delays)} writes: "
            f"median {statistics.median(delays) * 1000:.2f} ms, max {max(delays) * 1000:.2f} ms"
        )
    finally:
        await listener.close()
