-- Sliding touch of a live session: merge fields, mark it active now, renew its expiry.
-- KEYS: 1 the session hash, 2 all-sessions zset, 3 clock
-- ARGV: 1 timeout_ms, 2 user key prefix, 3 session id, 4.. field/value pairs to merge
-- Returns the session's hash (HGETALL) or false if it is missing or has expired.
local user = redis.call('HGET', KEYS[1], 'u')
if not user then
  if redis.call('EXISTS', KEYS[1]) == 0 then
    return false
  end
  -- Refused before any write: a script that fails halfway keeps what it wrote.
  return redis.error_reply('the session hash has no user field (u)')
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = tonumber(redis.call('GET', KEYS[3]) or '0')
if now <= last then now = last + 1 end
local now_text = string.format('%d', now)
redis.call('SET', KEYS[3], now_text)
redis.call('HSET', KEYS[1], 'a', now_text)
for i = 4, #ARGV, 2 do
  redis.call('HSET', KEYS[1], 'm:' .. ARGV[i], ARGV[i + 1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], now_text, ARGV[3])
redis.call('ZADD', ARGV[2] .. user, now_text, ARGV[3])
return redis.call('HGETALL', KEYS[1])
