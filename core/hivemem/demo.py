"""``hivemem demo``: the seed's example, step by step, on the selected memory."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from .memory import Memory


async def run_demo(opener: Callable[..., Memory], echo: Callable[[str], Any]) -> None:
    """Run the walk-through in the ``demo`` namespace (cleared first) and print each step."""

    def show(label: str, value: Any) -> None:
        echo(f"  {label}: {json.dumps(value, default=str, ensure_ascii=False)}")

    memory = opener(namespace="demo")
    async with memory as mm:
        echo(f"hivemem demo on {mm.config.url.split('?')[0]} (namespace 'demo')")
        echo(f"  pipeline: {mm.pipeline.names}, caches: {[n for n, _ in mm.caches]}")
        await mm.drop()

        echo("\n1. entities")
        user = {
            "name": "John Doe",
            "email": "john@example.com",
            "preferences": {"theme": "dark", "language": "en"},
        }
        await mm.save_entity("user", "user123", user)
        show(
            "save_entity('user', 'user123') then load_entity",
            await mm.load_entity("user", "user123"),
        )
        show("delete_entity", await mm.delete_entity("user", "user123"))
        show("load_entity after delete", await mm.load_entity("user", "user123"))

        echo("\n2. conversation history")
        await mm.save_conversation_history(
            [
                {"role": "user", "content": "What is the capital of France?"},
                {"role": "assistant", "content": "Paris."},
            ]
        )
        await mm.append_message({"role": "user", "content": "And of Italy?"})
        history = await mm.load_conversation_history()
        show(f"{len(history)} messages, latest", history[-1])

        echo("\n3. tool usage")
        await mm.save_tool_usage("web_search", {"query": "capital of Italy"}, {"answer": "Rome"})
        await mm.save_tool_usage("calculator", {"expression": "6*7"}, 42)
        usage = await mm.load_tool_usage()
        show("tools", sorted(usage))
        show("calculator uses", [u["result"] for u in usage["calculator"]])

        echo("\n4. rewards saved per timestamp, read back by prefix")
        base = int(time.time())
        await mm.save_entities(
            "reward",
            {
                f"agent1_{base + i}": {"reward": round(0.1 * i, 2), "timestamp": base + i}
                for i in range(15)
            },
        )
        first = await mm.load_entities_by_prefix("reward", "agent1_", limit=3)
        newest = await mm.load_entities_by_prefix("reward", "agent1_", limit=3, newest=True)
        show("first 3 ids (the seed's call: oldest)", list(first))
        show("newest 3 ids (newest=True)", list(newest))

        echo("\n5. Q-values updated atomically")
        for _ in range(3):
            await mm.incr("q_table:agent1", "state-7", "left", 0.5)
        show("counters", await mm.counters("q_table:agent1", ["state-7"]))

        echo("\n6. summary")
        echo(await mm.get_memory_summary())

        echo("7. metrics")
        metrics = mm.metrics()
        show(
            "totals",
            {k: metrics[k] for k in ("reads", "writes", "cache_hits", "cache_misses", "errors")},
        )
        for op, s in metrics["operations"].items():
            echo(f"  {op:<16} n={s['count']:<3} p50={s['p50_ms']} ms  p99={s['p99_ms']} ms")
        show("ping", await mm.ping())
