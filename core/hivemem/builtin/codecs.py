"""Builtin codecs: the ``json`` and ``pickle`` serializers, ``none`` and ``zlib``.

The ``json`` serializer is the safe default. Beyond plain JSON it round-trips,
through small tagged objects (``{"__hm__": "<type>", "v": ...}``):

* ``tuple``, ``set``, ``frozenset`` (a set is stored sorted when its items sort)
* ``bytes`` (``bytearray`` comes back as ``bytes``)
* ``datetime`` (naive or aware: the UTC offset is kept), ``date``, ``time``, ``timedelta``
* ``decimal.Decimal``, ``uuid.UUID``
* dicts with non-``str`` keys (int, float, bool, None, tuple, ...)
* ``float('nan')`` and infinities

A user dict that itself contains the key ``"__hm__"`` is escaped, so no
stored data can forge a tag. Anything else -- attrs classes, dataclasses,
arbitrary objects -- raises :class:`~hivemem.errors.SerializationError`
naming the type: convert with ``attrs.asdict``/``cattrs.unstructure`` or
``dataclasses.asdict`` first (decoding into arbitrary classes would let the
store choose which code runs). Subclasses of dict/list/str/int keep their
values but come back as the base type.

Decoding is bounded in memory, not only in bytes: an empty ``[]`` costs two
bytes of input and ~56 bytes of Python object, so a small compressed frame
could otherwise expand into gigabytes of lists. See :class:`JsonSerializer`
for the ``max_size`` and ``max_containers`` budget.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import pickle
import uuid
import zlib
from typing import Any

from ..codecs import Compressor, Encryptor, Serializer
from ..errors import DecodeLimitExceeded, SerializationError

TAG = "__hm__"

#: default of the json option ``max_containers`` (lists and objects per value)
DEFAULT_MAX_CONTAINERS = 1_000_000
#: default of the json option ``max_size`` (bytes of JSON per value)
DEFAULT_MAX_SIZE = 64 * 1024 * 1024


def _encode(obj: Any) -> Any:
    """Return a JSON-ready structure; the same object when nothing needs tagging."""
    # hot path: every stored value walks through here once per node. The plain JSON
    # types are tested inline with ``type(obj) is`` (no call, no isinstance); only
    # what needs a tag or a conversion costs one more call (_encode_other).
    obj_type = type(obj)
    if obj_type is str or obj_type is int or obj_type is bool or obj is None:
        return obj
    if obj_type is float:
        if obj != obj or obj in (float("inf"), float("-inf")):
            return {TAG: "float", "v": repr(obj)}
        return obj
    if obj_type is dict:
        out: dict[str, Any] | None = None
        for k, v in obj.items():
            if type(k) is not str or k == TAG:
                return {TAG: "dict", "v": [[_encode(k), _encode(v)] for k, v in obj.items()]}
            encoded = _encode(v)
            if encoded is not v:
                if out is None:
                    out = dict(obj)
                out[k] = encoded
        return obj if out is None else out
    if obj_type is list:
        out_list: list[Any] | None = None
        for i, v in enumerate(obj):
            encoded = _encode(v)
            if encoded is not v:
                if out_list is None:
                    out_list = list(obj)
                out_list[i] = encoded
        return obj if out_list is None else out_list
    return _encode_other(obj, obj_type)


def _encode_other(obj: Any, obj_type: type) -> Any:
    """Tag the extended types (exact types only); anything else goes to _encode_subclass."""
    if obj_type is tuple:
        return {TAG: "tuple", "v": [_encode(v) for v in obj]}
    if obj_type is set or obj_type is frozenset:
        items = list(obj)
        try:
            items.sort()
        except TypeError:
            pass
        return {TAG: "set" if obj_type is set else "frozenset", "v": [_encode(v) for v in items]}
    if obj_type is bytes or obj_type is bytearray:
        return {TAG: "bytes", "v": base64.b64encode(obj).decode("ascii")}
    if obj_type is dt.datetime:
        return {TAG: "datetime", "v": obj.isoformat()}
    if obj_type is dt.date:
        return {TAG: "date", "v": obj.isoformat()}
    if obj_type is dt.time:
        return {TAG: "time", "v": obj.isoformat()}
    if obj_type is dt.timedelta:
        return {TAG: "timedelta", "v": [obj.days, obj.seconds, obj.microseconds]}
    if obj_type is decimal.Decimal:
        return {TAG: "decimal", "v": str(obj)}
    if obj_type is uuid.UUID:
        return {TAG: "uuid", "v": str(obj)}
    return _encode_subclass(obj, obj_type)


def _encode_subclass(obj: Any, obj_type: type) -> Any:
    """Reduce a subclass of a JSON type to its base type; refuse anything else."""
    if isinstance(obj, bool):
        return bool(obj)
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return _encode(float(obj))
    if isinstance(obj, str):
        return str(obj)
    if isinstance(obj, dict):
        return _encode(dict(obj))
    if isinstance(obj, list):
        return _encode(list(obj))
    hint = ""
    if hasattr(obj_type, "__attrs_attrs__"):
        hint = "; convert it with attrs.asdict() or cattrs.unstructure() first"
    elif hasattr(obj_type, "__dataclass_fields__"):
        hint = "; convert it with dataclasses.asdict() first"
    raise SerializationError(
        f"json serializer cannot store a {obj_type.__module__}.{obj_type.__qualname__}{hint}"
    )


_DECODERS: dict[str, Any] = {
    "tuple": tuple,
    "set": set,
    "frozenset": frozenset,
    "bytes": lambda v: base64.b64decode(v.encode("ascii"), validate=True),
    "datetime": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "timedelta": lambda v: dt.timedelta(days=v[0], seconds=v[1], microseconds=v[2]),
    "decimal": decimal.Decimal,
    "uuid": uuid.UUID,
    "float": float,
    "dict": lambda v: {k: val for k, val in v},
}


def _object_hook(d: dict[str, Any]) -> Any:
    if TAG in d:
        try:
            return _DECODERS[d[TAG]](d["v"])
        except (KeyError, TypeError, ValueError, decimal.InvalidOperation) as exc:
            raise ValueError(f"bad tagged value {d.get(TAG)!r}") from exc
    return d


def _positive_int(option: str, value: int | str) -> int:
    """``value`` as an int > 0; ValueError naming the json option otherwise."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"json option {option} must be an integer, got {value!r}") from None
    if number <= 0:
        raise ValueError(f"json option {option} must be > 0, got {number}")
    return number


