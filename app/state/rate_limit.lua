-- Sliding-log rate limit: one sorted set of allowed calls per (scope, user, window).
-- KEYS[1] the log; ARGV[1] limit (1 to 2^53 - 1, so every count below is exact as a Lua
-- number); ARGV[2] window in microseconds; ARGV[3] window in ms.
-- Returns {1, remaining} when the call is allowed and recorded, {0, 0} when it is denied.
-- Scores are microseconds since the epoch: integers below 2^53, exact as Lua numbers.
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
-- calls at or before now - window have left the interval (now - window, now]
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - tonumber(ARGV[2]))
local count = redis.call('ZCARD', key)
if count >= limit then
  if count > limit then
    -- called earlier with a larger limit: keep only the newest `limit` entries
    redis.call('ZREMRANGEBYRANK', key, 0, count - limit - 1)
  end
  return {0, 0}
end
-- members are "<s>.<us>-<n>": unique even for two calls in the same microsecond
local stamp = time[1] .. '.' .. time[2] .. '-'
local n = count
while redis.call('ZADD', key, 'NX', now, stamp .. n) == 0 do
  n = n + 1
end
-- PEXPIRE cannot fail after the ZADD above (which would leave a log that never expires):
-- ARGV[3] is a whole number of ms from 1 to 2^53 (window_seconds is capped at 2^53 ms in
-- app/state/validation.py), an integer far below Redis' limit of 2^63 ms after now.
redis.call('PEXPIRE', key, ARGV[3])
return {1, limit - count - 1}
