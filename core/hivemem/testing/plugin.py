"""pytest plugin of the hivemem conformance kit (the ``pytest11`` entry point ``hivemem``).

Installed with hivemem, so every pytest run that has hivemem installed gets
these fixtures without a ``conftest.py``. Importing it is cheap: the suites
(which need hypothesis) load only when a test module imports them.

Async tests without pytest-asyncio
----------------------------------
An ``async def`` test that requests the ``hivemem_runner`` fixture (directly,
through ``@pytest.mark.usefixtures("hivemem_runner")``, or by carrying the
``hivemem_async`` marker) is run by :func:`pytest_pyfunc_call` on that
fixture's :class:`asyncio.Runner`. The runner is function-scoped and is the
*same* event loop the test's synchronous fixtures see, so a fixture can build
an async resource with ``hivemem_runner.run(...)`` and the test can use it::

    @pytest.fixture
    def backend(hivemem_runner):
        b = MemoryBackend("memory://")
        hivemem_runner.run(b.open())
        yield b
        hivemem_runner.run(b.close())

    @pytest.mark.usefixtures("hivemem_runner")
    async def test_put(backend):
        assert await backend.put("ns", "k", "id", b"v") == 1

The ini option ``hivemem_auto_runner = true`` gives every ``async def`` test
the runner automatically; ``hivemem_async_timeout`` (seconds, default 300,
0 for none) fails a coroutine test that hangs instead of hanging the run.
Async tests that do not ask for the runner are left to other plugins
(pytest-asyncio, anyio), so the plugin coexists with them.

Server fixtures
---------------
Each plugin ships the fixtures of its own server as a pytest plugin of its
distribution (a ``pytest11`` entry point), built on the generic launcher
:mod:`hivemem.testing.servers` and the helpers here (:func:`start_server`,
:func:`server_factory`): ``redis_server``, ``redis_server_factory`` and
``redis_cluster`` come from ``hivemem_redis.testing``, ``memcached_server``
and ``memcached_server_factory`` from ``hivemem_memcached.testing``. When a
server binary is missing the fixture skips with the ``apt-get`` command that
installs it, or fails when the ``CI`` environment variable is
``true``/``1``; when the plugin itself is not installed (or is disabled with
``-p no:NAME``) the fixture does the same, naming the package to install.

Nothing skips silently in CI
----------------------------
Every "cannot run here" of the kit goes through
:func:`hivemem.testing.helpers.skip_or_fail`: a skip with its reason on a
developer's machine, a failure under ``CI``. That covers missing server
binaries, a suite subclass that forgot the fixture naming what it tests
(``backend_url``, ``cache_url``, ``codec_kind``/``codec_name``: checked
before the test's fixtures are set up), and tests marked
``@pytest.mark.hivemem_requires("hivemem_fernet", ...)`` when one of those
modules is not installed (:func:`~hivemem.testing.helpers.require_module`
does the same inside a test body or at module level).

``not_applicable`` tables are checked when their class is collected: every
name must be a test of the class and every reason a non-empty string, else
the class fails to collect with an error naming the entry.
"""

from __future__ import annotations

import asyncio
import difflib
import inspect
import types
from collections.abc import Callable, Coroutine, Iterator, Mapping
from typing import Any, Protocol, TypeVar

import pytest

from .helpers import in_ci, missing_fixture, require_module, skip_or_fail
from .servers import ServerBinaryMissing


class Startable(Protocol):
    """A server manager: ``start()`` it, ``stop(cleanup=True)`` it."""

    def start(self) -> Any: ...

    def stop(self, *, cleanup: bool = False) -> None: ...


S = TypeVar("S", bound=Startable)

_DEFAULT_TIMEOUT = 300.0

__all__ = [
    "PLUGIN_FIXTURES",
    "hivemem_plugins",
    "hivemem_runner",
    "in_ci",
    "missing_binary",
    "server_factory",
    "start_server",
]

