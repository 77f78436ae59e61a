"""hivemem-mongo: the MongoDB backend for hivemem (``mongodb://``, ``mongodb+srv://``).

Installing this distribution registers the backend ``mongodb`` through the
``hivemem`` entry-point group; select it with a URL::

    hivemem.open_memory("mongodb://db1.example:27017,db2.example:27017/?replicaSet=rs0",
                        backend_options={"database": "agents", "write_concern": "majority"})

The driver is PyMongo's async API (:class:`pymongo.AsyncMongoClient`); a client
built by the caller (PyMongo async or Motor) can be passed as the ``client``
option. See ``docs/backends/mongo.md`` for the document layout and indexes.
Nothing here imports PyMongo until a backend is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hivemem.plugin import Register, hookimpl

if TYPE_CHECKING:
    from .backend import MongoBackend

__version__ = "0.1.0"


def factory(url: str, **options: Any) -> MongoBackend:
    """Build a :class:`MongoBackend` for ``url`` (no I/O until ``await open()``)."""
    from .backend import MongoBackend

    return MongoBackend(url, **options)


@hookimpl
def hivemem_register_backends(register: Register) -> None:
    """Register ``mongodb`` for the ``mongodb`` and ``mongodb+srv`` URL schemes."""
    register(
        "mongodb",
        factory,
        schemes=("mongodb", "mongodb+srv"),
        description="MongoDB via PyMongo async; replica sets and sharded clusters "
        "(mongodb://host[:port][,host...]/[database], mongodb+srv://)",
    )


@hookimpl
def hivemem_seed_backend(
    memory_type: str, config: Mapping[str, Any], env: Mapping[str, str]
) -> dict[str, Any] | None:
    """The seed's ``memory_type="mongodb"`` (or ``"mongo"``) as a URL and options.

    ``connection_string``/``uri`` and ``database_name``/``db``/``database``
    come from ``config``, else from ``MONGODB_URI``/``MONGODB_DB`` in ``env``.
    The database defaults to the seed's ``agent_memory`` only when ``config``
    is empty; otherwise the URL's path (else ``hivemem``) names it. Any other
    ``config`` key is passed on as a backend option.
    """
    if memory_type not in ("mongodb", "mongo"):
        return None
    given = dict(config)
    url = given.pop("connection_string", None) or given.pop("uri", None)
    url = str(url or env.get("MONGODB_URI") or "mongodb://localhost:27017/")
    database = (
        given.pop("database_name", None) or given.pop("db", None) or given.pop("database", None)
    )
    database = database or env.get("MONGODB_DB") or (None if config else "agent_memory")
    backend_options: dict[str, Any] = {} if database is None else {"database": database}
    backend_options.update(given)  # anything else is a backend option as given
    return {"url": url, "backend_options": backend_options}


def __getattr__(name: str) -> Any:
    if name == "MongoBackend":
        from .backend import MongoBackend

        return MongoBackend
    raise AttributeError(name)


__all__ = ["MongoBackend", "factory", "hivemem_register_backends", "hivemem_seed_backend"]
