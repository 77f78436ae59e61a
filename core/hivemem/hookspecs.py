"""Every hook a hivemem plugin can implement -- this file is the plugin-author reference.

A plugin is a module (or object) listed in the ``hivemem`` entry-point group
of its distribution's ``pyproject.toml``::

    [project.entry-points.hivemem]
    mystore = "hivemem_mystore"

It implements one or more of the five registration hooks below with
``@hookimpl`` (``from hivemem.plugin import hookimpl``; :mod:`hivemem.plugin`
re-exports everything a plugin needs). All five use the same style: the hook
receives a ``register`` callback and calls it once per thing it provides::

    register(name, factory, *, schemes=(), description="")

* ``name`` -- the unique name users select it by (``"zstd"``, ``"redis"``).
* ``factory`` -- a callable that builds an instance (signature per hook below).
  Keep it cheap and free of I/O: connecting happens in ``open()``.
* ``schemes`` -- URL schemes it answers (backends and caches only).
* ``description`` -- one line for ``hivemem plugins``.

The core records which distribution registered what; two plugins claiming the
same name or scheme within one kind is a :class:`~hivemem.errors.PluginConflict`
that names both distributions. Hooks are called once, when the plugin
registries are first built (lazily, on the first ``open_memory``/CLI use), in
no guaranteed order. A hook must not do I/O, start threads or import heavy
optional dependencies at module import time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import pluggy

hookspec = pluggy.HookspecMarker("hivemem")


class Register(Protocol):
    """The ``register`` callback passed to every hook."""

    def __call__(
        self,
        name: str,
        factory: Any,
        *,
        schemes: tuple[str, ...] | list[str] = (),
        description: str = "",
    ) -> None: ...


@hookspec
def hivemem_register_backends(register: Register) -> None:
    """Register storage backends.

    ``factory(url: str, **options) -> hivemem.backend.Backend``. ``url`` is the
    full URL the user gave (its scheme is one of ``schemes``); ``options`` are
    the extra settings from configuration (``backend_options``), e.g. the
    seed's ``prefix``. The returned object subclasses
    :class:`hivemem.backend.Backend`, does no I/O until ``await open()``, and
    passes the backend conformance suite (``hivemem.testing.BackendSuite``).
    Never put a password from ``url`` into a repr, log line or error.
    """


@hookspec
def hivemem_register_caches(register: Register) -> None:
    """Register cache tiers.

    ``factory(url: str, **options) -> hivemem.cache.Cache``. Caches sit in front
    of the backend (local -> remote -> backend). A cache that cannot reach its
    server must turn that into misses within a bounded time, never raise from
    ``get``. Prove it with ``hivemem.testing.CacheSuite``.
    """


@hookspec
def hivemem_register_serializers(register: Register) -> None:
    """Register serializers (object <-> bytes), the first pipeline stage.

    ``factory(**options) -> serializer`` where the serializer has ``name: str``
    (equal to the registered name), ``dumps(obj) -> bytes`` and
    ``loads(data: bytes) -> object``. ``dumps`` raises
    :class:`~hivemem.errors.SerializationError` for values it cannot
    represent; ``loads`` raises ``ValueError`` on malformed input (the
    pipeline turns it into a :class:`~hivemem.errors.FrameError` naming the
    key). A serializer that can execute code on load (pickle) must say so in
    its description: it is only safe on a store nobody untrusted can write.
    """


@hookspec
def hivemem_register_compressors(register: Register) -> None:
    """Register compressors (bytes <-> bytes), the second pipeline stage.

    ``factory(**options) -> codec`` where the codec has ``name: str``,
    ``encode(data: bytes) -> bytes | None`` and ``decode(data: bytes) -> bytes``.
    ``encode`` may return None to decline (too small to be worth it): the
    frame then records no compression for that value. ``decode`` must bound
    its output: it raises ``ValueError`` rather than expand past the
    ``max_output_size`` option (default 64 MiB) -- decompression bombs must
    fail fast without allocating the expansion.
    """


@hookspec
def hivemem_register_encryptors(register: Register) -> None:
    """Register encryptors (bytes <-> bytes), the last pipeline stage.

    ``factory(**options) -> codec`` with the same shape as a compressor.
    Encryption must be authenticated: ``decode`` raises
    :class:`~hivemem.errors.DecryptionError` (or ``ValueError``) on a wrong
    key, tampering or truncation and never returns garbage. Support several
    keys so values written under an old key stay readable during rotation.
    Keys never appear in reprs, logs or errors. An encryptor may also offer
    ``needs_reencrypt(data: bytes) -> bool`` (true when ``data`` is not under
    the primary key) for key rotation.
    """


@hookspec
def hivemem_register_commands(cli: Any) -> None:
    """Add subcommands to the ``hivemem`` command line.

    ``cli`` is the root :class:`click.Group`; add commands or groups to it
    (``@cli.group() def zstd(): ...``). Commands should be thin wrappers over
    the Python API and use :func:`hivemem.cli.open_from_context` to open the
    memory selected by ``--url``/``--namespace``. This hook is not one of the
    five plugin kinds: it only extends the CLI.
    """


@hookspec(firstresult=True)
def hivemem_seed_backend(
    memory_type: str, config: Mapping[str, Any], env: Mapping[str, str]
) -> dict[str, Any] | None:
    """Map the seed API's backend settings onto a hivemem URL.

    ``memory_type`` is what the seed calls the backend (``"redis"``,
    ``"mongodb"`` ...), lower-cased; ``config`` the seed's explicit settings
    (``DistributedMemoryManager(config=...)``, the factory's keywords; may be
    empty) and ``env`` the environment, for the seed's variables
    (``REDIS_HOST`` ...). Explicit ``config`` keys win over ``env``.

    Return ``{"url": ..., "backend_options": {...}}`` when ``memory_type`` is
    yours, else None (the first non-None answer wins). This keeps every
    backend's settings in its own plugin: the core never parses them. Not one
    of the five plugin kinds; optional.
    """
