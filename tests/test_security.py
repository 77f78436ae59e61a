"""Whatever an attacker writes into a store or a cache is input, never code, never a value.

For every store -- SQLite (a file), Redis (one node), Redis Cluster (three
masters) and a Memcached tier in front of SQLite -- and every codec
configuration -- ``json``; ``zstd``; ``zstd`` + ``fernet`` -- bytes are written
straight into the store, behind the pipeline's back, and then read through
:func:`hivemem.open_memory`:

* **Backends** (``backend.put``/``backend.append``, which bypass the pipeline):
  ``get``, ``get_many``, ``list`` and ``read_series`` raise the specific error
  naming the record -- :class:`~hivemem.errors.UntrustedCodec` for ``pickle``,
  for unknown codecs and for installed codecs the reader does not allow,
  :class:`~hivemem.errors.UnencryptedFrame` for plaintext under Fernet,
  :class:`~hivemem.errors.DecryptionError` for a frame under a foreign key or
  with a tampered ciphertext, :class:`~hivemem.errors.FrameError` for
  truncated, garbled or misordered frames. The ``pickle`` frame's payload
  creates a canary file when unpickled (shown to work when the reader is
  configured to trust pickle), and the file never appears. Honest records
  still read afterwards, and an ordinary write repairs the attacked record.
* **Redis record strings** with a truncated or non-hex header (written with a
  raw redis-py client at the record's real key) are a ``FrameError`` naming
  the record, never a ``ValueError``.
* **Memcached** (raw ``aiomcache`` writes): a forged entry -- any of the frames
  above unsealed or sealed under another secret, a valid sealed entry copied
  from another record's key, a sealed entry with a bad version byte, cut
  short or emptied -- written at the key the tier really uses *and* at every
  key computable from public names is a miss counted as ``forged``; the
  reader returns the backend's true value. An attacker who knows only public
  names cannot make a reader return a value of its choosing, while the same
  write does reach a tier that runs with ``trust_remote_cache = true`` (which
  proves the public key names are the right ones).
"""

from __future__ import annotations

import json
import os
import pathlib
import pickle
import struct
import uuid
import zlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomcache
import hivemem
import pytest
import redis
from hivemem.errors import (
    ConfigError,
    DecryptionError,
    FrameError,
    UnencryptedFrame,
    UntrustedCodec,
)
from hivemem.memory import Memory, _cache_key
from hivemem.pipeline import Pipeline, read_header
from hivemem.sealing import SEAL_VERSION, TAG_SIZE, SealedCache
from hivemem.testing.helpers import build_frame
from hivemem_fernet import generate_key
from hivemem_memcached import MemcachedCache
from hivemem_memcached.keys import derive_key
from hivemem_memcached.testing import MemcachedServer
from hivemem_redis.backend import RedisBackend
from hivemem_redis.testing import RedisCluster, RedisServer
from redis.cluster import ClusterNode
from redis.cluster import RedisCluster as RawCluster

pytestmark = pytest.mark.usefixtures("hivemem_runner")

NS = "agents"
KIND = "doc"
BAD = "bad"
LABEL = f"{KIND}/{BAD}"
SERIES = "events"
CLEAN_SERIES = "clean"
#: the record a Memcached attacker targets, and another record it may copy entries from
TARGET, OTHER = "target", "other"

#: honest values; long and repetitive enough that zstd really compresses them
VALUE_A = {"owner": "honest", "id": "a", "notes": "first honest record " * 8}
VALUE_C = {"owner": "honest", "id": "c", "notes": "second honest record " * 8}
TRUE_VALUE = {"owner": "honest", "balance": 10, "notes": "the true value " * 8}
OTHER_VALUE = {"owner": "honest", "balance": 99, "notes": "another true value " * 8}
REPAIRED = {"owner": "honest", "repaired": True, "notes": "written again " * 8}
#: what an attacker would like a reader to get
CHOSEN = {"owner": "attacker", "admin": True, "notes": "chosen by the attacker " * 8}

KEY = generate_key()
#: a key the readers under test do not have
FOREIGN_KEY = generate_key()
#: the cache secret every honest process of the deployment shares
SECRET = "security-tests-cache-secret-7Qp2Lm9Xv4"
#: secrets an attacker might try (none is the deployment's)
ATTACKER_SECRETS = (b"attacker-secret-0123456789abcdef", b"changeme-changeme", b"hivemem")

