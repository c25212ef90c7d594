-- ARGV: tid, name, key_hash, then field/value pairs of the tenant hash.
-- Returns 1, or the name of the clashing field ('name' or 'api_key').
local tid, name, kh = ARGV[1], ARGV[2], ARGV[3]
if redis.call('EXISTS', P .. 'tname:' .. name) == 1 then return 'name' end
if redis.call('EXISTS', P .. 'key:' .. kh) == 1 then return 'api_key' end
local fields = {}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', P .. 'tenant:' .. tid, unpack(fields))
redis.call('SET', P .. 'tname:' .. name, tid)
redis.call('SET', P .. 'key:' .. kh, tid)
redis.call('SADD', P .. 'tenants', tid)
return 1
