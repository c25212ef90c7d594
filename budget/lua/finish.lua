-- Settle (mode 'settle') or release (mode 'release') a reservation.
-- A (args): rid, mode, actual_n, actual_tokens
-- Returns 1 when applied, 0 when already finished (idempotent no-op), -1 unknown reservation.
local function op_finish(A)
  local rid, mode = A[1], A[2]
  local rk = P .. 'res:' .. rid
  local r = redis.call('HMGET', rk, 'tenant', 'ws', 'usd_n', 'tokens', 'state')
  if not r[1] then return -1 end
  local uk = P .. 'usage:' .. r[1] .. ':' .. r[2]
  if r[5] == 'open' then
    redis.call('HINCRBY', uk, 'reserved_n', neg(r[3]))
    redis.call('HINCRBY', uk, 'reserved_tokens', neg(r[4]))
    redis.call('ZREM', P .. 'open:' .. r[1], rid)
  elseif not (r[5] == 'expired' and mode == 'settle') then
    return 0
  end
  if mode == 'settle' then
    redis.call('HINCRBY', uk, 'spent_n', A[3])
    redis.call('HINCRBY', uk, 'spent_tokens', A[4])
    redis.call('HSET', rk, 'state', 'settled', 'actual_n', A[3], 'actual_tokens', A[4])
  else
    redis.call('HSET', rk, 'state', 'released')
  end
  redis.call('EXPIRE', rk, KEEP)
  return 1
end
