#!/usr/bin/python3
"""Issue 5 item 6: an independent client. Talks to a real poshd with Debian's python3-grpcio
only, with stubs generated from proto/posh/v1/resolver.proto at test time: Lookup (found,
not found, bad input), Verify (verified, not verified, empty chain), GetStats and
grpc.health.v1.Health (Check and Watch for "" and "posh.v1.Resolver", NOT_FOUND for other
names, NOT_SERVING once shutdown begins). Nothing of libposhclient is used.

    test_python_client.py --poshd PATH [unittest options]
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import poshtest  # noqa: E402

import grpc  # noqa: E402  (python3-grpcio)

POSHD = None


class PythonClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = poshtest.TempDir("posh-py-")
        cls.stubs = poshtest.Stubs(os.path.join(cls.tmp.path, "gen"))
        cls.origin = poshtest.Origin(cls.tmp.path)
        o = cls.origin
        # found: an RFC 7711 fingerprints document naming the "xmpp" leaf
        o.fingerprints("found.example.test", "xmpp")
        # jwk: the seed draft's JWK Set at the draft URL, after a 404 at the RFC 7711 URL
        import json
        o.set("jwk.example.test", poshtest.DRAFT,
              body=json.dumps({"keys": [o.certs["rsa"]["jwk_x5c"]]}))
        # error: the origin answers 500
        o.set("broken.example.test", poshtest.WELL_KNOWN, status=500, body="oops")
        cls.daemon = poshtest.Daemon(POSHD, cls.tmp.path, o).start()
        cls.channel = grpc.insecure_channel("unix:" + cls.daemon.socket)
        cls.resolver = cls.stubs.rpc.ResolverStub(cls.channel)
        cls.health = cls.stubs.health_rpc.HealthStub(cls.channel)

    @classmethod
    def tearDownClass(cls):
        poshtest.stop_all(cls.daemon, cls.origin, cls.tmp, cls.channel)

    # -- helpers
    def lookup(self, domain, service="", refresh=False):
        pb = self.stubs.pb
        return self.resolver.Lookup(pb.LookupRequest(domain=domain, service=service,
                                                     refresh=refresh), timeout=20)

    def verify(self, domain, chain):
        pb = self.stubs.pb
        return self.resolver.Verify(pb.VerifyRequest(domain=domain, presented_chain=chain),
                                    timeout=20)

    # -- Lookup
    def test_lookup_found(self):
        pb = self.stubs.pb
        r = self.lookup("Found.Example.Test.")  # R1: normalised by the server
        self.assertEqual(r.status, pb.LOOKUP_STATUS_FOUND, r)
        self.assertEqual(r.domain, "found.example.test")
        self.assertEqual(r.service, "xmpp-server")
        self.assertEqual(r.format, pb.DOCUMENT_FORMAT_RFC7711)
        self.assertEqual(len(r.keys), 1)
        fp = {f.hash: f.value for f in r.keys[0].fingerprints}
        import base64
        self.assertEqual(base64.b64encode(fp["sha-256"]).decode(),
                         self.origin.certs["xmpp"]["sha-256"])
        self.assertGreater(r.expires_at.seconds, 0)
        self.assertEqual(r.delegated_to, "")
        # the second time it comes from the cache
        r2 = self.lookup("found.example.test")
        self.assertEqual(r2.status, pb.LOOKUP_STATUS_FOUND)
        self.assertTrue(r2.from_cache)

    def test_lookup_jwk_draft_url(self):
        pb = self.stubs.pb
        r = self.lookup("jwk.example.test")
        self.assertEqual(r.status, pb.LOOKUP_STATUS_FOUND, r)
        self.assertEqual(r.format, pb.DOCUMENT_FORMAT_JWK)
        self.assertEqual(r.keys[0].kid, "rsa")
        self.assertTrue(r.keys[0].has_certificate)
        self.assertGreater(r.keys[0].not_after.seconds, 0)

    def test_lookup_not_found(self):
        pb = self.stubs.pb
        r = self.lookup("nothing-here.example.test")
        self.assertEqual(r.status, pb.LOOKUP_STATUS_NOT_FOUND, r)
        self.assertEqual(len(r.keys), 0)

    def test_lookup_error(self):
        pb = self.stubs.pb
        r = self.lookup("broken.example.test")
        self.assertEqual(r.status, pb.LOOKUP_STATUS_ERROR, r)
        self.assertEqual(r.error_kind, pb.ERROR_KIND_HTTP_STATUS, r)
        self.assertIn("500", r.error)

    def test_lookup_invalid_domain(self):
        # R1: U+200B is disallowed by IDNA2008 (not mapped away), and an xn-- label must be
        # valid Punycode of a valid U-label.
        for bad in ("", "a..b", "http://x.example.test/", "127.0.0.1", "x.example.test:5269",
                    "dir\u200bect.example.test", "xn--zz.example.test"):
            with self.assertRaises(grpc.RpcError) as cm:
                self.lookup(bad)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT, bad)
            self.assertTrue(cm.exception.details(), bad)
        with self.assertRaises(grpc.RpcError) as cm:
            self.lookup("found.example.test", service="-bad-")
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)

    # -- Verify
    def test_verify_verified(self):
        pb = self.stubs.pb
        r = self.verify("found.example.test", [self.origin.der("xmpp")])
        self.assertEqual(r.verdict, pb.VERDICT_VERIFIED, r)
        self.assertEqual(r.reason, "")
        self.assertEqual(r.matched_key_index, 0)
        self.assertEqual(r.record.status, pb.LOOKUP_STATUS_FOUND)

    def test_verify_not_verified(self):
        pb = self.stubs.pb
        r = self.verify("found.example.test", [self.origin.der("other")])
        self.assertEqual(r.verdict, pb.VERDICT_NOT_VERIFIED, r)
        self.assertTrue(r.reason)
        self.assertEqual(r.matched_key_index, -1)

    def test_verify_no_posh(self):
        pb = self.stubs.pb
        r = self.verify("nothing-here.example.test", [self.origin.der("xmpp")])
        self.assertEqual(r.verdict, pb.VERDICT_NO_POSH, r)

    def test_verify_empty_chain(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.verify("found.example.test", [])
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("chain", cm.exception.details())

    def test_verify_garbage_chain(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.verify("found.example.test", [b"\x30\x03not a certificate"])
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)

    # -- GetStats, cache inspection
    def test_stats_and_cache(self):
        pb = self.stubs.pb
        self.lookup("found.example.test")
        self.lookup("found.example.test")
        s = self.resolver.GetStats(pb.GetStatsRequest(), timeout=10)
        self.assertGreaterEqual(s.lookups, 2)
        self.assertGreaterEqual(s.cache_hits, 1)
        self.assertGreaterEqual(s.fetches, 1)
        self.assertGreaterEqual(s.entries, 1)
        self.assertEqual(len(s.retrieval_latency.counts),
                         len(s.retrieval_latency.bucket_upper_ms) + 1)
        lst = self.resolver.ListEntries(pb.ListEntriesRequest(domain="found.example.test"),
                                        timeout=10)
        self.assertEqual([e.domain for e in lst.entries], ["found.example.test"])
        self.assertEqual(lst.entries[0].status, pb.LOOKUP_STATUS_FOUND)
        ev = self.resolver.Evict(pb.EvictRequest(domain="found.example.test"), timeout=10)
        self.assertTrue(ev.evicted)
        r = self.lookup("found.example.test")
        self.assertFalse(r.from_cache)

    def test_stats_started_at(self):
        # GetStatsResponse.started_at (field 15) is part of the API: when the daemon started.
        import time
        s = self.resolver.GetStats(self.stubs.pb.GetStatsRequest(), timeout=10)
        self.assertGreater(s.started_at.seconds, 0, "GetStatsResponse.started_at is not set")
        self.assertLessEqual(s.started_at.seconds, int(time.time()) + 1)

    # -- health
    def test_health_serving(self):
        hp = self.stubs.health_pb
        r = self.health.Check(hp.HealthCheckRequest(service=""), timeout=10)
        self.assertEqual(r.status, hp.HealthCheckResponse.SERVING)

    def test_health_answers_for_each_service_by_name(self):
        # grpc.health.v1: "" is the server as a whole, a service by its full name; a name
        # nobody registered is NOT_FOUND.
        hp = self.stubs.health_pb
        for name in ("", "posh.v1.Resolver"):
            r = self.health.Check(hp.HealthCheckRequest(service=name), timeout=10)
            self.assertEqual(r.status, hp.HealthCheckResponse.SERVING, name)
        for name in ("posh.v1.Nothing", "Resolver", "posh.v1.resolver"):
            with self.assertRaises(grpc.RpcError) as cm:
                self.health.Check(hp.HealthCheckRequest(service=name), timeout=10)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND, name)
        w = self.health.Watch(hp.HealthCheckRequest(service="posh.v1.Nothing"), timeout=10)
        self.assertEqual(next(w).status, hp.HealthCheckResponse.SERVICE_UNKNOWN)
        w.cancel()

    def test_health_turns_not_serving_when_shutdown_begins(self):
        # A daemon of its own. Watch streams (open before SIGTERM) see "" and the service
        # turn NOT_SERVING while the server still runs: a retrieval held by a silent origin
        # is still in flight then (it gets "shutting down" after the grace period). New
        # calls, Check included, are refused from SIGTERM on (UNAVAILABLE).
        import signal
        import time
        hp, pb = self.stubs.health_pb, self.stubs.pb
        d = poshtest.Daemon(POSHD, self.tmp.path, self.origin,
                            socket_path=os.path.join(self.tmp.path, "health.sock"),
                            log_name="poshd-health.log").start()
        ch = grpc.insecure_channel("unix:" + d.socket, options=poshtest.PRIVATE_CHANNEL)
        try:
            health = self.stubs.health_rpc.HealthStub(ch)
            resolver = self.stubs.rpc.ResolverStub(ch)
            watches = {name: health.Watch(hp.HealthCheckRequest(service=name), timeout=30)
                       for name in ("", "posh.v1.Resolver")}
            for name, w in watches.items():
                self.assertEqual(next(w).status, hp.HealthCheckResponse.SERVING, name)
            slow = resolver.Lookup.future(pb.LookupRequest(domain="silent.example.test"),
                                          timeout=30)
            deadline = time.time() + 10
            while resolver.GetStats(pb.GetStatsRequest(), timeout=5).in_flight < 1:
                self.assertLess(time.time(), deadline, "the slow retrieval never started")
                time.sleep(0.02)
            d.proc.send_signal(signal.SIGTERM)
            for name, w in watches.items():
                self.assertEqual(next(w).status, hp.HealthCheckResponse.NOT_SERVING, name)
            self.assertFalse(slow.done(), "the server stopped before health said NOT_SERVING")
            self.assertIsNone(d.proc.poll())
            for w in watches.values():
                w.cancel()
            r = slow.result()
            self.assertEqual(r.error_kind, pb.ERROR_KIND_SHUTTING_DOWN, r)
        finally:
            ch.close()
            rc = d.stop()
        self.assertEqual(rc, 0, d.log_text()[-3000:])


if __name__ == "__main__":
    poshtest.main_with_poshd(globals())