class JsonSerializer(Serializer):
    """Safe JSON serializer with tagged extensions (see module docstring).

    Options (ints or strings, as they arrive from ``"json?max_containers=5000"``):

    * ``sort_keys`` -- write object keys sorted (default false).
    * ``max_size`` -- largest JSON text, in bytes, :meth:`loads` accepts and
      :meth:`dumps` produces; default 64 MiB.
    * ``max_containers`` -- most JSON arrays plus objects one value may hold;
      default 1,000,000. Each costs 56-64+ bytes of Python object for two
      bytes of input, so this is what bounds the memory a decode allocates
      (a 60 MiB ``[[],[],...]`` held ~1.4 GB before the budget existed).

    Both are checked on the bytes before :mod:`json` parses anything, and
    refusal raises :class:`~hivemem.errors.DecodeLimitExceeded` naming the
    option. Containers are counted as the ``[`` and ``{`` bytes of the text
    (C-speed ``bytes.count``), so brackets inside strings count too: the count
    can only be too high, never too low, and a value whose text is no longer
    than ``max_containers`` bytes is not counted at all. Tagged values count
    their wrapper object (a tuple is one object plus one array). :meth:`dumps`
    applies the same budget and raises
    :class:`~hivemem.errors.SerializationError`, so a writer never stores a
    value that a reader with the same options would refuse.
    """

    name = "json"

    def __init__(
        self,
        sort_keys: bool | str = False,
        max_containers: int | str = DEFAULT_MAX_CONTAINERS,
        max_size: int | str = DEFAULT_MAX_SIZE,
    ) -> None:
        self.max_containers = _positive_int("max_containers", max_containers)
        self.max_size = _positive_int("max_size", max_size)
        self._encoder = json.JSONEncoder(
            ensure_ascii=False,
            separators=(",", ":"),
            sort_keys=str(sort_keys).lower() in ("1", "true", "yes"),
        )
        self._decoder = json.JSONDecoder(object_hook=_object_hook)

    def __repr__(self) -> str:
        return "JsonSerializer()"

    def _over_budget(self, data: bytes) -> str | None:
        """Why ``data`` exceeds the size or container budget; None when it fits."""
        size = len(data)
        if size > self.max_size:
            return f"json value is {size} bytes; the json option max_size is {self.max_size}"
        if size > self.max_containers:  # the count cannot exceed the length
            containers = data.count(b"[") + data.count(b"{")
            if containers > self.max_containers:
                return (
                    f"json value holds {containers} containers; "
                    f"the json option max_containers is {self.max_containers}"
                )
        return None

    def dumps(self, obj: Any) -> bytes:
        """Encode ``obj`` as UTF-8 JSON; SerializationError past ``max_size``/``max_containers``."""
        try:
            text = self._encoder.encode(_encode(obj))
            if len(text) > self.max_size:  # UTF-8 is never shorter: refuse before copying
                raise SerializationError(
                    f"json value is at least {len(text)} bytes; the json option max_size is "
                    f"{self.max_size}; readers would refuse it"
                )
            data = text.encode("utf-8", "strict")
            del text
        except UnicodeEncodeError:
            raise SerializationError(
                "json serializer cannot store a string with a lone surrogate"
            ) from None
        except RecursionError:
            raise SerializationError("json serializer: value is nested too deeply") from None
        problem = self._over_budget(data)
        if problem is not None:
            raise SerializationError(f"{problem}; readers would refuse it")
        return data

    def loads(self, data: bytes) -> Any:
        """Decode UTF-8 JSON written by :meth:`dumps`.

        Raises :class:`~hivemem.errors.DecodeLimitExceeded` before parsing
        when ``data`` exceeds ``max_size`` or ``max_containers``.
        """
        problem = self._over_budget(data)
        if problem is not None:
            raise DecodeLimitExceeded(problem)
        value = self._decoder.decode(data.decode("utf-8"))
        return value


