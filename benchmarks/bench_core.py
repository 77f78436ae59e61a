"""hivemem core benchmarks: ``memory://`` and ``sqlite://`` next to raw ``sqlite3``.

Sections (select one with ``--only core.NAME``):

``latency``
    save / load / prefix-list (``limit=10``) ops/s and p50/p95/p99 latency for
    a ~1 KB entity dict and a ~20 KB conversation history, on hivemem
    ``memory://`` (local cache off and on), hivemem ``sqlite://`` with
    ``synchronous=full`` (the default) and ``normal`` (local cache off; loads
    also with it on), raw ``sqlite3`` doing the same work on the same table
    shape (executed on the event-loop thread and through
    ``asyncio.to_thread``), and a raw ``dict`` + ``json`` store as the
    in-process reference for ``memory://``. Ratios are hivemem / raw (p50).
``batch``
    ``put_many``/``get_many`` of 100 records against 100 sequential
    ``put``/``get`` calls.
``pipeline``
    encode/decode cost of the value pipeline (json, +zlib, +zstd, +fernet)
    as ratios to bare ``json.dumps(...).encode()`` / ``json.loads``.
``scaling``
    prefix listing, newest-N listing, latest-N series reads and ~10-entry
    time-range reads with 10k, 100k and 1M stored records, and the 1M/10k
    ratio (the target is within 3x).
``cache``
    a local-cache hit next to a miss served by SQLite.

All timings use :func:`time.perf_counter_ns` after a warm-up; ops/s is
sequential single-client throughput (1 / mean latency). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import gc
import json
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hivemem
from common import (
    Stats,
    build_parser,
    entity,
    fmt_num,
    has_module,
    history,
    message,
    print_machine_info,
    print_table,
    print_title,
    ratio,
    time_async_calls,
    time_batched,
    time_interleaved,
    wants,
)
from hivemem import Memory
from hivemem.pipeline import Pipeline

NS = "bench"
KIND = "item"
#: codec settings passed explicitly so HIVEMEM_* variables cannot change the run
PLAIN = {"serializer": "json", "compressor": "none", "encryptor": "none", "namespace": NS}
PAYLOADS: dict[str, Callable[[int], Any]] = {"entity ~1 KB": entity, "history ~20 KB": history}


@dataclass(frozen=True)
class Plan:
    """Sizes and iteration counts of one run."""

    keys: int  # distinct ids per latency target
    ops: int  # timed calls per latency cell
    warmup: int
    batch_rounds: int
    codec_rounds: int
    codec_round_us: float  # target duration of one batched timing round
    scale_sizes: tuple[int, ...]
    scale_ops: int
    cache_keys: int

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Plan:
        """Full or ``--quick`` plan; ``--sizes`` overrides the scaling sizes."""
        quick = bool(getattr(args, "quick", False))
        sizes_arg = getattr(args, "sizes", None)
        if sizes_arg:
            sizes = tuple(sorted({int(s.replace("_", "")) for s in sizes_arg.split(",")}))
        else:
            sizes = (10_000, 100_000) if quick else (10_000, 100_000, 1_000_000)
        if quick:
            return cls(100, 200, 20, 4, 5, 5_000, sizes, 300, 200)
        return cls(1000, 2000, 100, 25, 15, 20_000, sizes, 2000, 1000)


# -- stores under test --------------------------------------------------------------------------


class Store(Protocol):
    """What the latency section drives: one record at a time, plus a prefix listing."""

    async def save(self, id: str, value: Any) -> None: ...

    async def load(self, id: str) -> Any: ...

    async def list(self, prefix: str, limit: int) -> dict[str, Any]: ...

    async def fill(self, items: dict[str, Any]) -> None: ...


class HivememStore:
    """A :class:`hivemem.Memory` seen as a :class:`Store`."""

    def __init__(self, memory: Memory) -> None:
        self.memory = memory

    async def save(self, id: str, value: Any) -> None:
        """``Memory.put``."""
        await self.memory.put(KIND, id, value)

    async def load(self, id: str) -> Any:
        """``Memory.get``."""
        return await self.memory.get(KIND, id)

    async def list(self, prefix: str, limit: int) -> dict[str, Any]:
        """``Memory.list``."""
        return await self.memory.list(KIND, prefix, limit=limit)

    async def fill(self, items: dict[str, Any]) -> None:
        """``Memory.put_many`` (populating, not timed)."""
        await self.memory.put_many(KIND, items)


def _upper(prefix: str) -> str:
    """Smallest string greater than every string starting with ``prefix`` (ASCII ids)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class RawSqlite:
    """Plain ``sqlite3`` + ``json`` on the same table shape hivemem uses.

    One table keyed by ``(ns, kind, id)`` with a BLOB value, WAL and the given
    ``synchronous`` setting, autocommit (one transaction per statement, as
    hivemem's ``put``). ``threaded=True`` runs each call through
    :func:`asyncio.to_thread`; otherwise it runs on the event-loop thread.
    """

    SCHEMA = (
        "CREATE TABLE IF NOT EXISTS kv (ns BLOB NOT NULL, kind BLOB NOT NULL, id BLOB NOT NULL, "
        "value BLOB NOT NULL, PRIMARY KEY (ns, kind, id))"
    )

    def __init__(self, path: Path, synchronous: str, *, threaded: bool) -> None:
        self.conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute(f"PRAGMA synchronous={synchronous}")
        self.conn.execute(self.SCHEMA)
        self.threaded = threaded
        self.ns, self.kind = NS.encode(), KIND.encode()

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def _save(self, id: str, value: Any) -> None:
        self.conn.execute(
            "INSERT INTO kv (ns, kind, id, value) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (ns, kind, id) DO UPDATE SET value=excluded.value",
            (self.ns, self.kind, id.encode(), json.dumps(value).encode()),
        )

    def _load(self, id: str) -> Any:
        row = self.conn.execute(
            "SELECT value FROM kv WHERE ns=? AND kind=? AND id=?", (self.ns, self.kind, id.encode())
        ).fetchone()
        return None if row is None else json.loads(row[0])

    def _list(self, prefix: str, limit: int) -> dict[str, Any]:
        rows = self.conn.execute(
            "SELECT id, value FROM kv WHERE ns=? AND kind=? AND id>=? AND id<? ORDER BY id LIMIT ?",
            (self.ns, self.kind, prefix.encode(), _upper(prefix).encode(), limit),
        ).fetchall()
        return {id.decode(): json.loads(value) for id, value in rows}

    async def fill(self, items: dict[str, Any]) -> None:
        """Insert many values in one transaction (populating, not timed)."""
        self.conn.execute("BEGIN")
        for id, value in items.items():
            self._save(id, value)
        self.conn.execute("COMMIT")

    async def save(self, id: str, value: Any) -> None:
        """Upsert one JSON-encoded value."""
        if self.threaded:
            await asyncio.to_thread(self._save, id, value)
        else:
            self._save(id, value)

    async def load(self, id: str) -> Any:
        """Select and JSON-decode one value."""
        if self.threaded:
            return await asyncio.to_thread(self._load, id)
        return self._load(id)

    async def list(self, prefix: str, limit: int) -> dict[str, Any]:
        """Index range scan ``prefix <= id < upper`` with a limit."""
        if self.threaded:
            return await asyncio.to_thread(self._list, prefix, limit)
        return self._list(prefix, limit)


