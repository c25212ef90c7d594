-- ARGV: P, now, keep_s. Expires stale reservations of every tenant; returns the count.
local P, now, keep_s = ARGV[1], ARGV[2], tonumber(ARGV[3])
local n = 0
for _, tid in ipairs(redis.call('SMEMBERS', P .. 'tenants')) do
  n = n + expire_tenant(P, tid, now, keep_s)
end
return n
