"""Child-process worker for the multi-process tests (run as ``python _worker.py MODE ...``).

Modes:

* ``incr URL PREFIX N AMOUNT`` -- N increments of one counter field.
* ``cas URL PREFIX N`` -- N successful compare-and-set increments of a JSON number.
* ``listen URL PREFIX NS`` -- subscribe to invalidations of NS; print ``ready``, then
  one JSON line ``[kind, id, unix_time]`` per callback until stdin closes.
* ``read URL PREFIX NS BACKOFF`` -- a ``Memory`` with a local cache reading ``doc/K``
  in a loop (yielding to the event loop between reads); print ``ready``, then
  ``{"v": value, "t": time.monotonic()}`` each time the value it gets changes;
  on reading ``"stop"`` print ``{"stats": ...}`` and exit.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import hivemem
from hivemem.errors import ConflictError
from hivemem_redis.backend import RedisBackend


async def incr(url: str, prefix: str, n: int, amount: float) -> None:
    backend = RedisBackend(url, prefix=prefix)
    await backend.open()
    for _ in range(n):
        await backend.incr("ns", "q", "state", "value", amount)
    await backend.close()


async def cas(url: str, prefix: str, n: int) -> None:
    backend = RedisBackend(url, prefix=prefix)
    await backend.open()
    done = conflicts = 0
    while done < n:
        rec = await backend.get("ns", "policy", "p")
        current, version = (json.loads(rec.value), rec.version) if rec else (0, 0)
        try:
            await backend.put(
                "ns", "policy", "p", json.dumps(current + 1).encode(), expected_version=version
            )
            done += 1
        except ConflictError:
            conflicts += 1
    print(conflicts, flush=True)
    await backend.close()


async def listen(url: str, prefix: str, ns: str) -> None:
    backend = RedisBackend(url, prefix=prefix)
    await backend.open()

    def callback(kind: str, id: str | None) -> None:
        print(json.dumps([kind, id, time.time()]), flush=True)

    unsubscribe = await backend.subscribe(ns, callback)
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # parent closes stdin to stop us
    await unsubscribe()
    await backend.close()


async def read(url: str, prefix: str, ns: str, backoff: float) -> None:
    options = {"prefix": prefix, "retry_backoff": backoff, "retry_backoff_cap": backoff}
    async with hivemem.open_memory(
        url, namespace=ns, cache=["local://"], backend_options=options
    ) as mem:
        last: object = object()
        print("ready", flush=True)
        while True:
            value = await mem.get("doc", "K")
            if value != last:
                print(json.dumps({"v": value, "t": time.monotonic()}), flush=True)
                last = value
            if value == "stop":
                break
            await asyncio.sleep(0)  # an agent awaits other work between reads
        local = mem.metrics()["tiers"]["local"]
        stats = {"hits": local["hits"], "misses": local["misses"], **mem.backend.invalidation_stats}
        print(json.dumps({"stats": stats}), flush=True)


def main(argv: list[str]) -> None:
    mode, url, prefix, *rest = argv
    if mode == "incr":
        asyncio.run(incr(url, prefix, int(rest[0]), float(rest[1])))
    elif mode == "cas":
        asyncio.run(cas(url, prefix, int(rest[0])))
    elif mode == "listen":
        asyncio.run(listen(url, prefix, rest[0]))
    elif mode == "read":
        asyncio.run(read(url, prefix, rest[0], float(rest[1])))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
