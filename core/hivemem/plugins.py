"""Plugin discovery: a pluggy manager over the ``hivemem`` entry-point group.

The core's own builtins are registered through the same group (see the root
``pyproject.toml``), so there is exactly one way in. A manager is *made* by
:func:`make_plugins`; the process-wide default is created lazily by
:func:`get_plugins` and never at import time.

Environment:

* ``HIVEMEM_BLOCK_PLUGINS=a,b`` -- entry-point names not to load.
* ``HIVEMEM_LOAD_PLUGINS=a,b`` -- load only these entry-point names.
* ``HIVEMEM_TRACE_HOOKS=1`` -- log every hook call (logger ``hivemem.plugins``).
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
import pluggy

from . import hookspecs
from .errors import ConfigError, PluginConflict, PluginError, PluginNotFound

if TYPE_CHECKING:
    from .backend import Backend

log = logging.getLogger("hivemem.plugins")

ENTRYPOINT_GROUP = "hivemem"
KINDS = ("backend", "cache", "serializer", "compressor", "encryptor")

_HOOKS = {
    "backend": "hivemem_register_backends",
    "cache": "hivemem_register_caches",
    "serializer": "hivemem_register_serializers",
    "compressor": "hivemem_register_compressors",
    "encryptor": "hivemem_register_encryptors",
}

#: names/schemes provided by first-party distributions, for helpful errors
KNOWN_PACKAGES: dict[str, str] = {
    "redis": "hivemem-redis",
    "rediss": "hivemem-redis",
    "redis+cluster": "hivemem-redis",
    "rediss+cluster": "hivemem-redis",
    "unix": "hivemem-redis",
    "mongodb": "hivemem-mongo",
    "mongodb+srv": "hivemem-mongo",
    "memcached": "hivemem-memcached",
    "zstd": "hivemem-zstd",
    "fernet": "hivemem-fernet",
}

hookimpl = pluggy.HookimplMarker("hivemem")


@attrs.frozen
class PluginEntry:
    """One thing a plugin registered."""

    kind: str
    name: str
    factory: Callable[..., Any] = attrs.field(repr=False, eq=False)
    schemes: tuple[str, ...] = ()
    description: str = ""
    plugin: str = ""
    distribution: str | None = None
    version: str | None = None

    @property
    def source(self) -> str:
        """Human name of who provided this entry (distribution or plugin name)."""
        if self.distribution:
            return f"{self.distribution} {self.version or ''}".strip()
        return self.plugin


class Registry:
    """Name and scheme lookup for one plugin kind."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.by_name: dict[str, PluginEntry] = {}
        self.by_scheme: dict[str, PluginEntry] = {}

    def add(self, entry: PluginEntry) -> None:
        """Add an entry; a duplicate name or scheme is a PluginConflict naming both."""
        other = self.by_name.get(entry.name)
        if other is not None:
            raise PluginConflict(
                f"two {self.kind} plugins are named {entry.name!r}: "
                f"{other.source} and {entry.source}; block one with HIVEMEM_BLOCK_PLUGINS"
            )
        for scheme in entry.schemes:
            other = self.by_scheme.get(scheme)
            if other is not None:
                raise PluginConflict(
                    f"two {self.kind} plugins claim the URL scheme {scheme!r}: "
                    f"{other.source} and {entry.source}; block one with HIVEMEM_BLOCK_PLUGINS"
                )
        self.by_name[entry.name] = entry
        for scheme in entry.schemes:
            self.by_scheme[scheme] = entry

    def get(self, name: str) -> PluginEntry:
        """Entry by name; PluginNotFound (listing the installed names) otherwise."""
        try:
            return self.by_name[name]
        except KeyError:
            raise PluginNotFound(self.kind, name, self.by_name, KNOWN_PACKAGES.get(name)) from None

    def for_scheme(self, scheme: str) -> PluginEntry:
        """Entry by URL scheme; PluginNotFound (listing installed schemes) otherwise."""
        try:
            return self.by_scheme[scheme]
        except KeyError:
            raise PluginNotFound(
                self.kind,
                f"{scheme}://",
                (f"{s}://" for s in self.by_scheme),
                KNOWN_PACKAGES.get(scheme),
            ) from None

    def names(self) -> list[str]:
        """Sorted registered names."""
        return sorted(self.by_name)


