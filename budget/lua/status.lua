-- ARGV: P, tid, now, keep_s, ws_minute, ws_hour, ws_day, ws_month
-- Expires the tenant's stale reservations, then returns
-- {window, budget_usd, budget_tokens, ws, spent_n, spent_tokens, reserved_n, reserved_tokens} or {} if unknown.
local P, tid, now, keep_s = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local t = redis.call('HMGET', P .. 'tenant:' .. tid, 'window', 'budget_usd', 'budget_tokens')
if not t[1] then return {} end
expire_tenant(P, tid, now, keep_s)
local ws = window_start(t[1], {ARGV[5], ARGV[6], ARGV[7], ARGV[8]})
local u = redis.call('HMGET', P .. 'usage:' .. tid .. ':' .. ws, 'spent_n', 'spent_tokens', 'reserved_n', 'reserved_tokens')
-- Raw strings, not Lua numbers: tostring() would use exponent notation for large sums.
return {t[1], t[2] or '', t[3] or '', ws, u[1] or '0', u[2] or '0', u[3] or '0', u[4] or '0'}