CONFIGS: dict[str, dict[str, Any]] = {
    "json": {"serializer": "json", "compressor": "none", "encryptor": "none"},
    "zstd": {"serializer": "json", "compressor": "zstd", "encryptor": "none"},
    "zstd+fernet": {
        "serializer": "json",
        "compressor": "zstd",
        "encryptor": "fernet",
        "codec_options": {"fernet": {"keys": KEY}},
    },
}
#: the stages an honest frame carries under each configuration
HONEST_STAGES: dict[str, list[tuple[str, str]]] = {
    "json": [("serializer", "json")],
    "zstd": [("serializer", "json"), ("compressor", "zstd")],
    "zstd+fernet": [("serializer", "json"), ("compressor", "zstd"), ("encryptor", "fernet")],
}

_ENV_PREFIXES = ("HIVEMEM_", "MEMORY_", "REDIS_", "MONGODB_")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No HIVEMEM_*/seed variable of the surrounding shell may change what is tested."""
    for name in list(os.environ):
        if name.startswith(_ENV_PREFIXES):
            monkeypatch.delenv(name)


# -- the canary ---------------------------------------------------------------------------


class Canary:
    """Unpickling this creates the file at ``path`` (a stand-in for any code an attacker runs)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (pathlib.Path(self.path).touch, ())


def canary_payload(path: Path) -> bytes:
    """Pickle bytes that create ``path`` when unpickled."""
    return pickle.dumps(Canary(path), protocol=pickle.HIGHEST_PROTOCOL)


def test_canary_payload_runs_code_when_unpickled(tmp_path: Path) -> None:
    """The payload really is an exploit: unpickling it creates the file."""
    proof = tmp_path / "proof"
    pickle.loads(canary_payload(proof))
    assert proof.exists()


def test_pickle_frame_is_a_working_exploit_for_a_reader_that_trusts_pickle(
    tmp_path: Path,
) -> None:
    """The attack frame runs its code once pickle is allowed: refusing it is what protects."""
    proof = tmp_path / "proof"
    frame = build_frame([("serializer", "pickle")], canary_payload(proof))
    Pipeline("json", read_codecs=["pickle"]).decode(frame, "doc/x")
    assert proof.exists()


# -- attack frames ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Ctx:
    """What an attack frame is built from: the reader's own pipeline and the canary's path."""

    pipeline: Pipeline
    canary: Path


def _valid(ctx: Ctx, value: Any = CHOSEN) -> bytes:
    """A frame the reader trusts (the strongest starting point for a forgery)."""
    return ctx.pipeline.encode(value, "doc/x")


