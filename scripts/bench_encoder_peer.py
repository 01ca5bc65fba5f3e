#!/usr/bin/env python3
"""PyTorch / transformers side of the encoder forward-pass benchmark.

Times BertModel forward passes (CPU, float32, eval mode, inference_mode) for a
list of batch x sequence shapes, so the Swift encoder can be compared with the
reference implementation on the same machine.

Usage:
  .cache/venv/bin/python scripts/bench_encoder_peer.py \\
      --model .cache/models/all-MiniLM-L6-v2 --threads 2 \\
      --shapes 1x16,1x128,8x128,32x128,8x512 --seconds 3 --json
  .cache/venv/bin/python scripts/bench_encoder_peer.py --config-preset base ...

--model DIR          a Hugging Face folder (config.json + weights), loaded with
                     AutoModel in float32 and the model's default attention
                     implementation (recorded as "attn_implementation").
--config-preset base BertConfig() defaults (BERT-base: 12 layers, hidden 768,
                     12 heads, vocab 30522), random init with seed 0.
--threads N          torch.set_num_threads(N); interop threads set to 1
                     (only if that is still allowed in this process).
--shapes             comma-separated BxS; inputs are random ids in
                     [1000, 29000) (seed 0), attention_mask all ones,
                     token_type_ids all zeros. S must fit
                     max_position_embeddings.
--seconds S          time budget per shape (default 3), after 2 warm-up
                     forwards; at least --min-repeat forwards (default 3).
--json               print one JSON object on stdout:
  {"peer": "torch <ver> transformers <ver>", "threads": N,
   "attn_implementation": "...", "model": "...",
   "results": [{"shape": "8x128", "batch": 8, "seq": 128, "best_s": ...,
                "median_s": ..., "tokens_per_s": batch*seq/best_s,
                "repeats": n}, ...]}
                     otherwise a table. Progress goes to stderr.
"""

import argparse
import json
import os
import statistics
import sys
import time

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModel, BertConfig, BertModel  # noqa: E402

try:
    transformers.utils.logging.disable_progress_bar()
except AttributeError:
    pass


def parse_shapes(text):
    shapes = []
    for item in text.split(","):
        item = item.strip().lower()
        if not item:
            continue
        try:
            b, s = item.split("x")
            shapes.append((int(b), int(s)))
        except ValueError:
            raise SystemExit(f"bad shape {item!r}, expected BxS like 8x128")
    if not shapes:
        raise SystemExit("no shapes")
    return shapes


def load_model(args):
    if args.model:
        try:
            model = AutoModel.from_pretrained(args.model, dtype=torch.float32)
        except TypeError:
            model = AutoModel.from_pretrained(args.model, torch_dtype=torch.float32)
        name = os.path.basename(os.path.normpath(args.model))
    else:
        torch.manual_seed(0)
        model = BertModel(BertConfig())
        name = "bert-base (random, BertConfig() defaults)"
    model = model.float().eval()
    attn = getattr(model.config, "_attn_implementation", None)
    return model, name, attn


def bench_shape(model, batch, seq, seconds, min_repeat, gen):
    ids = torch.randint(1000, 29000, (batch, seq), generator=gen, dtype=torch.int64)
    mask = torch.ones(batch, seq, dtype=torch.int64)
    tt = torch.zeros(batch, seq, dtype=torch.int64)
    feed = dict(input_ids=ids, attention_mask=mask, token_type_ids=tt)
    times = []
    with torch.inference_mode():
        for _ in range(2):
            model(**feed)
        start = time.perf_counter()
        while len(times) < min_repeat or time.perf_counter() - start < seconds:
            t0 = time.perf_counter()
            model(**feed)
            times.append(time.perf_counter() - t0)
    best = min(times)
    return {"shape": f"{batch}x{seq}", "batch": batch, "seq": seq,
            "best_s": best, "median_s": statistics.median(times),
            "tokens_per_s": batch * seq / best, "repeats": len(times)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="Hugging Face model folder")
    src.add_argument("--config-preset", choices=["base"],
                     help="random BERT-base (BertConfig() defaults, seed 0)")
    ap.add_argument("--threads", type=int, default=max(1, os.cpu_count() or 1))
    ap.add_argument("--shapes", default="1x16,1x128,8x128,32x128,8x512")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--min-repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # already set / parallel work already started

    shapes = parse_shapes(args.shapes)
    model, name, attn = load_model(args)
    max_pos = model.config.max_position_embeddings
    for b, s in shapes:
        if s > max_pos:
            raise SystemExit(f"shape {b}x{s}: seq > max_position_embeddings {max_pos}")

    gen = torch.Generator().manual_seed(0)
    results = []
    for b, s in shapes:
        r = bench_shape(model, b, s, args.seconds, args.min_repeat, gen)
        print(f"{r['shape']}: best {r['best_s'] * 1e3:.3f} ms, median "
              f"{r['median_s'] * 1e3:.3f} ms, {r['tokens_per_s']:.0f} tok/s "
              f"({r['repeats']} runs)", file=sys.stderr)
        results.append(r)

    out = {"peer": f"torch {torch.__version__} transformers {transformers.__version__}",
           "model": name, "threads": torch.get_num_threads(),
           "attn_implementation": attn, "results": results}
    if args.json:
        json.dump(out, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(f"peer: {out['peer']}  model: {name}  threads: {out['threads']}  "
              f"attn: {attn}")
        print(f"{'shape':>8} {'best ms':>10} {'median ms':>10} {'tokens/s':>12} {'runs':>5}")
        for r in results:
            print(f"{r['shape']:>8} {r['best_s'] * 1e3:10.3f} {r['median_s'] * 1e3:10.3f} "
                  f"{r['tokens_per_s']:12.0f} {r['repeats']:5d}")


if __name__ == "__main__":
    main()
