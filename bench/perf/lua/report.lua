-- Shared by every pgha bench script (loaded with dofile from each one).
-- Why: wrk's own text report has no machine-readable percentiles, and the
-- runner needs p50/p99, error counts and per-response tallies (X-Cache,
-- status classes) from every run in the same shape. Each thread counts in its
-- own Lua state; done() runs in the main state and collects those counters
-- through the thread handles kept by setup().

local bench_threads = {}

function setup(thread)
  table.insert(bench_threads, thread)
  -- 0-based index, so a script can take its own slice of an id list.
  thread:set("bench_index", #bench_threads - 1)
end

-- Per-thread tallies (globals, because thread:get reads globals).
c_2xx, c_3xx, c_4xx, c_5xx = 0, 0, 0, 0
c_hit, c_miss, c_bypass, c_nocache = 0, 0, 0, 0
c_repeats, c_responses, c_capped = 0, 0, 0

-- Count bound on top of wrk's time bound (-d): a thread that reaches its share of
-- PGHA_BENCH_MAX_REQUESTS stops sending. The runner sets it far above any plausible rate and
-- flags a run that hit it, because wrk would still divide by the full duration.
local max_per_thread = tonumber(os.getenv("PGHA_BENCH_MAX_REQUESTS_PER_THREAD") or "")

function count_response(status, headers)
  c_responses = c_responses + 1
  if max_per_thread and c_responses >= max_per_thread and c_capped == 0 then
    c_capped = 1
    wrk.thread:stop()
  end
  if status >= 500 then
    c_5xx = c_5xx + 1
  elseif status >= 400 then
    c_4xx = c_4xx + 1
  elseif status >= 300 then
    c_3xx = c_3xx + 1
  else
    c_2xx = c_2xx + 1
  end
  -- uvicorn sends lower-case header names; accept either spelling anyway.
  local cache = headers["x-cache"] or headers["X-Cache"]
  if cache == "HIT" then
    c_hit = c_hit + 1
  elseif cache == "MISS" then
    c_miss = c_miss + 1
  elseif cache == "BYPASS" then
    c_bypass = c_bypass + 1
  else
    c_nocache = c_nocache + 1
  end
end

local counter_names = {
  "c_2xx", "c_3xx", "c_4xx", "c_5xx", "c_hit", "c_miss", "c_bypass", "c_nocache", "c_repeats",
  "c_capped",
}

function done(summary, latency, requests)
  local totals = {}
  for _, name in ipairs(counter_names) do
    totals[name] = 0
  end
  for _, thread in ipairs(bench_threads) do
    for _, name in ipairs(counter_names) do
      totals[name] = totals[name] + (tonumber(thread:get(name)) or 0)
    end
  end
  local parts = {}
  local function add(key, value)
    table.insert(parts, string.format('"%s":%.3f', key, value))
  end
  add("requests", summary.requests)
  add("duration_us", summary.duration)
  add("bytes", summary.bytes)
  add("err_connect", summary.errors.connect)
  add("err_read", summary.errors.read)
  add("err_write", summary.errors.write)
  add("err_status", summary.errors.status)
  add("err_timeout", summary.errors.timeout)
  add("lat_min_us", latency.min)
  add("lat_mean_us", latency.mean)
  add("lat_stdev_us", latency.stdev)
  add("lat_max_us", latency.max)
  for _, p in ipairs({ 50, 90, 99, 99.9 }) do
    add(string.format("lat_p%s_us", p), latency:percentile(p))
  end
  for _, name in ipairs(counter_names) do
    add(name, totals[name])
  end
  -- One tagged line: the runner ignores everything else wrk prints.
  io.write("PGHA_BENCH_JSON {", table.concat(parts, ","), "}\n")
end

-- This thread's contiguous slice of the ids in `path` (one per line), so
-- threads never share ids; a thread with an empty slice gets them all.
function thread_slice(path, threads)
  local all, mine = {}, {}
  for line in io.lines(path) do
    if line ~= "" then
      table.insert(all, line)
    end
  end
  local index = tonumber(bench_index) or 0
  local per = math.ceil(#all / threads)
  for i = index * per + 1, math.min((index + 1) * per, #all) do
    table.insert(mine, all[i])
  end
  if #mine == 0 then
    return all
  end
  return mine
end

-- This thread's slice of an id list as a cursor: each call returns the next id, and
-- whether the slice just started over (so a `once` script can count its re-reads).
function id_cursor(path, threads)
  local ids, pos = thread_slice(path, threads), 0
  return function()
    pos = pos + 1
    if pos > #ids then
      pos = 1
      return ids[pos], true, #ids
    end
    return ids[pos], false, #ids
  end
end
