"""The hivemem backend conformance kit, run against MongoDB or the stand-in."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hivemem.testing import BackendSuite
from hivemem_mongo.testing import REAL_SERVER, STAND_IN_URL, TEST_DB, drop_collections, new_client


class TestMongoBackendConformance(BackendSuite):
    """Every rule of :mod:`hivemem.backend`, through the registry, on one private prefix."""

    @pytest.fixture
    def mongo_client(self, hivemem_runner: asyncio.Runner) -> Iterator[Any]:
        """The stand-in store (shared by every backend of the test), or a cleanup client."""
        client = new_client()
        yield client
        if REAL_SERVER:
            hivemem_runner.run(client.close())

    @pytest.fixture
    def backend_url(self) -> str:
        """``MONGODB_URI`` on a real server; a placeholder URL for the stand-in."""
        from hivemem_mongo.testing import MONGODB_URI

        return MONGODB_URI if REAL_SERVER else STAND_IN_URL

    @pytest.fixture
    def backend_options(
        self, mongo_client: Any, hivemem_runner: asyncio.Runner
    ) -> Iterator[dict[str, Any]]:
        """A private collection prefix per test (dropped after it), and the stand-in client."""
        prefix = f"hmk_{uuid.uuid4().hex[:10]}_"
        options: dict[str, Any] = {"database": TEST_DB, "collection_prefix": prefix}
        if not REAL_SERVER:
            options["client"] = mongo_client
        yield options
        if REAL_SERVER:
            hivemem_runner.run(drop_collections(mongo_client, prefix))
