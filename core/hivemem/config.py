"""Configuration: one attrs class, structured by one cattrs converter.

Sources, lowest precedence first:

1. defaults (the embedded SQLite file, namespace ``default``, a local cache);
2. a TOML file: ``HIVEMEM_CONFIG=/path/hivemem.toml`` or ``config_file=``
   (keys at top level or under a ``[hivemem]`` table);
3. the environment: ``HIVEMEM_*`` and the seed's variables (``MEMORY_TYPE``,
   ``REDIS_*``, ``MONGODB_*``, ``MEMORY_NAMESPACE``);
4. keyword arguments / a URL passed to :func:`hivemem.open_memory`.

Secrets are masked in every repr and in :meth:`MemoryConfig.to_dict` (see
:mod:`hivemem.redact`): URL passwords, every option of a codec spec
(``fernet?keys=***``) and every ``codec_options`` value, ``backend_options``
values named like ``password``/``key``/``token``/``secret``, ``cache_secret``.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn

from .errors import ConfigError, PluginNotFound
from .plugins import KNOWN_PACKAGES, Plugins, get_plugins
from .redact import redact_options, redact_spec, redact_url

_DEFAULT_CACHE = ("local://",)


def mask_url(url: str) -> str:
    """``redis://user:pw@host`` -> ``redis://user:***@host`` (alias of ``redact_url``)."""
    return redact_url(url)


def mask_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Copy of ``options`` with secret-looking values masked (as for ``backend_options``)."""
    return redact_options(options, all_values=False)


def _spec_repr(spec: str) -> str:
    return repr(redact_spec(spec))


def default_path() -> Path:
    """``$XDG_DATA_HOME/hivemem/memory.db`` (``~/.local/share/hivemem/memory.db``)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return Path(base) / "hivemem" / "memory.db"


def default_url() -> str:
    """The embedded default: ``sqlite:////home/.../.local/share/hivemem/memory.db``."""
    return "sqlite:///" + str(default_path())


def _split_names(value: str) -> list[str]:
    return [part for part in re.split(r"[\s,]+", value) if part]


def _flag(var: str, value: str) -> bool:
    low = value.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{var}={value!r} is not a boolean (use 1/0, true/false, yes/no)")


def _split_caches(value: str) -> list[str]:
    return [part for part in value.split() if part and part.lower() != "none"]


@attrs.define(kw_only=True)
class MemoryConfig:
    """Everything needed to open a :class:`~hivemem.memory.Memory`."""

    #: backend URL; its scheme selects the backend plugin
    url: str = attrs.field(factory=default_url, repr=mask_url)
    #: isolation unit: nothing in one namespace can read or overwrite another's data
    namespace: str = "default"
    #: cache tiers in read order (in-process first), e.g. ["local://", "memcached://h:11211"]
    cache: list[str] = attrs.field(
        factory=lambda: list(_DEFAULT_CACHE), repr=lambda v: repr([mask_url(u) for u in v])
    )
    #: codec specs: a name, optionally with ``?option=value&...`` (all values masked in reprs)
    serializer: str = attrs.field(default="json", repr=_spec_repr)
    compressor: str = attrs.field(default="none", repr=_spec_repr)
    encryptor: str = attrs.field(default="none", repr=_spec_repr)
    #: per-codec factory options, e.g. {"zstd": {"level": 9}, "fernet": {"keys": "..."}}
    #: (every value masked in reprs: an option's name does not say whether it is secret)
    codec_options: dict[str, dict[str, Any]] = attrs.field(
        factory=dict, repr=lambda v: repr(redact_options(v, all_values=True))
    )
    #: extra keyword options for the backend factory (e.g. the seed's Redis ``prefix``)
    backend_options: dict[str, Any] = attrs.field(factory=dict, repr=mask_options)
    #: default TTL (seconds) of entries the memory puts in its caches; None: until evicted
    cache_ttl: float | None = 300.0
    #: codec names trusted for reading besides the configured ones (e.g. while migrating);
    #: ``pickle`` must be named here (or be the serializer) to be read at all
    read_codecs: list[str] = attrs.field(
        factory=list, repr=lambda v: repr([redact_spec(c) for c in v])
    )
    #: plaintext-migration mode: with an encryptor configured, still read unencrypted frames
    #: (``hivemem rotate-keys --encrypt-plaintext`` turns it on for its own run only)
    accept_plaintext: bool = False
    #: shared secret(s) authenticating entries in caches outside the process (comma-separated,
    #: the first signs, all verify); derived from the encryptor's keys when it offers that
    cache_secret: str | None = attrs.field(
        default=None, repr=lambda v: "None" if v is None else "'***'"
    )
    #: accept unauthenticated entries from caches outside the process (a trusted network only)
    trust_remote_cache: bool = False

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.namespace, str) or not self.namespace:
            raise ConfigError(f"namespace must be a non-empty string, got {self.namespace!r}")
        if "://" not in self.url:
            raise ConfigError(
                f"backend url {mask_url(self.url)!r} has no scheme (e.g. sqlite:///file.db)"
            )
        if self.cache_ttl is not None and self.cache_ttl <= 0:
            self.cache_ttl = None
        if self.cache_secret is not None and not str(self.cache_secret).strip():
            self.cache_secret = None

    @property
    def scheme(self) -> str:
        """The backend URL's scheme."""
        return self.url.split("://", 1)[0].lower()

    def to_dict(self) -> dict[str, Any]:
        """Plain dict with secrets masked (safe to print)."""
        data = converter.unstructure(self)
        data["url"] = redact_url(self.url)
        data["cache"] = [redact_url(u) for u in self.cache]
        for spec in ("serializer", "compressor", "encryptor"):
            data[spec] = redact_spec(getattr(self, spec))
        data["read_codecs"] = [redact_spec(c) for c in self.read_codecs]
        data["codec_options"] = redact_options(self.codec_options, all_values=True)
        data["backend_options"] = redact_options(self.backend_options, all_values=False)
        if self.cache_secret is not None:
            data["cache_secret"] = "***"
        return data


