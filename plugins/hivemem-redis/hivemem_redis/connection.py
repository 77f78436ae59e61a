"""The Redis backend's connection: client, lifecycle, retries and server facts.

:class:`RedisConnection` is the base every part of
:class:`~hivemem_redis.backend.RedisBackend` builds on. It builds the
redis-py client (standalone, Unix socket, cluster, or one the caller
passed), opens and closes it, runs each call with the retry rule and turns
client exceptions into hivemem errors that name the server but never a
credential. The base :class:`~hivemem.plugin.Backend` refuses calls made
before ``open()`` or after ``close()``; :meth:`RedisConnection._require_client`
only guards work already in flight when ``close()`` runs.

Retries (with exponential backoff and jitter) only for idempotent calls;
``incr``, ``append``, ``rewrite_series`` and compare-and-set writes are
never retried. redis-py's own retries are switched off so nothing below
retries behind our back.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from hivemem.plugin import Backend, BackendClosed, BackendUnavailable, HivememError
from redis import exceptions as rexc

from .invalidation import InvalidationHub
from .keys import KeyLayout
from .settings import RedisSettings, parse, passthrough_kwargs

log = logging.getLogger("hivemem.redis")
T = TypeVar("T")

#: client exceptions that mean "the server did not answer": retried when idempotent
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    rexc.ConnectionError,
    rexc.TimeoutError,
    rexc.ClusterDownError,
    rexc.TryAgainError,
    OSError,
)


class RedisConnection(Backend):
    """Client, lifecycle, retries, server facts and invalidation of the Redis backend."""

    def __init__(self, url: str = "redis://localhost:6379/0", **options: Any) -> None:
        self.settings: RedisSettings = parse(url, options)
        #: builds every key; tests read it (``backend.layout.kind(ns, kind)``)
        self.layout = KeyLayout(self.settings.prefix)
        self.client_id = uuid.uuid4().hex
        self._client: Any = self.settings.client
        self._owns_client = self._client is None
        self._hub: InvalidationHub | None = None

    def __repr__(self) -> str:
        mode = "cluster" if self.settings.cluster else "redis"
        return f"RedisBackend({mode} {self.settings.label}, prefix={self.settings.prefix!r})"

    @property
    def label(self) -> str:
        """``host:port`` (or socket path / node list) used in errors; never a credential."""
        return self.settings.label

    @property
    def invalidation_stats(self) -> dict[str, int]:
        """Invalidation listener counters: ``reconnects`` and ``delivered`` callbacks."""
        hub = self._hub
        if hub is None:
            return {"reconnects": 0, "delivered": 0}
        return {"reconnects": hub.reconnects, "delivered": hub.delivered}

    @property
    def is_cluster(self) -> bool:
        """True for ``redis+cluster://``."""
        return self.settings.cluster

    # -- building clients ----------------------------------------------------------
    def _client_kwargs(self) -> dict[str, Any]:
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        settings = self.settings
        kwargs: dict[str, Any] = passthrough_kwargs(settings)
        kwargs.update(
            username=settings.username,
            password=settings.password,
            socket_timeout=settings.socket_timeout,
            socket_connect_timeout=settings.socket_connect_timeout,
            decode_responses=False,
            # our own retry layer decides what may be retried (never incr)
            retry=Retry(NoBackoff(), 0),
        )
        if settings.max_connections is not None:
            kwargs["max_connections"] = settings.max_connections
        return kwargs

    def _build_client(self) -> Any:
        settings = self.settings
        kwargs = self._client_kwargs()
        if settings.cluster:
            from redis.asyncio.cluster import ClusterNode, RedisCluster

            if settings.tls:
                kwargs["ssl"] = True
            return RedisCluster(
                startup_nodes=[ClusterNode(host, port) for host, port in settings.nodes],
                require_full_coverage=True,
                **kwargs,
            )
        if settings.path is not None:
            return aioredis.Redis(unix_socket_path=settings.path, db=settings.db, **kwargs)
        if settings.tls:
            kwargs["ssl"] = True
        return aioredis.Redis(host=settings.host, port=settings.port, db=settings.db, **kwargs)

    def _pubsub_client(self) -> Any:
        """A fresh standalone client for the pub/sub connection of the invalidation hub."""
        settings = self.settings
        kwargs = self._client_kwargs()
        kwargs.pop("max_connections", None)
        if settings.cluster:  # classic PUBLISH reaches every node: any master will do
            nodes = list(settings.nodes)
            if self._client is not None:
                try:
                    primaries = self._client.get_primaries()
                    nodes = [(node.host, node.port) for node in primaries] or nodes
                except Exception:  # fall back to the startup nodes
                    pass
            host, port = random.choice(nodes)
            return aioredis.Redis(host=host, port=port, ssl=settings.tls, **kwargs)
        if settings.client is not None:  # the caller's client: copy its connection setup
            pool = settings.client.connection_pool
            pool_kwargs = dict(pool.connection_kwargs)
            pool_kwargs["socket_timeout"] = settings.socket_timeout
            pool_kwargs["retry"] = kwargs["retry"]
            return aioredis.Redis(
                connection_pool=aioredis.ConnectionPool(
                    connection_class=pool.connection_class, **pool_kwargs
                )
            )
        if settings.path is not None:
            return aioredis.Redis(unix_socket_path=settings.path, db=settings.db, **kwargs)
        return aioredis.Redis(
            host=settings.host, port=settings.port, db=settings.db, ssl=settings.tls, **kwargs
        )

    @staticmethod
    def _check_user_client(client: Any) -> None:
        kwargs = getattr(client, "connection_kwargs", None)
        if kwargs is None:
            kwargs = client.connection_pool.connection_kwargs
        if kwargs.get("decode_responses"):
            raise HivememError(
                "redis option client: the client must use decode_responses=False "
                "(hivemem stores bytes)"
            )

    # -- lifecycle -----------------------------------------------------------------
    async def open(self) -> None:
        """Create the client and check that the server answers."""
        if self._client is None:
            self._client = self._build_client()
        else:
            self._check_user_client(self._client)
        await self.ping()

    async def close(self) -> None:
        """Stop the invalidation listener and close the client we created."""
        hub, self._hub = self._hub, None
        if hub is not None:
            await hub.close()
        client, self._client = self._client, None
        if client is not None and self._owns_client:
            try:
                await client.aclose()
            except Exception:  # closing a dead connection
                log.debug("closing redis client for %s failed", self.label, exc_info=True)

    def _require_client(self) -> Any:
        """The client; BackendClosed for a call still in flight when ``close()`` ran."""
        client = self._client
        if client is None:
            raise self.closed_error()
        return client

    # -- error handling and retries ----------------------------------------------------
    def _unavailable(self, exc: BaseException, what: str, note: str = "") -> BackendUnavailable:
        if isinstance(exc, rexc.TimeoutError | asyncio.TimeoutError):
            reason = f"no reply within {self.settings.socket_timeout:g}s"
        else:
            reason = f"{type(exc).__name__}: {exc}"
        password = self.settings.password
        if password:
            reason = reason.replace(password, "***")
        return BackendUnavailable(f"redis {self.label}: {what} failed ({reason}){note}")

    async def _run(self, what: str, attempt: Callable[[], Awaitable[T]], *, idempotent: bool) -> T:
        """Run ``attempt``; retry connection failures with backoff only when ``idempotent``."""
        attempts = 1 + (self.settings.retries if idempotent else 0)
        for number in range(attempts):
            try:
                return await attempt()
            except BackendClosed:  # an OSError too, but closing is final: never retried
                raise
            except CONNECTION_ERRORS as exc:
                if number + 1 >= attempts:
                    note = "" if idempotent else "; not retried, the outcome is unknown"
                    raise self._unavailable(exc, what, note) from None
                delay = min(
                    self.settings.retry_backoff_cap, self.settings.retry_backoff * 2**number
                )
                log.debug("redis %s: %s failed (%r); retry in %.3fs", self.label, what, exc, delay)
                await asyncio.sleep(delay * (0.5 + random.random() / 2))
            except rexc.AuthenticationError as exc:
                raise BackendUnavailable(
                    f"redis {self.label}: authentication failed ({type(exc).__name__})"
                ) from None
            except rexc.ResponseError as exc:
                raise HivememError(f"redis {self.label}: {what} failed: {exc}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    # -- server ------------------------------------------------------------------------
    async def ping(self) -> bool:
        """``PING`` the server (every master on a cluster)."""

        async def attempt() -> bool:
            client = self._require_client()
            if self.is_cluster:
                from redis.asyncio.cluster import RedisCluster

                await client.execute_command("PING", target_nodes=RedisCluster.PRIMARIES)
                return True
            return bool(await client.execute_command("PING"))

        return await self._run("ping", attempt, idempotent=True)

    async def stats(self) -> dict[str, Any]:
        """Server version, mode, memory and persistence facts; JSON-serializable."""

        async def attempt() -> dict[str, Any]:
            client = self._require_client()
            out: dict[str, Any] = {
                "backend": "redis",
                "mode": "cluster" if self.is_cluster else "standalone",
                "server": self.label,
                "prefix": self.settings.prefix.decode("utf-8", "replace"),
                "redis_py": getattr(aioredis, "__version__", None)
                or __import__("redis").__version__,
            }
            fields = ("redis_version", "used_memory", "aof_enabled", "connected_clients")
            if self.is_cluster:
                from redis.asyncio.cluster import RedisCluster

                per_node = await client.info(target_nodes=RedisCluster.PRIMARIES)
                out["masters"] = {
                    str(node): {f: info.get(f) for f in fields} for node, info in per_node.items()
                }
            else:
                info = await client.info()
                out.update({f: info.get(f) for f in fields})
            return out

        return await self._run("stats", attempt, idempotent=True)

    async def purge_residue(self) -> list[str]:
        """What may still hold old values after a rewrite: Redis' own files and copies.

        Nothing is run on the server: rewriting the AOF or saving a snapshot
        is an operator's decision (it costs I/O and may be disabled).
        """
        return [
            "Redis: the append-only file keeps old values until it is rewritten: run "
            "BGREWRITEAOF on every primary and replica (redis-cli BGREWRITEAOF)",
            "Redis: RDB snapshots keep old values until the next save (BGSAVE); "
            "backups and replicas' files made before now still hold them",
        ]

    # -- invalidation ------------------------------------------------------------------
    async def subscribe(
        self, ns: str, callback: Callable[[str, str | None], None]
    ) -> Callable[[], Awaitable[None]]:
        """Call ``callback(kind, id)`` when another client writes in ``ns``.

        ``id=None`` means "anything in the namespace may have changed": sent
        for ``drop_namespace`` and after the subscription connection was lost
        (messages may have been missed meanwhile). Returns the unsubscribe
        coroutine function.
        """
        if self._hub is None:
            self._hub = InvalidationHub(
                self._pubsub_client,
                self.client_id,
                label=self.label,
                timeout=self.settings.socket_timeout + self.settings.socket_connect_timeout,
                backoff=self.settings.retry_backoff,
                backoff_cap=self.settings.retry_backoff_cap,
            )
        return await self._hub.subscribe(self.layout.namespace(ns).channel, callback)
