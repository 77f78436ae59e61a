"""``hivemem zstd train`` end to end: the installed console script over a real SQLite store."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard
from hivemem import open_memory
from hivemem.pipeline import read_header
from hivemem_zstd.dictionaries import dictionary_id

HIVEMEM = Path(sys.executable).with_name("hivemem")


def _hivemem(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HIVEMEM), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def store(tmp_path: Path, make_rows: Callable[..., list[bytes]]) -> str:
    url = f"sqlite:///{tmp_path / 'agent.db'}"
    rows = {f"s{i:04d}": json.loads(row) for i, row in enumerate(make_rows(800, seed=3))}

    async def fill() -> None:
        async with open_memory(url, namespace="rl") as memory:
            await memory.put_many("qrow", rows)

    asyncio.run(fill())
    return url


def test_train_writes_a_dictionary_the_codec_uses(tmp_path: Path, store: str) -> None:
    out = tmp_path / "dicts" / "qrow-1.zdict"
    result = _hivemem(
        "--url",
        store,
        "-n",
        "rl",
        "--json",
        "zstd",
        "train",
        "--kind",
        "qrow",
        "--samples",
        "600",
        "--size",
        "4096",
        "--out",
        str(out),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    trained = out.read_bytes()
    assert report["dictionary_id"] == dictionary_id(trained)
    assert report["samples"] == 600
    assert report["ratio_with_dictionary"] > 1.5 * report["ratio_without_dictionary"]
    # the suggested compressor setting works as given
    value = {"state": "s:9:9", "action": "wait", "q": 1.5, "visits": 2, "agent": "agent_1"}

    async def roundtrip() -> bytes:
        async with open_memory(store, namespace="rl", compressor=report["compressor"]) as m:
            await m.put("qrow", "new", value)
        # another memory (as another process would): reads by the dictionary id in the frame
        async with open_memory(store, namespace="rl", compressor=report["compressor"]) as m:
            assert await m.get("qrow", "new") == value
            record = await m.backend.get("rl", "qrow", "new")
            assert record is not None
            return record.value

    frame = asyncio.run(roundtrip())
    stages, pos = read_header(frame)
    assert ("compressor", "zstd") in stages
    assert zstandard.get_frame_parameters(frame[pos:]).dict_id == report["dictionary_id"]


def test_train_refuses_to_overwrite_and_reports_empty_kinds(tmp_path: Path, store: str) -> None:
    out = tmp_path / "d.zdict"
    out.write_bytes(b"keep me")
    result = _hivemem(
        "--url",
        store,
        "-n",
        "rl",
        "zstd",
        "train",
        "--kind",
        "qrow",
        "--out",
        str(out),
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "exists" in result.stderr and out.read_bytes() == b"keep me"
    result = _hivemem(
        "--url",
        store,
        "-n",
        "rl",
        "zstd",
        "train",
        "--kind",
        "nothing",
        "--out",
        str(tmp_path / "e.zdict"),
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "no stored values of kind 'nothing'" in result.stderr
    assert "Traceback" not in result.stderr
