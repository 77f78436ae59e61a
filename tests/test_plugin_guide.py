"""docs/plugin-authors.md, followed to the letter: build, pip install, list, use, prove."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUIDE = (ROOT / "docs" / "plugin-authors.md").read_text()
FILES = dict(re.findall(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```", GUIDE, flags=re.S))
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The guide's plugin, pip-installed into a directory outside this repository."""
    work = tmp_path_factory.mktemp("guide")
    src = work / "hivemem-dictstore"
    src.mkdir()
    for name in ("hivemem_dictstore.py", "pyproject.toml"):
        (src / name).write_text(FILES[name])
    (work / "test_dictstore.py").write_text(FILES["test_dictstore.py"])
    site = work / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(site),
            str(src),
        ],
        check=True,
    )
    env = {**os.environ, "PYTHONPATH": str(site), "HIVEMEM_URL": "dictstore://"}
    env.pop("HIVEMEM_BLOCK_PLUGINS", None)
    env.pop("HIVEMEM_LOAD_PLUGINS", None)
    return work, env


def test_guide_has_the_three_files():
    assert set(FILES) == {"hivemem_dictstore.py", "pyproject.toml", "test_dictstore.py"}


def test_installed_plugin_is_listed(installed):
    work, env = installed
    out = subprocess.run(
        [str(BIN / "hivemem"), "plugins", "--json"],
        env=env,
        cwd=work,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = {row["name"]: row for row in json.loads(out)}
    row = rows["dictstore"]
    assert (row["distribution"], row["version"]) == ("hivemem-dictstore", "0.1.0")
    assert row["provides"]["backend"][0]["schemes"] == ["dictstore"]


def test_usable_from_cli_and_open_memory(installed):
    work, env = installed
    for args in (["put", "user", "u1", '{"name": "Ada"}'], ["ping"]):
        r = subprocess.run(
            [str(BIN / "hivemem"), "--url", "dictstore://", *args],
            env=env,
            cwd=work,
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, r.stderr
    code = (
        "import asyncio, hivemem\n"
        "async def main():\n"
        "    async with hivemem.open_memory('dictstore://') as m:\n"
        "        await m.save_entity('user', 'u1', {'n': 1})\n"
        "        print(await m.load_entities_by_prefix('user', 'u'))\n"
        "asyncio.run(main())\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=work, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "{'u1': {'n': 1}}"


def test_passes_the_conformance_kit(installed):
    work, env = installed
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_dictstore.py"],
        env=env,
        cwd=work,
        capture_output=True,
        text=True,
        timeout=600,
    )
    tail = r.stdout[-3000:]
    assert r.returncode == 0, tail
    passed = int(re.search(r"(\d+) passed", tail).group(1))
    assert passed >= 50, tail
    assert "failed" not in tail and "error" not in tail.lower()
    assert "skipped" not in tail and "2 deselected" in tail
