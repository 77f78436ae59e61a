"""Parse ``memcached://host:port[,host:port...][?option=value&...]`` into settings.

Options are declared once (:data:`OPTIONS`) and coerced by
:func:`hivemem.plugin.parse_options`, so a bad value reads
``memcached option NAME=VALUE: ...`` whether it came from the URL or a keyword.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import attrs
from hivemem.plugin import ConfigError, Option, parse_options

DEFAULT_PORT = 11211
#: memcached's default item size limit (``-I 1m``)
ITEM_SIZE_LIMIT = 1024 * 1024
#: room left in an item for memcached's header and our key (about 50 + 70 bytes)
ITEM_OVERHEAD = 512
#: longest prefix we accept: derived keys must stay below memcached's 250 bytes
MAX_PREFIX = 150

_PREFIX_RE = re.compile(r"^[!-~]*$")  # printable ASCII, no space, no control characters


@attrs.frozen
class ServerAddress:
    """One memcached server."""

    host: str
    port: int

    @property
    def label(self) -> str:
        """``host:port`` (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@attrs.frozen
class MemcachedSettings:
    """Everything a :class:`~hivemem_memcached.cache.MemcachedCache` is configured with."""

    servers: tuple[ServerAddress, ...]
    #: seconds allowed for one call to one server (connect + request + reply)
    timeout: float = 0.25
    #: connections per server
    pool_size: int = 4
    #: prepended to every derived key (isolates applications sharing servers)
    prefix: str = "hm:"
    #: largest value stored; larger values are not cached (counted as ``too_large``)
    max_value_size: int = ITEM_SIZE_LIMIT - ITEM_OVERHEAD
    #: default TTL in seconds for values set without one; 0: until evicted
    ttl: float = 0.0
    #: consecutive failures after which a server is marked down
    down_after: int = 2
    #: first back-off before a down server is probed again (doubles per failed probe)
    retry_after: float = 0.5
    #: longest back-off between probes of a down server
    max_retry_after: float = 5.0


def _parse_server(part: str) -> ServerAddress:
    part = part.strip()
    if not part:
        raise ConfigError("memcached URL has an empty server entry")
    if part.startswith("["):
        host, sep, rest = part[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ConfigError(f"memcached server {part!r} is not [ipv6]:port")
        port_text = rest[1:] if rest else ""
    else:
        host, _, port_text = part.rpartition(":") if ":" in part else (part, "", "")
    host = unquote(host)
    if not host:
        raise ConfigError(f"memcached server {part!r} has no host")
    if not port_text:
        return ServerAddress(host, DEFAULT_PORT)
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"memcached server {part!r} has a non-numeric port") from None
    if not 0 < port < 65536:
        raise ConfigError(f"memcached server {part!r} has port {port} out of range")
    return ServerAddress(host, port)


#: the URL query options (keyword options of the factory override them)
OPTIONS = (
    Option("timeout", "seconds", 0.25, positive=True, doc="seconds for one call to one server"),
    Option("pool_size", "int", 4, minimum=1, doc="connections per server"),
    Option("prefix", "str", "hm:", doc="prepended to every derived key"),
    Option(
        "max_value_size",
        "int",
        ITEM_SIZE_LIMIT - ITEM_OVERHEAD,
        minimum=1,
        doc="largest value cached, in bytes",
    ),
    Option("ttl", "seconds", 0.0, minimum=0, doc="TTL of values set without one; 0: none"),
    Option("down_after", "int", 2, minimum=1, doc="consecutive failures that mark a server down"),
    Option("retry_after", "seconds", 0.5, minimum=0, doc="first back-off before a probe"),
    Option("max_retry_after", "seconds", 5.0, minimum=0, doc="longest back-off between probes"),
)
_KNOWN = ", ".join(sorted(option.name for option in OPTIONS))


def _parse_servers(netloc: str) -> tuple[ServerAddress, ...]:
    servers = tuple(_parse_server(p) for p in netloc.split(",")) if netloc else ()
    if not servers:
        raise ConfigError("memcached URL names no server: memcached://host:port[,host:port...]")
    if len(set(servers)) != len(servers):
        raise ConfigError(f"memcached URL lists a server twice: {netloc!r}")
    return servers


def _check_prefix(prefix: str) -> str:
    if len(prefix) > MAX_PREFIX or not _PREFIX_RE.match(prefix):
        raise ConfigError(
            f"memcached option prefix={prefix!r}: must be at most {MAX_PREFIX} printable "
            "ASCII characters without spaces"
        )
    return prefix


def parse_url(url: str, **options: Any) -> MemcachedSettings:
    """Settings from the URL's servers and query, overridden by ``options``.

    Raises :class:`~hivemem.errors.ConfigError` naming the offending part.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() != "memcached":
        raise ConfigError(f"memcached cache needs a memcached:// URL, got {parts.scheme!r}://")
    if "@" in parts.netloc:
        raise ConfigError("memcached URLs take no credentials (the text protocol has no auth)")
    if parts.path not in ("", "/"):
        raise ConfigError(f"memcached URL takes no path, got {parts.path!r}")
    servers = _parse_servers(parts.netloc)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    values, unknown = parse_options("memcached", OPTIONS, query, options)
    if unknown:
        raise ConfigError(
            f"unknown memcached option(s): {', '.join(sorted(unknown))}; known: {_KNOWN}"
        )
    return MemcachedSettings(
        servers=servers,
        timeout=values["timeout"],
        pool_size=values["pool_size"],
        prefix=_check_prefix(values["prefix"]),
        max_value_size=values["max_value_size"],
        ttl=values["ttl"],
        down_after=values["down_after"],
        retry_after=values["retry_after"],
        max_retry_after=max(values["retry_after"], values["max_retry_after"]),
    )


__all__ = [
    "DEFAULT_PORT",
    "ITEM_OVERHEAD",
    "ITEM_SIZE_LIMIT",
    "OPTIONS",
    "MemcachedSettings",
    "ServerAddress",
    "parse_url",
]
