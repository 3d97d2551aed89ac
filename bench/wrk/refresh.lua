-- Rotating refresh grants: one chain per wrk thread (run with -t N -c N, so
-- each thread has one connection and sends its next request only after the
-- previous answer). Each request presents the refresh token the previous
-- answer returned. BENCH_TOKENS names a file with one first token per line.
local threads = {}
local first_tokens = {}

function setup(thread)
  if #first_tokens == 0 then
    for line in io.lines(os.getenv("BENCH_TOKENS")) do
      first_tokens[#first_tokens + 1] = line
    end
  end
  local n = #threads + 1
  threads[n] = thread
  thread:set("token", first_tokens[n])
end

failures = 0
local headers = {
  ["Authorization"] = os.getenv("BENCH_AUTH"),
  ["Content-Type"] = "application/x-www-form-urlencoded",
}

function request()
  return wrk.format("POST", "/token", headers,
    "grant_type=refresh_token&refresh_token=" .. token)
end

function response(status, _, body)
  local next_token = status == 200 and body:match('"refresh_token"%s*:%s*"([^"]+)"')
  if next_token then
    token = next_token
  else
    failures = failures + 1
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local failed = 0
  for _, thread in ipairs(threads) do
    failed = failed + thread:get("failures")
  end
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"status_errors":%d,' ..
    '"socket_errors":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"chain_failures":%d}\n',
    summary.requests, summary.duration, e.status,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), failed))
end
