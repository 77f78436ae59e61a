"""Secrets stay secret in every form: reprs, dicts, CLI output, logs and errors.

For every way a secret can be given (URL passwords, environment variables,
a TOML file, keyword arguments, inline codec spec options, key files) the
secret appears in none of: ``repr``/``str`` of the configuration, its
``to_dict()`` and JSON, ``hivemem config [--json]``, ``repr`` of the memory
and its parts, DEBUG logs (with hook tracing on) while opening and using a
memory, and any error raised on the way, chained exceptions and formatted
tracebacks included. Plugins that fail while built or opened are reported as
:class:`~hivemem.errors.PluginError` naming the plugin, with secrets scrubbed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import attrs
import hivemem
import hivemem_fernet
import pytest
from click.testing import CliRunner
from hivemem.builtin.local_cache import LocalCache
from hivemem.builtin.memory_backend import MemoryBackend
from hivemem.cli import cli
from hivemem.config import MemoryConfig, load_config, mask_options, mask_url
from hivemem.errors import (
    BackendUnavailable,
    ConfigError,
    HivememError,
    PluginError,
)
from hivemem.plugins import make_plugins
from hivemem.redact import (
    plugin_call,
    redact_options,
    redact_spec,
    redact_url,
    scrub,
    secrets_of,
)

KEY = hivemem_fernet.generate_key()
KEY2 = hivemem_fernet.generate_key()
PASSWORD = "pw-Vq8zLr3tXk"
#: needs percent-encoding in a URL: raw and encoded forms must both stay hidden
ODD_PASSWORD = "p@ss:w/rd#Zq7?"
CACHE_SECRET = "cache-secret-Hn4mW9pT2sRy"
CACHE_SECRET2 = "cache-secret-Bc6vJ1kQ8dXa"
TOKEN = "tok-Yf5nS2wE7uPm"

_ENV_PREFIXES = ("HIVEMEM_", "MEMORY_", "REDIS_", "MONGODB_")


# -- throwaway plugins ---------------------------------------------------------------------
class VaultCache(LocalCache):
    """An in-memory cache that calls itself remote, so it is sealed with the cache secret."""

    name = "vaultcache"
    in_process = False


class _Vault:
    """Backend ``vault://`` and cache ``vaultcache://`` that accept credentials and ignore them."""

    @hivemem.hookimpl
    def hivemem_register_backends(self, register: Any) -> None:
        def factory(url: str, **options: Any) -> MemoryBackend:
            host = urlsplit(url).hostname or "x"
            return MemoryBackend(f"memory://vault-{host}")  # options (a password) are dropped

        register("vault", factory, schemes=("vault",), description="test")

    @hivemem.hookimpl
    def hivemem_register_caches(self, register: Any) -> None:
        register("vaultcache", lambda url: VaultCache(), schemes=("vaultcache",))


class BoomBackend(MemoryBackend):
    """Fails the way the URL's path says (``/open-runtime``, ``/open-oserror``, ...)."""

    name = "boom"

    def __init__(self, url: str) -> None:
        super().__init__("memory://boom")
        self.url = url
        self.mode = urlsplit(url).path.strip("/")
        self.password = urlsplit(url).password or ""

    async def open(self) -> None:
        leak = f"cannot connect to {self.url} (password {self.password})"
        if self.mode == "open-runtime":
            raise RuntimeError(leak)
        if self.mode == "open-oserror":
            raise ConnectionRefusedError(leak)
        if self.mode == "open-hivemem":
            raise BackendUnavailable(leak)
        if self.mode == "open-chained":
            try:
                raise RuntimeError(leak)
            except RuntimeError as exc:
                raise BackendUnavailable("boom host is down") from exc
        if self.mode == "open-clean":
            raise BackendUnavailable("boom host is down")
        await super().open()

    async def ping(self) -> bool:
        if self.mode == "ping-leak":
            raise RuntimeError(f"ping to {self.url} failed (password {self.password})")
        return await super().ping()


class BoomCache(LocalCache):
    """A cache whose open() fails, naming its URL."""

    name = "boomcache"

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url

    async def open(self) -> None:
        raise RuntimeError(f"cannot connect to {self.url}")