class RawDict:
    """In-process reference for ``memory://``: a dict of JSON bytes plus a sorted id list."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.ids: list[str] = []

    async def save(self, id: str, value: Any) -> None:
        """Encode and store; keep the id list sorted."""
        if id not in self.data:
            bisect.insort(self.ids, id)
        self.data[id] = json.dumps(value).encode()

    async def load(self, id: str) -> Any:
        """Decode the stored bytes."""
        raw = self.data.get(id)
        return None if raw is None else json.loads(raw)

    async def fill(self, items: dict[str, Any]) -> None:
        """Save every item (populating, not timed)."""
        for id, value in items.items():
            await self.save(id, value)

    async def list(self, prefix: str, limit: int) -> dict[str, Any]:
        """Binary search, then up to ``limit`` ids with the prefix."""
        out: dict[str, Any] = {}
        i = bisect.bisect_left(self.ids, prefix)
        while i < len(self.ids) and len(out) < limit and self.ids[i].startswith(prefix):
            out[self.ids[i]] = json.loads(self.data[self.ids[i]])
            i += 1
        return out


# -- helpers ------------------------------------------------------------------------------------


@contextmanager
def workdir(args: argparse.Namespace) -> Iterator[Path]:
    """A fresh directory for SQLite files, removed afterwards."""
    base = getattr(args, "dir", None)
    if base:
        Path(base).mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="hivemem-bench-", dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@asynccontextmanager
async def opened(url: str, *, cache: bool, **settings: Any) -> Any:
    """``open_memory(url)`` with the local cache on or off and the plain json pipeline."""
    merged = {**PLAIN, **settings, "cache": ["local://"] if cache else []}
    memory = hivemem.open_memory(url, **merged)
    async with memory:
        yield memory


def sqlite_url(path: Path, synchronous: str) -> str:
    """``sqlite:////abs/path.db?synchronous=...``."""
    return f"sqlite:///{path}?synchronous={synchronous}"


