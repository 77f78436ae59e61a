"""The ``hivemem`` command line: thin commands over the Python API.

Every command accepts ``--url``, ``--namespace``, ``--json`` (and ``--debug``
for a traceback on error) before or after its name. Errors print one line and
exit non-zero.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from .codecs import RESOURCE_NS
from .compat import render_summary
from .config import MemoryConfig, load_config
from .errors import HivememError
from .memory import Memory, MemorySummary, RewriteReport, open_memory
from .plugins import get_plugins
from .redact import scrub, secrets_of
from .seed import SeedMemory

T = TypeVar("T")


class State:
    """Options collected from the group and the command."""

    def __init__(self) -> None:
        self.url: str | None = None
        self.namespace: str | None = None
        self.json = False
        self.debug = False
        self.config_file: str | None = None


def _set(attr: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        state = ctx.ensure_object(State)
        if value not in (None, False):
            setattr(state, attr, value)
        return value

    return callback


def common_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--url``, ``--namespace``, ``--json``, ``--debug``, ``--config`` on a command."""
    opts = [
        click.option(
            "--url",
            "-u",
            expose_value=False,
            callback=_set("url"),
            help="Backend URL (default: HIVEMEM_URL or the embedded SQLite file).",
        ),
        click.option(
            "--namespace",
            "-n",
            expose_value=False,
            callback=_set("namespace"),
            help="Namespace (default: HIVEMEM_NAMESPACE or 'default').",
        ),
        click.option(
            "--json",
            "as_json",
            is_flag=True,
            expose_value=False,
            callback=_set("json"),
            help="Machine-readable output.",
        ),
        click.option(
            "--debug",
            is_flag=True,
            expose_value=False,
            callback=_set("debug"),
            help="Show a traceback on error.",
        ),
        click.option(
            "--config",
            "config_file",
            expose_value=False,
            callback=_set("config_file"),
            type=click.Path(dir_okay=False),
            help="TOML configuration file.",
        ),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def open_from_context(ctx: click.Context | None = None, **settings: Any) -> Memory:
    """The Memory selected by the command line (for plugin commands too)."""
    state = (ctx or click.get_current_context()).ensure_object(State)
    if state.namespace:
        settings.setdefault("namespace", state.namespace)
    config = load_config(state.url, config_file=state.config_file, **settings)
    return open_memory(config)


def run(coro_fn: Callable[[Memory], Awaitable[T]], **settings: Any) -> T:
    """Open the selected memory, run ``coro_fn(memory)``, close it."""

    async def main() -> T:
        async with open_from_context(**settings) as memory:
            return await coro_fn(memory)

    return asyncio.run(main())


def _default(obj: Any) -> Any:
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "backslashreplace")
    return str(obj)


def emit(data: Any, text: str | None = None) -> None:
    """Print ``data`` as JSON with ``--json``, else ``text`` (or pretty JSON)."""
    state = click.get_current_context().ensure_object(State)
    if state.json or text is None:
        click.echo(
            json.dumps(data, indent=None if state.json else 2, default=_default, ensure_ascii=False)
        )
    else:
        click.echo(text)


