"""Lua scripts run by the Redis backend.

Each script touches keys of exactly one cluster slot (one ``(ns, kind)``, or
one series), so it runs atomically on standalone Redis and on Redis Cluster
alike. Scripts that derive record keys from index members (listing, stats,
cleanup) rebuild them with ``esc()``, the Lua twin of
:func:`hivemem_redis.keys.escape`; those keys share the slot of the declared
keys because they carry the same hash tag.

Records are hashes ``{v: value, n: version, e: expires_at ms}``. Expiry times
come from the server clock (``TIME``), so ``PEXPIREAT`` on the record and the
score in the expiry zset always agree.
"""

from __future__ import annotations

import hashlib

import attrs

_COMMON = r"""
if redis.replicate_commands then pcall(redis.replicate_commands) end
local function esc(s)
  return (string.gsub(s, '[%%:{}]', function(c)
    return string.format('%%%02X', string.byte(c))
  end))
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- drop up to n index entries whose record has expired (bounded cleanup)
local function purge(idx, xk, rp, now, n)
  local ids = redis.call('ZRANGEBYSCORE', xk, '-inf', now, 'LIMIT', 0, n)
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

# KEYS: rec, idx, exp[, kinds registry (standalone only: another slot on a cluster)]
# ARGV: id, value, ttl_ms|'', expected|'', rec_prefix, channel, cid, kind
_PUT = r"""
if KEYS[4] then redis.call('SADD', KEYS[4], ARGV[8]) end
local cur = redis.call('HGET', KEYS[1], 'n')
local ver = 0
if cur then ver = tonumber(cur) end
if ARGV[4] ~= '' and tonumber(ARGV[4]) ~= ver then return {0, ver, ''} end
ver = ver + 1
local now = now_ms()
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'n', ver)
local es = ''
if ARGV[3] ~= '' then
  es = string.format('%d', now + tonumber(ARGV[3]))
  redis.call('HSET', KEYS[1], 'e', es)
  redis.call('PEXPIREAT', KEYS[1], es)
  redis.call('ZADD', KEYS[3], es, ARGV[1])
else
  if cur then
    redis.call('HDEL', KEYS[1], 'e')
    redis.call('PERSIST', KEYS[1])
  end
  redis.call('ZREM', KEYS[3], ARGV[1])
end
redis.call('ZADD', KEYS[2], 0, ARGV[1])
purge(KEYS[2], KEYS[3], ARGV[5], now, 8)
publish(ARGV[6], ARGV[7], ARGV[8], {ARGV[1]})
return {1, ver, es}
"""

# KEYS: idx, exp, rec1..recN  ARGV: ttl_ms|'', rec_prefix, channel, cid, kind, id1, v1, ...
_PUT_MANY = r"""
local now = now_ms()
local es = ''
if ARGV[1] ~= '' then es = string.format('%d', now + tonumber(ARGV[1])) end
local ids = {}
for j = 1, #KEYS - 2 do
  local k = KEYS[j + 2]
  local id = ARGV[4 + 2 * j]
  local cur = redis.call('HGET', k, 'n')
  local ver = 1
  if cur then ver = tonumber(cur) + 1 end
  redis.call('HSET', k, 'v', ARGV[5 + 2 * j], 'n', ver)
  if es ~= '' then
    redis.call('HSET', k, 'e', es)
    redis.call('PEXPIREAT', k, es)
    redis.call('ZADD', KEYS[2], es, id)
  else
    if cur then
      redis.call('HDEL', k, 'e')
      redis.call('PERSIST', k)
    end
    redis.call('ZREM', KEYS[2], id)
  end
  redis.call('ZADD', KEYS[1], 0, id)
  ids[#ids + 1] = id
end
purge(KEYS[1], KEYS[2], ARGV[2], now, 8)
publish(ARGV[3], ARGV[4], ARGV[5], ids)
return #ids
"""

# KEYS: rec1..recN  ->  {{v, n, e}, ...}
_GET_MANY = r"""
local out = {}
for i = 1, #KEYS do
  out[i] = redis.call('HMGET', KEYS[i], 'v', 'n', 'e')
end
return out
"""

# KEYS: rec, idx, exp  ARGV: id, expected|'', channel, cid, kind  -> {removed, version}
_DELETE = r"""
local cur = redis.call('HGET', KEYS[1], 'n')
local ver = 0
if cur then ver = tonumber(cur) end
if ARGV[2] ~= '' and tonumber(ARGV[2]) ~= ver then return {-1, ver} end
local gone = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if gone == 1 then publish(ARGV[3], ARGV[4], ARGV[5], {ARGV[1]}) end
return {gone, ver}
"""

# KEYS: idx, exp, rec1..recN  ARGV: channel, cid, kind, id1..idN  -> removed count
_DELETE_MANY = r"""
local gone = {}
for j = 1, #KEYS - 2 do
  local id = ARGV[3 + j]
  if redis.call('DEL', KEYS[j + 2]) == 1 then gone[#gone + 1] = id end
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
end
publish(ARGV[1], ARGV[2], ARGV[3], gone)
return #gone
"""

# KEYS: idx, exp  ARGV: lo, hi, limit, reverse 0|1, with_values 0|1, rec_prefix, max_scan
# -> {exhausted 0|1, last examined id, id1[, v1, n1, e1], ...}
_LIST = r"""
local lo, hi = ARGV[1], ARGV[2]
local limit, rev, wv = tonumber(ARGV[3]), ARGV[4] == '1', ARGV[5] == '1'
local rp, maxscan = ARGV[6], tonumber(ARGV[7])
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
    local r = redis.call('HMGET', rp .. esc(id), 'v', 'n', 'e')
    if r[2] then
      found = found + 1
      out[#out + 1] = id
      if wv then
        out[#out + 1] = r[1]
        out[#out + 1] = r[2]
        out[#out + 1] = r[3] or ''
      end
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

# KEYS: idx, exp  ARGV: lo, rec_prefix, max_scan -> {exhausted, last id, count, bytes}
_KIND_STATS = r"""
local ids = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], '+', 'LIMIT', 0, tonumber(ARGV[3]))
local count, bytes = 0, 0
for _, id in ipairs(ids) do
  local k = ARGV[2] .. esc(id)
  if redis.call('EXISTS', k) == 1 then
    count = count + 1
    bytes = bytes + redis.call('HSTRLEN', k, 'v')
  else
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZREM', KEYS[2], id)
  end
end
local last = ''
if #ids > 0 then last = ids[#ids] end
local done = 0
if #ids < tonumber(ARGV[3]) then done = 1 end
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
GET_MANY = _make("get_many", _GET_MANY)
DELETE = _make("delete", _DELETE)
DELETE_MANY = _make("delete_many", _DELETE_MANY)
LIST = _make("list", _LIST)
KIND_STATS = _make("kind_stats", _KIND_STATS)
DROP_KIND = _make("drop_kind", _DROP_KIND)
INCR = _make("incr", _INCR)
DELETE_COUNTERS = _make("delete_counters", _DELETE_COUNTERS)
APPEND = _make("append", _APPEND)
REPLACE_SERIES = _make("replace_series", _REPLACE_SERIES)
DELETE_SERIES = _make("delete_series", _DELETE_SERIES)
SERIES_STATS = _make("series_stats", _SERIES_STATS)

ALL = (
    PUT, PUT_MANY, GET_MANY, DELETE, DELETE_MANY, LIST, KIND_STATS, DROP_KIND, INCR,
    DELETE_COUNTERS, APPEND, REPLACE_SERIES, DELETE_SERIES, SERIES_STATS,
)
