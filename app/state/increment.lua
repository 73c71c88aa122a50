-- Atomic counter: KEYS[1] the value, ARGV[1] the amount, ARGV[2] a TTL in ms or '' for none.
-- The TTL applies only when this call creates the key. Returns the new value as a string
-- (a Lua number would lose precision beyond 2^53).
-- Each path writes once, so a failing step never leaves a partial change behind:
-- * a new key is one SET (with PX for a TTL); ARGV[1] is a signed 64-bit int and ARGV[2] at
--   most 2^53 ms (both checked in app/state/validation.py), so SET accepts both;
-- * an existing key is one INCRBY, which either adds or fails without writing ("value is not
--   an integer or out of range" for a non-integer value, "would overflow" past 64 bits).
local key = KEYS[1]
if redis.call('EXISTS', key) == 0 then
  if ARGV[2] == '' then
    redis.call('SET', key, ARGV[1])
  else
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
  end
  return ARGV[1]
end
redis.call('INCRBY', key, ARGV[1])
return redis.call('GET', key)
