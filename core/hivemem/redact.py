"""Keeping secrets out of everything hivemem shows: reprs, dicts, CLI output, errors.

One module, used wherever a setting or a plugin's message may be printed:

* :func:`redact_url` -- ``redis://user:pw@host`` -> ``redis://user:***@host``
  (and secret-looking query options);
* :func:`redact_spec` -- codec specs ``fernet?keys=...`` -> ``fernet?keys=***``:
  every option value, since a codec's option names do not say which are secret;
* :func:`redact_options` -- option mappings: every value (``codec_options``) or
  the secret-looking ones (``backend_options``), URLs redacted either way;
* :func:`secrets_of` -- every secret string a configuration carries;
* :func:`scrub` -- a third-party message with those strings (and any
  ``scheme://user:password@`` it contains) replaced by ``***``;
* :func:`plugin_call` / :func:`plugin_acall` -- run a plugin's constructor or
  ``open()`` so that what it raises names the plugin and no secret.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, unquote, unquote_plus, urlsplit, urlunsplit

from .errors import BackendUnavailable, ConfigError, HivememError, PluginError

if TYPE_CHECKING:
    from .config import MemoryConfig

T = TypeVar("T")

#: what replaces a secret
MASK = "***"
#: option names whose values are secret (``authSource``/``authMechanism`` name no secret)
SECRET_NAME = re.compile(
    r"pass|secret|token|key|credential|auth(?!source$|mechanism$)", re.IGNORECASE
)
#: known secrets shorter than this are not scrubbed from text (they would mangle it)
MIN_SECRET = 4

#: what an option name in a codec spec looks like (anything else may be a value)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,31}")
# ``scheme://user:`` ... ``@`` where the standard parse found no userinfo because the
# password holds an unescaped ``/``, ``?`` or ``#``: mask up to the last ``@``.
_LOOSE_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://[^:/?#@]*):(.*)@")
# ``scheme://user:password@`` anywhere in free text
_TEXT_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#@]*):[^\s@/]*@")


def _secret_name(name: object) -> bool:
    return bool(SECRET_NAME.search(str(name)))


def _redact_query(query: str) -> str:
    parts = []
    for part in query.split("&"):
        name, sep, _value = part.partition("=")
        parts.append(f"{name}={MASK}" if sep and _secret_name(unquote_plus(name)) else part)
    return "&".join(parts)


def redact_url(url: str) -> str:
    """``redis://user:pw@host/0?password=x`` -> ``redis://user:***@host/0?password=***``.

    Masks the userinfo password and every query option whose name looks secret;
    a URL that cannot be parsed comes back as ``<unparseable url>``.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, sep, _pw = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{host}" if sep else f"{user}@{host}"
    elif "://" in url and "@" in url[len(parts.scheme) + 3 + len(netloc) :]:
        loose = _LOOSE_USERINFO.match(url)
        if loose is not None:
            return redact_url(f"{loose.group(1)}:{MASK}@{url[loose.end():]}")
    query = _redact_query(parts.query)
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _option_name(text: str) -> bool:
    """True when ``text`` reads as an option name rather than a value typed without one."""
    return _NAME.fullmatch(text) is not None


def redact_spec(spec: str) -> str:
    """``"fernet?keys=k1,k2&ttl=5"`` -> ``"fernet?keys=***&ttl=***"`` (names kept).

    A part whose name does not read as an option name (no ``=``, longer than
    32 characters, or not identifier-like) is masked whole: it may be a value
    typed without its name (a Fernet key ends in ``=``).
    """
    name, sep, query = spec.partition("?")
    if not sep:
        return spec
    parts = []
    for part in query.split("&"):
        if not part:
            continue
        option, eq, _value = part.partition("=")
        parts.append(f"{option}={MASK}" if eq and _option_name(option) else MASK)
    return f"{name}?{'&'.join(parts)}"


