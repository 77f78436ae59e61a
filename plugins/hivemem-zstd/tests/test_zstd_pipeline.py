"""zstd inside hivemem's value pipeline, for every serializer x compressor x encryptor."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.fernet import Fernet
from hivemem.errors import CodecNotInstalled
from hivemem.pipeline import Pipeline, read_header
from hivemem.plugins import Plugins, make_plugins
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

#: JSON-able values (no NaN: it never compares equal to itself)
json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(st.characters(exclude_categories=("Cs",))),
    lambda children: (
        st.lists(children, max_size=6)
        | st.dictionaries(
            st.text(st.characters(exclude_categories=("Cs",)), max_size=8), children, max_size=6
        )
    ),
    max_leaves=30,
)

#: combinations with fernet need hivemem-fernet: skipped without it, failed under CI
needs_fernet = pytest.mark.hivemem_requires("hivemem_fernet")
KEY = Fernet.generate_key().decode()

COMBOS = [
    pytest.param(
        ser,
        comp,
        enc,
        marks=[needs_fernet] if enc == "fernet" else [],
        id=f"{ser}-{comp}-{enc}",
    )
    for ser in ("json", "pickle")
    for comp in ("none", "zlib", "zstd")
    for enc in ("none", "fernet")
]


def _pipeline(plugins: Plugins, ser: str, comp: str, enc: str) -> Pipeline:
    return Pipeline(
        ser,
        f"{comp}?min_size=0" if comp != "none" else comp,
        enc,
        options={"fernet": {"keys": KEY}},
        plugins=plugins,
    )


@pytest.mark.parametrize(("ser", "comp", "enc"), COMBOS)
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=60)
@given(value=json_values)
def test_round_trip_every_combination(
    plugins: Plugins, ser: str, comp: str, enc: str, value: Any
) -> None:
    pipe = _pipeline(plugins, ser, comp, enc)
    frame = pipe.encode(value, key="k")
    assert pipe.decode(frame, key="k") == value
    stages, _ = read_header(frame)
    names = dict(stages)
    assert names["serializer"] == ser
    assert names.get("encryptor", "none") == enc
    assert names.get("compressor", "none") in ("none", comp)


@pytest.mark.parametrize(("ser", "comp", "enc"), COMBOS)
def test_compressible_values_record_the_compressor(
    plugins: Plugins, ser: str, comp: str, enc: str
) -> None:
    pipe = _pipeline(plugins, ser, comp, enc)
    value = {
        "history": [{"role": "user", "content": f"tell me more about item {i}"} for i in range(200)]
    }
    frame = pipe.encode(value, key="conv/1")
    names = dict(read_header(frame)[0])
    assert names.get("compressor", "none") == comp
    assert pipe.decode(frame, key="conv/1") == value
    if enc == "none" and comp != "none":
        assert len(frame) < len(pipe.serializer.dumps(value)) // 3


def test_small_values_are_stored_uncompressed_and_say_so(plugins: Plugins) -> None:
    pipe = Pipeline("json", "zstd?min_size=64", plugins=plugins)
    small = {"q": 0.5}
    frame = pipe.encode(small)
    assert read_header(frame)[0] == [("serializer", "json")]
    big = {"q": [0.5] * 100}
    assert ("compressor", "zstd") in read_header(pipe.encode(big))[0]
    # a reader configured for zstd reads both, and a reader without zstd reads the small one
    plain = Pipeline("json", plugins=plugins)
    assert plain.decode(frame) == small
    assert pipe.decode(pipe.encode(big)) == big


def test_frame_naming_zstd_without_the_plugin_says_what_to_install(plugins: Plugins) -> None:
    frame = Pipeline("json", "zstd", plugins=plugins).encode({"text": "x" * 500})
    without = make_plugins(blocked=["zstd"], allowed=[])
    with pytest.raises(CodecNotInstalled, match=r"'zstd'.*hivemem-zstd.*'entity/1'"):
        Pipeline("json", plugins=without, read_codecs=["zstd"]).decode(frame, key="entity/1")


def test_reencode_after_turning_zstd_on(plugins: Plugins) -> None:
    value = {"text": "y" * 500}
    old = Pipeline("json", plugins=plugins).encode(value)
    pipe = Pipeline("json", "zstd", plugins=plugins)
    assert pipe.decode(old) == value
    new = pipe.reencode(old)
    assert new is not None and ("compressor", "zstd") in read_header(new)[0]
    assert pipe.decode(new) == value
    assert pipe.reencode(new) is None
