#!/usr/bin/python3
"""Soak: 64 concurrent clients against one poshd and the hostile test origin.

    soak.py --poshd PATH [--duration S] [--clients 64] [--workdir DIR] [--keep]
            [--max-rss-growth-kib N] [--max-fd-growth N]

Each client has its own gRPC channel (its own connection) and loops over a weighted mix:
  hot       Lookup of one of 200 cached domains (cache hits)                  -> FOUND
  verify    Verify on a hot domain, the right leaf (VERIFIED) or another one (NOT_VERIFIED)
  miss      Lookup of a never-seen domain (origin "*" route)                 -> FOUND
            (with --max-entries 1000 these also evict by capacity)
  notfound  Lookup of 200 domains that publish nothing (negative TTL 5 s)   -> NOT_FOUND
  hostile   500s, malformed JSON, slow bodies, slow headers, dropped bodies, redirect loops,
            TLS resets, silent ports (error TTL 2 s)                          -> ERROR
  evict     Evict of a hot domain (then refetched)                           -> ok
  invalid   bad domains / empty chains                                      -> INVALID_ARGUMENT
  admin     GetStats / ListEntries / health                                -> ok
Anything else (another gRPC status, a wrong verdict or status, a deadline) is an
unexpected error. Every 10 s: VmRSS, descriptor count, threads and counters are recorded
(DIR/samples.csv). After the warm-up (a fill of the cache to capacity, then a fifth of the
run), the load pauses until the daemon is idle and a baseline is taken; at the end the
same quiescent measurement is compared with it. Exit 0 when: zero unexpected errors, RSS
growth <= --max-rss-growth-kib, fd growth <= --max-fd-growth, daemon alive and exits 0 on
SIGTERM (no sanitizer report). The summary is printed and written to DIR/summary.json.
"""
import argparse
import collections
import json
import os
import random
import re
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import poshtest  # noqa: E402
from poshtest import WELL_KNOWN  # noqa: E402

import grpc  # noqa: E402

FETCH_TIMEOUT = 3
MIX = [("hot", 62), ("verify", 14), ("miss", 8), ("notfound", 4), ("hostile", 6),
       ("evict", 1), ("invalid", 2), ("admin", 3)]
HOSTILE_KINDS = ["e500", "badjson", "trickle", "slowhead", "midbody", "loop", "e503", "big"]


def build_routes(o):
    certs = o.certs
    doc = json.dumps({"fingerprints": [{"sha-256": certs["xmpp"]["sha-256"]}], "expires": 3600})
    routes = {"*" + WELL_KNOWN: {"body": doc}}
    big = "y" * 3000
    for i in range(200):
        routes["hot-%d.example.test%s" % (i, WELL_KNOWN)] = {"body": doc}
        routes["nf-%d.example.test%s" % (i, WELL_KNOWN)] = {"status": 404, "body": "no"}
    for i in range(40):
        h = "%%s-%d.example.test%s" % (i, WELL_KNOWN)
        routes[h % "e500"] = {"status": 500, "body": "boom"}
        routes[h % "e503"] = {"status": 503, "body": "later"}
        routes[h % "badjson"] = {"body": '{"fingerprints": [{"sha-256": "AAAA"}], "expires": '}
        routes[h % "trickle"] = {"body": big, "trickle": 300}            # 10 s > timeout
        routes[h % "slowhead"] = {"delay_before_headers": FETCH_TIMEOUT + 2, "body": doc}
        routes[h % "midbody"] = {"body": doc + " " * 4000, "close_mid_body": True}
        routes[h % "big"] = {"body_size": 200000}                        # over --max-body
        routes[h % "loop"] = {"status": 302, "headers": {
            "Location": "https://loop2-%d.example.test%s" % (i, WELL_KNOWN)}}
        routes["loop2-%d.example.test%s" % (i, WELL_KNOWN)] = {"status": 307, "headers": {
            "Location": "https://loop-%d.example.test%s" % (i, WELL_KNOWN)}}
    o.write_routes(routes)


