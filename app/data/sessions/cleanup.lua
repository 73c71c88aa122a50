-- Remove up to ARGV[4] idle sessions still indexed (their hashes expired or are expiring).
-- KEYS: 1 all zset, 2 owners hash. ARGV: 1 timeout_us, 2 session key prefix, 3 user key
-- prefix, 4 batch size. Returns how many were removed (the caller repeats while it is full).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local cutoff = string.format('%d', now - tonumber(ARGV[1]))
local idle = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cutoff, 'LIMIT', 0, tonumber(ARGV[4]))
for _, id in ipairs(idle) do
  local owner = redis.call('HGET', KEYS[2], id)
  redis.call('DEL', ARGV[2] .. id)
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
  if owner then redis.call('ZREM', ARGV[3] .. owner, id) end
end
return #idle
