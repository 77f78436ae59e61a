"""Fixtures for the hivemem-fernet tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet
from hivemem.plugins import Plugins, make_plugins
from hivemem_fernet.encryptor import ENV_KEY_FILE, ENV_KEYS


@pytest.fixture(scope="session")
def plugins() -> Plugins:
    """Plugins loaded from the installed entry points (as an operator's process would)."""
    return make_plugins(blocked=[], allowed=[])


@pytest.fixture(autouse=True)
def _no_key_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests start without key settings from the surrounding environment."""
    monkeypatch.delenv(ENV_KEYS, raising=False)
    monkeypatch.delenv(ENV_KEY_FILE, raising=False)
    yield


@pytest.fixture(scope="session")
def key1() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture(scope="session")
def key2() -> str:
    return Fernet.generate_key().decode()
