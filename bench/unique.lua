-- wrk: every request's URL made unique (...&u=NONCE-THREAD-COUNT), so that no
-- response cache answers it (the packaged nginx site caches /compute); pass a
-- fresh NONCE per wrk run after `--`. Reports like report.lua.
dofile("bench/report.lua")

local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local prefix = ""
init = function(args)
  prefix = (args[1] or tostring(os.time())) .. "-" .. tostring(tid) .. "-"
end

local count = 0
request = function()
  count = count + 1
  local sep = string.find(wrk.path, "?", 1, true) and "&" or "?"
  return wrk.format(nil, wrk.path .. sep .. "u=" .. prefix .. count)
end