def _csv_env(name: str) -> list[str]:
    raw = os.environ.get(name, "")
    return [part.strip() for part in raw.split(",") if part.strip()]


class Plugins:
    """A plugin manager plus the five registries built from its hooks."""

    def __init__(
        self, pm: pluggy.PluginManager, dists: Mapping[str, tuple[str, str]] | None = None
    ) -> None:
        self.pm = pm
        self._dists = dict(dists or {})
        self._registries: dict[str, Registry] | None = None
        self._lock = threading.Lock()

    @property
    def registries(self) -> dict[str, Registry]:
        """The registries, built on first use by calling each hook once."""
        if self._registries is None:
            with self._lock:
                if self._registries is None:
                    self._registries = self._build()
        return self._registries

    def registry(self, kind: str) -> Registry:
        """The registry of one plugin kind (``backend``, ``cache``, ...)."""
        if kind not in _HOOKS:
            raise ConfigError(f"unknown plugin kind {kind!r}; kinds: {', '.join(KINDS)}")
        return self.registries[kind]

    def distributions(self) -> dict[str, tuple[str, str]]:
        """plugin name -> (distribution name, version) from entry-point metadata."""
        return dict(self._dists)

    def _build(self) -> dict[str, Registry]:
        dists = self.distributions()
        registries = {kind: Registry(kind) for kind in KINDS}
        for kind, hook_name in _HOOKS.items():
            hook = getattr(self.pm.hook, hook_name)
            impls = hook.get_hookimpls()
            for impl in impls:
                plugin_name = impl.plugin_name
                dist, version = dists.get(plugin_name, (None, None))

                def register(
                    name: str,
                    factory: Callable[..., Any],
                    *,
                    schemes: Iterable[str] = (),
                    description: str = "",
                    _kind: str = kind,
                    _plugin: str = plugin_name,
                    _dist: str | None = dist,
                    _version: str | None = version,
                ) -> None:
                    if not isinstance(name, str) or not name:
                        raise ConfigError(f"plugin {_plugin!r} registered a {_kind} without a name")
                    registries[_kind].add(
                        PluginEntry(
                            kind=_kind,
                            name=name,
                            factory=factory,
                            schemes=tuple(schemes),
                            description=description,
                            plugin=_plugin,
                            distribution=_dist,
                            version=_version,
                        )
                    )

                # call through pluggy (so HIVEMEM_TRACE_HOOKS sees it), one plugin at a time
                others = [other.plugin for other in impls if other.plugin is not impl.plugin]
                self.pm.subset_hook_caller(hook_name, others)(register=register)
        return registries

    def describe(self) -> list[dict[str, Any]]:
        """For each loaded plugin: distribution, version and what it provides per kind."""
        dists = self.distributions()
        rows: dict[str, dict[str, Any]] = {}
        for name, plugin in self.pm.list_name_plugin():
            if plugin is None:
                continue
            dist, version = dists.get(name, (None, None))
            rows[name] = {
                "name": name,
                "distribution": dist,
                "version": version,
                "module": getattr(plugin, "__name__", repr(plugin)),
                "provides": {},
            }
        for kind, registry in self.registries.items():
            for entry in registry.by_name.values():
                row = rows.setdefault(
                    entry.plugin,
                    {
                        "name": entry.plugin,
                        "distribution": entry.distribution,
                        "version": entry.version,
                        "module": entry.plugin,
                        "provides": {},
                    },
                )
                row["provides"].setdefault(kind, []).append(
                    {
                        "name": entry.name,
                        "schemes": list(entry.schemes),
                        "description": entry.description,
                    }
                )
        for row in rows.values():
            for items in row["provides"].values():
                items.sort(key=lambda item: item["name"])
        return sorted(rows.values(), key=lambda row: row["name"])


