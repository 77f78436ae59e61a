"""Fixtures of the hivemem-redis tests: real servers from the hivemem conformance kit.

``redis_server``, ``redis_server_factory``, ``redis_cluster`` and
``hivemem_runner`` come from the kit's pytest plugin (installed with hivemem).
Every backend built here gets a unique key prefix, so tests sharing the
session's servers never see each other's keys.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from hivemem_redis.backend import RedisBackend


def unique_prefix() -> str:
    """A fresh key prefix for one test."""
    return f"t{uuid.uuid4().hex[:10]}:"


@pytest.fixture(params=["standalone", "cluster"])
def any_url(request: pytest.FixtureRequest) -> str:
    """The URL of the session's standalone server, then of the 3-master cluster."""
    if request.param == "cluster":
        return request.getfixturevalue("redis_cluster").url
    return request.getfixturevalue("redis_server").url


@pytest.fixture
def make_backend(hivemem_runner: Any) -> Iterator[Callable[..., Awaitable[RedisBackend]]]:
    """``await make_backend(url, **options)``: an open backend, closed after the test."""
    made: list[RedisBackend] = []

    async def make(url: str, *, open: bool = True, **options: Any) -> RedisBackend:
        options.setdefault("prefix", unique_prefix())
        backend = RedisBackend(url, **options)
        made.append(backend)
        if open:
            await backend.open()
        return backend

    yield make
    for backend in made:
        hivemem_runner.run(backend.close())
