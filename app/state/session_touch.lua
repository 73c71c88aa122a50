-- Read a session and renew its TTL: KEYS[1] the session, stored as "<ttl_ms>:<json>".
-- A TTL of 0 means none, so nothing is renewed. Returns the stored blob or nil.
local blob = redis.call('GET', KEYS[1])
if not blob then
  return false
end
local ttl = tonumber(string.match(blob, '^(%d+):'))
if ttl and ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return blob
