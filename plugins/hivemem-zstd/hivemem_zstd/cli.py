"""``hivemem zstd ...`` commands (registered through ``hivemem_register_commands``).

* ``hivemem zstd train --kind KIND`` trains a dictionary on stored values of
  KIND and stores it in the memory itself (codec resource ``zstd-dict``), so
  every reader in every process can decode what it compresses;
* ``hivemem zstd dictionaries`` lists the dictionaries stored in the memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from hivemem import Memory
from hivemem.plugin import (
    RESOURCE_NS,
    FrameError,
    HivememError,
    ResourceMissing,
    common_options,
    emit,
    guarded,
    read_header,
    run,
)

from .codec import DEFAULT_LEVEL, RESOURCE_KIND, ZstdCodec
from .dictionaries import dictionary_id, train_dictionary

#: records listed per backend round trip
_PAGE = 200


@click.group()
def zstd() -> None:
    """Zstandard compression: trained dictionaries stored in the memory."""


async def _strip_to_serialized(memory: Memory, frame: bytes, label: str) -> tuple[bytes, bool]:
    """The bytes the serializer produced for a stored frame, and whether it was encrypted.

    Undoes the frame's encryptor and compressor stages (loading a zstd
    dictionary from the store when a payload needs one), so training sees
    exactly what the compressor sees when the value is written. A value written
    with another serializer than today's is re-serialized with today's, since
    that is what new writes will compress.
    """
    pipeline = memory.pipeline
    stages, pos = read_header(frame, label)
    if not stages or stages[0][0] != "serializer":
        raise FrameError("frame names no serializer", label)
    data = frame[pos:]
    for stage, name in reversed(stages[1:]):
        codec = pipeline.codec(stage, name)
        try:
            data = codec.decode(data)
        except ResourceMissing as exc:
            resource = await memory.get_resource(exc.resource_kind, exc.resource_id)
            if resource is None:
                exc.stage, exc.key = (stage, name), label
                raise
            codec.add_resource(exc.resource_kind, exc.resource_id, resource)
            data = codec.decode(data)
        except HivememError:
            raise
        except Exception as exc:
            raise FrameError(f"{stage} {name!r} cannot decode value: {exc}", label) from None
    serializer = stages[0][1]
    if serializer != pipeline.serializer_name:
        data = pipeline.serializer.dumps(pipeline.codec("serializer", serializer).loads(data))
    encrypted = any(stage == "encryptor" for stage, _ in stages)
    return data, encrypted


async def _sample(memory: Memory, kind: str, limit: int) -> tuple[list[bytes], bool]:
    """Up to ``limit`` serialized values of ``kind`` in id order; True if any was encrypted."""
    samples: list[bytes] = []
    encrypted = False
    cursor: str | None = None
    while len(samples) < limit:
        want = min(_PAGE, limit - len(samples))
        rows = await memory.backend.list_records(memory.namespace, kind, limit=want, cursor=cursor)
        for id, record in rows:
            data, was_encrypted = await _strip_to_serialized(memory, record.value, f"{kind}/{id}")
            samples.append(data)
            encrypted = encrypted or was_encrypted
        if len(rows) < want:
            break
        cursor = rows[-1][0]
    return samples, encrypted


def _setting(compressor: str) -> str:
    return f'HIVEMEM_COMPRESSOR="{compressor}"'


@zstd.command()
@common_options
@click.option("--kind", required=True, help="Train on stored values of this kind.")
@click.option(
    "--samples",
    type=click.IntRange(min=8),
    default=1000,
    show_default=True,
    help="How many stored values to sample (in id order).",
)
@click.option(
    "--size",
    type=click.IntRange(min=256),
    default=16 * 1024,
    show_default=True,
    help="Largest dictionary size in bytes.",
)
@click.option(
    "--level",
    type=int,
    default=DEFAULT_LEVEL,
    show_default=True,
    help="Compression level to tune the dictionary for.",
)
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the dictionary to this file (e.g. for a codec's dict_dir).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Overwrite OUT (values written with the dictionary in it may become unreadable).",
)
@click.option(
    "--store/--no-store",
    default=True,
    show_default=True,
    help="Store the dictionary in the memory (--no-store: only write OUT).",
)
@guarded
def train(
    kind: str, samples: int, size: int, level: int, out: Path | None, force: bool, store: bool
) -> None:
    """Train a dictionary on up to SAMPLES stored values of KIND and store it in the memory.

    Every process using the memory then reads values compressed with it,
    loading it from the store on demand; turn it on for writers with the
    printed HIVEMEM_COMPRESSOR setting. Old dictionaries stay stored, so
    values written with them stay readable.

    A dictionary contains fragments of the values it was trained on and is
    stored unencrypted: with encrypted values, only --no-store --out FILE is
    allowed (keep the file as safe as the keys).
    """
    if not store and out is None:
        raise click.UsageError("--no-store needs --out FILE")
    if out is not None and out.exists() and not force:
        raise click.ClickException(
            f"{out} exists; values compressed with the dictionary in it need it to stay "
            "readable: choose another file (or --force)"
        )

    async def train_and_store(memory: Memory) -> dict[str, Any]:
        return await _train_and_store(memory, kind, samples, size, level, store)

    result = run(train_and_store)
    data: list[bytes] = result["data"]
    trained: bytes = result["trained"]
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(trained)
    report = _train_report(kind, data, trained, result["dict_id"], level, store, out)
    where = []
    if store:
        where.append(f"stored in the memory as {RESOURCE_KIND} {report['dictionary_id']}")
    if out is not None:
        where.append(f"written to {out}")
    emit(
        report,
        f"trained dictionary {report['dictionary_id']} ({len(trained)} bytes) on {len(data)} "
        f"values of {kind!r}; {' and '.join(where)}\n"
        f"ratio on the samples: {report['ratio_without_dictionary']}x without, "
        f"{report['ratio_with_dictionary']}x with the dictionary\n"
        f"turn it on for writers with: {report['setting']}",
    )


async def _train_and_store(
    memory: Memory, kind: str, samples: int, size: int, level: int, store: bool
) -> dict[str, Any]:
    """Sample, train, and (with ``store``) keep the dictionary as a codec resource."""
    data, encrypted = await _sample(memory, kind, samples)
    if not data:
        raise click.ClickException(f"no stored values of kind {kind!r} to train on")
    encrypted = encrypted or memory.pipeline.encryptor is not None
    if store and encrypted:
        raise click.ClickException(
            f"values of kind {kind!r} are encrypted, and a dictionary holds fragments of "
            "the values it is trained on: it would be stored unencrypted. Use "
            "--no-store --out FILE and keep the file with the keys"
        )
    trained = train_dictionary(data, size, level=level)
    dict_id = dictionary_id(trained)
    if store:
        existing = await memory.get_resource(RESOURCE_KIND, str(dict_id))
        if existing is not None and existing != trained:
            raise click.ClickException(
                f"a different dictionary with id {dict_id} is already stored; values "
                "written with it need it: train with another --size or --samples"
            )
        await memory.put_resource(RESOURCE_KIND, str(dict_id), trained)
    return {"data": data, "trained": trained, "dict_id": dict_id}


def _train_report(
    kind: str,
    data: list[bytes],
    trained: bytes,
    dict_id: int,
    level: int,
    store: bool,
    out: Path | None,
) -> dict[str, Any]:
    """Ratios on the samples with and without the dictionary, and the setting to use it."""
    plain = ZstdCodec(level=level, min_size=0)
    tuned = ZstdCodec(level=level, min_size=0, dictionaries={dict_id: trained}, dictionary=dict_id)
    raw = sum(len(sample) for sample in data)
    without = sum(len(plain.encode(sample) or sample) for sample in data)
    with_dict = sum(len(tuned.encode(sample) or sample) for sample in data)
    compressor = f"zstd?dictionary={dict_id}"
    if level != DEFAULT_LEVEL:
        compressor += f"&level={level}"
    if not store:
        assert out is not None
        compressor = f"zstd?dict_dir={out.parent.resolve()}&" + compressor.partition("?")[2]
    return {
        "kind": kind,
        "samples": len(data),
        "sample_bytes": raw,
        "dictionary_id": dict_id,
        "dictionary_bytes": len(trained),
        "stored": store,
        "out": None if out is None else str(out),
        "ratio_without_dictionary": round(raw / without, 3),
        "ratio_with_dictionary": round(raw / with_dict, 3),
        "compressor": compressor,
        "setting": _setting(compressor),
    }


@zstd.command()
@common_options
@guarded
def dictionaries() -> None:
    """List the zstd dictionaries stored in the memory (id and size)."""

    async def list_dictionaries(memory: Memory) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page = await memory.backend.list_records(
                RESOURCE_NS, RESOURCE_KIND, limit=_PAGE, cursor=cursor
            )
            for id, record in page:
                rows.append({"id": int(id), "bytes": len(record.value)})
            if len(page) < _PAGE:
                break
            cursor = page[-1][0]
        writer = memory.pipeline.compressor
        writing = writer.dictionary if isinstance(writer, ZstdCodec) else None
        for row in rows:
            row["writing"] = row["id"] == writing
        return sorted(rows, key=lambda row: row["id"])

    rows = run(list_dictionaries)
    lines = [
        f"{row['id']:>10}  {row['bytes']:>7} bytes"
        + ("  (new values use it)" if row["writing"] else "")
        for row in rows
    ]
    emit(rows, "\n".join(lines) if rows else "no zstd dictionaries stored")
