-- Delete a session and its index entries. KEYS: 1 session hash, 2 all zset, 3 owners hash.
-- ARGV: 1 user key prefix, 2 session id. Returns 1 iff the session was live.
local live = redis.call('EXISTS', KEYS[1])
local owner = redis.call('HGET', KEYS[3], ARGV[2])
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('HDEL', KEYS[3], ARGV[2])
if owner then redis.call('ZREM', ARGV[1] .. owner, ARGV[2]) end
return live
