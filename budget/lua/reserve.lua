-- A (args): tid, rid, usd_n, tokens, now, expires, month_start
-- Returns {1, ws} on success, {0, budget, limit, spent, reserved, ws, window} when refused, {-1} unknown tenant.
local function op_reserve(A)
  local tid, rid = A[1], A[2]
  local t = redis.call('HMGET', P .. 'tenant:' .. tid, 'window', 'budget_usd_n', 'budget_tokens')
  if not t[1] then return {-1} end
  expire_tenant(tid, A[5])
  local ws = window_start(t[1], A[5], A[7])
  local uk = P .. 'usage:' .. tid .. ':' .. ws
  local u = redis.call('HMGET', uk, 'spent_n', 'spent_tokens', 'reserved_n', 'reserved_tokens')
  if t[2] and t[2] ~= '' and num(u[1]) + num(u[3]) + tonumber(A[3]) > tonumber(t[2]) then
    return {0, 'usd', t[2], u[1] or '0', u[3] or '0', ws, t[1]}
  end
  if t[3] and t[3] ~= '' and num(u[2]) + num(u[4]) + tonumber(A[4]) > tonumber(t[3]) then
    return {0, 'tokens', t[3], u[2] or '0', u[4] or '0', ws, t[1]}
  end
  redis.call('HSET', P .. 'res:' .. rid, 'tenant', tid, 'ws', ws, 'usd_n', A[3], 'tokens', A[4],
    'created', A[5], 'expires', A[6], 'state', 'open')
  redis.call('ZADD', P .. 'open:' .. tid, A[6], rid)
  redis.call('HINCRBY', uk, 'reserved_n', A[3])
  redis.call('HINCRBY', uk, 'reserved_tokens', A[4])
  return {1, ws}
end
