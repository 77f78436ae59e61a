"""What every part of the backend suite shares: namespaces, knobs, and the factory helper.

:class:`~hivemem.testing.BackendSuite` is composed of one mixin per area of
the contract (records, listing, TTL, series, counters, lifecycle, the base
class's own rules); each mixin subclasses :class:`BackendTestBase`, which
holds the class-level settings a plugin may tune and the helpers more than
one area uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Any, ClassVar
from urllib.parse import urlsplit

from hivemem.backend import Backend

__all__ = [
    "KIT_NAMESPACES",
    "NS",
    "NS2",
    "SEPARATOR_TRIPLES",
    "BackendTestBase",
    "MiB",
    "open_backend",
    "rng",
]

#: the namespace most tests use
NS = "hmkit"
#: a second namespace (with a separator in it) for isolation tests
NS2 = "hmkit:other"
#: namespace/kind/id triples that collide under naive ``ns:kind:id`` or ``ns/kind/id`` keys
SEPARATOR_TRIPLES: tuple[tuple[str, str, str], ...] = (
    ("hmkit/a:b", "c", "d"),
    ("hmkit/a", "b:c", "d"),
    ("hmkit/a", "b", "c:d"),
    ("hmkit/a:b:c", "", "d"),
    ("hmkit/a", "b:c:d", ""),
    ("hmkit/a", "b/c", "d"),
    ("hmkit/a/b", "c", "d"),
    ("hmkit/a\x00b", "c", "d"),
    ("hmkit/a", "b\x00c", "d"),
    ("hmkit/a\x00", "b", "c"),
    ("", "hmkit/a", "b"),
)
#: every namespace the suite writes; the ``backend`` fixture drops them before and after
KIT_NAMESPACES: tuple[str, ...] = tuple(
    dict.fromkeys([NS, NS2, "hmkit-sm", "hmkit-sm:2", *(ns for ns, _, _ in SEPARATOR_TRIPLES)])
)

MiB = 1024 * 1024


def open_backend(url: str, plugins: Any, **options: Any) -> Backend:
    """Build (not open) a backend for ``url`` through ``plugins``' backend registry."""
    scheme = urlsplit(url).scheme
    entry = plugins.registry("backend").for_scheme(scheme)
    backend = entry.factory(url, **options)
    if not isinstance(backend, Backend):
        raise TypeError(
            f"backend factory for {scheme}:// returned {type(backend).__name__}, not a Backend"
        )
    return backend


def rng(seed: int = 1234) -> random.Random:
    """A seeded random generator: the same bytes on every run."""
    return random.Random(seed)


class BackendTestBase:
    """Settings a suite subclass may tune, and helpers shared by the suite's parts."""

    #: hypothesis settings of :meth:`test_stateful_against_model` (raise for deeper runs)
    stateful_max_examples: ClassVar[int] = 30
    stateful_step_count: ClassVar[int] = 30
    #: the largest value the large-value test writes (capped by ``max_value_size``)
    large_value_size: ClassVar[int] = 8 * MiB
    #: short TTL (seconds) used by expiry tests, and how long expiry may take to show
    short_ttl: ClassVar[float] = 0.2
    expiry_timeout: ClassVar[float] = 10.0
    #: how many cancel-mid-write rounds the cancellation tests run
    cancel_rounds: ClassVar[int] = 60
    #: extra hypothesis settings for the state machine (e.g. ``{"phases": [...]}``)
    stateful_settings: ClassVar[dict[str, Any]] = {}
    #: TTL of the records the state machine lets expire (it waits for them, at most once
    #: per example, up to ``expiry_timeout``; any TTL works, a short one keeps runs fast)
    stateful_short_ttl: ClassVar[float] = 0.05

    async def _cancel_after(self, coro: Any, spins: int) -> None:
        """Start ``coro``, let the loop run ``spins`` times, cancel it and wait for it."""
        task = asyncio.ensure_future(coro)
        for _ in range(spins):
            await asyncio.sleep(0)  # yield to the loop: cancel at varying points
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
