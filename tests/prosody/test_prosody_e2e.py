#!/usr/bin/python3
"""End to end: three real Prosody 0.12 servers, poshd, nginx and mod_s2s_auth_poshd.

    test_prosody_e2e.py POSHD POSHCTL LUA_CPATH_DIR MODULE_DIR

Topology (README.md): a.test (127.0.0.2) and c.test (127.0.0.4) load s2s_auth_poshd and ask
a private poshd; b.test (127.0.0.3) presents a self-signed certificate for hosting.test,
so PKIX alone refuses it and only its POSH document (served by nginx, certificate from the
test CA) can prove it. All three run with s2s_secure_auth = true. XMPP clients: slixmpp.

Scenarios, in order (each depends only on the setup and the ones before it):
  a  user@a.test -> user@b.test and back (POSH accepts b.test on a.test, both directions)
  e  user@c.test -> user@b.test: c.test's verification is answered from poshd's cache
     (one retrieval of b.test's document in all: nginx's access log, poshctl stats)
  b  a wrong pin in b.test's document: a.test refuses b.test
  c  poshd stopped: a.test refuses b.test, and still serves its own users
  d  b.test's POSH origin answers after a delay: a.test stays responsive meanwhile
     (a login and a message to c.test), and b.test is accepted once the answer comes
  f  the module reloaded while a session waits: that session is refused at once, and
     the reloaded module verifies b.test again (new client)
Finally: no Lua error in any log; a.test and c.test stop cleanly (SIGTERM, status 0).

Exit status: 0 passed, 1 failed, 77 skipped (not root, or prosody/nginx/slixmpp missing).
POSH_IT_KEEP=1 keeps the temporary directory (all logs) whatever the outcome; it is also
kept, and its path printed, on failure.
"""
import asyncio
import base64
import datetime
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import traceback

SKIP = 77
HERE = os.path.dirname(os.path.abspath(__file__))
ORIGIN = os.path.join(HERE, "..", "origin", "posh_origin.py")
PYTHON = "/usr/bin/python3"
PROSODY = "/usr/bin/prosody"
PROSODYCTL = "/usr/bin/prosodyctl"
NGINX = "/usr/sbin/nginx"

ADDR = {"a.test": "127.0.0.2", "b.test": "127.0.0.3", "c.test": "127.0.0.4"}
PASSWORD = "e2e-secret"
OVERALL_TIMEOUT = 170    # seconds for the whole run (ctest allows 240)
POSHD_TIMEOUT = 10       # the module's poshd_timeout (seconds)
SLOW_ORIGIN_DELAY = 6    # scenario d: seconds before b.test's origin answers
PROMPT = 3.0             # scenario d: a login + a message must take less than this
BOUNCE_WAIT = POSHD_TIMEOUT + 12


class Failure(Exception):
    pass


class Timeout(BaseException):
    pass


class Stopped(BaseException):
    pass


def log(msg):
    sys.stdout.write("[%6.1f] %s\n" % (time.monotonic() - T0, msg))
    sys.stdout.flush()


T0 = time.monotonic()


# ---------------------------------------------------------------------------------------
# Certificates (python3-cryptography)

