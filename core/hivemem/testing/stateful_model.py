"""The model side of the backend state machine: its alphabet, strategies and state.

:class:`MachineBase` holds the dict model (records, series, counters) of the
two namespaces and the plumbing every rule uses; the rules themselves live in
:mod:`.stateful_records` and :mod:`.stateful_series`, composed into
:class:`~hivemem.testing.stateful.BackendStateMachine`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, ClassVar, NamedTuple, TypeVar

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition

from hivemem.backend import Backend, Capabilities

__all__ = [
    "AMOUNTS",
    "BOUNDS",
    "CLOCK_SLACK",
    "CONTROL_KIND",
    "FIELDS",
    "IDS",
    "KINDS",
    "LONG_TTLS",
    "PREFIXES",
    "SERIES",
    "STAMPS",
    "MachineBase",
    "Stored",
    "ids",
    "kinds",
    "limits",
    "needs",
    "spaces",
    "ttls",
    "values",
]

T = TypeVar("T")

IDS = (
    "", "a", "a:", "a:b", "ab", "b", "\x00", "a\x00", "é", "\U0001f600",
    "\uffff", "\U00010000", "\U0010ffff", "a\U0010ffff", "*", "\r\n",
)  # fmt: skip
PREFIXES = ("", "a", "a:", "\U0010ffff", "*", "z", "\x00")
KINDS = ("k", "k:a")
SERIES = ("s", "s:", "t")
FIELDS = ("f", "", "f:g")
STAMPS = (0.0, 1.0, 1.5, 2.0, 3.0)
BOUNDS = (None, 0.0, 1.0, 1.5, 2.0, 2.5, 4.0)
AMOUNTS = (1.0, -1.0, 0.5, 2.25, -0.125)
#: TTLs (seconds) of "live" writes: far longer than any run
LONG_TTLS = (3600.0, 7200.0)
#: how far a reported ``expires_at`` may stray from the caller's clock plus the TTL
CLOCK_SLACK = 5.0
#: the kind of the :meth:`BackendStateMachine.expire` rule's control record
CONTROL_KIND = "hmkit-expiry-control"

ids = st.sampled_from(IDS)
kinds = st.sampled_from(KINDS)
values = st.binary(max_size=24)
limits = st.sampled_from((None, 0, 1, 2, 5))
#: which of the machine's two namespaces an operation lands in
spaces = st.sampled_from((0, 1))
#: no TTL twice as often as each long one
ttls = st.sampled_from((None, None, *LONG_TTLS))


def needs(flag: str) -> Any:
    """A rule precondition: the backend declares capability ``flag``."""
    return precondition(lambda self: bool(getattr(self.caps, flag)))


class Stored(NamedTuple):
    """What the model knows of one record."""

    value: bytes
    version: int
    #: the window ``expires_at`` must fall in; None: the record must never expire
    expires: tuple[float, float] | None


class MachineBase(RuleBasedStateMachine):
    """The dict model of two namespaces, and the backend it is compared with.

    ``backend`` and ``runner`` are bound (class attributes) by
    :func:`~hivemem.testing.stateful.run_backend_state_machine`.
    """

    backend: ClassVar[Backend]
    runner: ClassVar[asyncio.Runner]
    ns: ClassVar[str] = "hmkit-sm"
    #: the second namespace (the first one is a prefix of it)
    ns2: ClassVar[str] = "hmkit-sm:2"
    #: the TTL of records the ``expire`` rule lets expire, and how long that may take
    short_ttl: ClassVar[float] = 0.05
    expiry_timeout: ClassVar[float] = 10.0

    def __init__(self) -> None:
        super().__init__()
        self.caps: Capabilities = self.backend.capabilities
        self.records: dict[tuple[str, str, str], Stored] = {}
        self.series: dict[tuple[str, str], list[tuple[float, int, bytes]]] = {}
        self.counters: dict[tuple[str, str, str], dict[str, float]] = {}
        self.expired = False
        #: series appended to since the last ``series_agree`` check
        self.dirty: set[tuple[str, str]] = set()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(coro)

    @property
    def _spaces(self) -> tuple[str, str]:
        return (self.ns, self.ns2)

    def _ns(self, space: int) -> str:
        return self._spaces[space]

    @initialize()
    def start_empty(self) -> None:
        """Every example starts from two empty namespaces."""
        for ns in self._spaces:
            self._run(self.backend.drop_namespace(ns))

    def teardown(self) -> None:
        """Leave nothing behind."""
        for ns in self._spaces:
            self._run(self.backend.drop_namespace(ns))
