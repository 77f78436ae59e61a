"""Docs that run: every Python snippet in README.md executes and prints what it shows."""

from __future__ import annotations

import ast
import asyncio
import io
import re
import textwrap
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)

#: what a README ``print(...)`` without an output comment must print, as a regex
#: over its lines (a print followed by ``# output`` in the README must print that)
PRINTS: dict[str, str] = {
    # (timestamp, value) pairs of the series, newest last
    'print(await mem.read_series("conversation", latest=True, limit=10))': (
        r"\[\(\d+\.\d+, \{'role': 'user', 'content': 'hi'\}\)\]"
    ),
    'print(await mem.get("user", "u1"))': re.escape("{'name': 'Ada'}"),
    'print(await mm.load_entity("user", "user123"))': re.escape(
        "{'name': 'John Doe', 'preferences': {'theme': 'dark'}}"
    ),
    'print(await mm.load_entities_by_prefix("user", "user", limit=10))': re.escape(
        "{'user123': {'name': 'John Doe', 'preferences': {'theme': 'dark'}}}"
    ),
    "print(await mm.get_memory_summary())": re.escape(
        textwrap.dedent(
            """\
            ## Memory Summary (sqlite, namespace 'example')

            ### Conversation History
            - 0 messages in history

            ### Entities in Memory
            - user: 1 entities (68 bytes)

            ### Tool Usage

            ### Cache Statistics
            - Cache hits: 1
            - Cache misses: 0

            ### Memory Metrics
            - Reads: 1
            - Writes: 1
            - Errors: 0
            """
        )
    ),
    # one cache hit (load_entity after save_entity), and the backend answers
    'print(mm.get_metrics()["cache_hits"], await mm.ping())': re.escape("1 True"),
}


def _prints(code: str) -> list[tuple[str, str]]:
    """``[(print statement, regex of what it prints)]`` of a snippet, in order.

    The expected output is the statement's trailing README comment when it
    has one, else its :data:`PRINTS` entry; a print with neither fails.
    """
    comments = {
        tok.start[0]: tok.string.lstrip("#").strip()
        for tok in tokenize.generate_tokens(io.StringIO(code).readline)
        if tok.type == tokenize.COMMENT
    }
    tree = compile(code, "README.md", "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    found: list[tuple[int, str, str]] = []
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name)
            and node.value.func.id == "print"
        ):
            continue
        source = ast.get_source_segment(code, node) or ""
        if node.lineno in comments:
            expected = re.escape(comments[node.lineno])
        else:
            assert source in PRINTS, f"README prints {source} but no output is given for it"
            expected = PRINTS[source]
        found.append((node.lineno, source, expected))
    return [(source, expected) for _, source, expected in sorted(found)]


def _run_block(code: str) -> None:
    body = textwrap.indent(code, "    ")
    namespace: dict[str, object] = {}
    exec(compile(f"async def __snippet():\n{body}\n", "README.md", "exec"), namespace)
    asyncio.run(namespace["__snippet"]())  # type: ignore[operator]


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_snippets_run(index, tmp_path, monkeypatch, request, capsys):
    code = BLOCKS[index]
    expected = _prints(code)
    assert expected, "every README snippet prints what it shows"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    if "redis://localhost:6379/0" in code:
        server = request.getfixturevalue("redis_server")
        code = code.replace("redis://localhost:6379/0", server.url)
    _run_block(code)
    out = capsys.readouterr().out
    pattern = "".join(f"{regex}\n" for _, regex in expected)
    assert re.fullmatch(pattern, out), (
        "README snippet output differs from what the README shows:\n"
        + "\n".join(source for source, _ in expected)
        + f"\n--- printed ---\n{out}"
    )


def test_every_expected_output_belongs_to_a_readme_print():
    """A :data:`PRINTS` entry whose print left the README is stale, not a pass."""
    printed = {source for code in BLOCKS for source, _ in _prints(code)}
    assert set(PRINTS) <= printed, sorted(set(PRINTS) - printed)


def test_readme_shows_output_of_the_first_snippet():
    """The quick start shows its results in comments (what ``_prints`` checks)."""
    shown = [regex for _, regex in _prints(BLOCKS[0])]
    assert shown[:2] == [
        re.escape("{'name': 'Ada', 'langs': ['en', 'fr']}"),
        re.escape("['agent1_100', 'agent1_101', 'agent1_102']"),
    ]
    assert shown[3:] == [re.escape("0.5")]


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
