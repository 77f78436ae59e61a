"""Other ways in: a Unix socket, a caller-supplied client, an ACL user."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from hivemem.errors import BackendUnavailable, HivememError
from hivemem.testing.helpers import eventually

pytestmark = pytest.mark.usefixtures("hivemem_runner")


async def test_unix_socket(redis_server_factory, make_backend, tmp_path) -> None:
    sock = tmp_path / "redis.sock"
    redis_server_factory(extra_args=("--unixsocket", str(sock), "--unixsocketperm", "700"))
    backend = await make_backend(f"unix://{sock}?db=2")
    assert await backend.put("ns", "k", "a", b"v") == 1
    assert (await backend.get("ns", "k", "a")).value == b"v"
    assert backend.label == f"unix:{sock}"


async def test_caller_supplied_client_is_used_and_left_open(redis_server, make_backend) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    backend = await make_backend("redis://ignored:1/0", client=client)
    peer = await make_backend(redis_server.url, prefix=backend.settings.prefix.decode())
    seen: list[tuple[str, str | None]] = []
    await backend.subscribe("ns", lambda kind, id: seen.append((kind, id)))
    await peer.put("ns", "k", "a", b"v")
    assert (await backend.get("ns", "k", "a")).value == b"v"
    await eventually(lambda: seen == [("k", "a")], timeout=30, what="invalidation")
    await backend.close()
    assert await client.ping()  # not ours to close
    await client.aclose()


async def test_decoding_client_is_refused(redis_server, make_backend) -> None:
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    with pytest.raises(HivememError, match="decode_responses"):
        await make_backend("redis://", client=client)
    await client.aclose()


async def test_acl_user_and_wrong_password(redis_server_factory, make_backend) -> None:
    server = redis_server_factory()
    server.command("ACL", "SETUSER", "agent", "on", ">s3cret", "~*", "&*", "+@all")
    backend = await make_backend(f"redis://agent:s3cret@127.0.0.1:{server.port}/0")
    assert await backend.put("ns", "k", "a", b"v") == 1
    bad = await make_backend(f"redis://agent:wrong@127.0.0.1:{server.port}/0", open=False)
    with pytest.raises(BackendUnavailable) as info:
        await bad.open()
    assert f"127.0.0.1:{server.port}" in str(info.value) and "wrong" not in str(info.value)
