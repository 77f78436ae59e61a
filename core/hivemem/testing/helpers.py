"""Small helpers shared by the conformance suites (and useful to plugin tests)."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
import struct
import time
import zlib
from collections.abc import Awaitable, Callable, Sequence
from types import ModuleType
from typing import Any, NoReturn

import pytest

from hivemem.backend import Backend, Capabilities
from hivemem.pipeline import MAGIC

__all__ = [
    "TRICKY_STRINGS",
    "build_frame",
    "eventually",
    "in_ci",
    "missing_fixture",
    "require_capability",
    "require_module",
    "skip_or_fail",
]

_TAGS = {"serializer": b"s", "compressor": b"c", "encryptor": b"e"}

#: strings that break naive key schemes: separators, glob and regex characters,
#: control characters, astral-plane characters, U+10FFFF, prefixes of each other
TRICKY_STRINGS: tuple[str, ...] = (
    "",
    " ",
    ":",
    "::",
    "/",
    "a",
    "a:",
    "a:b",
    "a/b",
    "ab",
    "a b",
    "a\x00",
    "a\x00b",
    "\x00",
    "\x00a",
    "\r\n",
    "\t",
    "\x7f",
    "*",
    "a*",
    "?",
    "[",
    "[a-z]",
    "%",
    "%s",
    "\\",
    "'",
    '"',
    "{a}",
    "$",
    ".",
    "..",
    "é",
    "e\u0301",
    "日本語",
    "\ud7ff",
    "\ue000",
    "\uffff",
    "\U00010000",
    "\U0001f600",
    "a\U0001f600",
    "\U0010ffff",
    "a\U0010ffff",
    "\U0010ffff\U0010ffff",
    "x" * 10_000,
    "\U0001f600" * 2_500,
)


def require_capability(target: Backend | Capabilities | Any, flag: str) -> None:
    """Skip the running test, naming ``flag``, when the backend lacks that capability."""
    caps = getattr(target, "capabilities", target)
    if not hasattr(caps, flag):
        raise AttributeError(f"unknown capability flag {flag!r}")
    if not getattr(caps, flag):
        pytest.skip(f"backend lacks {flag}")


async def eventually(
    check: Callable[[], Awaitable[Any]] | Callable[[], Any],
    *,
    timeout: float = 10.0,
    interval: float = 0.01,
    what: str = "condition",
) -> Any:
    """Poll ``check`` until it returns a truthy value (returned) or ``timeout`` passes.

    A polling loop with a deadline, never a blind sleep: it returns as soon as
    the condition holds and fails with ``what`` when it never does.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s")
        await asyncio.sleep(interval)


def build_frame(
    stages: Sequence[tuple[str, str]], payload: bytes, *, crc: int | None = None
) -> bytes:
    """Assemble a frame by hand from ``[(kind, name), ...]`` and a payload.

    Follows the layout documented in :mod:`hivemem.pipeline`; ``crc``
    overrides the checksum (to build deliberately corrupt frames).
    """
    parts = [MAGIC, bytes([len(stages)])]
    for kind, name in stages:
        raw = name.encode("ascii")
        parts.append(_TAGS[kind] + bytes([len(raw)]) + raw)
    check = zlib.crc32(payload) if crc is None else crc
    parts.append(struct.pack(">II", len(payload), check))
    parts.append(payload)
    return b"".join(parts)


# -- skip, or fail under CI ------------------------------------------------------------


def in_ci() -> bool:
    """True when the ``CI`` environment variable is ``true`` or ``1`` (any case)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the running test (or module) with ``reason``; fail it instead under ``CI``.

    The one place the kit decides what a missing prerequisite means: on a
    developer's machine a test that cannot run is skipped and says why; in
    CI, where everything must be installed, the same condition fails the
    run so that coverage cannot silently shrink. Callable from a test, a
    fixture or module level (under CI a module-level call is a collection
    error).
    """
    __tracebackhide__ = True  # report the caller's line, not this one
    if in_ci():
        pytest.fail(f"{reason} (CI is set: what would be skipped fails the run)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def require_module(name: str, *, reason: str | None = None) -> ModuleType:
    """Import and return module ``name``; when it is not installed, skip (fail under ``CI``).

    Like :func:`pytest.importorskip`, but a test that needs another plugin
    (``require_module("hivemem_fernet")``) cannot silently skip in CI. Only
    the absence of ``name`` itself counts: a module that is installed but
    fails to import raises its error, since a broken plugin is not a missing one.
    """
    __tracebackhide__ = True
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing != name and not name.startswith(f"{missing}."):
            raise
        skip_or_fail(reason or f"needs {name}, which is not installed")


def missing_fixture(suite: type, *fixtures: str) -> NoReturn:
    """Skip (fail under ``CI``): the conformance-suite subclass ``suite`` lacks ``fixtures``."""
    __tracebackhide__ = True
    lacks = " and ".join(f"no {name} fixture" for name in fixtures)
    them = "it" if len(fixtures) == 1 else "them"
    skip_or_fail(
        f"{suite.__name__} provides {lacks} "
        f"(define {them} in the class to run the suite against your plugin)"
    )
