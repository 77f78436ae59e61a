"""Fixtures of the hivemem-redis tests: real servers from the plugin's own testing module.

``redis_server``, ``redis_server_factory`` and ``redis_cluster`` come from
this plugin's own pytest plugin (``hivemem_redis.testing``, a ``pytest11``
entry point), ``hivemem_runner`` from the kit's (installed with hivemem).
Every backend built here gets a unique key prefix, so tests sharing the
session's servers never see each other's keys. ``freeze`` stops a server or
a child process and returns only once the kernel reports it stopped.
"""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from hivemem_redis.backend import RedisBackend


def unique_prefix() -> str:
    """A fresh key prefix for one test."""
    return f"t{uuid.uuid4().hex[:10]}:"


@pytest.fixture(params=["standalone", "cluster"])
def any_url(request: pytest.FixtureRequest) -> str:
    """The URL of the session's standalone server, then of the 3-master cluster."""
    if request.param == "cluster":
        return request.getfixturevalue("redis_cluster").url
    return request.getfixturevalue("redis_server").url


@pytest.fixture
def make_backend(hivemem_runner: Any) -> Iterator[Callable[..., Awaitable[RedisBackend]]]:
    """``await make_backend(url, **options)``: an open backend, closed after the test."""
    made: list[RedisBackend] = []

    async def make(url: str, *, open: bool = True, **options: Any) -> RedisBackend:
        options.setdefault("prefix", unique_prefix())
        backend = RedisBackend(url, **options)
        made.append(backend)
        if open:
            await backend.open()
        return backend

    yield make
    for backend in made:
        hivemem_runner.run(backend.close())


def _wait_stopped(pid: int) -> None:
    """Block until child ``pid`` is stopped (``kill`` returns before the target stops).

    ``waitid`` with ``WNOWAIT`` only observes: the child's status stays for
    ``subprocess`` to collect.
    """
    info = os.waitid(os.P_PID, pid, os.WSTOPPED | os.WEXITED | os.WNOWAIT)
    if info is None or info.si_code != os.CLD_STOPPED:
        raise AssertionError(f"process {pid} exited instead of stopping")


@pytest.fixture(scope="session")
def freeze() -> Callable[[Any], None]:
    """``freeze(server_or_popen)``: SIGSTOP it and return once it is stopped.

    A request sent between ``kill(SIGSTOP)`` and the stop could still be
    answered and make a test pass or fail by luck. Resume with
    ``server.resume()`` or ``popen.send_signal(signal.SIGCONT)``.
    """

    def stop(target: Any) -> None:
        if isinstance(target, subprocess.Popen):
            target.send_signal(signal.SIGSTOP)
            _wait_stopped(target.pid)
        else:
            target.pause()
            _wait_stopped(target.pid)

    return stop