class _Boom:
    """Backend ``boom://`` and cache ``boomcache://`` that fail, quoting their URLs."""

    @hivemem.hookimpl
    def hivemem_register_backends(self, register: Any) -> None:
        def factory(url: str, **options: Any) -> BoomBackend:
            mode = urlsplit(url).path.strip("/")
            if mode == "build":
                raise RuntimeError(f"cannot connect to {url}")
            if mode == "build-typeerror":
                raise TypeError(f"bad option for {url}")
            if mode == "build-hivemem":
                raise ConfigError(f"cannot use {url}")
            return BoomBackend(url)

        register("boom", factory, schemes=("boom",), description="test")

    @hivemem.hookimpl
    def hivemem_register_caches(self, register: Any) -> None:
        def factory(url: str) -> BoomCache:
            if urlsplit(url).path.strip("/") == "build":
                raise RuntimeError(f"cannot connect to {url}")
            return BoomCache(url)

        register("boomcache", factory, schemes=("boomcache",))


# -- helpers -------------------------------------------------------------------------------
def error_texts(exc: BaseException) -> list[str]:
    """Every text an error can show: message, repr, chained errors, formatted traceback."""
    texts = ["".join(traceback.format_exception(exc))]
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        texts += [str(item), repr(item), repr(item.args), repr(vars(item))]
        todo += [e for e in (item.__cause__, item.__context__) if e is not None]
    return texts


