"""Parse a Redis backend URL plus options into client settings.

Accepted URLs::

    redis://[[user]:password@]host[:port][/db][?option=value&...]
    rediss://...                                   (TLS; ssl_* options pass through)
    unix://[[user]:password@]/path/to/redis.sock[?db=N&...]
    redis+cluster://[[user]:password@]host:port[,host:port...][?...]
    rediss+cluster://...                           (cluster over TLS)

Options come from the URL query and from keyword options (keyword options
win). The backend's own options are declared in :data:`OPTIONS` (coerced by
:func:`hivemem.plugin.parse_options`) and :data:`RAW_OPTIONS` (taken as
given); :data:`OWN_OPTIONS` maps each name to its meaning. Anything else is
handed to redis-py (``ssl_ca_certs``, ``client_name``,
``health_check_interval``, ...). The seed's configuration keys ``host``,
``port``, ``db``, ``username`` and ``password`` (:data:`SEED_OPTIONS`) are
accepted as options too and override the URL.

A bad value raises :class:`~hivemem.errors.ConfigError` shaped
``redis option NAME=VALUE: problem``. Credentials are kept out of every
``repr``, log line and error: errors name the server as
:attr:`RedisSettings.label` (``host:port``, ``unix:/path`` or the cluster's
node list) and the password option is declared secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import SplitResult, parse_qsl, unquote, urlencode, urlsplit

import attrs
from hivemem.plugin import ConfigError, Option, coerce_option, parse_options

SCHEMES = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster")
DEFAULT_PREFIX = "hivemem:"

#: the backend's own options, coerced from URL strings or typed keyword values
OPTIONS: tuple[Option, ...] = (
    Option(
        "socket_timeout", "seconds", 5.0, positive=True,
        doc="seconds to wait for a reply before a call fails (default 5)",
    ),
    Option(
        "socket_connect_timeout", "seconds", None, minimum=0,
        doc="seconds to wait for a TCP/TLS connect (default 5, or socket_timeout if smaller)",
    ),
    Option(
        "retries", "int", 2, minimum=0,
        doc="retries of idempotent calls after a connection error/timeout (default 2)",
    ),
    Option(
        "retry_backoff", "seconds", 0.05, minimum=0,
        doc="first backoff in seconds, doubled per retry (default 0.05)",
    ),
    Option(
        "retry_backoff_cap", "seconds", 1.0, minimum=0,
        doc="largest backoff in seconds (default 1.0)",
    ),
    Option(
        "max_connections", "int", None, positive=True, nullable=True,
        doc="connection pool size per server (default unbounded)",
    ),
    Option(
        "invalidation", "bool", True,
        doc="publish invalidation messages on writes (default true)",
    ),
)
#: options taken as given: the prefix may be bytes, the client is an object
RAW_OPTIONS: tuple[Option, ...] = (
    Option(
        "prefix", "str", DEFAULT_PREFIX,
        doc="key prefix (default 'hivemem:'); must not contain '{' or '}'",
    ),
    Option("client", doc="an existing redis.asyncio client (Redis or RedisCluster) to use"),
)
_DB_OPTION = Option("db", "int", doc="database number (overrides the URL)")
#: the seed's configuration keys; they override the URL's parts
SEED_OPTIONS: tuple[Option, ...] = (
    Option("host", "str", doc="server host (overrides the URL)"),
    Option("port", "int", doc="server port (overrides the URL)"),
    _DB_OPTION,
    Option("username", "str", nullable=True, doc="ACL user name (overrides the URL)"),
    Option(
        "password", "str", nullable=True, secret=True, doc="password (overrides the URL)"
    ),
)
#: options consumed by the backend itself (not passed to redis-py): name -> meaning
OWN_OPTIONS: dict[str, str] = {
    option.name: option.doc for option in (RAW_OPTIONS[0], *OPTIONS, *RAW_OPTIONS[1:])
}


@attrs.frozen
class RedisSettings:
    """Everything needed to build the client; ``password`` never shows in ``repr``."""

    scheme: str
    cluster: bool
    tls: bool
    label: str
    prefix: bytes
    socket_timeout: float
    socket_connect_timeout: float
    retries: int
    retry_backoff: float
    retry_backoff_cap: float
    invalidation: bool
    max_connections: int | None
    host: str | None = None
    port: int | None = None
    db: int = 0
    path: str | None = None
    nodes: tuple[tuple[str, int], ...] = ()
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    passthrough: dict[str, str] = attrs.field(factory=dict)
    client: Any = attrs.field(default=None, repr=False)


def _split_hostport(hostport: str, default_port: int = 6379) -> tuple[str, int]:
    if hostport.startswith("["):  # [ipv6]:port
        host, _, rest = hostport[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = hostport.rpartition(":") if ":" in hostport else (hostport, "", "")
    if not host:
        raise ConfigError(f"redis URL: missing host in {hostport!r}")
    try:
        return host, int(port) if port else default_port
    except ValueError:
        raise ConfigError(f"redis URL: bad port in {hostport!r}") from None


def _prefix(raw: Any) -> bytes:
    """The key prefix as bytes (a str is UTF-8 encoded); braces are refused."""
    if raw is None:
        raw = DEFAULT_PREFIX
    prefix = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
    if b"{" in prefix or b"}" in prefix:
        raise ConfigError(
            f"redis option prefix={raw!r}: must not contain '{{' or '}}' "
            "(braces would override the cluster hash tags of the key layout)"
        )
    return prefix


def _credentials(
    parts: SplitResult, given: Mapping[str, Any], seed: Mapping[str, Any]
) -> tuple[str | None, str | None]:
    """User name and password from the URL, overridden by the options when given."""
    userinfo = parts.netloc.rpartition("@")[0]
    username = password = None
    if userinfo:
        user, sep, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if sep else None
    if "username" in given:
        username = seed["username"]
    if "password" in given:
        password = seed["password"]
    return username, password


def _common(
    scheme: str, values: Mapping[str, Any], given: Mapping[str, Any], rest: Mapping[str, Any]
) -> dict[str, Any]:
    """The settings every deployment shares (timeouts, retries, prefix, client ...)."""
    timeout = values["socket_timeout"]
    connect_timeout = values["socket_connect_timeout"]
    if connect_timeout is None:
        connect_timeout = min(timeout, 5.0) or 5.0
    return dict(
        scheme=scheme,
        cluster=scheme.endswith("+cluster"),
        tls=scheme.startswith("rediss"),
        prefix=_prefix(given.get("prefix")),
        socket_timeout=timeout,
        socket_connect_timeout=connect_timeout,
        retries=values["retries"],
        retry_backoff=values["retry_backoff"],
        retry_backoff_cap=values["retry_backoff_cap"],
        invalidation=values["invalidation"],
        max_connections=values["max_connections"],
        passthrough={str(key): value for key, value in rest.items() if value is not None},
        client=given.get("client"),
    )


def _cluster(parts: SplitResult, seed: Mapping[str, Any], common: dict[str, Any]) -> RedisSettings:
    if seed["db"] not in (None, 0) or parts.path not in ("", "/"):
        raise ConfigError("redis+cluster URL: Redis Cluster has only database 0")
    hostinfo = parts.netloc.rpartition("@")[2]
    nodes = tuple(_split_hostport(node) for node in hostinfo.split(",") if node)
    if seed["host"] is not None:
        nodes = ((seed["host"], seed["port"] or 6379),)
    if not nodes:
        raise ConfigError("redis+cluster URL needs at least one host:port")
    label = ",".join(f"{host}:{port}" for host, port in nodes)
    return RedisSettings(label=label, nodes=nodes, **common)


def _unix(parts: SplitResult, seed: Mapping[str, Any], common: dict[str, Any]) -> RedisSettings:
    path = unquote(parts.path)
    if not path:
        raise ConfigError("unix:// redis URL needs a socket path: unix:///path/to/redis.sock")
    db = seed["db"] if seed["db"] is not None else 0
    return RedisSettings(label=f"unix:{path}", path=path, db=db, **common)


def _standalone(
    parts: SplitResult, seed: Mapping[str, Any], common: dict[str, Any]
) -> RedisSettings:
    hostinfo = parts.netloc.rpartition("@")[2]
    host, port = _split_hostport(hostinfo) if hostinfo else ("localhost", 6379)
    if seed["host"] is not None:
        host = seed["host"]
    if seed["port"] is not None:
        port = seed["port"]
    db = 0
    path_db = parts.path.strip("/")
    if path_db:
        db = coerce_option("redis", _DB_OPTION, path_db)
    if seed["db"] is not None:
        db = seed["db"]
    return RedisSettings(label=f"{host}:{port}", host=host, port=port, db=db, **common)


def parse(url: str, options: Mapping[str, Any]) -> RedisSettings:
    """Build :class:`RedisSettings` from a URL and keyword options (options win)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ConfigError(
            f"redis backend: unsupported URL scheme {scheme!r}; use one of {', '.join(SCHEMES)}"
        )
    given: dict[str, Any] = dict(parse_qsl(parts.query, keep_blank_values=True))
    given.update(options)
    values, rest = parse_options("redis", OPTIONS, given)
    seed, rest = parse_options("redis", SEED_OPTIONS, rest)
    for option in RAW_OPTIONS:
        rest.pop(option.name, None)
    common = _common(scheme, values, given, rest)
    common["username"], common["password"] = _credentials(parts, given, seed)
    if common["cluster"]:
        return _cluster(parts, seed, common)
    if scheme == "unix":
        return _unix(parts, seed, common)
    return _standalone(parts, seed, common)


def passthrough_kwargs(settings: RedisSettings) -> dict[str, Any]:
    """Typed redis-py keyword arguments for the pass-through query options."""
    if not settings.passthrough:
        return {}
    from redis.asyncio.connection import parse_url

    parsed = parse_url("redis://localhost/?" + urlencode(settings.passthrough))
    for key in ("host", "port", "db", "username", "password", "connection_class", "path"):
        parsed.pop(key, None)  # type: ignore[misc]
    return dict(parsed)
