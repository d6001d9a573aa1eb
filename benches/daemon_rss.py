#!/usr/bin/env python3
"""Peak memory of the daemon with face pay on: starts `vendd simulate` (release build, the
embedded configuration: face models loaded, the simulated camera), waits until face pay is
offered, holds a real face photo up to the simulated camera during a checkout so the face
thread detects, tracks, embeds and matches for a while, then reads VmHWM (peak RSS) and
VmRSS from /proc. Loopback only.

Usage: python3 benches/daemon_rss.py [--bin PATH] [--seconds 15]
The face photo is ../shared/data/faces/obama.jpg when present (else the camera shows no
face and the figure is the daemon with the models loaded but idle; it says so).
"""

import argparse
import base64
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def call(base, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    ap.add_argument("--bin", default=os.path.join(target, "release", "vendd"))
    ap.add_argument("--seconds", type=float, default=15.0)
    a = ap.parse_args()
    if not os.path.exists(a.bin):
        subprocess.run(["cargo", "build", "--release", "--bin", "vendd"], cwd=ROOT, check=True)
    state = tempfile.mkdtemp(prefix="vendd-rss-")
    p = subprocess.Popen([a.bin, "simulate", "--listen", "127.0.0.1:0", "--state-dir", state],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        base = None
        t0 = time.time()
        while base is None and time.time() - t0 < 30:
            line = p.stdout.readline()
            m = re.match(r"vendd listening on (http://\S+)", line)
            if m:
                base = m.group(1)
        if base is None:
            sys.exit("vendd did not start")
        t0 = time.time()
        while True:
            st, face = call(base, "GET", "/api/face")
            if st == 200 and face.get("available"):
                break
            if time.time() - t0 > 120:
                sys.exit(f"face pay never became available: {face}")
            time.sleep(0.2)
        loaded = time.time() - t0
        after_load = status_kb(p.pid, "VmHWM")
        photo = os.path.join(ROOT, "..", "shared", "data", "faces", "obama.jpg")
        if os.path.exists(photo):
            with open(photo, "rb") as f:
                b64 = base64.b64encode(f.read()).decode()
            call(base, "POST", "/sim/camera/show", {"image_base64": b64})
            shown = "a face photo held up to the simulated camera during a checkout"
        else:
            shown = "NO face photo (../shared/data/faces absent): models loaded, face thread idle"
        call(base, "POST", "/api/cart/items", {"slot": "A1"})
        call(base, "POST", "/api/checkout", {})
        time.sleep(a.seconds)
        _, face = call(base, "GET", "/api/face")
        peak = status_kb(p.pid, "VmHWM")
        rss = status_kb(p.pid, "VmRSS")
        call(base, "POST", "/api/cancel", {})
        print(f"vendd simulate, embedded configuration, face pay on (models loaded in {loaded:.1f} s)")
        print(f"scene: {shown}; {a.seconds:.0f} s")
        print(f"face thread: {json.dumps(face.get('stream'))}")
        print(f"peak RSS after loading the models: {after_load / 1024:.1f} MB")
        print(f"peak RSS (VmHWM) at the end:       {peak / 1024:.1f} MB (goal <= 150 MB)")
        print(f"RSS now (VmRSS):                   {rss / 1024:.1f} MB")
    finally:
        p.terminate()
        p.wait(timeout=20)


if __name__ == "__main__":
    main()
