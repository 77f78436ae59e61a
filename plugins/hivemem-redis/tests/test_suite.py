"""The hivemem backend conformance suite against a real redis-server and a real 3-master cluster."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hivemem.testing import BackendSuite


def unique_prefix() -> str:
    """A fresh key prefix for one test."""
    return f"t{uuid.uuid4().hex[:10]}:"


#: some of the suite's expiry tests write up to 14 records after the first TTL'd one
#: and then expect it still there; the kit's 0.2 s leaves a busy machine (a cluster: a
#: round trip per write) too little room, 1 s leaves it some twenty times what they take
SHORT_TTL = 1.0


class TestRedisStandalone(BackendSuite):
    """Every contract rule against the session's standalone ``redis-server``."""

    short_ttl = SHORT_TTL

    @pytest.fixture
    def backend_url(self, redis_server: Any) -> str:
        return redis_server.url

    @pytest.fixture
    def backend_options(self) -> dict[str, Any]:
        return {"prefix": unique_prefix()}


class TestRedisCluster(BackendSuite):
    """Every contract rule against the session's 3-master Redis Cluster."""

    short_ttl = SHORT_TTL

    @pytest.fixture
    def backend_url(self, redis_cluster: Any) -> str:
        return redis_cluster.url

    @pytest.fixture
    def backend_options(self) -> dict[str, Any]:
        return {"prefix": unique_prefix()}