def _flip_payload(frame: bytes, *, fix_crc: bool) -> bytes:
    """``frame`` with one payload byte changed; with ``fix_crc`` the checksum still matches."""
    _, pos = read_header(frame)
    payload = bytearray(frame[pos:])
    payload[len(payload) // 2] ^= 0x55
    crc = zlib.crc32(payload) if fix_crc else struct.unpack_from(">I", frame, pos - 4)[0]
    return frame[: pos - 8] + struct.pack(">II", len(payload), crc) + bytes(payload)


@dataclass(frozen=True)
class Attack:
    """One forged frame and the error a reader must raise for it."""

    name: str
    build: Callable[[Ctx], bytes]
    error: type[FrameError]
    #: the codec an UntrustedCodec must name
    codec: str | None = None
    #: only meaningful when the reader requires encryption
    fernet_only: bool = False

    def applies(self, config: str) -> bool:
        """Whether this attack is an attack under ``config``."""
        return not self.fernet_only or "fernet" in config


ATTACKS: tuple[Attack, ...] = (
    Attack(
        "pickle",
        lambda c: build_frame([("serializer", "pickle")], canary_payload(c.canary)),
        UntrustedCodec,
        "pickle",
    ),
    Attack(  # pickle behind the stages a Fernet reader trusts
        "pickle_behind_trusted_stages",
        lambda c: build_frame(
            [("serializer", "pickle"), ("compressor", "zstd"), ("encryptor", "fernet")],
            canary_payload(c.canary),
        ),
        UntrustedCodec,
        "pickle",
    ),
    Attack(
        "unknown_serializer",
        lambda c: build_frame([("serializer", "yaml-unsafe")], b"!!python/object/apply:os.system"),
        UntrustedCodec,
        "yaml-unsafe",
    ),
    Attack(
        "unknown_compressor",
        lambda c: build_frame([("serializer", "json"), ("compressor", "lzx-9")], b"\x00" * 40),
        UntrustedCodec,
        "lzx-9",
    ),
    Attack(  # installed, and would decode to the attacker's value, but not allowed here
        "installed_codec_not_allowed",
        lambda c: build_frame(
            [("serializer", "json"), ("compressor", "zlib")],
            zlib.compress(json.dumps(CHOSEN).encode()),
        ),
        UntrustedCodec,
        "zlib",
    ),
    Attack(
        "stages_out_of_order",
        lambda c: build_frame(
            [("serializer", "json"), ("encryptor", "fernet"), ("compressor", "zstd")], b"{}"
        ),
        FrameError,
    ),
    Attack("truncated", lambda c: _valid(c)[:-7], FrameError),
    Attack("truncated_header", lambda c: _valid(c)[:5], FrameError),
    Attack("garbled", lambda c: _flip_payload(_valid(c), fix_crc=False), FrameError),
    Attack("not_a_frame", lambda c: json.dumps(CHOSEN).encode(), FrameError),
    Attack(
        "plaintext",
        lambda c: Pipeline("json", "zstd", "none").encode(CHOSEN),
        UnencryptedFrame,
        fernet_only=True,
    ),
    Attack(
        "foreign_key",
        lambda c: Pipeline(
            "json", "zstd", "fernet", options={"fernet": {"keys": FOREIGN_KEY}}
        ).encode(CHOSEN),
        DecryptionError,
        fernet_only=True,
    ),
    Attack(  # the checksum matches: only the ciphertext's MAC can tell
        "tampered_ciphertext",
        lambda c: _flip_payload(_valid(c), fix_crc=True),
        DecryptionError,
        fernet_only=True,
    ),
)
ATTACK = {a.name: a for a in ATTACKS}


def assert_refused(exc: BaseException, attack: Attack, label: str, where: str = "") -> None:
    """``exc`` is exactly the error ``attack`` calls for, naming ``label`` (and the codec)."""
    assert type(exc) is attack.error, f"{attack.name} {where}: {type(exc).__name__}: {exc}"
    assert isinstance(exc, FrameError)
    assert exc.key == label
    assert repr(label) in str(exc)
    if attack.codec is not None:
        assert isinstance(exc, UntrustedCodec)
        assert exc.codec == attack.codec
        assert repr(attack.codec) in str(exc)


# -- stores ------------------------------------------------------------------------------------


@dataclass
class Store:
    """One store under attack: how to open a Memory on it, plus raw access where needed."""

    name: str
    url: str
    cache: list[str] = field(default_factory=lambda: ["local://"])
    backend_options: dict[str, Any] = field(default_factory=dict)
    #: a redis-py client of the same deployment (Redis stores only)
    raw: Any = None
    #: the memcached server of the tier (Memcached store only)
    memcached: MemcachedServer | None = None
    #: the key prefix of the tier (Memcached store only)
    mc_prefix: str = ""

    def memory(self, config: str, **settings: Any) -> Memory:
        """A Memory (not opened yet) on this store under codec configuration ``config``."""
        options: dict[str, Any] = dict(CONFIGS[config])
        if self.memcached is not None and "fernet" not in config:
            options["cache_secret"] = SECRET  # Fernet readers seal with derived keys instead
        options.update(settings)
        return hivemem.open_memory(
            self.url,
            namespace=NS,
            cache=list(self.cache),
            backend_options=dict(self.backend_options),
            **options,
        )


def _prefix() -> str:
    return f"sec{uuid.uuid4().hex[:10]}:"


@pytest.fixture(scope="module")
def raw_redis(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A plain redis-py client of the session's server (the attacker's)."""
    client = redis.Redis(host=redis_server.host, port=redis_server.port)
    yield client
    client.close()


@pytest.fixture(scope="module")
def raw_cluster(redis_cluster: RedisCluster) -> Iterator[RawCluster]:
    """A plain redis-py cluster client of the session's cluster (the attacker's)."""
    nodes = [ClusterNode(host, port) for host, port in redis_cluster.addresses]
    client = RawCluster(startup_nodes=nodes)
    yield client
    client.close()


def _memcached_store(server: MemcachedServer, db: Path) -> Store:
    prefix = _prefix()
    return Store(
        "memcached",
        f"sqlite:///{db}",
        cache=["local://", f"{server.url}?prefix={prefix}&timeout=5"],
        memcached=server,
        mc_prefix=prefix,
    )


@pytest.fixture(params=["sqlite", "redis", "cluster", "memcached"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """Each store in turn; servers are the session's, keys are private to the test."""
    kind = request.param
    if kind == "sqlite":
        return Store(kind, f"sqlite:///{tmp_path / 'store.db'}")
    if kind == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        return Store(
            kind,
            server.url,
            backend_options={"prefix": _prefix()},
            raw=request.getfixturevalue("raw_redis"),
        )
    if kind == "cluster":
        cluster: RedisCluster = request.getfixturevalue("redis_cluster")
        return Store(
            kind,
            cluster.url,
            backend_options={"prefix": _prefix()},
            raw=request.getfixturevalue("raw_cluster"),
        )
    return _memcached_store(request.getfixturevalue("memcached_server"), tmp_path / "tier.db")


