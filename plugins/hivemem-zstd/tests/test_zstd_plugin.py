"""The plugin is found through its installed entry point, like any third-party plugin."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import click
import hivemem_zstd
from hivemem.plugins import make_plugins
from hivemem_zstd.codec import ZstdCodec


def test_listed_by_describe_from_its_entry_point() -> None:
    rows = {row["name"]: row for row in make_plugins(blocked=[], allowed=[]).describe()}
    row = rows["zstd"]
    assert row["distribution"] == "hivemem-zstd"
    assert row["version"] == importlib.metadata.version("hivemem-zstd") == hivemem_zstd.__version__
    assert row["module"] == "hivemem_zstd"
    assert [c["name"] for c in row["provides"]["compressor"]] == ["zstd"]
    assert set(row["provides"]) == {"compressor"}


def test_entry_point_declared_in_metadata() -> None:
    eps = importlib.metadata.distribution("hivemem-zstd").entry_points
    assert [(ep.group, ep.name, ep.value) for ep in eps] == [("hivemem", "zstd", "hivemem_zstd")]


def test_registry_builds_the_codec_with_string_options() -> None:
    entry = make_plugins(blocked=[], allowed=[]).registry("compressor").get("zstd")
    codec = entry.factory(level="19", min_size="0")
    assert isinstance(codec, ZstdCodec)
    assert (codec.level, codec.min_size) == (19, 0)
    assert entry.distribution == "hivemem-zstd"


def test_listed_by_hivemem_plugins_json() -> None:
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("hivemem")), "plugins", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    assert rows["zstd"]["distribution"] == "hivemem-zstd"
    assert rows["zstd"]["provides"]["compressor"][0]["name"] == "zstd"


def test_train_command_registered_through_the_hook() -> None:
    root = click.Group("root")
    make_plugins(blocked=[], allowed=[]).pm.hook.hivemem_register_commands(cli=root)
    group = root.commands["zstd"]
    assert isinstance(group, click.Group)
    assert "train" in group.commands
