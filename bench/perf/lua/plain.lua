-- GET one fixed path (the URL's), counting responses like every other script.
-- Used for the bare uvicorn + Starlette anchor, so both sides of the
-- hit-vs-bare ratio pay the same client-side Lua cost per response.
dofile(os.getenv("PGHA_BENCH_LUA") .. "/report.lua")

function response(status, headers, body)
  count_response(status, headers)
end
