#!/usr/bin/env python3
"""transformers' side of the fine-tuning comparison: the same task, data, split, hyperparameters
and seed as `bert finetune`, with BertForSequenceClassification and a plain PyTorch loop that
follows the same recipe (AdamW betas 0.9/0.999, eps 1e-6, weight decay 0.01 except biases and
LayerNorm; linear warm-up over --warmup-ratio of the steps then linear decay; clipping at 1.0;
batches padded to their longest; the best epoch by validation accuracy, or Pearson for regress).

  .cache/venv/bin/python scripts/finetune_peer.py --task classify \\
      --model .cache/models/all-MiniLM-L6-v2 --train T.csv --validation V.csv --test X.csv \\
      --epochs 2 --lr 5e-5 --batch-size 32 --max-length 64 --seed 42 --threads 1 --out result.json

Data: CSV with a header (or .jsonl), columns text, [text_pair], label. Class names are ordered
numerically when all are integers, else sorted (as bert finetune). Prints and writes JSON:
per-epoch validation metrics and the best epoch's test metrics.
"""
import argparse, csv, json, math, os, random, sys, time

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoTokenizer, BertForSequenceClassification  # noqa: E402


def read(path):
    if path.endswith(".jsonl"):
        return [json.loads(l) for l in open(path, encoding="utf-8") if l.strip()]
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def metrics(task, logits, gold):
    if task == "regress":
        p = [float(x[0]) for x in logits]
        g = [float(x) for x in gold]
        mp, mg = sum(p) / len(p), sum(g) / len(g)
        cov = sum((a - mp) * (b - mg) for a, b in zip(p, g))
        return {"pearson": cov / math.sqrt(sum((a - mp) ** 2 for a in p) * sum((b - mg) ** 2 for b in g))}
    pred = [max(range(len(x)), key=lambda i: x[i]) for x in logits]
    acc = sum(int(a == b) for a, b in zip(pred, gold)) / len(gold)
    tp = sum(1 for a, b in zip(pred, gold) if a == 1 and b == 1)
    fp = sum(1 for a, b in zip(pred, gold) if a == 1 and b != 1)
    fn = sum(1 for a, b in zip(pred, gold) if a != 1 and b == 1)
    return {"accuracy": acc, "f1": 2 * tp / (2 * tp + fp + fn) if tp else 0.0}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", choices=["classify", "regress"], required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--train", required=True)
    ap.add_argument("--validation", required=True)
    ap.add_argument("--test")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--warmup-ratio", type=float, default=0.1)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--out")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)

    train, val = read(args.train), read(args.validation)
    test = read(args.test) if args.test else []
    if args.task == "classify":
        names = sorted({r["label"] for r in train})
        if all(n.lstrip("-").isdigit() for n in names):
            names = sorted(names, key=int)
        index = {n: i for i, n in enumerate(names)}
        target = lambda r: index[r["label"]]
        num_labels = len(names)
    else:
        names = ["score"]
        target = lambda r: float(r["label"])
        num_labels = 1
    tok = AutoTokenizer.from_pretrained(args.model)
    model = BertForSequenceClassification.from_pretrained(
        args.model, num_labels=num_labels, id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)},
        problem_type="regression" if args.task == "regress" else "single_label_classification")
    model.float()

    def batches(rows, order):
        for i in range(0, len(order), args.batch_size):
            part = [rows[j] for j in order[i:i + args.batch_size]]
            pairs = [r.get("text_pair") for r in part]
            enc = tok([r["text"] for r in part], pairs if any(p is not None for p in pairs) else None,
                      truncation="longest_first", max_length=args.max_length, padding="longest", return_tensors="pt")
            enc.pop("return_overflowing_tokens", None)
            y = torch.tensor([target(r) for r in part], dtype=torch.float if args.task == "regress" else torch.long)
            yield enc, y

    def evaluate(rows):
        model.eval()
        out = []
        with torch.inference_mode():
            for enc, _ in batches(rows, list(range(len(rows)))):
                out += model(**enc).logits.tolist()
        model.train()
        return metrics(args.task, out, [target(r) for r in rows])

    decay = [p for n, p in model.named_parameters() if not (n.endswith("bias") or "LayerNorm" in n)]
    no_decay = [p for n, p in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.999), eps=1e-6)
    steps = math.ceil(len(train) / args.batch_size) * args.epochs
    sched = transformers.get_linear_schedule_with_warmup(opt, round(steps * args.warmup_ratio), steps)
    model.train()
    key = "accuracy" if args.task == "classify" else "pearson"
    best, best_state, history = -1e9, None, []
    start = time.time()
    rng = random.Random(args.seed)
    for epoch in range(args.epochs):
        order = list(range(len(train)))
        rng.shuffle(order)
        total = 0.0
        n = 0
        for enc, y in batches(train, order):
            loss = model(**enc, labels=y).loss
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            total += loss.item()
            n += 1
        m = evaluate(val)
        history.append({"epoch": epoch + 1, "train_loss": total / n, "validation": m})
        print(f"epoch {epoch + 1} train loss {total / n:.4f} validation {m} ({time.time() - start:.0f}s)", file=sys.stderr)
        if m[key] > best:
            best = m[key]
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    result = {"peer": f"torch {torch.__version__} transformers {transformers.__version__}", "history": history,
              "best_validation": best, "seconds": time.time() - start}
    if test:
        result["test"] = evaluate(test)
    print(json.dumps(result, indent=1))
    if args.out:
        json.dump(result, open(args.out, "w"), indent=1)


if __name__ == "__main__":
    main()