@pytest.fixture(params=["redis", "cluster"])
def redis_store(request: pytest.FixtureRequest) -> Store:
    """The Redis stores only (single node, then the cluster)."""
    fixture = "redis_server" if request.param == "redis" else "redis_cluster"
    server = request.getfixturevalue(fixture)
    raw = request.getfixturevalue("raw_redis" if request.param == "redis" else "raw_cluster")
    return Store(request.param, server.url, backend_options={"prefix": _prefix()}, raw=raw)


@pytest.fixture
def mc_store(memcached_server: MemcachedServer, tmp_path: Path) -> Store:
    """A Memcached tier (private key prefix) in front of a fresh SQLite file."""
    return _memcached_store(memcached_server, tmp_path / "tier.db")


# -- shared steps ------------------------------------------------------------------------------


async def seed(memory: Memory, config: str) -> None:
    """Honest records ``a`` and ``c`` and an honest series, written through the pipeline.

    Also checks that the configuration is what it claims: the stored frame
    carries exactly the stages the configuration writes.
    """
    await memory.put(KIND, "a", VALUE_A)
    await memory.put(KIND, "c", VALUE_C)
    await memory.append(CLEAN_SERIES, VALUE_A, ts=1.0)
    await memory.append(SERIES, VALUE_C, ts=1.0)
    stored = await memory.backend.get(memory.namespace, KIND, "a")
    assert stored is not None
    assert read_header(stored.value)[0] == HONEST_STAGES[config]


async def assert_honest_data_reads(memory: Memory) -> None:
    """Every honest record and series still reads, through the caches and around them."""
    assert await memory.get(KIND, "a") == VALUE_A
    assert await memory.get(KIND, "c", use_cache=False) == VALUE_C
    assert await memory.get_many(KIND, ["a", "c"]) == {"a": VALUE_A, "c": VALUE_C}
    assert await memory.list(KIND, "a") == {"a": VALUE_A}
    assert await memory.list(KIND, "c") == {"c": VALUE_C}
    assert await memory.read_series(CLEAN_SERIES) == [(1.0, VALUE_A)]


async def assert_every_read_refuses(memory: Memory, attack: Attack, series_label: str) -> None:
    """``get`` (cached and not), ``get_many``, ``list`` and ``read_series`` raise the error."""
    reads: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        ("get", lambda: memory.get(KIND, BAD)),
        ("get again", lambda: memory.get(KIND, BAD)),
        ("get uncached", lambda: memory.get(KIND, BAD, use_cache=False)),
        ("get_many", lambda: memory.get_many(KIND, ["a", BAD, "c"])),
        ("list", lambda: memory.list(KIND)),
        ("list reversed", lambda: memory.list(KIND, reverse=True)),
    ]
    for what, read in reads:
        with pytest.raises(FrameError) as info:
            await read()
        assert_refused(info.value, attack, LABEL, what)
    with pytest.raises(FrameError) as info:
        await memory.read_series(SERIES)
    assert_refused(info.value, attack, series_label)


# -- backends: raw frames ----------------------------------------------------------------------

BACKEND_CASES = [
    pytest.param(config, attack, id=f"{config}-{attack.name}")
    for config in CONFIGS
    for attack in ATTACKS
    if attack.applies(config)
]


