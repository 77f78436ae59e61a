"""The key layout: escaping is injective, hash tags keep what changes together in one slot."""

from __future__ import annotations

from hivemem.testing.helpers import TRICKY_STRINGS
from hivemem_redis.keys import KeyLayout, escape, unescape
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

names = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20) | st.sampled_from(
    TRICKY_STRINGS[:-2]
)


@given(names)
def test_escape_round_trips_and_has_no_separators(name: str) -> None:
    raw = escape(name)
    assert unescape(raw) == name.encode("utf-8")
    assert not {ord(":"), ord("{"), ord("}")} & set(raw)


@given(names, names, names, names)
def test_different_tuples_never_share_a_key(ns1: str, k1: str, ns2: str, k2: str) -> None:
    layout = KeyLayout(b"p:")
    first, second = layout.kind(ns1, k1), layout.kind(ns2, k2)
    if (ns1, k1) != (ns2, k2):
        assert first.base != second.base
        assert not first.base.startswith(second.base) and not second.base.startswith(first.base)
    assert layout.series(ns1, k1).base != layout.kind(ns1, k1).base
    assert layout.namespace(ns1).base != layout.kind(ns1, k1).base


@given(names, names, st.lists(names, min_size=1, max_size=5))
def test_one_kind_lives_in_one_slot(ns: str, kind: str, ids: list[str]) -> None:
    kind_keys = KeyLayout().kind(ns, kind)
    slots = {key_slot(k) for k in (kind_keys.index, kind_keys.expiry, kind_keys.counter_ids)}
    slots |= {key_slot(kind_keys.record(i)) for i in ids}
    slots |= {key_slot(kind_keys.counters(i)) for i in ids}
    assert len(slots) == 1


def test_kinds_spread_over_slots() -> None:
    layout = KeyLayout()
    slots = {key_slot(layout.kind("agent1", f"kind{i}").index) for i in range(200)}
    assert len(slots) > 150


def test_documented_example() -> None:
    kind_keys = KeyLayout(b"datamcp:").kind("example", "user:profile")
    assert kind_keys.record("a{b}%") == b"datamcp:{k:example:user%3Aprofile}:r:a%7Bb%7D%25"
