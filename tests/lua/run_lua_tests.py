#!/usr/bin/python3
"""Issue 11 item 2: the Lua 5.4 binding (require "poshclient") tested with lua5.4 itself.

Starts the test origin (tests/origin/posh_origin.py) and a real poshd on a temporary unix
socket, writes the certificates the Lua script presents, and runs test_poshclient.lua with
`lua5.4`, the binding found through LUA_CPATH. The Lua script waits on the client's fd
with LuaSocket's socket.select, as an event loop would.

    run_lua_tests.py --poshd PATH --cpath DIR [--lua lua5.4]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))
import poshtest  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--poshd", required=True)
    ap.add_argument("--cpath", required=True, help="directory holding poshclient.so")
    ap.add_argument("--lua", default="lua5.4")
    args = ap.parse_args()
    if not shutil.which(args.lua):
        print("SKIP: %s not installed" % args.lua)
        return 77

    tmp = poshtest.TempDir("posh-lua-")
    origin = poshtest.Origin(tmp.path)
    daemon = None
    ok = False
    try:
        o = origin
        o.fingerprints("good.example.test", "xmpp")
        o.set("slow.example.test", poshtest.WELL_KNOWN, delay_before_headers=6,
              body=json.dumps({"fingerprints": [{"sha-256": o.certs["xmpp"]["sha-256"]}],
                               "expires": 3600}))
        o.set("broken.example.test", poshtest.WELL_KNOWN, body="{not json")
        for name in ("xmpp", "other"):
            with open(os.path.join(tmp.path, name + ".der"), "wb") as f:
                f.write(o.der(name))
        daemon = poshtest.Daemon(args.poshd, tmp.path, o).start()
        env = dict(os.environ)
        env["LUA_CPATH"] = os.path.join(os.path.abspath(args.cpath), "?.so") + ";;"
        env["LUA_CPATH_5_4"] = env["LUA_CPATH"]
        env["POSH_TEST_SOCKET"] = daemon.socket
        env["POSH_TEST_DIR"] = tmp.path
        env["POSH_TEST_XMPP_SHA256"] = o.certs["xmpp"]["sha-256"]
        rc = subprocess.call([args.lua, os.path.join(HERE, "test_poshclient.lua")], env=env,
                             timeout=120)
        ok = rc == 0
        if not ok:
            sys.stderr.write("poshd log (tail):\n%s\n" % daemon.log_text()[-3000:])
        if daemon.stop() != 0:
            sys.stderr.write("poshd did not exit 0\n")
            ok = False
        return 0 if ok else 1
    finally:
        if daemon is not None and daemon.alive():
            daemon.stop()
        origin.stop()
        tmp.cleanup(keep=not ok)


if __name__ == "__main__":
    sys.exit(main())
