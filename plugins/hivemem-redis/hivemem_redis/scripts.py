"""Lua scripts run by the Redis backend.

Each script touches keys of exactly one cluster slot (one ``(ns, kind)``, or
one series), so it runs atomically on standalone Redis and on Redis Cluster
alike. Scripts that derive record keys from index members (listing, stats,
cleanup) rebuild them with ``esc()``, the Lua twin of
:func:`hivemem_redis.keys.escape`; those keys share the slot of the declared
keys because they carry the same hash tag.

A record is one Redis string: a 32-byte header (version and absolute expiry
in ms, 16 hex digits each, ``0`` for none) followed by the value, so a read is
a plain ``GET`` and a batch read a plain ``MGET`` (no script, one bulk string
per record to parse). Expiry times come from the server clock (``TIME``), so
the ``PXAT`` of the record, its header and the score in the expiry zset always
agree. Writes keep their Redis calls few: an overwrite of a record without a
TTL is ``GETRANGE`` + ``SET`` + ``ZCARD`` + ``PUBLISH``; index, expiry-set and
registry updates happen only when a record is created or its TTL changes.
"""

from __future__ import annotations

import hashlib

import attrs

_COMMON = r"""
if redis.replicate_commands then pcall(redis.replicate_commands) end
local NOEXP = '0000000000000000'
local function esc(s)
  return (string.gsub(s, '[%%:{}]', function(c)
    return string.format('%%%02X', string.byte(c))
  end))
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- the record key prefix P{k:ns:kind}:r: from the index key P{k:ns:kind}:i
local function rprefix(idx)
  return string.sub(idx, 1, -2) .. 'r:'
end
-- the version in a record header: 0 for a missing record, false for a corrupt
-- header (shorter than 32 bytes, or not all hex digits)
local function hver(h)
  if h == '' then return 0 end
  if #h ~= 32 or not string.find(h, '^%x+$') then return false end
  return tonumber(string.sub(h, 1, 16), 16)
end
-- one command over many members, in chunks (unpack has a stack limit)
local function bulk(cmd, key, members, score)
  local i, n = 1, #members
  while i <= n do
    local args = {}
    for j = i, math.min(i + 499, n) do
      if score then args[#args + 1] = score end
      args[#args + 1] = members[j]
    end
    redis.call(cmd, key, unpack(args))
    i = i + 500
  end
end
-- drop up to n index entries whose record has expired (bounded cleanup);
-- a kind without any TTL'd record pays one ZCARD
local function purge(idx, xk, now, n)
  if redis.call('ZCARD', xk) == 0 then return end
  local ids = redis.call('ZRANGEBYSCORE', xk, '-inf', now or now_ms(), 'LIMIT', 0, n)
  local rp = rprefix(idx)
  for _, id in ipairs(ids) do
    local k = rp .. esc(id)
    if redis.call('EXISTS', k) == 0 then
      redis.call('ZREM', idx, id)
      redis.call('ZREM', xk, id)
    elseif redis.call('PTTL', k) < 0 then
      redis.call('ZREM', xk, id)
    end
  end
end
local function publish(ch, cid, kind, ids)
  if ch ~= '' and #ids > 0 then
    redis.call('PUBLISH', ch, cjson.encode({cid, kind, ids}))
  end
end
local function be8(n)
  local b = {}
  for i = 8, 1, -1 do
    b[i] = string.char(n % 256)
    n = math.floor(n / 256)
  end
  return table.concat(b)
end
"""

# A record is one string: a 32-byte header -- the version and the absolute expiry
# in ms (0: none), each as 16 lower-case hex digits -- followed by the value.
# Values arrive with 32 placeholder bytes in front (added by the client): the
# script stores them as they are and writes the header in place with SETRANGE,
# because building header .. value in Lua would copy the value once more.
#
# In ``put_many`` on a standalone server, large values (``STAGE_MIN`` in
# backend.py) do not pass through Lua at all: every byte handed to a script
# becomes a Lua string, which costs far more than a plain SET (about 30 us for
# 20 KB against 2 us, mostly Lua's garbage collector). The client sends
# ``MULTI, MSET stage values, EVALSHA put_many, DEL stage keys, EXEC``: the
# script RENAMEs each staged string onto its record (no copy) and writes the
# header; the transaction hides the staging keys from everyone else and the
# final DEL removes any the script did not consume. (A single ``put`` does
# not stage: the three extra replies cost the client more than Lua costs the
# server.)
# Invariants kept by every script: a live record has its index entry; a live
# record without a TTL has no expiry entry. A missing record may have stale
# entries in both (they are removed when met).

