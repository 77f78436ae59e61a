"""How the Redis backend spells its commands: RESP packing and argument formats.

Pure functions and one small value class, no I/O. The hot paths (``get``,
``put``, ``put_many``) pack their RESP commands themselves on a standalone
server (see :meth:`~hivemem_redis.commands.RedisCommands._send_packed`);
everything else goes through redis-py as :class:`Command` values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hivemem.plugin import prefix_upper_bytes

from . import scripts
from .keys import utf8
from .scripts import Script

#: arguments at least this long are written as chunks of their own, never copied
_OWN_CHUNK_MIN = 4096


class Command:
    """One command for a batch: a raw command or a script call (keys, argv)."""

    __slots__ = ("args", "script")

    def __init__(self, *args: Any, script: Script | None = None) -> None:
        self.script = script
        self.args = args

    def command(self, use_sha: bool = True) -> tuple[Any, ...]:
        """The arguments for ``execute_command`` (``EVALSHA``, or ``EVAL`` with the source)."""
        if self.script is None:
            return self.args
        keys, argv = self.args
        head = ("EVALSHA", self.script.sha) if use_sha else ("EVAL", self.script.source)
        return (*head, len(keys), *keys, *argv)


def script_call(script: Script, keys: Sequence[bytes], argv: Sequence[Any]) -> Command:
    """A :class:`Command` that runs ``script`` with ``keys`` and ``argv``."""
    return Command(list(keys), list(argv), script=script)


def bulk(data: bytes) -> bytes:
    """One RESP bulk string."""
    return b"$%d\r\n%s\r\n" % (len(data), data)


def evalsha_head(script: Script, nargs: int, nkeys: int) -> bytes:
    """The packed start of ``EVALSHA sha nkeys`` for a command of ``nargs`` arguments."""
    return b"*%d\r\n" % (nargs + 3) + bulk(b"EVALSHA") + bulk(script.sha.encode()) + bulk(
        b"%d" % nkeys
    )


#: EVALSHA put with 4 keys and 7 arguments, packed once
PUT_HEAD = evalsha_head(scripts.PUT, 11, 4)


def pack_command(args: Sequence[bytes], out: list[bytes] | None = None) -> list[bytes]:
    """Pack one command of bytes arguments as RESP chunks (appended to ``out``).

    About 10x faster than redis-py's generic packer for long argument lists;
    long arguments become chunks of their own.
    """
    out = [] if out is None else out
    buf = [b"*%d\r\n" % len(args)]
    for arg in args:
        if len(arg) >= _OWN_CHUNK_MIN:
            buf.append(b"$%d\r\n" % len(arg))
            out.append(b"".join(buf))
            out.append(arg)
            buf = [b"\r\n"]
        else:
            buf.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    out.append(b"".join(buf))
    return out


def ttl_millis(ttl: float | None) -> str:
    """The ``ttl`` argument of the write scripts: milliseconds (at least 1), "" for none.

    The base class has already refused a ttl that is not a positive number.
    """
    if ttl is None:
        return ""
    return str(max(1, round(ttl * 1000)))


def score_arg(value: float) -> str:
    """A timestamp as a sorted-set score argument (exact: ``repr`` of the float)."""
    return repr(float(value))


def score_pairs(reply: Sequence[Any]) -> list[tuple[Any, Any]]:
    """(member, score) pairs from a WITHSCORES reply, flat or already paired by redis-py."""
    if reply and isinstance(reply[0], list | tuple):
        return [(member, score) for member, score in reply]
    return list(zip(reply[::2], reply[1::2], strict=True))


def text(raw: bytes) -> str:
    """A name read back from Redis (ids, kinds, series names are UTF-8)."""
    return raw.decode("utf-8")


def lex_range(prefix: str, cursor: str | None, reverse: bool) -> tuple[bytes, bytes] | None:
    """``ZRANGEBYLEX`` (min, max) for names starting with ``prefix`` beyond ``cursor``.

    ``cursor`` is exclusive in the direction of travel; None when nothing can match.
    """
    prefix_bytes = utf8(prefix)
    upper = prefix_upper_bytes(prefix_bytes)
    low = b"[" + prefix_bytes if prefix_bytes else b"-"
    high = b"(" + upper if upper is not None else b"+"
    if cursor is not None:
        cursor_bytes = utf8(cursor)
        if reverse:
            if upper is None or cursor_bytes < upper:
                high = b"(" + cursor_bytes
            if cursor_bytes <= prefix_bytes:
                return None
        else:
            if cursor_bytes >= prefix_bytes:
                low = b"(" + cursor_bytes
            if upper is not None and cursor_bytes >= upper:
                return None
    return low, high
