"""Docs that run: every Python snippet in README.md executes, links resolve."""

from __future__ import annotations

import asyncio
import re
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


def _run_block(code: str) -> None:
    body = textwrap.indent(code, "    ")
    namespace: dict[str, object] = {}
    exec(compile(f"async def __snippet():\n{body}\n", "README.md", "exec"), namespace)
    asyncio.run(namespace["__snippet"]())  # type: ignore[operator]


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_snippets_run(index, tmp_path, monkeypatch, request, capsys):
    code = BLOCKS[index]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    if "redis://localhost:6379/0" in code:
        server = request.getfixturevalue("redis_server")
        code = code.replace("redis://localhost:6379/0", server.url)
    _run_block(code)
    out = capsys.readouterr().out
    assert out.strip(), "every README snippet prints what it shows"
    if index == 0:
        assert "{'name': 'Ada', 'langs': ['en', 'fr']}" in out
        assert "['agent1_100', 'agent1_101', 'agent1_102']" in out


def test_readme_has_the_two_commands_first():
    first_code = re.search(r"```sh\n(.*?)```", README, flags=re.S)
    assert first_code is not None
    first, second = first_code.group(1).splitlines()[:2]
    assert first.startswith("make demo") and second.startswith("make test")
    assert README.index("make demo") < README.index("```python")


def test_relative_links_in_docs_resolve():
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text()):
            assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"
