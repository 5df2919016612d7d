"""Lua scripts: each atomic step touches one bucket and its checkpoint, or meta keys only.

Money never goes through Lua arithmetic (Lua numbers are doubles): the projector sends
exact integer strings and Redis adds them with HINCRBY. Positions are compared as Lua
numbers, exact up to 2**53.
"""

from __future__ import annotations

import hashlib

from redis.exceptions import NoScriptError

from contract.customer_document import PROFILE_FIELDS
from projections.customer_record import CHUNK, MAX_CHUNKS
from projections.read_model import SLICES
from projections.redis_client import RedisClient

# KEYS[1] the customer's bucket hash, KEYS[2] its partition's checkpoint, and for a
# worker KEYS[3] the partition's owner token (one hash tag).
# ARGV[1] the customer's offset in the bucket (its fields' first character); ARGV[2] the
# fence: the checkpoint the partition must hold at least, or it lost data since and the
# call is refused with ROLLBACK (nothing is written onto what is left); ARGV[3] the
# worker's fencing token (0: not a worker), refused with FENCED when the partition has a
# newer owner; ARGV[4] the position of the last change, as text; then each change in
# position order as flat
# arguments (no JSON to decode: cjson.decode is the costliest step a script can take):
#   position, kind, spent_from_here, orders_from_here, then by kind
#   R: date_joined, the profile values (contract.customer_document's PROFILE order)
#   P: count, then (profile index, value) pairs
#   L: login time | D, A, O, C, F: nothing
# where *_from_here sum that change and every later one, and times and values are
# already encoded as the record holds them (projections/customer_record.py). Applies
# exactly the changes after the record's guard (its first value); returns how many.
APPLY_CUSTOMER = f"""
local profile_width, chunk, max_chunks = {len(PROFILE_FIELDS)}, {CHUNK}, {MAX_CHUNKS}
local letters = {{'a', 'b', 'c', 'd'}}
local token = tonumber(ARGV[3])
if token > 0 then
  local owner = tonumber(redis.call('GET', KEYS[3]) or '0')
  if owner > token then return redis.error_reply('FENCED ' .. owner .. ' ' .. KEYS[3]) end
end
local fence = tonumber(ARGV[2])
if fence > 0 then
  local checkpoint = tonumber(redis.call('GET', KEYS[2]) or '0')
  if checkpoint < fence then
    return redis.error_reply('ROLLBACK ' .. checkpoint .. ' ' .. KEYS[2])
  end
end
local o = ARGV[1]
local chunks = redis.call('HMGET', KEYS[1], o .. 'a', o .. 'b', o .. 'c', o .. 'd')
local held = 0
local raw = nil
if chunks[1] then
  raw = chunks[1] .. (chunks[2] or '') .. (chunks[3] or '') .. (chunks[4] or '')
  for j = 1, max_chunks do if chunks[j] then held = j end end
end
local guard, tail = 0, nil
if raw then
  local stop = string.find(raw, '\\31', 1, true)
  guard = tonumber(string.sub(raw, 1, stop - 1))
  tail = string.sub(raw, stop)
end
local function width(i)
  local kind = ARGV[i + 1]
  if kind == 'R' then return 5 + profile_width end
  if kind == 'P' then return 5 + 2 * tonumber(ARGV[i + 4]) end
  if kind == 'L' then return 5 end
  return 4
end
local n, i = #ARGV, 5
while i <= n and tonumber(ARGV[i]) <= guard do i = i + width(i) end
if i > n then return 0 end
local first, applied, d = i, 0, nil
local function record()
  if not d then
    d = {{}}
    if raw then
      local start = 1
      while true do
        local at = string.find(raw, '\\31', start, true)
        if not at then d[#d + 1] = string.sub(raw, start) break end
        d[#d + 1] = string.sub(raw, start, at - 1)
        start = at + 1
      end
    else
      d[1], d[2], d[3], d[4] = '0', '1', '', ''
      for j = 1, profile_width do d[4 + j] = '' end
    end
  end
  return d
end
while i <= n do
  local kind = ARGV[i + 1]
  if kind == 'R' then
    local r = record()
    r[2] = '1'
    r[3] = ARGV[i + 4]
    for j = 1, profile_width do r[4 + j] = ARGV[i + 4 + j] end
  elseif kind == 'P' then
    local r = record()
    for j = 1, tonumber(ARGV[i + 4]) do
      local at = i + 3 + 2 * j
      r[5 + tonumber(ARGV[at])] = ARGV[at + 1]
    end
  elseif kind == 'L' then
    local r = record()
    if r[4] == '' or ARGV[i + 4] > r[4] then r[4] = ARGV[i + 4] end
  elseif kind == 'D' then
    record()[2] = '0'
  elseif kind == 'A' then
    record()[2] = '1'
  end
  applied = applied + 1
  i = i + width(i)
end
local encoded
if d or not raw then
  local r = record()
  r[1] = ARGV[4]
  encoded = table.concat(r, '\\31')
else
  encoded = ARGV[4] .. tail  -- only totals moved: just the guard changes
end
local size, used = #encoded, 1
if size <= chunk * max_chunks then
  used = math.ceil(size / chunk)
  local written = {{}}
  for j = 1, used do
    written[#written + 1] = o .. letters[j]
    written[#written + 1] = string.sub(encoded, (j - 1) * chunk + 1, j * chunk)
  end
  redis.call('HSET', KEYS[1], unpack(written))
else
  redis.call('HSET', KEYS[1], o .. 'a', encoded)
end
for j = used + 1, held do redis.call('HDEL', KEYS[1], o .. letters[j]) end
redis.call('HINCRBY', KEYS[1], o .. 's', ARGV[first + 2])
redis.call('HINCRBY', KEYS[1], o .. 'o', ARGV[first + 3])
return applied
"""

