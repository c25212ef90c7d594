-- Shared helpers, prepended to every script. Key layout (P = prefix):
--   P..'tenant:'..id   hash  name, budget_usd, budget_usd_n, budget_tokens, window, policy, created_at
--   P..'open:'..id     zset  open reservation ids scored by expires_at
--   P..'usage:'..id..':'..window_start  hash  spent_n, spent_tokens, reserved_n, reserved_tokens
--   P..'res:'..rid     hash  tenant, ws, usd_n, tokens, created, expires, state
-- Dollars are integer nano-dollars (exact in Lua doubles below 2^53).
-- Negate an integer given as a decimal string, staying in strings: Lua would
-- format large numbers in exponent notation, which HINCRBY rejects.
local function neg(s)
  if s == '0' then return '0' end
  if string.sub(s, 1, 1) == '-' then return string.sub(s, 2) end
  return '-' .. s
end

-- now: decimal string (passed through to ZRANGEBYSCORE unchanged).
local function expire_tenant(P, tid, now, keep_s)
  local openk = P .. 'open:' .. tid
  local stale = redis.call('ZRANGEBYSCORE', openk, '-inf', now)
  for _, rid in ipairs(stale) do
    local rk = P .. 'res:' .. rid
    local r = redis.call('HMGET', rk, 'ws', 'usd_n', 'tokens', 'state')
    if r[4] == 'open' then
      local uk = P .. 'usage:' .. tid .. ':' .. r[1]
      redis.call('HINCRBY', uk, 'reserved_n', neg(r[2]))
      redis.call('HINCRBY', uk, 'reserved_tokens', neg(r[3]))
      redis.call('HSET', rk, 'state', 'expired')
      redis.call('EXPIRE', rk, keep_s)
    end
    redis.call('ZREM', openk, rid)
  end
  return #stale
end

local function window_start(window, starts)
  if window == 'minute' then return starts[1]
  elseif window == 'hour' then return starts[2]
  elseif window == 'day' then return starts[3]
  elseif window == 'month' then return starts[4]
  end
  return '0'
end

local function num(x)
  if x == false or x == nil then return 0 end
  return tonumber(x)
end