def make_cert(cn, k, now, issuer=None, names=(), ca=False):
    """A test certificate for `cn`: a CA, or a leaf with DNS `names` (signed by
    issuer = (certificate, key), else self-signed), valid from a day before `now` for 30 days.
    Shared with tests/probe."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    b = (x509.CertificateBuilder().subject_name(name)
         .issuer_name(issuer[0].subject if issuer else name)
         .public_key(k.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(days=1))
         .not_valid_after(now + datetime.timedelta(days=30))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        b = b.add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                            critical=True)
    else:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                            critical=False)
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                   ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return b.sign(issuer[1] if issuer else k, hashes.SHA256())


def make_pki(d):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    now = datetime.datetime.now(datetime.timezone.utc)

    def key():
        return ec.generate_private_key(ec.SECP256R1())

    def cert(cn, k, issuer=None, names=(), ca=False):
        return make_cert(cn, k, now, issuer, names, ca)

    def write(stem, c, k):
        with open(stem + ".crt", "wb") as f:
            f.write(c.public_bytes(serialization.Encoding.PEM))
        with open(stem + ".key", "wb") as f:
            f.write(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
        os.chmod(stem + ".key", 0o600)
        return c.public_bytes(serialization.Encoding.DER)

    os.makedirs(d)
    ca_key = key()
    ca = cert("poshd e2e test CA", ca_key, ca=True)
    write(os.path.join(d, "ca"), ca, ca_key)
    issuer = (ca, ca_key)
    der = {}
    for host in ("a.test", "c.test"):           # valid from the test CA: PKIX is enough
        k = key()
        der[host] = write(os.path.join(d, host), cert(host, k, issuer, [host]), k)
    k = key()                                   # b.test: a hosting provider's self-signed one
    der["b.test"] = write(os.path.join(d, "b.test"), cert("hosting.test", k, None, ["hosting.test"]), k)
    k = key()                                   # the HTTPS origin serving b.test's document
    write(os.path.join(d, "origin-b.test"), cert("b.test", k, issuer, ["b.test"]), k)
    k = key()                                   # only to make a wrong pin
    der["other"] = cert("other.test", k, None, ["other.test"]).public_bytes(serialization.Encoding.DER)
    return der


def posh_document(der, expires=3600):
    fp = base64.b64encode(hashlib.sha256(der).digest()).decode()
    return json.dumps({"fingerprints": [{"sha-256": fp}], "expires": expires})


# ---------------------------------------------------------------------------------------
# Processes

def fill(template, **values):
    with open(os.path.join(HERE, template)) as f:
        text = f.read()
    for k, v in values.items():
        text = text.replace("@%s@" % k, str(v))
    if "@" in "".join(line for line in text.splitlines() if not line.lstrip().startswith(("--", "#"))):
        raise Failure("unfilled placeholder in %s" % template)
    return text


class Proc:
    def __init__(self, name, argv, logfile, env=None, cwd=None):
        self.name, self.argv, self.logfile = name, argv, logfile
        with open(logfile, "ab") as out:
            self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                      env=env, cwd=cwd, start_new_session=True)

    def alive(self):
        return self.p.poll() is None

    def stop(self, timeout=8):
        if self.p.poll() is not None:
            return self.p.returncode
        try:
            os.killpg(self.p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            log("%s did not stop within %ss: killed" % (self.name, timeout))
            try:
                os.killpg(self.p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return self.p.wait(5)


def wait_until(what, pred, timeout, proc=None, interval=0.05):
    end = time.monotonic() + timeout
    while True:
        if pred():
            return
        if proc is not None and not proc.alive():
            raise Failure("%s exited (status %s) while waiting for %s" % (proc.name, proc.p.returncode, what))
        if time.monotonic() > end:
            raise Failure("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(interval)


def tcp_accepts(addr, port):
    try:
        with socket.create_connection((addr, port), timeout=0.5):
            return True
    except OSError:
        return False


def unix_accepts(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(0.5)
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port(addr):
    with socket.socket() as s:
        s.bind((addr, 0))
        return s.getsockname()[1]


def tail(path, n=60):
    if not path:
        return "  (not started)\n"
    try:
        with open(path, errors="replace") as f:
            lines = f.readlines()
    except OSError as e:
        return "  (%s)\n" % e
    return "".join("  " + l for l in lines[-n:]) or "  (empty)\n"


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


# ---------------------------------------------------------------------------------------
# XMPP clients (slixmpp, asyncio)

def make_client_class():
    import slixmpp

    class Client(slixmpp.ClientXMPP):
        def __init__(self, jid, password):
            super().__init__(jid, password)
            self.inbox = []
            self.arrived = asyncio.Event()
            self.started = asyncio.get_running_loop().create_future()
            self.ssl_context.check_hostname = False     # c2s TLS is not under test
            self.ssl_context.verify_mode = ssl.CERT_NONE
            self.add_event_handler("session_start", self.on_start)
            self.add_event_handler("failed_auth", self.on_failed)
            self.add_event_handler("message", self.on_message)
            self.add_event_handler("message_error", self.on_message)
            self.register_plugin("xep_0199")

        async def on_start(self, _event):
            self.send_presence()
            if not self.started.done():
                self.started.set_result(True)

        def on_failed(self, _event):
            if not self.started.done():
                self.started.set_exception(Failure("authentication failed for %s" % self.boundjid))

        def on_message(self, msg):
            self.inbox.append(msg)
            self.arrived.set()

        async def wait_message(self, pred, timeout):
            end = time.monotonic() + timeout
            while True:
                for m in self.inbox:
                    if pred(m):
                        return m
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self.arrived.clear()
                try:
                    await asyncio.wait_for(self.arrived.wait(), left)
                except asyncio.TimeoutError:
                    pass

    return Client


class Xmpp:
    """Logs clients in and out within one asyncio loop."""

    def __init__(self, Client):
        self.Client = Client
        self.clients = []

    async def login(self, user, host, resource="e2e", timeout=10):
        c = self.Client("%s@%s/%s" % (user, host, resource), PASSWORD)
        self.clients.append(c)
        c.connect(address=(ADDR[host], 5222))
        try:
            await asyncio.wait_for(c.started, timeout)
        except asyncio.TimeoutError:
            raise Failure("%s@%s could not log in within %ss" % (user, host, timeout))
        # A round trip, so that the initial presence is processed before anything else.
        await c.plugin["xep_0199"].ping(jid=host, timeout=timeout)
        return c

    async def close(self):
        clients, self.clients = self.clients, []
        waits = []
        for c in clients:
            try:
                waits.append(c.disconnect(wait=0.5))
            except Exception:  # noqa: BLE001 - best effort at teardown
                pass
        if waits:
            await asyncio.wait([asyncio.ensure_future(w) for w in waits], timeout=3)


def is_body(text):
    return lambda m: m["type"] != "error" and m["body"] == text


def is_error():
    return lambda m: m["type"] == "error"


# ---------------------------------------------------------------------------------------
# The test

class E2E:
    def __init__(self, poshd, poshctl, cpath, module_dir):
        self.poshd_bin, self.poshctl_bin = poshd, poshctl
        self.cpath, self.module_dir = os.path.abspath(cpath), os.path.abspath(module_dir)
        self.tmp = tempfile.mkdtemp(prefix="posh-prosody-")
        self.procs = {}
        self.confs = {}
        self.env_prosody = None
        self.poshd_runs = 0
        self.poshd_log = None
        self.nginx_dir = None
        self.results = []

    # -- setup ----------------------------------------------------------------------------
    def setup(self):
        t = self.tmp
        self.pki = os.path.join(t, "pki")
        self.der = make_pki(self.pki)
        self.ca = os.path.join(self.pki, "ca.crt")
        self.hosts_file = os.path.join(t, "hosts")
        with open(self.hosts_file, "w") as f:
            for host, addr in ADDR.items():
                f.write("%s %s\n" % (addr, host))
        self.sock = os.path.join(t, "poshd.sock")
        busy = ["%s:%d" % (ADDR[h], port) for h in ADDR for port in (5222, 5269) if tcp_accepts(ADDR[h], port)]
        if busy:
            raise Failure("something already listens on %s (a Prosody left over by an earlier run?)"
                          % ", ".join(busy))
        self.start_nginx()
        self.set_document(self.der["b.test"])
        self.start_poshd(["--connect-to", "b.test:443:%s:%d" % (ADDR["b.test"], self.nginx_port)],
                         self.ca)
        for host in ("a.test", "b.test", "c.test"):
            self.start_prosody(host)

    def start_nginx(self):
        d = os.path.join(self.tmp, "nginx")
        for sub in ("tmp", "www/.well-known/posh"):
            os.makedirs(os.path.join(d, sub))
        self.nginx_dir = d
        self.nginx_port = free_port(ADDR["b.test"])
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write(fill("nginx.conf.in", DIR=d, ADDR=ADDR["b.test"], PORT=self.nginx_port,
                         CERT=os.path.join(self.pki, "origin-b.test.crt"),
                         KEY=os.path.join(self.pki, "origin-b.test.key")))
        p = self.spawn("nginx", [NGINX, "-p", d, "-e", os.path.join(d, "error.log"), "-c", conf],
                       os.path.join(d, "stderr.log"))
        wait_until("nginx on %s:%d" % (ADDR["b.test"], self.nginx_port),
                   lambda: tcp_accepts(ADDR["b.test"], self.nginx_port), 10, p)

    def set_document(self, der):
        path = os.path.join(self.nginx_dir, "www/.well-known/posh/xmpp-server.json")
        write_atomic(path, posh_document(der))

    def retrievals(self):
        return sum(1 for line in read(os.path.join(self.nginx_dir, "access.log")).splitlines()
                   if "/.well-known/posh/xmpp-server.json" in line)

    def start_poshd(self, extra, ca_file):
        self.poshd_runs += 1
        self.poshd_log = os.path.join(self.tmp, "poshd-%d.log" % self.poshd_runs)
        p = self.spawn("poshd", [self.poshd_bin, "--socket", self.sock, "--ca-file", ca_file,
                                 "--log-level", "debug"] + extra, self.poshd_log)
        wait_until("poshd on %s" % self.sock,
                   lambda: os.path.exists(self.sock) and unix_accepts(self.sock), 15, p)

    def start_prosody(self, host):
        d = os.path.join(self.tmp, host)
        os.makedirs(os.path.join(d, "data"))
        os.makedirs(os.path.join(d, "certs"))   # Prosody indexes it at start (empty: certs are in ssl)
        with_posh = host != "b.test"
        conf = os.path.join(d, "prosody.cfg.lua")
        with open(conf, "w") as f:
            f.write(fill("prosody.cfg.lua.in", DIR=d, ADDR=ADDR[host], HOST=host,
                         EXTRA_MODULES='"s2s_auth_poshd";' if with_posh else "",
                         HOSTS_FILE=self.hosts_file, CA_FILE=self.ca, MODULE_DIR=self.module_dir,
                         POSHD_SOCKET=self.sock, POSHD_TIMEOUT=POSHD_TIMEOUT,
                         CERT=os.path.join(self.pki, host + ".crt"),
                         KEY=os.path.join(self.pki, host + ".key")))
        env = dict(os.environ)
        env["LUA_CPATH_5_4"] = self.cpath + "/?.so;;"
        for user in ("alice", "bob"):
            r = subprocess.run([PROSODYCTL, "--config", conf, "register", user, host, PASSWORD],
                               env=env, capture_output=True, text=True, timeout=20)
            if r.returncode != 0:
                raise Failure("prosodyctl register %s@%s failed (%d): %s%s"
                              % (user, host, r.returncode, r.stdout, r.stderr))
        p = self.spawn(host, [PROSODY, "-F", "--config", conf], os.path.join(d, "stdout.log"), env=env)
        wait_until("%s's c2s and s2s ports" % host,
                   lambda: tcp_accepts(ADDR[host], 5222) and tcp_accepts(ADDR[host], 5269), 20, p)
        bad = [l for l in read(os.path.join(d, "prosody.log")).splitlines()
               if "Unable to load module" in l or "Error initializing module" in l]
        if bad:
            raise Failure("%s could not load a module (LUA_CPATH_5_4=%s):\n%s"
                          % (host, env["LUA_CPATH_5_4"], "\n".join(bad)))
        self.confs[host] = conf
        self.env_prosody = env

    def spawn(self, name, argv, logfile, env=None):
        p = Proc(name, argv, logfile, env=env)
        self.procs[name] = p
        return p

    def teardown(self):
        for name, p in reversed(list(self.procs.items())):
            p.stop()

    # -- helpers ----------------------------------------------------------------------------
    def prosody_log(self, host):
        return read(os.path.join(self.tmp, host, "prosody.log"))

    def log_mark(self, host):
        return len(self.prosody_log(host))

    def log_since(self, host, mark):
        return self.prosody_log(host)[mark:]

    def poshctl(self, *args):
        r = subprocess.run([self.poshctl_bin, "--socket", self.sock] + list(args),
                           capture_output=True, text=True, timeout=20)
        return r

    def stats(self):
        r = self.poshctl("--json", "stats")
        if r.returncode != 0:
            raise Failure("poshctl stats failed (%d): %s%s" % (r.returncode, r.stdout, r.stderr))
        return json.loads(r.stdout)

    def flush_cache(self):
        r = self.poshctl("cache", "flush")
        if r.returncode != 0:
            raise Failure("poshctl cache flush failed (%d): %s%s" % (r.returncode, r.stdout, r.stderr))

    async def wait_in_flight(self, tag):
        """Until a.test's verification is waiting for poshd's retrieval of b.test's document."""
        end = time.monotonic() + 10
        while self.stats().get("in_flight", 0) < 1:
            self.check(time.monotonic() < end, "%s: poshd did not start retrieving b.test's document" % tag)
            await asyncio.sleep(0.05)

    def admin(self, host, *command):
        """prosodyctl shell COMMAND... on HOST's instance (its admin socket)."""
        r = subprocess.run([PROSODYCTL, "--config", self.confs[host], "shell"] + list(command),
                           env=self.env_prosody, capture_output=True, text=True, timeout=20)
        if r.returncode != 0 and "No sessions to close" not in r.stdout + r.stderr:
            raise Failure("prosodyctl shell %s on %s failed (%d): %s%s"
                          % (" ".join(command), host, r.returncode, r.stdout, r.stderr))
        return r.stdout

    def close_s2s(self, host):
        """Close every s2s connection of HOST (admin shell), and wait until they are gone."""
        self.admin(host, "s2s", "closeall", host)
        time.sleep(0.5)

    def check(self, cond, msg, logs=("a.test", "b.test", "c.test")):
        if not cond:
            raise Failure("%s\n%s" % (msg, self.logs(logs)))

    def logs(self, hosts=("a.test", "b.test", "c.test")):
        out = []
        for h in hosts:
            out.append("--- %s: prosody.log (tail)\n%s" % (h, tail(os.path.join(self.tmp, h, "prosody.log"))))
        out.append("--- poshd log (tail)\n%s" % tail(self.poshd_log, 40))
        out.append("--- nginx access.log\n%s" % tail(self.nginx_dir and os.path.join(self.nginx_dir, "access.log"), 10))
        return "\n".join(out)

    # -- scenarios ----------------------------------------------------------------------------
    async def scenario_a(self, x):
        """a.test <-> b.test: b.test's self-signed certificate is accepted through POSH."""
        alice = await x.login("alice", "a.test")
        bob = await x.login("bob", "b.test")
        alice.send_message(mto="bob@b.test/e2e", mbody="hello b from a", mtype="chat")
        m = await bob.wait_message(is_body("hello b from a"), 25)
        self.check(m is not None, "a: bob@b.test did not receive alice@a.test's message within 25 s")
        bob.send_message(mto="alice@a.test/e2e", mbody="hello a from b", mtype="chat")
        m = await alice.wait_message(is_body("hello a from b"), 25)
        self.check(m is not None, "a: alice@a.test did not receive bob@b.test's reply within 25 s")
        text = self.prosody_log("a.test")
        self.check("POSH verified certificate for b.test" in text,
                   "a: a.test's log does not show b.test verified through POSH", ("a.test",))
        self.check(not any(e["type"] == "error" for e in alice.inbox + bob.inbox),
                   "a: an error message came back: %s" % [str(e) for e in alice.inbox + bob.inbox])
        await x.close()
        n = text.count("POSH verified certificate for b.test")
        return "delivered both ways; a.test verified b.test through POSH %d time(s) (outgoing + incoming)" % n

    async def scenario_e(self, x):
        """c.test -> b.test: a second Prosody process gets b.test's answer from poshd's cache."""
        before = self.stats()
        carol = await x.login("alice", "c.test")
        bob = await x.login("bob", "b.test")
        carol.send_message(mto="bob@b.test/e2e", mbody="hello b from c", mtype="chat")
        m = await bob.wait_message(is_body("hello b from c"), 25)
        self.check(m is not None, "e: bob@b.test did not receive alice@c.test's message within 25 s")
        await x.close()
        ctext = self.prosody_log("c.test")
        line = next((l for l in ctext.splitlines() if "POSH verified certificate for b.test" in l), None)
        self.check(line is not None, "e: c.test's log does not show b.test verified through POSH", ("c.test",))
        self.check("from_cache=true" in line, "e: c.test's verification was not answered from cache: %s" % line,
                   ("c.test",))
        after = self.stats()
        count = self.retrievals()
        self.check(count == 1, "e: b.test's document was retrieved %d times (nginx access log), expected 1"
                   % count)
        self.check(after.get("fetches") == 1,
                   "e: poshd stats fetches = %s, expected 1 (stats: %s)" % (after.get("fetches"), after))
        self.check(after.get("cache_hits", 0) > before.get("cache_hits", 0),
                   "e: poshd counted no cache hit for c.test's verification (before %s, after %s)"
                   % (before, after))
        return "1 retrieval (nginx log), stats fetches=1, cache_hits %s -> %s, c.test: from_cache=true" % (
            before.get("cache_hits"), after.get("cache_hits"))

    async def expect_refused(self, x, tag, module_says):
        mark = self.log_mark("a.test")
        alice = await x.login("alice", "a.test")
        bob = await x.login("bob", "b.test")
        t = time.monotonic()
        alice.send_message(mto="bob@b.test/e2e", mbody="must not arrive " + tag, mtype="chat")
        bounce = await alice.wait_message(is_error(), BOUNCE_WAIT)
        took = time.monotonic() - t
        self.check(bounce is not None,
                   "%s: no error came back to alice@a.test within %ss" % (tag, BOUNCE_WAIT))
        m = await bob.wait_message(is_body("must not arrive " + tag), 1)
        self.check(m is None, "%s: the message reached bob@b.test although b.test should be refused" % tag)
        new = self.log_since("a.test", mark)
        self.check("Forbidding insecure connection to/from b.test" in new,
                   "%s: a.test's log does not show the refusal of b.test" % tag, ("a.test",))
        self.check(module_says in new, "%s: a.test's log lacks %r" % (tag, module_says), ("a.test",))
        self.check("POSH verified certificate for b.test" not in new,
                   "%s: a.test accepted b.test through POSH" % tag, ("a.test",))
        return alice, took, bounce

    async def scenario_b(self, x):
        """A wrong pin in b.test's document: a.test refuses b.test."""
        self.set_document(self.der["other"])
        self.flush_cache()
        self.close_s2s("a.test")
        before = self.retrievals()
        _, took, bounce = await self.expect_refused(x, "b", "is not in its POSH document")
        await x.close()
        self.check(self.retrievals() == before + 1,
                   "b: the document was not retrieved again after the flush (%d -> %d)"
                   % (before, self.retrievals()))
        cond = bounce["error"]["condition"]
        return "refused after %.1f s (bounce: %s); a.test logged the POSH mismatch and the refusal" % (took, cond)

    async def scenario_c(self, x):
        """poshd stopped: a.test refuses b.test and still serves its local users."""
        self.set_document(self.der["b.test"])
        self.procs["poshd"].stop()
        self.close_s2s("a.test")
        mark = self.log_mark("a.test")
        alice = await x.login("alice", "a.test")
        bob = await x.login("bob", "b.test")
        t = time.monotonic()
        alice.send_message(mto="bob@b.test/e2e", mbody="must not arrive c", mtype="chat")
        # Meanwhile a.test serves its own users: a login and a local message.
        t1 = time.monotonic()
        alice2 = await x.login("bob", "a.test", resource="local")
        alice.send_message(mto="bob@a.test/local", mbody="local while poshd is down", mtype="chat")
        m = await alice2.wait_message(is_body("local while poshd is down"), 10)
        local = time.monotonic() - t1
        self.check(m is not None, "c: bob@a.test did not get a local message while poshd was down", ("a.test",))
        bounce = await alice.wait_message(is_error(), BOUNCE_WAIT)
        took = time.monotonic() - t
        self.check(bounce is not None, "c: no error came back to alice@a.test within %ss" % BOUNCE_WAIT)
        m = await bob.wait_message(is_body("must not arrive c"), 1)
        self.check(m is None, "c: the message reached bob@b.test although poshd is down")
        new = self.log_since("a.test", mark)
        self.check("Forbidding insecure connection to/from b.test" in new,
                   "c: a.test's log does not show the refusal of b.test", ("a.test",))
        self.check("POSH: poshd call about b.test failed" in new or "POSH: cannot ask poshd" in new,
                   "c: a.test's log does not show the unreachable daemon", ("a.test",))
        await x.close()
        return "refused after %.1f s; local login + message took %.2f s meanwhile" % (took, local)

    async def scenario_d(self, x):
        """A slow POSH origin for b.test: a.test's event loop keeps serving meanwhile."""
        od = os.path.join(self.tmp, "slow-origin")
        os.makedirs(od)
        with open(os.path.join(od, "routes.json"), "w") as f:
            json.dump({"b.test/.well-known/posh/xmpp-server.json": {
                "status": 200, "body": posh_document(self.der["b.test"]),
                "delay_before_headers": SLOW_ORIGIN_DELAY}}, f)
        p = self.spawn("slow-origin", [PYTHON, ORIGIN, "serve", "--dir", od, "--names", "b.test"],
                       os.path.join(od, "origin.log"))
        ports = os.path.join(od, "ports.json")
        wait_until("the slow origin's ports.json", lambda: os.path.exists(ports), 20, p)
        with open(ports) as f:
            port = json.load(f)["https"]
        bundle = os.path.join(self.tmp, "ca-bundle.pem")
        with open(bundle, "w") as f:
            f.write(read(self.ca) + read(os.path.join(od, "ca.pem")))
        self.start_poshd(["--connect-to", "b.test:443:127.0.0.1:%d" % port, "--allow-private-addresses"],
                         bundle)
        self.close_s2s("a.test")

        alice = await x.login("alice", "a.test")
        bob = await x.login("bob", "b.test")
        carol = await x.login("alice", "c.test")
        t0 = time.monotonic()
        alice.send_message(mto="bob@b.test/e2e", mbody="slow but sure", mtype="chat")
        await self.wait_in_flight("d")
        t1 = time.monotonic()
        late = await x.login("bob", "a.test", resource="late")
        late.send_message(mto="alice@c.test/e2e", mbody="prompt from a to c", mtype="chat")
        m = await carol.wait_message(is_body("prompt from a to c"), 10)
        prompt = time.monotonic() - t1
        self.check(m is not None, "d: alice@c.test did not get bob@a.test's message")
        in_flight = self.stats().get("in_flight", 0)
        self.check(prompt < PROMPT, "d: a login to a.test + a message to c.test took %.2f s while the POSH "
                   "origin was slow (limit %.1f s): the Lua loop is blocked" % (prompt, PROMPT))
        self.check(in_flight >= 1, "d: the slow retrieval was over before the prompt check ended; "
                   "the check proves nothing (in_flight=%s)" % in_flight)
        m = await bob.wait_message(is_body("slow but sure"), SLOW_ORIGIN_DELAY + 15)
        slow = time.monotonic() - t0
        self.check(m is not None, "d: bob@b.test never got the message after the slow POSH answer")
        self.check(slow >= SLOW_ORIGIN_DELAY - 0.5, "d: the message arrived after %.1f s, before the "
                   "origin's %s s delay: was the origin slow at all?" % (slow, SLOW_ORIGIN_DELAY))
        await x.close()
        return ("login + a->c message took %.2f s while the origin took %s s; "
                "a->b delivered after %.1f s" % (prompt, SLOW_ORIGIN_DELAY, slow))

    async def scenario_f(self, x):
        """Module reload while a session waits for poshd: that session fails closed at once,
        and the reloaded module opens a new client and verifies b.test."""
        self.flush_cache()
        self.close_s2s("a.test")
        mark = self.log_mark("a.test")
        alice = await x.login("alice", "a.test")
        bob = await x.login("bob", "b.test")
        t0 = time.monotonic()
        alice.send_message(mto="bob@b.test/e2e", mbody="cut short by reload", mtype="chat")
        await self.wait_in_flight("f")
        self.admin("a.test", "module", "reload", "s2s_auth_poshd")
        bounce = await alice.wait_message(is_error(), SLOW_ORIGIN_DELAY)
        refused = time.monotonic() - t0
        self.check(bounce is not None, "f: the waiting session was not refused after the module reload")
        self.check(refused < SLOW_ORIGIN_DELAY - 1, "f: the waiting session was refused only after "
                   "%.1f s (the origin answers after %s s)" % (refused, SLOW_ORIGIN_DELAY))
        new = self.log_since("a.test", mark)
        self.check("module unloaded" in new, "f: a.test's log does not show the session released by "
                   "the unload", ("a.test",))
        alice.send_message(mto="bob@b.test/e2e", mbody="after reload", mtype="chat")
        m = await bob.wait_message(is_body("after reload"), SLOW_ORIGIN_DELAY + 15)
        self.check(m is not None, "f: bob@b.test did not get a message sent after the module reload")
        m = await bob.wait_message(is_body("cut short by reload"), 0)
        self.check(m is None, "f: the message refused at the reload reached bob@b.test")
        await x.close()
        return "waiting session refused %.1f s after the send (origin: %s s); verified again after the reload" % (
            refused, SLOW_ORIGIN_DELAY)

    def final_checks(self):
        """No Lua error anywhere; a.test and c.test (module loaded, client open) stop cleanly."""
        for host in ("a.test", "b.test", "c.test"):
            text = read(os.path.join(self.tmp, host, "prosody.log"))
            bad = [l for l in text.splitlines()
                   if "Traceback" in l or ("s2s_auth_poshd" in l and "\terror\t" in l)]
            self.check(not bad, "%s's log has Lua errors:\n%s" % (host, "\n".join(bad[:20])), (host,))
        took = {}
        for host in ("a.test", "c.test"):
            t = time.monotonic()
            status = self.procs[host].stop(timeout=10)
            took[host] = time.monotonic() - t
            self.check(status == 0, "%s exited with status %s at SIGTERM" % (host, status), (host,))
            self.check("Shutdown complete" in self.prosody_log(host),
                       "%s did not log 'Shutdown complete'" % host, (host,))
        return "no Lua errors; a.test and c.test stopped cleanly in %.1f s / %.1f s" % (
            took["a.test"], took["c.test"])

    def run(self):
        Client = make_client_class()
        log("temp dir %s" % self.tmp)
        self.setup()
        log("setup done: nginx :%d, poshd, 3 Prosody instances" % self.nginx_port)
        for name in ("a", "e", "b", "c", "d", "f"):
            fn = getattr(self, "scenario_" + name)

            async def one():
                x = Xmpp(Client)
                try:
                    return await fn(x)
                finally:
                    await x.close()
            t = time.monotonic()
            detail = asyncio.run(one())
            log("scenario %s passed in %.1f s: %s" % (name, time.monotonic() - t, detail))
            self.results.append((name, detail))
        detail = self.final_checks()
        log("final checks passed: %s" % detail)