def guarded(fn: Callable[..., T]) -> Callable[..., T]:
    """Turn errors into one line and a non-zero exit (traceback with --debug)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        state = click.get_current_context().ensure_object(State)
        try:
            return fn(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)
        except Exception as exc:
            if state.debug:
                raise
            label = "" if isinstance(exc, HivememError) else f"{type(exc).__name__}: "
            click.echo(f"Error: {label}{scrub(str(exc), _known_secrets(state))}", err=True)
            sys.exit(1)

    return wrapper


def _known_secrets(state: State) -> frozenset[str]:
    """The secrets the selected configuration carries (to scrub them from error lines)."""
    try:
        return secrets_of(load_config(state.url, config_file=state.config_file))
    except Exception:  # the configuration itself is broken: the URL given is all we know
        try:
            return secrets_of(MemoryConfig(url=state.url)) if state.url else frozenset()
        except Exception:
            return frozenset()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@common_options
@click.version_option(package_name="hivemem")
def cli() -> None:
    """hivemem: shared, durable memory for AI agents."""


@cli.command()
@common_options
@click.option("--all", "show_all", is_flag=True, help="Show every registered name in detail.")
@guarded
def plugins(show_all: bool) -> None:
    """Installed plugins: distribution, version and what each provides per kind."""
    rows = get_plugins().describe()
    if click.get_current_context().ensure_object(State).json:
        emit(rows)
        return
    for row in rows:
        head = row["name"]
        if row["distribution"]:
            head += f"  ({row['distribution']} {row['version']})"
        click.echo(head)
        for kind, items in sorted(row["provides"].items()):
            names = ", ".join(
                item["name"]
                + (f" [{', '.join(s + '://' for s in item['schemes'])}]" if item["schemes"] else "")
                for item in items
            )
            click.echo(f"  {kind}: {names}")
            if show_all:
                for item in items:
                    click.echo(f"    {item['name']}: {item['description']}")


def _parse_value(value: str, raw: bool) -> Any:
    if raw:
        return value
    if value == "-":
        value = sys.stdin.read()
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(
            f"VALUE is not JSON ({exc.msg}); use --raw to store text"
        ) from None


@cli.command()
@common_options
@click.argument("kind")
@click.argument("id")
@guarded
def get(kind: str, id: str) -> None:
    """Print the value stored at KIND/ID (exit 1 when absent)."""
    missing = object()
    value = run(lambda m: m.get(kind, id, missing))
    if value is missing:
        click.echo(f"Error: no record {kind}/{id}", err=True)
        sys.exit(1)
    emit(value)


@cli.command()
@common_options
@click.argument("kind")
@click.argument("id")
@click.argument("value")
@click.option("--ttl", type=float, help="Expire after this many seconds.")
@click.option("--raw", is_flag=True, help="Store VALUE as a string instead of parsing JSON.")
@guarded
def put(kind: str, id: str, value: str, ttl: float | None, raw: bool) -> None:
    """Store VALUE (JSON, or - for stdin) at KIND/ID."""
    parsed = _parse_value(value, raw)
    version = run(lambda m: m.put(kind, id, parsed, ttl=ttl))
    emit({"kind": kind, "id": id, "version": version}, f"stored {kind}/{id} (version {version})")


@cli.command()
@common_options
@click.argument("kind")
@click.argument("id")
@guarded
def delete(kind: str, id: str) -> None:
    """Delete KIND/ID."""
    removed = run(lambda m: m.delete(kind, id))
    emit({"deleted": removed}, f"deleted {kind}/{id}" if removed else f"no record {kind}/{id}")


@cli.command(name="ls")
@common_options
@click.argument("kind")
@click.argument("prefix", default="")
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--newest", is_flag=True, help="The last ids instead of the first.")
@click.option("--values", is_flag=True, help="Show values too.")
@guarded
def ls(kind: str, prefix: str, limit: int, newest: bool, values: bool) -> None:
    """List ids of KIND starting with PREFIX, in id order."""

    async def listing(memory: Memory) -> Any:
        if values:
            return await SeedMemory(memory).load_entities_by_prefix(
                kind, prefix, limit, newest=newest
            )
        ids = await memory.list_ids(kind, prefix, limit=limit, reverse=newest)
        return ids[::-1] if newest else ids

    result = run(listing)
    if values:
        emit(
            result, "\n".join(f"{k}\t{json.dumps(v, default=_default)}" for k, v in result.items())
        )
    else:
        emit(result, "\n".join(result))


@cli.command()
@common_options
@guarded
def summary() -> None:
    """Counts and bytes per kind, series lengths and spans."""
    data = run(lambda m: m.summary()).to_dict()
    emit(data, render_summary(data))


@cli.command()
@common_options
@guarded
def metrics() -> None:
    """Backend stats and this process's metrics after a ping."""

    async def go(m: Memory) -> Any:
        await m.ping()
        return {"stats": await m.stats(), "metrics": m.metrics()}

    emit(run(go))


@cli.command()
@common_options
@guarded
def ping() -> None:
    """Check that the backend answers (exit 1 when it does not)."""

    async def go(m: Memory) -> tuple[bool, float]:
        t0 = time.perf_counter()
        ok = await m.backend.ping()
        return ok, (time.perf_counter() - t0) * 1000

    ok, ms = run(go)
    emit({"ok": ok, "ms": round(ms, 3)}, f"ok ({ms:.2f} ms)")


@cli.command(name="config")
@common_options
@guarded
def show_config() -> None:
    """Show the effective configuration (secrets masked)."""
    state = click.get_current_context().ensure_object(State)
    cfg = load_config(
        state.url,
        config_file=state.config_file,
        **({"namespace": state.namespace} if state.namespace else {}),
    )
    emit(cfg.to_dict())


@cli.command(name="rotate-keys")
@common_options
@click.option("--kind", "kinds", multiple=True, help="Only these kinds (repeatable).")
@click.option(
    "--series", "series", multiple=True, help="Only these series (repeatable; default: all)."
)
@click.option("--batch", type=int, default=200, show_default=True)
@click.option(
    "--encrypt-plaintext",
    is_flag=True,
    help="Also encrypt values written before encryption was on (reads plaintext for this run).",
)
@click.option(
    "--decrypt", is_flag=True, help="Allow rewriting encrypted values without encryption."
)
@guarded
def rotate_keys(
    kinds: tuple[str, ...],
    series: tuple[str, ...],
    batch: int,
    encrypt_plaintext: bool,
    decrypt: bool,
) -> None:
    """Re-encode every record and series entry under today's codecs and primary key.

    Safe to interrupt and run again; concurrent writers always win. Exits 1
    while anything is left that is not under the primary key and codecs;
    then prints what else may still hold old values.
    """
    settings: dict[str, Any] = {"accept_plaintext": True} if encrypt_plaintext else {}

    async def rotate(memory: Memory) -> dict[str, Any]:
        return await _rotate(memory, list(kinds) or None, list(series) or None, batch, decrypt)

    data = run(rotate, **settings)
    emit(data, _rotation_text(data))
    if not data["done"]:
        failures = "".join(f"\n  {f}" for f in data["failures"])
        click.echo(
            f"Error: rotation is not done: {data['remaining']} value(s) are still not under the "
            f"primary key and today's codecs ({data['failed']} unreadable or refused); do not "
            f"retire the old key yet. Fix what is named below, then run rotate-keys again."
            f"{failures}",
            err=True,
        )
        sys.exit(1)


