"""pytest wiring for hivemem-mongo: which target runs, the header, skips, fixtures.

See :mod:`hivemem_mongo.testing` for how the target (real server or stand-in) is chosen.
The session header states which one ran.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from hivemem_mongo.backend import MongoBackend
from hivemem_mongo.testing import (
    MONGODB_URI,
    REAL_SERVER,
    STAND_IN_REASON,
    MongoTarget,
    patch_stand_in,
    stand_in_version,
)


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Say plainly which MongoDB the tests ran against."""
    if REAL_SERVER:
        from hivemem_mongo.settings import MongoURL

        return [
            f"hivemem-mongo: REAL MongoDB server at {MongoURL(MONGODB_URI).display} (MONGODB_URI)"
        ]
    return [
        f"hivemem-mongo: STAND-IN {stand_in_version()} -- MONGODB_URI not set, "
        "no real MongoDB server was used; real-server-only tests are skipped"
    ]


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``real_server`` marker; patch the stand-in when it is the target."""
    config.addinivalue_line(
        "markers", "real_server: needs a real MongoDB server (MONGODB_URI); skipped on the stand-in"
    )
    if not REAL_SERVER:
        patch_stand_in()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``real_server`` tests on the stand-in, with the one reason that says why."""
    if REAL_SERVER:
        return
    skip = pytest.mark.skip(reason=STAND_IN_REASON)
    for item in items:
        if "real_server" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def mongo(hivemem_runner: asyncio.Runner) -> Iterator[MongoTarget]:
    """A private target (client + collection prefix) that cleans up after the test."""
    target = MongoTarget()
    yield target
    hivemem_runner.run(target.aclose())


@pytest.fixture
def backend(mongo: MongoTarget, hivemem_runner: asyncio.Runner) -> MongoBackend:
    """An opened backend with default options on a private target."""
    return hivemem_runner.run(mongo.backend())