converter = cattrs.Converter()
converter.register_structure_hook(
    MemoryConfig, make_dict_structure_fn(MemoryConfig, converter, _cattrs_forbid_extra_keys=True)
)


def _structure(data: Mapping[str, Any]) -> MemoryConfig:
    data = dict(data)
    if isinstance(data.get("cache"), str):
        data["cache"] = _split_caches(data["cache"])
    if isinstance(data.get("read_codecs"), str):
        data["read_codecs"] = _split_names(data["read_codecs"])
    try:
        return converter.structure(data, MemoryConfig)
    except ConfigError:
        raise
    except cattrs.errors.ClassValidationError as exc:
        problems = []
        for sub in exc.exceptions:
            if isinstance(sub, ConfigError):
                raise sub from None
            if isinstance(sub, cattrs.errors.ForbiddenExtraKeysError):
                problems.append(f"unknown setting(s): {', '.join(sorted(sub.extra_fields))}")
            else:
                notes = [str(n) for n in getattr(sub, "__notes__", [])]
                problems.append(f"{'; '.join(notes) or 'setting'}: {sub}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None
    except cattrs.errors.ForbiddenExtraKeysError as exc:
        raise ConfigError(f"unknown setting(s): {', '.join(sorted(exc.extra_fields))}") from None


def seed_backend(
    memory_type: str,
    config: Mapping[str, Any],
    namespace: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    plugins: Plugins | None = None,
) -> dict[str, Any]:
    """Map the seed's ``memory_type`` + backend config dict onto ``url``/``backend_options``.

    ``config["url"]`` works for every backend. Otherwise the backend's own
    plugin maps its seed settings through the ``hivemem_seed_backend`` hook
    (redis: ``host, port, db, password, prefix``; mongodb:
    ``connection_string``/``uri``, ``database_name``/``db``; sqlite: ``path``;
    memory: ``name``), reading the seed's environment variables (``env``)
    for keys ``config`` does not give. ``namespace`` is accepted for the
    seed's signature and unused.
    """
    kind = memory_type.lower()
    cfg = dict(config)
    if "url" in cfg:
        url = str(cfg.pop("url"))
        return {"url": url, "backend_options": cfg}
    plugins = plugins if plugins is not None else get_plugins()
    mapped = plugins.pm.hook.hivemem_seed_backend(
        memory_type=kind, config=cfg, env=dict(env if env is not None else {})
    )
    if mapped is not None:
        return dict(mapped)
    if kind in KNOWN_PACKAGES:
        installed = plugins.registry("backend").names()
        raise PluginNotFound("backend", kind, installed, KNOWN_PACKAGES[kind])
    raise ConfigError(
        f"memory_type {memory_type!r} needs config={{'url': ...}}: no installed plugin maps "
        f"it (installed backends: {', '.join(plugins.registry('backend').names())})"
    )


def _seed_from_env(env: Mapping[str, str], plugins: Plugins | None) -> dict[str, Any]:
    memory_type = env.get("MEMORY_TYPE")
    if not memory_type:
        return {}
    try:
        return seed_backend(memory_type, {}, env=env, plugins=plugins)
    except PluginNotFound:
        raise
    except ConfigError as exc:
        raise ConfigError(f"MEMORY_TYPE={memory_type!r}: {exc}") from None


def _cache_secret_from_env(env: Mapping[str, str]) -> str | None:
    if env.get("HIVEMEM_CACHE_SECRET"):
        return env["HIVEMEM_CACHE_SECRET"]
    path = env.get("HIVEMEM_CACHE_SECRET_FILE")
    if not path:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read HIVEMEM_CACHE_SECRET_FILE={path!r}: {exc.strerror}"
        ) from None
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    if not lines:
        raise ConfigError(f"HIVEMEM_CACHE_SECRET_FILE={path!r} holds no secret")
    return ",".join(lines)


