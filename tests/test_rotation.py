"""Key rotation leaves nothing unreadable or in the clear.

Values, conversation histories and tool-usage logs are written in plaintext,
then under Fernet key 1; ``hivemem rotate-keys`` encrypts the plaintext
(``--encrypt-plaintext``), then moves everything to key 2 while being killed
with SIGKILL mid-run and run again; key 1 is retired. Everything reads with
key 2 alone, and neither the plaintext marker nor any key-1 ciphertext is left
in the raw store (the SQLite file and its WAL; Redis' rewritten AOF).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import hivemem
from hivemem.pipeline import read_header
from hivemem.testing import require_module
from hivemem_redis.testing import RedisServer

fernet = require_module("hivemem_fernet")  # skips the module without it, fails under CI

NS = "rot"
RECORDS = 2500
ENTRIES = 400
MARKER = f"plaintext-marker-{uuid.uuid4().hex}"

WRITE = textwrap.dedent(
    """
    import asyncio, sys
    import hivemem

    async def main(n, entries, marker):
        async with hivemem.open_memory(cache=[]) as mem:
            await mem.put_many(
                "doc", {f"d{i:05d}": {"i": i, "text": marker + "x" * 150} for i in range(n)}
            )
            await mem.put("doc", "ttl", {"i": -1, "text": marker}, ttl=3600)
            await mem.replace_series(
                "conversation",
                [{"role": "user", "content": f"{marker} {i}"} for i in range(entries)],
            )
            seed = hivemem.SeedMemory(mem)
            for i in range(entries):
                await seed.save_tool_usage("search", {"q": marker, "i": i}, {"hits": i})

    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]))
    """
)


def _env(url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HIVEMEM_", "MEMORY_"))}
    env.update(HIVEMEM_URL=url, HIVEMEM_NAMESPACE=NS, HIVEMEM_CACHE="", **extra)
    return env


def _cli(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    exe = Path(sys.executable).with_name("hivemem")
    return subprocess.Popen(
        [str(exe), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


async def _raw_frames(url: str) -> list[bytes]:
    """Every stored frame of the namespace, read past the pipeline."""
    async with hivemem.open_memory(url, namespace=NS, cache=[]) as mem:
        backend = mem.backend
        frames = [rec.value for _, rec in await backend.list_records(NS, "doc")]
        for name in await backend.series_names(NS):
            frames += [e.value for e in await backend.read_series(NS, name)]
    return frames


def _payloads(frames: list[bytes]) -> list[bytes]:
    out = []
    for frame in frames:
        _, pos = read_header(frame)
        out.append(frame[pos:])
    return out


async def _count_under(url: str, key: str) -> int:
    """How many stored frames the Fernet key ``key`` alone decrypts."""
    async with hivemem.open_memory(
        url, namespace=NS, cache=[], encryptor="fernet", codec_options={"fernet": {"keys": key}}
    ) as mem:
        count = 0
        for frame in await _raw_frames(url):
            try:
                mem.pipeline.decode(frame)
                count += 1
            except hivemem.FrameError:
                pass
        return count


async def _read_everything(url: str, keys: str) -> dict[str, Any]:
    async with hivemem.open_memory(
        url, namespace=NS, cache=[], encryptor="fernet", codec_options={"fernet": {"keys": keys}}
    ) as mem:
        docs = await mem.list("doc")
        conversation = await hivemem.SeedMemory(mem).load_conversation_history()
        tools = (await hivemem.SeedMemory(mem).load_tool_usage("search"))["search"]
        ttl = await mem.backend.get(NS, "doc", "ttl")
        assert ttl is not None and ttl.expires_at is not None
        return {
            "docs": len(docs),
            "docs_ok": all(v["i"] == int(k[1:]) for k, v in docs.items() if k != "ttl"),
            "conversation": [m["content"] for m in conversation],
            "tools": tools,
            "ttl_left": ttl.expires_at - time.time(),
        }


def _rotate(env: dict[str, str], *extra: str) -> tuple[int, dict[str, Any], str]:
    proc = _cli("rotate-keys", "--json", "--batch", "100", *extra, env=env)
    out, err = proc.communicate(timeout=600)
    return proc.returncode, json.loads(out) if out.strip() else {}, err


def _rotate_with_kill(url: str, env: dict[str, str], new_key: str) -> int:
    """Start rotate-keys, SIGKILL it once some values moved to ``new_key``; return that count."""
    proc = _cli("rotate-keys", "--batch", "50", env=env)
    deadline = time.monotonic() + 300
    try:
        while asyncio.run(_count_under(url, new_key)) < 200:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "rotate-keys made no progress"
            time.sleep(0.05)  # polling the store: the condition is checked above
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    return asyncio.run(_count_under(url, new_key))


def _rotation_story(url: str) -> tuple[list[bytes], dict[str, Any]]:
    """Run the whole story on ``url``; return key-1 payloads and the final reads."""
    key1, key2 = fernet.generate_key(), fernet.generate_key()
    plain = _env(url)
    subprocess.run(
        [sys.executable, "-c", WRITE, str(RECORDS), str(ENTRIES), MARKER], env=plain, check=True
    )
    total = RECORDS + 1 + 2 * ENTRIES

    # encryption switched on: plaintext is refused, rotate-keys will not pretend it is done
    env1 = _env(url, HIVEMEM_ENCRYPTOR="fernet", HIVEMEM_FERNET_KEYS=key1)
    code, report, err = _rotate(env1)
    assert code == 1 and not report["done"], err
    assert report["remaining"] == total and report["failed"] == total
    assert "UnencryptedFrame" in report["failures"][0]
    assert "rotation is not done" in err
    # the documented migration: encrypt the old plaintext
    code, report, err = _rotate(env1, "--encrypt-plaintext")
    assert code == 0 and report["done"], err
    assert report["rewritten"] == RECORDS + 1
    assert report["series_rewritten"] == 2 * ENTRIES
    assert asyncio.run(_count_under(url, key1)) == total
    old_payloads = _payloads(asyncio.run(_raw_frames(url)))

    # rotate to key 2 (old key still readable), killed mid-run, then run again
    env2 = _env(url, HIVEMEM_ENCRYPTOR="fernet", HIVEMEM_FERNET_KEYS=f"{key2},{key1}")
    partial = _rotate_with_kill(url, env2, key2)
    assert 200 <= partial < total
    code, report, err = _rotate(env2)
    assert code == 0 and report["done"] and report["remaining"] == 0, err
    assert report["rewritten"] + report["series_rewritten"] == total - partial
    assert report["next_steps"], "rotate-keys prints what else may hold old values"
    assert asyncio.run(_count_under(url, key2)) == total

    # retire key 1: everything reads with key 2 alone
    final = asyncio.run(_read_everything(url, key2))
    assert final["docs"] == RECORDS + 1 and final["docs_ok"]
    assert final["conversation"] == [f"{MARKER} {i}" for i in range(ENTRIES)]
    assert [t["args"]["i"] for t in final["tools"]] == list(range(ENTRIES))
    assert 3000 < final["ttl_left"] <= 3600  # the TTL was kept
    return old_payloads, final


def _assert_absent(blob: bytes, old_payloads: list[bytes], where: str) -> None:
    assert MARKER.encode() not in blob, f"plaintext left in {where}"
    # a 32-byte slice from the middle of each key-1 token (past version, time and IV)
    leftovers = [p for p in old_payloads if p[40:72] in blob]
    assert not leftovers, f"{len(leftovers)} key-1 ciphertexts left in {where}"


def test_rotation_on_sqlite_leaves_nothing_behind(tmp_path: Path) -> None:
    db = tmp_path / "rot.db"
    old_payloads, _ = _rotation_story(f"sqlite:///{db}")
    files = [p for p in tmp_path.iterdir() if p.name.startswith("rot.db")]
    blob = b"".join(p.read_bytes() for p in files)
    _assert_absent(blob, old_payloads, ", ".join(p.name for p in files))


def test_rotation_on_redis_leaves_nothing_behind_after_aof_rewrite(tmp_path: Path) -> None:
    with RedisServer(appendonly=True, data_dir=tmp_path / "redis") as server:
        old_payloads, _ = _rotation_story(server.url)
        # the documented step: rewrite the append-only file
        server.command("BGREWRITEAOF")
        deadline = time.monotonic() + 60
        while b"aof_rewrite_in_progress:0" not in server.command("INFO", "persistence") or (
            b"aof_rewrite_scheduled:0" not in server.command("INFO", "persistence")
        ):
            assert time.monotonic() < deadline, "BGREWRITEAOF did not finish"
            time.sleep(0.05)  # polling the server's own progress flag
        files = [p for p in (tmp_path / "redis").rglob("*") if p.is_file()]
        blob = b"".join(p.read_bytes() for p in files)
        assert blob, "no AOF written?"
        _assert_absent(blob, old_payloads, "the Redis data directory")
