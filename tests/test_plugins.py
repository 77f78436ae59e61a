"""Plugin discovery, registration, conflicts, blocking and introspection."""

from __future__ import annotations

import inspect
import json

import hivemem
import pytest
from click.testing import CliRunner
from hivemem import hookspecs
from hivemem.cli import cli
from hivemem.errors import ConfigError, PluginConflict, PluginNotFound
from hivemem.plugins import KINDS, make_plugins


class _Provider:
    """A plugin object providing one backend and one compressor."""

    def __init__(self, backend: str = "fakestore", scheme: str = "fakestore") -> None:
        self.backend = backend
        self.scheme = scheme

    @hivemem.hookimpl
    def hivemem_register_backends(self, register):
        from hivemem.builtin.memory_backend import MemoryBackend

        register(
            self.backend,
            lambda url, **o: MemoryBackend("memory://", **o),
            schemes=(self.scheme,),
            description="test",
        )


def test_builtins_come_through_the_entry_point_group():
    rows = {row["name"]: row for row in make_plugins().describe()}
    builtin = rows["builtin"]
    assert builtin["distribution"] == "hivemem"
    assert builtin["version"] == hivemem.__version__
    provides = builtin["provides"]
    assert {i["name"] for i in provides["backend"]} >= {"memory", "sqlite"}
    assert {i["name"] for i in provides["cache"]} == {"local"}
    assert {i["name"] for i in provides["serializer"]} >= {"json", "pickle"}
    assert {i["name"] for i in provides["compressor"]} >= {"none", "zlib"}
    assert {i["name"] for i in provides["encryptor"]} >= {"none"}


def test_extra_plugin_is_usable_by_scheme():
    plugins = make_plugins(plugins={"mine": _Provider()})
    entry = plugins.registry("backend").for_scheme("fakestore")
    assert entry.plugin == "mine"
    mem = hivemem.open_memory("fakestore://x", plugins=plugins, cache=[])
    assert mem.backend.name == "memory"


def test_duplicate_name_names_both_providers():
    plugins = make_plugins(plugins={"one": _Provider("dup", "s1"), "two": _Provider("dup", "s2")})
    with pytest.raises(PluginConflict) as info:
        _ = plugins.registries
    assert "one" in str(info.value) and "two" in str(info.value)
    assert "'dup'" in str(info.value)


def test_duplicate_scheme_names_both_providers():
    plugins = make_plugins(
        plugins={"alpha": _Provider("a", "same"), "beta": _Provider("b", "same")}
    )
    with pytest.raises(PluginConflict) as info:
        _ = plugins.registries
    msg = str(info.value)
    assert "alpha" in msg and "beta" in msg and "'same'" in msg


def test_conflict_with_builtin_names_the_distribution():
    plugins = make_plugins(plugins={"rogue": _Provider("sqlite", "other")})
    with pytest.raises(PluginConflict, match=r"hivemem 0\.1\.0.*rogue|rogue.*hivemem 0\.1\.0"):
        _ = plugins.registries


def test_unknown_name_lists_installed_and_package_hint():
    plugins = make_plugins()
    with pytest.raises(PluginNotFound) as info:
        plugins.registry("compressor").get("brotli")
    assert "zlib" in str(info.value) and "none" in str(info.value)
    with pytest.raises(PluginNotFound) as info:
        make_plugins(blocked=["zstd"]).registry("compressor").get("zstd")
    assert "pip install hivemem-zstd" in str(info.value)
    with pytest.raises(PluginNotFound) as info:
        make_plugins(blocked=["redis"]).registry("backend").for_scheme("redis")
    assert "sqlite://" in str(info.value) and "hivemem-redis" in str(info.value)


def test_blocking_by_argument_and_environment(monkeypatch):
    assert "sqlite" not in make_plugins(blocked=["builtin"]).registry("backend").by_name
    monkeypatch.setenv("HIVEMEM_BLOCK_PLUGINS", "builtin")
    assert "sqlite" not in make_plugins().registry("backend").by_name
    monkeypatch.delenv("HIVEMEM_BLOCK_PLUGINS")
    monkeypatch.setenv("HIVEMEM_LOAD_PLUGINS", "builtin")
    names = {row["name"] for row in make_plugins().describe()}
    assert names == {"builtin"}


def test_misspelled_hook_fails_at_load_time():
    class Typo:
        @hivemem.hookimpl
        def hivemem_register_backend(self, register):  # missing "s"
            pass

    with pytest.raises(ConfigError, match="hivemem_register_backend"):
        make_plugins(plugins={"typo": Typo()})


def test_managers_do_not_share_state():
    a = make_plugins(plugins={"mine": _Provider()})
    b = make_plugins()
    assert "fakestore" in a.registry("backend").by_name
    assert "fakestore" not in b.registry("backend").by_name


def test_every_hookspec_is_documented_and_implemented_by_a_builtin():
    import hivemem.builtin as builtin

    specs = [
        name
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if name.startswith("hivemem_")
    ]
    assert len(specs) == 7
    for name in specs:
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert len(doc) > 120, f"{name} needs plugin-author documentation"
    for kind in KINDS:
        hook = f"hivemem_register_{kind}s" if kind != "cache" else "hivemem_register_caches"
        assert hook in specs
        assert hasattr(builtin, hook), f"builtin does not exercise {hook}"


def test_plugins_command_json_matches_api():
    result = CliRunner().invoke(cli, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data == json.loads(json.dumps(make_plugins().describe()))


def test_plugins_command_text_lists_schemes():
    result = CliRunner().invoke(cli, ["plugins", "--all"])
    assert result.exit_code == 0
    assert "sqlite [sqlite://]" in result.output
    assert "UNSAFE" in result.output  # the pickle serializer says what it is


def test_every_codec_name_written_in_a_frame_resolves_to_an_installed_plugin():
    from hivemem.pipeline import Pipeline, read_header

    plugins = make_plugins()
    options = {}
    if "fernet" in plugins.registry("encryptor").by_name:
        from cryptography.fernet import Fernet

        options["fernet"] = {"keys": Fernet.generate_key().decode()}
    value = {"text": "hivemem " * 200, "n": list(range(50))}
    seen = set()
    for kind in ("serializer", "compressor", "encryptor"):
        for name in plugins.registry(kind).names():
            settings = {"serializer": "json", "compressor": "none", "encryptor": "none", kind: name}
            frame = Pipeline(**settings, options=options, plugins=plugins).encode(value, "k/1")
            for stage, codec in read_header(frame)[0]:
                assert codec in plugins.registry(stage).by_name, (stage, codec)
                seen.add((stage, codec))
    installed = {
        (kind, n)
        for kind in ("serializer", "compressor", "encryptor")
        for n in plugins.registry(kind).names()
        if n != "none"
    }
    assert installed <= seen  # every installed codec really wrote its own name
