-- Shared helpers, prepended to every script; the store substitutes the key
-- prefix and the retention below. Key layout (P = prefix):
--   P..'tenant:'..id   hash  name, budget_usd, budget_usd_n, budget_tokens, window, policy, created_at
--   P..'tenants'       set   tenant ids;  P..'tname:'..name, P..'key:'..sha256 -> tenant id
--   P..'open:'..id     zset  open reservation ids scored by expires_at
--   P..'usage:'..id..':'..window_start  hash  spent_n, spent_tokens, reserved_n, reserved_tokens
--   P..'res:'..rid     hash  tenant, ws, usd_n, tokens, created, expires, state[, actual_n, actual_tokens]
-- Dollars are integer nano-dollars (exact in Lua doubles below 2^53). Numbers
-- that go back to Redis stay decimal strings where they can be large: Lua 5.1
-- would print them in exponent notation, which HINCRBY rejects.
local P = '@PREFIX@'
local KEEP = @KEEP@  -- seconds a finished reservation is kept, so late settles stay idempotent

local function neg(s)
  if s == '0' then return '0' end
  if string.sub(s, 1, 1) == '-' then return string.sub(s, 2) end
  return '-' .. s
end

-- Expire the tenant's open reservations with expires_at <= now (now: decimal string).
local function expire_tenant(tid, now)
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
      redis.call('EXPIRE', rk, KEEP)
    end
    redis.call('ZREM', openk, rid)
  end
  return #stale
end

-- Start of the UTC calendar window containing now; month_start comes from the
-- caller (calendar months are awkward in Lua). Unix time has no leap seconds.
local function window_start(window, now, month_start)
  local t = tonumber(now)
  if window == 'minute' then return string.format('%d', math.floor(t / 60) * 60)
  elseif window == 'hour' then return string.format('%d', math.floor(t / 3600) * 3600)
  elseif window == 'day' then return string.format('%d', math.floor(t / 86400) * 86400)
  elseif window == 'month' then return month_start
  end
  return '0'
end

local function num(x)
  if x == false or x == nil then return 0 end
  return tonumber(x)
end
