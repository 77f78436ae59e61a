"""hivemem-redis: the Redis and Redis Cluster backend for hivemem.

Installing the distribution registers the backend ``redis`` for the URL
schemes ``redis://``, ``rediss://`` (TLS), ``unix://`` and
``redis+cluster://`` / ``rediss+cluster://`` through the ``hivemem``
entry-point group. Importing this module does no I/O and does not import
redis-py; the factory does, when a backend is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hivemem.hookspecs import Register
from hivemem.plugins import hookimpl

if TYPE_CHECKING:
    from .backend import RedisBackend

__all__ = ["RedisBackend", "create_backend", "hivemem_register_backends"]

SCHEMES = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster")


def create_backend(url: str, **options: Any) -> RedisBackend:
    """The registered factory: ``RedisBackend(url, **options)`` (no I/O until ``open``)."""
    from .backend import RedisBackend

    return RedisBackend(url, **options)


def __getattr__(name: str) -> Any:
    if name == "RedisBackend":
        from .backend import RedisBackend

        return RedisBackend
    raise AttributeError(name)


@hookimpl
def hivemem_register_backends(register: Register) -> None:
    """Register the ``redis`` backend and its URL schemes."""
    register(
        "redis",
        create_backend,
        schemes=SCHEMES,
        description="Redis / Redis Cluster (redis://host:6379/0, redis+cluster://h:p,h:p)",
    )
