-- mod_s2s_auth_poshd: authenticate server-to-server peers with POSH (RFC 7711) through
-- poshd, the host's POSH resolution daemon.
--
-- When Prosody's own PKIX check (mod_s2s_auth_certs) does not find the peer's certificate
-- valid for the peer's domain, this module asks poshd whether the presented certificate
-- is published in the domain's POSH document (https://DOMAIN/.well-known/posh/xmpp-server.json).
-- If it is, the session is marked valid; otherwise PKIX's verdict stands. It never
-- accepts a certificate on an error. Use it with s2s_secure_auth = true.
--
--   plugin_paths = { "/usr/share/poshd/prosody" }
--   modules_enabled = { ..., "s2s_auth_poshd" }
--   poshd_socket = "/run/poshd/poshd.sock"  -- optional (default: the library's default)
--   poshd_timeout = 10                        -- optional, seconds per verification
--
-- The question is asked without blocking Prosody: the session waits in its own async
-- runner (util.async) while the answer arrives on the client's file descriptor, which
-- net.server watches. Requires the Lua binding "poshclient" (libposhclient) in the cpath.

module:set_global();

local async = require "util.async";
local x509 = require "util.x509";
local server = require "net.server";
local poshclient = require "poshclient";

local socket_path = module:get_option_string("poshd_socket", nil);
local timeout = module:get_option_number("poshd_timeout", 10);
if not timeout or timeout <= 0 then
	module:log("error", "poshd_timeout must be a positive number of seconds; using 10");
	timeout = 10;
end
-- How long past poshd_timeout a session waits for its completion before giving up on it.
-- The library answers every call within its timeout; this only guards against a lost one.
local grace = 5;

local SERVICE = "xmpp-server";
-- libposhclient's codes (posh_client.h).
local OK, EINVAL, EINTERNAL, ECANCELED = 0, 64, 70, 125;

local client, watcher; -- opened lazily (Prosody forks to daemonize; gRPC threads do not survive a fork)
local pending = {}; -- call id -> { done = function, result = completion table }
local stopping = false;

local function socket_name()
	return socket_path or (poshclient.default_socket and poshclient.default_socket()) or "the default socket";
end

-- Resume every waiting session with a failure and drop the client. The next verification
-- opens a new one.
local function close_client(reason)
	local w, c = watcher, client;
	watcher, client = nil, nil;
	if w then
		w:close(); -- while the client still reports its fd, so the watcher can unregister it
	end
	if c then
		c:close();
	end
	local waiting = pending;
	pending = {};
	for id, entry in pairs(waiting) do
		entry.result = { id = id, code = ECANCELED, error = reason };
		entry.done();
	end
end

-- Level-triggered: readable while completions wait, so always take all of them.
local function on_completions()
	local c = client;
	if not c then return; end
	for _, completion in ipairs(c:collect()) do
		local entry = pending[completion.id];
		if entry then
			pending[completion.id] = nil;
			entry.result = completion;
			entry.done(); -- resumes that session at once, inside this callback
		else
			module:log("debug", "Completion for call %s nobody waits for (code %s)",
				tostring(completion.id), tostring(completion.code));
		end
	end
end

local function get_client()
	if client then return client; end
	if stopping then return nil, "server stopping"; end
	local c, err = poshclient.open(socket_path, timeout);
	if not c then return nil, err; end
	local w = server.watchfd(c, on_completions);
	if not w then
		c:close();
		return nil, "cannot watch the client's file descriptor";
	end
	client, watcher = c, w;
	module:log("debug", "poshd client opened (%s, timeout %gs)", socket_name(), timeout);
	return client;
end

-- Start a verification; on a start failure other than a bad argument, reopen the client
-- once (never keep a broken client around).
local function start_verify(domain, chain)
	local c, err = get_client();
	if not c then return nil, err; end
	local id, code;
	id, err, code = c:verify(domain, SERVICE, chain);
	if id or code == EINVAL then return id, err; end
	module:log("warn", "poshd client could not start a call (%s); reopening it", tostring(err));
	close_client("poshd client reopened");
	c, err = get_client();
	if not c then return nil, err; end
	return c:verify(domain, SERVICE, chain);
end

-- The peer's chain as DER strings, leaf first, or nil.
local function peer_chain(session)
	local conn = session.conn and session.conn:socket();
	if not (conn and conn.getpeerchain) then return nil; end
	local certs = conn:getpeerchain();
	if not certs or not certs[1] then return nil; end
	local chain = {};
	for i, cert in ipairs(certs) do
		local der = x509.pem2der(cert:pem());
		if not der then return nil; end
		chain[i] = der;
	end
	return chain;
end

local function check_posh(event)
	local session, host = event.session, event.host;
	if session.cert_chain_status == "valid" and session.cert_identity_status == "valid" then
		return; -- PKIX is enough
	end
	local log = session.log or module._log;
	if not host then
		log("debug", "POSH: no peer domain to check");
		return;
	end
	local chain = peer_chain(session);
	if not chain then
		log("debug", "POSH: %s presented no certificate", host);
		return;
	end
	if not async.ready() then
		log("warn", "POSH: cannot wait for poshd outside an async context; not checking %s", host);
		return;
	end

	local id, err = start_verify(host, chain);
	if not id then
		log("error", "POSH: cannot ask poshd (%s) about %s: %s", socket_name(), host, tostring(err));
		return;
	end
	log("debug", "POSH: verifying %s with poshd (call %s)", host, tostring(id));

	local wait, done = async.waiter();
	local entry = { done = done };
	pending[id] = entry;
	local guard = module:add_timer(timeout + grace, function ()
		if pending[id] ~= entry then return; end
		pending[id] = nil;
		if client then client:cancel(id); end
		entry.result = { id = id, code = EINTERNAL, error = "no answer from poshd in time" };
		done();
	end);
	wait();
	guard:stop();

	if session.destroyed then
		log("debug", "POSH: session closed while verifying %s", host);
		return;
	end

	local r = entry.result;
	if r.verdict == "verified" and r.code == OK then
		session.cert_chain_status = "valid";
		session.cert_identity_status = "valid";
		session.cert_chain_errors = nil;
		local via = "";
		if r.matched_kid and r.matched_kid ~= "" then via = via .. ", key " .. r.matched_kid; end
		if r.delegated_to and r.delegated_to ~= "" then via = via .. ", delegated to " .. r.delegated_to; end
		log("info", "POSH verified certificate for %s (from_cache=%s%s)", host, tostring(r.from_cache), via);
	elseif r.verdict == "not_verified" then
		log("warn", "POSH: certificate of %s is not in its POSH document: %s", host, r.reason or "");
	elseif r.verdict == "no_posh" then
		log("info", "POSH: %s publishes no POSH document", host);
	elseif r.verdict == "error" then
		log("warn", "POSH: could not determine %s's POSH document: %s", host, r.reason or "");
	else
		log(r.code == ECANCELED and "warn" or "error", "POSH: poshd call about %s failed (%s): %s", host,
			poshclient.strerror(r.code), r.error or "");
	end
	-- Return nothing: the policy check (priority -1) decides from the statuses.
end

-- After mod_s2s_auth_certs (509), before mod_s2s's policy check (-1).
module:hook("s2s-check-certificate", check_posh, 100);

module:hook_global("server-stopping", function ()
	stopping = true;
	close_client("server stopping");
end, 10);

function module.unload()
	stopping = true;
	close_client("module unloaded");
end