# A stored string whose header is corrupt (see ``hver``) has no version to
# compare: a compare-and-set write refuses it (``put`` returns 0, ``delete`` 2,
# both raise FrameError in the client); an unconditional write replaces it as
# if it were absent, so a put or delete repairs it. An empty string reads as
# absent here (GETRANGE cannot tell them apart); ``delete`` removes it anyway.

# KEYS: rec, idx, exp[, kinds registry (standalone only: another slot on a cluster)]
# ARGV: id, placeholder + value, ttl_ms|'', expected|'', channel, cid, kind
# -> the new version, -1 - current version when ``expected`` does not match,
#    0 when ``expected`` is given and the header is corrupt
_PUT = r"""
local h = redis.call('GETRANGE', KEYS[1], 0, 31)
local ver = hver(h)
if not ver then
  if ARGV[4] ~= '' then return 0 end
  ver, h = 0, ''
end
if ARGV[4] ~= '' and tonumber(ARGV[4]) ~= ver then return -1 - ver end
ver = ver + 1
local now, es, tail = nil, nil, NOEXP
if ARGV[3] ~= '' then
  now = now_ms()
  local e = now + tonumber(ARGV[3])
  es = string.format('%d', e)
  tail = string.format('%016x', e)
end
if es then
  redis.call('SET', KEYS[1], ARGV[2], 'PXAT', es)
else
  redis.call('SET', KEYS[1], ARGV[2])
end
redis.call('SETRANGE', KEYS[1], 0, string.format('%016x', ver) .. tail)
if es then
  redis.call('ZADD', KEYS[3], es, ARGV[1])
elseif h == '' or string.sub(h, 17) ~= NOEXP then
  redis.call('ZREM', KEYS[3], ARGV[1])
end
if h == '' then
  redis.call('ZADD', KEYS[2], 0, ARGV[1])
  if KEYS[4] then redis.call('SADD', KEYS[4], ARGV[7]) end
end
purge(KEYS[2], KEYS[3], now, 8)
publish(ARGV[5], ARGV[6], ARGV[7], {ARGV[1]})
return ver
"""

# KEYS: idx, exp[, kinds registry], rec1..recN, stage keys of the staged values in order
# ARGV: ttl_ms|'', channel, cid, kind, has_registry 0|1,
#       id1, placeholder + v1 | '' (staged), id2, ... -> N
_PUT_MANY = r"""
local off = 2
if ARGV[5] == '1' then off = 3 end
local n = (#ARGV - 5) / 2
local stage = off + n
local now, es, tail = nil, nil, NOEXP
if ARGV[1] ~= '' then
  now = now_ms()
  local e = now + tonumber(ARGV[1])
  es = string.format('%d', e)
  tail = string.format('%016x', e)
end
local ids, new, stale = {}, {}, {}
for j = 1, n do
  local k, id, v = KEYS[off + j], ARGV[4 + 2 * j], ARGV[5 + 2 * j]
  local h = redis.call('GETRANGE', k, 0, 31)
  local ver = hver(h)
  if not ver then ver, h = 0, '' end
  if h == '' then
    new[#new + 1] = id
    stale[#stale + 1] = id
  elseif string.sub(h, 17) ~= NOEXP then
    stale[#stale + 1] = id
  end
  if v == '' then
    stage = stage + 1
    redis.call('RENAME', KEYS[stage], k)
    if es then redis.call('PEXPIREAT', k, es) end
  elseif es then
    redis.call('SET', k, v, 'PXAT', es)
  else
    redis.call('SET', k, v)
  end
  redis.call('SETRANGE', k, 0, string.format('%016x', ver + 1) .. tail)
  ids[j] = id
end
if es then
  bulk('ZADD', KEYS[2], ids, es)
elseif #stale > 0 then
  bulk('ZREM', KEYS[2], stale)
end
if #new > 0 then
  bulk('ZADD', KEYS[1], new, 0)
  if off == 3 then redis.call('SADD', KEYS[3], ARGV[4]) end
end
purge(KEYS[1], KEYS[2], now, 8)
publish(ARGV[2], ARGV[3], ARGV[4], ids)
return n
"""

