#!/usr/bin/env python3
"""Loads model folders fine-tuned by `bert finetune` into transformers and checks that they predict
what `bert predict` predicts.

  .cache/venv/bin/python scripts/check_finetune_interop.py BERT_BINARY FOLDER DATA [--limit N]

FOLDER's config.json names the head. DATA is the task's evaluation file (CSV for classification,
CoNLL for tagging, SQuAD JSON for QA, JSON Lines for multiple choice); the first N examples
(default 200) go through both. transformers loads the folder with from_pretrained (any missing or
unexpected tensor is reported and fails the check). Prints the largest probability difference
(classification, choice), the share of equal word tags (tagging) or of equal answers (QA).
"""
import csv, json, os, subprocess, sys

os.environ["HF_HUB_OFFLINE"] = "1"
import torch  # noqa: E402
from transformers import (AutoTokenizer, BertForMultipleChoice, BertForQuestionAnswering,  # noqa: E402
                          BertForSequenceClassification, BertForTokenClassification)


def main():
    binary, folder, data = sys.argv[1:4]
    limit = int(sys.argv[sys.argv.index("--limit") + 1]) if "--limit" in sys.argv else 200
    arch = json.load(open(os.path.join(folder, "config.json")))["architectures"][0]
    cls = {"BertForSequenceClassification": BertForSequenceClassification, "BertForTokenClassification": BertForTokenClassification,
           "BertForQuestionAnswering": BertForQuestionAnswering, "BertForMultipleChoice": BertForMultipleChoice}[arch]
    model, info = cls.from_pretrained(folder, output_loading_info=True)
    problems = {k: v for k, v in info.items() if v}
    print(f"{arch}: transformers loading info: {problems or 'no missing, unexpected or mismatched tensors'}")
    model.eval()
    tok = AutoTokenizer.from_pretrained(folder)

    def ours(stdin):
        out = subprocess.run([binary, "predict", "--model", folder], input=stdin.encode(), capture_output=True, check=True)
        return [json.loads(l) for l in out.stdout.decode().splitlines()]

    with torch.inference_mode():
        if arch == "BertForSequenceClassification":
            rows = list(csv.DictReader(open(data, newline="", encoding="utf-8")))[:limit]
            pairs = "text_pair" in rows[0]
            lines = "".join((r["text"].replace("\n", " ").replace("\t", " ") + ("\t" + r["text_pair"].replace("\n", " ").replace("\t", " ") if pairs else "")) + "\n" for r in rows)
            mine = ours(lines)
            worst, same = 0.0, 0
            labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
            for r, m in zip(rows, mine):
                text = r["text"].replace("\n", " ").replace("\t", " ")
                pair = r["text_pair"].replace("\n", " ").replace("\t", " ") if pairs else None
                enc = tok(text, pair, truncation=True, max_length=512, return_tensors="pt")
                p = torch.softmax(model(**enc).logits[0], -1).tolist()
                worst = max(worst, max(abs(p[i] - m["probabilities"][labels[i]]) for i in range(len(labels))))
                same += labels[max(range(len(p)), key=lambda i: p[i])] == m["label"]
            print(f"{len(rows)} inputs: same label {same}/{len(rows)}, largest probability difference {worst:.2e}")
        elif arch == "BertForTokenClassification":
            texts = []
            for block in open(data, encoding="utf-8").read().split("\n\n"):
                words = [l.split("\t")[0] for l in block.splitlines() if l.strip()]
                if words:
                    texts.append(" ".join(words))
            texts = texts[:limit]
            mine = ours("".join(t + "\n" for t in texts))
            same = total = 0
            for t, m in zip(texts, mine):
                enc = tok(t, return_tensors="pt", return_offsets_mapping=True, truncation=True, max_length=512)
                offsets = enc.pop("offset_mapping")[0].tolist()
                pred = model(**enc).logits[0].argmax(-1).tolist()
                first = {}
                for k, w in enumerate(enc.word_ids(0)):
                    if w is not None and w not in first:
                        first[w] = model.config.id2label[pred[k]]
                theirs = [first[w] for w in sorted(first)]
                words = [x["tag"] for x in m["words"]]
                total += len(words)
                same += sum(a == b for a, b in zip(theirs, words))
            print(f"{len(texts)} sentences: {same}/{total} word tags equal")
        elif arch == "BertForMultipleChoice":
            rows = [json.loads(l) for l in open(data, encoding="utf-8") if l.strip()][:limit]
            mine = ours("".join(json.dumps({"context": r["context"], "endings": r["endings"]}) + "\n" for r in rows))
            worst = 0.0
            for r, m in zip(rows, mine):
                enc = tok([r["context"]] * len(r["endings"]), r["endings"], truncation=True, max_length=512, padding=True, return_tensors="pt")
                p = torch.softmax(model(**{k: v.unsqueeze(0) for k, v in enc.items()}).logits[0], -1).tolist()
                worst = max(worst, max(abs(a - b) for a, b in zip(p, m["probabilities"])))
            print(f"{len(rows)} questions: largest probability difference {worst:.2e}")
        else:
            squad = json.load(open(data, encoding="utf-8"))
            qs = [(q["id"], q["question"], p["context"]) for a in squad["data"] for p in a["paragraphs"] for q in p["qas"]][:limit]
            mine = ours("".join(json.dumps({"id": i, "question": q, "context": c}) + "\n" for i, q, c in qs))
            same = 0
            for (i, q, c), m in zip(qs, mine):
                if not m["answer"]:
                    continue
                enc = tok(q, c, truncation="only_second", max_length=384, return_tensors="pt")
                out = model(**enc)
                s, e = m["start"], m["end"]
                # The span we chose must also be transformers' best-scoring span among the same candidates:
                # compare its score.
                offsets = tok(q, c, truncation="only_second", max_length=384, return_offsets_mapping=True)["offset_mapping"]
                seq = enc.sequence_ids(0)
                ks = [k for k in range(len(offsets)) if seq[k] == 1 and offsets[k][0] == s]
                ke = [k for k in range(len(offsets)) if seq[k] == 1 and offsets[k][1] == e]
                if ks and ke:
                    score = float(out.start_logits[0, ks[0]] + out.end_logits[0, ke[-1]])
                    same += abs(score - m["score"]) < 1e-3
            answered = sum(1 for m in mine if m["answer"])
            print(f"{len(qs)} questions, {answered} answered: {same}/{answered} answer scores equal within 1e-3 in transformers")


if __name__ == "__main__":
    main()
