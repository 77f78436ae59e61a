"""``hivemem demo``: the seed's example, step by step, on the selected memory."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from .memory import Memory
from .seed import SeedMemory

Echo = Callable[[str], Any]


class _Walk:
    """One run of the walk-through: the memory (seed API over it) and where text goes."""

    def __init__(self, memory: SeedMemory, echo: Echo) -> None:
        self.memory = memory
        self.echo = echo

    def show(self, label: str, value: Any) -> None:
        self.echo(f"  {label}: {json.dumps(value, default=str, ensure_ascii=False)}")

    async def entities(self) -> None:
        memory = self.memory
        self.echo("\n1. entities")
        user = {
            "name": "John Doe",
            "email": "john@example.com",
            "preferences": {"theme": "dark", "language": "en"},
        }
        await memory.save_entity("user", "user123", user)
        self.show(
            "save_entity('user', 'user123') then load_entity",
            await memory.load_entity("user", "user123"),
        )
        self.show("delete_entity", await memory.delete_entity("user", "user123"))
        self.show("load_entity after delete", await memory.load_entity("user", "user123"))

    async def conversation(self) -> None:
        memory = self.memory
        self.echo("\n2. conversation history")
        await memory.save_conversation_history(
            [
                {"role": "user", "content": "What is the capital of France?"},
                {"role": "assistant", "content": "Paris."},
            ]
        )
        await memory.append_message({"role": "user", "content": "And of Italy?"})
        history = await memory.load_conversation_history()
        self.show(f"{len(history)} messages, latest", history[-1])

    async def tools(self) -> None:
        memory = self.memory
        self.echo("\n3. tool usage")
        await memory.save_tool_usage(
            "web_search", {"query": "capital of Italy"}, {"answer": "Rome"}
        )
        await memory.save_tool_usage("calculator", {"expression": "6*7"}, 42)
        usage = await memory.load_tool_usage()
        self.show("tools", sorted(usage))
        self.show("calculator uses", [use["result"] for use in usage["calculator"]])

    async def rewards(self) -> None:
        memory = self.memory
        self.echo("\n4. rewards saved per timestamp, read back by prefix")
        base = int(time.time())
        rewards = {
            f"agent1_{base + i}": {"reward": round(0.1 * i, 2), "timestamp": base + i}
            for i in range(15)
        }
        await memory.save_entities("reward", rewards)
        first = await memory.load_entities_by_prefix("reward", "agent1_", limit=3)
        newest = await memory.load_entities_by_prefix("reward", "agent1_", limit=3, newest=True)
        self.show("first 3 ids (the seed's call: oldest)", list(first))
        self.show("newest 3 ids (newest=True)", list(newest))

    async def counters(self) -> None:
        self.echo("\n5. Q-values updated atomically")
        for _ in range(3):
            await self.memory.memory.incr("q_table:agent1", "state-7", "left", 0.5)
        self.show("counters", await self.memory.memory.counters("q_table:agent1", ["state-7"]))

    async def summary(self) -> None:
        self.echo("\n6. summary")
        self.echo(await self.memory.get_memory_summary())

    async def metrics(self) -> None:
        self.echo("7. metrics")
        metrics = self.memory.memory.metrics()
        totals = ("reads", "writes", "cache_hits", "cache_misses", "errors")
        self.show("totals", {name: metrics[name] for name in totals})
        for op, stats in metrics["operations"].items():
            self.echo(
                f"  {op:<16} n={stats['count']:<3} p50={stats['p50_ms']} ms  "
                f"p99={stats['p99_ms']} ms"
            )
        self.show("ping", await self.memory.memory.ping())


async def run_demo(opener: Callable[..., Memory], echo: Echo) -> None:
    """Run the walk-through in the ``demo`` namespace (cleared first) and print each step."""
    async with opener(namespace="demo") as memory:
        echo(f"hivemem demo on {memory.config.url.split('?')[0]} (namespace 'demo')")
        echo(f"  pipeline: {memory.pipeline.names}, caches: {[name for name, _ in memory.caches]}")
        await memory.drop()
        walk = _Walk(SeedMemory(memory), echo)
        for step in (
            walk.entities,
            walk.conversation,
            walk.tools,
            walk.rewards,
            walk.counters,
            walk.summary,
            walk.metrics,
        ):
            await step()
