"""hivemem: shared, durable memory for AI agents.

Start embedded (SQLite, no server), move to Redis, Redis Cluster or MongoDB by
changing one URL::

    import hivemem

    async with hivemem.open_memory("sqlite:///agent.db", namespace="agent1") as mem:
        await mem.put("user", "u1", {"name": "Ada"})
        print(await mem.get("user", "u1"))
"""

from .backend import Backend, Capabilities, Record, SeriesEntry
from .cache import Cache
from .compat import DistributedMemoryBackend, DistributedMemoryFactory, DistributedMemoryManager
from .config import MemoryConfig, load_config
from .errors import (
    BackendUnavailable,
    CodecNotInstalled,
    ConfigError,
    ConflictError,
    DecodeLimitExceeded,
    DecryptionError,
    FrameError,
    HivememError,
    InvalidKey,
    PluginConflict,
    PluginError,
    PluginNotFound,
    SerializationError,
    UnencryptedFrame,
    Unsupported,
    UntrustedCodec,
    UpdateConflict,
    ValueTooLarge,
)
from .memory import Memory, MemorySummary, Page, RewriteReport, open_memory
from .pipeline import Pipeline
from .plugins import get_plugins, hookimpl, make_plugins
from .seed import SeedMemory

__version__ = "0.1.0"

__all__ = [
    "Backend",
    "BackendUnavailable",
    "Cache",
    "Capabilities",
    "CodecNotInstalled",
    "ConfigError",
    "ConflictError",
    "DecodeLimitExceeded",
    "DecryptionError",
    "DistributedMemoryBackend",
    "DistributedMemoryFactory",
    "DistributedMemoryManager",
    "FrameError",
    "HivememError",
    "InvalidKey",
    "Memory",
    "MemoryConfig",
    "MemorySummary",
    "Page",
    "Pipeline",
    "PluginConflict",
    "PluginError",
    "PluginNotFound",
    "Record",
    "RewriteReport",
    "SeedMemory",
    "SerializationError",
    "SeriesEntry",
    "UnencryptedFrame",
    "Unsupported",
    "UntrustedCodec",
    "UpdateConflict",
    "ValueTooLarge",
    "__version__",
    "get_plugins",
    "hookimpl",
    "load_config",
    "make_plugins",
    "open_memory",
]
