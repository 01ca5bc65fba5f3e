#!/usr/bin/env python3
"""transformers' side of the fine-tuning comparison (--task classify|regress|tag|choice|qa): the same task, data, split, hyperparameters
and seed as `bert finetune`, with BertForSequenceClassification and a plain PyTorch loop that
follows the same recipe (AdamW betas 0.9/0.999, eps 1e-6, weight decay 0.01 except biases and
LayerNorm; linear warm-up over --warmup-ratio of the steps then linear decay; clipping at 1.0;
batches padded to their longest; the best epoch by validation accuracy, or Pearson for regress).

  .cache/venv/bin/python scripts/finetune_peer.py --task classify \\
      --model .cache/models/all-MiniLM-L6-v2 --train T.csv --validation V.csv --test X.csv \\
      --epochs 2 --lr 5e-5 --batch-size 32 --max-length 64 --seed 42 --threads 1 --out result.json

Data as bert finetune reads it: CSV with a header (or .jsonl), columns text, [text_pair], label
(classify, regress; class names ordered numerically when all are integers, else sorted); CoNLL
token<TAB>tag files (tag; tags "O" first then sorted; the tag on each word's first piece, entity
F1 by seqeval); JSON Lines {"context", "endings", "label"} (choice); SQuAD JSON (qa: windows of
--max-length tokens with --doc-stride, answers located as bert finetune does, n-best 20, max answer
30 tokens, SQuAD 2.0 null answers by the smallest [CLS] score, official EM/F1; the training loss's
start/end softmax covers each window's own tokens, as bert finetune's, unless --qa-loss model). Prints and writes
JSON: per-epoch validation metrics and the best epoch's test metrics.

The same seed gives the same order of examples in each epoch as bert finetune (its generator,
xoshiro256** seeded by SplitMix64, and its shuffle are reproduced below). With --init DIR the
model starts from a folder written by `bert finetune --epochs 0` (the encoder and bert finetune's
newly initialised head), so that only dropout masks differ between the two runs; with dropout
set to 0 in the model's config.json both runs are deterministic and should agree step by step.
"""
import argparse, csv, json, math, os, sys, time

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import (AutoTokenizer, BertForMultipleChoice, BertForQuestionAnswering,  # noqa: E402
                          BertForSequenceClassification, BertForTokenClassification)


MASK64 = (1 << 64) - 1


def _rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & MASK64


class SwiftRandom:
    """bert's SeededRandom: xoshiro256** with its state seeded by SplitMix64."""

    def __init__(self, seed):
        z, self.s = seed & MASK64, []
        for _ in range(4):
            z = (z + 0x9E3779B97F4A7C15) & MASK64
            x = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
            x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
            self.s.append(x ^ (x >> 31))

    def next(self):
        s = self.s
        result = (_rotl((s[1] * 5) & MASK64, 7) * 9) & MASK64
        t = (s[1] << 17) & MASK64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = _rotl(s[3], 45)
        return result


def epoch_order(n, seed, epoch):
    """The order bert finetune visits n examples in an epoch (Fisher-Yates from the end)."""
    order, rng = list(range(n)), SwiftRandom(seed + 0xF17E + epoch)
    for i in range(n - 1, 0, -1):
        j = rng.next() % (i + 1)
        order[i], order[j] = order[j], order[i]
    return order


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


def read_conll(path):
    sentences, words, tags = [], [], []
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if not line or line.startswith("-DOCSTART-"):
            if words:
                sentences.append((words, tags))
            words, tags = [], []
            continue
        parts = line.replace("\t", " ").split()
        words.append(parts[0])
        tags.append(parts[-1])
    if words:
        sentences.append((words, tags))
    return sentences


def read_squad(path):
    out = []
    for article in json.load(open(path, encoding="utf-8"))["data"]:
        for p in article["paragraphs"]:
            for q in p["qas"]:
                out.append({"id": q["id"], "question": q["question"].strip(), "context": p["context"],
                            "answers": q.get("answers", []), "impossible": q.get("is_impossible", False)})
    return out


def qa_features(tok, examples, args, keep_offsets=False):
    enc = tok([e["question"] for e in examples], [e["context"] for e in examples], truncation="only_second",
              max_length=args.max_length, stride=args.doc_stride, return_overflowing_tokens=True, return_offsets_mapping=True)
    features = []
    for i, ids in enumerate(enc["input_ids"]):
        e = examples[enc["overflow_to_sample_mapping"][i]]
        seq = enc.sequence_ids(i)
        offsets = [o if seq[k] == 1 else None for k, o in enumerate(enc["offset_mapping"][i])]
        start = end = 0
        if not e["impossible"] and e["answers"]:
            a = e["answers"][0]["answer_start"]
            b = a + len(e["answers"][0]["text"])
            inside = [k for k, o in enumerate(offsets) if o is not None]
            if inside and offsets[inside[0]][0] <= a and offsets[inside[-1]][1] >= b:
                start = max(k for k in inside if offsets[k][0] <= a)
                end = min(k for k in inside if offsets[k][1] >= b)
                end = max(end, start)
        features.append({"example": enc["overflow_to_sample_mapping"][i], "input_ids": ids,
                         "token_type_ids": enc["token_type_ids"][i], "offsets": offsets, "start": start, "end": end})
    return features


