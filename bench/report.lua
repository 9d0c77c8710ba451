-- wrk reporter: one JSON line with throughput, latency percentiles (µs),
-- a latency distribution (percentile, µs) for the CDF plots, and errors.
done = function(summary, latency, requests)
  local e = summary.errors
  local cdf = {}
  for _, p in ipairs({1, 5, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.99, 100}) do
    -- (percentile(100) reads 0 in wrk 4.1: the maximum is latency.max)
    cdf[#cdf + 1] = string.format('[%s,%d]', p, p == 100 and latency.max or latency:percentile(p))
  end
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"rps":%.1f,"p50_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"errors":%d,"non2xx":%d,"cdf":[%s]}\n',
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max,
    e.connect + e.read + e.write + e.timeout, e.status, table.concat(cdf, ',')))
end