@pytest.mark.parametrize(("config", "attack"), BACKEND_CASES)
async def test_forged_frame_in_the_store_is_refused_naming_the_record(
    store: Store, config: str, attack: Attack, tmp_path: Path
) -> None:
    """A frame written straight into the backend raises its specific error on every read path."""
    canary = tmp_path / "canary"
    async with store.memory(config) as memory:
        await seed(memory, config)
        frame = attack.build(Ctx(memory.pipeline, canary))
        backend = memory.backend
        await backend.put(memory.namespace, KIND, BAD, frame)
        entry = await backend.append(memory.namespace, SERIES, frame, ts=2.0)

        await assert_every_read_refuses(memory, attack, f"series:{SERIES}#{entry.seq}")
        await assert_honest_data_reads(memory)

        # an ordinary write repairs the record; the series is replaced
        await memory.put(KIND, BAD, REPAIRED)
        assert await memory.get(KIND, BAD) == REPAIRED
        assert await memory.get(KIND, BAD, use_cache=False) == REPAIRED
        assert await memory.list(KIND) == {"a": VALUE_A, BAD: REPAIRED, "c": VALUE_C}
        await memory.replace_series(SERIES, [REPAIRED], ts=3.0)
        assert await memory.read_series(SERIES) == [(3.0, REPAIRED)]
    assert not canary.exists()


# -- Redis: raw record strings -----------------------------------------------------------------

#: stored strings whose 32-byte record header cannot be read
HEADERS: dict[str, Callable[[bytes], bytes]] = {
    "truncated_header": lambda frame: b"0000000001",
    "non_hex_header": lambda frame: b"zz" * 16 + frame,
}


@pytest.mark.parametrize("case", list(HEADERS))
@pytest.mark.parametrize("config", list(CONFIGS))
async def test_corrupt_redis_record_header_is_a_frame_error_naming_the_record(
    redis_store: Store, config: str, case: str
) -> None:
    """A record string with a short or non-hex header: FrameError naming it, not ValueError."""
    async with redis_store.memory(config) as memory:
        await seed(memory, config)
        frame = memory.pipeline.encode(CHOSEN, LABEL)
        await memory.backend.put(memory.namespace, KIND, BAD, frame)  # indexed like any record
        backend = memory.backend
        assert isinstance(backend, RedisBackend)
        record_key = backend.layout.kind(memory.namespace, KIND).record(BAD)
        assert redis_store.raw.exists(record_key)
        assert redis_store.raw.set(record_key, HEADERS[case](frame))

        reads: list[Callable[[], Awaitable[Any]]] = [
            lambda: memory.get(KIND, BAD),
            lambda: memory.get(KIND, BAD, use_cache=False),
            lambda: memory.get_many(KIND, ["a", BAD, "c"]),
            lambda: memory.list(KIND),
            lambda: memory.list(KIND, reverse=True),
        ]
        for read in reads:
            with pytest.raises(FrameError) as info:
                await read()
            assert type(info.value) is FrameError
            assert info.value.key == LABEL and repr(LABEL) in str(info.value)
            assert "header" in str(info.value)
        await assert_honest_data_reads(memory)
        await memory.put(KIND, BAD, REPAIRED)
        assert await memory.get(KIND, BAD, use_cache=False) == REPAIRED


# -- Memcached: forged entries -----------------------------------------------------------------


def sealed_tier(memory: Memory) -> tuple[SealedCache, MemcachedCache]:
    """The memory's sealed Memcached tier and the MemcachedCache inside it."""
    found = [c for _, c in memory.caches if isinstance(c, SealedCache)]
    assert len(found) == 1
    inner = found[0].inner
    assert isinstance(inner, MemcachedCache)
    return found[0], inner


def real_key(memory: Memory, id: str) -> bytes:
    """The memcached key the tier really uses for ``KIND/id`` (needs the tier's secret)."""
    sealed, inner = sealed_tier(memory)
    return inner.derived_key(sealed._key(_cache_key(memory.namespace, KIND, id)))


def public_keys(prefix: str, id: str) -> list[bytes]:
    """Every memcached key an attacker can compute from public names alone.

    The first is where a tier without a secret (``trust_remote_cache``) keeps
    ``KIND/id``; the others are plausible spellings of the same record.
    """
    mem_key = _cache_key(NS, KIND, id)
    names = [mem_key, f"{KIND}/{id}", id, f"{NS}:{KIND}:{id}", f"{NS}/{KIND}/{id}"]
    keys = [derive_key(prefix, name).encode("ascii") for name in names]
    return [*keys, (prefix + mem_key).encode("ascii")]


