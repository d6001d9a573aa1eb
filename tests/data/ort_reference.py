#!/usr/bin/env python3
"""Reference outputs for tests/face_models.rs: run an ONNX model in onnxruntime.

    python3 tests/data/ort_reference.py MODEL.onnx INPUT.f32 N,C,H,W OUTDIR

INPUT.f32 holds the input tensor as raw little-endian float32. For each model output this
writes OUTDIR/<name>.f32 (raw little-endian float32) and OUTDIR/<name>.shape ("1,6400,1"),
and lists the output names in order in OUTDIR/outputs.txt.

The model runs with its int8 weights and DequantizeLinear nodes as shipped, so onnxruntime
dequantises them independently of our Rust folding. Three annotations are relaxed first, with
the `onnx` package, neither changing the maths:
  * DequantizeLinear nodes whose scale has a single element but carry a block_size (26 in
    YuNet, scale shape [1, 1]): onnxruntime 1.32 refuses them ("block_size must be 0 for
    per-tensor quantization"); one block covering the tensor is per-tensor, so their
    scale and zero point are given as scalars and block_size becomes 0;
  * graph inputs that no node reads (SFace lists 29 stale weight inputs, which
    onnxruntime would otherwise demand in the feed) are dropped;
  * when the input shape differs from the stored one (YuNet stores 640x640), the stored
    input, output and intermediate shapes are dropped.
Exit code 3 when onnxruntime, numpy or onnx is not installed: the Rust test then skips and
says so.
"""
import os
import sys

try:
    import numpy as np
    import onnx
    import onnxruntime as ort
except ImportError as e:  # the Rust test reports the skip
    print(f"python packages for the reference are missing: {e}", file=sys.stderr)
    sys.exit(3)


def relaxed(path: str, dims: list) -> bytes:
    m = onnx.load(path)
    g = m.graph
    inits = {t.name: t for t in g.initializer}
    for n in g.node:
        if n.op_type != "DequantizeLinear" or len(n.input) < 2 or n.input[1] not in inits:
            continue
        count = 1
        for d in inits[n.input[1]].dims:
            count *= d
        if count == 1:
            for a in n.attribute:
                if a.name == "block_size":
                    a.i = 0
            for i in n.input[1:3]:  # scale and zero point become true scalars
                if i in inits:
                    t = onnx.TensorProto()
                    t.CopyFrom(inits[i])
                    del t.dims[:]
                    t.name = i + "_scalar"
                    g.initializer.append(t)
            n.input[1:3] = [i + "_scalar" if i in inits else i for i in n.input[1:3]]
    used = {i for n in g.node for i in n.input}
    unused = [v for v in g.input if v.name not in used]
    for v in unused:
        g.input.remove(v)
    stored = [d.dim_value for d in g.input[0].type.tensor_type.shape.dim]
    if stored != dims:
        del g.value_info[:]
        for v in list(g.input) + list(g.output):
            if v.type.tensor_type.HasField("shape"):
                v.type.tensor_type.ClearField("shape")
    return m.SerializeToString()


def main() -> int:
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    model, inp, shape, outdir = sys.argv[1:]
    dims = [int(d) for d in shape.split(",")]
    x = np.fromfile(inp, dtype="<f4").reshape(dims)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(relaxed(model, dims), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    outs = sess.run(None, {name: x})
    os.makedirs(outdir, exist_ok=True)
    names = [o.name for o in sess.get_outputs()]
    for n, v in zip(names, outs):
        v = np.ascontiguousarray(v, dtype="<f4")
        v.tofile(os.path.join(outdir, n + ".f32"))
        with open(os.path.join(outdir, n + ".shape"), "w") as f:
            f.write(",".join(str(d) for d in v.shape))
    with open(os.path.join(outdir, "outputs.txt"), "w") as f:
        f.write("\n".join(names) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
