#!/usr/bin/env python3
"""ONNX Runtime side of scripts/bench-precision.sh: FP32 and dynamic int8, timed and compared.

Usage (in a venv with onnxruntime, onnx, numpy and tokenizers):
  python scripts/bench_encoder_ort.py prepare --onnx model.onnx --heads 12 --hidden 384 --work DIR
  python scripts/bench_encoder_ort.py time --work DIR --threads 2 --shapes 1x16,8x128 --seconds 3
  python scripts/bench_encoder_ort.py embed --work DIR --tokenizer MODEL_DIR --texts FILE --max-length 256

prepare: ORT's BERT graph fusion (onnxruntime.transformers.optimizer, model_type bert), written as
  DIR/fp32.onnx, then quantize_dynamic on the fused graph (QInt8 weights, per channel, as the
  low-precision issue measured ORT) as DIR/int8.onnx.
time: for each of fp32 and int8, each shape, random ids in [1000, 29000) (seed 0), mask all ones;
  2 warm-ups, then runs for --seconds (at least 3); JSON on stdout:
  {"peer": "onnxruntime <ver>", "threads": N, "results": [{"variant", "shape", "best_s", ...}]}
embed: mean-pooled, L2-normalised embeddings of each line of --texts (one at a time, as
  sentence-transformers pools all-MiniLM-L6-v2) from both graphs; prints JSON
  {"fp32": [[...]], "int8": [[...]]} for the cosine comparison.
"""

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort


def session(path, threads):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def prepare(args):
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    os.makedirs(args.work, exist_ok=True)
    # opt_level 0: the Python fusions only (ORT applies its own graph optimizations at load).
    fused = optimize_model(args.onnx, model_type="bert", num_heads=args.heads, hidden_size=args.hidden, opt_level=0)
    fp32 = os.path.join(args.work, "fp32.onnx")
    fused.save_model_to_file(fp32)
    print(f"fused graph: {fused.get_fused_operator_statistics()}", file=sys.stderr)
    # The fused operators (com.microsoft domain) leave some tensors untyped for the quantizer's
    # shape inference: they are float.
    quantize_dynamic(fp32, os.path.join(args.work, "int8.onnx"), weight_type=QuantType.QInt8, per_channel=True,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def feed(batch, seq, rng):
    return {"input_ids": rng.integers(1000, 29000, size=(batch, seq), dtype=np.int64),
            "attention_mask": np.ones((batch, seq), dtype=np.int64),
            "token_type_ids": np.zeros((batch, seq), dtype=np.int64)}


def time_all(args):
    results = []
    for variant in ("fp32", "int8"):
        s = session(os.path.join(args.work, f"{variant}.onnx"), args.threads)
        rng = np.random.default_rng(0)
        for item in args.shapes.split(","):
            b, q = (int(v) for v in item.lower().split("x"))
            inputs = feed(b, q, rng)
            for _ in range(2):
                s.run(["last_hidden_state"], inputs)
            times, start = [], time.perf_counter()
            while len(times) < 3 or time.perf_counter() - start < args.seconds:
                t0 = time.perf_counter()
                s.run(["last_hidden_state"], inputs)
                times.append(time.perf_counter() - t0)
            best = min(times)
            results.append({"variant": variant, "shape": f"{b}x{q}", "best_s": best,
                            "median_s": statistics.median(times), "tokens_per_s": b * q / best,
                            "repeats": len(times)})
            print(f"ort {variant} {b}x{q}: best {best * 1e3:.2f} ms", file=sys.stderr)
    json.dump({"peer": f"onnxruntime {ort.__version__}", "threads": args.threads, "results": results}, sys.stdout)
    sys.stdout.write("\n")


def embed(args):
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(os.path.join(args.tokenizer, "tokenizer.json"))
    tokenizer.enable_truncation(args.max_length)
    tokenizer.no_padding()
    texts = open(args.texts, encoding="utf-8").read().splitlines()
    out = {}
    for variant in ("fp32", "int8"):
        s = session(os.path.join(args.work, f"{variant}.onnx"), args.threads)
        vectors = []
        for text in texts:
            e = tokenizer.encode(text)
            inputs = {"input_ids": np.array([e.ids], dtype=np.int64),
                      "attention_mask": np.array([e.attention_mask], dtype=np.int64),
                      "token_type_ids": np.array([e.type_ids], dtype=np.int64)}
            states = s.run(["last_hidden_state"], inputs)[0][0]
            v = states.mean(axis=0)
            vectors.append((v / np.linalg.norm(v)).tolist())
        out[variant] = vectors
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--onnx", required=True)
    p.add_argument("--heads", type=int, required=True)
    p.add_argument("--hidden", type=int, required=True)
    p.add_argument("--work", required=True)
    t = sub.add_parser("time")
    t.add_argument("--work", required=True)
    t.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    t.add_argument("--shapes", default="1x16,1x128,8x128,32x128")
    t.add_argument("--seconds", type=float, default=3)
    e = sub.add_parser("embed")
    e.add_argument("--work", required=True)
    e.add_argument("--tokenizer", required=True)
    e.add_argument("--texts", required=True)
    e.add_argument("--max-length", type=int, default=256)
    e.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    {"prepare": prepare, "time": time_all, "embed": embed}[args.command](args)


if __name__ == "__main__":
    main()