def _load_entrypoints(
    pm: pluggy.PluginManager, allowed: list[str], dists: dict[str, tuple[str, str]]
) -> None:
    seen: set[str] = set()
    for ep in importlib.metadata.entry_points(group=ENTRYPOINT_GROUP):
        if ep.name in seen or pm.is_blocked(ep.name) or pm.get_plugin(ep.name) is not None:
            continue
        if allowed and ep.name not in allowed:
            continue
        seen.add(ep.name)
        dist = ep.dist
        where = f" from {dist.metadata['name']} {dist.version}" if dist is not None else ""
        try:
            plugin = ep.load()
        except Exception as exc:
            raise ConfigError(
                f"plugin {ep.name!r}{where} failed to load ({type(exc).__name__}: {exc}); "
                f"skip it with HIVEMEM_BLOCK_PLUGINS={ep.name}"
            ) from exc
        pm.register(plugin, name=ep.name)
        if dist is not None:
            dists[ep.name] = (dist.metadata["name"], dist.version)


def make_plugins(
    *,
    entrypoints: bool = True,
    plugins: Mapping[str, object] | None = None,
    blocked: Iterable[str] | None = None,
    allowed: Iterable[str] | None = None,
    trace: bool | None = None,
) -> Plugins:
    """Build a fresh plugin manager.

    ``entrypoints`` loads the ``hivemem`` entry-point group (honouring
    ``blocked`` -- default ``HIVEMEM_BLOCK_PLUGINS`` -- and ``allowed`` --
    default ``HIVEMEM_LOAD_PLUGINS``). ``plugins`` registers extra objects by
    name (tests use this to register exactly what they need).
    """
    pm = pluggy.PluginManager("hivemem")
    pm.add_hookspecs(hookspecs)
    dists: dict[str, tuple[str, str]] = {}
    blocked_names = list(blocked) if blocked is not None else _csv_env("HIVEMEM_BLOCK_PLUGINS")
    allowed_names = list(allowed) if allowed is not None else _csv_env("HIVEMEM_LOAD_PLUGINS")
    for name in blocked_names:
        pm.set_blocked(name)
    if entrypoints:
        try:
            _load_entrypoints(pm, allowed_names, dists)
        except pluggy.PluginValidationError as exc:
            raise ConfigError(f"plugin {exc.plugin!r} is invalid: {exc}") from None
    for name, plugin in (plugins or {}).items():
        if not pm.is_blocked(name):
            try:
                pm.register(plugin, name=name)
            except pluggy.PluginValidationError as exc:
                raise ConfigError(f"plugin {name!r} is invalid: {exc}") from None
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise ConfigError(
            f"plugin {exc.plugin!r} implements an unknown hook: {exc}; "
            "hook names start with hivemem_ (see hivemem.hookspecs)"
        ) from None
    if trace if trace is not None else os.environ.get("HIVEMEM_TRACE_HOOKS"):

        def before(hook_name: str, impls: Any, kwargs: Any) -> None:
            log.warning("hook %s -> %s", hook_name, [impl.plugin_name for impl in impls])

        def after(outcome: Any, hook_name: str, impls: Any, kwargs: Any) -> None:
            log.warning("hook %s done", hook_name)

        pm.add_hookcall_monitoring(before, after)
    return Plugins(pm, dists)


_default: Plugins | None = None
_default_lock = threading.Lock()


def get_plugins() -> Plugins:
    """The process-wide plugins, created on first call."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = make_plugins()
    return _default


def reset_plugins() -> None:
    """Forget the process-wide plugins (the next :func:`get_plugins` reloads)."""
    global _default
    with _default_lock:
        _default = None


__all__ = [
    "ENTRYPOINT_GROUP",
    "KINDS",
    "PluginEntry",
    "Plugins",
    "Registry",
    "build_backend",
    "get_plugins",
    "hookimpl",
    "make_plugins",
    "reset_plugins",
]


def build_backend(url: str, *, plugins: Plugins | None = None, **options: Any) -> Backend:
    """The backend registered for ``url``'s scheme, built (not opened) by its plugin's factory.

    For backends that wrap others (a proxy, a composite): the caller opens and
    closes what it builds. ``plugins`` defaults to the process-wide plugins.
    """
    from urllib.parse import urlsplit

    from .backend import Backend

    scheme = urlsplit(url).scheme.lower()
    entry = (plugins or get_plugins()).registry("backend").for_scheme(scheme)
    backend = entry.factory(url, **options)
    if not isinstance(backend, Backend):
        raise PluginError(
            "backend", entry.name, f"factory returned {type(backend).__name__}, not a Backend"
        )
    return backend

