#!/usr/bin/env python3
"""Side-by-side face pipeline benchmark: vendd (tract) against onnxruntime, one run.

1. Runs the Rust bench (benches/face_pipeline.rs) with --dump DIR --json FILE: it renders the
   frame sequence (a shopper stepping up, 640x480, from ../shared/data/faces), writes the
   frames and the 10,001-identity gallery to DIR, and times our side:
     * every step every frame at the configured detector size and at 640x480;
     * the stream (tracking, regions of interest, embedding only when useful).
2. Runs the SAME steps with onnxruntime on the same frames and gallery, here, right after:
   detect (letterbox with Pillow BILINEAR, YuNet in onnxruntime, vectorised numpy decode,
   NMS) -> align the largest face (least-squares similarity onto the ArcFace template,
   Pillow affine warp to 112x112) -> embed (SFace in onnxruntime, L2 normalise) -> match
   (numpy matrix-vector product over the 10,001 identities, best two, threshold and margin).
   Each frame --repeat times, per-frame median per step, like the Rust side.
3. Prints per-step times side by side and two ratios, ours / onnxruntime:
   (a) the same steps every frame (tract vs onnxruntime), at the configured detector size
       and at 640x480;
   (b) our stream pipeline vs onnxruntime doing every step every frame at 640x480 (the
       naive pipeline) and at the configured size.

Single-threaded on both sides: onnxruntime with intra_op_num_threads = inter_op = 1 and
sequential execution; OMP/OpenBLAS/MKL threads set to 1 before numpy loads; tract runs on the
bench's only thread. The models are the same int8bq files; onnxruntime loads them through
tests/data/ort_reference.py's `relaxed` (annotations relaxed, maths unchanged).

Usage:
  python3 benches/face_compare.py                      # builds and runs `cargo bench --bench face_pipeline`
  python3 benches/face_compare.py --ours PATH-TO-BENCH-BINARY
  python3 benches/face_compare.py --frames 90 --repeat 3
Needs: onnxruntime, onnx, numpy, pillow (scripts/setup.sh bench-face installs them).
"""

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
from PIL import Image  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CRATE = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(CRATE, "tests", "data"))
from ort_reference import relaxed  # noqa: E402

YUNET = "face_detection_yunet_2023mar_int8bq.onnx"
SFACE = "face_recognition_sface_2021dec_int8bq.onnx"
TEMPLATE = np.array([(38.2946, 51.6963), (73.5318, 51.5014), (56.0252, 71.7366),
                     (41.5493, 92.3655), (70.7299, 92.2041)], dtype=np.float64)
STEPS = ("detect", "align", "embed", "match")


def vm_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def session(path, shape):
    o = ort.SessionOptions()
    o.intra_op_num_threads = 1
    o.inter_op_num_threads = 1
    o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    o.log_severity_level = 3
    return ort.InferenceSession(relaxed(path, shape), o, providers=["CPUExecutionProvider"])


