"""The plugin is found through its entry point and builds backends without I/O."""

from __future__ import annotations

import importlib.metadata

from hivemem.plugins import make_plugins
from hivemem_redis import SCHEMES, create_backend
from hivemem_redis.backend import RedisBackend


def test_entry_point_is_declared() -> None:
    eps = importlib.metadata.entry_points(group="hivemem")
    assert any(ep.name == "redis" and ep.value == "hivemem_redis" for ep in eps)


def test_registered_under_every_scheme() -> None:
    backends = make_plugins().registry("backend")
    entry = backends.get("redis")
    assert set(SCHEMES) <= set(entry.schemes)
    for scheme in ("redis", "rediss", "unix", "redis+cluster"):
        assert backends.for_scheme(scheme).name == "redis"
    assert entry.distribution == "hivemem-redis"


def test_factory_builds_without_connecting() -> None:
    # nothing listens on port 1: construction must not try
    backend = create_backend("redis://127.0.0.1:1/0", prefix="datamcp:")
    assert isinstance(backend, RedisBackend)
    assert backend.layout.prefix == b"datamcp:"
    assert backend.capabilities.shared and backend.capabilities.persistent
