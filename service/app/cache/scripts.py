"""The cache-aside protocol's Redis scripts: fence raises and fills, each one atomic.

Why scripts: a fence raise must drop the body in the same step, and a fill must compare
the body's version with the fence and with what is cached in the same step, or a slow
reader could re-install a row that a finished write made obsolete (service/README.md).
"""

# Raise the fence to max(current, new) and drop the cached body, atomically: a reader can
# never see the new fence next to a body that the write has made obsolete.
FENCE_LUA = """
local new = tonumber(ARGV[1])
local cur = tonumber(redis.call('GET', KEYS[2]) or '0')
local new_level = math.abs(new)
local cur_level = math.abs(cur)
if new_level > cur_level or (new_level == cur_level and new < 0 and cur >= 0) then
  redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
end
redis.call('DEL', KEYS[1])
return 1
"""

# Install a body only if it is at least as new as the fence and newer than what is cached:
# a reader that fetched an old row before a write cannot re-install it after the write.
# The first half, the fence check, is shared with the epoch-aware fill (app/cache/sentinel.py).
FENCE_CHECK_LUA = """
local version = tonumber(ARGV[1])
local fence = redis.call('GET', KEYS[2])
if fence then
  fence = tonumber(fence)
  if fence < 0 or version < fence then return 0 end
end
"""
FILL_LUA = (
    FENCE_CHECK_LUA
    + """local cur = redis.call('GET', KEYS[1])
if cur then
  local cur_version = tonumber(string.match(cur, '^(%d+)|'))
  if cur_version and cur_version >= version then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""
)


# Fill, as FILL_LUA, plus the epoch (cacheMode sentinel): the node's own replication id goes into
# the body, and a cached body of another epoch never blocks a fill (it is unservable).
# ARGV[4] is the epoch the reader's lookup saw: a reader that missed on one primary and fills
# on the next (a slow read across a failover) may hold a row older than a fence the first
# primary acknowledged and lost, so its fill is refused.
FILL_EPOCH_LUA = (
    """
local info = redis.call('INFO', 'replication')
if string.match(info, 'role:(%a+)') ~= 'master' then return 0 end
local epoch = string.match(info, 'master_replid:(%x+)')
if ARGV[4] ~= '' and ARGV[4] ~= epoch then return 0 end
"""
    + FENCE_CHECK_LUA
    + """local cur = redis.call('GET', KEYS[1])
if cur then
  local cur_version, cur_epoch = string.match(cur, '^(%d+)|(%x+)|')
  if cur_epoch == epoch and tonumber(cur_version) >= version then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. epoch .. '|' .. ARGV[2], 'EX', ARGV[3])
return 1
"""
)
