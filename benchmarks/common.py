"""Shared helpers for the hivemem benchmarks: timing, statistics, tables, payloads.

Every benchmark module in this directory (``bench_*.py``) exposes
``main(args)``; ``benchmarks/run.py`` discovers and runs them. The helpers
here keep their output uniform:

* :func:`time_calls` / :func:`time_async_calls` time each call with
  :func:`time.perf_counter_ns` after a warm-up and return a :class:`Stats`
  (ops/s, mean, p50/p95/p99 in microseconds);
* :func:`time_interleaved` times several operations against each other in
  interleaved slices, so load from elsewhere on the machine hits them alike;
* :func:`time_batched` times many calls per sample for sub-microsecond to
  few-microsecond operations and reports the median of the per-call times;
* :func:`print_table` prints fixed-width tables; :func:`ratio` formats the
  ``hivemem / reference`` ratios the README quotes;
* :func:`entity` and :func:`history` build the two reference payloads
  (a ~1 KB entity dict and a ~20 KB conversation history list).

Nothing here asserts a time: benchmarks report, they never fail on numbers.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import importlib.util
import os
import platform
import random
import sqlite3
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class Skip(Exception):
    """Raised by a benchmark's ``main`` when it cannot run here (missing plugin or server)."""


# -- statistics -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Stats:
    """Latency statistics of one measured operation (times in microseconds)."""

    n: int
    mean_us: float
    p50_us: float
    p95_us: float
    p99_us: float

    @property
    def ops_per_s(self) -> float:
        """Sequential single-client throughput: 1 / mean latency."""
        return 1e6 / self.mean_us if self.mean_us > 0 else float("inf")

    @classmethod
    def from_ns(cls, samples: Sequence[int]) -> Stats:
        """Build from per-call durations in nanoseconds."""
        if not samples:
            raise ValueError("no samples")
        data = sorted(samples)
        return cls(
            n=len(data),
            mean_us=statistics.fmean(data) / 1000,
            p50_us=percentile(data, 50) / 1000,
            p95_us=percentile(data, 95) / 1000,
            p99_us=percentile(data, 99) / 1000,
        )


