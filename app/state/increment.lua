-- Atomic counter: KEYS[1] the value, ARGV[1] the amount, ARGV[2] a TTL in ms or '' for none.
-- The TTL applies only when this call creates the key. Returns the new value as a string
-- (a Lua number would lose precision beyond 2^53). A non-integer value makes INCRBY fail.
local key = KEYS[1]
local existed = redis.call('EXISTS', key)
redis.call('INCRBY', key, ARGV[1])
if existed == 0 and ARGV[2] ~= '' then
  redis.call('PEXPIRE', key, ARGV[2])
end
return redis.call('GET', key)
