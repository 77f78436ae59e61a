"""The seed's API: ``DistributedMemoryBackend``, ``DistributedMemoryFactory``,
``DistributedMemoryManager`` -- signature for signature.

The factory returns a :class:`~hivemem.seed.SeedMemory` (the seed's
operations as an adapter over a :class:`~hivemem.Memory`); the manager wraps
one. Settings come, highest precedence first, from the arguments, the
environment, the TOML file (``HIVEMEM_CONFIG``) and the defaults -- as for
:func:`hivemem.open_memory`:

* the backend: ``memory_type``/``config`` when given (each config key over
  the seed's variable for it: ``REDIS_*``, ``MONGODB_*``,
  ``HIVEMEM_SQLITE_PATH``); else ``HIVEMEM_URL`` or ``MEMORY_TYPE`` (+ its
  variables); else the TOML file; else hivemem's embedded SQLite file.
* the namespace: ``namespace=``; else ``HIVEMEM_NAMESPACE`` or
  ``MEMORY_NAMESPACE``; else the TOML file; else the seed's ``"datamcp"``
  (the manager) or hivemem's ``"default"`` (the factory).
* the caches and codecs: keywords (``cache=``, ``compressor=``...); else
  ``HIVEMEM_CACHE``...; else the TOML file; else a local cache, json.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from .config import from_env, from_toml, seed_backend
from .memory import Memory, open_memory
from .seed import (
    CONVERSATION,
    FEEDBACK,
    TOOL_PREFIX,
    DistributedMemoryBackend,
    SeedMemory,
    render_summary,
)

log = logging.getLogger("hivemem")

#: the seed's namespace when nothing names one
SEED_NAMESPACE = "datamcp"
#: the seed's backend when only a backend config dict is given
SEED_MEMORY_TYPE = "redis"
#: hivemem settings the factory accepts among the backend's config keys
MEMORY_SETTINGS = ("namespace", "cache", "serializer", "compressor", "encryptor", "codec_options")


def _seed_backend_settings(
    memory_type: str | None, config: Mapping[str, Any] | None, env: Mapping[str, str]
) -> dict[str, Any] | None:
    """``url``/``backend_options`` from explicit seed arguments; None when none were given."""
    if memory_type is None and not config:
        return None
    kind = memory_type or env.get("MEMORY_TYPE") or SEED_MEMORY_TYPE
    backend = seed_backend(kind, dict(config or {}), env=env)
    backend.setdefault("backend_options", {})
    return backend


def _namespace_configured(env: Mapping[str, str], config_file: Any) -> bool:
    """True when the environment or the TOML file names a namespace."""
    if "namespace" in from_env(env):
        return True
    path = config_file or env.get("HIVEMEM_CONFIG")
    return bool(path) and "namespace" in from_toml(path)


def open_seed_memory(
    memory_type: str | None = None,
    config: Mapping[str, Any] | None = None,
    *,
    default_namespace: str | None = None,
    env: Mapping[str, str] | None = None,
    **settings: Any,
) -> SeedMemory:
    """A :class:`SeedMemory` with the precedence of the module docstring (no I/O yet).

    ``memory_type``/``config`` None mean "not given". ``default_namespace``
    replaces hivemem's default namespace when neither ``namespace=``, the
    environment nor the TOML file names one. ``settings`` are hivemem settings.
    """
    env = os.environ if env is None else env
    backend = _seed_backend_settings(memory_type, config, env)
    if (
        settings.get("namespace") is None
        and default_namespace is not None
        and not _namespace_configured(env, settings.get("config_file"))
    ):
        settings["namespace"] = default_namespace
    return SeedMemory(open_memory(backend, env=env, **settings))


class DistributedMemoryFactory:
    """The seed's factory: ``create_memory_backend(memory_type, **config)``."""

    @staticmethod
    def create_memory_backend(memory_type: str | None = None, **config: Any) -> SeedMemory:
        """A :class:`~hivemem.seed.SeedMemory` (a ``DistributedMemoryBackend``) for
        ``memory_type`` (redis, mongodb, sqlite, memory, or any installed plugin with
        ``url=``); every other attribute (``config``, ``put`` ...) is its Memory's.
        Connects on first use.

        Extra hivemem settings may be given too: ``namespace``, ``cache``,
        ``serializer``, ``compressor``, ``encryptor``, ``codec_options``.
        ``memory_type`` None: the environment, the TOML file, the defaults.
        """
        settings = {key: config.pop(key) for key in MEMORY_SETTINGS if key in config}
        return open_seed_memory(memory_type, config, **settings)

    @staticmethod
    async def create_memory_backend_async(
        memory_type: str | None = None, **config: Any
    ) -> SeedMemory:
        """Same as :meth:`create_memory_backend`, opened."""
        memory = DistributedMemoryFactory.create_memory_backend(memory_type, **config)
        return await memory.open()


