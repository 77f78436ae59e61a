"""hivemem-fernet: authenticated encryption of stored values, with key rotation.

Turn it on by naming it as the encryptor and giving it keys::

    export HIVEMEM_FERNET_KEYS="$(hivemem fernet generate-key)"
    hivemem.open_memory("redis://localhost", encryptor="fernet")

Several comma-separated keys (primary first) keep values written under an
old key readable while ``hivemem rotate-keys`` re-encrypts them.
Importing this module is cheap: ``cryptography`` is imported when an
encryptor is built or a key generated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hivemem.plugin import Register, hookimpl

if TYPE_CHECKING:
    from .encryptor import FernetEncryptor

__version__ = "0.1.0"


def _fernet(**options: Any) -> FernetEncryptor:
    from .encryptor import FernetEncryptor

    return FernetEncryptor(**options)


def generate_key() -> str:
    """A new random Fernet key as text (what ``hivemem fernet generate-key`` prints)."""
    from .encryptor import generate_key as _generate

    return _generate()


@hookimpl
def hivemem_register_encryptors(register: Register) -> None:
    """fernet"""
    register(
        "fernet",
        _fernet,
        description="Fernet (AES-128-CBC + HMAC-SHA256), several keys for rotation "
        "(HIVEMEM_FERNET_KEYS)",
    )


@hookimpl
def hivemem_register_commands(cli: Any) -> None:
    """``hivemem fernet generate-key``."""
    from .cli import fernet

    cli.add_command(fernet)


__all__ = [
    "__version__",
    "generate_key",
    "hivemem_register_commands",
    "hivemem_register_encryptors",
]
