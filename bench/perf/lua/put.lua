-- PUT /products/{id} (full body, unconditional) over an id list, cycling.
-- Arguments after `--`: <ids file> <name prefix> <thread count>. Threads take
-- disjoint slices, so two connections rarely update the same row at once and
-- the figure measures the write path, not row-lock waits.
dofile(os.getenv("PGHA_BENCH_LUA") .. "/report.lua")

local next_id
local prefix = "bench"
local sent = 0

function init(args)
  prefix = (args[2] or prefix) .. "-put"
  next_id = id_cursor(args[1], tonumber(args[3]) or 1)
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  local id = next_id()
  sent = sent + 1
  local body = string.format(
    '{"name":"%s-%s","price":"%d.%02d","stock":%d,"description":"updated by pgha bench"}',
    prefix, id, sent % 1000, sent % 100, sent % 500)
  return wrk.format("PUT", "/products/" .. id, nil, body)
end

function response(status, headers, body)
  count_response(status, headers)
end