# KEYS[1] a partition's checkpoint, for a worker KEYS[2] its owner token. ARGV[1] the
# position every event of the partition is applied up to now; ARGV[2] the fence and
# ARGV[3] the token, as for APPLY_CUSTOMER. Sent after the page's customer calls on the
# same connection, so a node that keeps the checkpoint kept them.
ADVANCE_CHECKPOINT = """
local token = tonumber(ARGV[3])
if token > 0 then
  local owner = tonumber(redis.call('GET', KEYS[2]) or '0')
  if owner > token then return redis.error_reply('FENCED ' .. owner .. ' ' .. KEYS[2]) end
end
local checkpoint = tonumber(redis.call('GET', KEYS[1]) or '0')
if checkpoint < tonumber(ARGV[2]) then
  return redis.error_reply('ROLLBACK ' .. checkpoint .. ' ' .. KEYS[1])
end
if checkpoint < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return checkpoint
"""

# KEYS[1] API key index. ARGV[1] JSON [[position, position text, key hash, role or null,
# revoked 0|1], ...]. A key's entry only moves forward, so a replayed Issued never
# un-revokes it.
APPLY_KEYS = """
local ops = cjson.decode(ARGV[1])
local applied = 0
for _, op in ipairs(ops) do
  local raw = redis.call('HGET', KEYS[1], op[3])
  local role = op[4]
  local take = true
  if raw then
    local current = cjson.decode(raw)
    if current[1] >= op[1] then
      take = false
    elseif role == cjson.null then
      role = current[2]
    end
  end
  if take then
    if role == cjson.null then role = '' end
    local value = '[' .. op[2] .. ',' .. cjson.encode(role) .. ',' .. op[5] .. ']'
    redis.call('HSET', KEYS[1], op[3], value)
    applied = applied + 1
  end
end
return applied
"""

# KEYS[1] tracking hash. ARGV[1] application name, ARGV[2] position, ARGV[3] the position
# this writer recorded last (0: none), then (field, checkpoint) pairs: the partitions'
# checkpoints the page confirmed, recorded as their floors. Positions only grow; a hash
# holding less than its writer recorded has lost data (Redis restarted empty, restored
# from an older copy, or flushed) and is refused with ROLLBACK, so the writer repairs.
INSERT_TRACKING = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
local recorded = tonumber(current or '0')
if recorded < tonumber(ARGV[3] or '0') then
  return redis.error_reply('ROLLBACK ' .. recorded)
end
if current and recorded >= tonumber(ARGV[2]) then
  return redis.error_reply('TRACKING position ' .. ARGV[2] .. ' is not after ' .. current)
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
for i = 4, #ARGV - 1, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""

# KEYS[1] tracking hash. ARGV[1] application name, ARGV[2] the position a worker applied
# its slices up to, ARGV[3] the position it recorded last (0: none), ARGV[4] how many
# slices, then (slice, fencing token) pairs, then (floor field, checkpoint) pairs. Refuses
# with FENCED when a slice has a newer owner, with ROLLBACK when a slice holds less than
# recorded; moves the slices (and floors) up, then the application's position to the
# lowest slice's: every partition is applied that far. Returns that position.
ADVANCE_SLICES = f"""
local position, recorded = tonumber(ARGV[2]), tonumber(ARGV[3])
local base = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local count = tonumber(ARGV[4])
local held = {{}}
for j = 0, count - 1 do
  local s, token = ARGV[5 + 2 * j], tonumber(ARGV[6 + 2 * j])
  local owner = tonumber(redis.call('HGET', KEYS[1], 'f' .. s) or '0')
  if owner > token then return redis.error_reply('FENCED ' .. owner .. ' slice ' .. s) end
  held[j] = math.max(tonumber(redis.call('HGET', KEYS[1], 'w' .. s) or '0'), base)
  if held[j] < recorded then return redis.error_reply('ROLLBACK ' .. held[j]) end
end
for j = 0, count - 1 do
  local s = ARGV[5 + 2 * j]
  redis.call('HSET', KEYS[1], 'f' .. s, ARGV[6 + 2 * j])
  if held[j] < position then redis.call('HSET', KEYS[1], 'w' .. s, ARGV[2]) end
end
for i = 5 + 2 * count, #ARGV - 1, 2 do
  local floor = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')
  if floor < tonumber(ARGV[i + 1]) then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
local low = nil
for s = 0, {SLICES} - 1 do
  local at = math.max(tonumber(redis.call('HGET', KEYS[1], 'w' .. s) or '0'), base)
  if low == nil or at < low then low = at end
end
if low > base then redis.call('HSET', KEYS[1], ARGV[1], tostring(low)) end
return math.max(low, base)
"""

