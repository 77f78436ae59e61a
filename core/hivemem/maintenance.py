"""Work on a whole namespace: rewrite (key rotation, new codecs), summary, series aggregation."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import attrs

from .backend import Backend, NamespaceStats, Record, SeriesEntry
from .errors import ConflictError, FrameError, ResourceMissing
from .frames import Frames
from .names import cache_key
from .pipeline import read_header
from .tiers import Tiers

#: how many failure messages a RewriteReport keeps
MAX_FAILURES = 20


@attrs.frozen
class MemorySummary:
    """Structured contents of a namespace (``Memory.summary()``)."""

    namespace: str
    backend: str
    url: str
    kinds: dict[str, dict[str, int]]
    series: dict[str, dict[str, Any]]
    caches: dict[str, dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return attrs.asdict(self)


@attrs.frozen
class RewriteReport:
    """What ``Memory.rewrite()`` did (or, with ``check_only``, would do).

    ``scanned``/``rewritten``/``skipped`` count records; ``series_scanned`` and
    ``series_rewritten`` count series entries. ``conflicts``: records or
    entries another writer changed meanwhile (left to the writer; a rerun
    checks them again). ``failed``: frames that could not be re-encoded (not
    readable with the configured codecs and keys, or that would lose their
    encryption); ``failures`` names the first of them.
    """

    scanned: int
    rewritten: int
    skipped: int
    conflicts: int
    series_scanned: int = 0
    series_rewritten: int = 0
    failed: int = 0
    failures: tuple[str, ...] = ()

    @property
    def done(self) -> bool:
        """True when nothing was left behind: no conflicts and no failures."""
        return self.conflicts == 0 and self.failed == 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        data = attrs.asdict(self)
        data["failures"] = list(self.failures)
        return data


def summarize(
    namespace: str,
    backend: Backend,
    url: str,
    stats: NamespaceStats,
    caches: dict[str, dict[str, Any]],
) -> MemorySummary:
    """The :class:`MemorySummary` of a namespace from its backend stats and cache stats."""
    return MemorySummary(
        namespace=namespace,
        backend=backend.name,
        url=url,
        kinds={
            kind: {"count": counts.count, "bytes": counts.bytes}
            for kind, counts in stats.kinds.items()
        },
        series={
            name: {
                "length": entries.length,
                "bytes": entries.bytes,
                "oldest": entries.oldest,
                "newest": entries.newest,
            }
            for name, entries in stats.series.items()
        },
        caches=caches,
    )


def aggregate(
    rows: Iterable[tuple[float, Any]], field: str | None
) -> dict[str, float | int | None]:
    """count/sum/mean/min/max of the numeric values of series rows (or of ``value[field]``)."""
    numbers: list[float] = []
    for _, value in rows:
        if field is not None and isinstance(value, dict):
            value = value.get(field)
        if isinstance(value, int | float) and not isinstance(value, bool):
            numbers.append(float(value))
    if not numbers:
        return {"count": 0, "sum": 0.0, "mean": None, "min": None, "max": None}
    return {
        "count": len(numbers),
        "sum": sum(numbers),
        "mean": sum(numbers) / len(numbers),
        "min": min(numbers),
        "max": max(numbers),
    }


async def series_pages(
    backend: Backend, namespace: str, series: str, size: int
) -> AsyncIterator[list[SeriesEntry]]:
    """A whole series in ``(ts, seq)`` order, ``size`` entries a page."""
    start: float | None = None
    last: tuple[float, int] | None = None
    limit = size
    while True:
        page = await backend.read_series(namespace, series, start=start, limit=limit)
        fresh = [entry for entry in page if last is None or (entry.ts, entry.seq) > last]
        if fresh:
            yield fresh
        if len(page) < limit:
            return
        if not fresh:  # a full page of entries sharing one timestamp: read further
            limit *= 2
            continue
        limit = size
        last = (fresh[-1].ts, fresh[-1].seq)
        start = fresh[-1].ts


@attrs.define
class RewriteOptions:
    """How :class:`Rewriter` runs (the keyword arguments of ``Memory.rewrite``)."""

    batch_size: int = 200
    progress: Callable[[int, int], None] | None = None
    check_only: bool = False
    decrypt: bool = False


class Rewriter:
    """Re-encodes every frame of a namespace not written with today's codecs and keys.

    Used for key rotation (``hivemem rotate-keys``) and for turning on
    compression for old data. Each record is rewritten with compare-and-set
    on the version it was read at and keeps its remaining TTL; each series
    entry with the backend's compare-and-set by value
    (:meth:`~hivemem.backend.Backend.rewrite_series`), keeping its time and
    order. A concurrent writer always wins and nothing is lost; an
    interrupted run can simply be started again. A frame that is encrypted is
    never rewritten without encryption unless ``options.decrypt`` says so.
    """

    def __init__(
        self,
        backend: Backend,
        namespace: str,
        frames: Frames,
        tiers: Tiers,
        options: RewriteOptions,
    ) -> None:
        self.backend = backend
        self.namespace = namespace
        self.frames = frames
        self.tiers = tiers
        self.options = options
        self.scanned = self.rewritten = self.skipped = self.conflicts = 0
        self.series_scanned = self.series_rewritten = 0
        self.failed = 0
        self.failures: list[str] = []

    async def run(self, kinds: Iterable[str] | None, series: Iterable[str] | None) -> RewriteReport:
        """Rewrite ``kinds`` (default: every kind) and ``series`` (default: every series
        when ``kinds`` is not given, else none)."""
        if kinds is None:
            kind_list = await self.backend.kinds(self.namespace)
            series_list = (
                await self.backend.series_names(self.namespace) if series is None else list(series)
            )
        else:
            kind_list = list(kinds)
            series_list = [] if series is None else list(series)
        for kind in kind_list:
            await self.rewrite_kind(kind)
        for name in series_list:
            await self.rewrite_series(name)
        return RewriteReport(
            self.scanned,
            self.rewritten,
            self.skipped,
            self.conflicts,
            self.series_scanned,
            self.series_rewritten,
            self.failed,
            tuple(self.failures),
        )

    def _progress(self) -> None:
        if self.options.progress is not None:
            self.options.progress(
                self.scanned + self.series_scanned, self.rewritten + self.series_rewritten
            )

    async def rewrite_kind(self, kind: str) -> None:
        """Every record of one kind, a page of ``batch_size`` at a time."""
        size = self.options.batch_size
        cursor: str | None = None
        while True:
            rows = await self.backend.list_records(
                self.namespace, kind, "", limit=size, cursor=cursor
            )
            for id, record in rows:
                await self.rewrite_record(kind, id, record)
            self._progress()
            if len(rows) < size:
                return
            cursor = rows[-1][0]

    async def rewrite_record(self, kind: str, id: str, record: Record) -> None:
        """One record, with compare-and-set on the version it was read at."""
        self.scanned += 1
        new = await self.reencode(record.value, f"{kind}/{id}")
        ttl = None if record.expires_at is None else record.expires_at - time.time()
        if new is None or (ttl is not None and ttl <= 0):
            self.skipped += 1
            return
        if self.options.check_only:
            self.rewritten += 1
            return
        write = self.backend.put(
            self.namespace, kind, id, new, ttl=ttl, expected_version=record.version
        )
        try:
            await self.tiers.invalidating([cache_key(self.namespace, kind, id)], write)
            self.rewritten += 1
        except ConflictError:
            self.conflicts += 1

    async def rewrite_series(self, name: str) -> None:
        """Every entry of one series, a page of ``batch_size`` at a time."""
        pages = series_pages(self.backend, self.namespace, name, self.options.batch_size)
        async for entries in pages:
            changes = []
            for entry in entries:
                self.series_scanned += 1
                new = await self.reencode(entry.value, f"series:{name}#{entry.seq}")
                if new is not None:
                    changes.append((entry.seq, entry.value, new))
            if changes and self.options.check_only:
                self.series_rewritten += len(changes)
            elif changes:
                done = await self.backend.rewrite_series(self.namespace, name, changes)
                self.series_rewritten += done
                self.conflicts += len(changes) - done
            self._progress()

    def fail(self, message: str) -> None:
        """Count a frame that could not be rewritten (the first ones are named)."""
        self.failed += 1
        if len(self.failures) < MAX_FAILURES:
            self.failures.append(message)

    async def reencode(self, frame: bytes, label: str) -> bytes | None:
        """The frame under today's codecs and primary key; None when current or unreadable."""
        pipeline = self.frames.pipeline
        try:
            try:
                new = pipeline.reencode(frame, label)
            except ResourceMissing:
                await self.frames.decode(frame, label)  # loads the codec resource
                new = pipeline.reencode(frame, label)
        except FrameError as exc:
            self.fail(f"{type(exc).__name__}: {exc}")
            return None
        if (
            new is not None
            and pipeline.encryptor is None
            and not self.options.decrypt
            and read_header(frame, label)[0][-1][0] == "encryptor"
        ):
            self.fail(
                f"{label}: is encrypted but no encryptor is configured, so rewriting would "
                "store it in the clear (configure the encryptor, or pass decrypt=True)"
            )
            return None
        return new


__all__ = [
    "MAX_FAILURES",
    "MemorySummary",
    "RewriteOptions",
    "RewriteReport",
    "Rewriter",
    "aggregate",
    "series_pages",
    "summarize",
]
