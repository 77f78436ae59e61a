"""Parsing of the codec's factory options, which may arrive as strings from a URL query."""

from __future__ import annotations

import re
from typing import Any

_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_int(option: str, value: Any, *, minimum: int, maximum: int) -> int:
    """``value`` as an int in ``[minimum, maximum]``; ValueError naming ``option`` otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"zstd option {option!r} must be an integer, got {value!r}")
    try:
        number = int(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ValueError(f"zstd option {option!r} must be an integer, got {value!r}") from None
    if not minimum <= number <= maximum:
        raise ValueError(
            f"zstd option {option!r} must be between {minimum} and {maximum}, got {number}"
        )
    return number


def parse_size(option: str, value: Any, *, minimum: int = 0) -> int:
    """A byte count: an int, or a string like ``"65536"``, ``"64MiB"``, ``"512k"``, ``"1G"``."""
    if isinstance(value, str):
        match = _SIZE.match(value)
        if match is None:
            raise ValueError(
                f"zstd option {option!r} must be a byte count such as 65536 or 64MiB, got {value!r}"
            )
        unit = (match.group(2) or "").lower()[:1]
        value = int(match.group(1)) * _UNITS[unit]
    return parse_int(option, value, minimum=minimum, maximum=2**62)
