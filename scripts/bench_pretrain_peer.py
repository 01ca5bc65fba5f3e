#!/usr/bin/env python3
"""PyTorch / transformers side of the pretraining benchmark.

Times full training steps of transformers' BertForPreTraining on the CPU (float32, train mode so
dropout is on): zero_grad, forward with MLM and NSP labels, backward, clip_grad_norm_(1.0),
torch.optim.AdamW (betas 0.9/0.999, eps 1e-6, weight decay 0.01 except biases and LayerNorm),
a linear warm-up/decay schedule step. The batch is built as PretrainBench builds ours: random ids
in [1000, vocab), full rows, segment A the first half, B the second, `masked` evenly spread
positions per row replaced by [MASK] (103) and labelled, next-sentence labels alternating.

  .cache/venv/bin/python scripts/bench_pretrain_peer.py --preset mini --threads 2 \\
      --shapes 32x128 --seconds 10 --json

Presets as swift-bert's BertConfig.preset: tiny (2, 128), mini (4, 256), small (4, 512),
medium (8, 512), base (12, 768), large (24, 1024) = (layers, hidden), heads = hidden / 64,
intermediate = 4 * hidden, vocab 30522 unless --vocab-size.
--json prints {"peer": ..., "threads": N, "results": [{"shape", "batch", "seq", "best_s",
"median_s", "repeats", "tokens_per_s"}]}; otherwise a table. Progress goes to stderr.
"""

import argparse
import json
import os
import statistics
import sys
import time

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import BertConfig, BertForPreTraining  # noqa: E402

PRESETS = {"tiny": (2, 128), "mini": (4, 256), "small": (4, 512), "medium": (8, 512),
           "base": (12, 768), "large": (24, 1024)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="mini", choices=sorted(PRESETS))
    ap.add_argument("--vocab-size", type=int, default=30522)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--shapes", default="32x128")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--min-repeat", type=int, default=3)
    ap.add_argument("--masked", type=int)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    layers, hidden = PRESETS[args.preset]
    config = BertConfig(vocab_size=args.vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=hidden // 64, intermediate_size=4 * hidden)
    torch.manual_seed(0)
    model = BertForPreTraining(config).float().train()
    decay = [p for n, p in model.named_parameters() if not (n.endswith("bias") or "LayerNorm" in n)]
    no_decay = [p for n, p in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=1e-4, betas=(0.9, 0.999), eps=1e-6)
    scheduler = transformers.get_linear_schedule_with_warmup(optimizer, 10, 1_000_000)

    g = torch.Generator().manual_seed(1)
    results = []
    for item in args.shapes.split(","):
        b, s = (int(x) for x in item.lower().split("x"))
        masked = args.masked or min(20, max(1, round(s * 0.15)))
        masked = min(masked, s - 2)
        ids = torch.randint(1000, args.vocab_size, (b, s), generator=g)
        ids[:, 0] = 101
        ids[:, -1] = 102
        types = torch.zeros(b, s, dtype=torch.long)
        types[:, s // 2:] = 1
        labels = torch.full((b, s), -100, dtype=torch.long)
        for k in range(masked):
            j = 1 + k * (s - 2) // masked
            labels[:, j] = ids[:, j]
            ids[:, j] = 103
        nsp = torch.arange(b) % 2
        mask = torch.ones(b, s, dtype=torch.long)

        def step():
            optimizer.zero_grad(set_to_none=False)
            out = model(input_ids=ids, token_type_ids=types, attention_mask=mask, labels=labels,
                        next_sentence_label=nsp)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()

        step()
        step()
        times = []
        start = time.perf_counter()
        while len(times) < args.min_repeat or time.perf_counter() - start < args.seconds:
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
        times.sort()
        results.append({"shape": f"{b}x{s}", "batch": b, "seq": s, "masked_per_row": masked,
                        "best_s": times[0], "median_s": statistics.median(times),
                        "repeats": len(times), "tokens_per_s": b * s / times[0]})
        print(f"peer {b}x{s}: best {times[0]*1e3:.1f} ms", file=sys.stderr)
    out = {"peer": f"torch {torch.__version__} transformers {transformers.__version__}",
           "threads": args.threads, "preset": args.preset, "vocab_size": args.vocab_size, "results": results}
    if args.json:
        print(json.dumps(out, indent=1, sort_keys=True))
    else:
        for r in results:
            print(f"{r['shape']:8} best {r['best_s']*1e3:8.1f} ms  median {r['median_s']*1e3:8.1f} ms  "
                  f"{r['tokens_per_s']:8.0f} training tokens/s")


if __name__ == "__main__":
    main()
