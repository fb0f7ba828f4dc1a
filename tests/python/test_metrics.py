#!/usr/bin/python3
"""Issue 12 item 4: Prometheus metrics, read with a real parser (Debian's
python3-prometheus-client, prometheus_client.parser.text_string_to_metric_families).

A real poshd with --metrics-listen 127.0.0.1:0 (the bound port is read from its log) and the
test origin; after some lookups, `poshctl stats --prometheus` and GET /metrics must parse,
be the same text, carry every counter and gauge of `poshctl --json stats` with the same
values, and a histogram whose buckets are cumulative and end in +Inf == _count. Then hostile
HTTP clients (garbage, an oversized head, a client that sends nothing, many connections)
get errors or closures while lookups keep being answered. Also: the flag's and the config
key's errors (non-loopback refused, 64 / 78), a busy port, and SIGHUP's restart notice.

    test_metrics.py --poshd PATH --poshctl PATH [unittest options]
"""
import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import poshtest  # noqa: E402

import grpc  # noqa: E402  (python3-grpcio)
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

POSHD = POSHCTL = None

# `poshctl --json stats` member -> (Prometheus sample name, type)
SCALARS = {
    "lookups": ("poshd_lookups_total", "counter"),
    "verifies": ("poshd_verifies_total", "counter"),
    "cache_hits": ("poshd_cache_hits_total", "counter"),
    "cache_misses": ("poshd_cache_misses_total", "counter"),
    "fetches": ("poshd_fetches_total", "counter"),
    "coalesced": ("poshd_coalesced_total", "counter"),
    "errors": ("poshd_errors_total", "counter"),
    "not_found": ("poshd_not_found_total", "counter"),
    "refreshes": ("poshd_refreshes_total", "counter"),
    "stale_served": ("poshd_stale_served_total", "counter"),
    "evictions": ("poshd_evictions_total", "counter"),
    "invalid_requests": ("poshd_invalid_requests_total", "counter"),
    "entries": ("poshd_cache_entries", "gauge"),
    "in_flight": ("poshd_retrievals_in_flight", "gauge"),
    "queued": ("poshd_retrievals_queued", "gauge"),
    "dropped": ("poshd_dropped_total", "counter"),
    "displaced": ("poshd_displaced_total", "counter"),
    "reference_shared": ("poshd_reference_shared_total", "counter"),
    "reference_fetches": ("poshd_reference_fetches_total", "counter"),
    "connections": ("poshd_connections", "gauge"),
    "connections_refused": ("poshd_connections_refused_total", "counter"),
    "requests_too_large": ("poshd_requests_too_large_total", "counter"),
    "l2_hits": ("poshd_l2_hits_total", "counter"),
    "l2_misses": ("poshd_l2_misses_total", "counter"),
    "l2_writes": ("poshd_l2_writes_total", "counter"),
    "l2_errors": ("poshd_l2_errors_total", "counter"),
    "l2_bad_macs": ("poshd_l2_bad_macs_total", "counter"),
}
HIST = "poshd_retrieval_duration_seconds"


