"""What the codec suites feed codecs: value strategies, hostile frames and their checks."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import attrs
from hypothesis import strategies as st

from hivemem.errors import FrameError
from hivemem.pipeline import Pipeline

__all__ = [
    "KEY",
    "AttrsThing",
    "DataThing",
    "DictSubclass",
    "MiB",
    "basic_values",
    "corrupt_variants",
    "expect_frame_error",
    "extended_values",
    "pickle_canary",
    "same_types",
]

KEY = "hmkit:codec/key\x00é"
MiB = 1024 * 1024

# -- value strategies ----------------------------------------------------------------------

_basic_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
#: values every serializer must round-trip: JSON's data model with 64-bit ints
basic_values = st.recursive(
    _basic_scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)

_offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda minutes: dt.timezone(dt.timedelta(minutes=minutes))
)
_hashables = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=10)
    | st.binary(max_size=10)
)
_hashable_keys = _hashables | st.tuples(_hashables, _hashables)
_extended_scalars = (
    _basic_scalars
    | st.integers()
    | st.floats(allow_nan=False)
    | st.binary(max_size=40)
    | st.datetimes()
    | st.datetimes(timezones=_offsets)
    | st.dates()
    | st.times()
    | st.times(timezones=_offsets)
    | st.timedeltas()
    | st.decimals(allow_nan=False)
    | st.uuids()
)
#: the json serializer's documented types (see :mod:`hivemem.builtin.codecs`), nested
extended_values = st.recursive(
    _extended_scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        | st.dictionaries(_hashable_keys, inner, max_size=4)
        | st.sets(_hashables, max_size=4)
        | st.frozensets(_hashables, max_size=4)
    ),
    max_leaves=16,
)


def same_types(a: Any, b: Any) -> bool:
    """Equal values whose containers and tagged scalars kept their exact types."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_types(v, b[k]) for k, v in a.items())
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same_types(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@attrs.define
class AttrsThing:
    """An attrs instance: no serializer stores it unless it stores arbitrary objects."""

    x: int = 1


class DictSubclass(dict):  # type: ignore[type-arg]
    """A dict subclass: comes back as (at least) a dict."""


@dataclasses.dataclass
class DataThing:
    """A dataclass instance: refused like :class:`AttrsThing`."""

    x: int = 1


def corrupt_variants(frame: bytes) -> list[bytes]:
    """Every single-bit (0x01) and whole-byte (0xFF) flip of ``frame``."""
    out = []
    for i in range(len(frame)):
        for mask in (0x01, 0xFF):
            out.append(frame[:i] + bytes([frame[i] ^ mask]) + frame[i + 1 :])
    return out


class _Canary:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        import pathlib

        return (pathlib.Path(self.path).touch, ())


def pickle_canary(path: Any) -> bytes:
    """A pickle that creates ``path`` when unpickled (what an attacker would store)."""
    import pickle

    return pickle.dumps(_Canary(str(path)))


def expect_frame_error(pipeline: Pipeline, frame: bytes, what: str) -> FrameError:
    """Decoding ``frame`` raises a FrameError naming :data:`KEY`; return it."""
    try:
        value = pipeline.decode(frame, key=KEY)
    except FrameError as exc:
        assert exc.key == KEY, f"{what}: FrameError does not name the key"
        assert repr(KEY) in str(exc), f"{what}: message does not name the key"
        return exc
    raise AssertionError(f"{what}: decoded to {value!r} instead of raising FrameError")
