"""fernet in hivemem's pipeline: every combination, configuration changes, key rotation."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.fernet import Fernet
from hivemem.errors import DecryptionError, UnencryptedFrame
from hivemem.pipeline import Pipeline, read_header
from hivemem.plugins import Plugins
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

_text = st.text(st.characters(exclude_categories=("Cs",)))

#: JSON-able values (no NaN: it never compares equal to itself)
json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _text,
    lambda children: st.lists(children, max_size=6) | st.dictionaries(_text, children, max_size=6),
    max_leaves=30,
)

#: tests through zstd need hivemem-zstd: skipped without it, failed under CI
needs_zstd = pytest.mark.hivemem_requires("hivemem_zstd")
OLD = Fernet.generate_key().decode()
NEW = Fernet.generate_key().decode()

COMBOS = [
    pytest.param(
        ser,
        comp,
        enc,
        marks=[needs_zstd] if comp == "zstd" else [],
        id=f"{ser}-{comp}-{enc}",
    )
    for ser in ("json", "pickle")
    for comp in ("none", "zlib", "zstd")
    for enc in ("none", "fernet")
]

VALUES: list[tuple[str, Any]] = [
    ("entity/user123", {"name": "Ada", "prefs": {"lang": "en"}, "score": 0.75}),
    ("conv/agent1", [{"role": "user", "content": "plan the trip " * 40}] * 5),
    ("q/s:1:2", {"move_left": 0.125}),
    ("tiny", 7),
]


@pytest.mark.parametrize(("ser", "comp", "enc"), COMBOS)
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=60)
@given(value=json_values)
def test_round_trip_every_combination(
    plugins: Plugins, ser: str, comp: str, enc: str, value: Any
) -> None:
    pipe = Pipeline(
        ser,
        f"{comp}?min_size=0" if comp != "none" else comp,
        enc,
        options={"fernet": {"keys": f"{NEW},{OLD}"}},
        plugins=plugins,
    )
    frame = pipe.encode(value, key="k")
    assert pipe.decode(frame, key="k") == value
    assert dict(read_header(frame)[0]).get("encryptor", "none") == enc


def _frames(pipe: Pipeline) -> dict[str, bytes]:
    return {key: pipe.encode(value, key=key) for key, value in VALUES}


@needs_zstd
def test_reading_across_configuration_changes(plugins: Plugins) -> None:
    keys = {"fernet": {"keys": OLD}}
    generations = [
        _frames(Pipeline("json", plugins=plugins)),
        _frames(Pipeline("json", "zstd", plugins=plugins)),
        _frames(Pipeline("json", "zstd", "fernet", options=keys, plugins=plugins)),
    ]
    assert ("compressor", "zstd") in read_header(generations[1]["conv/agent1"])[0]
    assert ("encryptor", "fernet") in read_header(generations[2]["conv/agent1"])[0]
    newest = Pipeline("json", "zstd", "fernet", options=keys, plugins=plugins)
    for key, value in VALUES:  # written before encryption was on: refused, never trusted
        for frames in generations[:2]:
            with pytest.raises(UnencryptedFrame) as info:
                newest.decode(frames[key], key=key)
            assert info.value.key == key
        assert newest.decode(generations[2][key], key=key) == value
    # the plaintext-migration mode (rotate-keys --encrypt-plaintext) reads every generation
    migrating = Pipeline(
        "json", "zstd", "fernet", options=keys, plugins=plugins, accept_plaintext=True
    )
    for frames in generations:
        for key, value in VALUES:
            assert migrating.decode(frames[key], key=key) == value
            again = migrating.reencode(frames[key], key=key)
            frame = frames[key] if again is None else again
            assert newest.decode(frame, key=key) == value
    # with encryption on, no plaintext reaches the frame
    for frame in generations[2].values():
        assert b"plan the trip" not in frame and b"Ada" not in frame


@pytest.mark.parametrize("comp", ["none", "zlib", pytest.param("zstd", marks=needs_zstd)])
def test_rotated_keys_read_old_frames(plugins: Plugins, comp: str) -> None:
    before = Pipeline("json", comp, "fernet", options={"fernet": {"keys": OLD}}, plugins=plugins)
    old_frames = _frames(before)
    rotated = Pipeline(
        "json", comp, "fernet", options={"fernet": {"keys": [NEW, OLD]}}, plugins=plugins
    )
    new_frames = _frames(rotated)
    for key, value in VALUES:
        assert rotated.decode(old_frames[key], key=key) == value
        assert rotated.encryptor is not None
        assert rotated.encryptor.needs_reencrypt(read_payload(old_frames[key])) is True
        assert rotated.encryptor.needs_reencrypt(read_payload(new_frames[key])) is False
        # the pipeline's rotation primitive rewrites old frames under the new primary
        rewritten = rotated.reencode(old_frames[key], key=key)
        assert rewritten is not None
        assert rotated.reencode(rewritten, key=key) is None
        assert rotated.reencode(new_frames[key], key=key) is None
        new_frames[key + "#rewritten"] = rewritten
    # once the old key is removed: new and rewritten frames read, old ones fail naming the record
    only_new = Pipeline("json", comp, "fernet", options={"fernet": {"keys": NEW}}, plugins=plugins)
    for key, value in VALUES:
        assert only_new.decode(new_frames[key], key=key) == value
        assert only_new.decode(new_frames[key + "#rewritten"], key=key) == value
        with pytest.raises(DecryptionError, match=f"'{key}'") as info:
            only_new.decode(old_frames[key], key=key)
        assert info.value.key == key


def read_payload(frame: bytes) -> bytes:
    """The encryptor's payload inside a frame."""
    return frame[read_header(frame)[1] :]


def test_tampered_frame_payload_is_a_decryption_error(plugins: Plugins) -> None:
    pipe = Pipeline("json", "none", "fernet", options={"fernet": {"keys": NEW}}, plugins=plugins)
    frame = pipe.encode({"v": "x" * 100}, key="e/1")
    _, pos = read_header(frame)
    payload = bytearray(frame[pos:])
    payload[40] ^= 0x01
    import struct
    import zlib

    # re-seal the frame checksum so only the encryptor can notice the change
    header = frame[: pos - 8]
    forged = header + struct.pack(">II", len(payload), zlib.crc32(payload)) + bytes(payload)
    with pytest.raises(DecryptionError, match="'e/1'"):
        pipe.decode(forged, key="e/1")


def test_missing_key_at_write_time_is_a_config_error(plugins: Plugins) -> None:
    from hivemem.errors import ConfigError

    with pytest.raises(ConfigError, match="HIVEMEM_FERNET_KEYS"):
        Pipeline("json", "none", "fernet", plugins=plugins)