class Load:
    def __init__(self, stubs, origin, socket_path, clients):
        self.pb = stubs.pb
        self.stubs = stubs
        self.origin = origin
        self.socket = socket_path
        self.clients = clients
        self.stop = threading.Event()
        self.running = threading.Event()  # cleared = paused
        self.running.set()
        self.lock = threading.Lock()
        self.counts = collections.Counter()
        self.unexpected = collections.Counter()
        self.examples = []
        self.miss_seq = 0
        self.busy = 0
        self.xmpp = origin.der("xmpp")
        self.other = origin.der("other")
        self.weights = [w for _, w in MIX]
        self.kinds = [k for k, _ in MIX]

    def next_miss(self):
        with self.lock:
            self.miss_seq += 1
            return "miss-%d.example.test" % self.miss_seq

    def bad(self, kind, what):
        with self.lock:
            self.unexpected[kind] += 1
            if len(self.examples) < 30:
                self.examples.append("%s: %s" % (kind, what))

    def one(self, stub, health, kind, rng):
        pb = self.pb
        T = 30
        if kind == "hot":
            r = stub.Lookup(pb.LookupRequest(domain="hot-%d.example.test" % rng.randrange(200)),
                            timeout=T)
            if r.status != pb.LOOKUP_STATUS_FOUND:
                self.bad(kind, "%s status %d %s" % (r.domain, r.status, r.error))
        elif kind == "verify":
            good = rng.random() < 0.7
            dom = "hot-%d.example.test" % rng.randrange(200)
            r = stub.Verify(pb.VerifyRequest(domain=dom, presented_chain=[
                self.xmpp if good else self.other]), timeout=T)
            want = pb.VERDICT_VERIFIED if good else pb.VERDICT_NOT_VERIFIED
            if r.verdict != want:
                self.bad(kind, "%s verdict %d (want %d) %s" % (dom, r.verdict, want, r.reason))
        elif kind == "miss":
            dom = self.next_miss()
            r = stub.Lookup(pb.LookupRequest(domain=dom), timeout=T)
            if r.status != pb.LOOKUP_STATUS_FOUND:
                self.bad(kind, "%s status %d %s" % (dom, r.status, r.error))
        elif kind == "notfound":
            dom = "nf-%d.example.test" % rng.randrange(200)
            r = stub.Lookup(pb.LookupRequest(domain=dom), timeout=T)
            if r.status != pb.LOOKUP_STATUS_NOT_FOUND:
                self.bad(kind, "%s status %d %s" % (dom, r.status, r.error))
        elif kind == "hostile":
            x = rng.randrange(len(HOSTILE_KINDS) + 2)
            if x < len(HOSTILE_KINDS):
                dom = "%s-%d.example.test" % (HOSTILE_KINDS[x], rng.randrange(40))
                refresh = False
            else:
                dom = "reset.example.test" if x == len(HOSTILE_KINDS) else "silent.example.test"
                refresh = rng.random() < 0.5
            r = stub.Lookup(pb.LookupRequest(domain=dom, refresh=refresh), timeout=T)
            if r.status != pb.LOOKUP_STATUS_ERROR or not r.error:
                self.bad(kind, "%s status %d (want ERROR)" % (dom, r.status))
        elif kind == "evict":
            stub.Evict(pb.EvictRequest(domain="hot-%d.example.test" % rng.randrange(200)),
                       timeout=T)
        elif kind == "invalid":
            try:
                if rng.random() < 0.5:
                    stub.Lookup(pb.LookupRequest(domain=rng.choice(
                        ["", "a..b", "http://x.example.test/", "10.0.0.1", "-x.example.test",
                         "x" * 300])), timeout=T)
                else:
                    stub.Verify(pb.VerifyRequest(domain="hot-1.example.test"), timeout=T)
                self.bad(kind, "invalid input accepted")
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.INVALID_ARGUMENT:
                    raise
        elif kind == "admin":
            c = rng.randrange(3)
            if c == 0:
                stub.GetStats(pb.GetStatsRequest(), timeout=T)
            elif c == 1:
                stub.ListEntries(pb.ListEntriesRequest(page_size=50), timeout=T)
            else:
                hp = self.stubs.health_pb
                if health.Check(hp.HealthCheckRequest(), timeout=T).status != \
                        hp.HealthCheckResponse.SERVING:
                    self.bad(kind, "health not SERVING")

    def client(self, idx):
        rng = random.Random(idx * 7919 + int(time.time()))
        ch = grpc.insecure_channel("unix:" + self.socket, options=poshtest.PRIVATE_CHANNEL)
        stub = self.stubs.rpc.ResolverStub(ch)
        health = self.stubs.health_rpc.HealthStub(ch)
        try:
            while not self.stop.is_set():
                if not self.running.is_set():
                    self.running.wait(0.2)
                    continue
                kind = rng.choices(self.kinds, self.weights)[0]
                with self.lock:
                    self.busy += 1
                try:
                    self.one(stub, health, kind, rng)
                    with self.lock:
                        self.counts[kind] += 1
                except grpc.RpcError as e:
                    self.bad(kind, "%s: %s" % (e.code(), e.details()))
                except Exception as e:  # noqa: BLE001
                    self.bad(kind, "exception %r" % e)
                finally:
                    with self.lock:
                        self.busy -= 1
        finally:
            ch.close()

    def start(self):
        self.threads = [threading.Thread(target=self.client, args=(i,), daemon=True)
                        for i in range(self.clients)]
        for t in self.threads:
            t.start()

    def pause(self):
        self.running.clear()
        deadline = time.time() + 60
        while time.time() < deadline:
            with self.lock:
                if self.busy == 0:
                    return
            time.sleep(0.05)

    def total(self):
        with self.lock:
            return sum(self.counts.values()), sum(self.unexpected.values())


