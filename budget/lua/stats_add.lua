-- ARGV: key, v1..vn. Element-wise float add into hash fields '0'..'n-1' plus 'n' (the length).
local k = P .. 'stats:' .. ARGV[1]
local n = #ARGV - 1
local have = redis.call('HGET', k, 'n')
if have and tonumber(have) ~= n then
  return redis.error_reply('length ' .. n .. ' != stored length ' .. have)
end
if not have then redis.call('HSET', k, 'n', n) end
for i = 1, n do redis.call('HINCRBYFLOAT', k, tostring(i - 1), ARGV[i + 1]) end
return n
