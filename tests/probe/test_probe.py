#!/usr/bin/python3
"""`poshctl probe` (issue 15) against real servers on loopback.

    test_probe.py POSHD POSHCTL

Everything runs once, in parallel where it can (README.md has the topology):
  dnsmasq      127.0.0.1:<free port>, --no-resolv --no-hosts, --local=/test/ (unknown names
               under .test: NXDOMAIN), the SRV and address records of the cases below
  Prosody 0.12 127.0.0.5 pkix.test: certificate from the test CA; direct TLS only
                 (s2s_direct_tls_ports), reached through _xmpps-server._tcp.pkix.test
               127.0.0.6 posh.test, delegated.test, multi.test: a hosting provider's self-signed
                 certificate for hosting.test; STARTTLS, reached through
                 _xmpp-server._tcp (three records for posh.test: priority 5 -> a dead
                 port, 10 -> the server, 20 -> another dead port)
               127.0.0.7:5269 none.test (no SRV record: the fallback to the domain itself)
                 and wrongpin.test, self-signed certificates
  posh_origin  tests/origin/posh_origin.py: the POSH documents of posh.test (the hosting
               certificate's sha-256), delegated.test (a reference to posh.test's),
               wrongpin.test (another key); none.test has none (404)
  poshd        private: --socket in the temp dir, --ca-file of the origin's CA,
               --connect-to routing every POSH origin to posh_origin
  hostile      Python socket servers: garbage, silence, an endless stream header or
               features element, a stream error, features without STARTTLS, <failure/> to
               STARTTLS, <proceed/> then a close, TLS chains of 20 certificates and of
               280 KiB, a TLS server that closes during the handshake; and a well-behaved
               direct TLS server that records the SNI and ALPN the probe sends

Each case runs the real `poshctl probe --json` and checks the exit status and the JSON
members exactly as the contract (../shared/spec/INTERFACE.md, issue 15's spec) states them.
POSH verification through the daemon: `poshctl stats` verifies grows by at least the number
of probes that reached the posh step, and `cache list` holds the probed domains.

Exit status: 0 passed, 1 failed, 77 skipped (not root, or prosody / dnsmasq / python3-
cryptography missing). POSH_PROBE_VERBOSE=1 prints every probe's command and output.
POSH_IT_KEEP=1 keeps the temporary directory; it is kept (and its path printed) on
failure too.
"""
import base64
import concurrent.futures
import datetime
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(HERE, "..", "prosody"))
# The Prosody end-to-end test's process helpers (start in a new session, stop the group).
from test_prosody_e2e import (Failure, Proc, make_cert, free_port, tail, tcp_accepts, unix_accepts,  # noqa: E402
                              wait_until)

SKIP = 77
PYTHON = "/usr/bin/python3"
PROSODY = "/usr/bin/prosody"
DNSMASQ = "/usr/sbin/dnsmasq"
ORIGIN = os.path.join(HERE, "..", "origin", "posh_origin.py")
OVERALL_TIMEOUT = 150   # ctest allows 200

# Own loopback addresses: tests/prosody (prosody.e2e) uses 127.0.0.2-4.
ADDR = {"pkix": "127.0.0.5", "posh": "127.0.0.6", "none": "127.0.0.7"}
HOSTILE_ADDR = "127.0.0.1"
SILENT_TIMEOUT = 3      # --timeout of the "never answers" case
SLACK = 2.5             # seconds allowed beyond --timeout (process start, a loaded machine)

T0 = time.monotonic()


class Timeout(BaseException):
    pass


class Stopped(BaseException):
    pass


def log(msg):
    sys.stdout.write("[%6.1f] %s\n" % (time.monotonic() - T0, msg))
    sys.stdout.flush()


def b64_sha256(der):
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


# ---------------------------------------------------------------------------------------
# Certificates (python3-cryptography)

def make_pki(d):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def cert(cn, k, issuer=None, names=(), ca=False):
        return make_cert(cn, k, now, issuer, names, ca)

    def pem(c):
        return c.public_bytes(serialization.Encoding.PEM)

    def write(stem, certs, k):
        with open(stem + ".crt", "wb") as f:
            for c in certs:
                f.write(pem(c))
        with open(stem + ".key", "wb") as f:
            f.write(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
        os.chmod(stem + ".key", 0o600)
        return certs[0].public_bytes(serialization.Encoding.DER)

    os.makedirs(d)
    key = lambda: ec.generate_private_key(ec.SECP256R1())  # noqa: E731
    ca_key = key()
    ca = cert("poshd probe test CA", ca_key, ca=True)
    write(os.path.join(d, "ca"), [ca], ca_key)
    der = {}
    k = key()       # valid under the test CA: PKIX is enough
    der["pkix.test"] = write(os.path.join(d, "pkix.test"), [cert("pkix.test", k, (ca, ca_key), ["pkix.test"])], k)
    k = key()       # the hosting provider's self-signed certificate (posh.test, delegated.test)
    der["hosting.test"] = write(os.path.join(d, "hosting.test"),
                                [cert("hosting.test", k, None, ["hosting.test"])], k)
    for host in ("none.test", "wrongpin.test"):
        k = key()   # self-signed: PKIX refuses them
        der[host] = write(os.path.join(d, host), [cert(host, k, None, [host])], k)
    k = key()       # only to make a wrong pin
    der["other"] = cert("other.test", k, None, ["other.test"]).public_bytes(serialization.Encoding.DER)
    # A chain of 20 certificates (the probe's limit is 16): leaf, 18 intermediates, a root.
    keys = [key() for _ in range(20)]
    chain = [cert("huge root", keys[0], ca=True)]
    for i in range(1, 19):
        chain.append(cert("huge intermediate %d" % i, keys[i], (chain[-1], keys[i - 1]), ca=True))
    chain.append(cert("huge.test", keys[19], (chain[-1], keys[18]), ["huge.test"]))
    write(os.path.join(d, "huge.test"), list(reversed(chain)), keys[19])
    # A chain of 10 certificates of ~28 KiB each (an unknown non-critical extension): within
    # the 16-certificate limit, beyond 256 KiB in all.
    k = key()
    filler = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x00" * 28 * 1024)
    big = []
    for i in range(10):
        b = (x509.CertificateBuilder()
             .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "big.test" if i == 0 else "big %d" % i)]))
             .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "big issuer")]))
             .public_key(k.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
             .add_extension(filler, critical=False))
        big.append(b.sign(k, hashes.SHA256()))
    write(os.path.join(d, "big.test"), big, k)
    return der


# ---------------------------------------------------------------------------------------
# Hostile servers: one listening socket each, a thread per connection.

