"""What the read-side defences cost: the codec allow-list check and the remote-cache MACs.

Sections (select one with ``--only security.NAME``):

``check``
    ``Pipeline.decode`` of a ~1 KB entity frame (json, and json + zstd +
    fernet) with the trust check, against the same decode with the check
    bypassed (a subclass defined here that decodes by the header without
    judging it: the code before the allow-list), and against a decode that
    runs ``check_stages`` on every call instead of remembering headers it
    already judged. Layer: the pipeline alone, no I/O.
``seal``
    ``SealedCache`` key derivation + ``seal`` + ``unseal`` of a ~1 KB and a
    ~100 KB frame, against the same calls in trusted mode (no secret: the
    frame passes unchanged). Layer: the sealing wrapper alone, no I/O.
``get``
    ``Memory.get`` that hits a real Memcached tier (no local tier) with
    sealed entries (``cache_secret``) against ``trust_remote_cache=True``,
    for a ~1 KB and a ~100 KB value; a cache-less ``Memory`` on the same
    SQLite file is shown for scale. Layer: the whole read path over loopback.

The benchmark starts its own ``memcached`` on a free loopback port
(:mod:`hivemem.testing.servers`). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hivemem
from common import (
    Skip,
    dist_version,
    entity,
    fmt_num,
    has_module,
    history,
    print_table,
    print_title,
    ratio,
    run_main,
    time_batched,
    time_interleaved,
    wants,
    workdir,
)
from hivemem import Memory
from hivemem.builtin.local_cache import LocalCache
from hivemem.pipeline import Pipeline, read_header
from hivemem.sealing import SealedCache

NS = "bench"
KIND = "item"
SECRET = "bench-security-cache-secret-0123456789"
#: codec settings passed explicitly so HIVEMEM_* variables cannot change the run
PLAIN = {"serializer": "json", "compressor": "none", "encryptor": "none", "namespace": NS}


@dataclass(frozen=True)
class Plan:
    """Iteration counts of one run."""

    rounds: int  # interleaved rounds of the batched (µs-scale) timings
    round_us: float  # target duration of one batch
    keys: int  # distinct ids read in the get section
    ops: int  # timed gets per configuration and value size
    warmup: int

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Plan:
        """Full or ``--quick`` plan."""
        if getattr(args, "quick", False):
            return cls(5, 5_000, 50, 300, 30)
        return cls(21, 20_000, 200, 3_000, 200)


def big_value(i: int) -> dict[str, Any]:
    """A ~100 KB value: a 200-message conversation."""
    return {"id": i, "messages": history(i, n_messages=200)}


# -- baselines (defined here, not in the library) -----------------------------------------------


class UncheckedPipeline(Pipeline):
    """Decodes by the header without judging it: the pipeline before the allow-list."""

    def _trusted_stages(self, frame: bytes, key: str | None) -> tuple[list[tuple[str, str]], int]:
        return read_header(frame, key)


class UnmemoizedPipeline(Pipeline):
    """Runs the whole trust check on every decode (no memo of headers already judged)."""

    def _trusted_stages(self, frame: bytes, key: str | None) -> tuple[list[tuple[str, str]], int]:
        stages, pos = read_header(frame, key)
        self.check_stages(stages, key)
        return stages, pos


def _configs() -> list[tuple[str, dict[str, Any]]]:
    """``(name, Pipeline keyword arguments)`` of the configurations to time."""
    out: list[tuple[str, dict[str, Any]]] = [("json", {"serializer": "json"})]
    if all(has_module(m) for m in ("hivemem_zstd", "hivemem_fernet", "zstandard")):
        from hivemem_fernet import generate_key

        out.append(
            (
                "json+zstd+fernet",
                {
                    "serializer": "json",
                    "compressor": "zstd",
                    "encryptor": "fernet",
                    "options": {"fernet": {"keys": generate_key()}},
                },
            )
        )
    else:
        print("json+zstd+fernet skipped: hivemem-zstd / hivemem-fernet not installed")
    return out


# -- 1. the allow-list check ----------------------------------------------------------------------


def bench_check(plan: Plan, summary: dict[str, str]) -> None:
    """Section 1: decode with the trust check against decode without it."""
    print_title("1. allow-list check: Pipeline.decode of a ~1 KB entity (layer: pipeline)")
    print(
        f"µs per call, median of {plan.rounds} interleaved rounds of back-to-back calls. "
        "unchecked = decode by the header without the trust check (baseline, defined in the "
        "benchmark); checked = the library (headers already judged are remembered); "
        "check every call = check_stages on each decode. The three share one set of codec "
        "objects. 'header step' times only what differs: parsing the header and judging it."
    )
    value = entity(3)
    rows = []
    variants = (
        ("unchecked (baseline)", "unchecked"),
        ("checked (library)", "checked"),
        ("check every call", "every"),
    )
    for name, kwargs in _configs():
        pipes: dict[str, Pipeline] = {
            "unchecked": UncheckedPipeline(**kwargs),
            "checked": Pipeline(**kwargs),
            "every": UnmemoizedPipeline(**kwargs),
        }
        for pipe in pipes.values():  # only the check differs between them
            pipe._instances = pipes["checked"]._instances
        frame = pipes["checked"].encode(value, "k")
        assert [p.decode(frame, "k") for p in pipes.values()] == [value] * 3
        fns: dict[str, Callable[[], Any]] = {}
        for key, pipe in pipes.items():
            fns[f"decode:{key}"] = lambda p=pipe, f=frame: p.decode(f, "k")
            fns[f"header:{key}"] = lambda p=pipe, f=frame: p._trusted_stages(f, "k")
        us = time_batched(fns, rounds=plan.rounds, round_us=plan.round_us)
        for step in ("decode", "header"):
            base = us[f"{step}:unchecked"]
            for label, key in variants:
                t = us[f"{step}:{key}"]
                rows.append(
                    [
                        f"{name} {'decode' if step == 'decode' else 'header step'}: {label}",
                        fmt_num(t, 2),
                        fmt_num(t - base, 2) if key != "unchecked" else "-",
                        ratio(t, base),
                    ]
                )
            what = "decode" if step == "decode" else "header step"
            summary[f"{what} {name}, checked / unchecked"] = ratio(us[f"{step}:checked"], base)
            summary[f"{what} {name}, check every call / unchecked"] = ratio(
                us[f"{step}:every"], base
            )
    print_table(["Pipeline", "µs", "+µs", "x unchecked"], rows)


# -- 2. seal + unseal ------------------------------------------------------------------------------


def bench_seal(plan: Plan, summary: dict[str, str]) -> None:
    """Section 2: SealedCache seal + unseal against trusted mode."""
    print_title("2. cache MAC: SealedCache key + seal + unseal (layer: sealing wrapper)")
    print(
        f"µs per call, median of {plan.rounds} interleaved rounds of back-to-back calls. "
        "set+get = key derivation + seal + key derivation + unseal (a fill, then a hit); "
        "get = key derivation + unseal (what a tier hit pays). trusted = no secret "
        "(trust_remote_cache): key and frame pass unchanged."
    )
    pipe = Pipeline("json")
    frames = {"~1 KB": pipe.encode(entity(3), "k"), "~100 KB": pipe.encode(big_value(3), "k")}
    caches = {
        "trusted": SealedCache(LocalCache(), None),
        "sealed": SealedCache(LocalCache(), [SECRET.encode()]),
    }
    key = "5:bench4:item" + "user-000123"

    def set_get(cache: SealedCache, frame: bytes) -> bytes | None:
        stored = cache.seal(cache._key(key), frame)
        return cache.unseal(cache._key(key), stored)

    def get(cache: SealedCache, stored: bytes) -> bytes | None:
        return cache.unseal(cache._key(key), stored)

    fns: dict[str, Callable[[], Any]] = {}
    for size, frame in frames.items():
        for mode, cache in caches.items():
            stored = cache.seal(cache._key(key), frame)
            assert set_get(cache, frame) == get(cache, stored) == frame
            fns[f"{size}:{mode}:set+get"] = lambda c=cache, f=frame: set_get(c, f)
            fns[f"{size}:{mode}:get"] = lambda c=cache, b=stored: get(c, b)
    us = time_batched(fns, rounds=plan.rounds, round_us=plan.round_us)
    rows = []
    for size, frame in frames.items():
        for op in ("set+get", "get"):
            t, s = us[f"{size}:trusted:{op}"], us[f"{size}:sealed:{op}"]
            rows.append(
                [f"{size} {op}: trusted (baseline)", f"{len(frame):,}", fmt_num(t, 2), "-", "1.00x"]
            )
            rows.append(
                [
                    f"{size} {op}: sealed",
                    f"{len(frame) + 33:,}",
                    fmt_num(s, 2),
                    fmt_num(s - t, 2),
                    ratio(s, t),
                ]
            )
            summary[f"SealedCache {op} {size}: added µs"] = fmt_num(s - t, 2)
    print_table(["frame", "stored B", "µs", "+µs", "x trusted"], rows)
    print(
        "(the trusted calls do almost nothing, so their ratio is large by construction; "
        "the +µs column is the cost: compare it with the round trip in section 3)"
    )


# -- 3. Memory.get hitting Memcached ---------------------------------------------------------------


@contextmanager
def started_memcached() -> Iterator[Any]:
    """A private memcached on a free loopback port (stopped afterwards)."""
    from hivemem.testing.servers import ServerBinaryMissing
    from hivemem_memcached.testing import MemcachedServer

    try:
        with MemcachedServer(memory_mb=256) as server:
            yield server
    except ServerBinaryMissing as exc:
        raise Skip(str(exc)) from None


def getter(memory: Memory, kind: str, ids: list[str]) -> Callable[[int], Awaitable[Any]]:
    """Call ``i`` reads id ``i`` (cycling through ``ids``)."""
    return lambda i: memory.get(kind, ids[i % len(ids)])


async def bench_get(plan: Plan, args: argparse.Namespace, summary: dict[str, str]) -> None:
    """Section 3: Memory.get served by Memcached, sealed against trusted."""
    print_title("3. Memory.get hitting Memcached, no local tier (layer: whole read path)")
    if not has_module("hivemem_memcached"):
        print("skipped: hivemem-memcached is not installed")
        return
    print(
        f"{plan.ops} timed gets per row over {plan.keys} ids, rows interleaved in 10 slices; "
        "every timed get of the memcached rows is a tier hit (checked below). "
        "no cache = the same SQLite file read directly, for scale."
    )
    with workdir(args, "hivemem-bench-sec-") as tmp, started_memcached() as server:
        db = f"sqlite:///{tmp / 'sec.db'}?synchronous=normal"
        mc = f"{server.url}?pool_size=4"
        memories: dict[str, Memory] = {
            "trusted": hivemem.open_memory(
                db, cache=[f"{mc}&prefix=t:"], trust_remote_cache=True, **PLAIN
            ),
            "sealed": hivemem.open_memory(
                db, cache=[f"{mc}&prefix=s:"], cache_secret=SECRET, **PLAIN
            ),
            "no cache": hivemem.open_memory(db, cache=[], **PLAIN),
        }
        rows = []
        try:
            for memory in memories.values():
                await memory.open()
            for size, make, kind in (("~1 KB", entity, "e1k"), ("~100 KB", big_value, "e100k")):
                ids = [f"id{i:05d}" for i in range(plan.keys)]
                await memories["no cache"].put_many(kind, {i: make(n) for n, i in enumerate(ids)})
                for name in ("trusted", "sealed"):  # fill each tier
                    assert len(await memories[name].get_many(kind, ids)) == len(ids)
                before = {name: m.metrics() for name, m in memories.items()}

                stats = await time_interleaved(
                    {name: getter(m, kind, ids) for name, m in memories.items()},
                    plan.ops,
                    plan.warmup,
                )
                for name in ("trusted", "sealed"):
                    after = memories[name].metrics()
                    reads = after["reads"] - before[name]["reads"]
                    tier = after["tiers"]["memcached"]
                    hits = tier["hits"] - before[name]["tiers"]["memcached"]["hits"]
                    forged = tier["cache"]["forged"]
                    if reads or forged or hits != plan.ops + plan.warmup:
                        print(
                            f"  note: {name} {size}: {hits} tier hits, {reads} backend reads, "
                            f"{forged} forged"
                        )
                base = stats["trusted"]
                for name in ("trusted", "sealed", "no cache"):
                    st = stats[name]
                    rows.append(
                        [
                            f"{size}: {name}" + (" (baseline)" if name == "trusted" else ""),
                            fmt_num(st.ops_per_s),
                            fmt_num(st.p50_us, 1),
                            fmt_num(st.p99_us, 1),
                            ratio(st.p50_us, base.p50_us),
                            ratio(st.mean_us, base.mean_us),
                        ]
                    )
                summary[f"Memory.get memcached hit {size}, sealed / trusted p50"] = ratio(
                    stats["sealed"].p50_us, base.p50_us
                )
                summary[f"Memory.get memcached hit {size}, sealed / trusted mean"] = ratio(
                    stats["sealed"].mean_us, base.mean_us
                )
        finally:
            for memory in memories.values():
                await memory.close()
    print_table(
        ["Memory.get", "ops/s", "p50 µs", "p99 µs", "p50 x trusted", "mean x trusted"], rows
    )


# -- entry point ---------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> None:
    """Run the selected sections and print the summary of ratios."""
    plan = Plan.from_args(args)
    print(
        "versions: "
        + ", ".join(
            f"{d} {dist_version(d) or '-'}"
            for d in ("hivemem", "hivemem-memcached", "aiomcache", "hivemem-zstd", "hivemem-fernet")
        )
    )
    summary: dict[str, str] = {}
    if wants(args, "security", "check"):
        bench_check(plan, summary)
    if wants(args, "security", "seal"):
        bench_seal(plan, summary)
    if wants(args, "security", "get"):
        await bench_get(plan, args, summary)
    if summary:
        print_table(["summary", "value"], summary.items(), title="summary")


def main(args: argparse.Namespace | None = None) -> None:
    """Run the benchmark (``args`` from ``run.py``, or this script's command line)."""
    run_main(run, args)


if __name__ == "__main__":
    main()