def assert_hidden(secrets: Iterable[str], texts: Iterable[str], where: str) -> None:
    """No secret occurs in any text."""
    texts = list(texts)
    for secret in secrets:
        for text in texts:
            assert secret not in text, f"secret {secret[:3]}... shown in {where}: {text!r}"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No hivemem/seed variable from the outer environment leaks into a test."""
    import os

    for var in list(os.environ):
        if var.startswith(_ENV_PREFIXES):
            monkeypatch.delenv(var)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


# -- the ways a secret can be given --------------------------------------------------------
@attrs.frozen
class Case:
    """One way of giving secrets: environment, files, API arguments, CLI arguments."""

    id: str
    secrets: tuple[str, ...]
    env: dict[str, str] = attrs.field(factory=dict)
    #: file name -> content, written to tmp_path; ``{dir}`` in env/args/kwargs is tmp_path
    files: dict[str, str] = attrs.field(factory=dict)
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = attrs.field(factory=dict)
    #: extra ``hivemem config`` arguments; None: the case has no CLI form
    cli: tuple[str, ...] | None = ()
    #: whether the configuration itself holds the secret (it is masked, not absent)
    carried: bool = True
    #: error expected when opening (None: opens, stores and reads back)
    open_error: type[BaseException] | None = None


TOML = f"""
[hivemem]
url = "vault://agent:{PASSWORD}@db.example/x"
encryptor = "fernet?keys={KEY}"
cache = ["local://", "vaultcache://agent:{TOKEN}@cache.example"]
cache_secret = "{CACHE_SECRET}"
backend_options = {{ password = "{PASSWORD}", prefix = "p:" }}
[hivemem.codec_options.fernet]
keys = "{KEY},{KEY2}"
"""

CASES = [
    Case(
        "backend-url-password",
        (PASSWORD,),
        args=(f"vault://agent:{PASSWORD}@db.example/x",),
        cli=("--url", f"vault://agent:{PASSWORD}@db.example/x"),
    ),
    Case(
        "backend-url-query-options",
        (PASSWORD, TOKEN),
        args=(f"vault://db.example/x?password={PASSWORD}&auth_token={TOKEN}",),
        cli=("--url", f"vault://db.example/x?password={PASSWORD}&auth_token={TOKEN}"),
    ),
    Case(
        "cache-url-password",
        (PASSWORD, CACHE_SECRET),
        env={
            "HIVEMEM_URL": "memory://cachecase",
            "HIVEMEM_CACHE": f"local:// vaultcache://agent:{PASSWORD}@cache.example",
            "HIVEMEM_CACHE_SECRET": CACHE_SECRET,
        },
    ),
    Case(
        "env-HIVEMEM_URL",
        (PASSWORD,),
        env={"HIVEMEM_URL": f"vault://agent:{PASSWORD}@db.example/x"},
    ),
    Case(
        "env-REDIS_PASSWORD",
        (ODD_PASSWORD, quote(ODD_PASSWORD, safe="")),
        env={
            "MEMORY_TYPE": "redis",
            "REDIS_HOST": "127.0.0.1",
            "REDIS_PORT": "1",
            "REDIS_PASSWORD": ODD_PASSWORD,
        },
        kwargs={"cache": []},
        open_error=BackendUnavailable,
    ),
    Case(
        "env-HIVEMEM_ENCRYPTOR-inline-keys",
        (KEY, KEY2),
        env={"HIVEMEM_URL": "memory://enc", "HIVEMEM_ENCRYPTOR": f"fernet?keys={KEY},{KEY2}"},
    ),
    Case(
        "env-HIVEMEM_FERNET_KEYS",
        (KEY, KEY2),
        env={
            "HIVEMEM_URL": "memory://fk",
            "HIVEMEM_ENCRYPTOR": "fernet",
            "HIVEMEM_FERNET_KEYS": f"{KEY},{KEY2}",
        },
        carried=False,
    ),
    Case(
        "env-HIVEMEM_FERNET_KEY_FILE",
        (KEY, KEY2),
        env={
            "HIVEMEM_URL": "memory://kf",
            "HIVEMEM_ENCRYPTOR": "fernet",
            "HIVEMEM_FERNET_KEY_FILE": "{dir}/fernet.keys",
        },
        files={"fernet.keys": f"{KEY}\n{KEY2}\n"},
        carried=False,
    ),
    Case(
        "env-HIVEMEM_CACHE_SECRET",
        (CACHE_SECRET, CACHE_SECRET2),
        env={
            "HIVEMEM_URL": "memory://cs",
            "HIVEMEM_CACHE": "local:// vaultcache://cache.example",
            "HIVEMEM_CACHE_SECRET": f"{CACHE_SECRET},{CACHE_SECRET2}",
        },
    ),
    Case(
        "env-HIVEMEM_CACHE_SECRET_FILE",
        (CACHE_SECRET, CACHE_SECRET2),
        env={
            "HIVEMEM_URL": "memory://csf",
            "HIVEMEM_CACHE": "local:// vaultcache://cache.example",
            "HIVEMEM_CACHE_SECRET_FILE": "{dir}/cache.secret",
        },
        files={"cache.secret": f"# cache secrets\n{CACHE_SECRET}\n{CACHE_SECRET2}\n"},
    ),
    Case(
        "toml-file",
        (PASSWORD, KEY, KEY2, TOKEN, CACHE_SECRET),
        env={"HIVEMEM_CONFIG": "{dir}/hivemem.toml"},
        files={"hivemem.toml": TOML},
    ),
    Case(
        "toml-file-cli-option",
        (PASSWORD, KEY, KEY2, TOKEN, CACHE_SECRET),
        files={"hivemem.toml": TOML},
        kwargs={"config_file": "{dir}/hivemem.toml"},
        cli=("--config", "{dir}/hivemem.toml"),
    ),
    Case(
        "kwarg-encryptor-inline-keys",
        (KEY, KEY2),
        args=("memory://kw-enc",),
        kwargs={"encryptor": f"fernet?keys={KEY},{KEY2}"},
        cli=None,
    ),
    Case(
        "kwarg-codec_options",
        (KEY,),
        args=("memory://kw-co",),
        kwargs={"encryptor": "fernet", "codec_options": {"fernet": {"keys": KEY}}},
        cli=None,
    ),
    Case(
        "kwarg-codec_options-key_file",
        (KEY, KEY2),
        args=("memory://kw-kf",),
        files={"fernet.keys": f"{KEY}\n{KEY2}\n"},
        kwargs={
            "encryptor": "fernet",
            "codec_options": {"fernet": {"key_file": "{dir}/fernet.keys"}},
        },
        cli=None,
        carried=False,
    ),
    Case(
        "kwarg-backend_options",
        (PASSWORD, TOKEN),
        args=("vault://db.example/x",),
        kwargs={"backend_options": {"password": PASSWORD, "api_token": TOKEN, "prefix": "p:"}},
        cli=None,
    ),
    Case(
        "inline-spec-options",
        (KEY, TOKEN),
        args=("memory://spec",),
        kwargs={
            "encryptor": f"fernet?keys={KEY}",
            "read_codecs": [f"zlib?dictionary_token={TOKEN}"],
        },
        cli=None,
    ),
    Case(
        "mapping-settings",
        (PASSWORD, KEY),
        args=(
            {
                "url": f"vault://agent:{PASSWORD}@db.example/x",
                "encryptor": "fernet",
                "codec_options": {"fernet": {"keys": [KEY]}},
            },
        ),
        cli=None,
    ),
]


def _fill(value: Any, tmp: Path) -> Any:
    """``value`` with ``{dir}`` replaced by ``tmp`` in every string it holds."""
    if isinstance(value, str):
        return value.replace("{dir}", str(tmp))
    if isinstance(value, dict):
        return {k: _fill(v, tmp) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_fill(v, tmp) for v in value)
    return value


@pytest.fixture(params=CASES, ids=[c.id for c in CASES])
def case(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Case:
    """The case with its files written and its environment set."""
    raw: Case = request.param
    for name, content in raw.files.items():
        (tmp_path / name).write_text(content)
    filled = attrs.evolve(
        raw,
        env=_fill(raw.env, tmp_path),
        args=_fill(raw.args, tmp_path),
        kwargs=_fill(raw.kwargs, tmp_path),
        cli=None if raw.cli is None else _fill(raw.cli, tmp_path),
    )
    for var, value in filled.env.items():
        monkeypatch.setenv(var, value)
    return filled


# -- the checks ----------------------------------------------------------------------------
def test_config_forms_hide_secrets(case: Case) -> None:
    config = load_config(*case.args, **case.kwargs)
    data = config.to_dict()
    assert_hidden(
        case.secrets,
        [repr(config), str(config), str(data), repr(data), json.dumps(data)],
        "the configuration",
    )
    if case.carried:
        # the secret is in the configuration (masked, not lost), and scrubbing knows it
        assert "***" in repr(config) and "***" in json.dumps(data)
        known = secrets_of(config)
        for secret in case.secrets:
            assert scrub(f"x {secret} y", known) == "x *** y", secret


CLI_CASES = [c for c in CASES if c.cli is not None]


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.id for c in CLI_CASES], indirect=True)
def test_cli_config_hides_secrets(case: Case) -> None:
    assert case.cli is not None
    runner = CliRunner()
    for extra in ((), ("--json",)):
        result = runner.invoke(cli, ["config", *case.cli, *extra])
        assert result.exit_code == 0, result.output
        data = json.loads(result.output)
        assert set(data) >= {"url", "encryptor", "codec_options", "cache_secret"}
        assert_hidden(case.secrets, [result.output], f"hivemem config {' '.join(extra)}")
        if case.carried:
            assert "***" in result.output


def test_memory_logs_and_errors_hide_secrets(
    case: Case, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("HIVEMEM_TRACE_HOOKS", "1")
    caplog.set_level(logging.DEBUG, logger="hivemem")
    texts: list[str] = []

    async def main() -> None:
        plugins = make_plugins(plugins={"vault": _Vault()})
        memory = hivemem.open_memory(*case.args, plugins=plugins, **case.kwargs)
        texts.extend(
            [repr(memory), str(memory.config), repr(memory.pipeline), repr(memory.backend)]
        )
        texts.extend(repr(cache) for cache in memory.caches)
        async with memory:
            await memory.put("note", "n1", {"text": "hello"})
            assert await memory.get("note", "n1") == {"text": "hello"}
            texts.append(json.dumps((await memory.summary()).to_dict(), default=str))

    try:
        asyncio.run(main())
    except Exception as exc:
        if case.open_error is None or not isinstance(exc, case.open_error):
            raise
        texts.extend(error_texts(exc))
    else:
        assert case.open_error is None, f"expected {case.open_error.__name__}"
    assert "hook hivemem_register_backends" in caplog.text  # tracing was captured
    texts.append(caplog.text)
    texts.extend(repr(record.args) for record in caplog.records)
    assert_hidden(case.secrets, texts, "the memory, its logs or errors")


# -- plugins that fail ---------------------------------------------------------------------
BOOM_PW = "s3cret"
#: the plugin quotes its URL and password; neither may come out
BOOM_SECRETS = (BOOM_PW, f"user:{BOOM_PW}@")


def _boom(url: str, **settings: Any) -> hivemem.Memory:
    plugins = make_plugins(plugins={"boom": _Boom()})
    return hivemem.open_memory(url, plugins=plugins, **settings)


def _open(memory: hivemem.Memory) -> None:
    async def main() -> None:
        async with memory:
            pass

    asyncio.run(main())


def test_backend_constructor_error_is_plugin_error() -> None:
    with pytest.raises(PluginError) as info:
        _boom(f"boom://user:{BOOM_PW}@host/build", cache=[])
    err = info.value
    assert err.kind == "backend" and err.plugin == "boom"
    assert "backend plugin 'boom'" in str(err)
    assert "cannot build for boom://user:***@host/build: RuntimeError: cannot connect" in str(err)
    assert err.__cause__ is None and err.__context__ is None
    assert_hidden(BOOM_SECRETS, error_texts(err), "a constructor error")


def test_backend_constructor_type_error_stays_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        _boom(f"boom://user:{BOOM_PW}@host/build-typeerror", cache=[])
    assert "'boom'" in str(info.value) and "bad option for boom://user:***@host" in str(info.value)
    assert_hidden(BOOM_SECRETS, error_texts(info.value), "a constructor TypeError")


def test_hivemem_error_showing_a_secret_keeps_its_class_without_the_secret() -> None:
    with pytest.raises(ConfigError) as info:
        _boom(f"boom://user:{BOOM_PW}@host/build-hivemem", cache=[])
    assert type(info.value) is ConfigError
    assert "cannot use boom://user:***@host" in str(info.value)
    assert_hidden(BOOM_SECRETS, error_texts(info.value), "a plugin's ConfigError")


@pytest.mark.parametrize(
    ("mode", "error", "needle"),
    [
        ("open-runtime", PluginError, "cannot open for boom://user:***@host/open-runtime: "
         "RuntimeError: cannot connect to boom://user:***@host/open-runtime (password ***)"),
        ("open-oserror", BackendUnavailable, "ConnectionRefusedError: cannot connect"),
        ("open-hivemem", BackendUnavailable, "cannot connect to boom://user:***@host"),
        ("open-chained", BackendUnavailable, "boom host is down"),
    ],
)
def test_backend_open_errors_hide_secrets(
    mode: str, error: type[BaseException], needle: str
) -> None:
    memory = _boom(f"boom://user:{BOOM_PW}@host/{mode}", cache=[])
    with pytest.raises(error) as info:
        _open(memory)
    assert type(info.value) is error
    assert needle in str(info.value)
    if error is PluginError:
        assert isinstance(info.value, PluginError) and info.value.plugin == "boom"
    if error is BackendUnavailable:
        assert isinstance(info.value, ConnectionError)  # what callers catch
    assert_hidden(BOOM_SECRETS, error_texts(info.value), f"an open() error ({mode})")


def test_clean_hivemem_error_passes_through_unchanged() -> None:
    memory = _boom(f"boom://user:{BOOM_PW}@host/open-clean", cache=[])
    with pytest.raises(BackendUnavailable) as info:
        _open(memory)
    assert str(info.value) == "boom host is down"
    raised_at = traceback.extract_tb(info.value.__traceback__)[-1]
    assert (raised_at.filename, raised_at.name) == (__file__, "open")  # the plugin's own error


def test_cache_errors_are_plugin_errors_naming_the_cache() -> None:
    with pytest.raises(PluginError) as info:
        _boom("memory://c", cache=[f"boomcache://user:{BOOM_PW}@host/build"])
    assert info.value.kind == "cache" and info.value.plugin == "boomcache"
    assert_hidden(BOOM_SECRETS, error_texts(info.value), "a cache constructor error")

    memory = _boom(
        "memory://c", cache=[f"boomcache://user:{BOOM_PW}@host/x"], cache_secret=CACHE_SECRET
    )
    with pytest.raises(PluginError) as info:
        _open(memory)
    assert info.value.kind == "cache" and info.value.plugin == "boomcache"
    assert "cannot open for boomcache://user:***@host/x" in str(info.value)
    assert_hidden(
        (*BOOM_SECRETS, CACHE_SECRET), error_texts(info.value), "a cache open() error"
    )


def test_cli_error_line_is_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    """An error no plugin guard saw (ping raises) is scrubbed by the CLI itself."""
    plugins = make_plugins(plugins={"boom": _Boom()})
    monkeypatch.setattr("hivemem.memory.get_plugins", lambda: plugins)
    monkeypatch.setenv("HIVEMEM_CACHE", "none")
    url = f"boom://user:{BOOM_PW}@host/ping-leak"
    result = CliRunner().invoke(cli, ["ping", "--url", url])
    assert result.exit_code == 1
    assert "Error: RuntimeError: ping to boom://user:***@host/ping-leak failed" in result.output
    assert "(password ***)" in result.output
    assert_hidden(BOOM_SECRETS, [result.output], "the CLI error line")


# -- the redaction functions ---------------------------------------------------------------
def test_redact_url_masks_passwords_in_every_shape() -> None:
    assert redact_url("redis://u:pw@h:1/0") == "redis://u:***@h:1/0"
    assert redact_url("redis://u@h:1/0") == "redis://u@h:1/0"
    assert redact_url("redis://:pw@h") == "redis://:***@h"
    assert redact_url("mongodb://u:p@a,b/?authSource=admin&password=x&authToken=y") == (
        "mongodb://u:***@a,b/?authSource=admin&password=***&authToken=***"
    )
    # a password holding an unescaped '/' or '#' still does not come out
    assert redact_url("redis://u:pa/ss#x@h:1/0") == "redis://u:***@h:1/0"
    assert redact_url("sqlite:////tmp/at@sign.db") == "sqlite:////tmp/at@sign.db"
    assert mask_url is not None and mask_url("redis://u:pw@h") == "redis://u:***@h"


def test_redact_spec_masks_every_option() -> None:
    assert redact_spec("json") == "json"
    assert redact_spec("zstd?level=9") == "zstd?level=***"
    assert redact_spec(f"fernet?keys={KEY}&ttl=60") == "fernet?keys=***&ttl=***"
    # a value typed without its name (a Fernet key ends in "=") is masked whole
    assert redact_spec(f"fernet?{KEY}") == "fernet?***"
    assert redact_spec(f"fernet?{KEY}&ttl=5") == "fernet?***&ttl=***"
    assert redact_spec("fernet?p/w=x&keys") == "fernet?***&***"
    assert KEY in secrets_of(MemoryConfig(url="memory://", encryptor=f"fernet?{KEY}"))


def test_redact_options_rules() -> None:
    assert redact_options({"zstd": {"level": 9}, "x": None}, all_values=True) == {
        "zstd": {"level": "***"},
        "x": None,
    }
    backend = {
        "password": "p",
        "auth": "a",
        "prefix": "datamcp:",
        "authSource": "admin",
        "nodes": ["redis://u:pw@h1", "redis://h2"],
        "tls": {"client_key": "k", "ca": "/etc/ca.pem"},
    }
    assert redact_options(backend, all_values=False) == {
        "password": "***",
        "auth": "***",
        "prefix": "datamcp:",
        "authSource": "admin",
        "nodes": ["redis://u:***@h1", "redis://h2"],
        "tls": {"client_key": "***", "ca": "/etc/ca.pem"},
    }
    assert mask_options(backend) == redact_options(backend, all_values=False)


def test_secrets_of_finds_every_form() -> None:
    config = MemoryConfig(
        url=f"redis://u:{quote(ODD_PASSWORD, safe='')}@h:1/0",
        cache=["local://", f"memcached://u:{TOKEN}@h:2"],
        encryptor=f"fernet?keys={KEY},{KEY2}",
        codec_options={"zstd": {"dictionary": "dict-Secret", "level": 3}},
        backend_options={"password": PASSWORD, "prefix": "p:"},
        cache_secret=f"{CACHE_SECRET},{CACHE_SECRET2}",
    )
    found = secrets_of(config)
    for secret in (ODD_PASSWORD, quote(ODD_PASSWORD, safe=""), TOKEN, KEY, KEY2, PASSWORD,
                   "dict-Secret", CACHE_SECRET, CACHE_SECRET2):
        assert secret in found, secret
    assert "p:" not in found and "3" not in found
    assert scrub(f"bad {KEY2} and {PASSWORD}", found) == "bad *** and ***"
    assert scrub("short p: stays", found) == "short p: stays"
    assert scrub("see mongodb://admin:unknown@db:27017/x", ()) == "see mongodb://admin:***@db:27017/x"


def test_plugin_call_leaves_results_and_clean_errors_alone() -> None:
    assert plugin_call("backend", "b", {PASSWORD}, "x://h", lambda a, b=0: a + b, 1, b=2) == 3
    clean = HivememError("nothing secret here")

    def fail() -> None:
        raise clean

    with pytest.raises(HivememError) as info:
        plugin_call("backend", "b", {PASSWORD}, "x://h", fail)
    assert info.value is clean


def test_trace_hooks_log_no_arguments(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Hook tracing names hooks and plugins only, never what the hooks were called with."""
    caplog.set_level(logging.DEBUG, logger="hivemem")
    captured: list[Callable[..., Any]] = []

    class Spy:
        @hivemem.hookimpl
        def hivemem_register_backends(self, register: Any) -> None:
            captured.append(register)

    plugins = make_plugins(plugins={"spy": Spy()}, trace=True)
    _ = plugins.registries
    assert captured and "hook hivemem_register_backends -> " in caplog.text
    assert repr(captured[0]) not in caplog.text and "0x" not in caplog.text