def stats(stubs, socket_path):
    ch = grpc.insecure_channel("unix:" + socket_path, options=poshtest.PRIVATE_CHANNEL)
    try:
        return stubs.rpc.ResolverStub(ch).GetStats(stubs.pb.GetStatsRequest(), timeout=10)
    finally:
        ch.close()


def wait_idle(stubs, socket_path, limit=30):
    deadline = time.time() + limit
    s = None
    while time.time() < deadline:
        s = stats(stubs, socket_path)
        if s.in_flight == 0:
            return s
        time.sleep(0.1)
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--poshd", required=True)
    ap.add_argument("--duration", type=float, default=600)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--workdir")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--max-entries", type=int, default=1000)
    ap.add_argument("--max-rss-growth-kib", type=int, default=16384)
    ap.add_argument("--max-fd-growth", type=int, default=2)
    args = ap.parse_args()

    if args.workdir:
        os.makedirs(args.workdir, exist_ok=True)
        import tempfile
        work = tempfile.mkdtemp(prefix="soak-", dir=args.workdir)
        tmp = None
    else:
        tmp = poshtest.TempDir("posh-soak-")
        work = tmp.path
    print("soak: workdir %s, %d clients, %.0f s" % (work, args.clients, args.duration),
          flush=True)
    stubs = poshtest.Stubs(os.path.join(work, "gen"))
    origin = poshtest.Origin(work)
    build_routes(origin)
    d = poshtest.Daemon(os.path.abspath(args.poshd), work, origin, extra=[
        "--fetch-timeout", str(FETCH_TIMEOUT), "--max-entries", str(args.max_entries),
        "--negative-ttl", "5", "--error-ttl", "2", "--max-body", "65536",
        "--log-level", "warn"])
    d.start()
    pid = d.pid
    samples = []
    samples_path = os.path.join(work, "samples.csv")
    failures = []
    load = Load(stubs, origin, d.socket, args.clients)
    t_start = time.time()

    def sample(phase):
        s = stats(stubs, d.socket)
        row = {"t": round(time.time() - t_start, 1), "phase": phase,
               "rss_kib": poshtest.rss_kib(pid), "fds": poshtest.fd_count(pid),
               "threads": poshtest.thread_count(pid), "rpcs": load.total()[0],
               "unexpected": load.total()[1], "entries": s.entries, "lookups": s.lookups,
               "verifies": s.verifies, "fetches": s.fetches, "errors": s.errors,
               "evictions": s.evictions, "in_flight": s.in_flight, "coalesced": s.coalesced}
        samples.append(row)
        with open(samples_path, "a") as f:
            if len(samples) == 1:
                f.write(",".join(row) + "\n")
            f.write(",".join(str(v) for v in row.values()) + "\n")
        print("  t=%6.1fs %-7s rss=%6d KiB fds=%3d thr=%3d rpcs=%8d unexpected=%d "
              "entries=%5d fetches=%7d in_flight=%3d" % (
                  row["t"], phase, row["rss_kib"], row["fds"], row["threads"], row["rpcs"],
                  row["unexpected"], row["entries"], row["fetches"], row["in_flight"]),
              flush=True)
        return row

    try:
        sample("start")
        # Warm-up 1: fill the cache to capacity with distinct domains.
        load.weights = [0, 0, 1, 0, 0, 0, 0, 0]
        load.start()
        while stats(stubs, d.socket).entries < args.max_entries and \
                time.time() - t_start < 120:
            time.sleep(0.5)
        # Warm-up 2: the full mix for a fifth of the run.
        load.weights = [w for _, w in MIX]
        warm = max(10.0, args.duration / 5)
        warm_end = time.time() + warm
        next_sample = time.time() + 10
        while time.time() < warm_end:
            time.sleep(0.2)
            if time.time() >= next_sample:
                sample("warmup")
                next_sample += 10
            if not d.alive():
                break
        load.pause()
        wait_idle(stubs, d.socket)
        time.sleep(1)
        base = sample("base")
        load.running.set()
        end = time.time() + args.duration - warm
        next_sample = time.time() + 10
        while time.time() < end:
            time.sleep(0.2)
            if not d.alive():
                failures.append("poshd died (exit %s)" % d.proc.returncode)
                break
            if time.time() >= next_sample:
                sample("load")
                next_sample += 10
        load.pause()  # clients keep their connections open: same fd state as the base
        if d.alive():
            wait_idle(stubs, d.socket)
            time.sleep(1)
            final = sample("final")
        else:
            final = None
    finally:
        load.stop.set()
        load.running.set()
        rc = None
        try:
            rc = d.stop()
        except RuntimeError as e:
            failures.append(str(e))
        origin.stop()

    log = d.log_text()
    rep = re.search(r"(==\d+==ERROR: \w+Sanitizer.*|runtime error:.*)", log)
    if rep:
        failures.append("sanitizer: " + rep.group(0))
    if rc != 0:
        failures.append("poshd exit status %s on SIGTERM" % rc)
    total, unexpected = load.total()
    if unexpected:
        failures.append("%d unexpected RPC outcomes, e.g. %s" % (unexpected, load.examples[:5]))
    summary = {"duration_s": args.duration, "clients": args.clients, "rpcs": total,
               "rpcs_per_s": round(total / max(1, time.time() - t_start), 1),
               "by_kind": dict(load.counts), "unexpected": dict(load.unexpected),
               "unexpected_examples": load.examples}
    if final:
        growth_rss = final["rss_kib"] - base["rss_kib"]
        growth_fd = final["fds"] - base["fds"]
        load_rows = [r for r in samples if r["phase"] in ("load", "final")]
        summary.update({
            "rss_start_kib": samples[0]["rss_kib"], "rss_base_kib": base["rss_kib"],
            "rss_final_kib": final["rss_kib"], "rss_growth_kib": growth_rss,
            "rss_max_kib": max(r["rss_kib"] for r in samples),
            "fds_base": base["fds"], "fds_final": final["fds"], "fd_growth": growth_fd,
            "fds_max_under_load": max((r["fds"] for r in load_rows), default=0),
            "threads_base": base["threads"], "threads_final": final["threads"],
            "daemon_fetches": final["fetches"], "daemon_errors": final["errors"],
            "daemon_evictions": final["evictions"], "daemon_lookups": final["lookups"],
            "daemon_verifies": final["verifies"], "daemon_coalesced": final["coalesced"],
            "entries_final": final["entries"]})
        if growth_rss > args.max_rss_growth_kib:
            failures.append("RSS grew %d KiB after warm-up (limit %d)" % (
                growth_rss, args.max_rss_growth_kib))
        if growth_fd > args.max_fd_growth:
            failures.append("fds grew %d -> %d after warm-up (%s)" % (
                base["fds"], final["fds"], "see samples.csv"))
    summary["failures"] = failures
    with open(os.path.join(work, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary, indent=1))
    print("soak: %s" % ("FAIL" if failures else "PASS"))
    if tmp:
        tmp.cleanup(keep=bool(failures) or args.keep)
    elif not failures and not args.keep:
        import shutil  # --workdir: keep only the samples and the summary of a passing run
        for sub in ("gen", "origin"):
            shutil.rmtree(os.path.join(work, sub), ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
