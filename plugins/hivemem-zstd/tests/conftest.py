"""Fixtures for the hivemem-zstd tests."""

from __future__ import annotations

import json
import random
from collections.abc import Callable

import pytest
from hivemem.plugins import Plugins, make_plugins


@pytest.fixture(scope="session")
def plugins() -> Plugins:
    """Plugins loaded from the installed entry points (as an operator's process would)."""
    return make_plugins(blocked=[], allowed=[])


def qtable_rows(n: int, seed: int = 0) -> list[bytes]:
    """``n`` realistic ~100-byte Q-table rows as JSON."""
    rnd = random.Random(seed)
    actions = ["move_left", "move_right", "pick_up", "drop", "wait", "ask_user", "search"]
    return [
        json.dumps(
            {
                "state": f"s:{rnd.randint(0, 400)}:{rnd.randint(0, 400)}",
                "action": rnd.choice(actions),
                "q": round(rnd.uniform(-5, 5), 6),
                "visits": rnd.randint(0, 5000),
                "agent": f"agent_{rnd.randint(1, 9)}",
            },
            separators=(",", ":"),
        ).encode()
        for _ in range(n)
    ]


@pytest.fixture(scope="session")
def make_rows() -> Callable[..., list[bytes]]:
    """``make_rows(n, seed=0)``: realistic ~100-byte Q-table rows as JSON bytes."""
    return qtable_rows
