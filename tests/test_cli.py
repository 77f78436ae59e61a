"""The command line: thin commands, --json everywhere, one-line errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from hivemem.cli import cli


@pytest.fixture
def run(tmp_path):
    url = f"sqlite:///{tmp_path}/cli.db"
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(cli, [*args, "--url", url, "-n", "clitest"], input=input)

    return invoke


def test_put_get_ls_delete_roundtrip(run):
    r = run("put", "user", "u1", '{"name": "Ada", "tags": ["x"]}')
    assert r.exit_code == 0, r.output
    assert "version 1" in r.output
    r = run("get", "user", "u1", "--json")
    assert json.loads(r.output) == {"name": "Ada", "tags": ["x"]}
    for i in range(5):
        assert run("put", "reward", f"agent1_{i}", str(i)).exit_code == 0
    r = run("ls", "reward", "agent1_", "--limit", "2", "--json")
    assert json.loads(r.output) == ["agent1_0", "agent1_1"]
    r = run("ls", "reward", "agent1_", "--limit", "2", "--newest", "--values", "--json")
    assert json.loads(r.output) == {"agent1_3": 3, "agent1_4": 4}
    r = run("delete", "user", "u1", "--json")
    assert json.loads(r.output) == {"deleted": True}
    r = run("get", "user", "u1")
    assert r.exit_code == 1 and "no record user/u1" in r.output


def test_put_text_from_stdin_and_ttl(run):
    assert run("put", "note", "n", "-", input='{"a": 1}').exit_code == 0
    assert json.loads(run("get", "note", "n", "--json").output) == {"a": 1}
    assert run("put", "note", "raw", "plain words", "--raw", "--ttl", "60").exit_code == 0
    assert json.loads(run("get", "note", "raw", "--json").output) == "plain words"
    r = run("put", "note", "bad", "{not json")
    assert r.exit_code != 0 and "not JSON" in r.output


def test_summary_metrics_ping_json(run):
    run("put", "user", "a", "1")
    summary = json.loads(run("summary", "--json").output)
    assert summary["kinds"]["user"]["count"] == 1 and summary["namespace"] == "clitest"
    text = run("summary").output
    assert "user: 1 entities" in text
    metrics = json.loads(run("metrics", "--json").output)
    assert metrics["stats"]["backend"]["backend"] == "sqlite"
    assert json.loads(run("ping", "--json").output)["ok"] is True


@pytest.mark.parametrize(
    "url, message",
    [
        ("nosuch://x", "no backend plugin for URL scheme 'nosuch://'"),
        ("sqlite:///x.db?synchronous=sometimes", "synchronous"),
        ("not-a-url", "has no scheme"),
    ],
)
def test_errors_are_one_line_without_traceback(url, message):
    r = CliRunner().invoke(cli, ["ping", "--url", url])
    assert r.exit_code == 1
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0]
    assert "Traceback" not in r.output


def test_unreachable_store_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = CliRunner().invoke(cli, ["ping", "--url", f"sqlite:///{blocker}/d/x.db"])
    assert r.exit_code == 1 and r.output.count("\n") == 1 and "Error:" in r.output


def test_demo_walks_the_seed_example(tmp_path):
    r = CliRunner().invoke(cli, ["demo", "--url", f"sqlite:///{tmp_path}/demo.db"])
    assert r.exit_code == 0, r.output
    for needle in (
        "save_entity",
        "3 messages",
        "calculator uses: [42]",
        "newest 3 ids",
        "reward: 15 entities",
        "ping: true",
    ):
        assert needle in r.output
    again = CliRunner().invoke(cli, ["demo", "--url", f"sqlite:///{tmp_path}/demo.db"])
    assert "reward: 15 entities" in again.output  # the demo namespace is reset each run


def test_config_command_masks_secrets():
    r = CliRunner().invoke(cli, ["config", "--json", "--url", "redis://u:hunter22@h:1/0"])
    assert r.exit_code == 0
    assert "hunter22" not in r.output and "u:***@h:1" in r.output
