-- Several reserve/finish/status operations in one call (one round trip for
-- the requests of one event-loop tick). ARGV: repeated groups
--   op name ('reserve' | 'finish' | 'status'), number of args n, the n args.
-- Operations run in order, each exactly as its single-op script would; an
-- error in one (caught by pcall) becomes that operation's error reply and
-- does not stop the others.
local ops = {reserve = op_reserve, finish = op_finish, status = op_status}
local out = {}
local i = 1
while i <= #ARGV do
  local f, n = ops[ARGV[i]], tonumber(ARGV[i + 1])
  local a = {}
  for j = 1, n do a[j] = ARGV[i + 1 + j] end
  local ok, res
  if f then ok, res = pcall(f, a) else ok, res = false, 'unknown op ' .. ARGV[i] end
  if ok then out[#out + 1] = res else out[#out + 1] = {err = tostring(res)} end
  i = i + 2 + n
end
return out
