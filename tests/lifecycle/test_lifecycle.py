"""poshd lifecycle: configuration file (flags override it, errors name FILE:LINE),
systemd notification (READY/RELOADING/STOPPING/STATUS/WATCHDOG), SIGHUP reload, SIGTERM.

    python3 test_lifecycle.py POSHD POSHCTL
"""
import os
import socket
import subprocess
import sys
import tempfile
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

    def start(self, args, env=None):
        with open(os.path.join(self.tmp, "poshd.log"), "ab") as log:
            p = subprocess.Popen([POSHD] + args, stdout=log, stderr=log,
                                 env=dict(os.environ, **(env or {})))
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


if __name__ == "__main__":
    POSHD, POSHCTL = sys.argv[1], sys.argv[2]
    del sys.argv[1:3]
    unittest.main(verbosity=2)