def guessed_secret_entries(memory: Memory, id: str, frame: bytes) -> dict[bytes, bytes]:
    """``frame`` sealed under each of ``ATTACKER_SECRETS``, at the key that secret names."""
    _, inner = sealed_tier(memory)
    out = {}
    for secret in ATTACKER_SECRETS:
        forger = SealedCache(inner, [secret])
        name = forger._key(_cache_key(NS, KIND, id))
        out[inner.derived_key(name)] = forger.seal(name, frame)
    return out


async def mc_set(server: MemcachedServer, entries: dict[bytes, bytes]) -> None:
    """Write raw entries into memcached with a plain aiomcache client (the attacker's)."""
    client = aiomcache.Client(server.host, server.port, pool_size=1)
    try:
        for key, value in entries.items():
            assert await client.set(key, value)
    finally:
        await client.close()


async def mc_get(server: MemcachedServer, key: bytes) -> bytes | None:
    """The raw bytes memcached holds at ``key``."""
    client = aiomcache.Client(server.host, server.port, pool_size=1)
    try:
        value: bytes | None = await client.get(key)
        return value
    finally:
        await client.close()


def tier(memory: Memory) -> dict[str, Any]:
    """The Memcached tier's entry in ``Memory.metrics()`` (hits, misses, cache stats)."""
    out: dict[str, Any] = memory.metrics()["tiers"]["memcached"]
    return out


def forged(memory: Memory) -> int:
    """Entries of the Memcached tier that failed verification so far."""
    return int(tier(memory)["cache"]["forged"])


#: frames an attacker may put into memcached (the attacks above, plus a valid frame)
CACHE_FRAMES = (
    "pickle",
    "unknown_compressor",
    "installed_codec_not_allowed",
    "truncated",
    "garbled",
    "plaintext",
    "foreign_key",
    "chosen",
)
#: forgeries made from the tier's own valid entries
ENTRY_FORGERIES = (
    "copied_from_other_record",
    "bad_version_byte",
    "cut_short",
    "tag_only",
    "empty",
)


def _cache_cases() -> list[Any]:
    cases = []
    for config in CONFIGS:
        for name in CACHE_FRAMES:
            if name in ATTACK and not ATTACK[name].applies(config):
                continue
            for wrap in ("unsealed", "sealed_other_secret"):
                cases.append(pytest.param(config, f"{name}:{wrap}", id=f"{config}-{name}-{wrap}"))
        cases += [pytest.param(config, name, id=f"{config}-{name}") for name in ENTRY_FORGERIES]
    return cases


async def forge_entry(memory: Memory, server: MemcachedServer, forgery: str, canary: Path) -> bytes:
    """The bytes of ``forgery`` for the target's real key (see ``CACHE_FRAMES``)."""
    target_key = real_key(memory, TARGET)
    if forgery in ENTRY_FORGERIES:
        source = OTHER if forgery == "copied_from_other_record" else TARGET
        entry = await mc_get(server, real_key(memory, source))
        assert entry is not None and entry[:1] == SEAL_VERSION  # a genuine sealed entry
        return {
            "copied_from_other_record": entry,
            "bad_version_byte": b"\x02" + entry[1:],
            "cut_short": entry[:-1],
            "tag_only": entry[: 1 + TAG_SIZE],
            "empty": b"",
        }[forgery]
    name, wrap = forgery.split(":")
    ctx = Ctx(memory.pipeline, canary)
    frame = _valid(ctx) if name == "chosen" else ATTACK[name].build(ctx)
    if wrap == "unsealed":
        return frame
    sealed, inner = sealed_tier(memory)
    forger = SealedCache(inner, [ATTACKER_SECRETS[0]])
    # the strongest attacker knows the key's name, not the secret
    derived_name = sealed._key(_cache_key(memory.namespace, KIND, TARGET))
    assert inner.derived_key(derived_name) == target_key
    return forger.seal(derived_name, frame)


