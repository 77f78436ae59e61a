"""Encryption end to end on real stores: no plaintext at rest, rotation survives kill -9."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import hivemem

MARKER = "PLAINTEXT-MARKER-7f3a"


def _scan(path: Path, needle: bytes) -> bool:
    return any(needle in p.read_bytes() for p in path.parent.glob(path.name + "*"))


def test_no_plaintext_in_the_sqlite_file(tmp_path, key1):
    db = tmp_path / "enc.db"
    url = f"sqlite:///{db}"

    async def main():
        async with hivemem.open_memory(
            url, encryptor="fernet", compressor="zstd", codec_options={"fernet": {"keys": key1}}
        ) as mem:
            await mem.put("user", "u1", {"note": MARKER, "pad": MARKER * 20})
            await mem.put_many("user", {f"u{i}": {"note": MARKER} for i in range(2, 50)})
            await mem.append("conversation", {"content": MARKER})
            assert (await mem.get("user", "u1", use_cache=False))["note"] == MARKER

    asyncio.run(main())
    assert not _scan(db, MARKER.encode())
    assert db.exists()

    async def plain():  # the same check catches plaintext when encryption is off
        async with hivemem.open_memory(url, namespace="clear") as mem:
            await mem.put("user", "u1", {"note": MARKER})

    asyncio.run(plain())
    assert _scan(db, MARKER.encode())


def test_no_plaintext_in_redis(redis_server, key1, tmp_path):
    from hivemem_redis.testing import redis_command

    async def main():
        async with hivemem.open_memory(
            redis_server.url,
            namespace="enc-redis",
            encryptor="fernet",
            codec_options={"fernet": {"keys": key1}},
            backend_options={"prefix": "fernettest:"},
        ) as mem:
            await mem.put("user", "u1", {"note": MARKER})
            await mem.put_many("user", {f"u{i}": {"note": MARKER} for i in range(2, 20)})
            await mem.append("conversation", {"content": MARKER})
            assert (await mem.get("user", "u1", use_cache=False))["note"] == MARKER

    asyncio.run(main())
    host, port = "127.0.0.1", redis_server.port
    keys = redis_command(host, port, "KEYS", "fernettest:*")  # test-only inspection
    assert keys, "the test wrote nothing?"
    for key in keys:
        dump = redis_command(host, port, "DUMP", key)
        assert MARKER.encode() not in dump, key


ROTATE = textwrap.dedent(
    """
    import asyncio, sys
    import hivemem

    async def main(url, n):
        async with hivemem.open_memory(url, namespace="rot", encryptor="fernet", cache=[]) as mem:
            await mem.put_many("doc", {f"d{i:05d}": {"i": i, "text": "x" * 200} for i in range(n)})
            await mem.put("doc", "ttl", {"i": -1}, ttl=3600)

    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    """
)


def _hivemem(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    exe = Path(sys.executable).with_name("hivemem")
    return subprocess.Popen(
        [str(exe), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_rotate_keys_survives_kill_9_and_finishes_on_rerun(tmp_path, key1, key2):
    url = f"sqlite:///{tmp_path}/rot.db"
    n = 3000
    env = {**os.environ, "HIVEMEM_FERNET_KEYS": key1, "HIVEMEM_ENCRYPTOR": "fernet"}
    subprocess.run([sys.executable, "-c", ROTATE, url, str(n)], env=env, check=True)
    rotated_env = {**env, "HIVEMEM_FERNET_KEYS": f"{key2},{key1}"}  # new primary, old readable

    proc = _hivemem("rotate-keys", "--url", url, "-n", "rot", "--batch", "50", env=rotated_env)
    deadline = time.monotonic() + 120

    # let it rewrite some batches, then kill it hard mid-run
    async def rewritten_count() -> int:
        async with hivemem.open_memory(
            url,
            namespace="rot",
            encryptor="fernet",
            cache=[],
            codec_options={"fernet": {"keys": key2}},
        ) as only_new:
            count = 0
            for _id, rec in await only_new.backend.list_records("rot", "doc"):
                try:
                    only_new.pipeline.decode(rec.value)
                    count += 1
                except hivemem.DecryptionError:
                    pass
            return count

    while asyncio.run(rewritten_count()) < 200:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    partial = asyncio.run(rewritten_count())
    assert 200 <= partial < n + 1

    async def check_all_readable(keys: str) -> dict:
        async with hivemem.open_memory(
            url,
            namespace="rot",
            encryptor="fernet",
            cache=[],
            codec_options={"fernet": {"keys": keys}},
        ) as mem:
            got = await mem.list("doc")
            rec = await mem.backend.get("rot", "doc", "ttl")
            return {
                "n": len(got),
                "ok": all(v["i"] == int(k[1:]) for k, v in got.items() if k != "ttl"),
                "ttl_left": rec.expires_at - time.time(),
            }

    state = asyncio.run(check_all_readable(f"{key2},{key1}"))
    assert state["n"] == n + 1 and state["ok"]  # nothing unreadable with the configured keys

    rerun = _hivemem("rotate-keys", "--url", url, "-n", "rot", "--json", env=rotated_env)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    report = json.loads(out)
    assert report["rewritten"] == n + 1 - partial  # it finished exactly what was left
    assert report["skipped"] == partial
    assert asyncio.run(rewritten_count()) == n + 1  # every record now under the new key
    final = asyncio.run(check_all_readable(key2))  # the old key can be retired
    assert final["n"] == n + 1 and final["ok"]
    assert 3000 < final["ttl_left"] <= 3600  # the TTL was kept, not reset or dropped
