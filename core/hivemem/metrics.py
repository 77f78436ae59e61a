"""Operation metrics: counts, errors and latency percentiles per operation."""

from __future__ import annotations

from collections import deque
from typing import Any

#: latency samples kept per operation (a sliding window)
WINDOW = 2048


class OpStats:
    """Counts, errors and a sliding window of latencies for one operation."""

    __slots__ = ("count", "errors", "samples")

    def __init__(self) -> None:
        self.count = 0
        self.errors = 0
        self.samples: deque[float] = deque(maxlen=WINDOW)

    def to_dict(self) -> dict[str, Any]:
        """count, errors and p50/p95/p99 latency in milliseconds."""
        data = sorted(self.samples)
        out: dict[str, Any] = {"count": self.count, "errors": self.errors}
        for name, quantile in (("p50_ms", 0.50), ("p95_ms", 0.95), ("p99_ms", 0.99)):
            if data:
                rank = min(len(data) - 1, max(0, round(quantile * len(data) + 0.5) - 1))
                out[name] = round(data[rank] * 1000, 4)
            else:
                out[name] = None
        return out


class Metrics:
    """The numbers behind ``Memory.metrics()`` and the seed's ``get_metrics()``."""

    def __init__(self) -> None:
        #: per operation (a plain dict: the hot path reads it with ``ops.get``)
        self.ops: dict[str, OpStats] = {}
        self.reads = 0  # backend record reads
        self.writes = 0  # backend record writes and deletes
        self.errors = 0
        self.tier_hits: dict[str, int] = {}
        self.tier_misses: dict[str, int] = {}

    def op(self, name: str) -> OpStats:
        """The stats object of one operation (created on first use)."""
        stats = self.ops.get(name)
        if stats is None:
            stats = self.ops[name] = OpStats()
        return stats

    def failed(self, name: str) -> None:
        """Count a failed call of one operation."""
        self.errors += 1
        self.op(name).errors += 1

    def hit(self, tier: str) -> None:
        """Count a cache hit in ``tier``."""
        self.tier_hits[tier] = self.tier_hits.get(tier, 0) + 1

    def miss(self, tier: str) -> None:
        """Count a cache miss in ``tier``."""
        self.tier_misses[tier] = self.tier_misses.get(tier, 0) + 1

    def reset(self) -> None:
        """Forget everything."""
        self.ops.clear()
        self.reads = self.writes = self.errors = 0
        self.tier_hits.clear()
        self.tier_misses.clear()

    def to_dict(self, cache_stats: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
        """Seed-compatible top-level counters plus per-operation and per-tier detail."""
        hits = sum(self.tier_hits.values())
        first_tier_lookups = 0
        tiers: dict[str, Any] = {}
        for tier in dict.fromkeys([*self.tier_hits, *self.tier_misses, *(cache_stats or {})]):
            tier_hits, tier_misses = self.tier_hits.get(tier, 0), self.tier_misses.get(tier, 0)
            lookups = tier_hits + tier_misses
            tiers[tier] = {
                "hits": tier_hits,
                "misses": tier_misses,
                "hit_ratio": round(tier_hits / lookups, 4) if lookups else None,
                **({"cache": cache_stats[tier]} if cache_stats and tier in cache_stats else {}),
            }
            if not first_tier_lookups:
                first_tier_lookups = lookups
        # a lookup is a miss only when it missed every tier
        misses = max(0, first_tier_lookups - hits)
        return {
            "reads": self.reads,
            "writes": self.writes,
            "cache_hits": hits,
            "cache_misses": misses,
            "errors": self.errors,
            "cache_hit_ratio": round(hits / (hits + misses), 4) if hits + misses else None,
            "operations": {name: op.to_dict() for name, op in sorted(self.ops.items())},
            "tiers": tiers,
        }