_ENV_STRINGS = (
    ("MEMORY_NAMESPACE", "namespace"),
    ("HIVEMEM_URL", "url"),
    ("HIVEMEM_NAMESPACE", "namespace"),
    ("HIVEMEM_SERIALIZER", "serializer"),
    ("HIVEMEM_COMPRESSOR", "compressor"),
    ("HIVEMEM_ENCRYPTOR", "encryptor"),
)
_ENV_FLAGS = (
    ("HIVEMEM_ACCEPT_PLAINTEXT", "accept_plaintext"),
    ("HIVEMEM_TRUST_REMOTE_CACHE", "trust_remote_cache"),
)


def from_env(
    env: Mapping[str, str] | None = None, *, plugins: Plugins | None = None
) -> dict[str, Any]:
    """Settings found in the environment (only the ones that are set).

    ``HIVEMEM_*`` win over the seed's variables: ``HIVEMEM_URL`` over
    ``MEMORY_TYPE`` (+ its plugin's ``REDIS_*``/``MONGODB_*``),
    ``HIVEMEM_NAMESPACE`` over ``MEMORY_NAMESPACE``.
    """
    env = os.environ if env is None else env
    out: dict[str, Any] = _seed_from_env(env, plugins)
    for var, key in _ENV_STRINGS:
        if env.get(var):
            out[key] = env[var]
            if key == "url":
                out.pop("backend_options", None)
    if env.get("HIVEMEM_CACHE") is not None:
        out["cache"] = _split_caches(env["HIVEMEM_CACHE"])
    if env.get("HIVEMEM_READ_CODECS") is not None:
        out["read_codecs"] = _split_names(env["HIVEMEM_READ_CODECS"])
    for var, key in _ENV_FLAGS:
        if env.get(var) is not None:
            out[key] = _flag(var, env[var])
    secret = _cache_secret_from_env(env)
    if secret is not None:
        out["cache_secret"] = secret
    if env.get("HIVEMEM_CACHE_TTL"):
        try:
            out["cache_ttl"] = float(env["HIVEMEM_CACHE_TTL"])
        except ValueError:
            raise ConfigError(
                f"HIVEMEM_CACHE_TTL={env['HIVEMEM_CACHE_TTL']!r} is not a number"
            ) from None
    return out


def from_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Settings from a TOML file (top level or a ``[hivemem]`` table)."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {os.fspath(path)!r} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {os.fspath(path)!r}: {exc}") from None
    return dict(data.get("hivemem", data))


def load_config(
    url_or_config: str | MemoryConfig | Mapping[str, Any] | None = None,
    *,
    config_file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> MemoryConfig:
    """Build a :class:`MemoryConfig` from all sources (see the module docstring)."""
    if isinstance(url_or_config, MemoryConfig):
        if not overrides:
            return url_or_config
        return _structure({**converter.unstructure(url_or_config), **overrides})
    env = os.environ if env is None else env
    merged: dict[str, Any] = {}
    path = config_file or env.get("HIVEMEM_CONFIG")
    if path:
        merged.update(from_toml(path))
    merged.update(from_env(env))
    if isinstance(url_or_config, str):
        merged["url"] = url_or_config
        merged.pop("backend_options", None)
    elif isinstance(url_or_config, Mapping):
        merged.update(url_or_config)
    elif url_or_config is not None:
        raise ConfigError(
            f"expected a URL, a mapping or a MemoryConfig, got {type(url_or_config).__name__}"
        )
    merged.update({k: v for k, v in overrides.items() if v is not None})
    return _structure(merged)


__all__ = [
    "MemoryConfig",
    "converter",
    "default_path",
    "default_url",
    "from_env",
    "load_config",
    "mask_options",
    "mask_url",
    "seed_backend",
]
