"""The seed's entity-level API as an adapter over a :class:`~hivemem.Memory`.

``SeedMemory(memory)`` implements :class:`DistributedMemoryBackend` (the
seed's interface) with Memory's one vocabulary (put/get/list/append/...), as
dogpile.cache's ``ProxyBackend`` wraps what it adapts; every other attribute
(``config``, ``put``, ``metrics`` ...) is the wrapped Memory's.

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
import time
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .memory import Memory

CONVERSATION = "conversation"
FEEDBACK = "feedback"
TOOL_PREFIX = "tool:"


class DistributedMemoryBackend(abc.ABC):
    """The seed's entity-level backend interface (implemented by :class:`SeedMemory`).

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


class SeedMemory(DistributedMemoryBackend):
    """The seed's operations over a wrapped :class:`~hivemem.Memory` (``self.memory``)."""

    def __init__(self, memory: Memory) -> None:
        self.memory = memory

    def __repr__(self) -> str:
        return f"SeedMemory({self.memory!r})"

    def __getattr__(self, name: str) -> Any:
        # everything that is not the seed's vocabulary is the Memory's
        if name == "memory":
            raise AttributeError(name)
        return getattr(self.memory, name)

    async def open(self) -> SeedMemory:
        """Connect the Memory (idempotent)."""
        await self.memory.open()
        return self

    async def close(self) -> None:
        """Close the Memory. Safe to call twice."""
        await self.memory.close()

    async def __aenter__(self) -> SeedMemory:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- entities ------------------------------------------------------------------------
    async def save_entity(
        self,
        entity_type: str,
        entity_id: str,
        entity_data: Any,
        cache: bool = True,
        *,
        ttl: float | None = None,
    ) -> None:
        """Save ``entity_data`` under ``entity_type/entity_id`` (``ttl`` in seconds)."""
        await self.memory.put(entity_type, entity_id, entity_data, ttl=ttl, cache=cache)

    async def save_entities(
        self, entity_type: str, entities: Mapping[str, Any], *, ttl: float | None = None
    ) -> None:
        """Save several entities of one type in one backend round trip."""
        await self.memory.put_many(entity_type, entities, ttl=ttl)

    async def load_entity(
        self, entity_type: str, entity_id: str, use_cache: bool = True, cache_ttl: int = 300
    ) -> Any:
        """The entity or None; a cached copy is used for up to ``cache_ttl`` seconds."""
        return await self.memory.get(
            entity_type, entity_id, use_cache=use_cache, cache_ttl=cache_ttl
        )

    async def load_entities(self, entity_type: str, entity_ids: list[str]) -> dict[str, Any]:
        """``{id: data}`` for the ids that exist, in one backend round trip."""
        return await self.memory.get_many(entity_type, entity_ids)

    async def load_entities_by_type(self, entity_type: str) -> dict[str, Any]:
        """Every entity of a type, by id, in id order (read in pages)."""
        found: dict[str, Any] = {}
        async for page in self.memory.iter_pages(entity_type):
            found.update(page)
        return found

    async def load_entities_by_prefix(
        self, entity_type: str, prefix: str, limit: int | None = None, *, newest: bool = False
    ) -> dict[str, Any]:
        """Entities whose id starts with ``prefix``, in id order.

        Without ``newest`` these are the first ``limit`` ids; with
        ``newest=True`` the last ``limit`` ids (for timestamp-suffixed ids:
        the most recent), returned in ascending id order.
        """
        if not newest:
            return await self.memory.list(entity_type, prefix, limit=limit)
        rows = await self.memory.list(entity_type, prefix, limit=limit, reverse=True)
        return dict(reversed(list(rows.items())))

    async def delete_entity(self, entity_type: str, entity_id: str) -> bool:
        """Delete; True when the entity existed."""
        return await self.memory.delete(entity_type, entity_id)

    async def get_entity_types(self) -> list[str]:
        """Entity types (kinds) present in this namespace."""
        return await self.memory.kinds()

    # -- conversation ----------------------------------------------------------------------
    async def save_conversation_history(self, messages: list[Any]) -> None:
        """Replace the whole history atomically (the seed's semantics)."""
        await self.memory.replace_series(CONVERSATION, list(messages))

    async def append_message(self, message: Any, *, ts: float | None = None) -> None:
        """Append one message without rewriting the history."""
        await self.memory.append(CONVERSATION, message, ts=ts)

    async def load_conversation_history(
        self, limit: int | None = None, *, start: float | None = None, end: float | None = None
    ) -> list[Any]:
        """The history in order; ``limit`` keeps the latest N, ``start``/``end`` a time range."""
        rows = await self.memory.read_series(
            CONVERSATION, start=start, end=end, limit=limit, latest=limit is not None
        )
        return [value for _, value in rows]

    # -- tools and feedback ----------------------------------------------------------------
    async def save_tool_usage(self, tool_name: str, args: Any, result: Any) -> None:
        """Append ``{"args", "result", "timestamp"}`` to the tool's series."""
        now = time.time()
        usage = {"args": args, "result": result, "timestamp": now}
        await self.memory.append(TOOL_PREFIX + tool_name, usage, ts=now)

    async def load_tool_usage(
        self,
        tool_name: str | None = None,
        *,
        limit: int | None = None,
        start: float | None = None,
        end: float | None = None,
    ) -> dict[str, list[Any]]:
        """``{tool: [uses oldest first]}`` for one tool or all; ``limit`` keeps the latest N."""
        names = [tool_name] if tool_name is not None else await self.get_tool_names()
        usage: dict[str, list[Any]] = {}
        for name in names:
            rows = await self.memory.read_series(
                TOOL_PREFIX + name, start=start, end=end, limit=limit, latest=limit is not None
            )
            usage[name] = [value for _, value in rows]
        return usage

    async def get_tool_names(self) -> list[str]:
        """Names of tools with recorded usage."""
        return [name[len(TOOL_PREFIX) :] for name in await self.memory.series_names(TOOL_PREFIX)]

    async def save_learning_feedback(
        self, agent_name: str, feedback_type: str, feedback_data: Any
    ) -> None:
        """Append a feedback entry (the seed's ``save_learning_feedback``)."""
        now = time.time()
        entry = {
            "agent_name": agent_name,
            "feedback_type": feedback_type,
            "feedback_data": feedback_data,
            "timestamp": now,
        }
        await self.memory.append(FEEDBACK, entry, ts=now)

    async def get_learning_feedback(
        self, agent_name: str | None = None, feedback_type: str | None = None
    ) -> list[dict[str, Any]]:
        """Feedback entries, newest first, optionally filtered."""
        entries = [value for _, value in await self.memory.read_series(FEEDBACK)]
        entries = [
            entry
            for entry in entries
            if (agent_name is None or entry.get("agent_name") == agent_name)
            and (feedback_type is None or entry.get("feedback_type") == feedback_type)
        ]
        entries.reverse()
        return entries

    # -- summary ---------------------------------------------------------------------------
    async def get_memory_summary(self) -> str:
        """A markdown rendering of :meth:`Memory.summary` and the metrics."""
        return render_summary((await self.memory.summary()).to_dict(), self.memory.metrics())


