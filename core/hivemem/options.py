"""Plugin options: one declaration, one coercion, one error shape.

A plugin lists the options it consumes as :class:`Option` values and calls
:func:`parse_options` with the URL query and the keyword options (keywords
win). Every value is coerced the same way whatever its source (``"5"`` from a
query string and ``5`` from TOML give the same result), and every bad value
raises :class:`~hivemem.errors.ConfigError` in one shape::

    redis option socket_timeout='soon': expected a number of seconds

A secret option (``secret=True``) never shows its value in an error. Options
the plugin does not declare are returned untouched, for the plugin to pass on
to its client library or to reject.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from .errors import ConfigError

__all__ = ["Option", "coerce_option", "parse_options"]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
#: what each type is called in error messages
_EXPECTED = {
    "int": "an integer",
    "float": "a number",
    "seconds": "a number of seconds",
    "bool": "true or false",
    "str": "a string",
}


@attrs.frozen
class Option:
    """One option a plugin consumes.

    ``type`` is ``"int"``, ``"float"``, ``"seconds"`` (a float), ``"bool"`` or
    ``"str"``. ``minimum``/``maximum`` bound numbers (inclusive); with
    ``positive`` zero is refused too. ``nullable``: an empty string or None
    means None (e.g. "unbounded"). ``secret``: the value never appears in an
    error.
    """

    name: str
    type: str = "str"
    default: Any = None
    doc: str = ""
    minimum: float | None = None
    maximum: float | None = None
    positive: bool = False
    nullable: bool = False
    secret: bool = False

    def __attrs_post_init__(self) -> None:
        if self.type not in _EXPECTED:
            raise ValueError(f"option {self.name}: unknown type {self.type!r}")


def _shown(option: Option, value: Any) -> str:
    return "'***'" if option.secret else f"{value!r:.80}"


def _number(owner: str, option: Option, value: Any) -> float:
    if isinstance(value, bool):
        raise ConfigError(
            f"{owner} option {option.name}={_shown(option, value)}: "
            f"expected {_EXPECTED[option.type]}"
        )
    try:
        number = int(value) if option.type == "int" else float(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(
            f"{owner} option {option.name}={_shown(option, value)}: "
            f"expected {_EXPECTED[option.type]}"
        ) from None
    if option.type != "int" and not math.isfinite(number):
        raise ConfigError(f"{owner} option {option.name}={_shown(option, value)}: must be finite")
    return number


def _bounded(owner: str, option: Option, value: Any, number: float) -> None:
    problem = None
    if option.positive and number <= 0:
        problem = "must be > 0"
    elif option.minimum is not None and number < option.minimum:
        problem = f"must be >= {option.minimum:g}"
    elif option.maximum is not None and number > option.maximum:
        problem = f"must be <= {option.maximum:g}"
    if problem:
        raise ConfigError(f"{owner} option {option.name}={_shown(option, value)}: {problem}")


def coerce_option(owner: str, option: Option, value: Any) -> Any:
    """``value`` (a string from a URL, or a typed value) as ``option.type``.

    Raises :class:`~hivemem.errors.ConfigError` naming ``owner`` and the option.
    """
    if value is None or (option.nullable and value == ""):
        return None
    if option.type == "str":
        return value if isinstance(value, str) else str(value)
    if option.type == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ConfigError(
            f"{owner} option {option.name}={_shown(option, value)}: expected true or false"
        )
    number = _number(owner, option, value)
    _bounded(owner, option, value, number)
    return number


def parse_options(
    owner: str, declared: Iterable[Option], *sources: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Coerce the declared options found in ``sources`` (later sources win).

    Returns ``(values, rest)``: ``values`` holds every declared option (its
    default when no source gives it, defaults are not coerced), ``rest`` the
    undeclared ones as given.
    """
    merged: dict[str, Any] = {}
    for source in sources:
        merged.update(source)
    values: dict[str, Any] = {}
    for option in declared:
        if option.name in merged:
            raw = merged.pop(option.name)
            values[option.name] = (
                option.default if raw is None else coerce_option(owner, option, raw)
            )
        else:
            values[option.name] = option.default
    return values, merged
