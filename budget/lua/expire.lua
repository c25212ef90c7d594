-- ARGV: now. Expires stale reservations of every tenant; returns the count.
local n = 0
for _, tid in ipairs(redis.call('SMEMBERS', P .. 'tenants')) do
  n = n + expire_tenant(tid, ARGV[1])
end
return n
