"""hivemem's builtin plugins, registered through the ``hivemem`` entry-point group.

The root ``pyproject.toml`` lists this module as the entry point ``builtin``
exactly as a third-party distribution would list its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..hookspecs import Register
from ..plugins import hookimpl


def _memory_backend(url: str, **options: Any) -> Any:
    from .memory_backend import MemoryBackend

    return MemoryBackend(url, **options)


def _sqlite_backend(url: str, **options: Any) -> Any:
    from .sqlite_backend import SQLiteBackend

    return SQLiteBackend(url, **options)


def _local_cache(url: str, **options: Any) -> Any:
    from .local_cache import LocalCache

    return LocalCache(url, **options)


@hookimpl
def hivemem_register_backends(register: Register) -> None:
    """memory:// and sqlite:///path."""
    register(
        "memory",
        _memory_backend,
        schemes=("memory",),
        description="process-local dicts, for tests and scratch (memory://[name])",
    )
    register(
        "sqlite",
        _sqlite_backend,
        schemes=("sqlite",),
        description="embedded SQLite file, WAL, durable (sqlite:///path/to/file.db)",
    )


@hookimpl
def hivemem_register_caches(register: Register) -> None:
    """local:// in-process LRU."""
    register(
        "local",
        _local_cache,
        schemes=("local",),
        description="in-process LRU with TTL, entry and byte budgets",
    )


@hookimpl
def hivemem_register_serializers(register: Register) -> None:
    """json (safe default) and pickle (unsafe, opt-in)."""
    from .codecs import JsonSerializer, PickleSerializer

    register(
        "json", JsonSerializer, description="safe JSON with tagged datetimes/bytes/sets/tuples"
    )
    register(
        "pickle",
        PickleSerializer,
        description="UNSAFE on stores others can write: loading runs code chosen by the data",
    )


@hookimpl
def hivemem_register_compressors(register: Register) -> None:
    """none and zlib."""
    from .codecs import Identity, ZlibCompressor

    register("none", Identity, description="no compression")
    register("zlib", ZlibCompressor, description="standard-library deflate, bounded decompress")


@hookimpl
def hivemem_register_encryptors(register: Register) -> None:
    """none."""
    from .codecs import Identity

    register("none", Identity, description="no encryption")


@hookimpl
def hivemem_seed_backend(
    memory_type: str, config: Mapping[str, Any], env: Mapping[str, str]
) -> dict[str, Any] | None:
    """The seed's ``sqlite`` (``path``, env ``HIVEMEM_SQLITE_PATH``) and ``memory`` (``name``)."""
    options = dict(config)
    if memory_type == "sqlite":
        path = options.pop("path", None) or env.get("HIVEMEM_SQLITE_PATH")
        if path is None:
            from ..config import default_url

            return {"url": default_url(), "backend_options": options}
        return {"url": "sqlite:///" + str(Path(str(path)).expanduser()), "backend_options": options}
    if memory_type == "memory":
        return {"url": "memory://" + str(options.pop("name", "")), "backend_options": options}
    return None
