"""The seed's API: ``DistributedMemoryBackend``, ``DistributedMemoryFactory``,
``DistributedMemoryManager`` -- signature for signature.

Mapping onto hivemem:

* an *entity* is a record: ``kind=entity_type``, ``id=entity_id``. Unlike the
  seed's Redis backend, ``save_entity`` does not add a ``_timestamp`` key to
  your dict (the record carries its own version and TTL).
* the conversation history is the series ``conversation``;
  ``save_conversation_history`` replaces it atomically, ``append_message``
  adds one message without rewriting the history.
* tool usage is one series per tool, ``tool:<name>``; learning feedback is
  the series ``feedback``.
* ``load_entities_by_prefix(type, prefix, limit=10)`` returns the **first**
  ``limit`` ids in id order -- with the seed's ``f"{agent}_{timestamp}"`` ids
  those are the *oldest* ten. ``newest=True`` returns the last ``limit`` ids
  (the most recent rewards), still in ascending id order.
"""

from __future__ import annotations

import abc
import logging
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .memory import Memory

log = logging.getLogger("hivemem")

CONVERSATION = "conversation"
FEEDBACK = "feedback"
TOOL_PREFIX = "tool:"


class DistributedMemoryBackend(abc.ABC):
    """The seed's entity-level backend interface (implemented by :class:`~hivemem.Memory`).

    The storage contract plugins implement is :class:`hivemem.backend.Backend`;
    this class is the application-facing interface the seed's code calls.
    """

    @abc.abstractmethod
    async def save_entity(
        self, entity_type: str, entity_id: str, entity_data: dict[str, Any]
    ) -> None:
        """Save an entity."""

    @abc.abstractmethod
    async def load_entity(self, entity_type: str, entity_id: str) -> dict[str, Any] | None:
        """Load an entity or None."""

    @abc.abstractmethod
    async def load_entities_by_type(self, entity_type: str) -> dict[str, Any]:
        """All entities of a type by id."""

    @abc.abstractmethod
    async def delete_entity(self, entity_type: str, entity_id: str) -> bool:
        """Delete an entity; True when it existed."""

    @abc.abstractmethod
    async def save_conversation_history(self, messages: list[dict[str, Any]]) -> None:
        """Replace the stored conversation history."""

    @abc.abstractmethod
    async def load_conversation_history(self) -> list[dict[str, Any]]:
        """The stored conversation history."""

    @abc.abstractmethod
    async def save_tool_usage(self, tool_name: str, args: dict[str, Any], result: Any) -> None:
        """Record one tool use."""

    @abc.abstractmethod
    async def load_tool_usage(
        self, tool_name: str | None = None
    ) -> dict[str, list[dict[str, Any]]]:
        """Tool uses by tool name."""

    @abc.abstractmethod
    async def get_entity_types(self) -> list[str]:
        """Entity types present."""

    @abc.abstractmethod
    async def get_tool_names(self) -> list[str]:
        """Tool names present."""

    @abc.abstractmethod
    async def get_memory_summary(self) -> str:
        """A markdown summary."""