def qa_evaluate(model, tok, examples, args):
    import collections, re, string
    features = qa_features(tok, examples, args)
    allow_null = any(e["impossible"] for e in examples)
    best = [{"text": "", "score": -1e30, "null": 1e30} for _ in examples]
    for i in range(0, len(features), args.batch_size):
        part = features[i:i + args.batch_size]
        enc = tok.pad({"input_ids": [f["input_ids"] for f in part], "token_type_ids": [f["token_type_ids"] for f in part]},
                      return_tensors="pt")
        out = model(**enc)
        for r, f in enumerate(part):
            st, en = out.start_logits[r].tolist(), out.end_logits[r].tolist()
            b = best[f["example"]]
            b["null"] = min(b["null"], st[0] + en[0])
            context = [k for k, o in enumerate(f["offsets"]) if o is not None]
            for s in sorted(context, key=lambda k: -st[k])[:20]:
                for e in sorted(context, key=lambda k: -en[k])[:20]:
                    if e >= s and e - s + 1 <= args.max_answer_length and st[s] + en[e] > b["score"]:
                        b["score"] = st[s] + en[e]
                        b["text"] = examples[f["example"]]["context"][f["offsets"][s][0]:f["offsets"][e][1]]

    def normalize(s):
        s = "".join(ch for ch in s.lower() if ch not in set(string.punctuation))
        return " ".join(re.sub(r"\b(a|an|the)\b", " ", s).split())

    def f1(gold, pred):
        g, p = normalize(gold).split(), normalize(pred).split()
        if not g or not p:
            return float(g == p)
        same = sum((collections.Counter(g) & collections.Counter(p)).values())
        if same == 0:
            return 0.0
        pr, rc = same / len(p), same / len(g)
        return 2 * pr * rc / (pr + rc)

    em = f = 0.0
    for b, e in zip(best, examples):
        pred = "" if allow_null and b["null"] - b["score"] > 0 else b["text"]
        gold = [] if e["impossible"] else [a["text"] for a in e["answers"]]
        if not gold:
            em += float(pred == "")
            f += float(pred == "")
        else:
            em += max(float(normalize(g) == normalize(pred)) for g in gold)
            f += max(f1(g, pred) for g in gold)
    return {"exact_match": 100 * em / len(examples), "f1": 100 * f / len(examples)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", choices=["classify", "regress", "tag", "choice", "qa"], required=True)
    ap.add_argument("--doc-stride", type=int, default=128)
    ap.add_argument("--max-answer-length", type=int, default=30)
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
    ap.add_argument("--qa-loss", choices=["masked", "model"], default="masked",
                    help="qa: softmax over each window's tokens (masked, as bert finetune) or BertForQuestionAnswering's own loss, "
                         "whose softmax also covers the batch's padding")
    ap.add_argument("--init", help="start from this folder (written by bert finetune --epochs 0) instead of --model")
    ap.add_argument("--steps-log", help="write each step's loss here, one per line")
    ap.add_argument("--out")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    task = args.task
    if task == "tag":
        train, val = read_conll(args.train), read_conll(args.validation)
        test = read_conll(args.test) if args.test else []
    elif task == "qa":
        train, val = read_squad(args.train), read_squad(args.validation)
        test = read_squad(args.test) if args.test else []
    else:
        train, val = read(args.train), read(args.validation)
        test = read(args.test) if args.test else []
    tok = AutoTokenizer.from_pretrained(args.model)
    if task in ("classify", "regress"):
        if task == "classify":
            names = sorted({r["label"] for r in train})
            if all(n.lstrip("-").isdigit() for n in names):
                names = sorted(names, key=int)
            index = {n: i for i, n in enumerate(names)}
            target = lambda r: index[r["label"]]
        else:
            names = ["score"]
            target = lambda r: float(r["label"])
        model = BertForSequenceClassification.from_pretrained(
            args.init or args.model, num_labels=len(names), id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)},
            problem_type="regression" if task == "regress" else "single_label_classification")
    elif task == "tag":
        tags = sorted({t for s in train for t in s[1]} - {"O"})
        names = ["O"] + tags
        index = {n: i for i, n in enumerate(names)}
        model = BertForTokenClassification.from_pretrained(args.init or args.model, num_labels=len(names), id2label=dict(enumerate(names)),
                                                           label2id=index)
    elif task == "choice":
        model = BertForMultipleChoice.from_pretrained(args.init or args.model)
    else:
        model = BertForQuestionAnswering.from_pretrained(args.init or args.model)
        train_features = qa_features(tok, train, args)
        print(f"{len(train)} questions give {len(train_features)} training windows", file=sys.stderr)
    model.float()

    def batches(rows, order):
        for i in range(0, len(order), args.batch_size):
            part = [rows[j] for j in order[i:i + args.batch_size]]
            if task == "tag":
                enc = tok([w for w, _ in part], is_split_into_words=True, truncation=True, max_length=args.max_length,
                          padding="longest", return_tensors="pt")
                labels = torch.full(enc["input_ids"].shape, -100, dtype=torch.long)
                for b, (_, t) in enumerate(part):
                    previous = None
                    for j, w in enumerate(enc.word_ids(b)):
                        if w is not None and w != previous:
                            labels[b, j] = index[t[w]]
                        previous = w
                yield enc, labels
            elif task == "choice":
                contexts = [r["context"] for r in part for _ in r["endings"]]
                endings = [e for r in part for e in r["endings"]]
                enc = tok(contexts, endings, truncation="longest_first", max_length=args.max_length, padding="longest", return_tensors="pt")
                c = len(part[0]["endings"])
                enc = {k: v.view(len(part), c, -1) for k, v in enc.items()}
                yield enc, torch.tensor([r["label"] for r in part])
            elif task == "qa":
                enc = tok.pad({"input_ids": [f["input_ids"] for f in part], "token_type_ids": [f["token_type_ids"] for f in part]},
                              return_tensors="pt")
                yield enc, (torch.tensor([f["start"] for f in part]), torch.tensor([f["end"] for f in part]))
            else:
                pairs = [r.get("text_pair") for r in part]
                enc = tok([r["text"] for r in part], pairs if any(p is not None for p in pairs) else None,
                          truncation="longest_first", max_length=args.max_length, padding="longest", return_tensors="pt")
                y = torch.tensor([target(r) for r in part], dtype=torch.float if task == "regress" else torch.long)
                yield enc, y

    def evaluate(rows):
        model.eval()
        with torch.inference_mode():
            if task == "qa":
                result = qa_evaluate(model, tok, rows, args)
            elif task == "tag":
                from seqeval.metrics import f1_score
                predicted = []
                for enc, labels in batches(rows, list(range(len(rows)))):
                    logits = model(**enc).logits.argmax(-1)
                    for b in range(logits.shape[0]):
                        predicted.append([names[int(logits[b, j])] for j in range(labels.shape[1]) if labels[b, j] != -100])
                # Words cut off by max length are predicted "O", as bert finetune does.
                predicted = [p + ["O"] * (len(t) - len(p)) for p, (_, t) in zip(predicted, rows)]
                result = {"f1": f1_score([t for _, t in rows], predicted)}
            elif task == "choice":
                right = 0
                for enc, y in batches(rows, list(range(len(rows)))):
                    right += int((model(**enc).logits.argmax(-1) == y).sum())
                result = {"accuracy": right / len(rows)}
            else:
                out = []
                for enc, _ in batches(rows, list(range(len(rows)))):
                    out += model(**enc).logits.tolist()
                result = metrics(task, out, [target(r) for r in rows])
        model.train()
        return result

    decay = [p for n, p in model.named_parameters() if not (n.endswith("bias") or "LayerNorm" in n)]
    no_decay = [p for n, p in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.999), eps=1e-6)
    train_rows = train_features if task == "qa" else train
    steps = math.ceil(len(train_rows) / args.batch_size) * args.epochs
    sched = transformers.get_linear_schedule_with_warmup(opt, round(steps * args.warmup_ratio), steps)
    model.train()
    key = {"classify": "accuracy", "regress": "pearson", "tag": "f1", "choice": "accuracy", "qa": "f1"}[task]
    best, best_state, history = -1e9, None, []
    start = time.time()
    steps_log = open(args.steps_log, "w") if args.steps_log else None
    for epoch in range(args.epochs):
        order = epoch_order(len(train_rows), args.seed, epoch)
        total = 0.0
        n = 0
        for enc, y in batches(train_rows, order):
            if task == "qa" and args.qa_loss == "model":
                loss = model(**enc, start_positions=y[0], end_positions=y[1]).loss
            elif task == "qa":
                # The start/end softmax over each window's own tokens, as bert finetune computes it:
                # BertForQuestionAnswering's loss also spreads it over the batch's padding, so it
                # depends on how the batch is padded (--qa-loss model uses it).
                out = model(**enc)
                pad = ~enc["attention_mask"].bool()
                ce = torch.nn.functional.cross_entropy
                loss = (ce(out.start_logits.masked_fill(pad, float("-inf")), y[0])
                        + ce(out.end_logits.masked_fill(pad, float("-inf")), y[1])) / 2
            else:
                loss = model(**enc, labels=y).loss
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            total += loss.item()
            n += 1
            if steps_log:
                print(f"{loss.item():.6f}", file=steps_log, flush=True)
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
