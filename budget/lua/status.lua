-- A (args): tid, now, month_start
-- Expires the tenant's stale reservations, then returns
-- {window, budget_usd, budget_tokens, ws, spent_n, spent_tokens, reserved_n, reserved_tokens} or {} if unknown.
local function op_status(A)
  local tid = A[1]
  local t = redis.call('HMGET', P .. 'tenant:' .. tid, 'window', 'budget_usd', 'budget_tokens')
  if not t[1] then return {} end
  expire_tenant(tid, A[2])
  local ws = window_start(t[1], A[2], A[3])
  local u = redis.call('HMGET', P .. 'usage:' .. tid .. ':' .. ws, 'spent_n', 'spent_tokens', 'reserved_n', 'reserved_tokens')
  return {t[1], t[2] or '', t[3] or '', ws, u[1] or '0', u[2] or '0', u[3] or '0', u[4] or '0'}
end
