"""The parts a Memory delegates to, built from one configuration, opened and closed together.

::

    MemoryParts(config, plugins)     build backend, caches, pipeline (no I/O)
    await parts.open(ns, callback)   open backend, open caches, load codec resources,
                                     subscribe to writes of other processes
    await parts.close()              unsubscribe, close caches, close backend

A Memory and its namespace views share one ``MemoryParts``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from .backend import Backend
from .cache import Cache
from .config import MemoryConfig, mask_url
from .errors import HivememError
from .frames import Frames
from .metrics import Metrics
from .pipeline import Pipeline
from .plugins import Plugins
from .redact import plugin_acall, plugin_call, secrets_of
from .tiers import Tiers, seal_remote

#: called with ``(kind, id)`` when another process wrote a record (``id`` None: many)
WriteCallback = Callable[[str, str | None], None]


def build_backend(config: MemoryConfig, plugins: Plugins, secrets: frozenset[str]) -> Backend:
    """The backend the URL's scheme selects (errors name the plugin, never a secret)."""
    entry = plugins.registry("backend").for_scheme(config.scheme)
    return plugin_call(
        "backend",
        entry.name,
        secrets,
        mask_url(config.url),
        entry.factory,
        config.url,
        **config.backend_options,
    )


def build_caches(
    config: MemoryConfig, plugins: Plugins, secrets: frozenset[str]
) -> list[tuple[str, Cache]]:
    """One cache per URL of ``config.cache``, named by its plugin (``local``, ``local'``...)."""
    caches: list[tuple[str, Cache]] = []
    registry = plugins.registry("cache")
    for url in config.cache:
        entry = registry.for_scheme(url.split("://", 1)[0].lower())
        cache = plugin_call("cache", entry.name, secrets, mask_url(url), entry.factory, url)
        name = entry.name
        while any(name == taken for taken, _ in caches):
            name += "'"
        caches.append((name, cache))
    return caches


def build_pipeline(config: MemoryConfig, plugins: Plugins) -> Pipeline:
    """The value pipeline the configuration names."""
    return Pipeline(
        config.serializer,
        config.compressor,
        config.encryptor,
        options=config.codec_options,
        plugins=plugins,
        read_codecs=config.read_codecs,
        accept_plaintext=config.accept_plaintext,
    )


class MemoryParts:
    """Backend, cache tiers, frames and metrics of one configuration, with their lifecycle."""

    def __init__(self, config: MemoryConfig, plugins: Plugins) -> None:
        self.config = config
        self.plugins = plugins
        self.secrets = secrets_of(config)
        #: name of the plugin providing the backend (errors name it)
        self.backend_plugin = plugins.registry("backend").for_scheme(config.scheme).name
        self.backend = build_backend(config, plugins, self.secrets)
        caches = build_caches(config, plugins, self.secrets)
        pipeline = build_pipeline(config, plugins)
        self.metrics = Metrics()
        self.tiers = Tiers(
            seal_remote(config, caches, pipeline.encryptor), self.metrics, config.cache_ttl
        )
        self.frames = Frames(pipeline, self.backend)
        self.opened = False
        self.closed = False
        self.open_lock: asyncio.Lock | None = None
        self.unsubscribe: list[Callable[[], Awaitable[None]]] = []

    async def open(self, namespace: str, on_remote_write: WriteCallback) -> None:
        """Connect everything once (idempotent); ``on_remote_write`` hears other writers."""
        if self.opened:
            return
        if self.closed:
            raise HivememError("this Memory was closed; open a new one")
        if self.open_lock is None:
            self.open_lock = asyncio.Lock()
        async with self.open_lock:
            if self.opened:
                return
            target = mask_url(self.config.url)
            await plugin_acall(
                "backend", self.backend_plugin, self.secrets, target, self.backend.open
            )
            try:
                await self.tiers.open(self.config.cache, self.secrets)
                await self.frames.load_needed_resources()
                await self._subscribe(namespace, on_remote_write)
            except BaseException:
                await self.tiers.close()
                await self.backend.close()
                raise
            self.opened = True

    async def _subscribe(self, namespace: str, on_remote_write: WriteCallback) -> None:
        """Hear other processes' writes, when a local tier could hold what they changed."""
        if not self.tiers.local:
            return
        unsubscribe = await self.backend.subscribe(namespace, on_remote_write)
        if unsubscribe is not None:
            self.unsubscribe.append(unsubscribe)

    async def close(self) -> None:
        """Unsubscribe, close caches and backend. Safe to call twice."""
        if self.closed:
            return
        self.closed = True
        if not self.opened:
            return
        for unsubscribe in self.unsubscribe:
            try:
                await unsubscribe()
            except Exception:
                pass
        await self.tiers.close()
        await self.backend.close()


__all__ = ["MemoryParts", "WriteCallback", "build_backend", "build_caches", "build_pipeline"]
