"""Shared harness for poshd's Python-driven tests (independent client, faults, soak).

Only the standard library, Debian's python3-grpcio / python3-grpc-tools and the test origin
(tests/origin/posh_origin.py). The posh.v1 stubs are generated from proto/ at run time, the
health stubs from a copy of grpc/health/v1/health.proto written here (Debian ships no
grpc_health module), so nothing of ours is needed on the client side.
"""
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.abspath(os.path.join(HERE, "..", ".."))
ORIGIN = os.path.join(SOURCE_DIR, "tests", "origin", "posh_origin.py")
PROTO_ROOT = os.path.join(SOURCE_DIR, "proto")

HEALTH_PROTO = """syntax = "proto3";
package grpc.health.v1;
message HealthCheckRequest { string service = 1; }
message HealthCheckResponse {
  enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2; SERVICE_UNKNOWN = 3; }
  ServingStatus status = 1;
}
service Health {
  rpc Check(HealthCheckRequest) returns (HealthCheckResponse);
  rpc Watch(HealthCheckRequest) returns (stream HealthCheckResponse);
}
"""

WELL_KNOWN = "/.well-known/posh/xmpp-server.json"
DRAFT = "/.well-known/posh._xmpp-server._tcp.json"


class Stubs:
    """pb2 / pb2_grpc modules for posh.v1 and grpc.health.v1, generated into `out_dir`."""

    def __init__(self, out_dir):
        from grpc_tools import protoc  # python3-grpc-tools
        # The health proto lives in its own directory ("poshtest_health/") so that the
        # generated module cannot shadow the real "grpc" package; the proto package, which
        # names the service on the wire, stays grpc.health.v1.
        os.makedirs(os.path.join(out_dir, "poshtest_health"), exist_ok=True)
        health = os.path.join(out_dir, "poshtest_health", "health.proto")
        with open(health, "w") as f:
            f.write(HEALTH_PROTO)
        includes = ["-I" + PROTO_ROOT, "-I" + out_dir]
        for inc in ("/usr/include", os.path.join(os.path.dirname(protoc.__file__), "_proto")):
            if os.path.exists(os.path.join(inc, "google", "protobuf", "timestamp.proto")):
                includes.append("-I" + inc)
                break
        for proto in (os.path.join(PROTO_ROOT, "posh", "v1", "resolver.proto"), health):
            rc = protoc.main(["grpc_tools.protoc"] + includes +
                             ["--python_out=" + out_dir, "--grpc_python_out=" + out_dir, proto])
            if rc != 0:
                raise RuntimeError("protoc failed (%d) on %s" % (rc, proto))
        sys.path.insert(0, out_dir)
        importlib.invalidate_caches()
        self.pb = importlib.import_module("posh.v1.resolver_pb2")
        self.rpc = importlib.import_module("posh.v1.resolver_pb2_grpc")
        self.health_pb = importlib.import_module("poshtest_health.health_pb2")
        self.health_rpc = importlib.import_module("poshtest_health.health_pb2_grpc")


# ---------------------------------------------------------------------------------------
# /proc helpers

def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def fd_kinds(pid):
    """A small breakdown of a process's descriptors (socket / pipe / anon / file)."""
    kinds = {}
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            t = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        k = t.split(":", 1)[0] if ":" in t else "file"
        kinds[k] = kinds.get(k, 0) + 1
    return kinds


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def thread_count(pid):
    return len(os.listdir("/proc/%d/task" % pid))


# ---------------------------------------------------------------------------------------
# Origin


class Origin:
    def __init__(self, workdir):
        self.dir = os.path.join(workdir, "origin")
        os.makedirs(self.dir, exist_ok=True)
        self.routes = {}
        self.write_routes()
        self.log = open(os.path.join(workdir, "origin.log"), "ab")
        self.proc = subprocess.Popen(["/usr/bin/python3", ORIGIN, "serve", "--dir", self.dir],
                                     stdout=self.log, stderr=self.log)
        ports = os.path.join(self.dir, "ports.json")
        deadline = time.time() + 60
        while not os.path.exists(ports):
            if self.proc.poll() is not None:
                raise RuntimeError("origin exited with %s" % self.proc.returncode)
            if time.time() > deadline:
                raise RuntimeError("origin did not start")
            time.sleep(0.05)
        with open(ports) as f:
            self.ports = json.load(f)
        with open(os.path.join(self.dir, "certs.json")) as f:
            self.certs = json.load(f)
        self.ca = os.path.join(self.dir, "ca.pem")

    def der(self, name):
        import base64
        return base64.b64decode(self.certs[name]["der_b64"])

    def write_routes(self, routes=None):
        if routes is not None:
            self.routes = routes
        path = os.path.join(self.dir, "routes.json")
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.routes, f)
        os.replace(tmp, path)

    def set(self, host, path, **route):
        self.routes[host + path] = route
        self.write_routes()

    def fingerprints(self, host, *names, expires=3600):
        doc = {"fingerprints": [{"sha-256": self.certs[n]["sha-256"]} for n in names],
               "expires": expires}
        self.set(host, WELL_KNOWN, body=json.dumps(doc))

    def requests(self):
        out = []
        try:
            with open(os.path.join(self.dir, "requests.jsonl")) as f:
                for line in f:
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        pass
        except FileNotFoundError:
            pass
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# ---------------------------------------------------------------------------------------
# Daemon

