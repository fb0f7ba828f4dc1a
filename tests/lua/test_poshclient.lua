-- The Lua 5.4 binding of libposhclient's asynchronous API, run by lua5.4 against a real
-- poshd (started by run_lua_tests.py with the test origin). Waits on the client's fd with
-- LuaSocket's select, as an event loop would: nothing here may block in the binding.
local poshclient = require "poshclient"
local socket = require "socket"

local SOCKET = assert(os.getenv("POSH_TEST_SOCKET"), "POSH_TEST_SOCKET not set")
local DIR = assert(os.getenv("POSH_TEST_DIR"), "POSH_TEST_DIR not set")
local XMPP_SHA256 = assert(os.getenv("POSH_TEST_XMPP_SHA256"))

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("a")
  f:close()
  return data
end

local GOOD_DER = read_file(DIR .. "/xmpp.der")
local OTHER_DER = read_file(DIR .. "/other.der")

-- socket.select takes any object with a getfd method: the client is one.
local function readable(client, timeout)
  local r = socket.select({ client }, nil, timeout)
  return #r > 0
end

-- Waits for every id in `ids` (a set) to complete; returns id -> completion. Fails on a
-- duplicate, an unknown id, or when `limit` seconds pass.
local function wait_all(client, ids, limit)
  local got, left = {}, 0
  for _ in pairs(ids) do left = left + 1 end
  local deadline = socket.gettime() + (limit or 30)
  while left > 0 do
    assert(socket.gettime() < deadline, ("%d completions missing after %ss"):format(left, limit or 30))
    if readable(client, 0.5) then
      local batch = client:collect()
      assert(#batch > 0, "fd readable but collect() returned nothing")
      for _, c in ipairs(batch) do
        assert(ids[c.id] ~= nil, "completion for an unknown id " .. tostring(c.id))
        assert(got[c.id] == nil, "completion delivered twice for id " .. c.id)
        got[c.id] = c
        left = left - 1
      end
    end
  end
  return got
end

local function wait_one(client, id, limit)
  return wait_all(client, { [id] = true }, limit)[id]
end

local function eq(actual, expected, what)
  if actual ~= expected then
    error(("%s: expected %s, got %s"):format(what, tostring(expected), tostring(actual)), 2)
  end
end

local tests = {}
local function test(name, fn) tests[#tests + 1] = { name = name, fn = fn } end

test("module exports and codes", function()
  eq(type(poshclient.open), "function", "open")
  eq(poshclient.codes.OK, 0, "OK")
  eq(poshclient.codes.EUNAVAILABLE, 69, "EUNAVAILABLE")
  eq(poshclient.codes.ECANCELED, 125, "ECANCELED")
  assert(#poshclient.strerror(69) > 0)
end)

test("a new client has an idle fd and nothing pending", function()
  local c <close> = assert(poshclient.open(SOCKET, 10))
  local fd = c:getfd()
  eq(math.type(fd), "integer", "fd type")
  assert(fd >= 0, "fd")
  eq(c:fd(), fd, "fd()")
  eq(c:pending(), 0, "pending")
  eq(readable(c, 0), false, "readable when idle")
  eq(#c:collect(), 0, "collect when idle")
  assert(tostring(c):find("poshclient.client"))
end)

test("verify: verified, then not_verified for another certificate", function()
  local c <close> = assert(poshclient.open(SOCKET, 10))
  local id1 = assert(c:verify("good.example.test", "xmpp-server", { GOOD_DER }))
  local id2 = assert(c:verify("good.example.test", nil, { OTHER_DER, GOOD_DER }))
  eq(c:pending(), 2, "pending after two starts")
  local got = wait_all(c, { [id1] = true, [id2] = true }, 20)
  local a, b = got[id1], got[id2]
  eq(a.kind, "verify", "kind")
  eq(a.code, 0, "code of the matching leaf")
  eq(a.verdict, "verified", "verdict of the matching leaf")
  eq(a.domain, "good.example.test", "domain")
  eq(a.service, "xmpp-server", "service")
  eq(a.error, nil, "no transport error")
  -- Only the leaf (first certificate) counts: the good one second in the chain is not it.
  eq(b.code, 1, "code of another leaf")
  eq(b.verdict, "not_verified", "verdict of another leaf")
  eq(c:pending(), 0, "pending after collect")
  eq(readable(c, 0), false, "fd readable after draining")
  -- The second Verify of the same domain is answered from poshd's cache.
  local id3 = assert(c:verify("good.example.test", "xmpp-server", { GOOD_DER }))
  local d = wait_one(c, id3, 10)
  eq(d.verdict, "verified", "cached verdict")
  eq(d.from_cache, true, "from_cache")
end)

test("lookup: found with keys, not found, document error", function()
  local c <close> = assert(poshclient.open(SOCKET, 10))
  local found = assert(c:lookup("good.example.test", "xmpp-server", false))
  local none = assert(c:lookup("nothing.example.test"))
  local broken = assert(c:lookup("broken.example.test", nil, true))
  local got = wait_all(c, { [found] = true, [none] = true, [broken] = true }, 20)
  local f = got[found]
  eq(f.kind, "lookup", "kind")
  eq(f.code, 0, "found code")
  eq(f.status, "found", "found status")
  eq(f.format, "rfc7711", "format")
  eq(#f.keys, 1, "one key")
  eq(f.keys[1].fingerprints[1].hash, "sha-256", "hash name")
  eq(f.keys[1].fingerprints[1].value, XMPP_SHA256, "fingerprint value")
  assert(f.expires_at > os.time(), "expires_at in the future")
  eq(got[none].code, 1, "not found code")
  eq(got[none].status, "not_found", "not found status")
  eq(got[broken].code, 2, "document error code")
  eq(got[broken].status, "error", "document error status")
  assert(got[broken].error and #got[broken].error > 0, "document error message")
end)

test("2000 concurrent verifies: each completes exactly once", function()
  local c <close> = assert(poshclient.open(SOCKET, 30))
  local ids = {}
  for i = 1, 2000 do
    local chain = (i % 3 == 0) and { OTHER_DER } or { GOOD_DER }
    ids[assert(c:verify("good.example.test", "xmpp-server", chain))] = (i % 3 == 0)
  end
  eq(c:pending(), 2000, "pending")
  local got = wait_all(c, ids, 60)
  for id, other in pairs(ids) do
    eq(got[id].verdict, other and "not_verified" or "verified", "verdict of call " .. id)
  end
  eq(c:pending(), 0, "pending at the end")
  eq(readable(c, 0), false, "fd at the end")
end)

test("cancel: a slow call completes once, as cancelled", function()
  local c <close> = assert(poshclient.open(SOCKET, 20))
  local t0 = socket.gettime()
  local id = assert(c:verify("slow.example.test", "xmpp-server", { GOOD_DER }))
  assert(c:cancel(id))
  local done = wait_one(c, id, 5)
  eq(done.code, 125, "code")
  assert(done.error and #done.error > 0, "cancelled has a message")
  assert(socket.gettime() - t0 < 4, "cancelled call took too long")
  local ok, err = c:cancel(id)
  eq(ok, nil, "cancelling a taken call")
  assert(err:find("no such"), err)
  eq(#c:collect(), 0, "no second completion")
end)

test("bad arguments start nothing", function()
  local c <close> = assert(poshclient.open(SOCKET, 10))
  local id, err, code = c:verify("good.example.test", nil, {})
  eq(id, nil, "empty chain")
  eq(code, 64, "empty chain code")
  assert(err and #err > 0)
  id, err, code = c:verify("good.example.test", nil, { GOOD_DER, 42 })
  eq(id, nil, "non-string entry")
  eq(code, 64, "non-string entry code")
  eq(c:pending(), 0, "pending")
  assert(not pcall(c.verify, c, "good.example.test", nil, "not a table"), "chain must be a table")
  assert(not pcall(poshclient.open, SOCKET, -1), "negative timeout")
end)

test("an unreachable daemon completes with code 69, promptly", function()
  local c <close> = assert(poshclient.open(DIR .. "/no-such.sock", 3))
  local t0 = socket.gettime()
  local id = assert(c:verify("good.example.test", nil, { GOOD_DER }))
  local done = wait_one(c, id, 10)
  eq(done.code, 69, "code")
  assert(done.error and #done.error > 0, "message")
  assert(socket.gettime() - t0 < 5, "bounded by the timeout")
end)

test("close with calls in flight returns at once; a closed client says so", function()
  local c = assert(poshclient.open(SOCKET, 20))
  for _ = 1, 50 do assert(c:verify("slow.example.test", nil, { GOOD_DER })) end
  local t0 = socket.gettime()
  c:close()
  assert(socket.gettime() - t0 < 3, "close waited for the origin")
  c:close() -- idempotent
  eq(c:getfd(), -1, "fd after close")
  eq(c:pending(), 0, "pending after close")
  local id, err = c:verify("good.example.test", nil, { GOOD_DER })
  eq(id, nil, "verify after close")
  assert(err:find("closed"), err)
  eq(#c:collect(), 0, "collect after close")
end)

test("garbage collection closes abandoned clients", function()
  for _ = 1, 20 do
    local c = assert(poshclient.open(SOCKET, 20))
    assert(c:verify("slow.example.test", nil, { GOOD_DER }))
  end
  collectgarbage()
  collectgarbage()
  -- Still usable afterwards.
  local c <close> = assert(poshclient.open(SOCKET, 10))
  local id = assert(c:lookup("good.example.test"))
  eq(wait_one(c, id, 10).status, "found", "status after gc")
end)

local passed, failed = 0, 0
for i, t in ipairs(tests) do
  local ok, err = xpcall(t.fn, debug.traceback)
  if ok then
    passed = passed + 1
    print(("ok %d - %s"):format(i, t.name))
  else
    failed = failed + 1
    print(("not ok %d - %s\n  %s"):format(i, t.name, tostring(err):gsub("\n", "\n  ")))
  end
end
print(("%d passed, %d failed"):format(passed, failed))
os.exit(failed == 0 and 0 or 1)
