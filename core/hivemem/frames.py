"""Values to frames and back through the pipeline, loading codec resources on demand;
:class:`RecordReader` reads the records of a namespace from the backend and decodes
them (what a cache-tier miss and a listing read).

A codec resource (a zstd dictionary, ...) is stored in the reserved namespace
``__hivemem__``; a frame naming one this process has not loaded yet makes
:meth:`Frames.decode` read it from the backend once and decode again.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Sequence
from typing import Any

import attrs

from .backend import Backend, Record
from .errors import ResourceMissing, ValueTooLarge
from .metrics import Metrics
from .names import RESOURCE_NS
from .pipeline import Pipeline


class Frames:
    """The pipeline of one Memory plus the backend its codec resources are stored in."""

    def __init__(self, pipeline: Pipeline, backend: Backend) -> None:
        self.pipeline = pipeline
        self.backend = backend
        #: the backend's largest accepted value (bytes), None: no limit
        self.max_value = backend.capabilities.max_value_size

    def encode(self, value: Any, kind: str, id: str) -> bytes:
        """The frame of ``value`` for ``kind/id`` (:class:`ValueTooLarge` past the limit)."""
        limit = self.max_value
        frame = self.pipeline.encode(value, f"{kind}/{id}", limit=limit, where=self.backend.name)
        if limit is not None and len(frame) > limit:
            raise ValueTooLarge(f"{kind}/{id}", len(frame), limit, self.backend.name)
        return frame

    async def decode(self, frame: bytes, label: str) -> Any:
        """Decode a frame, loading a codec resource from the store when one is missing."""
        try:
            return self.pipeline.decode(frame, label)
        except ResourceMissing as exc:
            if exc.stage is None:
                raise
            try:
                await self.load_resource(*exc.stage, exc.resource_kind, exc.resource_id)
            except ResourceMissing:
                raise ResourceMissing(
                    exc.resource_kind,
                    exc.resource_id,
                    exc.key,
                    stage=exc.stage,
                    detail="which is not stored in this memory",
                ) from None
            return self.pipeline.decode(frame, label)

    async def load_resource(
        self, stage: str, codec_name: str, resource_kind: str, resource_id: str
    ) -> None:
        """Read one codec resource from the store and hand it to its codec."""
        rec = await self.backend.get(RESOURCE_NS, resource_kind, resource_id)
        if rec is None:
            raise ResourceMissing(
                resource_kind,
                resource_id,
                stage=(stage, codec_name),
                detail="which is not stored in this memory",
            )
        self.pipeline.codec(stage, codec_name).add_resource(resource_kind, resource_id, rec.value)

    async def load_needed_resources(self) -> None:
        """Load every resource the configured codecs need before they can write (at open)."""
        for stage, codec_name, resource_kind, resource_id in self.pipeline.resources_needed():
            await self.load_resource(stage, codec_name, resource_kind, resource_id)


def seconds_left(record: Record) -> float | None:
    """How long a record has to live (None: no TTL; at least a millisecond)."""
    return None if record.expires_at is None else max(0.001, record.expires_at - time.time())


@attrs.frozen
class Page:
    """One page of a prefix listing: values in id order and the cursor for the next page."""

    items: dict[str, Any]
    cursor: str | None


class RecordReader:
    """The records of one namespace, read from the backend and decoded; counts backend reads.

    What a cache-tier miss reads (:class:`hivemem.tiers.Source`) and what a listing reads.
    """

    __slots__ = ("backend", "frames", "metrics", "namespace")

    def __init__(self, frames: Frames, metrics: Metrics, namespace: str) -> None:
        self.frames = frames
        self.backend = frames.backend
        self.metrics = metrics
        self.namespace = namespace

    async def fetch(self, kind: str, id: str) -> tuple[bytes, float | None] | None:
        record = await self.backend.get(self.namespace, kind, id)
        self.metrics.reads += 1
        return None if record is None else (record.value, seconds_left(record))

    async def fetch_many(
        self, kind: str, ids: Sequence[str]
    ) -> dict[str, tuple[bytes, float | None]]:
        records = await self.backend.get_many(self.namespace, kind, ids)
        self.metrics.reads += len(ids)
        return {id: (record.value, seconds_left(record)) for id, record in records.items()}

    def decode(self, kind: str, frame: bytes, id: str) -> Awaitable[Any]:
        return self.frames.decode(frame, f"{kind}/{id}")

    async def page(
        self, kind: str, prefix: str, limit: int | None, cursor: str | None, reverse: bool
    ) -> Page:
        """Decoded records whose id starts with ``prefix``, after ``cursor``, in id order."""
        rows = await self.backend.list_records(
            self.namespace, kind, prefix, limit=limit, cursor=cursor, reverse=reverse
        )
        self.metrics.reads += len(rows)
        decode = self.frames.decode
        items = {id: await decode(record.value, f"{kind}/{id}") for id, record in rows}
        full = rows and limit is not None and len(rows) == limit
        return Page(items, rows[-1][0] if full else None)


__all__ = ["Frames", "Page", "RecordReader", "seconds_left"]