#: the seed's names a Memory still answers (forwarded here with a DeprecationWarning)
SEED_NAMES: frozenset[str] = frozenset(
    name
    for name, value in vars(SeedMemory).items()
    if not name.startswith("_") and callable(value) and name not in ("open", "close")
)


def deprecated_seed_method(memory: Memory, name: str) -> Callable[..., Any]:
    """``SeedMemory(memory).<name>``, warning that the seed's names moved off Memory."""
    warnings.warn(
        f"Memory.{name}() is the seed API and moves off Memory: use "
        f"hivemem.SeedMemory(memory).{name}() (DistributedMemoryFactory and "
        "DistributedMemoryManager return it) or Memory's put/get/list/append/...",
        DeprecationWarning,
        stacklevel=3,  # the caller of Memory.__getattr__
    )
    return getattr(SeedMemory(memory), name)


def _when(value: float | None) -> str:
    if value is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(value)) + "Z"


def _span(stats: Mapping[str, Any]) -> str:
    return f"({_when(stats['oldest'])} .. {_when(stats['newest'])})"


def render_summary(summary: Mapping[str, Any], metrics: Mapping[str, Any] | None = None) -> str:
    """Markdown text of a summary dict (and optionally metrics), as the seed printed it."""
    lines = [f"## Memory Summary ({summary['backend']}, namespace {summary['namespace']!r})", ""]
    series = summary.get("series", {})
    conversation = series.get(CONVERSATION)
    lines += [
        "### Conversation History",
        f"- {conversation['length'] if conversation else 0} messages in history",
        "",
        "### Entities in Memory",
    ]
    for kind, stats in summary.get("kinds", {}).items():
        lines.append(f"- {kind}: {stats['count']} entities ({stats['bytes']} bytes)")
    lines += ["", "### Tool Usage"]
    for name, stats in series.items():
        if name.startswith(TOOL_PREFIX):
            lines.append(f"- {name[len(TOOL_PREFIX) :]}: {stats['length']} uses {_span(stats)}")
    lines.append("")
    others = {
        name: stats
        for name, stats in series.items()
        if name != CONVERSATION and not name.startswith(TOOL_PREFIX)
    }
    if others:
        lines.append("### Other Series")
        for name, stats in others.items():
            lines.append(f"- {name}: {stats['length']} entries {_span(stats)}")
        lines.append("")
    if metrics is not None:
        lines += _metrics_lines(metrics)
    return "\n".join(lines)


def _metrics_lines(metrics: Mapping[str, Any]) -> list[str]:
    return [
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


__all__ = [
    "CONVERSATION",
    "FEEDBACK",
    "SEED_NAMES",
    "TOOL_PREFIX",
    "DistributedMemoryBackend",
    "SeedMemory",
    "deprecated_seed_method",
    "render_summary",
]
