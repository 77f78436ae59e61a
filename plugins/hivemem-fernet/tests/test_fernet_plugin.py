"""The plugin is found through its installed entry point; its command runs from the real CLI."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import click
import hivemem_fernet
from click.testing import CliRunner
from cryptography.fernet import Fernet
from hivemem.plugins import make_plugins
from hivemem_fernet.encryptor import FernetEncryptor

HIVEMEM = Path(sys.executable).with_name("hivemem")


def test_listed_by_describe_from_its_entry_point() -> None:
    rows = {row["name"]: row for row in make_plugins(blocked=[], allowed=[]).describe()}
    row = rows["fernet"]
    assert row["distribution"] == "hivemem-fernet"
    assert row["version"] == importlib.metadata.version("hivemem-fernet")
    assert row["version"] == hivemem_fernet.__version__
    assert row["module"] == "hivemem_fernet"
    assert set(row["provides"]) == {"encryptor"}
    assert [c["name"] for c in row["provides"]["encryptor"]] == ["fernet"]


def test_registry_builds_the_encryptor(key1: str) -> None:
    entry = make_plugins(blocked=[], allowed=[]).registry("encryptor").get("fernet")
    assert entry.distribution == "hivemem-fernet"
    enc = entry.factory(keys=key1)
    assert isinstance(enc, FernetEncryptor)
    assert enc.decode(enc.encode(b"x")) == b"x"


def test_command_registered_through_the_hook() -> None:
    root = click.Group("root")
    make_plugins(blocked=[], allowed=[]).pm.hook.hivemem_register_commands(cli=root)
    assert "fernet" in root.commands
    result = CliRunner().invoke(root, ["fernet", "generate-key"])
    assert result.exit_code == 0, result.output
    Fernet(result.output.strip())


def test_generate_key_from_the_installed_cli() -> None:
    outputs = []
    for _ in range(2):
        proc = subprocess.run(
            [str(HIVEMEM), "fernet", "generate-key"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        outputs.append(proc.stdout.strip())
    assert outputs[0] != outputs[1]
    for key in outputs:
        assert len(key) == 44
        assert FernetEncryptor(keys=key).key_ids  # accepted by the encryptor's strict check


def test_listed_by_hivemem_plugins_json() -> None:
    proc = subprocess.run(
        [str(HIVEMEM), "plugins", "--json"], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    assert rows["fernet"]["distribution"] == "hivemem-fernet"
    assert rows["fernet"]["provides"]["encryptor"][0]["name"] == "fernet"
