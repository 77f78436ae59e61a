"""The backend conformance suite: every rule of :mod:`hivemem.backend`, as tests.

A backend plugin proves itself by subclassing :class:`BackendSuite` in a
``Test*`` class and pointing it at its URL::

    from hivemem.testing import BackendSuite

    class TestMyBackend(BackendSuite):
        @pytest.fixture
        def backend_url(self, redis_server):
            return redis_server.url

The suite opens the backend through the plugin registry by URL scheme, so the
test also proves the plugin is installed and registered. Authors with special
needs override ``backend_options`` (extra factory keyword arguments),
``backend_factory`` (a callable returning a fresh, unopened backend) or
``backend`` itself (yield an opened backend; then drop the suite's namespaces,
:data:`KIT_NAMESPACES`, yourself). Tests that need a capability the backend
declares it lacks are skipped with the flag's name.

The tests live in one mixin per area of the contract, composed here:
records and compare-and-set (:mod:`.backend_records`), listing
(:mod:`.backend_listing`), TTL (:mod:`.backend_ttl`), series
(:mod:`.backend_series`, :mod:`.backend_rewrite`), counters and namespaces
(:mod:`.backend_counters`), lifecycle and cancellation
(:mod:`.backend_lifecycle`), the base class's own rules
(:mod:`.backend_contract`) and the model-based state machine
(:mod:`.stateful`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from hivemem.backend import Backend

from .backend_base import (
    KIT_NAMESPACES,
    NS,
    NS2,
    SEPARATOR_TRIPLES,
    BackendTestBase,
    MiB,
    open_backend,
)
from .backend_contract import ContractTests
from .backend_counters import CounterTests, NamespaceTests
from .backend_lifecycle import CancellationTests, LifecycleTests
from .backend_listing import ListingTests
from .backend_records import RecordTests
from .backend_rewrite import SeriesRewriteTests
from .backend_series import SeriesTests
from .backend_ttl import TtlTests

__all__ = [
    "KIT_NAMESPACES",
    "NS",
    "NS2",
    "SEPARATOR_TRIPLES",
    "BackendSuite",
    "MiB",
    "open_backend",
]


@pytest.mark.usefixtures("hivemem_runner")
class BackendSuite(
    RecordTests,
    ListingTests,
    TtlTests,
    SeriesTests,
    SeriesRewriteTests,
    CounterTests,
    NamespaceTests,
    LifecycleTests,
    CancellationTests,
    ContractTests,
    BackendTestBase,
):
    """Conformance tests for a :class:`~hivemem.backend.Backend`.

    Subclass it in a ``Test*`` class and provide the ``backend_url`` fixture.
    The class-level settings (``short_ttl``, ``expiry_timeout``,
    ``cancel_rounds``, ``stateful_max_examples``, ...) are documented on
    :class:`~hivemem.testing.backend_base.BackendTestBase`.
    """

    # -- fixtures the author provides / may override ---------------------------------
    @pytest.fixture
    def backend_url(self) -> str:
        """The URL of the backend under test. Subclasses must provide it."""
        pytest.skip(f"{type(self).__name__} provides no backend_url fixture")

    @pytest.fixture
    def backend_options(self) -> dict[str, Any]:
        """Extra keyword arguments for the backend factory (default none)."""
        return {}

    @pytest.fixture
    def backend_factory(
        self, backend_url: str, backend_options: dict[str, Any], hivemem_plugins: Any
    ) -> Callable[[], Backend]:
        """A callable returning a fresh, unopened backend for the URL."""
        return lambda: open_backend(backend_url, hivemem_plugins, **backend_options)

    @pytest.fixture
    def backend(
        self, backend_factory: Callable[[], Backend], hivemem_runner: asyncio.Runner
    ) -> Iterator[Backend]:
        """The opened backend, with the kit's namespaces dropped before and after."""
        subject = backend_factory()
        try:
            hivemem_runner.run(subject.open())
            hivemem_runner.run(self._drop_all(subject))
            yield subject
            hivemem_runner.run(self._drop_all(subject))
        finally:
            hivemem_runner.run(subject.close())

    @staticmethod
    async def _drop_all(backend: Backend) -> None:
        for ns in KIT_NAMESPACES:
            await backend.drop_namespace(ns)

    # -- stateful -----------------------------------------------------------------------
    def test_stateful_against_model(self, backend: Backend, hivemem_runner: asyncio.Runner) -> None:
        """Random operations on the backend and a dict model must agree (hypothesis).

        Two namespaces, long and short TTLs included; see :mod:`hivemem.testing.stateful`.
        """
        from .stateful import run_backend_state_machine

        run_backend_state_machine(
            backend,
            hivemem_runner,
            max_examples=self.stateful_max_examples,
            step_count=self.stateful_step_count,
            short_ttl=self.stateful_short_ttl,
            expiry_timeout=self.expiry_timeout,
            **self.stateful_settings,
        )
