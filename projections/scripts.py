"""Lua scripts: each atomic step touches one customer key, or only meta keys of one hash tag.

Money never goes through Lua arithmetic (Lua numbers are doubles): the projector sends
exact integer strings and Redis adds them with HINCRBY. Positions are compared as Lua
numbers, exact up to 2**53.
"""

from __future__ import annotations

import hashlib

import redis
from redis.exceptions import NoScriptError

# KEYS[1] customer hash. ARGV[1] JSON [[position, kind, spent_from_here, orders_from_here,
# value], ...] in position order, where *_from_here sum that change and every later one.
# ARGV[2] the position of the last change, as text. Applies exactly the changes after the
# record's guard (d[1]); returns how many it applied.
APPLY_CUSTOMER = """
local ops = cjson.decode(ARGV[1])
local raw = redis.call('HGET', KEYS[1], 'd')
local d, guard
if raw then
  d = cjson.decode(raw)
  guard = tonumber(d[1])
else
  local null = cjson.null
  d = {'0', 1, null, null, null, null, null, null, null, null, null, null}
  guard = 0
end
local first = 0
for i = 1, #ops do
  if ops[i][1] > guard then first = i; break end
end
if first == 0 then return 0 end
for i = first, #ops do
  local op = ops[i]
  local kind = op[2]
  if kind == 'R' then
    d[2] = 1
    d[3] = op[5][1]
    local profile = op[5][2]
    for j = 1, 8 do d[4 + j] = profile[j] end
  elseif kind == 'P' then
    for _, change in ipairs(op[5]) do d[5 + change[1]] = change[2] end
  elseif kind == 'L' then
    if d[4] == cjson.null or op[5] > d[4] then d[4] = op[5] end
  elseif kind == 'D' then
    d[2] = 0
  elseif kind == 'A' then
    d[2] = 1
  end
end
d[1] = ARGV[2]
redis.call('HSET', KEYS[1], 'd', cjson.encode(d))
redis.call('HINCRBY', KEYS[1], 's', ops[first][3])
redis.call('HINCRBY', KEYS[1], 'o', ops[first][4])
return #ops - first + 1
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

# KEYS[1] tracking hash. ARGV[1] application name, ARGV[2] position. Positions only grow.
INSERT_TRACKING = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current and tonumber(current) >= tonumber(ARGV[2]) then
  return redis.error_reply('TRACKING position ' .. ARGV[2] .. ' is not after ' .. current)
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
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


class Script:
    """A Lua script run by SHA, loaded again when the server has forgotten it."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    def load(self, client: redis.Redis) -> None:
        client.script_load(self.source)

    def __call__(self, client: redis.Redis, keys: list[str], args: list[str]) -> object:
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            self.load(client)
            return client.evalsha(self.sha, len(keys), *keys, *args)


apply_customer = Script(APPLY_CUSTOMER)
apply_keys = Script(APPLY_KEYS)
insert_tracking = Script(INSERT_TRACKING)
switch_generation = Script(SWITCH_GENERATION)
