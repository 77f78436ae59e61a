"""Run the hivemem benchmarks (``make bench``).

Usage::

    .venv/bin/python benchmarks/run.py            # full run (10k, 100k and 1M records)
    .venv/bin/python benchmarks/run.py --quick    # small sizes, under a minute
    .venv/bin/python benchmarks/run.py --only core.scaling --sizes 10000,1000000
    .venv/bin/python benchmarks/run.py --only security  # allow-list check and cache MACs

Every ``benchmarks/bench_*.py`` module with a ``main(args)`` function is a
benchmark (``bench_core``, ``bench_memcached``, ``bench_redis``,
``bench_security``, ...); ``bench_core`` runs first, the others in name
order. A module is skipped with one line saying why when:

* importing it fails with ``ImportError`` (its plugin or client library is
  not installed),
* it names modules in ``REQUIRES`` that cannot be imported, or
* its ``main`` raises :class:`common.Skip` (for example: no server binary).

``main`` may be a plain function or a coroutine function. It receives the
parsed arguments (``quick``, ``only``, ``dir``, ``sizes``); a ``main()``
without parameters is called with an empty command line (its own defaults).
Machine and version information is printed once, at the top.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from common import (  # noqa: E402 - the benchmarks directory is not a package
    Skip,
    build_parser,
    has_module,
    load_average,
    print_machine_info,
    wants,
)

FIRST = "bench_core"


def discover() -> list[str]:
    """Module names of ``benchmarks/bench_*.py``, ``bench_core`` first."""
    names = sorted(p.stem for p in HERE.glob("bench_*.py"))
    return sorted(names, key=lambda n: (n != FIRST, n))


def short(name: str) -> str:
    """``bench_redis`` -> ``redis``."""
    return name.removeprefix("bench_")


def load(name: str) -> tuple[ModuleType | None, str | None]:
    """Import a benchmark module: ``(module, None)`` or ``(None, reason to skip)``."""
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        missing = getattr(exc, "name", None)
        what = f"module {missing!r}" if missing else str(exc)
        return None, f"cannot import {what} (install its plugin to include it)"
    main = getattr(module, "main", None)
    if not callable(main):
        return None, "has no main(args) function"
    required = getattr(module, "REQUIRES", ())
    absent = [m for m in required if not has_module(m)]
    if absent:
        return None, f"needs {', '.join(absent)} (not installed)"
    return module, None


def run_one(module: ModuleType, args: argparse.Namespace) -> None:
    """Call ``module.main(args)``; run it on a fresh event loop when it is async.

    A ``main()`` that takes no parameter parses its own command line; it is
    called with an empty one (its defaults), since the harness's options are
    not its own.
    """
    main = module.main
    try:
        takes_args = bool(inspect.signature(main).parameters)
    except (TypeError, ValueError):
        takes_args = True
    if takes_args:
        result = main(args)
    else:
        saved = sys.argv
        sys.argv = [str(HERE / f"{module.__name__}.py")]
        try:
            result = main()
        finally:
            sys.argv = saved
    if inspect.isawaitable(result):
        asyncio.run(result)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    """Discover, filter and run the benchmark modules; 0 unless one crashed."""
    parser = build_parser()
    args = parser.parse_args(argv)
    names = discover()
    known = {short(n) for n in names}
    if args.only:
        unknown = sorted({o.removeprefix("bench_").partition(".")[0] for o in args.only} - known)
        if unknown:
            parser.error(
                f"--only {', '.join(unknown)}: no such benchmark; available: "
                f"{', '.join(sorted(known))}"
            )
    print("hivemem benchmarks" + (" (--quick)" if args.quick else ""))
    print_machine_info()
    failed = []
    started = time.perf_counter()
    for name in names:
        if not wants(args, short(name)):
            continue
        module, reason = load(name)
        if module is None:
            print(f"\n[{short(name)}] skipped: {reason}")
            continue
        print(f"\n[{short(name)}] running")
        t0 = time.perf_counter()
        try:
            run_one(module, args)
        except Skip as exc:
            print(f"[{short(name)}] skipped: {exc}")
            continue
        except KeyboardInterrupt:
            print(f"\n[{short(name)}] interrupted")
            return 130
        except Exception:
            traceback.print_exc()
            print(f"[{short(name)}] FAILED")
            failed.append(short(name))
            continue
        print(f"\n[{short(name)}] done in {time.perf_counter() - t0:.1f} s")
    print(f"\nall benchmarks done in {time.perf_counter() - started:.1f} s")
    print(f"load average at the end: {load_average()}")
    if failed:
        print(f"failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
