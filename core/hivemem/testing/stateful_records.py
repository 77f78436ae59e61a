"""Rules of the backend state machine for records: writes, CAS, batches, listing, expiry."""

from __future__ import annotations

import time
from collections.abc import Coroutine
from typing import Any, TypeVar

from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule

from hivemem.backend import Record
from hivemem.errors import ConflictError

from .helpers import eventually
from .stateful_model import (
    CLOCK_SLACK,
    CONTROL_KIND,
    KINDS,
    PREFIXES,
    MachineBase,
    Stored,
    ids,
    kinds,
    limits,
    needs,
    spaces,
    ttls,
    values,
)

__all__ = ["RecordRules"]

T = TypeVar("T")


class RecordRules(MachineBase):
    """Records: every rule does one operation on the backend and the model, then compares."""

    def _version(self, ns: str, kind: str, id: str) -> int:
        cur = self.records.get((ns, kind, id))
        return cur.version if cur else 0

    def _ttl(self, ttl: float | None) -> float | None:
        return ttl if self.caps.supports_ttl else None

    def _write(
        self, coro: Coroutine[Any, Any, T], ttl: float | None
    ) -> tuple[T, tuple[float, float] | None]:
        """Run a write; return its result and the window its records' ``expires_at`` is in."""
        before = time.time()
        result = self._run(coro)
        after = time.time()
        window = None if ttl is None else (before + ttl - CLOCK_SLACK, after + ttl + CLOCK_SLACK)
        return result, window

    @staticmethod
    def _check(rec: Record, expected: Stored, what: Any) -> None:
        """``rec`` holds the model's value and version, and an ``expires_at`` in its window."""
        assert (rec.value, rec.version) == (expected.value, expected.version), what
        if expected.expires is None:
            assert rec.expires_at is None, (
                f"{what}: expires_at {rec.expires_at}, written without ttl"
            )
        else:
            lo, hi = expected.expires
            assert rec.expires_at is not None and lo <= rec.expires_at <= hi, (
                f"{what}: expires_at {rec.expires_at} outside [{lo}, {hi}]"
            )

    def _existing_ids(self, ns: str, kind: str) -> list[str]:
        return sorted(i for (n, k, i) in self.records if (n, k) == (ns, kind))

    def _draw_id(self, ns: str, kind: str, data: st.DataObject) -> str:
        existing = self._existing_ids(ns, kind)
        choices = (st.sampled_from(existing) | ids) if existing else ids
        return data.draw(choices, label="id")

    @rule(space=spaces, kind=kinds, value=values, ttl=ttls, data=st.data())
    def put(
        self, space: int, kind: str, value: bytes, ttl: float | None, data: st.DataObject
    ) -> None:
        """Plain put (often over a stored id): version grows by one; no TTL clears a TTL."""
        ns, ttl = self._ns(space), self._ttl(ttl)
        id = self._draw_id(ns, kind, data)
        version, window = self._write(self.backend.put(ns, kind, id, value, ttl=ttl), ttl)
        assert version == self._version(ns, kind, id) + 1
        self.records[(ns, kind, id)] = Stored(value, version, window)

    @needs("supports_cas")
    @rule(
        space=spaces,
        kind=kinds,
        value=values,
        delta=st.sampled_from((None, -1, 0, 1)),
        ttl=ttls,
        data=st.data(),
    )
    def put_cas(
        self,
        space: int,
        kind: str,
        value: bytes,
        delta: int | None,
        ttl: float | None,
        data: st.DataObject,
    ) -> None:
        """CAS put with the right, a stale, a future or the "must not exist" version."""
        ns, ttl = self._ns(space), self._ttl(ttl)
        id = self._draw_id(ns, kind, data)
        current = self._version(ns, kind, id)
        expected = 0 if delta is None else max(0, current + delta)
        try:
            version, window = self._write(
                self.backend.put(ns, kind, id, value, ttl=ttl, expected_version=expected), ttl
            )
        except ConflictError as exc:
            assert expected != current, "conflict although the version matched"
            assert exc.actual == (current or None)
            return
        assert expected == current, f"CAS with {expected} succeeded at version {current}"
        assert version == current + 1
        self.records[(ns, kind, id)] = Stored(value, version, window)

    @precondition(lambda self: bool(self.records))
    @rule(ttl=ttls, how=st.sampled_from(("put", "put_cas", "put_many")), data=st.data())
    def overwrite(self, ttl: float | None, how: str, data: st.DataObject) -> None:
        """Overwriting a stored record bumps its version and replaces its TTL (none clears it)."""
        ns, kind, id = data.draw(st.sampled_from(sorted(self.records)), label="record")
        ttl = self._ttl(ttl)
        value = data.draw(values, label="value")
        current = self._version(ns, kind, id)
        if how == "put_many":
            _, window = self._write(self.backend.put_many(ns, kind, {id: value}, ttl=ttl), ttl)
        else:
            cas = how == "put_cas" and self.caps.supports_cas
            kw: dict[str, Any] = {"expected_version": current} if cas else {}
            version, window = self._write(self.backend.put(ns, kind, id, value, ttl=ttl, **kw), ttl)
            assert version == current + 1
        self.records[(ns, kind, id)] = Stored(value, current + 1, window)
        rec = self._run(self.backend.get(ns, kind, id))
        assert rec is not None, (ns, kind, id)
        self._check(rec, self.records[(ns, kind, id)], (ns, kind, id, how))

    @rule(space=spaces, kind=kinds, data=st.data())
    def get(self, space: int, kind: str, data: st.DataObject) -> None:
        """get agrees with the model."""
        ns = self._ns(space)
        id = self._draw_id(ns, kind, data)
        rec = self._run(self.backend.get(ns, kind, id))
        expected = self.records.get((ns, kind, id))
        if expected is None:
            assert rec is None
        else:
            assert rec is not None
            self._check(rec, expected, (ns, kind, id))

    @rule(space=spaces, kind=kinds, cas=st.booleans(), data=st.data())
    def delete(self, space: int, kind: str, cas: bool, data: st.DataObject) -> None:
        """delete (optionally with the current version as CAS) agrees with the model."""
        ns = self._ns(space)
        id = self._draw_id(ns, kind, data)
        if cas and not self.caps.supports_cas:
            cas = False
        current = self._version(ns, kind, id)
        kwargs = {"expected_version": current} if cas else {}
        removed = self._run(self.backend.delete(ns, kind, id, **kwargs))
        assert removed == (current > 0)
        self.records.pop((ns, kind, id), None)

    @rule(space=spaces, kind=kinds, ttl=ttls, data=st.data())
    def put_many(self, space: int, kind: str, ttl: float | None, data: st.DataObject) -> None:
        """put_many creates at version 1, bumps existing versions by one, applies its TTL."""
        ns, ttl = self._ns(space), self._ttl(ttl)
        existing = self._existing_ids(ns, kind)
        keys = (st.sampled_from(existing) | ids) if existing else ids
        items = data.draw(st.dictionaries(keys, values, max_size=5), label="items")
        _, window = self._write(self.backend.put_many(ns, kind, items, ttl=ttl), ttl)
        for id, value in items.items():
            self.records[(ns, kind, id)] = Stored(value, self._version(ns, kind, id) + 1, window)

    @rule(space=spaces, kind=kinds, data=st.data())
    def get_many(self, space: int, kind: str, data: st.DataObject) -> None:
        """get_many returns exactly the live wanted ids (duplicates allowed)."""
        ns = self._ns(space)
        existing = self._existing_ids(ns, kind)
        keys = (st.sampled_from(existing) | ids) if existing else ids
        wanted = data.draw(st.lists(keys, max_size=6), label="wanted")
        got = self._run(self.backend.get_many(ns, kind, wanted))
        expected = {i for i in wanted if (ns, kind, i) in self.records}
        assert set(got) == expected
        for i, rec in got.items():
            self._check(rec, self.records[(ns, kind, i)], (ns, kind, i))

    @rule(space=spaces, kind=kinds, data=st.data())
    def delete_many(self, space: int, kind: str, data: st.DataObject) -> None:
        """delete_many counts each live id once."""
        ns = self._ns(space)
        existing = self._existing_ids(ns, kind)
        keys = (st.sampled_from(existing) | ids) if existing else ids
        doomed = data.draw(st.lists(keys, max_size=6), label="doomed")
        n = self._run(self.backend.delete_many(ns, kind, doomed))
        live = {i for i in doomed if (ns, kind, i) in self.records}
        assert n == len(live)
        for i in live:
            del self.records[(ns, kind, i)]

    def _listing_bounds(self, kind: str, data: st.DataObject) -> tuple[str, str | None]:
        """A prefix and a cursor, often taken from ids stored in either namespace.

        Ids stored in one namespace only are favoured as prefixes: listing the
        other namespace by them is where a leak between namespaces shows.
        """
        prefixes = st.sampled_from(PREFIXES)
        cursors = ids | st.just("a0")
        held = [{i for (n, k, i) in self.records if (n, k) == (ns, kind)} for ns in self._spaces]
        stored_ids = sorted(held[0] | held[1])
        if stored_ids:
            stored = st.sampled_from(stored_ids)
            prefixes = st.just("") | stored.map(lambda i: i[:1]) | stored | prefixes
            cursors = stored | cursors
        lonely = sorted(held[0] ^ held[1])
        if lonely:
            alone = st.sampled_from(lonely)
            prefixes = alone | alone.map(lambda i: i[:1]) | prefixes
        return data.draw(prefixes, label="prefix"), data.draw(st.none() | cursors, label="cursor")

    @rule(
        kind=kinds,
        limit=limits,
        reverse=st.booleans(),
        with_records=st.booleans(),
        data=st.data(),
    )
    def listing(
        self,
        kind: str,
        limit: int | None,
        reverse: bool,
        with_records: bool,
        data: st.DataObject,
    ) -> None:
        """Prefix listing with limit, cursor and direction agrees with sorted model ids.

        The same listing runs in both namespaces, with prefixes and cursors
        often taken from ids stored in either (the paging case, and the ids a
        leak from the other namespace would show).
        """
        prefix, cursor = self._listing_bounds(kind, data)
        kw: dict[str, Any] = {"limit": limit, "cursor": cursor, "reverse": reverse}
        for ns in self._spaces:
            expected = [i for i in self._existing_ids(ns, kind) if i.startswith(prefix)]
            if reverse:
                expected.reverse()
            if cursor is not None:
                expected = [i for i in expected if (i < cursor if reverse else i > cursor)]
            if limit is not None:
                expected = expected[:limit]
            if with_records:
                got = self._run(self.backend.list_records(ns, kind, prefix, **kw))
                assert [i for i, _ in got] == expected, (ns, kind)
                for i, rec in got:
                    self._check(rec, self.records[(ns, kind, i)], (ns, kind, i))
            else:
                got_ids = self._run(self.backend.list_ids(ns, kind, prefix, **kw))
                assert got_ids == expected, (ns, kind)

    @rule(space=spaces)
    def list_kinds(self, space: int) -> None:
        """kinds() lists the kinds holding live records (never an expired control's)."""
        ns = self._ns(space)
        expected = sorted({k for (n, k, _) in self.records if n == ns})
        assert self._run(self.backend.kinds(ns)) == expected

    @rule(
        space=spaces,
        kind=kinds,
        page=st.integers(min_value=1, max_value=3),
        reverse=st.booleans(),
        data=st.data(),
    )
    def paging(self, space: int, kind: str, page: int, reverse: bool, data: st.DataObject) -> None:
        """Paging with ``cursor=<last id of the previous page>`` visits every id once."""
        ns = self._ns(space)
        prefix, _ = self._listing_bounds(kind, data)
        expected = [i for i in self._existing_ids(ns, kind) if i.startswith(prefix)]
        if reverse:
            expected.reverse()
        seen: list[str] = []
        cursor: str | None = None
        for _ in range(len(expected) + 1):  # bounded: a stuck cursor fails below
            got = self._run(
                self.backend.list_ids(ns, kind, prefix, limit=page, cursor=cursor, reverse=reverse)
            )
            if not got:
                break
            seen += got
            cursor = got[-1]
        assert seen == expected

    @needs("supports_ttl")
    @precondition(lambda self: not self.expired)
    @rule(batch=st.booleans(), data=st.data())
    def expire(self, batch: bool, data: st.DataObject) -> None:
        """Records rewritten with a short TTL are, once it has passed, gone for good.

        Rewrites a few records (mostly existing ones, of either namespace) with
        ``short_ttl`` by put or put_many, then writes a control record with the
        same TTL *after* them and waits until the control is gone: by the
        store's own clock every earlier record has expired too, so the model
        drops them, with no guess about timing. At most once per example.
        """
        self.expired = True
        keys = st.tuples(spaces.map(self._ns), kinds, ids)
        if self.records:
            keys = st.sampled_from(sorted(self.records)) | keys
        doomed = data.draw(st.lists(keys, min_size=1, max_size=4, unique=True), label="doomed")
        groups: dict[tuple[str, str], dict[str, bytes]] = {}
        for ns, kind, id in doomed:
            groups.setdefault((ns, kind), {})[id] = data.draw(values, label="value")
        for (ns, kind), items in groups.items():
            if batch:
                self._run(self.backend.put_many(ns, kind, items, ttl=self.short_ttl))
                continue
            for id, value in items.items():
                version = self._run(self.backend.put(ns, kind, id, value, ttl=self.short_ttl))
                assert version == self._version(ns, kind, id) + 1
        self._run(self.backend.put(self.ns, CONTROL_KIND, "", b"control", ttl=self.short_ttl))

        async def control_gone() -> bool:
            return await self.backend.get(self.ns, CONTROL_KIND, "") is None

        self._run(eventually(control_gone, timeout=self.expiry_timeout, what="control expiry"))
        for key in doomed:
            self.records.pop(key, None)

    @rule(space=spaces)
    def drop_namespace(self, space: int) -> None:
        """drop_namespace empties one namespace; the other keeps everything."""
        ns = self._ns(space)
        self._run(self.backend.drop_namespace(ns))
        for store in (self.records, self.counters):
            for key in [key for key in store if key[0] == ns]:
                del store[key]
        for skey in [key for key in self.series if key[0] == ns]:
            del self.series[skey]

    @invariant()
    def records_agree(self) -> None:
        """After every step the stored records equal the model: value, version, expiry."""
        if not hasattr(self, "records"):
            return
        for ns in self._spaces:
            for kind in KINDS:
                got = self._run(self.backend.list_records(ns, kind))
                assert [i for i, _ in got] == self._existing_ids(ns, kind), (ns, kind)
                for i, rec in got:
                    self._check(rec, self.records[(ns, kind, i)], (ns, kind, i))
