"""docs/plugin-authors.md, followed to the letter: build, pip install, list, use, prove.

The dictstore plugin is pip-installed outside the repository and proved by
its own test module, as the guide says; the counting proxy of section 5 is
loaded from the guide's text and the whole backend kit runs against it.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import re
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hivemem.backend import DEFAULTS, OPTIONAL, PRIMITIVES
from hivemem.plugins import Plugins, make_plugins
from hivemem.testing import BackendSuite

ROOT = Path(__file__).resolve().parent.parent
GUIDE_PATH = ROOT / "docs" / "plugin-authors.md"
GUIDE = GUIDE_PATH.read_text()
FILES = dict(re.findall(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```", GUIDE, flags=re.S))
BIN = Path(sys.executable).parent
PROXY = "hivemem_countproxy.py"


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


def test_guide_has_its_four_files():
    assert set(FILES) == {"hivemem_dictstore.py", "pyproject.toml", "test_dictstore.py", PROXY}


def test_guide_lists_the_primitives_defaults_and_optional_methods():
    """The guide's table is the code's PRIMITIVES, DEFAULTS and OPTIONAL, in order."""
    rows = dict(re.findall(r"^\| (primitives|defaults|optional) \| (.*) \|$", GUIDE, flags=re.M))
    listed = {kind: tuple(re.findall(r"`(\w+)`", cells)) for kind, cells in rows.items()}
    assert listed == {"primitives": PRIMITIVES, "defaults": DEFAULTS, "optional": OPTIONAL}


def _imported_modules(source: str) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
    return modules


def test_guide_code_imports_only_hivemem_plugin():
    for name in ("hivemem_dictstore.py", PROXY):
        core = {mod for mod in _imported_modules(FILES[name]) if mod.split(".")[0] == "hivemem"}
        assert core == {"hivemem.plugin"}, name


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
        "        await m.put('user', 'u1', {'n': 1})\n"
        "        print(await m.list('user', 'u'))\n"
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


# -- section 5: the counting proxy, straight from the guide's text ---------------------------


@pytest.fixture(scope="module")
def proxy_module() -> Iterator[types.ModuleType]:
    """The guide's proxy file, executed as the module ``hivemem_countproxy``."""
    module = types.ModuleType("hivemem_countproxy")
    module.__file__ = f"{GUIDE_PATH} ({PROXY})"
    sys.modules[module.__name__] = module
    try:
        exec(compile(FILES[PROXY], module.__file__, "exec"), module.__dict__)
        yield module
    finally:
        del sys.modules[module.__name__]


@pytest.fixture
def proxy_plugins(proxy_module: types.ModuleType) -> Plugins:
    """The installed plugins plus the proxy, registered the way its entry point would."""
    return make_plugins(plugins={"countproxy": proxy_module})


def test_the_proxy_implements_exactly_the_primitives(proxy_module: types.ModuleType) -> None:
    """Every primitive and nothing else (``open`` is optional, to open the target)."""
    cls = proxy_module.CountingProxy
    own = {name for name, value in vars(cls).items() if asyncio.iscoroutinefunction(value)}
    assert own == {*PRIMITIVES, "open"}
    assert not cls.__abstractmethods__


def test_the_proxy_counts_what_the_defaults_cost(proxy_plugins: Plugins) -> None:
    """The composed defaults show up as the primitives they are built on."""
    entry = proxy_plugins.registry("backend").for_scheme("countproxy")
    assert entry.plugin == "countproxy"
    proxy = entry.factory("countproxy://")

    async def use() -> None:
        await proxy.open()
        try:
            await proxy.put("ns", "k", "a", b"1")
            assert (await proxy.get("ns", "k", "a")).value == b"1"
            assert await proxy.list_ids("ns", "k") == ["a"]
            assert await proxy.list_records("ns", "k", limit=1) == await proxy.scan("ns", "k")
            await proxy.append("ns", "s", b"e", ts=1.0)
            stats = await proxy.namespace_stats("ns")
            assert (stats.kinds["k"].count, stats.series["s"].length) == (1, 1)
            await proxy.drop_namespace("ns")
        finally:
            await proxy.close()

    asyncio.run(use())
    assert dict(proxy.calls) == {
        "open": 1,
        "put": 1,
        "get_many": 1,
        "scan": 4,  # list_ids, list_records, the scan itself, namespace_stats' page
        "append": 1,
        "kinds": 1,
        "series_names": 1,
        "read_series": 1,
        "drop_namespace": 1,
        "close": 1,
    }


def test_the_proxy_takes_its_target_from_the_url_or_an_option(
    proxy_plugins: Plugins, tmp_path: Path
) -> None:
    factory = proxy_plugins.registry("backend").for_scheme("countproxy").factory
    assert factory("countproxy://").target.name == "memory"
    by_url = factory(f"countproxy://?target=sqlite:///{tmp_path}/url.db")
    by_option = factory("countproxy://", target=f"sqlite:///{tmp_path}/option.db")
    for proxy in (by_url, by_option):
        assert proxy.target.name == "sqlite"
        assert proxy.capabilities.persistent is True
        assert proxy.capabilities.supports_series_rewrite is False


#: kit tests of the optional rewrite_series, which the proxy does not forward
NO_REWRITE = {
    name: "the proxy forwards no optional method (no supports_series_rewrite)"
    for name in dir(BackendSuite)
    if name.startswith("test_") and "rewrite_series" in name
}


class TestGuideProxy(BackendSuite):
    """The whole kit against the proxy over its default target, ``memory://``."""

    not_applicable = {
        **NO_REWRITE,
        "test_persistent_data_survives_reopen": "the proxy's default target is a private memory://",
        "test_shared_between_clients": "the proxy's default target is a private memory://",
    }

    @pytest.fixture
    def hivemem_plugins(self, proxy_plugins: Plugins) -> Plugins:
        return proxy_plugins

    @pytest.fixture
    def backend_url(self) -> str:
        return "countproxy://"


class TestGuideProxyOverSQLite(BackendSuite):
    """The whole kit against the proxy over SQLite: it passes the target's capabilities on."""

    not_applicable = NO_REWRITE

    @pytest.fixture
    def hivemem_plugins(self, proxy_plugins: Plugins) -> Plugins:
        return proxy_plugins

    @pytest.fixture
    def backend_url(self, tmp_path: Any) -> str:
        return f"countproxy://?target=sqlite:///{tmp_path}/kit.db"
