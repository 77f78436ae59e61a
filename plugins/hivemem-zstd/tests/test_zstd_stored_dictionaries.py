"""Dictionaries stored in the memory itself.

``hivemem zstd train`` stores the dictionary as codec resource ``zstd-dict``;
writers in other processes turn it on with ``HIVEMEM_COMPRESSOR="zstd?dictionary=ID"``
and readers -- even ones with no compressor configured -- load it from the
store the first time a frame needs it. Every process here is a real one over a
real SQLite file.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zstandard
from hivemem import open_memory
from hivemem.errors import ResourceMissing
from hivemem.memory import RESOURCE_NS
from hivemem.pipeline import Pipeline, read_header
from hivemem.plugins import Plugins
from hivemem.testing import require_module
from hivemem_zstd import train_dictionary
from hivemem_zstd.codec import RESOURCE_KIND, ZstdCodec
from hivemem_zstd.dictionaries import dictionary_id

HIVEMEM = Path(sys.executable).with_name("hivemem")
NS = "rl"

#: a writer process: puts the ``{id: row}`` JSON on stdin, configured by the environment only
WRITER = """
import asyncio, json, sys
import hivemem

async def main():
    rows = json.load(sys.stdin)
    async with hivemem.open_memory() as memory:
        await memory.put_many("qrow", rows)
        print(json.dumps(memory.pipeline.names))

asyncio.run(main())
"""

#: a reader process: prints every qrow value and the dictionaries its zstd codec ended up with
READER = """
import asyncio, json
import hivemem

async def main():
    async with hivemem.open_memory(cache=[]) as memory:
        values = await memory.list("qrow")
        zstd = memory.pipeline.codec("compressor", "zstd")
        print(json.dumps({
            "compressor": memory.pipeline.compressor_name,
            "values": values,
            "loaded": zstd.dictionary_ids,
        }))

asyncio.run(main())
"""


def _env(url: str, compressor: str) -> dict[str, str]:
    """A clean environment selecting ``url``/``rl`` and ``compressor`` (nothing inherited)."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("HIVEMEM_", "MEMORY_", "MONGODB_"))
    }
    env.update(HIVEMEM_URL=url, HIVEMEM_NAMESPACE=NS, HIVEMEM_COMPRESSOR=compressor)
    env["HIVEMEM_READ_CODECS"] = "zstd"  # every reader reads the zstd frames others wrote
    return env


