"""A hypothesis state machine that drives a backend and a plain-dict model together.

Every rule performs one random operation on both and asserts they agree:
records (put with and without a TTL, overwrites, CAS put and delete, batches,
prefix listing with limit, cursor and direction, expiry, dropping a
namespace), series (appends, often tied on ts with values out of order,
ranged and latest-N reads, deletes and, with ``supports_series_rewrite``,
in-place rewrites) and counters. Ids, kinds and names come from a small
alphabet full of tricky strings so that collisions, prefixes and ordering are
exercised often. After every step every record, and every series appended
to, is read back and compared with the model.

Every operation lands in one of two namespaces, the second being the first
plus ``":2"`` (so a key scheme or a prefix scan that confuses them shows up),
and the model is keyed by namespace: a read that sees the other namespace's
data, or a drop that removes it, disagrees with the model.

TTL, with ``supports_ttl``: writes draw no TTL or one of an hour or two, so no
record expires during a run; the model keeps the window the reported
``expires_at`` must fall in (the caller's clock before and after the write,
plus the TTL, give or take :data:`~.stateful_model.CLOCK_SLACK`), and a write without TTL
clears it. The :meth:`~BackendStateMachine.expire` rule rewrites a few records
with a short TTL, then writes a control record with the same TTL and waits
(polling, bounded by ``expiry_timeout``) until the control is gone: everything
written before it has then expired by the store's own clock, so the model
drops those records and every later read must agree (listings skip them, a
new write starts again at version 1). It runs at most once per example, as
it waits.

The machine is synchronous: it drives the async backend through the
:class:`asyncio.Runner` the backend was opened on. Use
:func:`run_backend_state_machine` (what :class:`~hivemem.testing.BackendSuite`
does) to bind it to a backend and run it.

The rules are grouped by what they drive: records and listings
(:mod:`.stateful_records`), series and counters (:mod:`.stateful_series`),
over the model of :mod:`.stateful_model`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from hivemem.backend import Backend

from .stateful_model import MachineBase, Stored
from .stateful_records import RecordRules
from .stateful_series import CounterRules, SeriesRules

__all__ = ["BackendStateMachine", "MachineBase", "Stored", "run_backend_state_machine"]


class BackendStateMachine(RecordRules, SeriesRules, CounterRules):
    """Random operations applied to ``backend`` and to a dict model must agree.

    Bind ``backend`` and ``runner`` (class attributes) before running; see
    :func:`run_backend_state_machine`.
    """


def run_backend_state_machine(
    backend: Backend,
    runner: asyncio.Runner,
    *,
    max_examples: int = 30,
    step_count: int = 30,
    ns: str = "hmkit-sm",
    ns2: str | None = None,
    short_ttl: float = 0.05,
    expiry_timeout: float = 10.0,
    **extra_settings: Any,
) -> None:
    """Run :class:`BackendStateMachine` against an opened ``backend`` on ``runner``'s loop.

    ``ns2`` (default ``ns + ":2"``) is the second namespace; ``short_ttl`` is
    the TTL of the records the machine lets expire and ``expiry_timeout`` how
    long their expiry may take to show. ``extra_settings`` are passed on to
    :class:`hypothesis.settings`.
    """
    machine = type(
        f"{type(backend).__name__}StateMachine",
        (BackendStateMachine,),
        {
            "backend": backend,
            "runner": runner,
            "ns": ns,
            "ns2": f"{ns}:2" if ns2 is None else ns2,
            "short_ttl": short_ttl,
            "expiry_timeout": expiry_timeout,
        },
    )
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=max_examples,
            stateful_step_count=step_count,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            **extra_settings,
        ),
    )
