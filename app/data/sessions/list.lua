-- A user's live sessions, most recently active first. KEYS: 1 the user's zset.
-- ARGV: 1 timeout_us, 2 session key prefix. Returns {id, HGETALL, id, HGETALL, ...}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local above = '(' .. string.format('%d', now - tonumber(ARGV[1]))
local reply = {}
for _, id in ipairs(redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', above)) do
  local hash = redis.call('HGETALL', ARGV[2] .. id)
  if #hash > 0 then
    reply[#reply + 1] = id
    reply[#reply + 1] = hash
  end
end
return reply