#: server fixtures the plugins provide: fixture -> (its pytest plugin module, distribution)
PLUGIN_FIXTURES: dict[str, tuple[str, str]] = {
    "redis_server": ("hivemem_redis.testing", "hivemem-redis"),
    "redis_server_factory": ("hivemem_redis.testing", "hivemem-redis"),
    "redis_cluster": ("hivemem_redis.testing", "hivemem-redis"),
    "memcached_server": ("hivemem_memcached.testing", "hivemem-memcached"),
    "memcached_server_factory": ("hivemem_memcached.testing", "hivemem-memcached"),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the kit's ini options."""
    parser.addini(
        "hivemem_auto_runner",
        type="bool",
        default=False,
        help="hivemem: run every async def test on the hivemem_runner event loop",
    )
    parser.addini(
        "hivemem_async_timeout",
        default=str(_DEFAULT_TIMEOUT),
        help="hivemem: seconds before a coroutine test is failed as hung (0: no limit)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the kit's markers; stand in for server fixtures of plugins not loaded."""
    config.addinivalue_line(
        "markers",
        "hivemem_async: run this async def test on the hivemem_runner event loop",
    )
    config.addinivalue_line(
        "markers",
        "hivemem_requires(*modules): skip when a module is not installed (fail under CI)",
    )
    _stand_in_for_missing_fixtures(config)


def _plugin_loaded(config: pytest.Config, module: str) -> bool:
    plugins = config.pluginmanager.get_plugins()
    return any(getattr(plugin, "__name__", None) == module for plugin in plugins)


def _not_installed(fixture: str, module: str, distribution: str) -> Callable[[], None]:
    def stand_in() -> None:
        skip_or_fail(
            f"the {fixture} fixture comes from {module}, in the {distribution} plugin, which "
            f"is not installed or not loaded (-p no:...): pip install {distribution}"
        )

    stand_in.__name__ = fixture
    return stand_in


def _stand_in_for_missing_fixtures(config: pytest.Config) -> None:
    """Register fixtures that skip (fail under CI) for server plugins that are not loaded.

    A test asking for ``redis_server`` without hivemem-redis installed then
    says what to install instead of "fixture not found".
    """
    stand_ins = {
        fixture: pytest.fixture(name=fixture)(_not_installed(fixture, module, distribution))
        for fixture, (module, distribution) in PLUGIN_FIXTURES.items()
        if not _plugin_loaded(config, module)
    }
    if stand_ins:
        holder = types.ModuleType("hivemem.testing.missing_server_fixtures")
        holder.__dict__.update(stand_ins)
        config.pluginmanager.register(holder, "hivemem-missing-server-fixtures")


#: fixtures a suite subclass must define, by the suite's (module, class name); the
#: suites are named, not imported, so loading this plugin does not load hypothesis
_REQUIRED_FIXTURES: dict[tuple[str, str], tuple[str, ...]] = {
    ("hivemem.testing.backend_suite", "BackendSuite"): ("backend_url",),
    ("hivemem.testing.cache_suite", "CacheSuite"): ("cache_url",),
    ("hivemem.testing.codec_suite", "CodecSuite"): ("codec_kind", "codec_name"),
}


def _defined_in(cls: type, name: str) -> type | None:
    """The class of ``cls``'s MRO whose body defines ``name`` (None: nowhere)."""
    return next((klass for klass in cls.__mro__ if name in vars(klass)), None)


def _missing_fixtures(item: pytest.Item) -> list[str]:
    """Required suite fixtures ``item`` uses that its class left at the suite's default.

    A fixture the test does not use (an author who overrides ``backend``
    needs no ``backend_url``) or parametrizes directly is not missing.
    """
    cls = getattr(item, "cls", None)
    if cls is None:
        return []
    used = getattr(item, "fixturenames", ())
    callspec = getattr(item, "callspec", None)
    direct = callspec.params if callspec is not None else {}
    missing: list[str] = []
    for base in cls.__mro__:
        for name in _REQUIRED_FIXTURES.get((base.__module__, base.__qualname__), ()):
            if name in used and name not in direct and _defined_in(cls, name) is base:
                missing.append(name)
    return missing


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before any fixture runs: required suite fixtures, then ``hivemem_requires`` modules."""
    cls = getattr(item, "cls", None)
    missing = _missing_fixtures(item)
    if cls is not None and missing:
        missing_fixture(cls, *missing)
    for mark in item.iter_markers("hivemem_requires"):
        for module in mark.args:
            require_module(module)


def _check_not_applicable(collector: pytest.Module | pytest.Class, cls: type) -> None:
    """Raise a collection error unless ``cls.not_applicable`` names tests of ``cls``, with reasons.

    A misspelt name would otherwise deselect nothing (the test runs, or a
    different one is dropped) and nobody would notice.
    """
    table = getattr(cls, "not_applicable", None)
    if table is None:
        return
    where = f"{cls.__qualname__}.not_applicable"
    if not isinstance(table, Mapping):
        raise collector.CollectError(
            f"{where} must be a dict {{test name: reason}}, not {type(table).__name__}"
        )
    tests = sorted(
        name for name in dir(cls) if collector.istestfunction(getattr(cls, name, None), name)
    )
    problems: list[str] = []
    for name, reason in table.items():
        if not isinstance(name, str) or name not in tests:
            close = difflib.get_close_matches(str(name), tests, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"{name!r} is not a test of {cls.__name__}{hint}")
        elif not isinstance(reason, str) or not reason.strip():
            problems.append(f"{name!r} needs a reason (a non-empty string), not {reason!r}")
    if problems:
        raise collector.CollectError(f"{where}: " + "; ".join(problems))


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(
    collector: pytest.Module | pytest.Class, name: str, obj: object
) -> None:
    """Check a test class's ``not_applicable`` table as the class is collected."""
    if inspect.isclass(obj) and collector.istestclass(obj, name):
        _check_not_applicable(collector, obj)


_NOT_APPLICABLE = pytest.StashKey[dict[str, int]]()


def _not_applicable(item: pytest.Item) -> str | None:
    cls = getattr(item, "cls", None)
    table = getattr(cls, "not_applicable", None) if cls is not None else None
    if not table:
        return None
    return table.get(getattr(item, "originalname", item.name))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect tests a suite declares not applicable; give coroutine tests the runner.

    A suite subclass may set ``not_applicable = {"test_name": "reason"}`` for
    kit tests that do not apply to what it tests (a compressor is not asked to
    serialize objects; an in-memory backend is not persistent). Those tests
    are deselected and counted in the terminal summary rather than skipped;
    a capability the subject lacks and does not declare still skips at run
    time, naming the flag.
    """
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    counts: dict[str, int] = {}
    for item in items:
        reason = _not_applicable(item)
        if reason is None:
            keep.append(item)
        else:
            dropped.append(item)
            counts[reason] = counts.get(reason, 0) + 1
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
        config.stash[_NOT_APPLICABLE] = counts
    auto = bool(config.getini("hivemem_auto_runner"))
    for item in items:
        if not isinstance(item, pytest.Function):
            continue
        if not inspect.iscoroutinefunction(item.obj):
            continue
        if (auto or item.get_closest_marker("hivemem_async")) and (
            "hivemem_runner" not in item.fixturenames
        ):
            item.fixturenames.append("hivemem_runner")


async def _bounded(coro: Coroutine[Any, Any, Any], timeout: float) -> Any:
    async with asyncio.timeout(timeout):
        return await coro


def _timeout(config: pytest.Config) -> float:
    raw = config.getini("hivemem_async_timeout")
    try:
        return float(raw)
    except (TypeError, ValueError):
        raise pytest.UsageError(f"hivemem_async_timeout={raw!r} is not a number") from None


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run an ``async def`` test on its ``hivemem_runner``; leave other tests alone."""
    func = pyfuncitem.obj
    if not inspect.iscoroutinefunction(func):
        return None
    runner = pyfuncitem.funcargs.get("hivemem_runner")
    if not isinstance(runner, asyncio.Runner):
        return None
    argnames = pyfuncitem._fixtureinfo.argnames
    coro = func(**{name: pyfuncitem.funcargs[name] for name in argnames})
    timeout = _timeout(pyfuncitem.config)
    runner.run(_bounded(coro, timeout) if timeout > 0 else coro)
    return True


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Say which kit tests were deselected as not applicable, and why."""
    counts = config.stash.get(_NOT_APPLICABLE, None)
    if counts:
        terminalreporter.write_line(
            "hivemem kit: deselected as not applicable: "
            + "; ".join(f"{n} x {reason}" for reason, n in sorted(counts.items()))
        )


# -- helpers ----------------------------------------------------------------------------


def missing_binary(exc: ServerBinaryMissing) -> None:
    """Skip the test for a missing server binary; fail instead under ``CI``."""
    skip_or_fail(str(exc))


def start_server(server: S) -> S:
    """Start ``server``; skip (or fail under CI) when its binary is missing."""
    try:
        server.start()
    except ServerBinaryMissing as exc:
        missing_binary(exc)
    return server


def server_factory(make: Callable[..., S]) -> Iterator[Callable[..., S]]:
    """The body of a ``*_server_factory`` fixture: ``yield from server_factory(MyServer)``.

    The fixture's value starts a private server per call (``port`` and the
    manager's options passed on); every server it started stops afterwards.
    """
    started: list[S] = []

    def start(port: int | None = None, **options: Any) -> S:
        server = make(port, **options)
        started.append(server)
        return start_server(server)

    try:
        yield start
    finally:
        for server in started:
            server.stop(cleanup=True)


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture
def hivemem_runner() -> Iterator[asyncio.Runner]:
    """A function-scoped :class:`asyncio.Runner`; coroutine tests run on its loop."""
    with asyncio.Runner() as runner:
        yield runner


@pytest.fixture
def hivemem_plugins() -> Any:
    """A freshly made plugin manager (:func:`hivemem.plugins.make_plugins`), not the global."""
    from hivemem.plugins import make_plugins

    return make_plugins()