def _run(args: list[str], env: dict[str, str], stdin: str | None = None) -> str:
    result = subprocess.run(
        args, env=env, input=stdin, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def _cli(url: str, compressor: str, *args: str) -> str:
    return _run([str(HIVEMEM), *args], _env(url, compressor))


def _write(url: str, compressor: str, rows: dict[str, Any]) -> dict[str, str]:
    out = _run([sys.executable, "-c", WRITER], _env(url, compressor), json.dumps(rows))
    names: dict[str, str] = json.loads(out)
    return names


def _read(url: str, compressor: str) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(_run([sys.executable, "-c", READER], _env(url, compressor)))
    return report


def _rows(make_rows: Callable[..., list[bytes]], prefix: str, n: int, seed: int) -> dict[str, Any]:
    return {f"{prefix}{i:04d}": json.loads(row) for i, row in enumerate(make_rows(n, seed=seed))}


async def _frames(url: str, prefix: str) -> dict[str, bytes]:
    async with open_memory(url, namespace=NS) as memory:
        rows = await memory.backend.list_records(NS, "qrow", prefix)
        return {id: record.value for id, record in rows}


async def _stored_dictionary(url: str, dict_id: int) -> bytes | None:
    async with open_memory(url, namespace=NS) as memory:
        return await memory.get_resource(RESOURCE_KIND, str(dict_id))


def _frame_dict_ids(frames: dict[str, bytes]) -> set[int]:
    """The zstd dictionary ids the stored frames' payloads were compressed with."""
    ids = set()
    for frame in frames.values():
        stages, pos = read_header(frame)
        assert stages == [("serializer", "json"), ("compressor", "zstd")]
        ids.add(zstandard.get_frame_parameters(frame[pos:]).dict_id)
    return ids


@pytest.fixture
def store(tmp_path: Path, make_rows: Callable[..., list[bytes]]) -> str:
    """A SQLite store with 300 Q-table rows (~90 B each) of kind ``qrow``, uncompressed."""
    url = f"sqlite:///{tmp_path / 'agent.db'}"

    async def fill() -> None:
        async with open_memory(url, namespace=NS) as memory:
            await memory.put_many("qrow", _rows(make_rows, "s", 300, seed=3))

    asyncio.run(fill())
    return url


def test_stored_dictionaries_across_processes(
    store: str,
    tmp_path: Path,
    make_rows: Callable[..., list[bytes]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = _rows(make_rows, "s", 300, seed=3)
    first_rows = _rows(make_rows, "w1-", 200, seed=11)
    second_rows = _rows(make_rows, "w2-", 200, seed=12)

    # 1. train: the dictionary is stored in the memory, no file is needed
    report = json.loads(
        _cli(
            store,
            "none",
            "--url",
            store,
            "-n",
            NS,
            "--json",
            "zstd",
            "train",
            "--kind",
            "qrow",
            "--samples",
            "300",
            "--size",
            "4096",
        )
    )
    first = report["dictionary_id"]
    assert report["samples"] == 300 and report["stored"] is True and report["out"] is None
    assert report["compressor"] == f"zstd?dictionary={first}"
    assert report["setting"] == f'HIVEMEM_COMPRESSOR="zstd?dictionary={first}"'
    first_dict = asyncio.run(_stored_dictionary(store, first))
    assert first_dict is not None and dictionary_id(first_dict) == first
    assert len(first_dict) == report["dictionary_bytes"]
    assert not list(tmp_path.glob("*.zdict"))

    # 2. a second process writes with it, configured by the printed setting only
    names = _write(store, report["compressor"], first_rows)
    assert names["compressor"] == "zstd"
    assert _frame_dict_ids(asyncio.run(_frames(store, "w1-"))) == {first}

    # 3. a third process with no compressor at all reads them, loading the dictionary on demand
    seen = _read(store, "none")
    assert seen["compressor"] == "none"
    assert seen["values"] == {**base, **first_rows}
    assert seen["loaded"] == [first]

    # 4. a second dictionary, trained (text output) on values that include dictionary-1 frames
    text = _cli(
        store,
        "none",
        "--url",
        store,
        "-n",
        NS,
        "zstd",
        "train",
        "--kind",
        "qrow",
        "--samples",
        "500",
        "--size",
        "2048",
    )
    match = re.search(r'HIVEMEM_COMPRESSOR="zstd\?dictionary=(\d+)"', text)
    assert match is not None, text
    second = int(match.group(1))
    assert second != first
    assert f"trained dictionary {second} " in text and "on 500 values of 'qrow'" in text
    assert f"stored in the memory as zstd-dict {second}" in text

    # 5. writers switch to it; values written with the first dictionary keep their frames
    _write(store, f"zstd?dictionary={second}", second_rows)
    frames = asyncio.run(_frames(store, ""))
    assert _frame_dict_ids({k: v for k, v in frames.items() if k.startswith("w2-")}) == {second}
    assert _frame_dict_ids({k: v for k, v in frames.items() if k.startswith("w1-")}) == {first}

    # 6. everything reads back, with no compressor and with the new writer's configuration
    everything = {**base, **first_rows, **second_rows}
    seen = _read(store, "none")
    assert seen["values"] == everything
    assert seen["loaded"] == sorted([first, second])
    seen = _read(store, f"zstd?dictionary={second}")
    assert seen["values"] == everything
    assert seen["loaded"] == sorted([first, second])

    # 7. both dictionaries are listed, the one in use for writing marked
    listed = json.loads(_cli(store, f"zstd?dictionary={second}", "--json", "zstd", "dictionaries"))
    second_dict = asyncio.run(_stored_dictionary(store, second))
    assert second_dict is not None
    assert listed == sorted(
        [
            {"id": first, "bytes": len(first_dict), "writing": False},
            {"id": second, "bytes": len(second_dict), "writing": True},
        ],
        key=lambda row: row["id"],
    )
    text = _cli(store, f"zstd?dictionary={second}", "zstd", "dictionaries")
    assert f"{second}  {len(second_dict):>7} bytes  (new values use it)" in text

    # measured: held-out rows (not trained on), with vs without the stored dictionary
    serialize = Pipeline("json").serializer.dumps
    held_out = [serialize(row) for row in first_rows.values()]
    raw = sum(len(row) for row in held_out)
    plain = ZstdCodec()
    tuned = ZstdCodec(dictionaries={first: first_dict}, dictionary=first)
    plain_payload = sum(len(plain.encode(row) or row) for row in held_out)
    tuned_payload = sum(len(tuned.encode(row) or row) for row in held_out)
    plain_pipe = Pipeline("json", "zstd")
    plain_frames = sum(len(plain_pipe.encode(row)) for row in first_rows.values())
    bare_frames = sum(len(Pipeline("json").encode(row)) for row in first_rows.values())
    stored_frames = sum(len(v) for k, v in frames.items() if k.startswith("w1-"))
    with capsys.disabled():
        print(
            f"\n[hivemem-zstd] {len(held_out)} held-out Q-table rows, "
            f"avg {raw / len(held_out):.0f} B serialized, dictionary {first} "
            f"({len(first_dict)} B, trained on 300 rows):\n"
            f"  payload ratio: {raw / plain_payload:.2f}x without, "
            f"{raw / tuned_payload:.2f}x with the stored dictionary\n"
            f"  stored record bytes: {bare_frames} uncompressed, {plain_frames} zstd, "
            f"{stored_frames} zstd+dictionary ({bare_frames / stored_frames:.2f}x)"
        )
    assert raw / tuned_payload > 1.5 * (raw / plain_payload)
    assert stored_frames < plain_frames


def test_missing_stored_dictionary_names_the_record_and_the_dictionary(
    store: str, make_rows: Callable[..., list[bytes]]
) -> None:
    samples = make_rows(300, seed=3)
    trained = train_dictionary(samples, 2048)
    dict_id = dictionary_id(trained)
    row = json.loads(make_rows(1, seed=99)[0])

    async def main() -> None:
        async with open_memory(store, namespace=NS) as admin:
            await admin.put_resource(RESOURCE_KIND, str(dict_id), trained)
        async with open_memory(store, namespace=NS, compressor=f"zstd?dictionary={dict_id}") as m:
            await m.put("qrow", "x", row)
        async with open_memory(store, namespace=NS) as admin:
            assert await admin.backend.delete(RESOURCE_NS, RESOURCE_KIND, str(dict_id))
        async with open_memory(store, namespace=NS, cache=[], read_codecs=["zstd"]) as reader:
            with pytest.raises(ResourceMissing, match=str(dict_id)) as info:
                await reader.get("qrow", "x")
            error = info.value
            assert error.key == "qrow/x"
            assert (error.resource_kind, error.resource_id) == (RESOURCE_KIND, str(dict_id))
            assert error.stage == ("compressor", "zstd")
            assert await reader.get("qrow", "s0000") is not None  # other records still read
        writer = open_memory(store, namespace=NS, compressor=f"zstd?dictionary={dict_id}")
        with pytest.raises(ResourceMissing, match=str(dict_id)):
            await writer.open()

    asyncio.run(main())
    # and on the command line: one line naming the dictionary, no traceback
    result = subprocess.run(
        [str(HIVEMEM), "get", "qrow", "x"],
        env=_env(store, "none"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert f"zstd-dict '{dict_id}'" in result.stderr and "Traceback" not in result.stderr


def test_train_also_writes_a_file_and_refuses_to_store_from_encrypted_values(
    store: str, tmp_path: Path, make_rows: Callable[..., list[bytes]]
) -> None:
    out = tmp_path / "dicts" / "qrow.zdict"
    report = json.loads(
        _cli(store, "none", "--json", "zstd", "train", "--kind", "qrow", "--out", str(out))
    )
    assert report["stored"] is True and report["out"] == str(out)
    assert out.read_bytes() == asyncio.run(_stored_dictionary(store, report["dictionary_id"]))
    # file-only dictionaries still work through dict_dir
    report = json.loads(
        _cli(
            store,
            "none",
            "--json",
            "zstd",
            "train",
            "--kind",
            "qrow",
            "--size",
            "1024",
            "--no-store",
            "--out",
            str(tmp_path / "only-file" / "q.zdict"),
        )
    )
    assert report["stored"] is False
    assert asyncio.run(_stored_dictionary(store, report["dictionary_id"])) is None
    assert report["compressor"].startswith(f"zstd?dict_dir={tmp_path / 'only-file'}&dictionary=")
    row = json.loads(make_rows(1, seed=5)[0])

    async def roundtrip() -> None:
        async with open_memory(store, namespace=NS, compressor=report["compressor"]) as memory:
            await memory.put("qfile", "f", row)
            assert await memory.get("qfile", "f") == row

    asyncio.run(roundtrip())

    require_module("hivemem_fernet")  # skipped without it, failed under CI
    from cryptography.fernet import Fernet

    env = _env(store, "none")
    env.update(HIVEMEM_ENCRYPTOR="fernet", HIVEMEM_FERNET_KEYS=Fernet.generate_key().decode())
    _run([sys.executable, "-c", WRITER], env, json.dumps(_rows(make_rows, "e", 50, seed=8)))
    result = subprocess.run(
        [str(HIVEMEM), "zstd", "train", "--kind", "qrow", "--samples", "400"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "encrypted" in result.stderr and "--no-store" in result.stderr
    out = tmp_path / "secret" / "q.zdict"
    _run(
        [str(HIVEMEM), "zstd", "train", "--kind", "qrow", "--no-store", "--out", str(out)],
        env,
    )
    assert dictionary_id(out.read_bytes()) > 0


def test_add_resource_registers_a_dictionary(make_rows: Callable[..., list[bytes]]) -> None:
    rows = make_rows(400, seed=4)
    trained = train_dictionary(rows, 2048)
    other = train_dictionary(make_rows(400, seed=6), 1024)
    dict_id, other_id = dictionary_id(trained), dictionary_id(other)

    writer = ZstdCodec(dictionary=dict_id, min_size=0)
    assert writer.resources_needed() == [("zstd-dict", str(dict_id))]
    with pytest.raises(ResourceMissing, match=str(dict_id)):
        writer.encode(rows[0])
    writer.add_resource("zstd-dict", str(dict_id), trained)
    writer.add_resource("zstd-dict", str(dict_id), bytearray(trained))  # same again: no-op
    assert writer.resources_needed() == []
    payload = writer.encode(rows[0])
    assert payload is not None and zstandard.get_frame_parameters(payload).dict_id == dict_id

    reader = ZstdCodec()
    assert reader.resources_needed() == []
    with pytest.raises(ResourceMissing) as info:
        reader.decode(payload)
    assert (info.value.resource_kind, info.value.resource_id) == ("zstd-dict", str(dict_id))
    reader.add_resource(info.value.resource_kind, info.value.resource_id, trained)
    assert reader.decode(payload) == rows[0]
    assert reader.dictionary_ids == [dict_id]
    assert ZstdCodec(dictionaries={dict_id: trained}, dictionary=dict_id).resources_needed() == []

    with pytest.raises(ValueError, match="kind 'zstd-dict'"):
        reader.add_resource("fernet-key", str(dict_id), trained)
    with pytest.raises(ValueError, match="decimal"):
        reader.add_resource("zstd-dict", hex(other_id), other)
    with pytest.raises(ValueError, match=f"holds dictionary id {other_id}"):
        reader.add_resource("zstd-dict", str(dict_id + 1), other)
    with pytest.raises(ValueError, match="not a trained zstd dictionary"):
        reader.add_resource("zstd-dict", "12345", b"plain bytes, not a dictionary")
    forged = trained[:-1] + bytes([trained[-1] ^ 1])
    with pytest.raises(ValueError, match="different contents"):
        reader.add_resource("zstd-dict", str(dict_id), forged)
    assert reader.decode(payload) == rows[0]


def test_pipeline_loads_write_dictionary_through_the_memory(
    plugins: Plugins, make_rows: Callable[..., list[bytes]]
) -> None:
    """In-process, over ``memory://``: open() loads the write dictionary before the first put."""
    trained = train_dictionary(make_rows(400, seed=7), 2048)
    dict_id = dictionary_id(trained)
    row = json.loads(make_rows(1, seed=8)[0])

    async def main() -> None:
        async with open_memory("memory://zstd-res", plugins=plugins) as admin:
            await admin.put_resource(RESOURCE_KIND, str(dict_id), trained)
        spec = f"zstd?dictionary={dict_id}&min_size=0"
        async with open_memory("memory://zstd-res", plugins=plugins, compressor=spec) as memory:
            codec = memory.pipeline.codec("compressor", "zstd")
            assert codec.dictionary_ids == [dict_id] and codec.resources_needed() == []
            await memory.put("qrow", "r", row)
            frame = (await memory.backend.get("default", "qrow", "r")).value  # type: ignore[union-attr]
            _, pos = read_header(frame)
            assert zstandard.get_frame_parameters(frame[pos:]).dict_id == dict_id
            assert await memory.get("qrow", "r") == row

    asyncio.run(main())
