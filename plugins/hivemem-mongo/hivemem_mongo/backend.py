"""``mongodb://`` / ``mongodb+srv://`` -- the MongoDB backend on PyMongo's async API.

See ``docs/backends/mongo.md`` for the full story. The class is composed
from one part per reason to change:

* :mod:`~hivemem_mongo.settings` -- the URL (shown parts, secrets to redact)
  and the options;
* :mod:`~hivemem_mongo.connection` -- client, lifecycle, indexes,
  transactions, driver errors, ``ping``, ``stats``, ``purge_residue``;
* :mod:`~hivemem_mongo.records` -- ``get``/``get_many``, writes (one atomic
  update with the version computed by the server), deletes and ``scan``
  over the key index (``list_ids``/``list_records`` are the base class's
  defaults over it);
* :mod:`~hivemem_mongo.chunks` -- values past the 16 MiB document limit as
  chunk generations, and ``collect_garbage``;
* :mod:`~hivemem_mongo.series` -- one document per entry, sequence blocks,
  ``replace_series``/``rewrite_series`` in a transaction where available;
* :mod:`~hivemem_mongo.counters` -- upserting ``$inc`` per field;
* :mod:`~hivemem_mongo.namespace` -- ``kinds``, ``namespace_stats``,
  ``drop_namespace``.

The document layout, dates, expiry filters and id ranges are in
:mod:`~hivemem_mongo.documents`.

TTL: ``expires_at`` is a BSON date under a TTL index (the server purges
about once a minute) and every read filters expired documents out. Every
operation that takes more than one round trip runs shielded from
cancellation: a cancelled caller gets ``CancelledError`` while the operation
completes, so it happened completely.
"""

from __future__ import annotations

from typing import ClassVar

from hivemem.plugin import Capabilities

from .counters import MongoCounters
from .documents import DEFAULT_CHUNK_SIZE
from .namespace import MongoNamespace
from .records import MongoRecords
from .series import MongoSeries

__all__ = ["DEFAULT_CHUNK_SIZE", "MongoBackend"]


class MongoBackend(MongoRecords, MongoSeries, MongoCounters, MongoNamespace):
    """MongoDB backend; see the module docstring and ``docs/backends/mongo.md``.

    Options (from ``backend_options``, declared in
    :data:`hivemem_mongo.settings.OPTIONS` and
    :data:`~hivemem_mongo.settings.RAW_OPTIONS`):

    * ``database`` -- database name (default: the URL's path, else ``hivemem``).
    * ``collection_prefix`` -- prefix of the collection names (``hivemem_``).
    * ``write_concern`` -- ``"majority"``, a node count, or a dict of
      :class:`~pymongo.write_concern.WriteConcern` arguments.
    * ``read_concern`` -- a read concern level, e.g. ``"majority"``.
    * ``client`` -- an existing ``AsyncMongoClient`` or Motor client; the
      backend uses it and does not close it.
    * ``client_options`` -- extra keyword arguments for ``AsyncMongoClient``.
    * ``chunk_size`` -- largest value stored inline and the size of each
      chunk of a larger one (default 8 MiB, at most 16 MiB - 64 KiB).
    * ``seq_block`` -- series sequence numbers reserved per round trip (256).
    * ``create_indexes`` -- create the indexes on ``open()`` (default true).
    """

    name: ClassVar[str] = "mongodb"
    capabilities: ClassVar[Capabilities] = Capabilities(
        persistent=True, shared=True, max_value_size=None, supports_series_rewrite=True
    )