def _redact_value(value: Any, masked: bool, all_values: bool) -> Any:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return redact_options(value, all_values=all_values)
    if masked:
        return MASK
    if isinstance(value, str):
        return redact_url(value) if "://" in value else value
    if isinstance(value, list | tuple):
        return [_redact_value(v, False, all_values) for v in value]
    return value


def redact_options(options: Mapping[str, Any], *, all_values: bool) -> dict[str, Any]:
    """A copy of ``options`` safe to print; nested mappings are redacted the same way.

    ``all_values`` masks every value that is not None (codec options, whose
    names do not say what is secret); otherwise only values whose option name
    looks secret (``password``, ``token``, ``key``, ``auth``, ...) are masked
    and URL-looking strings go through :func:`redact_url`.
    """
    return {
        key: _redact_value(value, all_values or _secret_name(key), all_values)
        for key, value in options.items()
    }


def _strings(value: Any) -> Iterable[str]:
    """Every string held in ``value`` (str, bytes, nested lists and mappings)."""
    if value is None:
        return
    if isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, bytes | bytearray):
        yield bytes(value).decode("utf-8", "replace")
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _strings(item)
    elif not isinstance(value, bool | int | float):
        yield str(value)


def _url_secrets(url: str) -> Iterable[str]:
    """The password of ``url`` and its secret-looking query values, raw and decoded."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return
    netloc = parts.netloc
    if "@" in netloc:
        userinfo = netloc.rpartition("@")[0]
        _user, sep, password = userinfo.partition(":")
        if sep:
            yield password
            yield unquote(password)
    else:
        loose = _LOOSE_USERINFO.match(url)
        if loose is not None:
            yield loose.group(2)
            yield unquote(loose.group(2))
    for part in parts.query.split("&"):
        name, sep, value = part.partition("=")
        if sep and _secret_name(unquote_plus(name)):
            yield value
            yield unquote_plus(value)


def _option_secrets(options: Mapping[str, Any], all_values: bool) -> Iterable[str]:
    for key, value in options.items():
        if isinstance(value, Mapping):
            yield from _option_secrets(value, all_values)
        elif all_values or _secret_name(key):
            yield from _strings(value)
        else:
            for text in _strings(value):
                if "://" in text:
                    yield from _url_secrets(text)


def _spec_secrets(spec: str) -> Iterable[str]:
    _name, sep, query = spec.partition("?")
    if not sep:
        return
    for part in query.split("&"):
        option, eq, value = part.partition("=")
        yield value if eq and _option_name(option) else part
        yield value
    for _option, value in parse_qsl(query, keep_blank_values=True):
        yield value


def secrets_of(config: MemoryConfig) -> frozenset[str]:
    """Every secret string ``config`` carries (for :func:`scrub`).

    URL passwords of the backend and cache URLs (raw and percent-decoded),
    every option value given inline in a codec spec or in ``codec_options``,
    secret-looking ``backend_options`` values (and passwords of URLs among
    them), and ``cache_secret``; comma-separated values also by their parts.
    """
    found: list[str] = []
    for url in [config.url, *config.cache]:
        found.extend(_url_secrets(url))
    for spec in [config.serializer, config.compressor, config.encryptor, *config.read_codecs]:
        found.extend(_spec_secrets(spec))
    found.extend(_option_secrets(config.codec_options, all_values=True))
    found.extend(_option_secrets(config.backend_options, all_values=False))
    if config.cache_secret is not None:
        found.append(str(config.cache_secret))
    out: set[str] = set()
    for text in found:
        for piece in (text, *text.split(",")):
            piece = piece.strip()
            if piece:
                out.add(piece)
    return frozenset(out)


def scrub(text: str, secrets: Collection[str]) -> str:
    """``text`` with every known secret (``len >= 4``) and URL password replaced by ``***``.

    Longer secrets are replaced first, so one that contains another is
    masked whole.
    """
    for secret in sorted((s for s in secrets if len(s) >= MIN_SECRET), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return _TEXT_USERINFO.sub(rf"\1:{MASK}@", text)


def _chain(exc: BaseException) -> Iterable[BaseException]:
    """``exc`` and every exception chained to it (causes and contexts), once each."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        todo.extend(e for e in (item.__cause__, item.__context__) if e is not None)


