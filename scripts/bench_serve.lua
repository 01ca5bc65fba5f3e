-- wrk's request script for scripts/bench-serve.sh: each request is the next line of the file
-- $BENCH_BODIES (one JSON body per line), in turn, POSTed to the URL wrk was given.
local bodies = {}
for line in io.lines(os.getenv("BENCH_BODIES")) do
    bodies[#bodies + 1] = line
end
local next_body = 0
local headers = { ["Content-Type"] = "application/json" }

request = function()
    next_body = next_body % #bodies + 1
    return wrk.format("POST", nil, headers, bodies[next_body])
end
