"""The hivemem exception hierarchy.

Every error raised on purpose by hivemem or a well-behaved plugin derives from
:class:`HivememError`. Each names the offending key, setting or value -- never
a secret (passwords, encryption keys): messages go to logs and terminals.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


class HivememError(Exception):
    """Root of every hivemem error."""


class ConfigError(HivememError, ValueError):
    """A setting is missing, malformed or contradicts another setting."""


class InvalidKey(HivememError, ValueError):
    """A namespace, kind, id or series name cannot be stored (names the value)."""


class PluginNotFound(ConfigError):
    """No installed plugin provides the requested name or URL scheme."""

    def __init__(
        self,
        kind: str,
        name: str,
        installed: Iterable[str],
        package: str | None = None,
    ) -> None:
        self.kind = kind
        self.name = name
        self.installed = sorted(installed)
        self.package = package
        what = "for URL scheme" if name.endswith("://") else "named"
        msg = f"no {kind} plugin {what} {name!r}; installed: {', '.join(self.installed) or 'none'}"
        if package:
            msg += f" (pip install {package} provides {name!r})"
        super().__init__(msg)


class PluginConflict(ConfigError):
    """Two plugins claim the same name or URL scheme."""


class FrameError(HivememError):
    """A stored value is not a readable frame: truncated, corrupt or unknown."""

    def __init__(self, message: str, key: str | None = None) -> None:
        self.key = key
        super().__init__(f"{message} (key {key!r})" if key is not None else message)


class CodecNotInstalled(FrameError):
    """A frame names a codec that is not installed in this process."""

    def __init__(
        self, codec: str, stage: str, key: str | None = None, package: str | None = None
    ) -> None:
        self.codec = codec
        self.stage = stage
        self.package = package
        hint = f"; pip install {package}" if package else ""
        super().__init__(f"{stage} {codec!r} is not installed{hint}", key)


class UntrustedCodec(FrameError):
    """A frame names a codec this reader does not allow for reading.

    Raised before any codec runs. The allowed set is what the configuration
    writes plus the codecs named in ``read_codecs``; ``pickle`` only when it
    is named there (or configured as the serializer) in so many words.
    """

    def __init__(self, codec: str, stage: str, key: str | None = None) -> None:
        self.codec = codec
        self.stage = stage
        super().__init__(
            f"frame names {stage} {codec!r}, which this reader does not allow "
            "(allow it for reading with the setting read_codecs)",
            key,
        )


class DecodeLimitExceeded(FrameError):
    """Decoding a value would allocate more than the configured budget allows."""


class ResourceMissing(FrameError):
    """A codec needs a stored resource it has not loaded yet (e.g. a zstd dictionary).

    Raised by a codec's ``decode`` with the resource's ``resource_kind`` and
    ``resource_id``; the :class:`~hivemem.memory.Memory` then loads it from the
    store (``Memory.put_resource``), hands it to the codec's ``add_resource``
    and decodes again. It only reaches callers when the store lacks it.
    """

    def __init__(
        self,
        resource_kind: str,
        resource_id: str,
        key: str | None = None,
        *,
        stage: tuple[str, str] | None = None,
        detail: str = "which is not loaded",
    ) -> None:
        self.resource_kind = resource_kind
        self.resource_id = resource_id
        #: (stage, codec name) that needs it, filled in by the pipeline
        self.stage = stage
        who = f"{stage[0]} {stage[1]!r} " if stage else ""
        super().__init__(f"{who}needs {resource_kind} {resource_id!r}, {detail}", key)


class DecryptionError(FrameError):
    """A value could not be decrypted: wrong or missing key, tampered or truncated data."""


class UnencryptedFrame(DecryptionError):
    """An encryptor is configured but the frame carries no encryption stage.

    Refused unless the memory runs in the documented plaintext-migration mode
    (``accept_plaintext=True``, which ``hivemem rotate-keys --encrypt-plaintext``
    turns on for its own run only).
    """

    def __init__(self, key: str | None = None) -> None:
        super().__init__(
            "frame is not encrypted but this memory requires encryption "
            "(run `hivemem rotate-keys --encrypt-plaintext` to encrypt old plaintext data)",
            key,
        )


class SerializationError(HivememError, TypeError):
    """A value cannot be serialized by the configured serializer."""


class BackendUnavailable(HivememError, ConnectionError):
    """The backend cannot be reached (names host:port, never credentials)."""


class BackendClosed(BackendUnavailable):
    """A backend was used before :meth:`~hivemem.backend.Backend.open` or after ``close()``.

    Raised by the :class:`~hivemem.backend.Backend` base class itself, with the
    same message shape for every backend: ``"<name> backend is not open (call
    open() first)"`` or ``"<name> backend is closed"``.
    """


class InvalidTTL(HivememError, ValueError):
    """A TTL is not a positive, finite number of seconds (names the value)."""


class ConflictError(HivememError):
    """A compare-and-set lost: the record's version was not the expected one."""

    def __init__(self, key: str, expected: int, actual: int | None) -> None:
        self.key = key
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"version conflict on {key!r}: expected version {expected}, found "
            + ("no record" if actual is None else f"version {actual}")
        )


class UpdateConflict(ConflictError):
    """``Memory.update`` gave up: every attempt lost its compare-and-set to another writer.

    ``attempts``: how many were made; ``versions``: ``(read, found)`` of the last ones.
    """

    def __init__(self, key: str, attempts: int, versions: Sequence[tuple[int, int | None]]) -> None:
        read, found = versions[-1] if versions else (0, None)
        super().__init__(key, read, found)
        self.attempts, self.versions = attempts, tuple(versions)
        seen = ", ".join(
            f"{read} -> {'deleted' if found is None else found}" for read, found in self.versions
        )
        self.args = (
            f"update of {key!r} gave up after {attempts} attempts: each time another writer "
            f"changed the record between the read and the write (version read -> version "
            f"found: {seen}); retry later or pass a larger retries=",
        )


class PluginError(HivememError):
    """A plugin failed while being built or opened (names the plugin; never a secret)."""

    def __init__(self, kind: str, plugin: str, message: str) -> None:
        self.kind = kind
        self.plugin = plugin
        super().__init__(f"{kind} plugin {plugin!r}: {message}")


class Unsupported(HivememError, NotImplementedError):
    """The backend or cache does not implement an optional capability."""


class ValueTooLarge(HivememError, ValueError):
    """A value exceeds what the backend, cache or codec accepts."""

    def __init__(self, key: str | None, size: int, limit: int, where: str = "backend") -> None:
        self.key = key
        self.size = size
        self.limit = limit
        what = "a value" if key is None else f"value for {key!r}"
        size_text = f"is {size} bytes" if size >= 0 else "exceeds the limit"
        super().__init__(f"{what} {size_text}; {where} limit is {limit} bytes")


__all__ = [
    "BackendClosed",
    "BackendUnavailable",
    "CodecNotInstalled",
    "ConfigError",
    "ConflictError",
    "DecodeLimitExceeded",
    "DecryptionError",
    "FrameError",
    "HivememError",
    "InvalidKey",
    "InvalidTTL",
    "PluginConflict",
    "PluginError",
    "PluginNotFound",
    "ResourceMissing",
    "SerializationError",
    "UnencryptedFrame",
    "Unsupported",
    "UntrustedCodec",
    "UpdateConflict",
    "ValueTooLarge",
]