STREAM_HEADER = (b"<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                 b"xmlns:stream='http://etherx.jabber.org/streams' from='hostile.test' id='h1' "
                 b"version='1.0'>")
FEATURES = (b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/>"
            b"</starttls></stream:features>")


def recv_until(conn, marker, limit=65536):
    """Reads until `marker` is seen (or EOF / 10 s / `limit` bytes); returns what came."""
    conn.settimeout(10)
    data = b""
    try:
        while marker not in data and len(data) < limit:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    return data


def drain(conn, seconds=20):
    """Keeps the connection open until the client closes it (or `seconds`)."""
    conn.settimeout(seconds)
    try:
        while conn.recv(4096):
            pass
    except OSError:
        pass


def h_garbage(conn, _server):
    recv_until(conn, b">")
    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    drain(conn)


def h_silent(conn, _server):
    drain(conn, 30)


def h_endless_header(conn, _server):
    recv_until(conn, b">")
    conn.sendall(STREAM_HEADER[:-1])     # the header's '>' never comes
    conn.settimeout(20)
    filler = b"x" * 1000
    try:
        for i in range(16384):           # up to 16 MiB of attributes
            conn.sendall(b" a%d='%s'" % (i, filler))
    except OSError:
        pass


def h_starttls_failure(conn, server):
    server.seen.append(recv_until(conn, b">"))     # the probe's stream header, checked
    conn.sendall(STREAM_HEADER + FEATURES)
    recv_until(conn, b"starttls")
    conn.sendall(b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:stream>")
    drain(conn)


def h_endless_features(conn, _server):
    recv_until(conn, b">")
    conn.sendall(STREAM_HEADER + b"<stream:features>")   # ... never closed
    conn.settimeout(20)
    try:
        for i in range(16384):
            conn.sendall(b"<junk n='%d'>%s</junk>" % (i, b"y" * 1000))
    except OSError:
        pass


def h_stream_error(conn, _server):
    recv_until(conn, b">")
    conn.sendall(STREAM_HEADER + b"<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                 b"</stream:error></stream:stream>")
    drain(conn)


def h_no_starttls(conn, _server):
    recv_until(conn, b">")
    conn.sendall(STREAM_HEADER + b"<stream:features><dialback xmlns='urn:xmpp:features:dialback'/>"
                 b"</stream:features>")
    drain(conn)


def h_proceed_then_close(conn, _server):
    recv_until(conn, b">")
    conn.sendall(STREAM_HEADER + FEATURES)
    recv_until(conn, b"starttls")
    conn.sendall(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    conn.settimeout(10)
    try:
        conn.recv(4096)                  # the ClientHello
    except OSError:
        pass


def make_h_tls_chain(pki, stem):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(pki, stem + ".crt"), os.path.join(pki, stem + ".key"))

    def h(conn, _server):
        conn.settimeout(20)
        try:
            with ctx.wrap_socket(conn, server_side=True) as s:
                drain(s)
        except (OSError, ssl.SSLError):
            pass
    return h


def make_h_direct_tls(pki):
    """A well-behaved direct TLS server (pkix.test's certificate) that records the SNI and
    the ALPN protocol the probe negotiated."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(pki, "pkix.test.crt"), os.path.join(pki, "pkix.test.key"))
    ctx.set_alpn_protocols(["xmpp-server", "xmpp-client"])
    sni = []
    ctx.sni_callback = lambda _s, name, _c: sni.append(name)

    def h(conn, server):
        conn.settimeout(20)
        try:
            with ctx.wrap_socket(conn, server_side=True) as s:
                server.seen.append((sni[-1] if sni else None, s.selected_alpn_protocol()))
                drain(s)
        except (OSError, ssl.SSLError):
            pass
    return h


def h_bad_tls(conn, _server):
    conn.settimeout(10)
    try:
        conn.recv(4096)                  # the ClientHello
    except OSError:
        pass
    conn.close()                         # ... and no ServerHello


class Hostile:
    def __init__(self, name, handler):
        self.name, self.handler = name, handler
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOSTILE_ADDR, 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.seen = []          # what a handler recorded about the probe's side
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self.one, args=(conn,), daemon=True).start()

    def one(self, conn):
        try:
            self.handler(conn, self)
        except OSError:
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def close(self):
        self.sock.close()


# ---------------------------------------------------------------------------------------
# The test

PROSODY_CFG = """-- An instance of tests/probe/test_probe.py
run_as_root = true
pidfile = "{dir}/prosody.pid"
data_path = "{dir}/data"
certificates = "{dir}/certs"
log = {{ info = "{dir}/prosody.log" }}
interfaces = {{ "{addr}" }}
c2s_ports = {{ }}
c2s_direct_tls_ports = {{ }}
s2s_ports = {{ {s2s} }}
s2s_direct_tls_ports = {{ {direct} }}
modules_enabled = {{ "tls"; "disco"; "ping" }}
authentication = "internal_hashed"
storage = "internal"
s2s_require_encryption = true
-- Direct TLS ports take their default certificate from the global ssl option.
ssl = {{ certificate = "{cert}"; key = "{key}" }}
{vhosts}
"""


class ProbeTest:
    def __init__(self, poshd, poshctl):
        self.poshd_bin, self.poshctl_bin = poshd, poshctl
        self.tmp = tempfile.mkdtemp(prefix="posh-probe-")
        self.procs = {}
        self.hostile = {}
        self.failures = []
        self.passed = []

    def spawn(self, name, argv, logfile, env=None):
        p = Proc(name, argv, logfile, env=env)
        self.procs[name] = p
        return p

    # -- setup ----------------------------------------------------------------------------
    def setup(self):
        t = self.tmp
        self.pki = os.path.join(t, "pki")
        self.der = make_pki(self.pki)
        self.ca = os.path.join(self.pki, "ca.crt")
        if tcp_accepts(ADDR["none"], 5269):
            raise Failure("something already listens on %s:5269 (a Prosody left over by an earlier run?)"
                          % ADDR["none"])
        self.port = {"pkix": free_port(ADDR["pkix"]), "posh": free_port(ADDR["posh"]), "none": 5269}
        self.dead = [free_port(ADDR["posh"]), free_port(ADDR["posh"])]
        self.dns_port = self.free_udp_tcp_port()
        self.dead_dns_port = self.free_udp_tcp_port()
        # Everything starts at once; the waits come after.
        # The hostile servers first: dnsmasq's records name the silent one's port.
        for name, h in (("garbage", h_garbage), ("silent", h_silent), ("endless", h_endless_header),
                        ("failure", h_starttls_failure), ("huge", make_h_tls_chain(self.pki, "huge.test")),
                        ("big", make_h_tls_chain(self.pki, "big.test")), ("endless-features", h_endless_features),
                        ("stream-error", h_stream_error), ("no-starttls", h_no_starttls),
                        ("proceed-close", h_proceed_then_close),
                        ("alpn-server", make_h_direct_tls(self.pki)), ("alpn-client", make_h_direct_tls(self.pki)),
                        ("badtls", h_bad_tls)):
            self.hostile[name] = Hostile(name, h)
        origin = self.start_origin()
        dns = self.start_dnsmasq()
        prosodies = [self.start_prosody("pkix", ["pkix.test"], direct=True),
                     self.start_prosody("posh", ["posh.test", "delegated.test", "multi.test"], cert="hosting.test"),
                     self.start_prosody("none", ["none.test", "wrongpin.test"])]
        self.wait_origin(origin)
        self.start_poshd()
        wait_until("dnsmasq on 127.0.0.1:%d" % self.dns_port,
                   lambda: tcp_accepts("127.0.0.1", self.dns_port), 15, dns)
        for key, p in prosodies:
            wait_until("Prosody %s on %s:%d" % (key, ADDR[key], self.port[key]),
                       lambda: tcp_accepts(ADDR[key], self.port[key]), 30, p)

    @staticmethod
    def free_udp_tcp_port():
        for _ in range(50):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind(("127.0.0.1", 0))
                port = u.getsockname()[1]
                with socket.socket() as s:
                    try:
                        s.bind(("127.0.0.1", port))
                        return port
                    except OSError:
                        continue
        raise Failure("no free UDP+TCP port on 127.0.0.1")

    def start_origin(self):
        d = os.path.join(self.tmp, "origin")
        os.makedirs(d)
        doc = lambda der: json.dumps({"fingerprints": [{"sha-256": b64_sha256(der)}], "expires": 3600})  # noqa: E731
        wk = "/.well-known/posh/xmpp-server.json"
        routes = {
            "posh.test" + wk: {"body": doc(self.der["hosting.test"])},
            "delegated.test" + wk: {"body": json.dumps({"url": "https://posh.test" + wk, "expires": 3600})},
            "wrongpin.test" + wk: {"body": doc(self.der["other"])},
            # pkix.test and none.test publish nothing: 404
        }
        with open(os.path.join(d, "routes.json"), "w") as f:
            json.dump(routes, f)
        self.origin_dir = d
        return self.spawn("origin", [PYTHON, ORIGIN, "serve", "--dir", d, "--names", "posh.test",
                                     "delegated.test", "wrongpin.test", "pkix.test", "none.test"],
                          os.path.join(d, "origin.log"))

    def wait_origin(self, p):
        ports = os.path.join(self.origin_dir, "ports.json")
        wait_until("the POSH origin's ports.json", lambda: os.path.exists(ports), 30, p)
        with open(ports) as f:
            self.origin_port = json.load(f)["https"]

    def start_poshd(self):
        self.sock = os.path.join(self.tmp, "poshd.sock")
        self.poshd_log = os.path.join(self.tmp, "poshd.log")
        p = self.spawn("poshd", [self.poshd_bin, "--socket", self.sock,
                                 "--ca-file", os.path.join(self.origin_dir, "ca.pem"),
                                 "--connect-to", "::127.0.0.1:%d" % self.origin_port,
                                 "--log-level", "debug"], self.poshd_log)
        wait_until("poshd on %s" % self.sock,
                   lambda: os.path.exists(self.sock) and unix_accepts(self.sock), 15, p)

    def start_dnsmasq(self):
        d = os.path.join(self.tmp, "dnsmasq")
        os.makedirs(d)
        P = self.port
        args = [DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
                "--port=%d" % self.dns_port, "--listen-address=127.0.0.1", "--bind-interfaces",
                "--user=root", "--pid-file=%s" % os.path.join(d, "dnsmasq.pid"),
                "--log-facility=%s" % os.path.join(d, "dnsmasq.log"), "--log-queries",
                # Names under .test that no record below names: NXDOMAIN, as on the Internet.
                "--local=/test/",
                # pkix.test: direct TLS only (XEP-0368)
                "--srv-host=_xmpps-server._tcp.pkix.test,xmpp.pkix.test,%d,0,0" % P["pkix"],
                "--host-record=xmpp.pkix.test,%s" % ADDR["pkix"],
                # posh.test: priority 5 first (a dead port), then 10 (the server); 20 is never
                # tried. Listed worst first so that the answer's order is not the priority order.
                "--srv-host=_xmpp-server._tcp.posh.test,late.posh.test,%d,20,0" % self.dead[1],
                "--srv-host=_xmpp-server._tcp.posh.test,xmpp.posh.test,%d,10,0" % P["posh"],
                "--srv-host=_xmpp-server._tcp.posh.test,dead.posh.test,%d,5,0" % self.dead[0],
                "--host-record=xmpp.posh.test,%s" % ADDR["posh"],
                "--host-record=dead.posh.test,%s" % ADDR["posh"],
                "--host-record=late.posh.test,%s" % ADDR["posh"],
                # delegated.test: hosted by the same provider as posh.test
                "--srv-host=_xmpp-server._tcp.delegated.test,xmpp.posh.test,%d,0,0" % P["posh"],
                # multi.test: one target with two addresses, the server's and 127.0.0.8 where
                # nothing listens (dnsmasq answers the last --address first)
                "--srv-host=_xmpp-server._tcp.multi.test,multi.posh.test,%d,0,0" % P["posh"],
                "--address=/multi.posh.test/%s" % ADDR["posh"],
                "--address=/multi.posh.test/127.0.0.8",
                # slow.test: two targets, both the silent server (the whole probe's deadline)
                "--srv-host=_xmpp-server._tcp.slow.test,silent.hostile.test,%d,0,0" % self.hostile["silent"].port,
                "--srv-host=_xmpp-server._tcp.slow.test,silent.hostile.test,%d,1,0" % self.hostile["silent"].port,
                "--host-record=silent.hostile.test,%s" % HOSTILE_ADDR,
                # none.test: no SRV record at all (fallback to none.test:5269)
                "--host-record=none.test,%s" % ADDR["none"],
                # nosvc.test: a single record with target "." (service not offered)
                "--srv-host=_xmpp-server._tcp.nosvc.test",
                "--host-record=nosvc.test,%s" % ADDR["none"]]
        return self.spawn("dnsmasq", args, os.path.join(d, "stdout.log"))

    def start_prosody(self, key, hosts, direct=False, cert=None):
        d = os.path.join(self.tmp, "prosody-" + key)
        os.makedirs(os.path.join(d, "data"))
        os.makedirs(os.path.join(d, "certs"))

        def cert_of(h):
            stem = os.path.join(self.pki, cert or h)
            return stem + ".crt", stem + ".key"
        vhosts = []
        for h in hosts:
            c, k = cert_of(h)
            vhosts.append('VirtualHost "%s"\n\tssl = { certificate = "%s"; key = "%s" }\n' % (h, c, k))
        c, k = cert_of(hosts[0])
        port = self.port[key]
        conf = os.path.join(d, "prosody.cfg.lua")
        with open(conf, "w") as f:
            f.write(PROSODY_CFG.format(dir=d, addr=ADDR[key], s2s="" if direct else port,
                                       direct=port if direct else "", cert=c, key=k,
                                       vhosts="\n".join(vhosts)))
        return key, self.spawn("prosody-" + key, [PROSODY, "-F", "--config", conf],
                               os.path.join(d, "stdout.log"))

    def teardown(self):
        for h in self.hostile.values():
            h.close()
        for _, p in reversed(list(self.procs.items())):
            p.stop()

    def logs(self):
        out = []
        for key in ADDR:
            out.append("--- prosody %s (tail)\n%s" % (key, tail(os.path.join(self.tmp, "prosody-" + key,
                                                                              "prosody.log"), 15)))
        out.append("--- poshd log (tail)\n%s" % tail(self.poshd_log, 30))
        out.append("--- dnsmasq log (tail)\n%s" % tail(os.path.join(self.tmp, "dnsmasq", "dnsmasq.log"), 30))
        return "\n".join(out)

    # -- running the probe --------------------------------------------------------------------
    def poshctl(self, *args, socket_path=None, timeout=60):
        argv = ["nice", "-n", "19", self.poshctl_bin, "--socket", socket_path or self.sock] + list(args)
        t = time.monotonic()
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        r.elapsed = time.monotonic() - t
        r.argv = argv
        if os.environ.get("POSH_PROBE_VERBOSE") and "probe" in args:
            log("$ %s\n-> exit %d after %.1f s\n%s%s" % (" ".join(argv[3:]), r.returncode, r.elapsed,
                                                     r.stdout, r.stderr))
        return r

    def stats(self):
        r = self.poshctl("--json", "stats")
        if r.returncode != 0:
            raise Failure("poshctl stats failed (%d): %s%s" % (r.returncode, r.stdout, r.stderr))
        return json.loads(r.stdout)

    def probe(self, domain, *extra, dns=True, json_out=True, socket_path=None):
        args = ["probe", domain, "--ca-file", self.ca] + list(extra)
        if dns:
            args += ["--dns-server", "127.0.0.1:%d" % self.dns_port]
        if json_out:
            args.insert(0, "--json")
        return self.poshctl(*args, socket_path=socket_path)

    # -- checks -------------------------------------------------------------------------------
    @staticmethod
    def parse(r):
        try:
            return json.loads(r.stdout)
        except ValueError as e:
            raise Failure("stdout is not one JSON object (%s):\n%s\nstderr:\n%s" % (e, r.stdout, r.stderr))

    @staticmethod
    def expect(cond, msg):
        if not cond:
            raise Failure(msg)

    def check_shape(self, j, domain, service="xmpp-server"):
        """The members of the spec's --json object, exactly, with their types."""
        top = {"domain", "service", "authenticated", "method", "conclusion", "steps", "chain", "pkix", "posh"}
        self.expect(set(j) == top, "top-level members %s, expected %s" % (sorted(j), sorted(top)))
        self.expect(j["domain"] == domain, "domain %r" % j["domain"])
        self.expect(j["service"] == service, "service %r" % j["service"])
        self.expect(isinstance(j["authenticated"], bool), "authenticated is not a boolean")
        self.expect(j["method"] in ("pkix", "posh", None), "method %r" % j["method"])
        self.expect(isinstance(j["conclusion"], str) and j["conclusion"], "conclusion %r" % j["conclusion"])
        self.expect(isinstance(j["steps"], list) and j["steps"], "steps %r" % j["steps"])
        for s in j["steps"]:
            self.expect(set(s) == {"step", "ok", "ms", "target", "detail"}, "step members %s" % sorted(s))
            self.expect(s["step"] in ("dns", "connect", "starttls", "tls", "pkix", "posh"), "step %r" % s["step"])
            self.expect(isinstance(s["ok"], bool), "step ok %r" % s["ok"])
            self.expect(isinstance(s["ms"], (int, float)) and not isinstance(s["ms"], bool) and s["ms"] >= 0,
                        "step ms %r" % s["ms"])
            self.expect(s["target"] is None or re.fullmatch(r".+:\d+", s["target"]), "step target %r" % s["target"])
            self.expect(isinstance(s["detail"], str), "step detail %r" % s["detail"])
        self.expect(isinstance(j["chain"], list), "chain %r" % j["chain"])
        for c in j["chain"]:
            self.expect(set(c) == {"subject", "issuer", "not_after", "sha-256"}, "chain members %s" % sorted(c))
            self.expect(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", c["not_after"]),
                        "not_after %r is not RFC 3339" % c["not_after"])
            self.expect(len(base64.b64decode(c["sha-256"], validate=True)) == 32, "sha-256 %r" % c["sha-256"])
        if j["pkix"] is not None:
            self.expect(set(j["pkix"]) == {"valid", "reason"}, "pkix members %s" % sorted(j["pkix"]))
            self.expect(isinstance(j["pkix"]["valid"], bool), "pkix.valid %r" % j["pkix"]["valid"])
        if j["posh"] is not None:
            required = {"verdict", "verified", "delegated_to", "reason"}
            # "matched key if the response has it": an extra member about the match is allowed.
            extra = set(j["posh"]) - required
            self.expect(required <= set(j["posh"]) and all(k.startswith("match") for k in extra),
                        "posh members %s" % sorted(j["posh"]))
            self.expect(j["posh"]["verdict"] in ("verified", "not_verified", "no_posh", "error"),
                        "posh.verdict %r" % j["posh"]["verdict"])
            self.expect(j["posh"]["verified"] == (j["posh"]["verdict"] == "verified"),
                        "posh.verified %r with verdict %r" % (j["posh"]["verified"], j["posh"]["verdict"]))
        self.expect(j["authenticated"] == (j["method"] is not None),
                    "authenticated %r with method %r" % (j["authenticated"], j["method"]))

    @staticmethod
    def steps(j, name):
        return [s for s in j["steps"] if s["step"] == name]

    def step(self, j, name):
        found = self.steps(j, name)
        self.expect(found, "no %r step in %s" % (name, [s["step"] for s in j["steps"]]))
        return found[-1]

    def check_order(self, j):
        """Steps in the order they ran: dns* connect... (starttls) tls pkix posh."""
        rank = {"dns": 0, "connect": 1, "starttls": 1, "tls": 1, "pkix": 2, "posh": 3}
        ranks = [rank[s["step"]] for s in j["steps"]]
        self.expect(ranks == sorted(ranks), "steps out of order: %s" % [s["step"] for s in j["steps"]])

    def check_chain(self, j, der, subject, issuer):
        self.expect(j["chain"], "empty chain")
        leaf = j["chain"][0]
        self.expect(leaf["sha-256"] == b64_sha256(der), "chain[0].sha-256 %s, expected %s (the leaf first)"
                    % (leaf["sha-256"], b64_sha256(der)))
        self.expect(subject in leaf["subject"], "chain[0].subject %r lacks %r" % (leaf["subject"], subject))
        self.expect(issuer in leaf["issuer"], "chain[0].issuer %r lacks %r" % (leaf["issuer"], issuer))

    def check_authenticated(self, r, domain, method, exit_code=0):
        self.expect(r.returncode == exit_code, "exit %d, expected %d; stdout:\n%s\nstderr:\n%s"
                    % (r.returncode, exit_code, r.stdout, r.stderr))
        j = self.parse(r)
        self.check_shape(j, domain)
        self.check_order(j)
        self.expect(j["authenticated"] is True and j["method"] == method,
                    "authenticated %r method %r" % (j["authenticated"], j["method"]))
        self.expect(j["conclusion"].startswith("%s is authenticated by %s" % (domain, method.upper())),
                    "conclusion %r" % j["conclusion"])
        return j

    def check_undetermined(self, r, domain, failing_step, detail_re, timeout=None):
        self.expect(r.returncode == 2, "exit %d, expected 2; stdout:\n%s\nstderr:\n%s"
                    % (r.returncode, r.stdout, r.stderr))
        j = self.parse(r)
        self.check_shape(j, domain)
        self.check_order(j)
        self.expect(j["authenticated"] is False and j["method"] is None, "authenticated/method %r/%r"
                    % (j["authenticated"], j["method"]))
        self.expect(j["conclusion"].startswith("could not determine whether %s is authenticated: " % domain),
                    "conclusion %r" % j["conclusion"])
        self.expect(j["posh"] is None, "posh %r: the probe got no chain, POSH must not be reached" % j["posh"])
        self.expect(not self.steps(j, "pkix"), "a pkix step without a chain")
        s = self.step(j, failing_step)
        self.expect(s["ok"] is False, "the %s step is ok: %r" % (failing_step, s))
        self.expect(re.search(detail_re, s["detail"], re.I),
                    "the %s step's detail %r does not match /%s/" % (failing_step, s["detail"], detail_re))
        if timeout is not None:
            self.expect(r.elapsed <= timeout + SLACK, "took %.1f s with --timeout %d" % (r.elapsed, timeout))
        return j

    # -- cases -----------------------------------------------------------------------------------
    def case_pkix_direct_tls(self):
        """pkix.test through _xmpps-server._tcp (direct TLS, Prosody's s2s_direct_tls_ports):
        authenticated by PKIX; POSH is asked all the same (no document: no_posh)."""
        r = self.probe("pkix.test")
        j = self.check_authenticated(r, "pkix.test", "pkix")
        self.expect(j["conclusion"] == "pkix.test is authenticated by PKIX", "conclusion %r" % j["conclusion"])
        dns = self.step(j, "dns")
        self.expect(any("_xmpps-server._tcp.pkix.test" in s["detail"] for s in self.steps(j, "dns")),
                    "no dns step names _xmpps-server._tcp.pkix.test: %r" % dns)
        target = "xmpp.pkix.test:%d" % self.port["pkix"]
        connects = self.steps(j, "connect")
        self.expect([s["target"] for s in connects] == [target] and connects[0]["ok"],
                    "connect steps %r, expected one to %s" % (connects, target))
        self.expect(not self.steps(j, "starttls"), "a starttls step on a direct TLS target")
        self.expect(self.step(j, "tls")["ok"], "tls step not ok")
        self.expect(j["pkix"] == {"valid": True, "reason": j["pkix"]["reason"]} and self.step(j, "pkix")["ok"],
                    "pkix %r" % j["pkix"])
        self.check_chain(j, self.der["pkix.test"], "pkix.test", "poshd probe test CA")
        self.expect(j["posh"] is not None and j["posh"]["verdict"] == "no_posh",
                    "posh %r: expected no_posh (asked even when PKIX is valid)" % j["posh"])
        return "exit 0 by PKIX over direct TLS to %s" % target

    def case_posh_srv_priority(self):
        """posh.test: SRV priority 5 (dead port) is tried first, then 10 (Prosody, STARTTLS);
        20 never. The hosting provider's self-signed certificate: PKIX no, POSH yes."""
        r = self.probe("posh.test")
        j = self.check_authenticated(r, "posh.test", "posh")
        self.expect(j["conclusion"] == "posh.test is authenticated by POSH", "conclusion %r" % j["conclusion"])
        dead, live = "dead.posh.test:%d" % self.dead[0], "xmpp.posh.test:%d" % self.port["posh"]
        connects = [(s["target"], s["ok"]) for s in self.steps(j, "connect")]
        self.expect(connects == [(dead, False), (live, True)],
                    "connect steps %r, expected [(%r, False), (%r, True)] (priority 5, then 10; 20 never)"
                    % (connects, dead, live))
        failed = self.steps(j, "connect")[0]
        self.expect(re.search(r"refused", failed["detail"], re.I), "the dead target's detail %r" % failed["detail"])
        st = self.step(j, "starttls")
        self.expect(st["ok"] and st["target"] == live, "starttls step %r" % st)
        self.expect(j["pkix"]["valid"] is False and not self.step(j, "pkix")["ok"], "pkix %r" % j["pkix"])
        self.expect(re.search(r"self.signed", j["pkix"]["reason"], re.I), "pkix.reason %r" % j["pkix"]["reason"])
        self.expect(j["posh"]["verdict"] == "verified" and j["posh"]["verified"] is True
                    and self.step(j, "posh")["ok"], "posh %r" % j["posh"])
        self.check_chain(j, self.der["hosting.test"], "hosting.test", "hosting.test")
        return "exit 0 by POSH; connects %s" % connects

    def case_posh_human(self):
        """The human report: one line per step, then the conclusion."""
        r = self.probe("posh.test", json_out=False)
        # Kept for the documentation's example (POSH_IT_KEEP=1 keeps the directory).
        with open(os.path.join(self.tmp, "report-posh.test.txt"), "w") as f:
            f.write(r.stdout)
        self.expect(r.returncode == 0, "exit %d; stdout:\n%s\nstderr:\n%s" % (r.returncode, r.stdout, r.stderr))
        lines = [l for l in r.stdout.splitlines() if l.strip()]
        self.expect(lines and lines[-1].strip() == "posh.test is authenticated by POSH",
                    "last line %r" % (lines[-1] if lines else None))
        names = [l.split()[0] for l in lines[:-1]]
        for want in ("dns", "connect", "starttls", "tls", "pkix", "posh"):
            self.expect(want in names, "no %r line in the report:\n%s" % (want, r.stdout))
        self.expect(all(re.match(r"\s*\w+\s+\d+(\.\d+)?\s*ms\b", l) for l in lines[:-1]),
                    "a step line without its timing:\n%s" % r.stdout)
        return "%d step lines + conclusion" % (len(lines) - 1)

    def case_posh_delegated(self):
        """delegated.test's document points to posh.test's: authenticated by POSH, delegated."""
        r = self.probe("delegated.test")
        human = self.probe("delegated.test", json_out=False)
        with open(os.path.join(self.tmp, "report-delegated.test.txt"), "w") as f:
            f.write(human.stdout)
        j = self.check_authenticated(r, "delegated.test", "posh")
        self.expect("posh.test" in (j["posh"]["delegated_to"] or ""), "posh.delegated_to %r" % j["posh"]["delegated_to"])
        self.expect("delegated to" in j["conclusion"] and "posh.test" in j["conclusion"],
                    "conclusion %r does not name the delegation" % j["conclusion"])
        return "exit 0 by POSH, delegated to %s" % j["posh"]["delegated_to"]

    def case_multi_address(self):
        """A target with two addresses: 127.0.0.8 (nothing listens; dnsmasq answers it first)
        then the server's: the probe reports the refused address and goes on to the next.
        multi.test's POSH origin presents a certificate not valid for it (posh_origin serves
        no multi.test): a POSH error with PKIX invalid is undetermined, exit 2."""
        r = self.probe("multi.test")
        self.expect(r.returncode == 2, "exit %d, expected 2; stdout:\n%s\nstderr:\n%s"
                    % (r.returncode, r.stdout, r.stderr))
        j = self.parse(r)
        self.check_shape(j, "multi.test")
        self.check_order(j)
        target = "multi.posh.test:%d" % self.port["posh"]
        connects = [(s["target"], s["ok"], re.sub(r".*\((127\.0\.0\.\d+)\).*", r"\1", s["detail"]))
                    for s in self.steps(j, "connect")]
        want = [(target, False, "127.0.0.8"), (target, True, ADDR["posh"])]
        self.expect(connects == want, "connect steps %r, expected %r (each address in turn, in the "
                    "resolver's order)" % (connects, want))
        self.expect(j["posh"]["verdict"] == "error" and not self.step(j, "posh")["ok"], "posh %r" % j["posh"])
        self.expect(j["conclusion"].startswith("could not determine whether multi.test is authenticated: "),
                    "conclusion %r" % j["conclusion"])
        return "connects %s; exit 2 on the POSH error" % [(a, ok) for _, ok, a in connects]

    def case_none_fallback(self):
        """none.test: no SRV record (fallback to none.test:5269), self-signed, no POSH."""
        r = self.probe("none.test")
        self.expect(r.returncode == 1, "exit %d, expected 1; stdout:\n%s\nstderr:\n%s"
                    % (r.returncode, r.stdout, r.stderr))
        j = self.parse(r)
        self.check_shape(j, "none.test")
        self.check_order(j)
        self.expect(j["authenticated"] is False and j["method"] is None, "authenticated %r" % j["authenticated"])
        self.expect(j["conclusion"] == "none.test is not authenticated: it publishes no POSH document and "
                    "its certificate is not valid for it by PKIX", "conclusion %r" % j["conclusion"])
        connects = [(s["target"], s["ok"]) for s in self.steps(j, "connect")]
        self.expect(connects == [("none.test:5269", True)], "connect steps %r (fallback none.test:5269)" % connects)
        self.expect(self.step(j, "starttls")["ok"], "starttls not ok")
        self.expect(j["pkix"]["valid"] is False, "pkix %r" % j["pkix"])
        self.expect(j["posh"]["verdict"] == "no_posh" and j["posh"]["verified"] is False, "posh %r" % j["posh"])
        self.check_chain(j, self.der["none.test"], "none.test", "none.test")
        return "exit 1 after the fallback to none.test:5269"

    def case_wrong_pin_connect_to(self):
        """--connect-to skips DNS (the --dns-server given is dead): wrongpin.test's document
        names another key: not authenticated (exit 1), the daemon's reason in the conclusion."""
        r = self.probe("wrongpin.test", "--connect-to", "%s:5269" % ADDR["none"],
                       "--dns-server", "127.0.0.1:%d" % self.dead_dns_port, dns=False)
        self.expect(r.returncode == 1, "exit %d, expected 1; stdout:\n%s\nstderr:\n%s"
                    % (r.returncode, r.stdout, r.stderr))
        j = self.parse(r)
        self.check_shape(j, "wrongpin.test")
        self.check_order(j)
        self.expect(not any(s["step"] == "dns" and not s["ok"] for s in j["steps"]), "a failed dns step: %r" % j["steps"])
        self.expect(j["steps"][0]["step"] != "dns" or j["steps"][0]["ok"], "steps %r" % j["steps"])
        self.expect([s["target"] for s in self.steps(j, "connect")] == ["%s:5269" % ADDR["none"]],
                    "connect steps %r" % self.steps(j, "connect"))
        self.expect(j["posh"]["verdict"] == "not_verified", "posh %r" % j["posh"])
        self.expect(j["conclusion"].startswith("wrongpin.test is not authenticated: ")
                    and j["posh"]["reason"] and j["posh"]["reason"] in j["conclusion"],
                    "conclusion %r does not carry the daemon's reason %r" % (j["conclusion"], j["posh"]["reason"]))
        return "exit 1: %s" % j["conclusion"]

    def case_posh_connect_to(self):
        """--connect-to HOST:PORT (no DNS at all, dead --dns-server): posh.test by POSH."""
        target = "%s:%d" % (ADDR["posh"], self.port["posh"])
        r = self.probe("posh.test", "--connect-to", target, "--dns-server", "127.0.0.1:%d" % self.dead_dns_port,
                       dns=False)
        j = self.check_authenticated(r, "posh.test", "posh")
        self.expect(not any(s["step"] == "dns" and not s["ok"] for s in j["steps"]), "a failed dns step: %r" % j["steps"])
        self.expect([s["target"] for s in self.steps(j, "connect")] == [target], "connect %r" % self.steps(j, "connect"))
        return "exit 0 by POSH through %s" % target

    def case_no_service(self):
        """nosvc.test: a single SRV record with target "." (service not offered): exit 2."""
        r = self.probe("nosvc.test")
        self.expect(r.returncode == 2, "exit %d, expected 2; stdout:\n%s\nstderr:\n%s"
                    % (r.returncode, r.stdout, r.stderr))
        j = self.parse(r)
        self.check_shape(j, "nosvc.test")
        self.expect(j["conclusion"].startswith("could not determine whether nosvc.test is authenticated: "),
                    "conclusion %r" % j["conclusion"])
        self.expect(re.search(r"not offered|not available|no service|\"\.\"|'\.'", j["conclusion"], re.I),
                    "conclusion %r does not say the service is not offered" % j["conclusion"])
        self.expect(not self.steps(j, "connect"), "connect steps although the service is not offered")
        self.expect(j["posh"] is None, "posh %r" % j["posh"])
        return "exit 2: %s" % j["conclusion"]

    def case_daemon_down_pkix_invalid(self):
        """The daemon unreachable and PKIX invalid: exit 69."""
        r = self.probe("posh.test", "--connect-to", "%s:%d" % (ADDR["posh"], self.port["posh"]), dns=False,
                       socket_path=os.path.join(self.tmp, "nobody-listens.sock"))
        self.expect(r.returncode == 69, "exit %d, expected 69; stdout:\n%s\nstderr:\n%s"
                    % (r.returncode, r.stdout, r.stderr))
        j = self.parse(r)
        self.check_shape(j, "posh.test")
        self.expect(j["authenticated"] is False and j["pkix"]["valid"] is False, "authenticated %r" % j["authenticated"])
        self.expect(not self.step(j, "posh")["ok"], "posh step ok with no daemon")
        return "exit 69"

    def case_daemon_down_pkix_valid(self):
        """The daemon unreachable but PKIX valid (direct TLS by --direct-tls): exit 0."""
        r = self.probe("pkix.test", "--connect-to", "%s:%d" % (ADDR["pkix"], self.port["pkix"]), "--direct-tls",
                       dns=False, socket_path=os.path.join(self.tmp, "nobody-listens.sock"))
        j = self.check_authenticated(r, "pkix.test", "pkix")
        self.expect(not self.steps(j, "starttls"), "a starttls step with --direct-tls")
        return "exit 0 by PKIX without the daemon"

    def case_usage_errors(self):
        """Usage errors exit 64 before any network step."""
        for args in (["probe"], ["probe", "a.test", "b.test"], ["probe", "posh.test", "--service", "xmpp-foo"],
                     ["probe", "posh.test", "--direct-tls"], ["probe", "posh.test", "--connect-to", "nowhere"]):
            r = self.poshctl(*args)
            self.expect(r.returncode == 64, "poshctl %s: exit %d, expected 64; stdout:\n%s\nstderr:\n%s"
                        % (" ".join(args), r.returncode, r.stdout, r.stderr))
        return "5 usage errors: exit 64"

    def hostile_probe(self, name, *extra, timeout=10):
        h = self.hostile[name]
        return self.probe("hostile.test", "--connect-to", "%s:%d" % (HOSTILE_ADDR, h.port),
                          "--timeout", str(timeout), *extra, dns=False)

    def case_hostile_garbage(self):
        r = self.hostile_probe("garbage")
        j = self.check_undetermined(r, "hostile.test", "starttls",
                                    r"xml|pars|well.formed|syntax|invalid|stream header|not an xmpp")
        return self.step(j, "starttls")["detail"]

    def case_hostile_silent(self):
        r = self.hostile_probe("silent", timeout=SILENT_TIMEOUT)
        j = self.check_undetermined(r, "hostile.test", "starttls", r"tim(e|ed) ?out|deadline",
                                    timeout=SILENT_TIMEOUT)
        return "%.1f s: %s" % (r.elapsed, self.step(j, "starttls")["detail"])

    def case_whole_probe_timeout(self):
        """--timeout bounds the whole probe, not each step: two silent SRV targets, 3 s."""
        r = self.probe("slow.test", "--timeout", str(SILENT_TIMEOUT))
        j = self.check_undetermined(r, "slow.test", "starttls", r"tim(e|ed) ?out|deadline", timeout=SILENT_TIMEOUT)
        return "%.1f s, steps %s" % (r.elapsed, [(s["step"], s["ok"]) for s in j["steps"]])

    def case_hostile_endless_header(self):
        r = self.hostile_probe("endless")
        j = self.check_undetermined(r, "hostile.test", "starttls",
                                    r"limit|KiB|bytes|too (long|large|big)|exceed|tim(e|ed) ?out", timeout=10)
        return "%.1f s: %s" % (r.elapsed, self.step(j, "starttls")["detail"])

    def case_hostile_starttls_failure(self):
        r = self.hostile_probe("failure")
        j = self.check_undetermined(r, "hostile.test", "starttls", r"failure")
        header = self.hostile["failure"].seen[0].decode("utf-8", "replace")
        for want in (r"<stream:stream\b", r"\bto=['\"]hostile\.test['\"]", r"\bversion=['\"]1\.0['\"]",
                     r"\bxmlns=['\"]jabber:server['\"]",
                     r"\bxmlns:stream=['\"]http://etherx\.jabber\.org/streams['\"]"):
            self.expect(re.search(want, header), "the probe's stream header %r lacks /%s/" % (header, want))
        return self.step(j, "starttls")["detail"]

    def direct_tls_sni_alpn(self, service):
        """--direct-tls to a Python TLS server with pkix.test's certificate: SNI = the domain,
        ALPN = the service (XEP-0368); PKIX valid: exit 0 whatever POSH says."""
        name = "alpn-" + service.split("-")[1]
        r = self.probe("pkix.test", "--connect-to", "%s:%d" % (HOSTILE_ADDR, self.hostile[name].port),
                       "--direct-tls", "--service", service, dns=False)
        self.expect(r.returncode == 0, "exit %d; stdout:\n%s\nstderr:\n%s" % (r.returncode, r.stdout, r.stderr))
        j = self.parse(r)
        self.check_shape(j, "pkix.test", service)
        self.expect(j["method"] == "pkix", "method %r" % j["method"])
        seen = self.hostile[name].seen
        # The server thread records after its side of the handshake; the probe may be faster.
        try:
            wait_until("the TLS server's record", lambda: seen, 5)
        except Failure:
            pass
        self.expect(seen == [("pkix.test", service)], "the server saw (SNI, ALPN) %r, expected %r"
                    % (seen, [("pkix.test", service)]))
        return "SNI %s, ALPN %s" % seen[0]

    def case_direct_tls_server_sni_alpn(self):
        return self.direct_tls_sni_alpn("xmpp-server")

    def case_direct_tls_client_sni_alpn(self):
        return self.direct_tls_sni_alpn("xmpp-client")

    def case_hostile_huge_chain(self):
        r = self.hostile_probe("huge", "--direct-tls")
        j = self.check_undetermined(r, "hostile.test", "tls", r"\b16\b|too many|too (long|large)|limit|exceed")
        self.expect(self.hostile["huge"].accepted >= 1, "the huge-chain server saw no connection")
        return self.step(j, "tls")["detail"]

    def case_hostile_endless_features(self):
        r = self.hostile_probe("endless-features")
        j = self.check_undetermined(r, "hostile.test", "starttls",
                                    r"limit|KiB|bytes|too (long|large|big)|exceed|tim(e|ed) ?out", timeout=10)
        return self.step(j, "starttls")["detail"]

    def case_hostile_stream_error(self):
        r = self.hostile_probe("stream-error")
        j = self.check_undetermined(r, "hostile.test", "starttls", r"stream error.*host-unknown|host-unknown.*stream error")
        return self.step(j, "starttls")["detail"]

    def case_hostile_no_starttls(self):
        r = self.hostile_probe("no-starttls")
        j = self.check_undetermined(r, "hostile.test", "starttls", r"(no|not|without).*starttls|starttls.*(not|missing)")
        return self.step(j, "starttls")["detail"]

    def case_hostile_proceed_then_close(self):
        r = self.hostile_probe("proceed-close")
        self.expect(self.step(self.parse(r), "starttls")["ok"], "starttls step not ok after <proceed/>")
        j = self.check_undetermined(r, "hostile.test", "tls", r"handshake|closed|eof|reset|connection")
        return self.step(j, "tls")["detail"]

    def case_hostile_big_chain(self):
        r = self.hostile_probe("big", "--direct-tls")
        j = self.check_undetermined(r, "hostile.test", "tls", r"256|KiB|bytes|limit|excessive|too (long|large|big)|exceed")
        return self.step(j, "tls")["detail"]

    def case_hostile_bad_tls(self):
        r = self.hostile_probe("badtls", "--direct-tls")
        j = self.check_undetermined(r, "hostile.test", "tls", r"handshake|closed|eof|reset|connection")
        return self.step(j, "tls")["detail"]

    def run_case(self, name):
        t = time.monotonic()
        try:
            detail = getattr(self, "case_" + name)()
            log("ok   %-28s %.1f s: %s" % (name, time.monotonic() - t, detail))
            self.passed.append(name)
            return True
        except Failure as e:
            log("FAIL %-28s %s" % (name, e))
        except Exception:  # noqa: BLE001
            log("FAIL %-28s unexpected error\n%s" % (name, traceback.format_exc()))
        self.failures.append(name)
        return False

    def run(self):
        log("temp dir %s" % self.tmp)
        self.setup()
        log("setup done: dnsmasq :%d, origin :%d, poshd, Prosody %s" % (
            self.dns_port, self.origin_port, ", ".join("%s:%d" % (ADDR[k], self.port[k]) for k in ADDR)))
        before = self.stats()
        # The cases that wait for --timeout first, so that the others overlap them.
        cases = sorted((n[len("case_"):] for n in dir(self) if n.startswith("case_")),
                       key=lambda n: ("silent" not in n and "timeout" not in n, n))
        with concurrent.futures.ThreadPoolExecutor(max_workers=6) as ex:
            list(ex.map(self.run_case, cases))
        # Every probe that got a chain asked poshd (the daemon-down ones excepted): pkix,
        # posh (SRV, human report, --connect-to), delegated, none, wrongpin, multi, the two
        # SNI/ALPN ones = 10.
        after = self.stats()
        grew = after.get("verifies", 0) - before.get("verifies", 0)
        if grew < 10:
            log("FAIL daemon: poshd stats verifies grew by %d, expected >= 10 (before %s, after %s)"
                % (grew, before.get("verifies"), after.get("verifies")))
            self.failures.append("daemon")
        r = self.poshctl("--json", "cache", "list")
        domains = {e.get("domain") for e in json.loads(r.stdout).get("entries", [])} if r.returncode == 0 else set()
        want = {"posh.test", "delegated.test", "none.test", "wrongpin.test", "pkix.test"}
        if not want <= domains:
            log("FAIL daemon: poshctl cache list lacks %s (has %s)" % (sorted(want - domains), sorted(domains)))
            self.failures.append("daemon")
        else:
            log("ok   daemon: verifies +%d, cache holds %s" % (grew, sorted(want)))
        if self.failures:
            raise Failure("%d case(s) failed: %s\n%s" % (len(self.failures), ", ".join(self.failures), self.logs()))


def main():
    global T0
    T0 = time.monotonic()
    if len(sys.argv) != 3:
        sys.stderr.write(__doc__)
        return 64
    poshd, poshctl = map(os.path.abspath, sys.argv[1:])
    if os.geteuid() != 0:
        print("SKIP: needs root (Prosody on 127.0.0.5-7, port 5269, dnsmasq)")
        return SKIP
    for tool in (PROSODY, DNSMASQ):
        if not os.access(tool, os.X_OK):
            print("SKIP: %s is not installed (scripts/install-deps.sh)" % tool)
            return SKIP
    try:
        import cryptography  # noqa: F401
    except ImportError as e:
        print("SKIP: %s (python3-cryptography)" % e)
        return SKIP

    def on_alarm(_sig, _frm):
        raise Timeout()
    def on_stop(sig, _frm):
        raise Stopped(signal.Signals(sig).name)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.alarm(OVERALL_TIMEOUT)
    t = ProbeTest(poshd, poshctl)
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
    log("%s in %.1f s (%d cases passed)" % ("PASSED" if ok else "FAILED", time.monotonic() - T0, len(t.passed)))
    if ok and not os.environ.get("POSH_IT_KEEP"):
        shutil.rmtree(t.tmp, ignore_errors=True)
    else:
        print("kept %s" % t.tmp)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
