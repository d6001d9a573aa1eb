#!/usr/bin/env python3
"""Side-by-side QR benchmark: zxing-cpp (PyPI `zxing-cpp`) against vendd's decoder.

Both decoders see the same frames: the synthetic corpus and the real photos with a
ground truth, from ../shared/data/qr (or --data). A read counts only when the decoded
payload bytes equal the ground truth (synth: the payload column; real: truth_hex).

CPU time per frame, single thread, the least of --repeat decodes of the frame (default 3;
robust against other load on the machine):
  * zxing-cpp: time.thread_time() around one zxingcpp.read_barcodes() call on an image
    already loaded and converted to 8-bit grey (formats=QRCode, library defaults
    otherwise: try_rotate, try_downscale, try_invert on);
  * ours: the bench binary benches/qr_decode.rs (it measures each decode with
    CLOCK_THREAD_CPUTIME_ID on its own single thread and prints JSON).

Installs nothing; needs `pip install zxing-cpp==3.1.1 pillow` beforehand.

Usage:
  python3 benches/qr_compare.py                       # runs `cargo bench --bench qr_decode -- --json`
  python3 benches/qr_compare.py --ours path/to/qr_decode-binary
  python3 benches/qr_compare.py --fast                # ours with QrConfig::fast()
  python3 benches/qr_compare.py --ours-json results.json
"""

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CRATE = os.path.dirname(HERE)


def load_frames(data):
    """Yields (key, cls, truth_bytes, path) in the same order as the Rust bench."""
    frames = []
    synth = os.path.join(data, "synth")
    with open(os.path.join(synth, "ground_truth.csv"), newline="") as f:
        for row in csv.DictReader(f):
            frames.append(("synth/" + row["file"], row["cls"], row["payload"].encode(),
                           os.path.join(synth, row["file"])))
    real = os.path.join(data, "real")
    with open(os.path.join(real, "ground_truth.csv"), newline="") as f:
        for row in csv.DictReader(f):
            if not row["truth_hex"]:
                continue
            frames.append(("real/" + row["path"], "real-" + row["set"],
                           bytes.fromhex(row["truth_hex"]), os.path.join(real, row["path"])))
    return frames


def run_zxing(frames, repeat=1):
    import zxingcpp
    from PIL import Image

    fmt = zxingcpp.BarcodeFormat.QRCode
    out = {}
    for key, cls, truth, path in frames:
        img = Image.open(path)
        img.load()
        img = img.convert("L")
        # least of `repeat` calls, each timed on this thread's CPU clock
        ms = float("inf")
        for _ in range(repeat):
            t0 = time.thread_time()
            res = zxingcpp.read_barcodes(img, formats=fmt)
            ms = min(ms, (time.thread_time() - t0) * 1e3)
        ok = any(r.bytes == truth for r in res)
        out[key] = (cls, ok, ms)
    return out


def run_ours(args):
    if args.ours_json:
        with open(args.ours_json) as f:
            doc = json.load(f)
    else:
        extra = ["--json", "--data", args.data, "--repeat", str(args.repeat)]
        extra += ["--fast"] if args.fast else []
        if args.ours:
            cmd = [args.ours] + extra
        else:
            cmd = ["cargo", "bench", "-q", "--bench", "qr_decode", "--"] + extra
        proc = subprocess.run(cmd, cwd=CRATE, check=True, stdout=subprocess.PIPE, text=True)
        doc = json.loads(proc.stdout)
    return {fr["file"]: (fr["cls"], fr["ok"], fr["ms"]) for fr in doc["frames"]}, doc


def summarise(results, keys):
    oks = [results[k][1] for k in keys if k in results]
    ms = [results[k][2] for k in keys if k in results]
    if not ms:
        return None
    return len(ms), sum(oks) / len(ms), statistics.median(ms), statistics.mean(ms)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.normpath(os.path.join(CRATE, "..", "shared", "data", "qr")))
    ap.add_argument("--ours", help="path of a built qr_decode bench binary")
    ap.add_argument("--ours-json", help="read our results from this JSON file instead of running")
    ap.add_argument("--fast", action="store_true", help="run ours with QrConfig::fast()")
    ap.add_argument("--repeat", type=int, default=3,
                    help="decode each frame this many times, keep the least CPU time (both decoders)")
    ap.add_argument("--json-out", help="also write the combined table as JSON here")
    args = ap.parse_args()

    if not os.path.isdir(os.path.join(args.data, "synth")):
        print(f"no QR corpus at {args.data}; nothing to compare", file=sys.stderr)
        return 2
    frames = load_frames(args.data)
    ours, doc = run_ours(args)
    zx = run_zxing(frames, max(1, args.repeat))

    classes = []
    for _, cls, _, _ in frames:
        if cls not in classes:
            classes.append(cls)
    groups = [(c, [k for k, cl, _, _ in frames if cl == c]) for c in sorted(classes)]
    groups.append(("ALL synth", [k for k, cl, _, _ in frames if not cl.startswith("real-")]))
    groups.append(("ALL real", [k for k, cl, _, _ in frames if cl.startswith("real-")]))

    print(f"ours: {doc.get('decoder', '?')}; timing: {doc.get('timing', '?')}")
    print(f"zxing-cpp: read_barcodes(formats=QRCode), time.thread_time(), min of {max(1, args.repeat)}")
    print("ms = median (mean) over the frames of the class")
    hdr = f"{'class':<16}{'n':>5}{'zxing rate':>12}{'ours rate':>11}{'zxing ms':>16}{'ours ms':>16}{'ms ratio':>10}"
    print(hdr)
    print("-" * len(hdr))
    table = []
    for name, keys in groups:
        z = summarise(zx, keys)
        o = summarise(ours, keys)
        if z is None or o is None:
            continue
        ratio = o[2] / z[2] if z[2] > 0 else float("inf")
        print(f"{name:<16}{z[0]:>5}{100 * z[1]:>11.1f}%{100 * o[1]:>10.1f}%"
              f"{z[2]:>8.2f} ({z[3]:>5.2f}){o[2]:>8.2f} ({o[3]:>5.2f}){ratio:>10.2f}")
        table.append({"class": name, "n": z[0], "zxing_rate": z[1], "ours_rate": o[1],
                      "zxing_median_ms": z[2], "zxing_mean_ms": z[3],
                      "ours_median_ms": o[2], "ours_mean_ms": o[3], "median_ms_ratio": ratio})
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(table, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