def item_id(i: int) -> str:
    """Zero-padded ids, so ``item_id(10*j) .. item_id(10*j+9)`` share a 10-id prefix."""
    return f"{i:08d}"


def prefix_of_ten(j: int) -> str:
    """The prefix matching exactly the ten ids ``10*j .. 10*j+9``."""
    return f"{j:07d}"


def row(label: str, s: Stats | None, *refs: Stats | None) -> list[str]:
    """One table row: ops/s, p50/p95/p99 (µs) and p50 ratios to the references."""
    if s is None:
        return [label, "-", "-", "-", "-", *(["-"] * len(refs))]
    return [
        label,
        fmt_num(s.ops_per_s),
        fmt_num(s.p50_us),
        fmt_num(s.p95_us),
        fmt_num(s.p99_us),
        *(ratio(s.p50_us, r.p50_us if r else None) for r in refs),
    ]


# -- 1. latency ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One latency target: a label, how to open it, and which operations it runs."""

    label: str
    ops: tuple[str, ...]
    kind: str  # "hivemem", "raw-sqlite", "raw-dict"
    url: str = ""
    cache: bool = False
    synchronous: str = "full"
    threaded: bool = False


def latency_targets(tmp: Path) -> list[Target]:
    """Every store of the latency section, in table order."""
    all_ops = ("save", "load", "list")
    out = [
        Target("hivemem memory://", all_ops, "hivemem", "memory://"),
        Target("hivemem memory:// +local cache", ("load",), "hivemem", "memory://", cache=True),
        Target("raw dict+json (reference)", all_ops, "raw-dict"),
    ]
    for sync in ("full", "normal"):
        url = sqlite_url(tmp / f"latency-{sync}.db", sync)
        out += [
            Target(f"hivemem sqlite {sync}", all_ops, "hivemem", url, synchronous=sync),
            Target(
                f"hivemem sqlite {sync} +local cache",
                ("load",),
                "hivemem",
                sqlite_url(tmp / f"latency-{sync}-cached.db", sync),
                cache=True,
                synchronous=sync,
            ),
            Target(f"raw sqlite3 {sync} (loop)", all_ops, "raw-sqlite", synchronous=sync),
            Target(
                f"raw sqlite3 {sync} (to_thread)",
                all_ops,
                "raw-sqlite",
                synchronous=sync,
                threaded=True,
            ),
        ]
    return out


