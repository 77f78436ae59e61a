"""Parse a Redis backend URL plus options into client settings.

Accepted URLs::

    redis://[[user]:password@]host[:port][/db][?option=value&...]
    rediss://...                                   (TLS; ssl_* options pass through)
    unix://[[user]:password@]/path/to/redis.sock[?db=N&...]
    redis+cluster://[[user]:password@]host:port[,host:port...][?...]
    rediss+cluster://...                           (cluster over TLS)

Options come from the URL query and from keyword options (keyword options
win). The backend's own options are listed in :data:`OWN_OPTIONS`; anything
else is handed to redis-py (``ssl_ca_certs``, ``client_name``,
``health_check_interval``, ...). The seed's configuration keys ``host``,
``port``, ``db``, ``username`` and ``password`` are accepted as options too and
override the URL.

Credentials are kept out of every ``repr``, log line and error: errors name
the server as :attr:`RedisSettings.label` (``host:port``, ``unix:/path`` or
the cluster's node list).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import attrs
from hivemem.errors import ConfigError

SCHEMES = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster")

#: options consumed by the backend itself (not passed to redis-py)
OWN_OPTIONS = {
    "prefix": "key prefix (default 'hivemem:'); must not contain '{' or '}'",
    "socket_timeout": "seconds to wait for a reply before a call fails (default 5)",
    "socket_connect_timeout": "seconds to wait for a TCP/TLS connect (default 5)",
    "retries": "retries of idempotent calls after a connection error/timeout (default 2)",
    "retry_backoff": "first backoff in seconds, doubled per retry (default 0.05)",
    "retry_backoff_cap": "largest backoff in seconds (default 1.0)",
    "max_connections": "connection pool size per server (default unbounded)",
    "invalidation": "publish invalidation messages on writes (default true)",
    "client": "an existing redis.asyncio client (Redis or RedisCluster) to use",
}
_SEED_OPTIONS = ("host", "port", "db", "username", "password")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _float(name: str, value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"redis option {name}={value!r}: expected a number") from None
    if out < 0:
        raise ConfigError(f"redis option {name}={value!r}: must be >= 0")
    return out


def _int(name: str, value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"redis option {name}={value!r}: expected an integer") from None


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"redis option {name}={value!r}: expected true or false")


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


def _split_hostport(text: str, default_port: int = 6379) -> tuple[str, int]:
    if text.startswith("["):  # [ipv6]:port
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = text.rpartition(":") if ":" in text else (text, "", "")
    if not host:
        raise ConfigError(f"redis URL: missing host in {text!r}")
    try:
        return host, int(port) if port else default_port
    except ValueError:
        raise ConfigError(f"redis URL: bad port in {text!r}") from None


def parse(url: str, options: dict[str, Any]) -> RedisSettings:
    """Build :class:`RedisSettings` from a URL and keyword options."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ConfigError(
            f"redis backend: unsupported URL scheme {scheme!r}; use one of {', '.join(SCHEMES)}"
        )
    query: dict[str, Any] = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update(options)
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    username = password = None
    if userinfo:
        user, sep, pw = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(pw) if sep else None
    if "username" in query:
        username = query.pop("username") or None
    if "password" in query:
        password = query.pop("password") or None

    prefix = query.pop("prefix", "hivemem:")
    if prefix is None:
        prefix = "hivemem:"
    prefix_b = prefix.encode("utf-8") if isinstance(prefix, str) else bytes(prefix)
    if b"{" in prefix_b or b"}" in prefix_b:
        raise ConfigError(
            f"redis option prefix={prefix!r}: must not contain '{{' or '}}' "
            "(braces would override the cluster hash tags of the key layout)"
        )
    timeout = _float("socket_timeout", query.pop("socket_timeout", 5.0))
    connect_timeout = _float(
        "socket_connect_timeout", query.pop("socket_connect_timeout", min(timeout, 5.0) or 5.0)
    )
    if timeout == 0:
        raise ConfigError("redis option socket_timeout must be > 0")
    retries = _int("retries", query.pop("retries", 2))
    if retries < 0:
        raise ConfigError(f"redis option retries={retries}: must be >= 0")
    backoff = _float("retry_backoff", query.pop("retry_backoff", 0.05))
    backoff_cap = _float("retry_backoff_cap", query.pop("retry_backoff_cap", 1.0))
    invalidation = _bool("invalidation", query.pop("invalidation", True))
    max_conn_raw = query.pop("max_connections", None)
    max_connections = None if max_conn_raw in (None, "") else _int("max_connections", max_conn_raw)
    client = query.pop("client", None)
    host_opt = query.pop("host", None)
    port_opt = query.pop("port", None)
    db_opt = query.pop("db", None)
    passthrough = {str(k): v for k, v in query.items() if v is not None}

    cluster = scheme.endswith("+cluster")
    tls = scheme.startswith("rediss")
    common = dict(
        scheme=scheme, cluster=cluster, tls=tls, prefix=prefix_b,
        socket_timeout=timeout, socket_connect_timeout=connect_timeout, retries=retries,
        retry_backoff=backoff, retry_backoff_cap=backoff_cap, invalidation=invalidation,
        max_connections=max_connections, username=username, password=password,
        passthrough=passthrough, client=client,
    )
    if cluster:
        if db_opt not in (None, 0, "0") or parts.path not in ("", "/"):
            raise ConfigError("redis+cluster URL: Redis Cluster has only database 0")
        nodes = tuple(_split_hostport(n) for n in hostinfo.split(",") if n)
        if host_opt is not None:
            nodes = ((str(host_opt), int(port_opt or 6379)),)
        if not nodes:
            raise ConfigError("redis+cluster URL needs at least one host:port")
        label = ",".join(f"{h}:{p}" for h, p in nodes)
        return RedisSettings(label=label, nodes=nodes, **common)
    if scheme == "unix":
        path = unquote(parts.path)
        if not path:
            raise ConfigError("unix:// redis URL needs a socket path: unix:///path/to/redis.sock")
        db = _int("db", db_opt if db_opt is not None else 0)
        return RedisSettings(label=f"unix:{path}", path=path, db=db, **common)
    host, port = _split_hostport(hostinfo) if hostinfo else ("localhost", 6379)
    if host_opt is not None:
        host = str(host_opt)
    if port_opt is not None:
        port = _int("port", port_opt)
    db = 0
    path_db = parts.path.strip("/")
    if path_db:
        db = _int("db", path_db)
    if db_opt is not None:
        db = _int("db", db_opt)
    return RedisSettings(label=f"{host}:{port}", host=host, port=port, db=db, **common)


def passthrough_kwargs(settings: RedisSettings) -> dict[str, Any]:
    """Typed redis-py keyword arguments for the pass-through query options."""
    if not settings.passthrough:
        return {}
    from redis.asyncio.connection import parse_url

    parsed = parse_url("redis://localhost/?" + urlencode(settings.passthrough))
    for key in ("host", "port", "db", "username", "password", "connection_class", "path"):
        parsed.pop(key, None)  # type: ignore[misc]
    return dict(parsed)
