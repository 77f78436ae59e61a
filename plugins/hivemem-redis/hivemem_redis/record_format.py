"""The stored form of a record: one Redis string, a 32-byte header, then the value.

The header is the version and the absolute expiry in milliseconds as 16
lower-case hex digits each (``0000000000000000``: no expiry). The client
sends :data:`BLANK_HEADER` in front of a value and the write script writes
the real header over it (``SETRANGE``). A stored string is input, not
memory: :func:`parse_record` refuses one too short for its header or with a
header that is not hex digits, naming ``kind/id`` and never quoting the
bytes.
"""

from __future__ import annotations

from hivemem.plugin import FrameError, Record

#: Redis refuses bulk strings above proto-max-bulk-len (512 MiB by default)
MAX_VALUE_SIZE = 512 * 1024 * 1024 - 1024
#: bytes of the record header (version and expiry, 16 hex digits each)
HEADER = 32
#: what the client puts in front of a value; the write script overwrites it with the header
BLANK_HEADER = b"0" * HEADER
#: the low 64 bits of the parsed header (the expiry in ms)
_LOW64 = (1 << 64) - 1


def parse_record(raw: bytes | None, kind: str, id: str) -> Record | None:
    """A record from its stored string: 16 hex digits of version, 16 of expiry ms, value.

    None when Redis has no such key. A stored string too short for its header
    (the empty string included) or a header that is not hex digits raises
    :class:`~hivemem.errors.FrameError` naming ``kind/id``: a store is input,
    not memory. ``isalnum`` shuts out what ``int`` would also accept (spaces,
    signs, ``_``); ``int`` then refuses every other non-hex letter. One
    ``int`` over all 32 digits costs what the two 16-digit ones used to.
    """
    if raw is None:
        return None
    header = raw[:HEADER]
    try:
        if len(header) != HEADER or not header.isalnum():
            raise ValueError
        number = int(header, 16)
    except ValueError:
        raise corrupt_record(raw, kind, id) from None
    expires_ms = number & _LOW64
    return Record(raw[HEADER:], number >> 64, expires_ms / 1000 if expires_ms else None)


def corrupt_record(raw: bytes, kind: str, id: str) -> FrameError:
    """The error for a stored record string whose header cannot be read.

    It never quotes the stored bytes: they may be (part of) a plaintext value.
    """
    if len(raw) < HEADER:
        what = f"is {len(raw)} bytes, shorter than its {HEADER}-byte header"
    else:
        what = f"has a header that is not {HEADER} hex digits"
    return FrameError(f"redis record string {what}", f"{kind}/{id}")


def uncomparable_record(kind: str, id: str) -> FrameError:
    """The error of a compare-and-set write that met a record with a corrupt header."""
    return FrameError(
        "redis record header is corrupt, so its version cannot be compared; "
        "an unconditional put or delete replaces the record",
        f"{kind}/{id}",
    )
