"""``hivemem fernet ...`` commands."""

from __future__ import annotations

import click


@click.group()
def fernet() -> None:
    """Fernet encryption keys."""


@fernet.command("generate-key")
def generate_key_command() -> None:
    """Print a new random key (prepend it to HIVEMEM_FERNET_KEYS to make it the primary)."""
    from .encryptor import generate_key

    click.echo(generate_key())