class SeedMethods(DistributedMemoryBackend):
    """The seed's entity-level operations, written on top of the Memory primitives."""

    async def save_entity(  # type: ignore[override]
        self: Memory,
        entity_type: str,
        entity_id: str,
        entity_data: Any,
        cache: bool = True,
        *,
        ttl: float | None = None,
    ) -> None:
        """Save ``entity_data`` under ``entity_type/entity_id`` (``ttl`` in seconds)."""
        await self.put(entity_type, entity_id, entity_data, ttl=ttl, cache=cache)

    async def save_entities(
        self: Memory, entity_type: str, entities: Mapping[str, Any], *, ttl: float | None = None
    ) -> None:
        """Save several entities of one type in one backend round trip."""
        await self.put_many(entity_type, entities, ttl=ttl)

    async def load_entity(  # type: ignore[override]
        self: Memory,
        entity_type: str,
        entity_id: str,
        use_cache: bool = True,
        cache_ttl: int = 300,
    ) -> Any:
        """The entity or None; a cached copy is used for up to ``cache_ttl`` seconds."""
        return await self.get(entity_type, entity_id, use_cache=use_cache, cache_ttl=cache_ttl)

    async def load_entities(
        self: Memory, entity_type: str, entity_ids: list[str]
    ) -> dict[str, Any]:
        """``{id: data}`` for the ids that exist, in one backend round trip."""
        return await self.get_many(entity_type, entity_ids)

    async def load_entities_by_type(self: Memory, entity_type: str) -> dict[str, Any]:  # type: ignore[override]
        """Every entity of a type, by id, in id order (read in pages)."""
        out: dict[str, Any] = {}
        async for page in self.iter_pages(entity_type):
            out.update(page)
        return out

    async def load_entities_by_prefix(
        self: Memory,
        entity_type: str,
        prefix: str,
        limit: int | None = None,
        *,
        newest: bool = False,
    ) -> dict[str, Any]:
        """Entities whose id starts with ``prefix``, in id order.

        Without ``newest`` these are the first ``limit`` ids; with
        ``newest=True`` the last ``limit`` ids (for timestamp-suffixed ids:
        the most recent), returned in ascending id order.
        """
        if not newest:
            return await self.list(entity_type, prefix, limit=limit)
        rows = await self.list(entity_type, prefix, limit=limit, reverse=True)
        return dict(reversed(list(rows.items())))

    async def delete_entity(self: Memory, entity_type: str, entity_id: str) -> bool:  # type: ignore[override]
        """Delete; True when the entity existed."""
        return await self.delete(entity_type, entity_id)

    async def save_conversation_history(self: Memory, messages: list[Any]) -> None:  # type: ignore[override]
        """Replace the whole history atomically (the seed's semantics)."""
        await self.replace_series(CONVERSATION, list(messages))

    async def append_message(self: Memory, message: Any, *, ts: float | None = None) -> None:
        """Append one message without rewriting the history."""
        await self.append(CONVERSATION, message, ts=ts)

    async def load_conversation_history(  # type: ignore[override]
        self: Memory,
        limit: int | None = None,
        *,
        start: float | None = None,
        end: float | None = None,
    ) -> list[Any]:
        """The history in order; ``limit`` keeps the latest N, ``start``/``end`` a time range."""
        rows = await self.read_series(
            CONVERSATION, start=start, end=end, limit=limit, latest=limit is not None
        )
        return [value for _, value in rows]

    async def save_tool_usage(self: Memory, tool_name: str, args: Any, result: Any) -> None:  # type: ignore[override]
        """Append ``{"args", "result", "timestamp"}`` to the tool's series."""
        now = time.time()
        await self.append(
            TOOL_PREFIX + tool_name, {"args": args, "result": result, "timestamp": now}, ts=now
        )

    async def load_tool_usage(  # type: ignore[override]
        self: Memory,
        tool_name: str | None = None,
        *,
        limit: int | None = None,
        start: float | None = None,
        end: float | None = None,
    ) -> dict[str, list[Any]]:
        """``{tool: [uses oldest first]}`` for one tool or all; ``limit`` keeps the latest N."""
        names = [tool_name] if tool_name is not None else await self.get_tool_names()
        out: dict[str, list[Any]] = {}
        for name in names:
            rows = await self.read_series(
                TOOL_PREFIX + name, start=start, end=end, limit=limit, latest=limit is not None
            )
            out[name] = [value for _, value in rows]
        return out

    async def get_tool_names(self: Memory) -> list[str]:  # type: ignore[override]
        """Names of tools with recorded usage."""
        return [n[len(TOOL_PREFIX) :] for n in await self.series_names(TOOL_PREFIX)]

    async def get_entity_types(self: Memory) -> list[str]:  # type: ignore[override]
        """Entity types (kinds) present in this namespace."""
        return await self.kinds()

    async def save_learning_feedback(
        self: Memory, agent_name: str, feedback_type: str, feedback_data: Any
    ) -> None:
        """Append a feedback entry (the seed's ``save_learning_feedback``)."""
        now = time.time()
        await self.append(
            FEEDBACK,
            {
                "agent_name": agent_name,
                "feedback_type": feedback_type,
                "feedback_data": feedback_data,
                "timestamp": now,
            },
            ts=now,
        )

    async def get_learning_feedback(
        self: Memory, agent_name: str | None = None, feedback_type: str | None = None
    ) -> list[dict[str, Any]]:
        """Feedback entries, newest first, optionally filtered."""
        rows = [value for _, value in await self.read_series(FEEDBACK)]
        rows = [
            r
            for r in rows
            if (agent_name is None or r.get("agent_name") == agent_name)
            and (feedback_type is None or r.get("feedback_type") == feedback_type)
        ]
        rows.reverse()
        return rows

    async def get_memory_summary(self: Memory) -> str:  # type: ignore[override]
        """A markdown rendering of :meth:`Memory.summary`."""
        return render_summary((await self.summary()).to_dict(), self.metrics())


def _ts(value: float | None) -> str:
    if value is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(value)) + "Z"


