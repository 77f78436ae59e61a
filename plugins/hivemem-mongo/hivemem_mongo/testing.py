"""Test targets for MongoDB: a real server (``MONGODB_URI``) or the mongomock-motor stand-in.

Used by hivemem-mongo's own tests and usable by applications that test
their code against hivemem on MongoDB:

* ``MONGODB_URI`` set: tests run against that server. Each
  :class:`MongoTarget` uses its own collection prefix in the database
  ``MONGODB_TEST_DB`` (default ``hivemem_test``) and drops its collections
  when closed.
* ``MONGODB_URI`` unset: tests run against mongomock-motor (an in-process
  imitation of Motor's collection API), passed to the backend through its
  ``client`` option. Tests that need behaviour the stand-in does not have
  (``explain``, a Motor client over the wire, transactions) are skipped with
  :data:`STAND_IN_REASON`.

mongomock-motor is only in the ``test`` extra; this module imports it only
when the stand-in is the target.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from hivemem_mongo.backend import MongoBackend

MONGODB_URI = os.environ.get("MONGODB_URI", "").strip()
REAL_SERVER = bool(MONGODB_URI)
STAND_IN_REASON = "MONGODB_URI not set: ran against mongomock-motor stand-in"
STAND_IN_URL = "mongodb://mongomock-stand-in/"
TEST_DB = os.environ.get("MONGODB_TEST_DB", "hivemem_test")


def patch_stand_in() -> None:
    """Let mongomock's bulk builder accept the ``sort`` argument PyMongo >= 4.11 passes.

    ``UpdateOne``/``ReplaceOne`` hand ``sort=None`` to the bulk builder; the
    mongomock release on PyPI predates that argument. Only ``None`` is
    accepted, anything else would change the meaning of the operation.
    """
    import mongomock.collection

    builder = mongomock.collection.BulkOperationBuilder
    if getattr(builder, "_hivemem_sort_patch", False):
        return
    add_update, add_replace = builder.add_update, builder.add_replace

    def patched_update(self: Any, *args: Any, sort: Any = None, **kwargs: Any) -> Any:
        if sort is not None:
            raise NotImplementedError("mongomock stand-in: bulk update with sort")
        return add_update(self, *args, **kwargs)

    def patched_replace(self: Any, *args: Any, sort: Any = None, **kwargs: Any) -> Any:
        if sort is not None:
            raise NotImplementedError("mongomock stand-in: bulk replace with sort")
        return add_replace(self, *args, **kwargs)

    builder.add_update = patched_update
    builder.add_replace = patched_replace
    builder._hivemem_sort_patch = True


def stand_in_version() -> str:
    """Versions of the stand-in packages, for the report header."""
    from importlib.metadata import version

    return f"mongomock-motor {version('mongomock-motor')}, mongomock {version('mongomock')}"


def new_client() -> Any:
    """A fresh client for the target: AsyncMongoClient on a real server, else the stand-in."""
    if REAL_SERVER:
        from pymongo import AsyncMongoClient

        return AsyncMongoClient(MONGODB_URI, serverSelectionTimeoutMS=10_000)
    from mongomock_motor import AsyncMongoMockClient

    return AsyncMongoMockClient()


def backend_options(client: Any, prefix: str, **options: Any) -> tuple[str, dict[str, Any]]:
    """URL and options for a MongoBackend on the target, collections under ``prefix``.

    On a real server the backend builds its own client from the URL (the path
    users take; ``client`` only serves cleanup). The stand-in has no URL to
    connect to, so it is passed in through the ``client`` option.
    """
    opts = {"database": TEST_DB, "collection_prefix": prefix, **options}
    if REAL_SERVER:
        return MONGODB_URI, opts
    return STAND_IN_URL, {"client": client, **opts}


async def drop_collections(client: Any, prefix: str) -> None:
    """Remove every collection a test created under ``prefix``."""
    database = client.get_database(TEST_DB)
    for suffix in ("records", "chunks", "series", "counters", "meta"):
        await database.drop_collection(prefix + suffix)


class MongoTarget:
    """Builds backends that share one client and one collection prefix."""

    def __init__(self) -> None:
        self.client = new_client()
        self.prefix = f"hmt_{uuid.uuid4().hex[:10]}_"
        self.backends: list[MongoBackend] = []

    async def backend(self, **options: Any) -> MongoBackend:
        """An opened backend on this target (closed by :meth:`aclose`)."""
        url, opts = backend_options(self.client, self.prefix, **options)
        backend = MongoBackend(url, **opts)
        await backend.open()
        self.backends.append(backend)
        return backend

    async def aclose(self) -> None:
        """Close every backend, drop the collections, close the client."""
        for backend in self.backends:
            await backend.close()
        if REAL_SERVER:
            await drop_collections(self.client, self.prefix)
            await self.client.close()