def _leaks(exc: BaseException, secrets: Collection[str]) -> bool:
    """True when ``exc`` or anything chained to it shows a secret."""
    for item in _chain(exc):
        text = f"{item}{item.args!r}"
        if scrub(text, secrets) != text:
            return True
    return False


def _scrubbed_copy(exc: HivememError, secrets: Collection[str]) -> HivememError:
    """Same class and attributes as ``exc``, scrubbed text, nothing chained."""
    cls = type(exc)
    copy = cls.__new__(cls)
    for name, value in vars(exc).items():
        if isinstance(value, str):
            value = scrub(value, secrets)
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            value = [scrub(v, secrets) for v in value]  # e.g. __notes__
        setattr(copy, name, value)
    copy.args = (scrub(str(exc), secrets),)
    return copy


def _translate(
    exc: Exception, kind: str, name: str, secrets: Collection[str], target: str, building: bool
) -> BaseException | None:
    """What to raise instead of ``exc`` (None: re-raise ``exc`` unchanged)."""
    if isinstance(exc, HivememError):
        return _scrubbed_copy(exc, secrets) if _leaks(exc, secrets) else None
    message = scrub(str(exc), secrets)
    if building and isinstance(exc, TypeError | ValueError):
        return ConfigError(f"cannot configure {kind} {name!r} for {target}: {message}")
    if not building and kind == "backend" and isinstance(exc, OSError):
        # callers catch BackendUnavailable (also an OSError) for "cannot connect"
        return BackendUnavailable(
            f"backend {name!r}: cannot open {target}: {type(exc).__name__}: {message}"
        )
    verb = "build" if building else "open"
    return PluginError(kind, name, f"cannot {verb} for {target}: {type(exc).__name__}: {message}")


def _clean(error: BaseException) -> BaseException:
    """``error`` with nothing chained to it (what it replaces may show secrets)."""
    error.__cause__ = None
    error.__context__ = None
    error.__suppress_context__ = True
    return error


def plugin_call(
    kind: str,
    name: str,
    secrets: Collection[str],
    target: str,
    fn: Callable[..., T],
    *args: Any,
    **kwargs: Any,
) -> T:
    """``fn(*args, **kwargs)`` -- a plugin's factory -- with its errors made safe to show.

    ``target`` is what is being built for, already redacted (e.g. a URL through
    :func:`redact_url`). A :class:`~hivemem.errors.HivememError` passes through
    unless it (or an exception chained to it) shows a secret, then a scrubbed
    copy of the same class is raised; a ``TypeError``/``ValueError`` becomes a
    :class:`~hivemem.errors.ConfigError`, anything else a
    :class:`~hivemem.errors.PluginError` naming ``kind`` and ``name``. The
    replacement carries no chained exception (the original may show secrets).
    """
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        error = _translate(exc, kind, name, secrets, target, building=True)
        if error is None:
            raise
    raise _clean(error)


async def plugin_acall(
    kind: str,
    name: str,
    secrets: Collection[str],
    target: str,
    fn: Callable[..., Awaitable[T]],
    *args: Any,
    **kwargs: Any,
) -> T:
    """``await fn(*args, **kwargs)`` -- a plugin's ``open()`` -- with its errors made safe.

    As :func:`plugin_call`, except that an ``OSError`` raised while opening a
    backend becomes :class:`~hivemem.errors.BackendUnavailable` (callers catch
    it to tell "cannot connect") and other non-hivemem errors become
    :class:`~hivemem.errors.PluginError`; a hivemem error keeps its class.
    """
    try:
        return await fn(*args, **kwargs)
    except Exception as exc:
        error = _translate(exc, kind, name, secrets, target, building=False)
        if error is None:
            raise
    raise _clean(error)


__all__ = [
    "MASK",
    "plugin_acall",
    "plugin_call",
    "redact_options",
    "redact_spec",
    "redact_url",
    "scrub",
    "secrets_of",
]
