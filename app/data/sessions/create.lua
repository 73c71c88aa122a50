-- Create a session, making room first: evict the least recently active live session(s), or
-- refuse under policy "reject". One script, so concurrent creates never pass a cap.
-- KEYS: 1 all-sessions zset, 2 owners hash, 3 this user's zset, 4 the session hash, 5 clock
-- ARGV: 1 timeout_us, 2 timeout_ms, 3 max_sessions, 4 max_per_user (0 = none), 5 reject (1/0),
--       6 session id, 7 user id, 8 session key prefix, 9 user key prefix, 10.. field/value pairs
-- Times are integer microseconds passed to Redis as '%d' strings: a Lua number given to
-- redis.call is formatted with 14 significant digits, which would round them.
local function now_us()
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local last = tonumber(redis.call('GET', KEYS[5]) or '0')
  if now <= last then now = last + 1 end
  local text = string.format('%d', now)
  redis.call('SET', KEYS[5], text)
  return now, text
end

local function evict(id)
  local owner = redis.call('HGET', KEYS[2], id)
  redis.call('DEL', ARGV[8] .. id)
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
  if owner then redis.call('ZREM', ARGV[9] .. owner, id) end
end

local now, now_text = now_us()
local above = '(' .. string.format('%d', now - tonumber(ARGV[1]))
local max_sessions = tonumber(ARGV[3])
local max_per_user = tonumber(ARGV[4])
local reject = ARGV[5] == '1'

if reject then
  if max_per_user > 0 and redis.call('ZCOUNT', KEYS[3], above, '+inf') >= max_per_user then
    return {'refused', 'user'}
  end
  if redis.call('ZCOUNT', KEYS[1], above, '+inf') >= max_sessions then
    return {'refused', 'global'}
  end
end

local evicted = {}
local function make_room(zset, cap)
  local live = redis.call('ZCOUNT', zset, above, '+inf')
  while live >= cap do
    local victim = redis.call('ZRANGEBYSCORE', zset, above, '+inf', 'LIMIT', 0, 1)[1]
    evict(victim)
    evicted[#evicted + 1] = victim
    live = live - 1
  end
end
if max_per_user > 0 then make_room(KEYS[3], max_per_user) end
make_room(KEYS[1], max_sessions)

evict(ARGV[6])
redis.call('HSET', KEYS[4], 'u', ARGV[7], 'c', now_text, 'a', now_text)
for i = 10, #ARGV, 2 do
  redis.call('HSET', KEYS[4], 'm:' .. ARGV[i], ARGV[i + 1])
end
redis.call('PEXPIRE', KEYS[4], ARGV[2])
redis.call('ZADD', KEYS[1], now_text, ARGV[6])
redis.call('ZADD', KEYS[3], now_text, ARGV[6])
redis.call('HSET', KEYS[2], ARGV[6], ARGV[7])
local reply = {'created', now_text}
for _, id in ipairs(evicted) do reply[#reply + 1] = id end
return reply