# KEYS[1] a partition's owner token (or the tracking hash, with ARGV[2] its slice's
# token field). ARGV[1] a worker's fencing token. Raises the token, never lowers it;
# returns the token held afterwards (above ARGV[1]: a newer owner has the partition).
CLAIM_PARTITION = """
local held
if ARGV[2] then
  held = tonumber(redis.call('HGET', KEYS[1], ARGV[2]) or '0')
  if held < tonumber(ARGV[1]) then redis.call('HSET', KEYS[1], ARGV[2], ARGV[1]) end
else
  held = tonumber(redis.call('GET', KEYS[1]) or '0')
  if held < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
end
return math.max(held, tonumber(ARGV[1]))
"""

# KEYS[1] generation, KEYS[2] old generation's tracking, KEYS[3] new generation's tracking
# (one hash tag). ARGV: old generation, new generation, application name, channel.
# Switches only when the new generation has applied at least what the old one has;
# returns the new generation's position, or -1 when it is behind.
SWITCH_GENERATION = """
local current = redis.call('GET', KEYS[1]) or '1'
if current ~= ARGV[1] then
  return redis.error_reply('GENERATION changed to ' .. current .. ' meanwhile')
end
local old = redis.call('HGET', KEYS[2], ARGV[3]) or '0'
local new = redis.call('HGET', KEYS[3], ARGV[3]) or '0'
if tonumber(old) > tonumber(new) then return -1 end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('PUBLISH', ARGV[4], ARGV[2] .. ':' .. new)
return tonumber(new)
"""

# KEYS[1] the repair marker (a hash). ARGV: reason, position to reach again, detection time,
# and the generation that must be rebuilt ("" if a replay repairs it). A marker already
# standing keeps its reason and time; its target and generation to rebuild only grow.
MARK_REPAIR = """
local target = tonumber(redis.call('HGET', KEYS[1], 'target') or '-1')
if target < tonumber(ARGV[2]) then redis.call('HSET', KEYS[1], 'target', ARGV[2]) end
if ARGV[4] ~= '' then
  local rebuild = tonumber(redis.call('HGET', KEYS[1], 'rebuild') or '-1')
  if rebuild < tonumber(ARGV[4]) then redis.call('HSET', KEYS[1], 'rebuild', ARGV[4]) end
end
redis.call('HSETNX', KEYS[1], 'reason', ARGV[1])
redis.call('HSETNX', KEYS[1], 'detected_at', ARGV[3])
return 1
"""

# KEYS[1] the repair marker, KEYS[2] the generation key (one hash tag). ARGV[1] the position
# the read model is back at. Removes the marker once that reaches its target, and, if a
# generation had to be rebuilt, once a newer one is served; returns 1 if removed.
CLEAR_REPAIR = """
local target = redis.call('HGET', KEYS[1], 'target')
if not target or tonumber(target) > tonumber(ARGV[1]) then return 0 end
local rebuild = redis.call('HGET', KEYS[1], 'rebuild')
if rebuild and tonumber(redis.call('GET', KEYS[2]) or '0') <= tonumber(rebuild) then
  return 0
end
redis.call('DEL', KEYS[1])
return 1
"""


class Script:
    """A Lua script run by SHA, loaded again when the server has forgotten it."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    def load(self, client: RedisClient) -> None:
        client.script_load(self.source)

    def __call__(self, client: RedisClient, keys: list[str], args: list[str]) -> object:
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            self.load(client)
            return client.evalsha(self.sha, len(keys), *keys, *args)


apply_customer = Script(APPLY_CUSTOMER)
apply_keys = Script(APPLY_KEYS)
advance_checkpoint = Script(ADVANCE_CHECKPOINT)
insert_tracking = Script(INSERT_TRACKING)
advance_slices = Script(ADVANCE_SLICES)
claim_partition = Script(CLAIM_PARTITION)
switch_generation = Script(SWITCH_GENERATION)
mark_repair = Script(MARK_REPAIR)
clear_repair = Script(CLEAR_REPAIR)