def _rotation_total(
    summary: MemorySummary, kinds: list[str] | None, series: list[str] | None
) -> int:
    """How many values a rotation pass will scan (for the progress bar)."""
    total = sum(
        stats.get("count", 0)
        for kind, stats in summary.kinds.items()
        if not kinds or kind in kinds
    )
    if kinds is None or series is not None:
        total += sum(
            stats.get("length", 0)
            for name, stats in summary.series.items()
            if not series or name in series
        )
    return total


async def _rotate(
    memory: Memory,
    kinds: list[str] | None,
    series: list[str] | None,
    batch: int,
    decrypt: bool,
) -> dict[str, Any]:
    """Rewrite passes (again while writers raced, at most 3), then a check-only pass."""
    total = _rotation_total(await memory.summary(), kinds, series)

    async def one_pass() -> RewriteReport:
        with click.progressbar(length=total, label="rewriting", file=sys.stderr) as bar:
            seen = [0]

            def progress(scanned: int, rewritten: int) -> None:
                bar.update(scanned - seen[0])
                seen[0] = scanned

            return await memory.rewrite(
                kinds, series=series, batch_size=batch, progress=progress, decrypt=decrypt
            )

    reports = [await one_pass()]
    while reports[-1].conflicts and len(reports) < 3:  # writers raced: look again
        reports.append(await one_pass())
    check = await memory.rewrite(kinds, series=series, batch_size=batch, check_only=True)
    data = _rotation_result(reports, check)
    if data["done"]:
        data["next_steps"] = await _rotation_next_steps(memory)
    return data


def _rotation_result(reports: list[RewriteReport], check: RewriteReport) -> dict[str, Any]:
    remaining = check.rewritten + check.series_rewritten + check.failed
    data: dict[str, Any] = {
        key: sum(getattr(report, key) for report in reports)
        for key in ("rewritten", "conflicts", "series_rewritten")
    }
    first = reports[0]
    data.update(
        scanned=first.scanned,
        skipped=first.skipped,
        series_scanned=first.series_scanned,
        passes=len(reports),
        failed=check.failed,
        failures=list(check.failures),
        remaining=remaining,
        done=remaining == 0,
        next_steps=[],
    )
    return data


async def _rotation_next_steps(memory: Memory) -> list[str]:
    """What may still hold old values once every value is rewritten."""
    steps = list(await memory.backend.purge_residue())
    resources = await memory.backend.kinds(RESOURCE_NS)
    if resources:
        steps.append(
            f"codec resources ({', '.join(resources)}) are stored unencrypted in the "
            f"namespace {RESOURCE_NS!r}; a zstd dictionary trained before encryption was "
            "on holds fragments of plaintext: train a new one (`hivemem zstd train`), "
            "rewrite with it, and delete the old dictionary"
        )
    steps.append("deploy the new key list without the retired key to every process only now")
    return steps


def _rotation_text(data: dict[str, Any]) -> str:
    text = (
        "scanned {scanned}, rewritten {rewritten}, already current {skipped}, changed "
        "concurrently {conflicts}; series entries scanned {series_scanned}, rewritten "
        "{series_rewritten}".format(**data)
    )
    if data["done"]:
        text += "\ndone: every value is under the primary key and today's codecs"
        if data["next_steps"]:
            text += "\nwhat may still hold old values:\n" + "\n".join(
                f"  - {step}" for step in data["next_steps"]
            )
    return text


@cli.command()
@common_options
@guarded
def demo() -> None:
    """Walk the seed's example on the selected memory (default: the embedded SQLite file)."""
    from .demo import run_demo

    asyncio.run(run_demo(open_from_context, click.echo))


_commands_loaded = False


def _load_plugin_commands() -> None:
    global _commands_loaded
    if _commands_loaded:
        return
    _commands_loaded = True
    get_plugins().pm.hook.hivemem_register_commands(cli=cli)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    try:
        _load_plugin_commands()
    except HivememError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    cli.main(args=argv, prog_name="hivemem")


__all__ = ["State", "cli", "common_options", "emit", "guarded", "main", "open_from_context", "run"]
