"""The hivemem backend conformance suite against a real redis-server and a real 3-master cluster."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hivemem.testing import BackendSuite


def unique_prefix() -> str:
    """A fresh key prefix for one test."""
    return f"t{uuid.uuid4().hex[:10]}:"


class TestRedisStandalone(BackendSuite):
    """Every contract rule against the session's standalone ``redis-server``."""

    @pytest.fixture
    def backend_url(self, redis_server: Any) -> str:
        return redis_server.url

    @pytest.fixture
    def backend_options(self) -> dict[str, Any]:
        return {"prefix": unique_prefix()}


class TestRedisCluster(BackendSuite):
    """Every contract rule against the session's 3-master Redis Cluster."""

    @pytest.fixture
    def backend_url(self, redis_cluster: Any) -> str:
        return redis_cluster.url

    @pytest.fixture
    def backend_options(self) -> dict[str, Any]:
        return {"prefix": unique_prefix()}
