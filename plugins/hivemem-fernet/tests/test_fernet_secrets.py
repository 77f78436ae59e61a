"""Keys never appear in reprs, exception messages or log records."""

from __future__ import annotations

import copy
import logging
import pickle
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from hivemem.errors import HivememError
from hivemem.pipeline import Pipeline
from hivemem.plugins import Plugins
from hivemem_fernet.encryptor import FernetEncryptor


def _texts(exc: BaseException) -> list[str]:
    """Every message reachable from ``exc``: itself, its args, its cause/context chain."""
    out: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        out.extend([str(current), repr(current), *(repr(arg) for arg in current.args)])
        current = current.__cause__ or current.__context__
    return out


def _provoked_errors(tmp_path: Path, key: str, plugins: Plugins) -> list[BaseException]:
    other = Fernet.generate_key().decode()
    errors: list[BaseException] = []

    def catch(fn: object) -> None:
        try:
            fn()  # type: ignore[operator]
        except Exception as exc:
            errors.append(exc)
        else:
            raise AssertionError(f"{fn} did not raise")

    enc = FernetEncryptor(keys=[key])
    token = enc.encode(b"payload")
    catch(lambda: FernetEncryptor(keys=[other]).decode(token))
    catch(lambda: enc.decode(token[:-1]))
    catch(lambda: enc.decode(token[:10] + b"\0" + token[11:]))
    catch(lambda: enc.decode(b""))
    catch(lambda: FernetEncryptor(keys=[key, key[:-2]]))
    catch(lambda: FernetEncryptor(keys=[key[1:] + "!"]))
    catch(lambda: FernetEncryptor(keys=f"{key},{key}extra"))
    catch(lambda: FernetEncryptor(keys=[key, 42]))
    catch(lambda: pickle.dumps(enc))
    catch(lambda: copy.deepcopy(enc))
    (tmp_path / "k").write_text(f"{key}\n{key}broken\n")
    catch(lambda: FernetEncryptor(key_file=tmp_path / "k"))
    pipe = Pipeline("json", "none", "fernet", options={"fernet": {"keys": key}}, plugins=plugins)
    frame = pipe.encode({"v": 1}, key="agent/7")
    wrong = Pipeline("json", "none", "fernet", options={"fernet": {"keys": other}}, plugins=plugins)
    catch(lambda: wrong.decode(frame, key="agent/7"))
    catch(lambda: Pipeline("json", "none", f"fernet?keys={key}xx", plugins=plugins))
    return errors


def test_key_text_absent_from_every_error(tmp_path: Path, plugins: Plugins) -> None:
    key = Fernet.generate_key().decode()
    errors = _provoked_errors(tmp_path, key, plugins)
    assert len(errors) == 13
    assert all(isinstance(e, HivememError | TypeError) for e in errors)
    fragments = {key, key[:-2], key[1:], key[:20], key[10:30]}
    for exc in errors:
        for text in _texts(exc):
            for fragment in fragments:
                assert fragment not in text, f"key material in {type(exc).__name__}: {text}"


def test_key_text_absent_from_repr_and_str(key1: str, key2: str, plugins: Plugins) -> None:
    enc = FernetEncryptor(keys=[key1, key2])
    pipe = Pipeline(
        "json", "none", "fernet", options={"fernet": {"keys": [key1, key2]}}, plugins=plugins
    )
    for text in (repr(enc), str(enc), repr(pipe), str(pipe), repr(pipe.encryptor)):
        assert key1 not in text and key2 not in text
        assert key1[:16] not in text and key2[:16] not in text
    assert not hasattr(enc, "__dict__")  # nothing stashed on the instance by accident


def test_nothing_logged_with_key_material(
    caplog: pytest.LogCaptureFixture, key1: str, key2: str, plugins: Plugins
) -> None:
    caplog.set_level(logging.DEBUG)
    pipe = Pipeline(
        "json", "none", "fernet", options={"fernet": {"keys": [key1, key2]}}, plugins=plugins
    )
    frame = pipe.encode({"secret": "plan"}, key="a/1")
    assert pipe.decode(frame, key="a/1") == {"secret": "plan"}
    with pytest.raises(HivememError):
        Pipeline(
            "json", "none", "fernet", options={"fernet": {"keys": key2}}, plugins=plugins
        ).decode(frame[:-1], key="a/1")
    for record in caplog.records:
        text = record.getMessage()
        assert key1 not in text and key2 not in text