PRIVATE_CHANNEL = [("grpc.use_local_subchannel_pool", 1)]


def health_serving(socket_path, timeout):
    """grpc.health.v1.Health/Check with raw bytes (no stubs needed): SERVING?"""
    import grpc
    ch = grpc.insecure_channel("unix:" + socket_path, options=PRIVATE_CHANNEL)
    try:
        check = ch.unary_unary("/grpc.health.v1.Health/Check")
        return check(b"", timeout=timeout) == b"\x08\x01"  # status: SERVING
    except grpc.RpcError:
        return False
    finally:
        ch.close()


class Daemon:
    """One poshd on a unix socket, every name routed to the test origin."""

    def __init__(self, poshd, workdir, origin, extra=(), socket_path=None, log_name="poshd.log",
                 env=None):
        self.poshd = poshd
        self.workdir = workdir
        self.origin = origin
        self.extra = list(extra)
        self.socket = socket_path or os.path.join(workdir, "poshd.sock")
        self.log_path = os.path.join(workdir, log_name)
        self.env = env
        self.proc = None

    def args(self):
        p = self.origin.ports
        return [self.poshd, "--socket", self.socket, "--ca-file", self.origin.ca,
                # Hostile transports by name; everything else to the HTTPS origin.
                "--connect-to", "reset.example.test:443:127.0.0.1:%d" % p["reset"],
                "--connect-to", "silent.example.test:443:127.0.0.1:%d" % p["silent"],
                "--connect-to", "::127.0.0.1:%d" % p["https"],
                "--log-level", "info"] + self.extra

    def start(self, wait=True, timeout=20):
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        if self.env:
            env.update(self.env)
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args(), stdout=self.log, stderr=self.log, env=env)
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=20):
        """Ready = this process printed "listening on" and answers Health/Check SERVING on a
        fresh connection (a private subchannel pool: gRPC Python otherwise shares a
        subchannel that may still look READY after the previous daemon was killed)."""
        import grpc
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("poshd exited with %s; log:\n%s" % (self.proc.returncode,
                                                                     self.log_text()[-4000:]))
            if "listening on" in self.log_text() and health_serving(self.socket, 1.0):
                return
            time.sleep(0.05)
        raise RuntimeError("poshd not ready after %ss" % timeout)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=20):
        """Stops the daemon; returns its exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.log.close()
                raise RuntimeError("poshd did not stop within %ss after signal %d" % (timeout, sig))
        self.log.close()
        return self.proc.returncode


def stop_all(daemon, origin, tmp, channel=None):
    """A test class's teardown: closes `channel`, stops the daemon (it must exit 0 on SIGTERM:
    AssertionError otherwise, with its log on stderr and `tmp` kept), then the origin."""
    failed = False
    try:
        if channel is not None:
            channel.close()
        rc = daemon.stop()
        if rc != 0:
            failed = True
            sys.stderr.write("poshd exited %s; log:\n%s\n" % (rc, daemon.log_text()))
    finally:
        origin.stop()
        tmp.cleanup(keep=failed)
    if failed:
        raise AssertionError("poshd did not exit 0 on SIGTERM")


class TempDir:
    def __init__(self, prefix):
        # Short paths: a unix socket path must fit in 107 bytes.
        self.path = tempfile.mkdtemp(prefix=prefix, dir="/tmp")

    def cleanup(self, keep=False):
        if keep or os.environ.get("POSH_KEEP_TMP"):
            sys.stderr.write("keeping %s\n" % self.path)
            return
        shutil.rmtree(self.path, ignore_errors=True)


def main_with_poshd(module_globals):
    """A test module's main(): `--poshd PATH` into the module's POSHD, the rest to unittest."""
    import argparse
    import unittest
    ap = argparse.ArgumentParser()
    ap.add_argument("--poshd", required=True)
    args, rest = ap.parse_known_args()
    module_globals["POSHD"] = os.path.abspath(args.poshd)
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


def sanitized(pid):
    """True when the process runs under AddressSanitizer or ThreadSanitizer: its RSS then
    holds the sanitizer's quarantine and shadow memory, so memory-growth checks say nothing."""
    try:
        with open("/proc/%d/maps" % pid) as f:
            maps = f.read()
    except OSError:
        return False
    return "libasan" in maps or "libtsan" in maps
