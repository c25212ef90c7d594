-- ARGV: P, tid, rid, usd_n, tokens, now, expires, keep_s, ws_minute, ws_hour, ws_day, ws_month
-- Returns {1, ws} on success, {0, budget, limit, spent, reserved, ws, window} when refused, {-1} unknown tenant.
local P, tid, rid = ARGV[1], ARGV[2], ARGV[3]
local usd_n, tokens = tonumber(ARGV[4]), tonumber(ARGV[5])
local keep_s = tonumber(ARGV[8])
local t = redis.call('HMGET', P .. 'tenant:' .. tid, 'window', 'budget_usd_n', 'budget_tokens')
if not t[1] then return {-1} end
expire_tenant(P, tid, ARGV[6], keep_s)
local ws = window_start(t[1], {ARGV[9], ARGV[10], ARGV[11], ARGV[12]})
local uk = P .. 'usage:' .. tid .. ':' .. ws
local u = redis.call('HMGET', uk, 'spent_n', 'spent_tokens', 'reserved_n', 'reserved_tokens')
local sn, st, rn, rt = num(u[1]), num(u[2]), num(u[3]), num(u[4])
if t[2] and t[2] ~= '' and sn + rn + usd_n > tonumber(t[2]) then
  return {0, 'usd', t[2], u[1] or '0', u[3] or '0', ws, t[1]}
end
if t[3] and t[3] ~= '' and st + rt + tokens > tonumber(t[3]) then
  return {0, 'tokens', t[3], u[2] or '0', u[4] or '0', ws, t[1]}
end
redis.call('HSET', P .. 'res:' .. rid, 'tenant', tid, 'ws', ws, 'usd_n', ARGV[4], 'tokens', ARGV[5],
  'created', ARGV[6], 'expires', ARGV[7], 'state', 'open')
redis.call('ZADD', P .. 'open:' .. tid, ARGV[7], rid)
redis.call('HINCRBY', uk, 'reserved_n', ARGV[4])
redis.call('HINCRBY', uk, 'reserved_tokens', ARGV[5])
return {1, ws}