class PickleSerializer(Serializer):
    """UNSAFE for stores others can write: unpickling runs code chosen by the data."""

    name = "pickle"

    def __init__(self, protocol: int | str = pickle.HIGHEST_PROTOCOL) -> None:
        self.protocol = int(protocol)

    def dumps(self, obj: Any) -> bytes:
        """Pickle ``obj``."""
        try:
            return pickle.dumps(obj, protocol=self.protocol)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise SerializationError(f"pickle serializer cannot store value: {exc}") from None

    def loads(self, data: bytes) -> Any:
        """Unpickle (only ever on trusted data)."""
        return pickle.loads(data)


class Identity(Compressor, Encryptor):
    """The ``none`` compressor/encryptor: bytes pass through unchanged."""

    name = "none"

    def encode(self, data: bytes) -> bytes | None:
        """Decline: the frame records no stage."""
        return None

    def decode(self, data: bytes) -> bytes:
        """Return ``data``."""
        return data


class ZlibCompressor(Compressor):
    """Standard-library deflate; bounded decompression."""

    name = "zlib"

    def __init__(
        self,
        level: int | str = 6,
        min_size: int | str = 256,
        max_output_size: int | str = 64 * 1024 * 1024,
    ) -> None:
        self.level = int(level)
        self.min_size = int(min_size)
        self.max_output_size = int(max_output_size)
        if not -1 <= self.level <= 9:
            raise ValueError(f"zlib level must be -1..9, got {self.level}")

    def encode(self, data: bytes) -> bytes | None:
        """Compress, or decline below ``min_size`` or when it does not shrink."""
        if len(data) < self.min_size:
            return None
        out = zlib.compress(data, self.level)
        return out if len(out) < len(data) else None

    def decode(self, data: bytes) -> bytes:
        """Decompress at most ``max_output_size`` bytes; ValueError past it."""
        stream = zlib.decompressobj()
        out = stream.decompress(data, self.max_output_size)
        if stream.unconsumed_tail:
            raise ValueError(f"zlib output exceeds max_output_size={self.max_output_size}")
        if not stream.eof:
            raise ValueError("truncated zlib stream")
        return out
