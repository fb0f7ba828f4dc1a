"""poshd lifecycle: configuration file (flags override it, errors name FILE:LINE),
systemd notification (READY/RELOADING/STOPPING/STATUS/WATCHDOG), SIGHUP reload, SIGTERM,
the open-files limit, and log lines for journald (priority prefixes under JOURNAL_STREAM).

    python3 test_lifecycle.py POSHD POSHCTL
"""
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

POSHD = POSHCTL = None


class Notify:
    """A NOTIFY_SOCKET listener, as systemd provides."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages = []

    def wait_for(self, needle, timeout=10):
        end = time.time() + timeout
        while time.time() < end:
            for m in self.messages:
                if needle in m:
                    return m
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except socket.timeout:
                pass
        raise AssertionError("no %r in notifications %r" % (needle, self.messages))

    def drain(self):
        self.messages = []

    def close(self):
        self.sock.close()


class Lifecycle(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="posh-life-")
        self.sock = os.path.join(self.tmp, "poshd.sock")
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    def start(self, args, env=None, preexec_fn=None):
        with open(os.path.join(self.tmp, "poshd.log"), "ab") as log:
            p = subprocess.Popen([POSHD] + args, stdout=log, stderr=log,
                                 env=dict(os.environ, **(env or {})), preexec_fn=preexec_fn)
        self.procs.append(p)
        return p

    def log(self):
        with open(os.path.join(self.tmp, "poshd.log"), "rb") as f:
            return f.read().decode(errors="replace")

    def write_config(self, text):
        path = os.path.join(self.tmp, "poshd.conf")
        with open(path, "w") as f:
            f.write(text)
        return path

    def wait_socket(self, path, proc):
        for _ in range(200):
            if os.path.exists(path) or proc.poll() is not None:
                break
            time.sleep(0.05)
        self.assertTrue(os.path.exists(path), "no socket; log:\n" + self.log())

    def test_config_file_sets_keys_and_flags_override(self):
        other = os.path.join(self.tmp, "from-file.sock")
        conf = self.write_config('socket = "%s"\nsocket-mode = "0600"\nlog-level = "debug"\n'
                                 'max-ttl = 60\nconnect-to = ["a.test:443:127.0.0.1:1"]\n' % other)
        p = self.start(["--config", conf])
        self.wait_socket(other, p)
        self.assertEqual(os.stat(other).st_mode & 0o777, 0o600)
        p.terminate()
        self.assertEqual(p.wait(10), 0)
        self.assertFalse(os.path.exists(other), "socket file left behind")
        # A flag overrides the file.
        p = self.start(["--config", conf, "--socket", self.sock, "--socket-mode", "0660"])
        self.wait_socket(self.sock, p)
        self.assertEqual(os.stat(self.sock).st_mode & 0o777, 0o660)
        p.terminate()
        self.assertEqual(p.wait(10), 0)

    def test_config_errors_name_file_line_and_reason(self):
        for text, line, words in (
                ('socket = "/tmp/x.sock"\nfetch-timeot = 3\n', 2, "unknown key"),
                ('\n\nmax-body = "lots"\n', 3, "not an integer"),
                ('log-level = "loud"\n', 1, "log-level"),
                ('max-ttl = 1.5\n', 1, "must be"),
                ('socket = \n', 1, "")):
            conf = self.write_config(text)
            r = subprocess.run([POSHD, "--config", conf, "--socket", self.sock],
                               capture_output=True, timeout=10)
            err = r.stderr.decode()
            self.assertEqual(r.returncode, 78, "%r: exit %d %s" % (text, r.returncode, err))
            self.assertIn("%s:%d:" % (conf, line), err)
            self.assertIn(words, err)
        r = subprocess.run([POSHD, "--config", os.path.join(self.tmp, "missing.conf")],
                           capture_output=True, timeout=10)
        self.assertEqual(r.returncode, 78)

    def test_bad_flags_exit_64(self):
        for args in (["--no-such-flag"], ["--fetch-timeout", "soon"], ["--socket-mode", "999"],
                     ["--connect-to", "nonsense"], ["--log-level"]):
            r = subprocess.run([POSHD] + args, capture_output=True, timeout=10)
            self.assertEqual(r.returncode, 64, "%r: exit %d" % (args, r.returncode))

    def test_notify_reload_and_stop(self):
        notify = Notify(os.path.join(self.tmp, "notify.sock"))
        try:
            conf = self.write_config('log-level = "info"\nnegative-ttl = 300\n')
            p = self.start(["--config", conf, "--socket", self.sock],
                           env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "200000"})
            ready = notify.wait_for("READY=1")
            self.assertIn("STATUS=", ready)
            self.assertTrue(os.path.exists(self.sock), "READY=1 before the socket listens")
            # The watchdog pings from the loop at half the period.
            notify.drain()
            notify.wait_for("WATCHDOG=1", timeout=3)
            # SIGHUP: RELOADING=1 then READY=1; the new log level takes effect.
            self.write_config('log-level = "debug"\nnegative-ttl = 10\n')
            notify.drain()
            p.send_signal(1)
            notify.wait_for("RELOADING=1")
            notify.wait_for("READY=1")
            for _ in range(50):
                if "configuration reloaded" in self.log():
                    break
                time.sleep(0.05)
            self.assertIn("configuration reloaded", self.log())
            # A bad file on reload keeps the running configuration.
            self.write_config('log-level = "shouting"\n')
            notify.drain()
            p.send_signal(1)
            notify.wait_for("READY=1")
            self.assertIsNone(p.poll(), "poshd died on a bad reload")
            self.assertIn("reload failed", self.log())
            # A setting that needs a restart is reported.
            self.write_config('state-dir = "%s/state"\n' % self.tmp)
            notify.drain()
            p.send_signal(1)
            notify.wait_for("READY=1")
            self.assertIn("state-dir changed", self.log())
            notify.drain()
            p.terminate()
            notify.wait_for("STOPPING=1")
            self.assertEqual(p.wait(10), 0)
            self.assertFalse(os.path.exists(self.sock))
        finally:
            notify.close()

    def test_refuses_a_live_socket_and_replaces_a_stale_one(self):
        p = self.start(["--socket", self.sock])
        self.wait_socket(self.sock, p)
        r = subprocess.run([POSHD, "--socket", self.sock], capture_output=True, timeout=10)
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"another poshd holds", r.stderr)
        p.kill()  # leaves a stale socket file behind
        p.wait()
        self.assertTrue(os.path.exists(self.sock))
        q = self.start(["--socket", self.sock])
        time.sleep(0.5)
        r = subprocess.run([POSHCTL, "--socket", self.sock, "--json", "stats"],
                           capture_output=True, timeout=10)
        self.assertEqual(r.returncode, 0, r.stderr)
        q.terminate()
        self.assertEqual(q.wait(10), 0)

    def test_raises_the_open_files_soft_limit_to_the_hard_limit(self):
        # systemd gives a service 1024 open files (soft): poshd raises it to the hard limit.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY and hard <= 256:
            self.skipTest("hard open-files limit %d leaves nothing to raise" % hard)
        p = self.start(["--socket", self.sock],
                       preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard)))
        self.wait_socket(self.sock, p)
        with open("/proc/%d/limits" % p.pid) as f:
            row = [l for l in f if l.startswith("Max open files")][0].split()
        now_soft, now_hard = row[3], row[4]
        self.assertEqual(now_soft, now_hard, row)
        self.assertNotEqual(now_soft, "256", row)
        self.assertIn("open files limit: %s (raised from 256)" % now_soft, self.log())
        p.terminate()
        self.assertEqual(p.wait(10), 0)

    def journal_run(self, journal_stream_of_log):
        """Runs poshd with stderr (and stdout) to a file, JOURNAL_STREAM naming that file or
        not: starts, reloads with a bad file (an error line), stops. Returns the log lines."""
        path = os.path.join(self.tmp, "poshd.log")  # self.log() reads it too
        conf = self.write_config('log-level = "debug"\n')
        with open(path, "wb") as log:
            st = os.fstat(log.fileno())
            js = "%d:%d" % (st.st_dev, st.st_ino) if journal_stream_of_log else \
                "%d:%d" % (st.st_dev, st.st_ino + 1)
            p = subprocess.Popen([POSHD, "--config", conf, "--socket", self.sock],
                                 stdout=log, stderr=log, env=dict(os.environ, JOURNAL_STREAM=js))
        self.procs.append(p)
        self.wait_socket(self.sock, p)
        self.write_config('log-level = "shouting"\n')
        p.send_signal(1)  # SIGHUP: "reload failed" at error
        for _ in range(100):
            with open(path, "rb") as f:
                if b"reload failed" in f.read():
                    break
            time.sleep(0.05)
        p.terminate()
        self.assertEqual(p.wait(10), 0)
        with open(path, "rb") as f:
            return f.read().decode().splitlines()

    def test_log_lines_carry_their_priority_when_stderr_is_the_journal(self):
        lines = self.journal_run(True)
        self.assertTrue(lines)
        for line in lines:
            # sd-daemon.h prefixes, no timestamp of ours (journald keeps its own).
            self.assertRegex(line, r"^<[3467]>\S", line)
            self.assertNotRegex(line, r"^<\d>\d{4}-\d\d-\d\dT")
        self.assertIn("<6>poshd: listening on %s" % self.sock, lines)
        self.assertIn("<6>listening on unix:%s (mode 0660)" % self.sock, lines)
        self.assertTrue([l for l in lines if l.startswith("<3>reload failed")], lines)
        self.assertIn("<6>stopped", lines)

    def test_log_lines_keep_the_human_format_when_stderr_is_not_the_journal(self):
        lines = self.journal_run(False)
        stamp = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z "
        for line in lines:
            if line.startswith("poshd: listening on"):
                continue  # the line for scripts, on standard output
            self.assertRegex(line, stamp + r"(error|warn|info|debug) ", line)
        self.assertTrue([l for l in lines if " error reload failed" in l], lines)
        self.assertIn("poshd: listening on %s" % self.sock, lines)

    def test_a_stalled_stderr_never_blocks_the_daemon(self):
        # stderr (and stdout) a pipe nobody reads, as a stalled journald would be; every
        # retrieval logs at debug (and fails at once: connection refused). The daemon keeps
        # answering; the lines that do not fit are dropped and counted, and the count is
        # logged once someone reads again.
        try:
            import grpc  # Debian's python3-grpcio
        except ImportError:
            self.skipTest("python3-grpcio not installed")
        r, w = os.pipe()
        p = subprocess.Popen([POSHD, "--socket", self.sock, "--log-level", "debug",
                              "--connect-to", "::127.0.0.1:1"], stdout=w, stderr=w)
        self.procs.append(p)
        os.close(w)
        got = []
        try:
            for _ in range(200):
                if os.path.exists(self.sock) or p.poll() is not None:
                    break
                time.sleep(0.05)
            self.assertTrue(os.path.exists(self.sock))
            ch = grpc.insecure_channel("unix:" + self.sock)
            lookup = ch.unary_unary("/posh.v1.Resolver/Lookup")
            long_name = ".".join(c * 60 for c in "abc")
            # ~700 bytes of log per lookup: 5000 lookups are far more than the 1 MiB queue
            # and the pipe hold.
            start = time.time()
            for batch in range(10):
                futures = []
                for i in range(500):
                    domain = ("%s.n%05d.example.test" % (long_name, batch * 500 + i)).encode()
                    # LookupRequest{domain}: field 1, a two-byte varint length (128..16383).
                    n = len(domain)
                    request = b"\x0a" + bytes([0x80 | (n & 0x7f), n >> 7]) + domain
                    futures.append(lookup.future(request, timeout=30))
                for f in futures:
                    f.result()  # a LookupResponse (status error): answered, not stuck
            self.assertLess(time.time() - start, 60)
            ch.close()
            reader = threading.Thread(target=lambda: got.append(_read_all(r)))
            reader.start()
            p.terminate()
            self.assertEqual(p.wait(20), 0)
            reader.join(20)
        finally:
            if p.poll() is None:
                p.kill()
            os.close(r)
        text = got[0].decode(errors="replace") if got else ""
        self.assertRegex(text, r"warn \d+ log lines dropped \(the log writer could not keep up\)")
        self.assertIn("info stopped", text)


def _read_all(fd):
    out = []
    while True:
        b = os.read(fd, 65536)
        if not b:
            return b"".join(out)
        out.append(b)


if __name__ == "__main__":
    POSHD, POSHCTL = sys.argv[1], sys.argv[2]
    del sys.argv[1:3]
    unittest.main(verbosity=2)