def metrics_port(daemon, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = re.search(r"metrics: serving http://127\.0\.0\.1:(\d+)/metrics", daemon.log_text())
        if m:
            return int(m.group(1))
        time.sleep(0.05)
    raise AssertionError("no metrics port in the log:\n" + daemon.log_text())


def raw_exchange(port, payload, timeout=15):
    """Sends `payload`, returns (everything received until the server closed, closed?)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        if payload:
            s.sendall(payload)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                return out, True
            except socket.timeout:
                return out, False
            if not chunk:
                return out, True
            out += chunk
    finally:
        s.close()


def samples(text):
    """{(sample name, frozenset(labels)): value} and {family name: type}."""
    values, types = {}, {}
    for fam in text_string_to_metric_families(text):
        types[fam.name] = fam.type
        for s in fam.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in values, "duplicate sample %r" % (key,)
            values[key] = s.value
    return values, types


class MetricsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = poshtest.TempDir("posh-met-")
        cls.stubs = poshtest.Stubs(os.path.join(cls.tmp.path, "gen"))
        cls.origin = poshtest.Origin(cls.tmp.path)
        o = cls.origin
        o.fingerprints("found.example.test", "xmpp")
        o.set("broken.example.test", poshtest.WELL_KNOWN, status=500, body="oops")
        cls.config = os.path.join(cls.tmp.path, "poshd.conf")
        with open(cls.config, "w") as f:
            f.write('metrics-listen = "127.0.0.1:0"\n')
        # The endpoint comes from the config file's key (every key is a flag).
        cls.daemon = poshtest.Daemon(POSHD, cls.tmp.path, o,
                                     extra=["--config", cls.config]).start()
        cls.port = metrics_port(cls.daemon)
        cls.channel = grpc.insecure_channel("unix:" + cls.daemon.socket)
        cls.resolver = cls.stubs.rpc.ResolverStub(cls.channel)
        pb = cls.stubs.pb
        # Some traffic: a retrieval and a hit, a not-found, an error, a Verify, a bad request.
        for domain in ("found.example.test", "found.example.test", "nothing.example.test",
                       "broken.example.test"):
            cls.resolver.Lookup(pb.LookupRequest(domain=domain), timeout=20)
        cls.resolver.Verify(pb.VerifyRequest(domain="found.example.test",
                                             presented_chain=[o.der("xmpp")]), timeout=20)
        try:
            cls.resolver.Lookup(pb.LookupRequest(domain="a..b"), timeout=20)
        except grpc.RpcError:
            pass

    @classmethod
    def tearDownClass(cls):
        poshtest.stop_all(cls.daemon, cls.origin, cls.tmp, cls.channel)

    # -- helpers
    def poshctl(self, *args):
        p = subprocess.run([POSHCTL, "--socket", self.daemon.socket] + list(args),
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout

    def http(self, path="/metrics", method="GET"):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.port, path), method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, dict(r.headers), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read().decode()

    def lookup_answers(self):
        pb = self.stubs.pb
        r = self.resolver.Lookup(pb.LookupRequest(domain="found.example.test"), timeout=10)
        self.assertEqual(r.status, pb.LOOKUP_STATUS_FOUND)

    # -- the exposition
    def test_exposition_matches_get_stats(self):
        js = json.loads(self.poshctl("--json", "stats"))
        text_ctl = self.poshctl("stats", "--prometheus")
        status, headers, text_http = self.http()
        js_after = json.loads(self.poshctl("--json", "stats"))
        self.assertEqual(js, js_after, "the daemon was not idle")
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Type"], "text/plain; version=0.0.4; charset=utf-8")
        # One formatter: the same snapshot gives the same bytes.
        self.assertEqual(text_ctl, text_http)

        values, types = samples(text_ctl)
        self.assertGreaterEqual(js["lookups"], 5)
        self.assertGreaterEqual(js["fetches"], 3)
        self.assertGreaterEqual(js["errors"], 1)
        self.assertGreaterEqual(js["not_found"], 1)
        self.assertGreaterEqual(js["verifies"], 1)
        self.assertGreaterEqual(js["invalid_requests"], 1)
        for member, (name, kind) in SCALARS.items():
            self.assertIn(member, js)
            self.assertEqual(values[(name, frozenset())], js[member], member)
            family = name[:-len("_total")] if kind == "counter" else name
            self.assertEqual(types[family], kind, name)
        # Every number of the JSON is exported (the histogram's apart).
        numeric = {k for k, v in js.items() if isinstance(v, (int, float))}
        self.assertEqual(numeric, set(SCALARS))
        # Everything exported has a HELP and a TYPE and the prefix.
        for line in text_ctl.splitlines():
            if not line.startswith("#"):
                self.assertTrue(line.startswith("poshd_"), line)
        families = [l.split()[2] for l in text_ctl.splitlines() if l.startswith("# TYPE")]
        helps = [l.split()[2] for l in text_ctl.splitlines() if l.startswith("# HELP")]
        self.assertEqual(families, helps)

        # The histogram: cumulative buckets in seconds, +Inf == _count, as GetStats says.
        self.assertEqual(types[HIST], "histogram")
        buckets = sorted(((float(dict(lbl)["le"]), v) for (n, lbl), v in values.items()
                          if n == HIST + "_bucket"))
        self.assertEqual(buckets[-1][0], float("inf"))
        counts = [v for _, v in buckets]
        self.assertEqual(counts, sorted(counts), "buckets are not cumulative")
        total = values[(HIST + "_count", frozenset())]
        self.assertEqual(buckets[-1][1], total)
        jh = js["retrieval_latency_ms"]
        self.assertEqual(total, sum(b["count"] for b in jh["buckets"]))
        self.assertGreaterEqual(total, 3)
        cumulative, expected = 0, []
        for b in jh["buckets"]:
            cumulative += b["count"]
            le = float("inf") if b["le"] == "+Inf" else b["le"] / 1000.0
            expected.append((le, cumulative))
        self.assertEqual([le for le, _ in buckets], [le for le, _ in expected])
        self.assertEqual(counts, [c for _, c in expected])
        self.assertAlmostEqual(values[(HIST + "_sum", frozenset())], jh["sum"] / 1000.0, places=6)

        # Start time, against GetStats' started_at.
        st = self.resolver.GetStats(self.stubs.pb.GetStatsRequest(), timeout=10).started_at
        self.assertAlmostEqual(values[("poshd_start_time_seconds", frozenset())],
                               st.seconds + st.nanos / 1e9, places=3)

    def test_http_methods_and_paths(self):
        status, headers, body = self.http(method="HEAD")
        self.assertEqual(status, 200)
        self.assertEqual(body, "")
        self.assertGreater(int(headers["Content-Length"]), 1000)
        self.assertEqual(self.http("/")[0], 404)
        self.assertEqual(self.http("/metrics/x")[0], 404)
        self.assertEqual(self.http("/metrics?name[]=x")[0], 200)
        status, headers, _ = self.http(method="POST")
        self.assertEqual(status, 405)
        self.assertEqual(headers["Allow"], "GET, HEAD")
        self.assertEqual(self.http(method="DELETE")[0], 405)

    # -- hostile clients
    def test_garbage_and_oversized_heads(self):
        for payload, code in ((b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", b"400"),
                              (b"GET /metrics HTTP/1.1\r\n\r\n", b"400"),  # no Host
                              (b"HELLO\r\n\r\n", b"400"),
                              (b"GET /metrics HTTP/7.0\r\n\r\n", b"505"),
                              (b"A" * 30000, b"431"),  # within what the server drains
                              (b"GET /metrics HTTP/1.1\r\nHost: x\r\n" +
                               b"X-Filler: " + b"y" * 9000 + b"\r\n\r\n", b"431")):
            out, closed = raw_exchange(self.port, payload)
            self.assertTrue(out.startswith(b"HTTP/1.1 " + code), (payload[:40], out[:80]))
            self.assertTrue(closed, payload[:40])
        self.lookup_answers()
        self.assertEqual(self.http()[0], 200)

    def test_slowloris_is_dropped(self):
        t0 = time.time()
        # Nothing at all, and a request that stops halfway.
        results = []
        threads = [threading.Thread(target=lambda p=p: results.append(raw_exchange(self.port, p)))
                   for p in (b"", b"GET /metrics HTTP/1.1\r\nHost: x\r\n")]
        for t in threads:
            t.start()
        time.sleep(0.5)
        self.lookup_answers()  # the loop is not held up
        self.assertEqual(self.http()[0], 200)
        for t in threads:
            t.join(20)
        elapsed = time.time() - t0
        self.assertEqual(len(results), 2)
        for out, closed in results:
            self.assertEqual(out, b"")
            self.assertTrue(closed, "the silent client was not disconnected")
        self.assertGreater(elapsed, 3.0)   # the 5 s deadline, not at once
        self.assertLess(elapsed, 12.0)

    def test_many_connections(self):
        held = []
        try:
            for _ in range(64):
                held.append(socket.create_connection(("127.0.0.1", self.port), timeout=5))
            time.sleep(0.5)
            # At most 16 are kept; the others were closed as soon as accepted.
            closed = 0
            for s in held:
                s.settimeout(0.2)
                try:
                    if s.recv(1) == b"":
                        closed += 1
                except ConnectionResetError:
                    closed += 1
                except socket.timeout:
                    pass
            self.assertGreaterEqual(closed, 64 - 16)
            self.lookup_answers()
            self.assertTrue(self.daemon.alive())
        finally:
            for s in held:
                s.close()
        # Slots come back once the clients go away.
        deadline = time.time() + 10
        while True:
            try:
                if self.http()[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            self.assertLess(time.time(), deadline, "/metrics did not come back")
            time.sleep(0.2)

    # -- SIGHUP
    def test_reload_says_a_new_address_needs_a_restart(self):
        with open(self.config, "w") as f:
            f.write('metrics-listen = "127.0.0.1:1"\n')
        try:
            os.kill(self.daemon.pid, signal.SIGHUP)
            deadline = time.time() + 10
            while "metrics-listen changed" not in self.daemon.log_text():
                self.assertLess(time.time(), deadline, self.daemon.log_text()[-2000:])
                time.sleep(0.05)
            self.assertIn("takes effect after a restart", self.daemon.log_text())
        finally:
            with open(self.config, "w") as f:
                f.write('metrics-listen = "127.0.0.1:0"\n')
        self.assertEqual(self.http()[0], 200)  # still on the first address


class MetricsFlagTest(unittest.TestCase):
    def run_poshd(self, args, timeout=20):
        return subprocess.run([POSHD] + args, capture_output=True, text=True, timeout=timeout)

    def test_non_loopback_and_malformed_are_usage_errors(self):
        for bad in ("0.0.0.0:9464", "192.0.2.1:9464", "[::]:9464", "example.com:9464",
                    "127.0.0.1", "127.0.0.1:99999"):
            p = self.run_poshd(["--socket", "/tmp/unused-poshd.sock", "--metrics-listen", bad])
            self.assertEqual(p.returncode, 64, (bad, p.stderr))
            self.assertIn("--metrics-listen", p.stderr)
        p = self.run_poshd(["--metrics-listen", "0.0.0.0:9464"])
        self.assertIn("loopback", p.stderr)

    def test_config_file_errors_exit_78(self):
        tmp = poshtest.TempDir("posh-metc-")
        try:
            conf = os.path.join(tmp.path, "poshd.conf")
            with open(conf, "w") as f:
                f.write('log-level = "info"\nmetrics-listen = "10.1.2.3:9464"\n')
            p = self.run_poshd(["--config", conf])
            self.assertEqual(p.returncode, 78, p.stderr)
            self.assertIn(conf + ":2:", p.stderr)
            self.assertIn("loopback", p.stderr)
        finally:
            tmp.cleanup()

    def test_busy_port_stops_poshd(self):
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        tmp = poshtest.TempDir("posh-metb-")
        try:
            port = busy.getsockname()[1]
            p = self.run_poshd(["--socket", os.path.join(tmp.path, "s.sock"),
                                "--metrics-listen", "127.0.0.1:%d" % port])
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn("--metrics-listen", p.stderr)
            self.assertFalse(os.path.exists(os.path.join(tmp.path, "s.sock")))
        finally:
            busy.close()
            tmp.cleanup()

    def test_help_names_the_flag(self):
        p = self.run_poshd(["--help"])
        self.assertEqual(p.returncode, 0)
        self.assertIn("--metrics-listen ADDR:PORT", p.stdout)
        p = subprocess.run([POSHCTL, "--help"], capture_output=True, text=True, timeout=10)
        self.assertIn("stats [--prometheus]", p.stdout)
        p = subprocess.run([POSHCTL, "--json", "stats", "--prometheus"], capture_output=True,
                           text=True, timeout=10)
        self.assertEqual(p.returncode, 64)
        p = subprocess.run([POSHCTL, "--socket", "/nonexistent/poshd.sock", "stats",
                            "--prometheus"], capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 69)
        self.assertEqual(p.stdout, "")  # nothing for the textfile collector to keep


def main():
    global POSHD, POSHCTL
    ap = argparse.ArgumentParser()
    ap.add_argument("--poshd", required=True)
    ap.add_argument("--poshctl", required=True)
    args, rest = ap.parse_known_args()
    POSHD = os.path.abspath(args.poshd)
    POSHCTL = os.path.abspath(args.poshctl)
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