def render_summary(summary: Mapping[str, Any], metrics: Mapping[str, Any] | None = None) -> str:
    """Markdown text of a summary dict (and optionally metrics), as the seed printed it."""
    lines = [f"## Memory Summary ({summary['backend']}, namespace {summary['namespace']!r})", ""]
    series = summary.get("series", {})
    conv = series.get(CONVERSATION)
    lines += [
        "### Conversation History",
        f"- {conv['length'] if conv else 0} messages in history",
        "",
    ]
    lines.append("### Entities in Memory")
    for kind, s in summary.get("kinds", {}).items():
        lines.append(f"- {kind}: {s['count']} entities ({s['bytes']} bytes)")
    lines.append("")
    lines.append("### Tool Usage")
    for name, s in series.items():
        if name.startswith(TOOL_PREFIX):
            lines.append(
                f"- {name[len(TOOL_PREFIX) :]}: {s['length']} uses "
                f"({_ts(s['oldest'])} .. {_ts(s['newest'])})"
            )
    lines.append("")
    others = {
        n: s for n, s in series.items() if n != CONVERSATION and not n.startswith(TOOL_PREFIX)
    }
    if others:
        lines.append("### Other Series")
        for name, s in others.items():
            lines.append(
                f"- {name}: {s['length']} entries ({_ts(s['oldest'])} .. {_ts(s['newest'])})"
            )
        lines.append("")
    if metrics is not None:
        lines += [
            "### Cache Statistics",
            f"- Cache hits: {metrics['cache_hits']}",
            f"- Cache misses: {metrics['cache_misses']}",
            "",
            "### Memory Metrics",
            f"- Reads: {metrics['reads']}",
            f"- Writes: {metrics['writes']}",
            f"- Errors: {metrics['errors']}",
            "",
        ]
    return "\n".join(lines)


class DistributedMemoryFactory:
    """The seed's factory: ``create_memory_backend(memory_type, **config)``."""

    @staticmethod
    def create_memory_backend(memory_type: str, **config: Any) -> Memory:
        """A :class:`~hivemem.Memory` for ``memory_type`` (redis, mongodb, sqlite, memory,
        or any installed plugin with ``url=``). Connects on first use.

        Extra hivemem settings may be given too: ``namespace``, ``cache``,
        ``serializer``, ``compressor``, ``encryptor``, ``codec_options``.
        """
        from .config import seed_backend
        from .memory import open_memory

        settings = {
            k: config.pop(k)
            for k in (
                "namespace",
                "cache",
                "serializer",
                "compressor",
                "encryptor",
                "codec_options",
            )
            if k in config
        }
        return open_memory(seed_backend(memory_type, config), **settings)

    @staticmethod
    async def create_memory_backend_async(memory_type: str, **config: Any) -> Memory:
        """Same as :meth:`create_memory_backend`, opened."""
        memory = DistributedMemoryFactory.create_memory_backend(memory_type, **config)
        return await memory.open()


class DistributedMemoryManager:
    """The seed's manager: one namespace, a local cache, metrics, error logging.

    ``DistributedMemoryManager(memory_type="redis", config={...}, namespace="example")``
    works exactly as the seed documents it. With ``config`` empty the seed's
    environment variables apply (``REDIS_*``, ``MONGODB_*``). Any hivemem
    setting can be passed as a keyword (``cache=``, ``compressor=``, ...).
    """

    def __init__(
        self,
        memory_type: str = "redis",
        config: dict[str, Any] | None = None,
        namespace: str = "datamcp",
        **settings: Any,
    ) -> None:
        from .config import from_env, seed_backend
        from .memory import open_memory

        self.memory_type = memory_type.lower()
        self.config = dict(config or {})
        self.namespace = namespace
        if self.config:
            backend = seed_backend(self.memory_type, self.config)
        else:
            env = from_env({**os.environ, "MEMORY_TYPE": self.memory_type})
            backend = {k: env[k] for k in ("url", "backend_options") if k in env}
        settings.setdefault("cache", ["local://"])
        self.memory: Memory = open_memory(backend, namespace=namespace, **settings)
        log.info("hivemem %s memory, namespace %r", self.memory_type, namespace)

    def __repr__(self) -> str:
        return f"DistributedMemoryManager({self.memory_type!r}, namespace={self.namespace!r})"

    @property
    def backend(self) -> Memory:
        """The underlying :class:`~hivemem.Memory` (the seed called it ``backend``)."""
        return self.memory

    def __getattr__(self, name: str) -> Any:
        # every other seed and hivemem operation is the Memory's
        if name == "memory":
            raise AttributeError(name)
        return getattr(self.memory, name)

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
        await self.memory.save_entity(entity_type, entity_id, entity_data, cache, ttl=ttl)

    async def load_entity(
        self, entity_type: str, entity_id: str, use_cache: bool = True, cache_ttl: int = 300
    ) -> Any:
        """Load an entity or None."""
        return await self.memory.load_entity(entity_type, entity_id, use_cache, cache_ttl)

    async def delete_entity(self, entity_type: str, entity_id: str) -> bool:
        """Delete an entity; True when it existed."""
        return await self.memory.delete_entity(entity_type, entity_id)

    async def save_conversation_history(self, messages: list[Any]) -> None:
        """Replace the conversation history."""
        await self.memory.save_conversation_history(messages)

    async def load_conversation_history(self, limit: int | None = None) -> list[Any]:
        """The conversation history (``limit``: the latest N messages)."""
        return await self.memory.load_conversation_history(limit)

    async def save_tool_usage(self, tool_name: str, args: Any, result: Any) -> None:
        """Record a tool use."""
        await self.memory.save_tool_usage(tool_name, args, result)

    async def get_memory_summary(self) -> str:
        """Markdown summary with cache statistics and metrics."""
        return await self.memory.get_memory_summary()

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
