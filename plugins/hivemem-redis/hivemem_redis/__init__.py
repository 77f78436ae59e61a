"""hivemem-redis: the Redis and Redis Cluster backend for hivemem.

Installing the distribution registers the backend ``redis`` for the URL
schemes ``redis://``, ``rediss://`` (TLS), ``unix://`` and
``redis+cluster://`` / ``rediss+cluster://`` through the ``hivemem``
entry-point group. Importing this module does no I/O and does not import
redis-py; the factory does, when a backend is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from hivemem.plugin import Register, hookimpl

if TYPE_CHECKING:
    from .backend import RedisBackend

__all__ = [
    "RedisBackend",
    "create_backend",
    "hivemem_register_backends",
    "hivemem_seed_backend",
    "seed_url",
]

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


#: the seed's environment variables and the config keys they stand for
SEED_ENV = {
    "REDIS_HOST": "host",
    "REDIS_PORT": "port",
    "REDIS_DB": "db",
    "REDIS_USERNAME": "username",
    "REDIS_PASSWORD": "password",
    "REDIS_PREFIX": "prefix",
}


def seed_url(config: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """The seed's ``host, port, db, username, password, ssl`` (+ ``REDIS_*``) as a URL.

    Every other key (``prefix``, ``socket_timeout`` ...) becomes a backend option.
    """
    cfg = {key: env[var] for var, key in SEED_ENV.items() if env.get(var)}
    cfg.update(config)
    host = cfg.pop("host", "localhost")
    port = cfg.pop("port", 6379)
    db = cfg.pop("db", 0)
    password = cfg.pop("password", None)
    username = cfg.pop("username", None)
    auth = ""
    if password:
        auth = f"{quote(str(username or ''), safe='')}:{quote(str(password), safe='')}@"
    elif username:
        auth = f"{quote(str(username), safe='')}@"
    scheme = "rediss" if cfg.pop("ssl", False) else "redis"
    return {"url": f"{scheme}://{auth}{host}:{port}/{db}", "backend_options": cfg}


@hookimpl
def hivemem_seed_backend(
    memory_type: str, config: Mapping[str, Any], env: Mapping[str, str]
) -> dict[str, Any] | None:
    """The seed's ``memory_type="redis"`` with its config keys and ``REDIS_*`` variables."""
    if memory_type != "redis":
        return None
    return seed_url(config, env)
