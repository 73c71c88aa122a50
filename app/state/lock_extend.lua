-- Compare-and-expire: KEYS[1] the lock, ARGV[1] the owner token, ARGV[2] the new lease in ms.
-- Returns 1 if the owner still held the lock and its remaining lease is now ARGV[2].
-- ARGV[2] is 1 to 2^53 ms (app/state/validation.py), so PEXPIRE, the only write, accepts it.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
