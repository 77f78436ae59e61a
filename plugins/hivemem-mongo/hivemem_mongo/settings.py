"""Parse a MongoDB backend URL plus keyword options into :class:`MongoSettings`.

Accepted URLs are MongoDB connection strings (``mongodb://`` and
``mongodb+srv://``); the URL itself, query options included, goes to the
driver unchanged. The backend's own options come from ``backend_options``
(keyword options): the ones in :data:`OPTIONS` are coerced by
:func:`hivemem.plugin.parse_options`, the ones in :data:`RAW_OPTIONS` are
objects or driver values taken as given and checked here.

A bad value raises :class:`~hivemem.errors.ConfigError` shaped
``mongodb option NAME=VALUE: problem``. Credentials are kept out of every
``repr``, log line and error: the server is shown as
:attr:`MongoURL.display` (``scheme://hosts``) and :meth:`MongoURL.redact`
removes the URL's user name, password and secret query values from driver
messages.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote

from hivemem.plugin import ConfigError, Option, parse_options
from pymongo.errors import ConfigurationError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from .documents import DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE

SCHEMES = ("mongodb", "mongodb+srv")
OWNER = "mongodb"

#: the backend's own options, coerced from typed or string values
OPTIONS: tuple[Option, ...] = (
    Option("database", nullable=True, doc="database (default: the URL's path, else 'hivemem')"),
    Option("collection_prefix", default="hivemem_", doc="prefix of the collection names"),
    Option(
        "chunk_size",
        "int",
        DEFAULT_CHUNK_SIZE,
        minimum=MIN_CHUNK_SIZE,
        maximum=MAX_CHUNK_SIZE,
        doc="largest value stored inline, and the size of each chunk of a larger one",
    ),
    Option("seq_block", "int", 256, minimum=1, doc="series sequence numbers per round trip"),
    Option("create_indexes", "bool", True, doc="create the indexes on open()"),
)
#: options taken as given: driver objects, mappings, or values the driver interprets
RAW_OPTIONS: tuple[Option, ...] = (
    Option("write_concern", doc="'majority', a node count, or a dict of WriteConcern arguments"),
    Option("read_concern", doc="a read concern level, e.g. 'majority'"),
    Option("client", doc="an AsyncMongoClient or Motor client to use (never closed by us)"),
    Option("client_options", secret=True, doc="keyword arguments for AsyncMongoClient"),
)
#: accepted and ignored: the seed's key prefix is a Redis notion
IGNORED_OPTIONS = ("prefix",)
#: every option name the backend knows, in documentation order
KNOWN_OPTIONS: tuple[str, ...] = tuple(option.name for option in (*OPTIONS, *RAW_OPTIONS))
#: read concern levels MongoDB has
READ_CONCERN_LEVELS = ("local", "available", "majority", "linearizable", "snapshot")

_SECRET_QUERY_KEYS = re.compile(r"password|secret|token|key", re.IGNORECASE)


class MongoURL:
    """The parts of a MongoDB URL that may be shown, and the secrets to redact."""

    def __init__(self, url: str) -> None:
        scheme, sep, rest = url.partition("://")
        if not sep or scheme not in SCHEMES:
            raise ConfigError(
                f"mongodb backend needs a mongodb:// or mongodb+srv:// URL, got scheme {scheme!r}"
            )
        self.scheme = scheme
        netloc, _, tail = rest.partition("/")
        netloc, qmark, query = netloc.partition("?")
        if qmark:
            tail = "?" + query
        userinfo, at, hosts = netloc.rpartition("@")
        self.hosts = hosts if at else netloc
        path, _, query = tail.partition("?")
        self.path_database = unquote(path) or None
        #: the URL's query options, names lower-cased (the driver reads them itself)
        self.query = {name.lower(): value for name, value in parse_qsl(query, True)}
        self._redactor = _redactor(_secrets(userinfo if at else "", query))

    @property
    def display(self) -> str:
        """``scheme://hosts`` -- never a user name, password or query option."""
        return f"{self.scheme}://{self.hosts or 'localhost'}"

    def redact(self, text: str) -> str:
        """``text`` with every credential from the URL replaced by ``***``."""
        return text if self._redactor is None else self._redactor.sub("***", text)


