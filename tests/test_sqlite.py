"""The embedded SQLite backend: crash safety, several processes, index use, threads."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import hivemem
import pytest
from hivemem.builtin import sqlite_records
from hivemem.builtin.sqlite_backend import SQLiteBackend, path_from_url

WRITER = textwrap.dedent(
    """
    import asyncio, sys
    import hivemem

    async def main(url):
        async with hivemem.open_memory(url, namespace="crash", cache=[]) as mem:
            i = 0
            while True:
                await mem.put_many("rec", {f"b{i}-{j}": {"i": i, "j": j} for j in range(5)})
                await mem.put("rec", f"id{i:06d}", {"i": i, "pad": "x" * (i % 500)})
                await mem.append("log", i)
                await mem.incr("ctr", "c", "n")
                print(i, flush=True)
                i += 1

    asyncio.run(main(sys.argv[1]))
    """
)


def test_kill_9_mid_write_keeps_every_acknowledged_write(tmp_path):
    url = f"sqlite:///{tmp_path}/crash.db"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, url], stdout=subprocess.PIPE, text=True)
    acked = -1
    deadline = time.monotonic() + 60
    try:
        assert proc.stdout is not None
        while acked < 150:
            line = proc.stdout.readline()
            assert line, "writer died early"
            acked = int(line)
            assert time.monotonic() < deadline
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    db = path_from_url(url)[0]
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    async def check():
        async with hivemem.open_memory(url, namespace="crash", cache=[]) as mem:
            got = await mem.get_many("rec", [f"id{i:06d}" for i in range(acked + 1)])
            assert len(got) == acked + 1
            assert all(got[f"id{i:06d}"]["i"] == i for i in range(acked + 1))
            batch = await mem.get_many("rec", [f"b{acked}-{j}" for j in range(5)])
            assert len(batch) == 5
            log = [v for _, v in await mem.read_series("log")]
            assert log[: acked + 1] == list(range(acked + 1))
            n = (await mem.counters("ctr", ["c"]))["c"]["n"]
            assert acked + 1 <= n <= acked + 2

    asyncio.run(check())


INCREMENTER = textwrap.dedent(
    """
    import asyncio, sys
    import hivemem

    async def main(url, n):
        async with hivemem.open_memory(url, namespace="mp", cache=[]) as mem:
            for _ in range(n):
                await mem.incr("q", "state", "a", 0.5)
                await mem.update("cas", "x", lambda v: (v or 0) + 1, retries=1000)

    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    """
)


def test_several_processes_update_one_file_exactly(tmp_path):
    url = f"sqlite:///{tmp_path}/mp.db"
    procs = [subprocess.Popen([sys.executable, "-c", INCREMENTER, url, "60"]) for _ in range(4)]
    for p in procs:
        assert p.wait(120) == 0

    async def check():
        async with hivemem.open_memory(url, namespace="mp", cache=[]) as mem:
            assert (await mem.counters("q", ["state"]))["state"]["a"] == 4 * 60 * 0.5
            assert await mem.get("cas", "x") == 4 * 60

    asyncio.run(check())


def _plan(db: str, sql: str, args: tuple) -> str:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("EXPLAIN QUERY PLAN " + sql, args).fetchall()
    return " | ".join(r[-1] for r in rows)


def test_prefix_listing_and_series_reads_use_indexes(tmp_path):
    url = f"sqlite:///{tmp_path}/plan.db"
    backend = SQLiteBackend(url)

    async def setup():
        await backend.open()
        await backend.put("ns", "k", "a1", b"x")
        await backend.close()

    asyncio.run(setup())
    sql, args = sqlite_records.range_query("id, value", "ns", "k", "a", 10, "a0", False)
    plan = _plan(str(backend.path), sql, tuple(args))
    assert "USING INDEX hm_records_key" in plan and "SCAN" not in plan, plan
    # the ids-only scan (values=False), descending, is an index range too
    sql, args = sqlite_records.range_query("id", "ns", "k", "a", 10, None, True)
    plan = _plan(str(backend.path), sql, tuple(args))
    assert "USING INDEX hm_records_key" in plan and "SCAN" not in plan, plan
    plan = _plan(
        str(backend.path),
        "SELECT ts, seq, value FROM hm_series WHERE ns=? AND name=? AND ts>=? AND ts<? "
        "ORDER BY ts DESC, seq DESC LIMIT 10",
        (b"ns", b"s", 0.0, 1.0),
    )
    assert "USING INDEX hm_series_key" in plan and "SCAN" not in plan, plan


def test_sqlite_work_runs_off_the_event_loop_thread(tmp_path):
    seen: set[int] = set()

    async def main():
        backend = SQLiteBackend(f"sqlite:///{tmp_path}/t.db")
        await backend.open()
        conn_trace = []

        def trace(_stmt: str) -> None:
            seen.add(threading.get_ident())
            conn_trace.append(_stmt)

        # install the trace on both worker connections, inside their threads
        await backend._writer.run(lambda c: c.set_trace_callback(trace))
        await backend._reader.run(lambda c: c.set_trace_callback(trace))
        await backend.put("n", "k", "i", b"v")
        await backend.get("n", "k", "i")
        await backend.close()
        return threading.get_ident(), conn_trace

    loop_thread, statements = asyncio.run(main())
    assert statements and seen and loop_thread not in seen


def test_reopen_finds_data_and_urls_resolve(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert str(path_from_url("sqlite:///rel.db")[0]) == "rel.db"
    assert SQLiteBackend("sqlite:///rel.db").path == tmp_path / "rel.db"
    assert str(path_from_url("sqlite:////abs/x.db")[0]) == "/abs/x.db"
    assert str(path_from_url("sqlite:///~/x.db")[0]) == os.path.expanduser("~/x.db")

    async def main():
        async with hivemem.open_memory("sqlite:///rel.db") as mem:
            await mem.put("k", "a", [1, 2])
        async with hivemem.open_memory("sqlite:///rel.db") as mem:
            assert await mem.get("k", "a") == [1, 2]

    asyncio.run(main())
    assert (tmp_path / "rel.db").exists()


def test_locked_database_is_backend_unavailable(tmp_path):
    url = f"sqlite:///{tmp_path}/lock.db?busy_timeout=100"

    async def main():
        async with hivemem.open_memory(url, cache=[]) as mem:
            await mem.put("k", "a", 1)
            holder = sqlite3.connect(str(tmp_path / "lock.db"), isolation_level=None)
            holder.execute("BEGIN EXCLUSIVE")
            try:
                with pytest.raises(hivemem.BackendUnavailable, match=r"lock\.db"):
                    await mem.put("k", "a", 2)
            finally:
                holder.execute("ROLLBACK")
                holder.close()
            assert await mem.get("k", "a") == 1
            await mem.put("k", "a", 3)
            assert await mem.get("k", "a") == 3

    asyncio.run(main())


def test_value_over_sqlite_length_limit_is_value_too_large(tmp_path):
    async def main():
        backend = SQLiteBackend(f"sqlite:///{tmp_path}/big.db")
        await backend.open()
        try:
            # lower SQLITE_LIMIT_LENGTH on the writer's connection instead of writing 1 GB
            await backend._writer.run(lambda c: c.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 1000))
            with pytest.raises(hivemem.ValueTooLarge) as info:
                await backend.put("n", "k", "big", b"x" * 2000)
            assert await backend.get("n", "k", "big") is None
            await backend.put("n", "k", "small", b"x" * 10)
        finally:
            await backend.close()
        return info.value

    error = asyncio.run(main())
    assert str(error) == "a value exceeds the limit; sqlite limit is 1000000000 bytes"
    assert (error.key, error.size, error.limit) == (None, -1, 1_000_000_000)


def test_ids_only_scan_reads_no_values(tmp_path):
    statements: list[str] = []

    async def main():
        backend = SQLiteBackend(f"sqlite:///{tmp_path}/scan.db")
        await backend.open()
        try:
            await backend.put_many("n", "k", {"a1": b"v1", "a2": b"v2", "b1": b"v3"})
            await backend._reader.run(lambda c: c.set_trace_callback(statements.append))
            ids = await backend.scan("n", "k", "a", values=False)
            rows = await backend.scan("n", "k", "a", reverse=True, limit=1)
            listed = await backend.list_ids("n", "k", cursor="a1")
        finally:
            await backend.close()
        return ids, rows, listed

    ids, rows, listed = asyncio.run(main())
    assert ids == [("a1", None), ("a2", None)]
    assert [(i, r.value, r.version) for i, r in rows] == [("a2", b"v2", 1)]
    assert listed == ["a2", "b1"]
    assert statements[0].startswith("SELECT id FROM"), statements
    assert statements[1].startswith("SELECT id, value, version, expires_at FROM"), statements


def test_options_are_coerced_and_checked():
    backend = SQLiteBackend("sqlite:///x.db?busy_timeout=250&synchronous=NORMAL", purge_interval=5)
    assert (backend.busy_timeout, backend.synchronous, backend.purge_interval) == (250, "normal", 5)
    for url, needle in [
        ("sqlite:///x.db?synchronous=sometimes", "sqlite option synchronous='sometimes': use "),
        ("sqlite:///x.db?secure_delete=maybe", "sqlite option secure_delete='maybe': use "),
        ("sqlite:///x.db?busy_timeout=soon", "sqlite option busy_timeout='soon': expected an"),
        ("sqlite:///x.db?purge_interval=-1", "sqlite option purge_interval='-1': must be >= 0"),
        ("sqlite:///x.db?bogus=1", "unknown sqlite option(s): bogus"),
    ]:
        with pytest.raises(hivemem.ConfigError) as info:
            SQLiteBackend(url)
        assert needle in str(info.value), (url, str(info.value))


def test_calls_outside_open_raise_backend_closed(tmp_path):
    async def main():
        backend = SQLiteBackend(f"sqlite:///{tmp_path}/life.db")
        with pytest.raises(hivemem.BackendUnavailable, match="sqlite backend is not open"):
            await backend.get("n", "k", "a")
        assert not (tmp_path / "life.db").exists()  # no lazy open
        await backend.open()
        await backend.put("n", "k", "a", b"v")
        await backend.close()
        with pytest.raises(hivemem.BackendUnavailable, match="sqlite backend is closed"):
            await backend.put("n", "k", "a", b"v")

    asyncio.run(main())
