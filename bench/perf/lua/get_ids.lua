-- GET /products/{id} over an id list (one id per line in a file).
-- Arguments after `--`: <ids file> <mode: cycle|once> <thread count>.
-- Each wrk thread walks its own contiguous slice in order, so with `once`
-- every id is requested at most once in the whole run; if a thread runs out
-- it starts its slice again and counts the re-reads in c_repeats, which the
-- runner reports (re-reads of a just-filled id would be cache hits).
dofile(os.getenv("PGHA_BENCH_LUA") .. "/report.lua")

local next_id
local mode = "cycle"

function init(args)
  mode = args[2] or "cycle"
  next_id = id_cursor(args[1], tonumber(args[3]) or 1)
end

function request()
  local id, wrapped, size = next_id()
  if wrapped and mode == "once" then
    -- Counted per wrap-around; the runner turns it into a warning.
    c_repeats = c_repeats + size
  end
  return wrk.format("GET", "/products/" .. id)
end

function response(status, headers, body)
  count_response(status, headers)
end