@pytest.mark.parametrize(("config", "forgery"), _cache_cases())
async def test_forged_memcached_entry_is_a_miss_and_the_true_value_is_read(
    mc_store: Store, config: str, forgery: str, tmp_path: Path
) -> None:
    """A forged entry at the tier's real key (and at every public key) is a counted miss."""
    server = mc_store.memcached
    assert server is not None
    canary = tmp_path / "canary"
    async with mc_store.memory(config) as memory:
        await memory.put(KIND, TARGET, TRUE_VALUE)
        await memory.put(KIND, OTHER, OTHER_VALUE)
        memory.clear_local_cache()
        assert await memory.get(KIND, OTHER) == OTHER_VALUE  # fills memcached
        assert await memory.get(KIND, TARGET) == TRUE_VALUE
        entry = await forge_entry(memory, server, forgery, canary)
        targets = [real_key(memory, TARGET), *public_keys(mc_store.mc_prefix, TARGET)]

        await mc_set(server, dict.fromkeys(targets, entry))
        memory.clear_local_cache()
        before, reads = forged(memory), memory.metrics()["reads"]
        assert await memory.get(KIND, TARGET) == TRUE_VALUE
        assert forged(memory) == before + 1
        assert memory.metrics()["reads"] == reads + 1  # the true value came from the backend

        await mc_set(server, {targets[0]: entry})  # the read above healed the entry
        memory.clear_local_cache()
        hits = tier(memory)["hits"]
        assert await memory.get_many(KIND, [TARGET, OTHER]) == {
            TARGET: TRUE_VALUE,
            OTHER: OTHER_VALUE,
        }
        assert forged(memory) == before + 2
        assert tier(memory)["hits"] == hits + 1  # OTHER's genuine entry still serves

        # after the miss the tier holds the true value again, sealed
        memory.clear_local_cache()
        hits = tier(memory)["hits"]
        assert await memory.get(KIND, TARGET) == TRUE_VALUE
        assert tier(memory)["hits"] == hits + 1
        assert forged(memory) == before + 2
        assert await memory.list(KIND) == {OTHER: OTHER_VALUE, TARGET: TRUE_VALUE}
    assert not canary.exists()


@pytest.mark.parametrize("config", list(CONFIGS))
async def test_attacker_knowing_only_public_names_cannot_choose_the_value(
    mc_store: Store, config: str
) -> None:
    """A frame the reader would accept, under every key public names give, is never served."""
    server = mc_store.memcached
    assert server is not None
    async with mc_store.memory(config) as memory:
        await memory.put(KIND, TARGET, TRUE_VALUE)
        chosen = memory.pipeline.encode(CHOSEN, f"{KIND}/{TARGET}")
        planted = dict.fromkeys(public_keys(mc_store.mc_prefix, TARGET), chosen)
        planted.update(guessed_secret_entries(memory, TARGET, chosen))
        assert real_key(memory, TARGET) not in planted
        await mc_set(server, planted)
        for _ in range(2):  # a cold read, then reads served by the tier
            memory.clear_local_cache()
            assert await memory.get(KIND, TARGET) == TRUE_VALUE
            memory.clear_local_cache()
            assert await memory.get_many(KIND, [TARGET]) == {TARGET: TRUE_VALUE}
        assert (tier(memory)["hits"], tier(memory)["misses"]) == (3, 1)
        assert forged(memory) == 0  # the reader never even looked at the planted entries
        for key, value in planted.items():
            assert await mc_get(server, key) == value  # they were there all along


@pytest.mark.parametrize("config", ["json", "zstd"])
async def test_trusted_mode_is_unsealed_and_public_names_reach_it(
    mc_store: Store, config: str, tmp_path: Path
) -> None:
    """``trust_remote_cache=True`` keeps plain frames under public names (the control case).

    The public key computed by :func:`public_keys` is where such a tier keeps
    the record, so the same plant that fails against a sealed tier succeeds
    here. Decoding is still bounded by the allow-list: pickle is refused.
    """
    server = mc_store.memcached
    assert server is not None
    canary = tmp_path / "canary"
    async with mc_store.memory(config, cache_secret=None, trust_remote_cache=True) as memory:
        sealed, _ = sealed_tier(memory)
        assert not sealed.sealed
        assert tier(memory)["cache"]["authenticated"] is False
        await memory.put(KIND, TARGET, TRUE_VALUE)
        memory.clear_local_cache()
        assert await memory.get(KIND, TARGET) == TRUE_VALUE  # fills the tier
        public = public_keys(mc_store.mc_prefix, TARGET)[0]
        stored = await memory.backend.get(NS, KIND, TARGET)
        assert stored is not None
        assert await mc_get(server, public) == stored.value  # the frame itself, unsealed

        await mc_set(server, {public: memory.pipeline.encode(CHOSEN)})
        memory.clear_local_cache()
        assert await memory.get(KIND, TARGET) == CHOSEN  # the documented risk of this mode

        pickled = build_frame([("serializer", "pickle")], canary_payload(canary))
        await mc_set(server, {public: pickled})
        memory.clear_local_cache()
        with pytest.raises(UntrustedCodec) as info:
            await memory.get(KIND, TARGET)
        assert info.value.codec == "pickle"
        assert info.value.key == f"{KIND}/{TARGET}"
        assert forged(memory) == 0
    assert not canary.exists()


