"""The storage contract every backend plugin implements.

A backend stores opaque byte values (encoded frames: it never sees plaintext
objects) addressed by ``(namespace, kind, id)``, plus append-only *series*
and numeric *counters*. All three are isolated per namespace.

Rules every implementation follows (the conformance kit in
:mod:`hivemem.testing` checks each one):

* Any ``str`` that is valid Unicode (no lone surrogates) is a valid
  namespace, kind, id, series name or counter field, including the empty
  string, separators such as ``:``/``/``, control characters and very long
  strings. Two different tuples never address the same data. Callers (the
  :class:`~hivemem.memory.Memory`) validate length limits before they call.
* Ids order by Unicode code point (which equals UTF-8 byte order). Listing by
  prefix uses an index: its cost grows with what it returns, not with what is
  stored.
* ``version`` starts at 1 when a record is created and grows by one on each
  write. ``expected_version=0`` means "must not exist"; ``n > 0`` means "must
  currently be at version n"; a mismatch raises
  :class:`~hivemem.errors.ConflictError` and changes nothing.
* ``ttl`` is in seconds (float, > 0). A write without ``ttl`` stores a record
  that never expires (it clears an earlier TTL, like Redis ``SET``). An
  expired record is invisible to every read and listing.
* Series entries are ordered by ``(ts, seq)``; ``seq`` is assigned by the
  backend and unique within a series. ``start`` is inclusive, ``end``
  exclusive. ``latest=True`` returns the *last* ``limit`` entries, still in
  ascending order.
* Optional: :meth:`Backend.rewrite_series` (``supports_series_rewrite``)
  replaces entry values in place, compare-and-set by value: an entry keeps
  its ``ts`` and ``seq``, an entry deleted or changed meanwhile is left
  alone, and appends made meanwhile are never lost or reordered. Without the
  capability it raises :class:`~hivemem.errors.Unsupported`.
* A cancelled call either happened completely or not at all.
* Connection failures raise :class:`~hivemem.errors.BackendUnavailable`.
"""

from __future__ import annotations

import abc
import functools
import inspect
import math
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar

import attrs

from .errors import BackendClosed, InvalidTTL, Unsupported


@attrs.frozen(slots=True)
class Record:
    """A stored value with its version and absolute expiry (unix seconds or None)."""

    value: bytes
    version: int
    expires_at: float | None = None


@attrs.frozen(slots=True)
class SeriesEntry:
    """One entry of an append-only series."""

    ts: float
    seq: int
    value: bytes


@attrs.frozen
class Capabilities:
    """What a backend supports; the conformance kit skips tests by these flags.

    A test that needs a capability the backend lacks is skipped and the skip
    message names the flag (``supports_ttl`` ...).
    """

    supports_ttl: bool = True
    supports_cas: bool = True
    supports_series: bool = True
    supports_counters: bool = True
    #: data survives closing and reopening the backend with the same URL
    persistent: bool = False
    #: several processes opening the same URL see the same data
    shared: bool = False
    #: the largest value (bytes) one record can hold, None for no practical limit
    max_value_size: int | None = None
    #: :meth:`Backend.rewrite_series` replaces series entry values in place
    supports_series_rewrite: bool = False


@attrs.frozen
class KindStats:
    """Count and stored bytes of one kind's live records."""

    count: int
    bytes: int


@attrs.frozen
class SeriesStats:
    """Length, stored bytes and time span of one series."""

    length: int
    bytes: int
    oldest: float | None
    newest: float | None


@attrs.frozen
class NamespaceStats:
    """Structured contents of one namespace (what ``Memory.summary()`` builds on)."""

    kinds: dict[str, KindStats] = attrs.field(factory=dict)
    series: dict[str, SeriesStats] = attrs.field(factory=dict)