class Yunet:
    def __init__(self, path, w, h):
        self.w, self.h = w, h
        self.s = session(path, [1, 3, h, w])
        self.inp = self.s.get_inputs()[0].name
        self.names = [o.name for o in self.s.get_outputs()]

    def detect(self, img, thr, nms_iou):
        ih, iw = img.shape[:2]
        scale = min(self.w / iw, self.h / ih)
        nw, nh = max(1, min(self.w, round(iw * scale))), max(1, min(self.h, round(ih * scale)))
        src = img if (nw, nh) == (iw, ih) else np.asarray(
            Image.fromarray(img).resize((nw, nh), Image.BILINEAR))
        x = np.zeros((1, 3, self.h, self.w), np.float32)
        x[0, :, :nh, :nw] = src[:, :, ::-1].transpose(2, 0, 1)
        outs = dict(zip(self.names, self.s.run(None, {self.inp: x})))
        faces = []
        for st in (8, 16, 32):
            cols, rows = self.w // st, self.h // st
            cls = np.clip(outs[f"cls_{st}"].reshape(-1), 0, 1)
            obj = np.clip(outs[f"obj_{st}"].reshape(-1), 0, 1)
            score = np.sqrt(cls * obj)
            idx = np.nonzero(score >= thr)[0]
            if idx.size == 0:
                continue
            c = (idx % cols).astype(np.float32)
            r = (idx // cols).astype(np.float32)
            b = outs[f"bbox_{st}"].reshape(-1, 4)[idx]
            k = outs[f"kps_{st}"].reshape(-1, 10)[idx]
            cx, cy = (c + b[:, 0]) * st, (r + b[:, 1]) * st
            bw, bh = np.exp(b[:, 2]) * st, np.exp(b[:, 3]) * st
            lx = (k[:, 0::2] + c[:, None]) * st
            ly = (k[:, 1::2] + r[:, None]) * st
            for j in range(idx.size):
                faces.append((float(score[idx[j]]),
                              np.array([cx[j] - bw[j] / 2, cy[j] - bh[j] / 2, bw[j], bh[j]]) / scale,
                              np.stack([lx[j], ly[j]], 1) / scale))
        faces.sort(key=lambda f: -f[0])
        kept = []
        for f in faces:
            if all(iou(f[1], k[1]) <= nms_iou for k in kept):
                kept.append(f)
        return kept


def iou(a, b):
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    u = a[2] * a[3] + b[2] * b[3] - inter
    return inter / u if u > 0 else 0.0


def align(img, lm):
    # least-squares similarity lm -> template: [x -y 1 0; y x 0 1] [a b tx ty]' = [u v]'
    n = lm.shape[0]
    A = np.zeros((2 * n, 4))
    A[0::2] = np.stack([lm[:, 0], -lm[:, 1], np.ones(n), np.zeros(n)], 1)
    A[1::2] = np.stack([lm[:, 1], lm[:, 0], np.zeros(n), np.ones(n)], 1)
    a, b, tx, ty = np.linalg.lstsq(A, TEMPLATE.reshape(-1), rcond=None)[0]
    d = a * a + b * b
    ia, ib = a / d, -b / d  # inverse: crop -> image
    itx, ity = -(ia * tx - ib * ty), -(ib * tx + ia * ty)
    return np.asarray(Image.fromarray(img).transform(
        (112, 112), Image.AFFINE, (ia, -ib, itx, ib, ia, ity), resample=Image.BILINEAR))


class Sface:
    def __init__(self, path):
        self.s = session(path, [1, 3, 112, 112])
        self.inp = self.s.get_inputs()[0].name

    def embed(self, crop):
        x = crop.transpose(2, 0, 1)[None].astype(np.float32)
        e = self.s.run(None, {self.inp: x})[0].reshape(-1)
        return e / max(float(np.linalg.norm(e)), 1e-12)


def decide(gallery, e, threshold, margin):
    s = gallery @ e
    top = np.argpartition(s, -2)[-2:]
    best, second = (top[1], top[0]) if s[top[1]] >= s[top[0]] else (top[0], top[1])
    ok = s[best] >= threshold and s[best] - s[second] >= margin
    return int(best) if ok else None


def every_step(det, emb, gallery, frames, meta, repeat):
    per = {k: [] for k in STEPS}
    with_face = matched = 0
    for img in frames:
        runs = {k: [] for k in STEPS}
        for rep in range(repeat):
            t = time.perf_counter()
            faces = det.detect(img, meta["score_threshold"], meta["nms_iou"])
            runs["detect"].append((time.perf_counter() - t) * 1e3)
            if not faces:
                for k in STEPS[1:]:
                    runs[k].append(0.0)
                continue
            f = max(faces, key=lambda f: f[1][2] * f[1][3])
            t = time.perf_counter()
            crop = align(img, f[2])
            runs["align"].append((time.perf_counter() - t) * 1e3)
            t = time.perf_counter()
            e = emb.embed(crop)
            runs["embed"].append((time.perf_counter() - t) * 1e3)
            t = time.perf_counter()
            d = decide(gallery, e, meta["threshold"], meta["margin"])
            runs["match"].append((time.perf_counter() - t) * 1e3)
            if rep == 0:
                with_face += 1
                matched += int(d == meta["enrolled_index"])
        for k in STEPS:
            per[k].append(sorted(runs[k])[len(runs[k]) // 2])
    total = [sum(per[k][i] for k in STEPS) for i in range(len(frames))]
    return per, total, with_face, matched


def pct(v, p):
    s = sorted(v)
    return s[round((len(s) - 1) * p)] if s else 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ours", help="path of the face_pipeline bench binary (default: cargo bench)")
    ap.add_argument("--frames", type=int, default=90)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--models", default=os.environ.get("VENDD_MODELS_DIR", os.path.join(CRATE, "models", "cache")))
    ap.add_argument("--keep", help="dump directory to keep (default: a temporary one)")
    a, extra = ap.parse_known_args()
    tmp = tempfile.TemporaryDirectory() if not a.keep else None
    dump = a.keep or tmp.name
    out_json = os.path.join(dump, "ours.json")
    flags = ["--frames", str(a.frames), "--repeat", str(a.repeat), "--dump", dump,
             "--json", out_json, "--models", a.models] + extra
    cmd = [a.ours] + flags if a.ours else ["cargo", "bench", "-q", "--bench", "face_pipeline", "--"] + flags
    print("ours:", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=CRATE, check=True)
    ours = json.load(open(out_json))
    meta = json.load(open(os.path.join(dump, "meta.json")))

    w, h, n = meta["width"], meta["height"], meta["frames"]
    frames = [np.fromfile(os.path.join(dump, f"frame{i:04d}.rgb"), np.uint8).reshape(h, w, 3)
              for i in range(n)]
    frames_kb = sum(f.nbytes for f in frames) // 1024
    gallery = np.fromfile(os.path.join(dump, "gallery.f32"), "<f4").reshape(meta["gallery"], 128)
    hwm0 = vm_kb("VmHWM:")
    dw, dh = meta["detect_width"], meta["detect_height"]
    det = Yunet(os.path.join(a.models, YUNET), dw, dh)
    det640 = Yunet(os.path.join(a.models, YUNET), 640, 480)
    emb = Sface(os.path.join(a.models, SFACE))
    hwm1 = vm_kb("VmHWM:")
    for img in frames[:3]:  # warm-up
        for d in (det, det640):
            fs = d.detect(img, meta["score_threshold"], meta["nms_iou"])
            if fs:
                decide(gallery, emb.embed(align(img, fs[0][2])), meta["threshold"], meta["margin"])
    ref_cfg = every_step(det, emb, gallery, frames, meta, a.repeat)
    ref_640 = every_step(det640, emb, gallery, frames, meta, a.repeat)

    cfg = f"{dw}x{dh}"
    print()
    print(f"onnxruntime {ort.__version__}, numpy {np.__version__}, single thread; {n} frames 640x480, "
          f"median of {a.repeat} runs per frame; gallery {meta['gallery']} identities")
    print(f"onnxruntime process: VmHWM {hwm1 / 1024:.1f} MB after loading 3 sessions "
          f"(before: {hwm0 / 1024:.1f} MB, which holds {frames_kb / 1024:.0f} MB of frames)")
    print(f"vendd bench: VmHWM {ours['rss_kb']['hwm_models_and_gallery'] / 1024:.1f} MB after loading the models "
          f"(2 detectors + embedder) and the 10k gallery")
    print()
    mean = lambda v: sum(v) / len(v) if v else 0.0  # noqa: E731
    print(f"{'mean ms per frame':<40}{'tract':>9}{'ORT':>9}{'ratio':>8}")
    rows = []
    for label, o, r in ((f"every step {cfg}", ours["every_step_configured"], ref_cfg),
                        ("every step 640x480", ours["every_step_640x480"], ref_640)):
        for k in STEPS:
            t, x = o["steps_mean_ms"][k], mean(r[0][k])
            print(f"  {label + ': ' + k:<38}{t:>9.3f}{x:>9.3f}{t / x:>8.2f}")
        t, x = o["total_mean_ms"], mean(r[1])
        print(f"  {label + ': total':<38}{t:>9.2f}{x:>9.2f}{t / x:>8.2f}")
        print(f"  {label + ': p95':<38}{o['total_p95_ms']:>9.2f}{pct(r[1], 0.95):>9.2f}")
        rows.append((label, t, x))
    s = ours["stream"]
    print(f"  {'stream (ours) total':<38}{s['total_mean_ms']:>9.2f}")
    print(f"  {'stream (ours) p50 / p95 / max':<38}{s['total_p50_ms']:>9.2f}{s['total_p95_ms']:>9.2f}"
          f"{s['total_max_ms']:>9.2f}")
    print(f"  stream: {json.dumps(s['summary'])}")
    print()
    print(f"faces found / matched to the enrolled id, every step: ours {ours['faces']['configured']}/"
          f"{ours['faces']['configured_matched']} ({cfg}), {ours['faces']['640x480']}/"
          f"{ours['faces']['640x480_matched']} (640x480); ORT {ref_cfg[2]}/{ref_cfg[3]} ({cfg}), "
          f"{ref_640[2]}/{ref_640[3]} (640x480), of {n} frames")
    print()
    ra = rows[0][1] / rows[0][2]
    ra640 = rows[1][1] / rows[1][2]
    rb = s["total_mean_ms"] / rows[1][2]
    rbc = s["total_mean_ms"] / rows[0][2]
    print(f"ratio (a) same steps every frame, tract / ORT: {ra:.2f} at {cfg}, {ra640:.2f} at 640x480")
    print(f"ratio (b) our stream / ORT every step every frame: {rb:.2f} (ORT at 640x480), "
          f"{rbc:.2f} (ORT at {cfg})")
    print(f"config: {json.dumps(ours['config'])}")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