def _secrets(userinfo: str, query: str) -> set[str]:
    """User name, password and secret-looking query values, raw and percent-decoded."""
    secrets: set[str] = set()
    user, _, password = userinfo.partition(":")
    for raw in (user, password):
        if raw:
            secrets.update({raw, unquote(raw)})
    for name, value in parse_qsl(query):
        if _SECRET_QUERY_KEYS.search(name) and value:
            secrets.update({value, unquote(value)})
    return secrets


def _redactor(secrets: set[str]) -> re.Pattern[str] | None:
    """A pattern matching each secret where it stands as a token of its own.

    So a short user name ("u") does not mangle every word that contains the letter.
    """
    if not secrets:
        return None
    alternatives = "|".join(re.escape(secret) for secret in sorted(secrets, key=len, reverse=True))
    return re.compile(r"(?<![A-Za-z0-9])(?:" + alternatives + r")(?![A-Za-z0-9])")


@dataclasses.dataclass(frozen=True)
class MongoSettings:
    """Everything the backend needs to connect; the client options never show in ``repr``."""

    url: str = dataclasses.field(repr=False)
    where: MongoURL = dataclasses.field(repr=False)
    database: str
    collection_prefix: str
    chunk_size: int
    seq_block: int
    create_indexes: bool
    write_concern: WriteConcern | None
    read_concern: ReadConcern | None
    client: Any = dataclasses.field(default=None, repr=False)
    client_options: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)


def parse(url: str, options: Mapping[str, Any]) -> MongoSettings:
    """Settings for ``url`` and the keyword ``options``; ConfigError on anything wrong."""
    where = MongoURL(url)
    values, rest = parse_options(OWNER, OPTIONS, options)
    unknown = set(rest) - set(KNOWN_OPTIONS) - set(IGNORED_OPTIONS)
    if unknown:
        raise ConfigError(
            f"unknown mongodb option(s): {', '.join(sorted(unknown))}; "
            f"known: {', '.join(KNOWN_OPTIONS)}"
        )
    return MongoSettings(
        url=url,
        where=where,
        database=values["database"] or where.path_database or "hivemem",
        collection_prefix=values["collection_prefix"],
        chunk_size=values["chunk_size"],
        seq_block=values["seq_block"],
        create_indexes=values["create_indexes"],
        write_concern=write_concern(rest.get("write_concern")),
        read_concern=read_concern(rest.get("read_concern")),
        client=rest.get("client"),
        client_options=_client_options(rest.get("client_options")),
    )


def write_concern(raw: Any) -> WriteConcern | None:
    """The ``write_concern`` option: ``"majority"``, a node count, or WriteConcern arguments."""
    if raw is None or isinstance(raw, WriteConcern):
        return raw
    try:
        if isinstance(raw, Mapping):
            return WriteConcern(**raw)
        if isinstance(raw, int) or (isinstance(raw, str) and raw.isdigit()):
            return WriteConcern(w=int(raw))
        if isinstance(raw, str):
            return WriteConcern(w=raw)
    except (TypeError, ValueError, ConfigurationError) as exc:
        raise ConfigError(f"mongodb option write_concern={raw!r:.80}: {exc}") from None
    raise ConfigError(
        f"mongodb option write_concern={raw!r:.80}: use 'majority', a number or a dict"
    )


def read_concern(raw: Any) -> ReadConcern | None:
    """The ``read_concern`` option: one of :data:`READ_CONCERN_LEVELS`."""
    if raw is None or isinstance(raw, ReadConcern):
        return raw
    if isinstance(raw, str) and raw in READ_CONCERN_LEVELS:
        return ReadConcern(raw)
    raise ConfigError(
        f"mongodb option read_concern={raw!r:.80}: use one of {', '.join(READ_CONCERN_LEVELS)}"
    )


def _client_options(raw: Any) -> dict[str, Any]:
    """The ``client_options`` mapping (secret: its value never shows in an error)."""
    if not raw:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"mongodb option client_options='***': expected a mapping, got {type(raw).__name__}"
        )
    return dict(raw)


__all__ = [
    "IGNORED_OPTIONS",
    "KNOWN_OPTIONS",
    "OPTIONS",
    "RAW_OPTIONS",
    "SCHEMES",
    "MongoSettings",
    "MongoURL",
    "parse",
    "read_concern",
    "write_concern",
]
