"""One wrapper that times and counts every Memory operation.

``@measured("get")`` on an ``async def`` method and ``@measured_pages("iter_pages")``
on an async generator method of an object with a ``_metrics``
(:class:`~hivemem.metrics.Metrics`) attribute: each call (each page) adds one
count and one latency sample to the operation, each exception one error.
``Memory.metrics()`` reports them. ``Memory.get`` does the same inline: its
local-cache hit is the hot path, and the wrapper's extra coroutine would cost a
fifth of it.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator, Callable, Coroutine
from time import perf_counter
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from .metrics import Metrics

P = ParamSpec("P")
R = TypeVar("R")


class Measured(Protocol):
    """What the wrappers need of the object whose methods they wrap."""

    _metrics: Metrics


S = TypeVar("S", bound=Measured)


def measured(
    op: str,
) -> Callable[
    [Callable[Concatenate[S, P], Coroutine[Any, Any, R]]],
    Callable[Concatenate[S, P], Coroutine[Any, Any, R]],
]:
    """Count and time every call of an async method as operation ``op``."""

    def wrap(
        method: Callable[Concatenate[S, P], Coroutine[Any, Any, R]],
    ) -> Callable[Concatenate[S, P], Coroutine[Any, Any, R]]:
        @functools.wraps(method)
        async def timed(self: S, *args: P.args, **kwargs: P.kwargs) -> R:
            # hot path: wraps every operation, a local-cache get included; no extra calls
            started = perf_counter()
            try:
                result = await method(self, *args, **kwargs)
            except BaseException:
                self._metrics.failed(op)
                raise
            stats = self._metrics.ops.get(op) or self._metrics.op(op)
            stats.count += 1
            stats.samples.append(perf_counter() - started)
            return result

        return timed

    return wrap


def measured_pages(
    op: str,
) -> Callable[
    [Callable[Concatenate[S, P], AsyncGenerator[R, None]]],
    Callable[Concatenate[S, P], AsyncGenerator[R, None]],
]:
    """Count and time every page an async generator method yields as operation ``op``."""

    def wrap(
        method: Callable[Concatenate[S, P], AsyncGenerator[R, None]],
    ) -> Callable[Concatenate[S, P], AsyncGenerator[R, None]]:
        @functools.wraps(method)
        async def timed(self: S, *args: P.args, **kwargs: P.kwargs) -> AsyncGenerator[R, None]:
            pages = method(self, *args, **kwargs)
            try:
                while True:
                    started = perf_counter()
                    try:
                        page = await anext(pages)
                    except StopAsyncIteration:
                        return
                    except BaseException:
                        self._metrics.failed(op)
                        raise
                    stats = self._metrics.op(op)
                    stats.count += 1
                    stats.samples.append(perf_counter() - started)
                    yield page
            finally:
                await pages.aclose()

        return timed

    return wrap


__all__ = ["Measured", "measured", "measured_pages"]
