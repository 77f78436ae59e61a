"""``RedisBackend``: the hivemem backend contract on Redis and Redis Cluster.

See ``docs/backends/redis.md`` for the full story. The class is composed
from one part per reason to change:

* :mod:`~hivemem_redis.connection` -- client, lifecycle, retries (only for
  idempotent calls; ``incr``, ``append``, ``rewrite_series`` and
  compare-and-set writes are never retried), ``ping``, ``stats``,
  ``purge_residue`` and ``subscribe`` (:mod:`~hivemem_redis.invalidation`);
* :mod:`~hivemem_redis.commands` -- pipelines, scripts, self-packed RESP and
  ``MULTI``/``EXEC`` staging, the namespace registries;
* :mod:`~hivemem_redis.records` -- ``get``/``get_many`` (``GET``/``MGET``),
  the write scripts and ``scan`` over the lexicographic index
  (``list_ids``/``list_records`` are the base class's defaults over it);
* :mod:`~hivemem_redis.series` -- sorted sets scored by timestamp, and
  ``rewrite_series`` in place;
* :mod:`~hivemem_redis.counters` -- ``HINCRBYFLOAT`` hashes;
* :mod:`~hivemem_redis.namespace` -- ``kinds``, ``namespace_stats``,
  ``drop_namespace`` over the registries.

Keys follow :mod:`hivemem_redis.keys`, the record string
:mod:`hivemem_redis.record_format`, the Lua scripts
:mod:`hivemem_redis.scripts`. ``KEYS``/``SCAN`` are never used.
"""

from __future__ import annotations

from typing import ClassVar

from hivemem.plugin import Capabilities

from .counters import RedisCounters
from .namespace import RedisNamespace
from .record_format import MAX_VALUE_SIZE
from .records import RedisRecords
from .series import RedisSeries

__all__ = ["MAX_VALUE_SIZE", "RedisBackend"]


class RedisBackend(RedisRecords, RedisSeries, RedisCounters, RedisNamespace):
    """Redis / Redis Cluster backend; see the module docstring and docs/backends/redis.md."""

    name: ClassVar[str] = "redis"
    capabilities: ClassVar[Capabilities] = Capabilities(
        persistent=True,
        shared=True,
        max_value_size=MAX_VALUE_SIZE,
        supports_series_rewrite=True,
    )
