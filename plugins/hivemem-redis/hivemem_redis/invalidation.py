"""Cross-process invalidation over Redis pub/sub.

Writers publish from inside their Lua scripts (so a message is sent if and
only if the write happened, and after it) on the namespace channel
``P{n:ns}:inv``. A message is the JSON array ``[client_id, kind, [ids]]``, or
``[client_id, null, null]`` when a whole namespace was dropped. On Redis
Cluster, classic ``PUBLISH`` is broadcast to every node, so the listener may
subscribe on any master.

One :class:`InvalidationHub` per backend owns one dedicated pub/sub
connection and a listener task. Messages from the hub's own client id are
ignored (that process already knows what it wrote). When the connection is
lost the hub reconnects with backoff, subscribes again and then tells every
callback ``(kind="", id=None)`` -- "anything may have changed" -- because
messages published while it was away are gone for good. A connection that
goes silent is probed with ``PING`` and replaced when the probe gets no answer
within the timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from hivemem.plugin import BackendUnavailable

log = logging.getLogger("hivemem.redis.invalidation")

Callback = Callable[[str, "str | None"], None]


class InvalidationHub:
    """Dispatches invalidation messages of subscribed namespaces to callbacks."""

    def __init__(
        self,
        make_client: Callable[[], Any],
        client_id: str,
        *,
        label: str,
        timeout: float,
        backoff: float = 0.05,
        backoff_cap: float = 1.0,
        probe_interval: float = 5.0,
    ) -> None:
        self._make_client = make_client
        self._client_id = client_id
        self._label = label
        self._timeout = timeout
        self._backoff = backoff
        self._backoff_cap = max(backoff_cap, backoff)
        self._probe_interval = probe_interval
        self._subs: dict[bytes, dict[int, Callback]] = {}
        self._confirmed: dict[bytes, asyncio.Event] = {}
        self._resync: set[bytes] = set()
        self._tokens = itertools.count()
        self._client: Any = None
        self._pubsub: Any = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._closed = False
        #: reconnects so far (tests and stats read it)
        self.reconnects = 0
        #: messages dispatched to callbacks so far
        self.delivered = 0

    # -- public --------------------------------------------------------------------
    async def subscribe(self, channel: bytes, callback: Callback) -> Callable[[], Awaitable[None]]:
        """Register ``callback`` for ``channel``; return when the server confirmed it."""
        token = next(self._tokens)
        async with self._lock:
            first = channel not in self._subs
            self._subs.setdefault(channel, {})[token] = callback
            try:
                if first:
                    self._confirmed[channel] = asyncio.Event()
                if self._pubsub is None:
                    await self._connect_locked()  # subscribes every channel, this one too
                elif first:
                    await self._pubsub.subscribe(channel)
                event = self._confirmed[channel]
                if self._task is None or self._task.done():
                    self._task = asyncio.get_running_loop().create_task(
                        self._listen(), name="hivemem-redis-invalidation"
                    )
            except Exception as exc:
                self._forget(channel, token)
                raise BackendUnavailable(
                    f"redis {self._label}: cannot subscribe to invalidations "
                    f"({type(exc).__name__})"
                ) from None
        try:
            await asyncio.wait_for(event.wait(), self._timeout)
        except TimeoutError:
            self._forget(channel, token)
            raise BackendUnavailable(
                f"redis {self._label}: no subscribe confirmation within {self._timeout:g}s"
            ) from None

        async def unsubscribe() -> None:
            async with self._lock:
                if self._forget(channel, token) and self._pubsub is not None:
                    with contextlib.suppress(Exception):
                        await self._pubsub.unsubscribe(channel)

        return unsubscribe

    async def close(self) -> None:
        """Stop the listener and close the pub/sub connection."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._drop_connection()

    # -- internals -------------------------------------------------------------------
    def _forget(self, channel: bytes, token: int) -> bool:
        """Remove one callback; True when the channel has none left."""
        subs = self._subs.get(channel)
        if subs is None:
            return False
        subs.pop(token, None)
        if subs:
            return False
        del self._subs[channel]
        self._confirmed.pop(channel, None)
        return True

    async def _connect_locked(self) -> None:
        """(Re)open the pub/sub connection and subscribe every channel (lock held)."""
        await self._drop_connection()
        self._client = self._make_client()
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=False)
        channels = list(self._subs)
        for channel in channels:
            old = self._confirmed.get(channel)
            if old is not None and old.is_set():
                self._resync.add(channel)  # was live before: messages may have been missed
            if old is None or old.is_set():
                self._confirmed[channel] = asyncio.Event()
        if channels:
            await self._pubsub.subscribe(*channels)
        else:
            await self._pubsub.ping()

    async def _drop_connection(self) -> None:
        pubsub, client = self._pubsub, self._client
        self._pubsub = self._client = None
        for closable in (pubsub, client):
            if closable is not None:
                with contextlib.suppress(Exception):
                    await closable.aclose()

    async def _reconnect(self, broken: Any) -> None:
        attempt = 0
        while not self._closed:
            delay = min(self._backoff_cap, self._backoff * 2**attempt)
            await asyncio.sleep(delay * (0.5 + random.random() / 2))
            attempt += 1
            try:
                async with self._lock:
                    if self._pubsub is not None and self._pubsub is not broken:
                        return  # a subscriber already reconnected
                    await self._connect_locked()
                self.reconnects += 1
                log.info("invalidation listener for %s reconnected", self._label)
                return
            except Exception as exc:  # keep trying until closed
                log.debug("invalidation reconnect to %s failed: %r", self._label, exc)
                async with self._lock:
                    await self._drop_connection()

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        last_rx = loop.time()
        probe_sent: float | None = None
        while not self._closed:
            pubsub = self._pubsub
            try:
                if pubsub is None:
                    raise ConnectionError("no pub/sub connection")
                msg = await pubsub.get_message(timeout=min(1.0, self._probe_interval))
                now = loop.time()
                if msg is not None:
                    last_rx, probe_sent = now, None
                    self._handle(msg)
                elif probe_sent is not None and now - probe_sent > self._timeout:
                    raise ConnectionError("pub/sub connection did not answer PING")
                elif probe_sent is None and now - last_rx > self._probe_interval:
                    probe_sent = now
                    await pubsub.ping()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure means reconnect
                if self._closed:
                    return
                log.warning("invalidation listener for %s lost its connection: %r",
                            self._label, exc)
                await self._reconnect(pubsub)
                last_rx, probe_sent = loop.time(), None

    def _handle(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        channel = msg.get("channel")
        if isinstance(channel, str):
            channel = channel.encode("utf-8")
        if kind == "subscribe":
            event = self._confirmed.get(channel)
            if event is not None:
                event.set()
            if channel in self._resync:
                self._resync.discard(channel)
                self._dispatch(channel, "", None)
            return
        if kind != "message":
            return
        try:
            sender, what, ids = json.loads(msg["data"])
        except (ValueError, TypeError):
            log.warning("ignoring malformed invalidation message on %r", channel)
            return
        if sender == self._client_id:
            return
        if what is None:
            self._dispatch(channel, "", None)
            return
        if not isinstance(ids, list):  # Lua's cjson encodes an empty table as {}
            return
        for id in ids:
            self._dispatch(channel, what, id)

    def _dispatch(self, channel: bytes, kind: str, id: str | None) -> None:
        for callback in list(self._subs.get(channel, {}).values()):
            self.delivered += 1
            try:
                callback(kind, id)
            except Exception:  # one bad callback must not stop the others
                log.exception("invalidation callback failed")