def prefix_upper(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix``.

    None when there is no such string (empty prefix, or only U+10FFFF). With
    it a prefix listing is the index range ``prefix <= id < prefix_upper``.
    """
    chars = list(prefix)
    while chars:
        last = ord(chars.pop())
        if last < 0x10FFFF:
            return "".join(chars) + chr(last + 1)
    return None


def prefix_upper_bytes(prefix: bytes) -> bytes | None:
    """Byte-string form of :func:`prefix_upper` (UTF-8 never contains 0xFF)."""
    raw = bytearray(prefix)
    while raw:
        last = raw.pop()
        if last < 0xFF:
            raw.append(last + 1)
            return bytes(raw)
    return None


#: the methods every backend implements (abstract in :class:`Backend`)
PRIMITIVES: tuple[str, ...] = (
    "close",
    "ping",
    "get_many",
    "put",
    "put_many",
    "delete",
    "delete_many",
    "scan",
    "kinds",
    "drop_namespace",
    "append",
    "replace_series",
    "read_series",
    "series_names",
    "delete_series",
    "incr",
    "get_counters",
    "delete_counters",
)
#: methods :class:`Backend` composes from the primitives; override them for speed
DEFAULTS: tuple[str, ...] = ("get", "list_ids", "list_records", "namespace_stats", "stats")
#: optional capabilities, declared with a default (see :class:`Capabilities`)
OPTIONAL: tuple[str, ...] = ("open", "rewrite_series", "purge_residue", "subscribe")
#: every call the base class guards: usable only between ``open()`` and ``close()``
GUARDED: frozenset[str] = frozenset(PRIMITIVES + DEFAULTS + OPTIONAL) - {"open", "close"}

_NEW, _OPEN, _CLOSED = "new", "open", "closed"
#: the wrappers made by the guards below (so a subclass's inherited wrapper is not wrapped again)
_GUARDED_FUNCTIONS: weakref.WeakSet[Callable[..., Any]] = weakref.WeakSet()
_SCAN_PAGE = 500


def check_ttl(ttl: float | None) -> None:
    """Raise :class:`~hivemem.errors.InvalidTTL` unless ``ttl`` is None or positive and finite."""
    if ttl is None:
        return
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
        raise InvalidTTL(f"ttl must be a number of seconds, got {type(ttl).__name__} {ttl!r:.40}")
    if not 0 < ttl < math.inf:
        raise InvalidTTL(f"ttl must be > 0 seconds and finite, got {ttl!r}")


def _guard(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a backend coroutine so it runs only while the backend is open."""
    checks_ttl = name in ("put", "put_many")

    @functools.wraps(fn)
    async def guarded(self: Backend, *args: Any, **kwargs: Any) -> Any:
        if self._lifecycle is not _OPEN:
            raise self.closed_error()
        if checks_ttl and kwargs.get("ttl") is not None:
            check_ttl(kwargs["ttl"])
        return await fn(self, *args, **kwargs)

    _GUARDED_FUNCTIONS.add(guarded)
    return guarded


def _guard_open(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def open(self: Backend) -> None:
        if self._lifecycle is _OPEN:
            return
        if self._lifecycle is _CLOSED:
            raise self.closed_error()
        self._lifecycle = _OPEN  # the backend's own open() may call its methods (ping)
        try:
            await fn(self)
        except BaseException:
            self._lifecycle = _NEW
            raise

    _GUARDED_FUNCTIONS.add(open)
    return open


def _guard_close(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def close(self: Backend) -> None:
        if self._lifecycle is _CLOSED:
            return
        try:
            await fn(self)
        finally:
            self._lifecycle = _CLOSED

    _GUARDED_FUNCTIONS.add(close)
    return close


class Backend(abc.ABC):
    """Abstract storage backend. Plugins subclass it and register a factory.

    A backend implements the :data:`PRIMITIVES` (abstract here); the base
    class composes :data:`DEFAULTS` from them (``get`` from ``get_many``,
    ``list_ids``/``list_records`` from ``scan``, ``namespace_stats`` from
    ``kinds``/``scan``/the series group) and a backend may override any of
    those for speed. A backend written against the older contract, which
    implements ``list_ids`` and ``list_records`` but no ``scan``, gets a
    ``scan`` built on them and keeps working unchanged.

    The base class owns the lifecycle: construction does no I/O, :meth:`open`
    connects (once; a second call does nothing), :meth:`close` releases
    everything (safe to call twice). Every other call made before ``open()``
    or after ``close()`` raises :class:`~hivemem.errors.BackendClosed`, and
    ``put``/``put_many`` reject a bad ``ttl`` with
    :class:`~hivemem.errors.InvalidTTL`, before the subclass's code runs.
    """

    #: short name shown in stats and errors, e.g. ``"sqlite"``
    name: ClassVar[str] = "backend"
    capabilities: ClassVar[Capabilities] = Capabilities()
    _lifecycle: str = _NEW

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = vars(cls)
        if (
            "scan" not in own
            and getattr(cls.scan, "__isabstractmethod__", False)
            and cls.list_ids is not Backend.list_ids
            and cls.list_records is not Backend.list_records
        ):
            cls.scan = Backend._scan_from_listing  # type: ignore[method-assign]
        for name, value in list(own.items()):
            if value in _GUARDED_FUNCTIONS or not inspect.iscoroutinefunction(value):
                continue
            if name == "open":
                setattr(cls, name, _guard_open(value))
            elif name == "close":
                setattr(cls, name, _guard_close(value))
            elif name in GUARDED:
                setattr(cls, name, _guard(name, value))

    def closed_error(self) -> BackendClosed:
        """The :class:`~hivemem.errors.BackendClosed` to raise now (before open or after close).

        For a backend's own checks the base cannot make: a call still in
        flight when ``close()`` ran, or an extra method of the backend's own.
        """
        state = "is closed" if self._lifecycle is _CLOSED else "is not open (call open() first)"
        return BackendClosed(f"{self.name} backend {state}")

    def require_open(self) -> None:
        """Raise :meth:`closed_error` unless the backend is open (for extra methods)."""
        if self._lifecycle is not _OPEN:
            raise self.closed_error()

    @property
    def is_open(self) -> bool:
        """True between a successful :meth:`open` and :meth:`close`."""
        return self._lifecycle is _OPEN

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Connect / create schema. Default: nothing to do."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections, threads and files. Safe to call twice."""

    @abc.abstractmethod
    async def ping(self) -> bool:
        """Return True when the store answers; raise BackendUnavailable otherwise."""

    async def stats(self) -> dict[str, Any]:
        """Backend-level facts (engine version, file size, ...); JSON-serializable.

        Default: ``{"backend": name}``.
        """
        return {"backend": self.name}

    # -- records: primitives ---------------------------------------------------
    @abc.abstractmethod
    async def get_many(self, ns: str, kind: str, ids: Sequence[str]) -> dict[str, Record]:
        """Live records for ``ids`` (missing ids are absent), in one round trip."""

    @abc.abstractmethod
    async def put(
        self,
        ns: str,
        kind: str,
        id: str,
        value: bytes,
        *,
        ttl: float | None = None,
        expected_version: int | None = None,
    ) -> int:
        """Store ``value``; return the new version. See the module rules for CAS and TTL."""

    @abc.abstractmethod
    async def put_many(
        self, ns: str, kind: str, items: Mapping[str, bytes], *, ttl: float | None = None
    ) -> None:
        """Store several records of one kind atomically where the store allows, one round trip."""

    @abc.abstractmethod
    async def delete(
        self, ns: str, kind: str, id: str, *, expected_version: int | None = None
    ) -> bool:
        """Delete; True when a live record was removed. CAS as for :meth:`put`.

        A primitive (not composed from :meth:`delete_many`): a compare-and-set
        delete cannot be built atomically from the other primitives.
        """

    @abc.abstractmethod
    async def delete_many(self, ns: str, kind: str, ids: Sequence[str]) -> int:
        """Delete several ids in one round trip; return how many live records went."""

    @abc.abstractmethod
    async def scan(
        self,
        ns: str,
        kind: str,
        prefix: str = "",
        *,
        limit: int | None = None,
        cursor: str | None = None,
        reverse: bool = False,
        values: bool = True,
    ) -> list[tuple[str, Record | None]]:
        """Live ``(id, record)`` pairs whose id starts with ``prefix``, in code-point order.

        Descending when ``reverse``. ``cursor`` is an exclusive bound in the
        direction of travel: pass the last id of the previous page to get the
        next page. With ``values=False`` only ids are needed and every record
        is None (a backend may then skip reading values). One round trip
        where possible; cost grows with what is returned, not with what is
        stored.
        """

    @abc.abstractmethod
    async def kinds(self, ns: str) -> list[str]:
        """Sorted kinds that hold at least one live record in ``ns``."""

    @abc.abstractmethod
    async def drop_namespace(self, ns: str) -> None:
        """Remove every record, series and counter of ``ns``; other namespaces untouched."""

    # -- records: composed defaults ------------------------------------------
    async def get(self, ns: str, kind: str, id: str) -> Record | None:
        """The live record at ``(ns, kind, id)`` or None. Default: :meth:`get_many`."""
        return (await self.get_many(ns, kind, [id])).get(id)

    async def list_ids(
        self,
        ns: str,
        kind: str,
        prefix: str = "",
        *,
        limit: int | None = None,
        cursor: str | None = None,
        reverse: bool = False,
    ) -> list[str]:
        """Ids starting with ``prefix`` in code-point order (descending when ``reverse``).

        ``cursor`` as for :meth:`scan`. Default: ``scan(values=False)``.
        """
        rows = await self.scan(
            ns, kind, prefix, limit=limit, cursor=cursor, reverse=reverse, values=False
        )
        return [id for id, _ in rows]

    async def list_records(
        self,
        ns: str,
        kind: str,
        prefix: str = "",
        *,
        limit: int | None = None,
        cursor: str | None = None,
        reverse: bool = False,
    ) -> list[tuple[str, Record]]:
        """Like :meth:`list_ids` but with the records. Default: ``scan(values=True)``."""
        rows = await self.scan(
            ns, kind, prefix, limit=limit, cursor=cursor, reverse=reverse, values=True
        )
        return [(id, record) for id, record in rows if record is not None]

    async def _scan_from_listing(
        self,
        ns: str,
        kind: str,
        prefix: str = "",
        *,
        limit: int | None = None,
        cursor: str | None = None,
        reverse: bool = False,
        values: bool = True,
    ) -> list[tuple[str, Record | None]]:
        """``scan`` for a backend that implements ``list_ids`` and ``list_records`` instead."""
        if values:
            return list(
                await self.list_records(
                    ns, kind, prefix, limit=limit, cursor=cursor, reverse=reverse
                )
            )
        ids = await self.list_ids(ns, kind, prefix, limit=limit, cursor=cursor, reverse=reverse)
        return [(id, None) for id in ids]

    async def namespace_stats(self, ns: str) -> NamespaceStats:
        """Counts and bytes per kind, length and span per series.

        Default: pages through :meth:`scan` for every kind and reads every
        series, so its cost grows with the namespace; backends override it
        with a cheaper query.
        """
        stats = NamespaceStats()
        for kind in await self.kinds(ns):
            count = size = 0
            cursor: str | None = None
            while True:
                page = await self.scan(ns, kind, limit=_SCAN_PAGE, cursor=cursor)
                for _, record in page:
                    if record is not None:
                        count += 1
                        size += len(record.value)
                if len(page) < _SCAN_PAGE:
                    break
                cursor = page[-1][0]
            if count:
                stats.kinds[kind] = KindStats(count=count, bytes=size)
        for series in await self.series_names(ns):
            entries = await self.read_series(ns, series)
            if entries:
                stats.series[series] = SeriesStats(
                    length=len(entries),
                    bytes=sum(len(e.value) for e in entries),
                    oldest=entries[0].ts,
                    newest=entries[-1].ts,
                )
        return stats

    # -- series --------------------------------------------------------------
    @abc.abstractmethod
    async def append(
        self, ns: str, series: str, value: bytes, *, ts: float | None = None
    ) -> SeriesEntry:
        """Append one entry (``ts`` defaults to now) without rewriting the series."""

    @abc.abstractmethod
    async def replace_series(
        self, ns: str, series: str, entries: Sequence[tuple[float, bytes]]
    ) -> None:
        """Atomically replace a whole series with ``(ts, value)`` entries (in that order)."""

    @abc.abstractmethod
    async def read_series(
        self,
        ns: str,
        series: str,
        *,
        start: float | None = None,
        end: float | None = None,
        limit: int | None = None,
        latest: bool = False,
    ) -> list[SeriesEntry]:
        """Entries with ``start <= ts < end`` in ascending order; see module rules."""

    @abc.abstractmethod
    async def series_names(self, ns: str, prefix: str = "") -> list[str]:
        """Sorted names of non-empty series in ``ns`` starting with ``prefix``."""

    @abc.abstractmethod
    async def delete_series(self, ns: str, series: str) -> int:
        """Delete a whole series; return how many entries went."""

    async def rewrite_series(
        self, ns: str, series: str, changes: Sequence[tuple[int, bytes, bytes]]
    ) -> int:
        """Replace entry values in place; return how many entries were replaced.

        For each ``(seq, old, new)``: if entry ``seq`` of the series still exists and holds
        exactly ``old``, it now holds ``new``; its ``ts`` and ``seq`` are unchanged. An entry
        that was deleted or whose value differs is left alone (compare-and-set by value, so a
        concurrent writer always wins). Appends that happen meanwhile are never lost or
        reordered. Atomic per call where the store allows, at least per entry.

        Optional (``supports_series_rewrite``). Default: raises
        :class:`~hivemem.errors.Unsupported` naming the backend.
        """
        raise Unsupported(f"backend {self.name!r} does not support rewrite_series")

    async def purge_residue(self) -> list[str]:
        """Make bytes freed by overwrites and deletes unrecoverable where the store can.

        Called by ``hivemem rotate-keys`` once every value was re-encoded, so
        old ciphertext (or plaintext from before encryption) does not linger
        in free pages, logs or snapshots. Returns the steps the operator must
        still take, one sentence each (e.g. rewriting an append-only file,
        rotating backups); ``[]`` when nothing is left to do. Default: does
        nothing and says that the store's own files, logs and backups may
        still hold old bytes.
        """
        return [
            f"backend {self.name!r} does not purge freed space: its files, logs, replicas "
            "and backups may still hold old values until the store rewrites or expires them"
        ]

    # -- optional: cross-process invalidation ---------------------------------
    async def subscribe(
        self, ns: str, callback: Callable[[str, str | None], None]
    ) -> Callable[[], Awaitable[None]] | None:
        """Call ``callback(kind, id)`` when *another* client writes or deletes in ``ns``.

        ``id=None`` means the whole kind or namespace changed. Returns an async
        function that unsubscribes. The Memory uses it to drop stale entries
        from its in-process cache. Default: None (the backend cannot tell).
        """
        return None

    # -- counters ------------------------------------------------------------
    @abc.abstractmethod
    async def incr(self, ns: str, kind: str, id: str, field: str, amount: float = 1.0) -> float:
        """Atomically add ``amount`` to a numeric field (created at 0); return the new value."""

    @abc.abstractmethod
    async def get_counters(
        self, ns: str, kind: str, ids: Sequence[str]
    ) -> dict[str, dict[str, float]]:
        """``{id: {field: value}}`` for ids that have counters, in one round trip."""

    @abc.abstractmethod
    async def delete_counters(self, ns: str, kind: str, id: str) -> bool:
        """Remove every counter field of one id; True when something was removed."""


Backend.open = _guard_open(Backend.open)  # type: ignore[method-assign]
# the base's own defaults that do not go through a primitive are guarded too
for _name in ("stats", "rewrite_series", "purge_residue", "subscribe"):
    setattr(Backend, _name, _guard(_name, vars(Backend)[_name]))
del _name


__all__ = [
    "DEFAULTS",
    "GUARDED",
    "OPTIONAL",
    "PRIMITIVES",
    "Backend",
    "Capabilities",
    "KindStats",
    "NamespaceStats",
    "Record",
    "SeriesEntry",
    "SeriesStats",
    "check_ttl",
    "prefix_upper",
    "prefix_upper_bytes",
]
