"""Small helpers shared by the conformance suites (and useful to plugin tests)."""

from __future__ import annotations

import asyncio
import inspect
import struct
import time
import zlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest

from hivemem.backend import Backend, Capabilities
from hivemem.pipeline import MAGIC

__all__ = [
    "TRICKY_STRINGS",
    "build_frame",
    "eventually",
    "require_capability",
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