# KEYS: rec, idx, exp  ARGV: id, expected|'', channel, cid, kind
# -> 1 deleted, 0 absent, -1 - current version when ``expected`` does not match,
#    2 when ``expected`` is given and the header is corrupt
_DELETE = r"""
local h = redis.call('GETRANGE', KEYS[1], 0, 31)
local ver = hver(h)
if ARGV[2] ~= '' then
  if not ver then return 2 end
  if tonumber(ARGV[2]) ~= ver then return -1 - ver end
end
redis.call('ZREM', KEYS[2], ARGV[1])
if h == '' or string.sub(h, 17) ~= NOEXP then redis.call('ZREM', KEYS[3], ARGV[1]) end
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
publish(ARGV[3], ARGV[4], ARGV[5], {ARGV[1]})
return 1
"""

# KEYS: idx, exp, rec1..recN  ARGV: channel, cid, kind, id1..idN  -> removed count
_DELETE_MANY = r"""
local gone, ids = {}, {}
for j = 1, #KEYS - 2 do
  local id = ARGV[3 + j]
  ids[j] = id
  if redis.call('DEL', KEYS[j + 2]) == 1 then gone[#gone + 1] = id end
end
bulk('ZREM', KEYS[1], ids)
if redis.call('ZCARD', KEYS[2]) > 0 then bulk('ZREM', KEYS[2], ids) end
publish(ARGV[1], ARGV[2], ARGV[3], gone)
return #gone
"""

# KEYS: idx, exp  ARGV: lo, hi, limit, reverse 0|1, with_values 0|1, max_scan
# -> {exhausted 0|1, last examined id, id1[, record1], ...}
_LIST = r"""
local lo, hi = ARGV[1], ARGV[2]
local limit, rev, wv = tonumber(ARGV[3]), ARGV[4] == '1', ARGV[5] == '1'
local rp, maxscan = rprefix(KEYS[1]), tonumber(ARGV[6])
local out = {0, ''}
local found, scanned = 0, 0
while true do
  local want = math.min(limit - found, maxscan - scanned)
  local ids
  if rev then
    ids = redis.call('ZREVRANGEBYLEX', KEYS[1], hi, lo, 'LIMIT', 0, want)
  else
    ids = redis.call('ZRANGEBYLEX', KEYS[1], lo, hi, 'LIMIT', 0, want)
  end
  for _, id in ipairs(ids) do
    scanned = scanned + 1
    out[2] = id
    local r
    if wv then
      r = redis.call('GET', rp .. esc(id))
    else
      r = redis.call('EXISTS', rp .. esc(id)) == 1
    end
    if r then
      found = found + 1
      out[#out + 1] = id
      if wv then out[#out + 1] = r end
    else
      redis.call('ZREM', KEYS[1], id)
      redis.call('ZREM', KEYS[2], id)
    end
  end
  if #ids < want then
    out[1] = 1
    return out
  end
  if found >= limit or scanned >= maxscan then return out end
  if rev then hi = '(' .. ids[#ids] else lo = '(' .. ids[#ids] end
end
"""

# KEYS: idx, exp  ARGV: lo, max_scan -> {exhausted, last id, count, value bytes}
# (a record string too short for its header, the empty one included, counts as a
# record of 0 value bytes: it is stored, and reading it raises FrameError)
_KIND_STATS = r"""
local ids = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], '+', 'LIMIT', 0, tonumber(ARGV[2]))
local rp = rprefix(KEYS[1])
local count, bytes = 0, 0
for _, id in ipairs(ids) do
  local k = rp .. esc(id)
  local n = redis.call('STRLEN', k)
  if n > 0 or redis.call('EXISTS', k) == 1 then
    count = count + 1
    bytes = bytes + math.max(n - 32, 0)
  else
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZREM', KEYS[2], id)
  end
end
local last = ''
if #ids > 0 then last = ids[#ids] end
local done = 0
if #ids < tonumber(ARGV[2]) then done = 1 end
return {done, last, count, bytes}
"""

# KEYS: idx, exp, counter ids  ARGV: rec_prefix, counter_prefix, batch -> 1 when all gone
_DROP_KIND = r"""
local batch = tonumber(ARGV[3])
local ids = redis.call('ZRANGE', KEYS[1], 0, batch - 1)
for _, id in ipairs(ids) do
  redis.call('DEL', ARGV[1] .. esc(id))
  redis.call('ZREM', KEYS[1], id)
end
if #ids == batch then return 0 end
local cids = redis.call('SPOP', KEYS[3], batch)
for _, id in ipairs(cids) do
  redis.call('DEL', ARGV[2] .. esc(id))
end
if #cids == batch then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return 1
"""

