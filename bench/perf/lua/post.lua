-- POST /products through the API (and so through HAProxy's `primary`).
-- Arguments after `--`: <name prefix>. Names carry the run's prefix so the
-- runner can delete exactly the rows it created.
dofile(os.getenv("PGHA_BENCH_LUA") .. "/report.lua")

local prefix = "bench"
local n = 0

function init(args)
  prefix = (args[1] or prefix) .. "-post-t" .. tostring(bench_index or 0)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  n = n + 1
  local body = string.format(
    '{"name":"%s-%d","price":"%d.%02d","stock":%d,"description":"created by pgha bench"}',
    prefix, n, n % 1000, n % 100, n % 500)
  return wrk.format(nil, "/products", nil, body)
end

function response(status, headers, body)
  count_response(status, headers)
end
