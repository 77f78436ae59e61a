"""Everything a hivemem plugin needs, from one module.

A plugin distribution imports from here (and from :mod:`hivemem.testing` in
its tests), never from the core's private modules::

    from hivemem.plugin import Backend, Capabilities, Record, Register, hookimpl

The hooks themselves are documented in :mod:`hivemem.hookspecs`. Names:

* registration: :data:`hookimpl`, :class:`Register`;
* backends: :class:`Backend` (:data:`PRIMITIVES` to implement,
  :data:`DEFAULTS` composed from them, :data:`OPTIONAL` capabilities),
  :func:`build_backend` (for backends that wrap others), :class:`Capabilities`,
  :class:`Record`, :class:`SeriesEntry`, :class:`KindStats`,
  :class:`SeriesStats`, :class:`NamespaceStats`, :func:`check_ttl`,
  :func:`prefix_upper`, :func:`prefix_upper_bytes`;
* options: :class:`Option`, :func:`parse_options`, :func:`coerce_option`
  (URL query and keyword options coerced one way, one error shape);
* caches: :class:`Cache`, :class:`InProcessCache`;
* codecs: :class:`Serializer`, :class:`Compressor`, :class:`Encryptor`,
  :class:`ByteCodec`, :data:`RESOURCE_NS` (where codec resources are stored);
* errors: every :class:`HivememError` subclass;
* frames: :func:`read_header` (stages and payload offset of a stored frame);
* redaction: :func:`redact_url`, :func:`scrub`;
* CLI commands: :func:`common_options`, :func:`emit`, :func:`guarded`,
  :func:`run`, :func:`open_from_context` (imported on first use, so a plugin
  that registers no command never loads the CLI).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .backend import (
    DEFAULTS,
    OPTIONAL,
    PRIMITIVES,
    Backend,
    Capabilities,
    KindStats,
    NamespaceStats,
    Record,
    SeriesEntry,
    SeriesStats,
    check_ttl,
    prefix_upper,
    prefix_upper_bytes,
)
from .cache import Cache, InProcessCache
from .codecs import RESOURCE_NS, ByteCodec, Compressor, Encryptor, Serializer
from .errors import (
    BackendClosed,
    BackendUnavailable,
    CodecNotInstalled,
    ConfigError,
    ConflictError,
    DecodeLimitExceeded,
    DecryptionError,
    FrameError,
    HivememError,
    InvalidKey,
    InvalidTTL,
    PluginConflict,
    PluginError,
    PluginNotFound,
    ResourceMissing,
    SerializationError,
    UnencryptedFrame,
    Unsupported,
    UntrustedCodec,
    ValueTooLarge,
)
from .hookspecs import Register
from .options import Option, coerce_option, parse_options
from .pipeline import read_header
from .plugins import build_backend, hookimpl
from .redact import redact_url, scrub

if TYPE_CHECKING:
    from .cli import common_options, emit, guarded, open_from_context, run

_CLI_NAMES = ("common_options", "emit", "guarded", "open_from_context", "run")


def __getattr__(name: str) -> Any:
    if name in _CLI_NAMES:
        from . import cli

        return getattr(cli, name)
    raise AttributeError(f"module 'hivemem.plugin' has no attribute {name!r}")


__all__ = [
    "DEFAULTS",
    "OPTIONAL",
    "PRIMITIVES",
    "RESOURCE_NS",
    "Backend",
    "BackendClosed",
    "BackendUnavailable",
    "ByteCodec",
    "Cache",
    "Capabilities",
    "CodecNotInstalled",
    "Compressor",
    "ConfigError",
    "ConflictError",
    "DecodeLimitExceeded",
    "DecryptionError",
    "Encryptor",
    "FrameError",
    "HivememError",
    "InProcessCache",
    "InvalidKey",
    "InvalidTTL",
    "KindStats",
    "NamespaceStats",
    "Option",
    "PluginConflict",
    "PluginError",
    "PluginNotFound",
    "Record",
    "Register",
    "ResourceMissing",
    "SerializationError",
    "Serializer",
    "SeriesEntry",
    "SeriesStats",
    "UnencryptedFrame",
    "Unsupported",
    "UntrustedCodec",
    "ValueTooLarge",
    "build_backend",
    "check_ttl",
    "coerce_option",
    "common_options",
    "emit",
    "guarded",
    "hookimpl",
    "open_from_context",
    "parse_options",
    "prefix_upper",
    "prefix_upper_bytes",
    "read_header",
    "redact_url",
    "run",
    "scrub",
]