class DistributedMemoryManager:
    """The seed's manager: one namespace, a local cache, metrics, error logging.

    ``DistributedMemoryManager(memory_type="redis", config={...}, namespace="example")``
    works exactly as the seed documents it. Arguments left out come from the
    environment (``MEMORY_TYPE``, ``REDIS_*``, ``MONGODB_*``, ``HIVEMEM_URL``,
    ``MEMORY_NAMESPACE``, ``HIVEMEM_NAMESPACE``, ``HIVEMEM_CACHE``...), then the
    TOML file (``HIVEMEM_CONFIG``), then the defaults (the embedded SQLite file,
    namespace ``"datamcp"``). Any hivemem setting can be passed as a keyword
    (``cache=``, ``compressor=``, ...).

    ``manager.backend`` is the :class:`~hivemem.seed.SeedMemory` it wraps,
    ``manager.memory`` that adapter's :class:`~hivemem.Memory`.
    """

    def __init__(
        self,
        memory_type: str | None = None,
        config: dict[str, Any] | None = None,
        namespace: str | None = None,
        **settings: Any,
    ) -> None:
        self.config = dict(config or {})
        self.seed = open_seed_memory(
            memory_type.lower() if memory_type else None,
            config,
            default_namespace=SEED_NAMESPACE,
            namespace=namespace,
            **settings,
        )
        self.memory: Memory = self.seed.memory
        self.memory_type = (memory_type or self.memory.config.scheme).lower()
        self.namespace = self.memory.namespace
        log.info("hivemem %s memory, namespace %r", self.memory_type, self.namespace)

    def __repr__(self) -> str:
        return f"DistributedMemoryManager({self.memory_type!r}, namespace={self.namespace!r})"

    @property
    def backend(self) -> SeedMemory:
        """The :class:`~hivemem.seed.SeedMemory` (the seed called it ``backend``)."""
        return self.seed

    def __getattr__(self, name: str) -> Any:
        # every other seed and hivemem operation is the adapter's (and so the Memory's)
        if name in ("seed", "memory"):
            raise AttributeError(name)
        return getattr(self.seed, name)

    async def save_entity(
        self,
        entity_type: str,
        entity_id: str,
        entity_data: Any,
        cache: bool = True,
        *,
        ttl: float | None = None,
    ) -> None:
        """Save an entity (``cache``: also keep it in the local cache)."""
        await self.seed.save_entity(entity_type, entity_id, entity_data, cache, ttl=ttl)

    async def load_entity(
        self, entity_type: str, entity_id: str, use_cache: bool = True, cache_ttl: int = 300
    ) -> Any:
        """Load an entity or None."""
        return await self.seed.load_entity(entity_type, entity_id, use_cache, cache_ttl)

    async def delete_entity(self, entity_type: str, entity_id: str) -> bool:
        """Delete an entity; True when it existed."""
        return await self.seed.delete_entity(entity_type, entity_id)

    async def save_conversation_history(self, messages: list[Any]) -> None:
        """Replace the conversation history."""
        await self.seed.save_conversation_history(messages)

    async def load_conversation_history(self, limit: int | None = None) -> list[Any]:
        """The conversation history (``limit``: the latest N messages)."""
        return await self.seed.load_conversation_history(limit)

    async def save_tool_usage(self, tool_name: str, args: Any, result: Any) -> None:
        """Record a tool use."""
        await self.seed.save_tool_usage(tool_name, args, result)

    async def get_memory_summary(self) -> str:
        """Markdown summary with cache statistics and metrics."""
        return await self.seed.get_memory_summary()

    def clear_cache(self) -> None:
        """Clear the local cache (synchronous, as in the seed)."""
        self.memory.clear_local_cache()

    def get_metrics(self) -> dict[str, Any]:
        """``reads``, ``writes``, ``cache_hits``, ``cache_misses``, ``errors`` and detail."""
        return self.memory.metrics()

    async def ping(self) -> bool:
        """True when the backend answers; never raises."""
        return await self.memory.ping()

    async def close(self) -> None:
        """Close connections (the seed had no close; call it when done)."""
        await self.memory.close()

    async def __aenter__(self) -> DistributedMemoryManager:
        await self.memory.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


__all__ = [
    "CONVERSATION",
    "FEEDBACK",
    "MEMORY_SETTINGS",
    "SEED_NAMESPACE",
    "TOOL_PREFIX",
    "DistributedMemoryBackend",
    "DistributedMemoryFactory",
    "DistributedMemoryManager",
    "SeedMemory",
    "open_seed_memory",
    "render_summary",
]
