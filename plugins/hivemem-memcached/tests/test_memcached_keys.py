"""Key derivation, rendezvous hashing and URL parsing (no server needed)."""

from __future__ import annotations

import re

import pytest
from hivemem.plugin import ConfigError
from hivemem_memcached.cache import exptime
from hivemem_memcached.keys import derive_key, derive_lease_key, pick
from hivemem_memcached.settings import ServerAddress, parse_url
from hypothesis import given
from hypothesis import strategies as st

# what memcached's text protocol accepts as a key token
SAFE_KEY = re.compile(r"^[!-~]{1,250}$")


@given(st.text(max_size=2000), st.text(alphabet="abc:-_", max_size=20))
def test_derived_keys_are_protocol_safe(key: str, prefix: str) -> None:
    derived = derive_key(prefix, key)
    lease = derive_lease_key(prefix, key)
    assert SAFE_KEY.match(derived), derived
    assert SAFE_KEY.match(lease), lease
    assert derived.startswith(prefix)
    assert derived != lease


@given(st.text(), st.text())
def test_distinct_keys_derive_distinct_keys(a: str, b: str) -> None:
    assert (derive_key("p:", a) == derive_key("p:", b)) == (a == b)


def test_lone_surrogates_and_long_ids_derive() -> None:
    keys = ["\ud800", "\udfff", "x" * 10_000, "", "\r\nflush_all\r\n"]
    derived = {derive_key("hm:", k) for k in keys}
    assert len(derived) == len(keys)
    assert all(len(d) == len("hm:") + 64 for d in derived)


def test_rendezvous_moves_only_the_lost_servers_keys() -> None:
    servers = ["a:1", "b:2", "c:3"]
    ids = [s.encode() for s in servers]
    keys = [derive_key("hm:", f"key{i}") for i in range(3000)]
    before = {k: pick(servers, ids, k) for k in keys}
    counts = {s: sum(1 for v in before.values() if v == s) for s in servers}
    # each server owns a fair share (expected 1000 each)
    assert all(800 < n < 1200 for n in counts.values()), counts
    after = {k: pick(servers[:2], ids[:2], k) for k in keys}
    moved = [k for k in keys if before[k] != after[k]]
    assert moved and all(before[k] == "c:3" for k in moved)
    assert len(moved) == counts["c:3"]


def test_url_servers_and_options() -> None:
    s = parse_url(
        "memcached://h1:11300,h2,[::1]:11400?timeout=0.5&pool_size=8&prefix=app:"
        "&max_value_size=1000&ttl=30&down_after=3&retry_after=0.2&max_retry_after=2"
    )
    assert s.servers == (
        ServerAddress("h1", 11300), ServerAddress("h2", 11211), ServerAddress("::1", 11400)
    )
    assert (s.timeout, s.pool_size, s.prefix, s.max_value_size) == (0.5, 8, "app:", 1000)
    assert (s.ttl, s.down_after, s.retry_after, s.max_retry_after) == (30, 3, 0.2, 2)
    assert s.servers[2].label == "[::1]:11400"
    # keyword options override the query
    assert parse_url("memcached://h?timeout=1", timeout=2).timeout == 2


def test_default_size_limit_fits_a_memcached_item() -> None:
    s = parse_url("memcached://h")
    assert 1_000_000 < s.max_value_size < 1024 * 1024
    assert s.timeout == 0.25


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("redis://h", "memcached://"),
        ("memcached://", "names no server"),
        ("memcached://h:notaport", "non-numeric port"),
        ("memcached://h:0", "out of range"),
        ("memcached://h,h", "twice"),
        ("memcached://user:pw@h", "credentials"),
        ("memcached://h/path", "no path"),
        ("memcached://h?bogus=1", "bogus"),
        ("memcached://h?timeout=0", "timeout"),
        ("memcached://h?timeout=nan", "finite"),
        ("memcached://h?pool_size=0", "pool_size"),
        ("memcached://h?prefix=a%20b", "prefix"),
        ("memcached://h?prefix=" + "p" * 200, "prefix"),
    ],
)
def test_bad_urls_are_config_errors(url: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(needle)) as info:
        parse_url(url)
    assert "pw" not in str(info.value)


@pytest.mark.parametrize(
    ("query", "options", "message"),
    [
        ("timeout=0", {}, "memcached option timeout='0': must be > 0"),
        ("timeout=nan", {}, "memcached option timeout='nan': must be finite"),
        ("timeout=soon", {}, "memcached option timeout='soon': expected a number of seconds"),
        ("pool_size=0", {}, "memcached option pool_size='0': must be >= 1"),
        ("pool_size=1.5", {}, "memcached option pool_size='1.5': expected an integer"),
        ("ttl=-1", {}, "memcached option ttl='-1': must be >= 0"),
        ("ttl=", {}, "memcached option ttl='': expected a number of seconds"),
        ("", {"down_after": 0}, "memcached option down_after=0: must be >= 1"),
        ("", {"retry_after": True}, "memcached option retry_after=True: expected a number"),
        ("prefix=a%20b", {}, "memcached option prefix='a b': must be at most 150 printable"),
    ],
)
def test_option_errors_name_the_option_and_value(
    query: str, options: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_url(f"memcached://h?{query}", **options)
    assert str(info.value).startswith(message), str(info.value)


def test_keyword_options_are_coerced_like_query_options() -> None:
    from_query = parse_url("memcached://h?timeout=2&pool_size=3&ttl=7&max_retry_after=0.1")
    from_keywords = parse_url(
        "memcached://h", timeout=2, pool_size="3", ttl=7.0, max_retry_after=0.1
    )
    assert from_query == from_keywords
    assert from_query.max_retry_after == from_query.retry_after == 0.5  # never below the first
    with pytest.raises(ConfigError, match=r"unknown memcached option\(s\): bogus; known: "):
        parse_url("memcached://h", bogus=1)


def test_exptime_never_outlives_ttl_of_a_second_or_more() -> None:
    assert exptime(None) == 0
    assert exptime(0) == 0
    assert exptime(-1) is None
    assert exptime(0.2) == 1
    assert exptime(1.0) == 1
    assert exptime(59.9) == 59
    # past 30 days memcached reads exptime as a Unix time
    assert exptime(40 * 24 * 3600) > 1_000_000_000
