"""The fernet encryptor on its own: keys, round-trips, tampering, rotation checks."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from hivemem.errors import ConfigError, DecryptionError
from hivemem_fernet.encryptor import FernetEncryptor, generate_key, key_id
from hypothesis import given, settings
from hypothesis import strategies as st

FIXED_A = Fernet.generate_key().decode()
FIXED_B = Fernet.generate_key().decode()
ENC_AB = FernetEncryptor(keys=[FIXED_A, FIXED_B])


def test_keys_option_comma_separated_primary_first(key1: str, key2: str) -> None:
    enc = FernetEncryptor(keys=f" {key1} , {key2} ")
    assert enc.key_ids == (key_id(key1), key_id(key2))
    token = enc.encode(b"hello")
    # the primary alone decrypts new values
    assert Fernet(key1).decrypt(base64.urlsafe_b64encode(token)) == b"hello"


def test_keys_option_as_list_and_bytes(key1: str, key2: str) -> None:
    enc = FernetEncryptor(keys=[key1.encode(), key2])
    assert enc.decode(enc.encode(b"x")) == b"x"
    assert enc.key_ids[0] == key_id(key1)


def test_env_keys_used_when_no_option(
    monkeypatch: pytest.MonkeyPatch, key1: str, key2: str
) -> None:
    monkeypatch.setenv("HIVEMEM_FERNET_KEYS", f"{key2},{key1}")
    enc = FernetEncryptor()
    assert enc.key_ids == (key_id(key2), key_id(key1))
    assert "HIVEMEM_FERNET_KEYS" in repr(enc)
    # the option wins over the environment
    assert FernetEncryptor(keys=key1).key_ids == (key_id(key1),)


def test_key_file_option_and_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, key1: str, key2: str
) -> None:
    path = tmp_path / "keys"
    path.write_text(f"# primary first\n{key1}\n\n{key2}\n")
    assert FernetEncryptor(key_file=path).key_ids == (key_id(key1), key_id(key2))
    monkeypatch.setenv("HIVEMEM_FERNET_KEY_FILE", str(path))
    assert FernetEncryptor().key_ids == (key_id(key1), key_id(key2))
    # HIVEMEM_FERNET_KEYS comes before any key file
    monkeypatch.setenv("HIVEMEM_FERNET_KEYS", key2)
    assert FernetEncryptor(key_file=path).key_ids == (key_id(key2),)


def test_no_key_says_which_setting_to_provide() -> None:
    with pytest.raises(ConfigError) as info:
        FernetEncryptor()
    message = str(info.value)
    for setting in ("'keys'", "HIVEMEM_FERNET_KEYS", "'key_file'", "HIVEMEM_FERNET_KEY_FILE"):
        assert setting in message
    with pytest.raises(ConfigError, match="no key is configured"):
        FernetEncryptor(keys=" , ")


def test_key_file_problems(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"does not exist"):
        FernetEncryptor(key_file=tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.write_text("# nothing here\n\n")
    with pytest.raises(ConfigError, match="holds no key"):
        FernetEncryptor(key_file=empty)


@pytest.mark.parametrize("position", [1, 2, 3])
def test_malformed_key_is_named_by_position(key1: str, position: int) -> None:
    bad = "not-a-valid-fernet-key-" + "x" * position
    keys = [key1, key1, key1]
    keys[position - 1] = bad
    with pytest.raises(ConfigError, match=f"key #{position} ") as info:
        FernetEncryptor(keys=keys)
    assert bad not in str(info.value)


def test_generate_key_is_a_fresh_valid_key() -> None:
    a, b = generate_key(), generate_key()
    assert a != b and len(a) == 44
    Fernet(a)


@settings(max_examples=200)
@given(data=st.binary(max_size=4096))
def test_round_trip_arbitrary_bytes(data: bytes) -> None:
    token = ENC_AB.encode(data)
    assert data not in token or len(data) < 4
    assert ENC_AB.decode(token) == data
    # raw bytes of a standard Fernet token (version 0x80, 57 bytes of overhead + padding)
    assert token[0] == 0x80
    assert len(token) == 1 + 8 + 16 + (len(data) // 16 + 1) * 16 + 32


def test_encryption_is_randomised() -> None:
    assert ENC_AB.encode(b"same") != ENC_AB.encode(b"same")


@settings(max_examples=200)
@given(data=st.binary(max_size=300), where=st.integers(min_value=0), bit=st.integers(0, 7))
def test_any_flipped_bit_is_a_decryption_error(data: bytes, where: int, bit: int) -> None:
    token = bytearray(ENC_AB.encode(data))
    token[where % len(token)] ^= 1 << bit
    with pytest.raises(DecryptionError):
        ENC_AB.decode(bytes(token))


@given(data=st.binary(max_size=100))
def test_every_truncation_is_a_decryption_error(data: bytes) -> None:
    token = ENC_AB.encode(data)
    for cut in range(len(token)):
        with pytest.raises(DecryptionError):
            ENC_AB.decode(token[:cut])
    with pytest.raises(DecryptionError):
        ENC_AB.decode(token + b"\0")


def test_wrong_key_is_a_decryption_error(key1: str, key2: str) -> None:
    token = FernetEncryptor(keys=key1).encode(b"secret agent plan")
    with pytest.raises(DecryptionError, match="not configured") as info:
        FernetEncryptor(keys=key2).decode(token)
    assert key_id(key2) in str(info.value)
    assert info.value.key is None  # the pipeline adds the record key


def test_needs_reencrypt(key1: str, key2: str) -> None:
    old = FernetEncryptor(keys=key1)
    rotated = FernetEncryptor(keys=[key2, key1])
    old_token = old.encode(b"v")
    new_token = rotated.encode(b"v")
    assert rotated.needs_reencrypt(old_token) is True
    assert rotated.needs_reencrypt(new_token) is False
    assert rotated.decode(old_token) == b"v"
    assert rotated.needs_reencrypt(os.urandom(80)) is True
    assert old.needs_reencrypt(old_token) is False
