-- Read a session and renew its TTL: KEYS[1] the session, stored as "<ttl_ms>:<json>".
-- A TTL of 0 means none, so nothing is renewed. Returns the stored blob or nil.
local blob = redis.call('GET', KEYS[1])
if not blob then
  return false
end
-- The TTL goes to PEXPIRE as the stored digits (at most 2^53 ms, validated when the session
-- was set), not as a Lua number, whose formatting Redis versions differ on.
local ttl = string.match(blob, '^(%d+):')
if ttl and tonumber(ttl) > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return blob