def percentile(sorted_data: Sequence[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0-100) of already sorted data."""
    if not sorted_data:
        raise ValueError("no data")
    rank = max(1, min(len(sorted_data), round(q / 100 * len(sorted_data) + 0.5)))
    return sorted_data[rank - 1]


# -- timing ---------------------------------------------------------------------------------


def time_calls(fn: Callable[[int], Any], n: int, warmup: int) -> Stats:
    """Time ``fn(i)`` for ``i`` in ``range(n)`` one call at a time, after ``warmup`` calls."""
    for i in range(warmup):
        fn(i)
    gc.collect()
    clock = time.perf_counter_ns
    samples = [0] * n
    for i in range(n):
        t0 = clock()
        fn(i)
        samples[i] = clock() - t0
    return Stats.from_ns(samples)


async def time_async_calls(fn: Callable[[int], Awaitable[Any]], n: int, warmup: int) -> Stats:
    """Time ``await fn(i)`` for ``i`` in ``range(n)`` one call at a time, after a warm-up."""
    for i in range(warmup):
        await fn(i)
    gc.collect()
    clock = time.perf_counter_ns
    samples = [0] * n
    for i in range(n):
        t0 = clock()
        await fn(i)
        samples[i] = clock() - t0
    return Stats.from_ns(samples)


async def time_interleaved(
    calls: Mapping[str, Callable[[int], Awaitable[Any]]],
    n: int,
    warmup: int,
    *,
    chunks: int = 10,
) -> dict[str, Stats]:
    """Time several operations against each other, ``n`` calls each, in interleaved chunks.

    Each operation gets ``warmup`` untimed calls, then the ``n`` timed calls
    run in ``chunks`` slices, every slice cycling through all operations (in
    a rotating order). Load from elsewhere on the machine then lands on all
    of them alike, which keeps their *ratios* stable even when absolute
    numbers drift. Call ``i`` of an operation is ``fn(i)`` for ``i`` in
    ``range(n)`` (warm-up calls reuse the first indices).
    """
    names = list(calls)
    for name in names:
        for i in range(warmup):
            await calls[name](i % n)
    gc.collect()
    clock = time.perf_counter_ns
    samples: dict[str, list[int]] = {name: [] for name in names}
    chunks = max(1, min(chunks, n))
    bounds = [n * c // chunks for c in range(chunks + 1)]
    for c in range(chunks):
        order = names[c % len(names) :] + names[: c % len(names)]
        for name in order:
            fn, out = calls[name], samples[name]
            for i in range(bounds[c], bounds[c + 1]):
                t0 = clock()
                await fn(i)
                out.append(clock() - t0)
    return {name: Stats.from_ns(samples[name]) for name in names}


def time_batched(
    fns: Mapping[str, Callable[[], Any]], *, rounds: int, round_us: float = 20_000
) -> dict[str, float]:
    """Per-call µs of each function: median over ``rounds`` of back-to-back call batches.

    For operations too short to time one by one (the timer's own cost would
    dominate): codec encode/decode, cache hits. Each function's batch size is
    fitted so one batch takes about ``round_us``; the rounds of all functions
    are interleaved so machine load affects them alike.
    """
    clock = time.perf_counter_ns
    sizes: dict[str, int] = {}
    for name, fn in fns.items():
        fn()  # warm-up
        t0 = clock()
        fn()
        one_us = max(0.05, (clock() - t0) / 1000)
        sizes[name] = max(1, int(round_us / one_us))
        for _ in range(sizes[name] // 4):
            fn()
    gc.collect()
    per_call: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            k = sizes[name]
            t0 = clock()
            for _ in range(k):
                fn()
            per_call[name].append((clock() - t0) / k / 1000)
    return {name: statistics.median(v) for name, v in per_call.items()}


# -- formatting -----------------------------------------------------------------------------


def fmt_num(value: float | None, digits: int = 1) -> str:
    """A number with thousands separators, or ``-`` for None."""
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def ratio(value: float | None, reference: float | None) -> str:
    """``value / reference`` as ``"1.23x"``, or ``-`` when either is missing."""
    if value is None or reference is None or reference <= 0:
        return "-"
    r = value / reference
    return f"{r:.2f}x" if r < 100 else f"{r:,.0f}x"


def print_title(text: str) -> None:
    """A section heading."""
    print()
    print(text)
    print("=" * len(text))


def print_table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None
) -> None:
    """Print a left-aligned first column and right-aligned other columns."""
    table = [[str(c) for c in headers], *([str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    if title:
        print()
        print(title)
    for k, row in enumerate(table):
        cells = [
            row[i].ljust(widths[i]) if i == 0 else row[i].rjust(widths[i]) for i in range(len(row))
        ]
        print("  ".join(cells).rstrip())
        if k == 0:
            print("  ".join("-" * w for w in widths))
    sys.stdout.flush()


# -- environment ----------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or the platform's best guess)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def dist_version(name: str) -> str | None:
    """Installed version of distribution ``name``, or None."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def has_module(name: str) -> bool:
    """True when ``name`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def machine_info() -> dict[str, str]:
    """CPU, cores, memory, OS, Python, SQLite and hivemem (plus plugin) versions."""
    info = {
        "cpu": cpu_model(),
        "cores": str(os.cpu_count()),
        "memory": _mem_total(),
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "sqlite": sqlite3.sqlite_version,
        "hivemem": dist_version("hivemem") or "not installed",
        "load average": load_average(),
    }
    for dist in ("hivemem-zstd", "hivemem-fernet", "zstandard", "cryptography"):
        version = dist_version(dist)
        if version:
            info[dist] = version
    return info


def load_average() -> str:
    """1/5/15-minute load average: other work on the machine skews every number."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def _mem_total() -> str:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return "unknown"


def print_machine_info() -> None:
    """Print :func:`machine_info` as an aligned block."""
    info = machine_info()
    width = max(len(k) for k in info)
    print("machine")
    for key, value in info.items():
        print(f"  {key.ljust(width)}  {value}")
    sys.stdout.flush()


# -- arguments ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The command line shared by ``run.py`` and each ``bench_*.py`` run directly."""
    parser = argparse.ArgumentParser(
        description="hivemem benchmarks: hivemem next to raw clients, with ratios."
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes; the whole run finishes in under 60 s"
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        default=None,
        help="run only this benchmark module (core, redis, ...) or one section of it "
        "(core.latency, core.batch, core.pipeline, core.scaling, core.cache); repeatable",
    )
    parser.add_argument(
        "--dir",
        default=None,
        help="directory for the benchmark's SQLite files (default: a fresh temporary directory)",
    )
    parser.add_argument(
        "--sizes",
        default=None,
        help="comma-separated record counts for the scaling section "
        "(default 10000,100000,1000000; --quick: 10000,100000)",
    )
    return parser


@contextmanager
def workdir(args: argparse.Namespace, prefix: str) -> Iterator[Path]:
    """A fresh directory (under ``--dir`` when given) for a benchmark's files, removed after."""
    import shutil
    import tempfile

    base = getattr(args, "dir", None)
    if base:
        Path(base).mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run_main(
    run: Callable[[argparse.Namespace], Awaitable[None]], args: argparse.Namespace | None
) -> None:
    """A benchmark's ``main``: ``args`` from ``run.py``, or this script's own command line.

    Run standalone, a :class:`Skip` prints its reason; under ``run.py`` it
    propagates so the runner reports it with the others.
    """
    standalone = args is None
    if args is None:
        args = build_parser().parse_args()
        print_machine_info()
    try:
        import asyncio

        asyncio.run(run(args))
    except Skip as exc:
        if not standalone:
            raise
        print(f"skipped: {exc}")


def wants(args: argparse.Namespace, module: str, section: str | None = None) -> bool:
    """True when ``--only`` selects ``module`` (or ``module.section``)."""
    only: list[str] | None = getattr(args, "only", None)
    if not only:
        return True
    for name in only:
        mod, _, sec = name.removeprefix("bench_").partition(".")
        if mod != module:
            continue
        if not sec or section is None or sec == section:
            return True
    return False


# -- payloads -------------------------------------------------------------------------------

_WORDS = (
    "agent memory tool result plan step user reward context vector cache "
    "shared durable store value search answer query model token prompt"
).split()


def _text(rng: random.Random, n_chars: int) -> str:
    out: list[str] = []
    size = 0
    while size < n_chars:
        word = rng.choice(_WORDS)
        out.append(word)
        size += len(word) + 1
    return " ".join(out)[:n_chars]


def entity(i: int, seed: int = 7) -> dict[str, Any]:
    """A ~1 KB entity dict (JSON-encoded size), like a user or task record."""
    rng = random.Random(seed * 1_000_003 + i)
    return {
        "id": f"user-{i:08d}",
        "type": "user",
        "name": f"User {i}",
        "email": f"user{i}@example.org",
        "created_at": "2024-05-01T12:00:00+00:00",
        "active": bool(i % 2),
        "score": round(rng.random() * 100, 3),
        "preferences": {
            "language": "en",
            "timezone": "Europe/Berlin",
            "notifications": {"email": True, "push": False, "digest": "weekly"},
            "theme": "dark",
        },
        "tags": [rng.choice(_WORDS) for _ in range(8)],
        "stats": {"sessions": rng.randrange(1000), "messages": rng.randrange(100_000)},
        "history": [{"at": 1_700_000_000 + k * 60, "event": rng.choice(_WORDS)} for k in range(6)],
        "notes": _text(rng, 420),
    }


def message(i: int, seed: int = 11, size: int = 400) -> dict[str, Any]:
    """One conversation message of about ``size`` characters of content."""
    rng = random.Random(seed * 1_000_003 + i)
    return {
        "role": "user" if i % 2 == 0 else "assistant",
        "content": _text(rng, size),
        "ts": 1_700_000_000.0 + i,
        "meta": {"tokens": rng.randrange(50, 500), "model": "m-1"},
    }


def history(i: int, seed: int = 13, n_messages: int = 40) -> list[dict[str, Any]]:
    """A ~20 KB conversation history: ``n_messages`` messages of ~400 characters."""
    return [message(i * 1000 + k, seed) for k in range(n_messages)]


__all__ = [
    "Skip",
    "Stats",
    "build_parser",
    "entity",
    "fmt_num",
    "has_module",
    "history",
    "load_average",
    "machine_info",
    "message",
    "percentile",
    "print_machine_info",
    "print_table",
    "print_title",
    "ratio",
    "time_async_calls",
    "time_batched",
    "time_calls",
    "time_interleaved",
    "wants",
]
