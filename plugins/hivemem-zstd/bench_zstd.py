"""Measure the zstd codec on realistic agent-memory payloads.

Payloads (deterministic, seeded):

* ``entity``  -- ~1 KB agent/user entity JSON (profile, preferences, tags, summary text)
* ``conversation`` -- ~20 KB conversation history JSON (messages, tool calls, timestamps)
* ``qrow`` -- ~100 B Q-table rows (state, action, q, visits)

For each payload and level (1, 3, 9, 19), without and with a dictionary
trained on 1000 samples of that payload, it reports the compression ratio
(raw bytes / stored bytes, values the codec declines counted at their raw
size) and the best-of-runs mean microseconds per ``encode`` and ``decode``, on a
held-out set (never the training samples). The builtin ``zlib`` at level 6 is
the reference row. Run::

    .venv/bin/python plugins/hivemem-zstd/bench_zstd.py [--json] [--quick]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from collections.abc import Callable
from typing import Any

import zstandard
from hivemem.builtin.codecs import ZlibCompressor
from hivemem_zstd import train_dictionary
from hivemem_zstd.codec import ZstdCodec
from hivemem_zstd.dictionaries import dictionary_id

WORDS = (
    "the of and to in is you that it he was for on are as with his they at be this have from "
    "or one had by word but not what all were we when your can said there use an each which "
    "she do how their if will up other about out many then them these so some her would make "
    "like him into time has look two more write go see number no way could people my than "
    "first water been call who oil its now find long down day did get come made may part "
    "agent memory task plan tool search result user assistant reward policy state action "
    "update model context summary error retry file query database cache request response "
    "order customer ticket refund flight hotel booking weather report code test deploy "
    "schedule meeting email calendar note remember prefer budget price product review"
).split()
_WEIGHTS = [1 / (rank + 1) ** 1.07 for rank in range(len(WORDS))]


def _text(rnd: random.Random, n_words: int) -> str:
    words = rnd.choices(WORDS, weights=_WEIGHTS, k=n_words)
    out, sentence = [], []
    for word in words:
        sentence.append(word)
        if len(sentence) > rnd.randint(6, 18):
            out.append(" ".join(sentence).capitalize() + rnd.choice([".", ".", "?", "!"]))
            sentence = []
    if sentence:
        out.append(" ".join(sentence).capitalize() + ".")
    return " ".join(out)


def _ts(rnd: random.Random) -> str:
    return (
        f"2025-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}T"
        f"{rnd.randint(0, 23):02d}:{rnd.randint(0, 59):02d}:{rnd.randint(0, 59):02d}."
        f"{rnd.randint(0, 999999):06d}+00:00"
    )


def entity(rnd: random.Random) -> bytes:
    """~1 KB entity."""
    uid = rnd.randint(1, 10**6)
    value = {
        "id": f"user{uid}",
        "type": rnd.choice(["user", "agent", "organization"]),
        "name": _text(rnd, 2).rstrip("."),
        "created_at": _ts(rnd),
        "updated_at": _ts(rnd),
        "attributes": {
            "locale": rnd.choice(["en-US", "en-GB", "de-DE", "fr-FR", "ja-JP"]),
            "timezone": rnd.choice(["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo"]),
            "preferences": {
                "tone": rnd.choice(["formal", "casual", "brief"]),
                "notifications": rnd.random() < 0.5,
                "max_budget": round(rnd.uniform(10, 5000), 2),
            },
            "tags": rnd.sample(WORDS[60:], rnd.randint(2, 6)),
        },
        "summary": _text(rnd, rnd.randint(90, 130)),
        "stats": {
            "sessions": rnd.randint(0, 500),
            "messages": rnd.randint(0, 20000),
            "satisfaction": round(rnd.random(), 4),
        },
        "linked": [f"conv_{rnd.randint(1, 10**6)}" for _ in range(rnd.randint(1, 4))],
    }
    return json.dumps(value, separators=(",", ":")).encode()


def conversation(rnd: random.Random) -> bytes:
    """~20 KB conversation history."""
    messages: list[dict[str, Any]] = []
    size = 0
    while size < 19_000:
        role = rnd.choice(["user", "assistant", "assistant", "tool"])
        msg: dict[str, Any] = {
            "role": role,
            "content": _text(rnd, rnd.randint(10, 110)),
            "ts": _ts(rnd),
        }
        if role == "assistant" and rnd.random() < 0.3:
            msg["tool_calls"] = [
                {
                    "id": f"call_{rnd.getrandbits(48):012x}",
                    "name": rnd.choice(["search", "get_weather", "book_flight", "query_db"]),
                    "arguments": {"query": _text(rnd, 5), "limit": rnd.randint(1, 20)},
                }
            ]
        messages.append(msg)
        size += len(json.dumps(msg))
    value = {
        "session_id": f"sess_{rnd.getrandbits(64):016x}",
        "agent_id": f"agent_{rnd.randint(1, 50)}",
        "messages": messages,
    }
    return json.dumps(value, separators=(",", ":")).encode()


def qrow(rnd: random.Random) -> bytes:
    """~100 B Q-table row."""
    value = {
        "state": f"s:{rnd.randint(0, 400)}:{rnd.randint(0, 400)}:{rnd.choice('NESW')}",
        "action": rnd.choice(["move_left", "move_right", "pick_up", "drop", "wait", "search"]),
        "q": round(rnd.uniform(-5, 5), 6),
        "visits": rnd.randint(0, 5000),
        "agent": f"agent_{rnd.randint(1, 9)}",
    }
    return json.dumps(value, separators=(",", ":")).encode()


PAYLOADS: dict[str, tuple[Callable[[random.Random], bytes], int]] = {
    # name: (generator, held-out test values)
    "entity": (entity, 500),
    "conversation": (conversation, 60),
    "qrow": (qrow, 3000),
}
LEVELS = (1, 3, 9, 19)
TRAIN_SAMPLES = 1000
DICT_SIZE = 16 * 1024


def _time_per_op(fn: Callable[[bytes], Any], inputs: list[bytes], runs: int) -> float:
    """Best over ``runs`` of the mean microseconds per call across ``inputs``.

    The minimum, not the mean: on a shared machine the noise only ever adds time.
    """
    results = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        for item in inputs:
            fn(item)
        results.append((time.perf_counter_ns() - start) / len(inputs) / 1000)
    return min(results)


def measure(codec: ZstdCodec | ZlibCompressor, values: list[bytes], runs: int) -> dict[str, float]:
    """Ratio and µs per encode/decode of ``codec`` over ``values``."""
    encoded = [codec.encode(v) for v in values]
    stored = sum(len(e) if e is not None else len(v) for e, v in zip(encoded, values, strict=True))
    compressed = [e for e in encoded if e is not None]
    for e, v in zip(encoded, values, strict=True):
        if e is not None and codec.decode(e) != v:
            raise AssertionError("round trip failed")
    return {
        "ratio": sum(len(v) for v in values) / stored,
        "encode_us": _time_per_op(codec.encode, values, runs),
        "decode_us": _time_per_op(codec.decode, compressed, runs) if compressed else 0.0,
    }


def run(quick: bool = False) -> list[dict[str, Any]]:
    """All measurements as rows of dicts."""
    rows: list[dict[str, Any]] = []
    runs = 3 if quick else 7
    for name, (make, n_test) in PAYLOADS.items():
        rnd = random.Random(f"hivemem-bench-{name}")
        train = [make(rnd) for _ in range(TRAIN_SAMPLES)]
        test = [make(rnd) for _ in range(n_test // (4 if quick else 1))]
        trained = train_dictionary(train, DICT_SIZE)
        dict_id = dictionary_id(trained)
        avg = sum(len(v) for v in test) / len(test)
        for level in LEVELS:
            for use_dict in (False, True):
                options: dict[str, Any] = {"level": level, "min_size": 0}
                if use_dict:
                    options.update(dictionaries={dict_id: trained}, dictionary=dict_id)
                result = measure(ZstdCodec(**options), test, runs)
                rows.append(
                    {
                        "payload": name,
                        "avg_bytes": round(avg),
                        "codec": "zstd",
                        "level": level,
                        "dictionary": use_dict,
                        **result,
                    }
                )
        result = measure(ZlibCompressor(level=6, min_size=0), test, runs)
        rows.append(
            {
                "payload": name,
                "avg_bytes": round(avg),
                "codec": "zlib",
                "level": 6,
                "dictionary": False,
                **result,
            }
        )
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table."""
    lines = [
        "| payload (avg size) | codec | level | dictionary | ratio | encode µs | decode µs |",
        "|---|---|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['payload']} ({r['avg_bytes']} B) | {r['codec']} | {r['level']} | "
            f"{'16 KiB, 1000 samples' if r['dictionary'] else 'none'} | {r['ratio']:.2f} | "
            f"{r['encode_us']:.1f} | {r['decode_us']:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print JSON rows")
    parser.add_argument("--quick", action="store_true", help="fewer values and runs")
    args = parser.parse_args()
    rows = run(quick=args.quick)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(
        f"zstandard {zstandard.__version__} (libzstd {'.'.join(map(str, zstandard.ZSTD_VERSION))})"
        f", Python {platform.python_version()}, {platform.machine()} {platform.processor() or ''}"
    )
    print(markdown(rows))


if __name__ == "__main__":
    main()