# KEYS: counter hash, counter ids[, kinds registry (standalone only)]  ARGV: field, amount, id,
# kind -> new value
_INCR = r"""
if KEYS[3] then redis.call('SADD', KEYS[3], ARGV[4]) end
local v = redis.call('HINCRBYFLOAT', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
return v
"""

# KEYS: counter hash, counter ids  ARGV: id -> 1 when something was removed
_DELETE_COUNTERS = r"""
local n = redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
return n
"""

# KEYS: entries, meta  ARGV: ts, value -> seq
_APPEND = r"""
local seq = redis.call('HINCRBY', KEYS[2], 'q', 1)
redis.call('HINCRBY', KEYS[2], 'b', string.len(ARGV[2]))
redis.call('ZADD', KEYS[1], ARGV[1], be8(seq) .. ARGV[2])
return seq
"""

# KEYS: entries, meta  ARGV: ts1, v1, ts2, v2, ... -> entry count
_REPLACE_SERIES = r"""
redis.call('DEL', KEYS[1])
local n = #ARGV / 2
if n == 0 then
  redis.call('DEL', KEYS[2])
  return 0
end
local seq = redis.call('HINCRBY', KEYS[2], 'q', n) - n
local total = 0
for i = 1, #ARGV, 2 do
  seq = seq + 1
  redis.call('ZADD', KEYS[1], ARGV[i], be8(seq) .. ARGV[i + 1])
  total = total + string.len(ARGV[i + 1])
end
redis.call('HSET', KEYS[2], 'b', total)
return n
"""

# KEYS: entries, meta  ARGV: seq1 (8 bytes, big-endian), old1, new1, seq2, ...
# -> how many entries were replaced. An entry's member is seq .. value, so
# "entry seq still holds exactly old" is the existence of the member seq .. old:
# one ZSCORE, whose score (the ts) the new member takes over. The seq prefix
# keeps the (ts, seq) order, so nothing else moves; appends are never touched.
_REWRITE_SERIES = r"""
local n, delta = 0, 0
for i = 1, #ARGV, 3 do
  local seq, old, new = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local member = seq .. old
  local ts = redis.call('ZSCORE', KEYS[1], member)
  if ts then
    if new ~= old then
      redis.call('ZREM', KEYS[1], member)
      redis.call('ZADD', KEYS[1], ts, seq .. new)
      delta = delta + string.len(new) - string.len(old)
    end
    n = n + 1
  end
end
if delta ~= 0 then redis.call('HINCRBY', KEYS[2], 'b', delta) end
return n
"""

# KEYS: entries, meta -> removed entry count
_DELETE_SERIES = r"""
local n = redis.call('ZCARD', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2])
return n
"""

# KEYS: entries, meta -> {count, bytes, oldest ts, newest ts} or {0}
_SERIES_STATS = r"""
local n = redis.call('ZCARD', KEYS[1])
if n == 0 then return {0} end
local b = redis.call('HGET', KEYS[2], 'b') or '0'
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
return {n, b, first[2], last[2]}
"""


@attrs.frozen
class Script:
    """A Lua script with its SHA1, run with EVALSHA (falling back to EVAL on NOSCRIPT)."""

    name: str
    source: bytes
    sha: str = attrs.field(init=False)

    @sha.default
    def _sha(self) -> str:
        return hashlib.sha1(self.source).hexdigest()


def _make(name: str, body: str) -> Script:
    return Script(name, (_COMMON + body).encode("utf-8"))


PUT = _make("put", _PUT)
PUT_MANY = _make("put_many", _PUT_MANY)
DELETE = _make("delete", _DELETE)
DELETE_MANY = _make("delete_many", _DELETE_MANY)
LIST = _make("list", _LIST)
KIND_STATS = _make("kind_stats", _KIND_STATS)
DROP_KIND = _make("drop_kind", _DROP_KIND)
INCR = _make("incr", _INCR)
DELETE_COUNTERS = _make("delete_counters", _DELETE_COUNTERS)
APPEND = _make("append", _APPEND)
REPLACE_SERIES = _make("replace_series", _REPLACE_SERIES)
REWRITE_SERIES = _make("rewrite_series", _REWRITE_SERIES)
DELETE_SERIES = _make("delete_series", _DELETE_SERIES)
SERIES_STATS = _make("series_stats", _SERIES_STATS)

ALL = (
    PUT, PUT_MANY, DELETE, DELETE_MANY, LIST, KIND_STATS, DROP_KIND, INCR,
    DELETE_COUNTERS, APPEND, REPLACE_SERIES, REWRITE_SERIES, DELETE_SERIES, SERIES_STATS,
)