def main():
    global T0
    T0 = time.monotonic()
    if len(sys.argv) != 5:
        sys.stderr.write(__doc__)
        return 64
    poshd, poshctl, cpath, module_dir = sys.argv[1:]
    if os.geteuid() != 0:
        print("SKIP: needs root (three Prosody instances on 127.0.0.2-4, nginx)")
        return SKIP
    for tool in (PROSODY, PROSODYCTL, NGINX):
        if not os.access(tool, os.X_OK):
            print("SKIP: %s is not installed" % tool)
            return SKIP
    try:
        import slixmpp  # noqa: F401
        import cryptography  # noqa: F401
    except ImportError as e:
        print("SKIP: %s (python3-slixmpp, python3-cryptography)" % e)
        return SKIP
    if not os.path.exists(os.path.join(cpath, "poshclient.so")):
        print("FAIL: the Lua binding %s/poshclient.so is missing" % cpath)
        return 1
    if not os.path.exists(os.path.join(module_dir, "mod_s2s_auth_poshd.lua")):
        print("FAIL: %s/mod_s2s_auth_poshd.lua is missing" % module_dir)
        return 1
    logging.basicConfig(level=logging.CRITICAL)   # slixmpp's own chatter

    def on_alarm(_sig, _frm):
        raise Timeout()

    def on_stop(sig, _frm):
        raise Stopped(signal.Signals(sig).name)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.alarm(OVERALL_TIMEOUT)

    t = E2E(poshd, poshctl, cpath, module_dir)
    ok = False
    try:
        t.run()
        ok = True
    except Timeout:
        print("FAIL: the test did not finish within %d s\n%s" % (OVERALL_TIMEOUT, t.logs()))
    except Stopped as e:
        print("FAIL: stopped by %s" % e)
    except Failure as e:
        print("FAIL: %s" % e)
    except Exception:  # noqa: BLE001
        print("FAIL: unexpected error\n%s\n%s" % (traceback.format_exc(), t.logs()))
    finally:
        signal.alarm(0)
        t.teardown()
    log("%s in %.1f s" % ("PASSED" if ok else "FAILED", time.monotonic() - T0))
    if ok and not os.environ.get("POSH_IT_KEEP"):
        shutil.rmtree(t.tmp, ignore_errors=True)
    else:
        print("kept %s" % t.tmp)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