@pytest.mark.parametrize("config", ["json", "zstd"])
def test_remote_tier_without_secret_or_encryptor_is_a_config_error(
    mc_store: Store, config: str
) -> None:
    """No secret, no encryptor to derive one, no trust: refused, naming the settings."""
    with pytest.raises(ConfigError) as info:
        mc_store.memory(config, cache_secret=None)
    message = str(info.value)
    for setting in ("cache_secret", "HIVEMEM_CACHE_SECRET", "trust_remote_cache"):
        assert setting in message
    assert mc_store.cache[1].split("?")[0] in message  # names the tier


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({"config": "json", "cache_secret": SECRET}, id="cache_secret"),
        pytest.param({"config": "zstd+fernet"}, id="fernet-derived"),
    ],
)
def test_trust_remote_cache_never_unseals_a_tier_that_has_a_secret(
    mc_store: Store, settings: dict[str, Any]
) -> None:
    """With a secret (given or derived from Fernet keys) ``trust_remote_cache`` changes nothing."""
    extra = dict(settings)
    config = extra.pop("config")
    memory = mc_store.memory(config, trust_remote_cache=True, **extra)
    sealed, _ = sealed_tier(memory)
    assert sealed.sealed


async def test_fernet_keys_seal_the_tier_without_a_cache_secret(
    memcached_server: MemcachedServer, tmp_path: Path
) -> None:
    """Processes sharing Fernet keys share sealed entries; a different key sees only misses.

    Three memories with their own clients, over three SQLite files: the
    writer's, and two empty ones, so a value the others read can only have
    come from the shared tier.
    """
    prefix = _prefix()
    cache = ["local://", f"{memcached_server.url}?prefix={prefix}&timeout=5"]

    def open_one(db: str, key: str) -> Memory:
        return hivemem.open_memory(
            f"sqlite:///{tmp_path / db}",
            namespace=NS,
            cache=cache,
            serializer="json",
            compressor="zstd",
            encryptor="fernet",
            codec_options={"fernet": {"keys": key}},
        )

    async with (
        open_one("writer.db", KEY) as writer,
        open_one("peer.db", KEY) as peer,
        open_one("stranger.db", FOREIGN_KEY) as stranger,
    ):
        assert writer.config.cache_secret is None
        assert sealed_tier(writer)[0].sealed
        await writer.put(KIND, TARGET, TRUE_VALUE)
        writer.clear_local_cache()
        assert await writer.get(KIND, TARGET) == TRUE_VALUE  # fills the tier
        entry = await mc_get(memcached_server, real_key(writer, TARGET))
        assert entry is not None and entry[:1] == SEAL_VERSION
        assert b"true value" not in entry  # no plaintext left the process

        assert real_key(peer, TARGET) == real_key(writer, TARGET)
        assert await peer.get(KIND, TARGET) == TRUE_VALUE
        assert tier(peer)["hits"] == 1 and peer.metrics()["reads"] == 0
        assert forged(peer) == 0

        assert real_key(stranger, TARGET) != real_key(writer, TARGET)
        assert await stranger.get(KIND, TARGET) is None  # a miss, not an error
        assert tier(stranger)["hits"] == 0 and tier(stranger)["misses"] == 1
        assert forged(stranger) == 0
        # the stranger did not disturb the shared entry
        assert await mc_get(memcached_server, real_key(writer, TARGET)) == entry


@pytest.mark.parametrize("config", list(CONFIGS))
async def test_a_refused_frame_is_never_put_in_the_shared_tier(
    mc_store: Store, config: str, tmp_path: Path
) -> None:
    """A frame the reader refuses (pickle in the store) is not copied into Memcached."""
    server = mc_store.memcached
    assert server is not None
    canary = tmp_path / "canary"
    async with mc_store.memory(config) as memory:
        frame = build_frame([("serializer", "pickle")], canary_payload(canary))
        await memory.backend.put(memory.namespace, KIND, TARGET, frame)
        for _ in range(2):
            with pytest.raises(UntrustedCodec):
                await memory.get(KIND, TARGET)
        assert await mc_get(server, real_key(memory, TARGET)) is None
        assert tier(memory)["cache"]["sets"] == 0
    assert not canary.exists()
