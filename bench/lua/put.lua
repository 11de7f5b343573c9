-- PUT /products/{id} (full body, unconditional) over an id list, cycling.
-- Arguments after `--`: <ids file> <name prefix> <thread count>. Threads take
-- disjoint slices, so two connections rarely update the same row at once and
-- the figure measures the write path, not row-lock waits.
dofile(os.getenv("PGHA_BENCH_LUA") .. "/report.lua")

local ids = {}
local pos = 0
local prefix = "bench"

function init(args)
  local path, threads = args[1], tonumber(args[3]) or 1
  prefix = (args[2] or prefix) .. "-put"
  ids = thread_slice(path, threads)
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  pos = pos + 1
  if pos > #ids then
    pos = 1
  end
  local id = ids[pos]
  local body = string.format(
    '{"name":"%s-%s","price":"%d.%02d","stock":%d,"description":"updated by pgha bench"}',
    prefix, id, pos % 1000, pos % 100, pos % 500)
  return wrk.format("PUT", "/products/" .. id, nil, body)
end

function response(status, headers, body)
  count_response(status, headers)
end
