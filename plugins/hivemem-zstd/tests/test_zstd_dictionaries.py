"""Trained dictionaries: training, configuration, reading across dictionary changes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard
from hivemem.errors import ConfigError, ResourceMissing
from hivemem.pipeline import Pipeline, read_header
from hivemem.plugins import Plugins
from hivemem_zstd import train_dictionary
from hivemem_zstd.codec import ZstdCodec
from hivemem_zstd.dictionaries import DICT_MAGIC, dictionary_id


@pytest.fixture(scope="module")
def rows(make_rows: Callable[..., list[bytes]]) -> list[bytes]:
    return make_rows(1200, seed=1)


@pytest.fixture(scope="module")
def old_dict(rows: list[bytes]) -> bytes:
    return train_dictionary(rows[:1000], 4096)


@pytest.fixture(scope="module")
def new_dict(make_rows: Callable[..., list[bytes]]) -> bytes:
    return train_dictionary(make_rows(1000, seed=2), 2048)


def test_train_dictionary_returns_a_trained_dictionary(old_dict: bytes) -> None:
    assert isinstance(old_dict, bytes)
    assert old_dict[:4] == DICT_MAGIC
    assert 256 <= len(old_dict) <= 4096
    assert dictionary_id(old_dict) == zstandard.ZstdCompressionDict(old_dict).dict_id()


def test_train_dictionary_rejects_too_little_input(rows: list[bytes]) -> None:
    with pytest.raises(ValueError, match="at least 8 non-empty samples"):
        train_dictionary([b"abc"] * 3, 1024)
    with pytest.raises(ValueError, match="got 9 samples of 9 bytes"):
        train_dictionary([b"a"] * 9 + [b""] * 20, 1024)
    with pytest.raises(ValueError, match="size must be an integer >= 256"):
        train_dictionary(rows[:100], 100)


def test_train_dictionary_on_few_samples_still_yields_a_usable_dictionary(
    rows: list[bytes],
) -> None:
    samples = rows[:20]
    trained = train_dictionary(samples, 65536)
    dict_id = dictionary_id(trained)
    codec = ZstdCodec(dictionaries={dict_id: trained}, dictionary=dict_id, min_size=0)
    for sample in samples:
        out = codec.encode(sample)
        assert out is not None and codec.decode(out) == sample


def test_dictionary_shrinks_small_rows(rows: list[bytes], old_dict: bytes) -> None:
    held_out = rows[1000:]
    plain = ZstdCodec(min_size=0)
    with_dict = ZstdCodec(
        min_size=0,
        dictionaries={dictionary_id(old_dict): old_dict},
        dictionary=dictionary_id(old_dict),
    )

    def size(codec: ZstdCodec) -> int:
        return sum(len(codec.encode(row) or row) for row in held_out)

    raw = sum(len(row) for row in held_out)
    assert size(with_dict) * 2 < raw  # more than 2x on ~100-byte rows
    assert size(with_dict) * 2 < size(plain)
    for row in held_out:
        out = with_dict.encode(row)
        assert out is not None
        assert zstandard.get_frame_parameters(out).dict_id == dictionary_id(old_dict)
        assert with_dict.decode(out) == row


def test_old_dictionary_stays_readable_after_switching(
    rows: list[bytes], old_dict: bytes, new_dict: bytes
) -> None:
    old_id, new_id = dictionary_id(old_dict), dictionary_id(new_dict)
    assert old_id != new_id
    writer_v1 = ZstdCodec(dictionaries={old_id: old_dict}, dictionary=old_id, min_size=0)
    plain = ZstdCodec(min_size=0)
    v1 = [writer_v1.encode(row) for row in rows[:50]]
    v0 = [plain.encode(row * 4) for row in rows[:50]]
    # newest configuration: encode with the new dictionary, keep the old one for reading
    reader = ZstdCodec(
        dictionaries={str(old_id): old_dict, new_id: new_dict}, dictionary=str(new_id), min_size=0
    )
    v2 = [reader.encode(row) for row in rows[:50]]
    assert {zstandard.get_frame_parameters(f).dict_id for f in v2 if f} == {new_id}
    for row, f1, f0, f2 in zip(rows[:50], v1, v0, v2, strict=True):
        assert f1 is not None and f0 is not None and f2 is not None
        assert reader.decode(f1) == row
        assert reader.decode(f0) == row * 4
        assert reader.decode(f2) == row


def test_needs_recompress(rows: list[bytes], old_dict: bytes, new_dict: bytes) -> None:
    old_id, new_id = dictionary_id(old_dict), dictionary_id(new_dict)
    both = {old_id: old_dict, new_id: new_dict}
    old = ZstdCodec(dictionaries=both, dictionary=old_id, min_size=0)
    new = ZstdCodec(dictionaries=both, dictionary=new_id, min_size=0)
    plain = ZstdCodec(dictionaries=both, min_size=0)
    old_frame, new_frame = old.encode(rows[0]), new.encode(rows[0])
    plain_frame = plain.encode(rows[0] * 3)
    assert old_frame is not None and new_frame is not None and plain_frame is not None
    assert new.needs_recompress(old_frame) and not new.needs_recompress(new_frame)
    assert new.needs_recompress(plain_frame) and not plain.needs_recompress(plain_frame)
    assert plain.needs_recompress(new_frame)
    assert new.needs_recompress(b"garbage")


def test_missing_dictionary_asks_for_it_by_id(rows: list[bytes], old_dict: bytes) -> None:
    old_id = dictionary_id(old_dict)
    frame = ZstdCodec(dictionaries={old_id: old_dict}, dictionary=old_id).encode(rows[0] * 2)
    assert frame is not None
    with pytest.raises(ResourceMissing, match=f"zstd-dict '{old_id}'") as info:
        ZstdCodec().decode(frame)
    assert (info.value.resource_kind, info.value.resource_id) == ("zstd-dict", str(old_id))


def test_dictionaries_mapping_must_match_ids(old_dict: bytes, new_dict: bytes) -> None:
    with pytest.raises(ValueError, match=f"holds dictionary id {dictionary_id(new_dict)}"):
        ZstdCodec(dictionaries={dictionary_id(old_dict): new_dict})
    # a write dictionary not given by the options is asked for as a resource
    codec = ZstdCodec(dictionaries={dictionary_id(old_dict): old_dict}, dictionary=77777)
    assert codec.resources_needed() == [("zstd-dict", "77777")]


def test_dict_dir(tmp_path: Path, rows: list[bytes], old_dict: bytes, new_dict: bytes) -> None:
    (tmp_path / "qtable-old.zdict").write_bytes(old_dict)
    (tmp_path / "qtable-new.zdict").write_bytes(new_dict)
    (tmp_path / ".hidden").write_bytes(b"ignored")
    codec = ZstdCodec(dict_dir=str(tmp_path), dictionary=dictionary_id(new_dict), min_size=0)
    assert codec.dictionary_ids == sorted([dictionary_id(old_dict), dictionary_id(new_dict)])
    old_frame = ZstdCodec(
        dictionaries={dictionary_id(old_dict): old_dict},
        dictionary=dictionary_id(old_dict),
        min_size=0,
    ).encode(rows[3])
    assert old_frame is not None
    assert codec.decode(old_frame) == rows[3]
    (tmp_path / "notes.txt").write_text("not a dictionary")
    with pytest.raises(ValueError, match=r"'dict_dir'.*notes\.txt.*not a trained zstd dictionary"):
        ZstdCodec(dict_dir=tmp_path)


def test_dict_dir_conflicting_ids(tmp_path: Path, old_dict: bytes) -> None:
    (tmp_path / "a.zdict").write_bytes(old_dict)
    forged = old_dict[:-1] + bytes([old_dict[-1] ^ 1])
    (tmp_path / "b.zdict").write_bytes(forged)
    with pytest.raises(ValueError, match="same id"):
        ZstdCodec(dict_dir=tmp_path)


def test_through_the_pipeline_by_url_options(
    tmp_path: Path, plugins: Plugins, rows: list[bytes], old_dict: bytes
) -> None:
    dict_id = dictionary_id(old_dict)
    (tmp_path / f"qtable-{dict_id}.zdict").write_bytes(old_dict)
    spec = f"zstd?dict_dir={tmp_path}&dictionary={dict_id}&min_size=16"
    pipe = Pipeline("json", spec, plugins=plugins)
    value = {"state": "s:1:2", "action": "wait", "q": 0.25, "visits": 3}
    frame = pipe.encode(value, key="q/1")
    stages, pos = read_header(frame)
    assert ("compressor", "zstd") in stages
    assert zstandard.get_frame_parameters(frame[pos:]).dict_id == dict_id
    assert pipe.decode(frame, key="q/1") == value
    # a reader without the dictionary asks for it, naming the record and the dictionary
    bare = Pipeline("json", "zstd", plugins=plugins)
    with pytest.raises(ResourceMissing, match=str(dict_id)) as info:
        bare.decode(frame, key="q/1")
    assert info.value.key == "q/1"
    assert info.value.stage == ("compressor", "zstd")
    # a write dictionary that is not configured is loaded from the store when a Memory opens
    assert Pipeline("json", "zstd?dictionary=123", plugins=plugins).resources_needed() == [
        ("compressor", "zstd", "zstd-dict", "123")
    ]
    with pytest.raises(ConfigError, match="'dictionary'"):
        Pipeline("json", "zstd?dictionary=twelve", plugins=plugins)
