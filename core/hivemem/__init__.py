"""hivemem: shared, durable memory for AI agents."""

from .plugins import hookimpl

__version__ = "0.1.0"
__all__ = ["__version__", "hookimpl"]