@asynccontextmanager
async def open_target(target: Target, tmp: Path, tag: str) -> Any:
    """Open the store a :class:`Target` describes (a fresh file for raw SQLite)."""
    if target.kind == "hivemem":
        async with opened(target.url, cache=target.cache) as memory:
            await memory.drop()
            yield HivememStore(memory)
    elif target.kind == "raw-sqlite":
        mode = "thread" if target.threaded else "loop"
        raw = RawSqlite(
            tmp / f"raw-{target.synchronous}-{mode}-{tag}.db",
            target.synchronous,
            threaded=target.threaded,
        )
        try:
            yield raw
        finally:
            raw.close()
    else:
        yield RawDict()


async def bench_latency(plan: Plan, tmp: Path) -> None:
    """Section 1: save/load/list latency of every target, both payloads."""
    print_title("1. save / load / prefix-list latency (one call at a time)")
    print(
        f"{plan.keys} ids per target, {plan.ops} timed calls per cell after {plan.warmup} "
        "warm-up calls, all targets interleaved in 10 slices; saves overwrite existing ids "
        "with changed values; "
        "list = list(kind, prefix, limit=10) returning 10 values.\n"
        "ratio columns: p50 of the row / p50 of the raw reference with the same durability "
        "(raw dict+json for memory://)."
    )
    targets = latency_targets(tmp)
    rng = random.Random(1)
    for p_index, (pname, make) in enumerate(PAYLOADS.items()):
        values = [make(i) for i in range(plan.keys)]
        ids = [item_id(i) for i in range(plan.keys)]
        order = [rng.randrange(plan.keys) for _ in range(plan.ops)]
        prefixes = [prefix_of_ten(rng.randrange(plan.keys // 10)) for _ in order]
        results: dict[tuple[str, str], Stats] = {}
        async with AsyncExitStack() as stack:
            stores: dict[str, Store] = {}
            for target in targets:
                store = await stack.enter_async_context(open_target(target, tmp, str(p_index)))
                await store.fill(dict(zip(ids, values, strict=True)))
                stores[target.label] = store
            for op in ("save", "load", "list"):
                calls = {
                    t.label: _latency_call(op, stores[t.label], ids, values, order, prefixes)
                    for t in targets
                    if op in t.ops
                }
                stats = await time_interleaved(calls, plan.ops, plan.warmup)
                results.update({(label, op): st for label, st in stats.items()})
        _print_latency(pname, targets, results)


def _latency_call(
    op: str,
    store: Store,
    ids: list[str],
    values: list[Any],
    order: list[int],
    prefixes: list[str],
) -> Callable[[int], Awaitable[Any]]:
    """The timed call of one latency cell: call ``i`` uses ``order[i]``/``prefixes[i]``."""
    if op == "save":
        return lambda i: store.save(ids[order[i]], revise(values[order[i]], i))
    if op == "load":
        return lambda i: store.load(ids[order[i]])
    return lambda i: store.list(prefixes[i], 10)


def revise(value: Any, i: int) -> Any:
    """A copy of ``value`` that differs from every earlier save (a ``rev`` field).

    SQLite does not write a page whose content would not change, so saving a
    value identical to the stored one commits nothing and skips the fsync:
    every timed save must store new bytes.
    """
    if isinstance(value, dict):
        return {**value, "rev": i}
    return [{**value[0], "rev": i}, *value[1:]]


def _print_latency(
    pname: str, targets: list[Target], results: dict[tuple[str, str], Stats]
) -> None:
    def ref(label: str, op: str) -> Stats | None:
        return results.get((label, op))

    for op in ("save", "load", "list"):
        rows = []
        for t in targets:
            s = results.get((t.label, op))
            if s is None:
                continue
            if t.kind == "raw-dict" or t.url.startswith("memory://"):
                refs = (ref("raw dict+json (reference)", op), None)
            else:
                refs = (
                    ref(f"raw sqlite3 {t.synchronous} (loop)", op),
                    ref(f"raw sqlite3 {t.synchronous} (to_thread)", op),
                )
            rows.append(row(t.label, s, *refs))
        print_table(
            ["target", "ops/s", "p50 µs", "p95 µs", "p99 µs", "x raw loop", "x raw thread"],
            rows,
            title=f"{op} — {pname}",
        )


# -- 2. batch -----------------------------------------------------------------------------------


async def bench_batch(plan: Plan, tmp: Path) -> None:
    """Section 2: put_many/get_many of 100 against 100 sequential put/get."""
    print_title("2. batch: put_many / get_many of 100 vs 100 sequential put / get")
    print(
        f"median of {plan.batch_rounds} interleaved rounds, each writing/reading the same 100 "
        "ids; local cache off. speedup = sequential time / batch time."
    )
    n = 100
    rows = []
    for url_label, url in (
        ("memory://", "memory://"),
        ("sqlite full", sqlite_url(tmp / "batch-full.db", "full")),
        ("sqlite normal", sqlite_url(tmp / "batch-normal.db", "normal")),
    ):
        for pname, make in PAYLOADS.items():
            items = {item_id(i): make(i) for i in range(n)}
            ids = list(items)
            async with opened(url, cache=False) as m:
                await m.drop()
                await m.put_many(KIND, items)  # warm-up and populate

                async def seq_put(m: Memory = m, items: dict[str, Any] = items) -> None:
                    for k, v in items.items():
                        await m.put(KIND, k, v)

                async def batch_put(m: Memory = m, items: dict[str, Any] = items) -> None:
                    await m.put_many(KIND, items)

                async def seq_get(m: Memory = m, ids: list[str] = ids) -> None:
                    for k in ids:
                        await m.get(KIND, k)

                async def batch_get(m: Memory = m, ids: list[str] = ids) -> None:
                    await m.get_many(KIND, ids)

                stats = await time_interleaved(
                    {
                        "seq_put": lambda _i, f=seq_put: f(),
                        "batch_put": lambda _i, f=batch_put: f(),
                        "seq_get": lambda _i, f=seq_get: f(),
                        "batch_get": lambda _i, f=batch_get: f(),
                    },
                    plan.batch_rounds,
                    2,
                    chunks=plan.batch_rounds,
                )
                timings = {name: st.p50_us for name, st in stats.items()}
            for op in ("put", "get"):
                seq, bat = timings[f"seq_{op}"], timings[f"batch_{op}"]
                rows.append(
                    [
                        f"{url_label} {op} — {pname}",
                        fmt_num(seq / 1000, 2),
                        fmt_num(bat / 1000, 2),
                        fmt_num(n / seq * 1e6),
                        fmt_num(n / bat * 1e6),
                        ratio(seq, bat),
                    ]
                )
    print_table(
        ["backend / op", "100 seq ms", "batch ms", "seq rec/s", "batch rec/s", "speedup"],
        rows,
    )


# -- 3. pipeline --------------------------------------------------------------------------------


def pipelines() -> list[tuple[str, Pipeline | None]]:
    """The codec combinations to time; None marks a combination whose plugin is missing."""
    out: list[tuple[str, Pipeline | None]] = [
        ("json", Pipeline("json")),
        ("json+zlib", Pipeline("json", "zlib")),
    ]
    zstd = has_module("hivemem_zstd") and has_module("zstandard")
    fernet = has_module("hivemem_fernet") and has_module("cryptography")
    keys: dict[str, dict[str, Any]] = {}
    if fernet:
        from hivemem_fernet import generate_key

        keys = {"fernet": {"keys": generate_key()}}
    out.append(("json+zstd", Pipeline("json", "zstd") if zstd else None))
    out.append(
        ("json+fernet", Pipeline("json", "none", "fernet", options=keys) if fernet else None)
    )
    out.append(
        (
            "json+zstd+fernet",
            Pipeline("json", "zstd", "fernet", options=keys) if zstd and fernet else None,
        )
    )
    return out


def bench_pipeline(plan: Plan) -> None:
    """Section 3: pipeline encode/decode against bare json."""
    print_title("3. value pipeline: encode / decode cost per operation")
    print(
        f"median of {plan.codec_rounds} interleaved rounds of back-to-back calls; bare json = "
        "json.dumps(v).encode() / json.loads(b). frame B = stored bytes incl. the header."
    )
    combos = pipelines()
    for pname, make in PAYLOADS.items():
        value = make(3)
        raw = json.dumps(value).encode()
        fns: dict[str, Callable[[], Any]] = {
            "bare:enc": lambda v=value: json.dumps(v).encode(),
            "bare:dec": lambda b=raw: json.loads(b),
        }
        frames: dict[str, bytes] = {}
        for name, pipe in combos:
            if pipe is None:
                continue
            frames[name] = frame = pipe.encode(value, "k")
            fns[f"{name}:enc"] = lambda p=pipe, v=value: p.encode(v, "k")
            fns[f"{name}:dec"] = lambda p=pipe, f=frame: p.decode(f, "k")
        us = time_batched(fns, rounds=plan.codec_rounds, round_us=plan.codec_round_us)
        base_enc, base_dec = us["bare:enc"], us["bare:dec"]
        rows = [
            [
                "bare json (reference)",
                fmt_num(base_enc, 2),
                fmt_num(base_dec, 2),
                "1.00x",
                "1.00x",
                f"{len(raw):,}",
            ]
        ]
        for name, pipe in combos:
            if pipe is None:
                rows.append([f"{name} (plugin not installed)", "-", "-", "-", "-", "-"])
                continue
            enc, dec = us[f"{name}:enc"], us[f"{name}:dec"]
            rows.append(
                [
                    f"hivemem {name}",
                    fmt_num(enc, 2),
                    fmt_num(dec, 2),
                    ratio(enc, base_enc),
                    ratio(dec, base_dec),
                    f"{len(frames[name]):,}",
                ]
            )
        print_table(
            ["pipeline", "encode µs", "decode µs", "enc x json", "dec x json", "frame B"],
            rows,
            title=pname,
        )


# -- 4. scaling ---------------------------------------------------------------------------------


SERIES = "events"
T0 = 1_700_000_000.0


async def _load(m: Memory, size: int, entities: list[Any], messages: list[Any]) -> list[str]:
    """Fill an empty namespace with ``size`` records and a ``size``-entry series; a table row.

    Values are encoded once by the memory's own pipeline (1,000 distinct
    frames, cycled) and written with the backend's ``put_many`` in batches of
    10,000 and one ``replace_series``: this section measures reads, and the
    Memory-level write path is measured in sections 1 and 2. Every stored
    value is its own bytes object, as it would be after real writes.
    """
    batch = 10_000
    record_frames = [m.pipeline.encode(v, "k") for v in entities]
    series_frames = [m.pipeline.encode(v, "s") for v in messages]
    backend = m.backend
    gc.collect()
    t0 = time.perf_counter()
    for lo in range(0, size, batch):
        hi = min(size, lo + batch)
        chunk = {
            item_id(i): bytes(bytearray(record_frames[i % len(record_frames)]))
            for i in range(lo, hi)
        }
        await backend.put_many(NS, KIND, chunk)
    t1 = time.perf_counter()
    entries = [
        (T0 + i, bytes(bytearray(series_frames[i % len(series_frames)]))) for i in range(size)
    ]
    await backend.replace_series(NS, SERIES, entries)
    del entries
    t2 = time.perf_counter()
    return [
        f"{size:,}",
        fmt_num(t1 - t0, 2),
        fmt_num(size / (t1 - t0)),
        fmt_num(t2 - t1, 2),
        fmt_num(size / (t2 - t1)),
    ]


def _scale_calls(m: Memory, size: int, n: int) -> dict[str, Callable[[int], Awaitable[Any]]]:
    """The timed reads of one store: random prefixes and time windows over ``size`` records."""
    rng = random.Random(size)
    prefixes = [prefix_of_ten(rng.randrange(size // 10)) for _ in range(n)]
    starts = [T0 + rng.randrange(size - 10) for _ in range(n)]
    return {
        "list": lambda i: m.list(KIND, prefixes[i], limit=10),
        "ids": lambda i: m.list_ids(KIND, prefixes[i], limit=10),
        "newest": lambda i: m.list(KIND, "", limit=10, reverse=True),
        "latest": lambda i: m.read_series(SERIES, latest=True, limit=10),
        "range": lambda i: m.read_series(SERIES, start=starts[i], end=starts[i] + 10),
    }


SCALE_OPS = {
    "list": "list prefix, limit=10",
    "ids": "list_ids prefix, limit=10",
    "newest": "list newest 10 (reverse)",
    "latest": "read_series latest 10",
    "range": "read_series ~10 by time",
}


async def bench_scaling(plan: Plan, tmp: Path) -> None:
    """Section 4: listing and series reads at 10k / 100k / 1M stored records."""
    sizes = plan.scale_sizes
    print_title("4. scaling: reads should cost what they return, not what is stored")
    print(
        f"one store per size ({', '.join(f'{s:,}' for s in sizes)} records of ~1 KB plus one "
        "series of the same length, ~500 B messages 1 s apart), all loaded first; then "
        f"{plan.scale_ops} timed calls per cell at random positions, the sizes interleaved. "
        "local cache off.\n"
        "list = list(kind, prefix, limit=10); list_ids = the same without values; newest = "
        "list(kind, '', limit=10, reverse=True); latest = read_series(latest=True, limit=10); "
        "by time = read_series(start=t, end=t+10)."
    )
    entities = [entity(i) for i in range(1000)]
    messages = [message(i) for i in range(1000)]
    first, last = sizes[0], sizes[-1]
    for label, make_url in (
        ("sqlite full", lambda size: sqlite_url(tmp / f"scale-{size}.db", "full")),
        ("memory://", lambda size: "memory://"),
    ):
        load_rows = []
        results: dict[tuple[str, int], Stats] = {}
        async with AsyncExitStack() as stack:
            stores: dict[int, Memory] = {}
            for size in sizes:
                m = await stack.enter_async_context(opened(make_url(size), cache=False))
                await m.drop()
                load_rows.append(await _load(m, size, entities, messages))
                stores[size] = m
                print(f"  {label}: loaded {size:,}", flush=True)
            print_table(
                ["stored", "put_many s", "records/s", "replace_series s", "entries/s"],
                load_rows,
                title=f"{label} — loading (backend put_many in batches of 10,000; "
                "one replace_series)",
            )
            calls = {size: _scale_calls(m, size, plan.scale_ops) for size, m in stores.items()}
            for op in SCALE_OPS:
                stats = await time_interleaved(
                    {str(size): calls[size][op] for size in sizes}, plan.scale_ops, plan.warmup
                )
                results.update({(op, int(size)): st for size, st in stats.items()})
            for m in stores.values():
                await m.drop()
        rows = []
        for op, name in SCALE_OPS.items():
            rows.append(
                [
                    name,
                    *(fmt_num(results[(op, s)].p50_us) for s in sizes),
                    fmt_num(results[(op, last)].p99_us),
                    ratio(results[(op, last)].p50_us, results[(op, first)].p50_us),
                ]
            )
        print_table(
            [
                "operation (p50 µs)",
                *(f"{s:,}" for s in sizes),
                f"p99 @ {_short(last)}",
                f"{_short(last)}/{_short(first)}",
            ],
            rows,
            title=f"{label} — µs per call by stored records",
        )


def _short(n: int) -> str:
    """10000 -> 10k, 1000000 -> 1M."""
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


# -- 5. cache -----------------------------------------------------------------------------------


async def bench_cache(plan: Plan, tmp: Path) -> None:
    """Section 5: local-cache hit against a miss served by SQLite."""
    print_title("5. local cache: hit vs miss served by sqlite")
    print(
        f"{plan.cache_keys} ids per payload stored with put_many (which does not fill the "
        "cache); pass 1 reads each id once (miss -> sqlite -> fill), pass 2 reads them again "
        "(hit). 'no cache tier' = a Memory opened without caches, 'backend+decode' = "
        "backend.get + pipeline.decode called directly."
    )
    rows: list[list[str]] = []
    for pname, make in PAYLOADS.items():
        rows += await _cache_rows(pname, make, plan.cache_keys, tmp)
    print_table(["get", "p50 µs", "p95 µs", "p99 µs", "x hit"], rows)


async def _cache_rows(pname: str, make: Callable[[int], Any], n: int, tmp: Path) -> list[list[str]]:
    """Rows of the cache table for one payload."""
    items = {item_id(i): make(i) for i in range(n)}
    ids = list(items)
    url = sqlite_url(tmp / "cache.db", "full")
    async with opened(url, cache=True) as m:
        await m.drop()
        await m.put_many(KIND, items)
        for id in ids:  # warm SQLite's page cache and the reader thread, not the local cache
            await m.get(KIND, id, use_cache=False)
        m.clear_local_cache()
        miss = await time_async_calls(lambda i: m.get(KIND, ids[i]), n, 0)
        hit = await time_async_calls(lambda i: m.get(KIND, ids[i]), n, 0)
    async with opened(url, cache=False) as m:
        plain = await time_async_calls(lambda i: m.get(KIND, ids[i]), n, 20)
        low = await time_async_calls(_direct_get(m, ids), n, 20)
    async with opened("memory://", cache=False) as m:
        await m.put_many(KIND, items)
        mem_get = await time_async_calls(lambda i: m.get(KIND, ids[i]), n, 20)
        mem_low = await time_async_calls(_direct_get(m, ids), n, 20)
    rows = []
    for label, s in (
        ("local cache hit", hit),
        ("local cache miss -> sqlite", miss),
        ("sqlite, no cache tier", plain),
        ("sqlite backend+decode", low),
        ("memory://, no cache tier", mem_get),
        ("memory:// backend+decode", mem_low),
    ):
        rows.append(
            [
                f"{label} — {pname}",
                fmt_num(s.p50_us),
                fmt_num(s.p95_us),
                fmt_num(s.p99_us),
                ratio(s.p50_us, hit.p50_us),
            ]
        )
    return rows


def _direct_get(m: Memory, ids: list[str]) -> Callable[[int], Awaitable[Any]]:
    """``backend.get`` + ``pipeline.decode``: the floor under ``Memory.get``."""
    backend, decode = m.backend, m.pipeline.decode

    async def call(i: int) -> Any:
        rec = await backend.get(NS, KIND, ids[i])
        return None if rec is None else decode(rec.value, "k")

    return call


# -- entry point --------------------------------------------------------------------------------

SECTIONS = ("latency", "batch", "pipeline", "scaling", "cache")


async def main(args: argparse.Namespace) -> None:
    """Run the selected sections of the core benchmark."""
    plan = Plan.from_args(args)
    with workdir(args) as tmp:
        print(f"sqlite files in {tmp}")
        for section in SECTIONS:
            if not wants(args, "core", section):
                continue
            t0 = time.perf_counter()
            if section == "latency":
                await bench_latency(plan, tmp)
            elif section == "batch":
                await bench_batch(plan, tmp)
            elif section == "pipeline":
                bench_pipeline(plan)
            elif section == "scaling":
                await bench_scaling(plan, tmp)
            else:
                await bench_cache(plan, tmp)
            print(f"({section}: {time.perf_counter() - t0:.1f} s)", flush=True)


if __name__ == "__main__":
    _args = build_parser().parse_args()
    print_machine_info()
    asyncio.run(main(_args))
