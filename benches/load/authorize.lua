-- wrk script for iamgate's HTTP/JSON API: POST /v1/authorize with the body
-- in the file named by IAMGATE_WRK_BODY; at the end, writes one JSON line of
-- results to the file named by IAMGATE_WRK_OUT (latencies in microseconds).
-- Used by benches/load/run.sh.
local f = assert(io.open(os.getenv("IAMGATE_WRK_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"

function done(summary, latency, requests)
  local e = summary.errors
  local out = assert(io.open(os.getenv("IAMGATE_WRK_OUT"), "w"))
  out:write(string.format(
    '{"requests":%d,"duration_us":%d,"errors_connect":%d,"errors_read":%d,' ..
    '"errors_write":%d,"errors_status":%d,"errors_timeout":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean))
  out:close()
end
