"""BertForSequenceClassification in PyTorch: the reference for SequenceClassificationTests.

    .cache/venv/bin/python scripts/make_finetune_reference.py

From Fixtures/tiny-pretraining's encoder, transformers makes two BertForSequenceClassification
models (torch seed 0 for the new classifier): 3 labels ("neg", "neu", "pos",
single_label_classification) and 1 output (regression), saved with save_pretrained to
Fixtures/tiny-seqcls-classify and Fixtures/tiny-seqcls-regress. With dropout off (eval mode) and
the batch of tiny_reference.safetensors (padded rows included), it records in
Fixtures/tiny_seqcls_reference.safetensors, for each model M in (classify, regress):
  M.labels, M.loss [1], M.logits [3, L] and M.grad.<name> for every parameter.
A BertForQuestionAnswering (Fixtures/tiny-qa) is checked under "qa." on two unpadded rows, a
BertForMultipleChoice (Fixtures/tiny-choice) under "mc." (2 questions x 3 choices, padded rows).
A BertForTokenClassification with 5 BIO tags (Fixtures/tiny-tokcls) gets the same treatment under
"tag." (labels −100 at padding and at some real positions). Fixtures/metrics_reference.json holds
scikit-learn's and scipy's accuracy, F1, macro F1, Matthews correlation, Pearson and Spearman on
fixed predictions, and seqeval's entities and entity precision/recall/F1 (default mode) on random
BIO sequences (pip install seqeval), for MetricsTests.
"""
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import scipy.stats  # noqa: E402
import sklearn.metrics as skm  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from seqeval.metrics import f1_score as seqeval_f1, precision_score as seqeval_precision, recall_score as seqeval_recall  # noqa: E402
from seqeval.metrics.sequence_labeling import get_entities  # noqa: E402
from transformers import (BertForMultipleChoice, BertForQuestionAnswering, BertForSequenceClassification,  # noqa: E402
                          BertForTokenClassification)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "Tests", "BertModelTests", "Fixtures")


def main():
    ref = load_file(os.path.join(FIXTURES, "tiny_reference.safetensors"))
    ids, types, mask = ref["input_ids"], ref["token_type_ids"], ref["attention_mask"]
    tensors = {}
    cases = {
        "classify": dict(num_labels=3, id2label={0: "neg", 1: "neu", 2: "pos"}, label2id={"neg": 0, "neu": 1, "pos": 2},
                         problem_type="single_label_classification", labels=torch.tensor([2, 0, 1])),
        "regress": dict(num_labels=1, problem_type="regression", labels=torch.tensor([0.5, -1.25, 2.0])),
    }
    for name, case in cases.items():
        labels = case.pop("labels")
        torch.manual_seed(0)
        model = BertForSequenceClassification.from_pretrained(
            os.path.join(FIXTURES, "tiny-pretraining"), attn_implementation="eager", **case)
        folder = os.path.join(FIXTURES, f"tiny-seqcls-{name}")
        model.save_pretrained(folder, safe_serialization=True)
        model = BertForSequenceClassification.from_pretrained(folder, attn_implementation="eager")
        model.eval()
        out = model(input_ids=ids, token_type_ids=types, attention_mask=mask, labels=labels)
        out.loss.backward()
        tensors[f"{name}.labels"] = labels
        tensors[f"{name}.loss"] = out.loss.detach().reshape(1)
        tensors[f"{name}.logits"] = out.logits.detach().contiguous()
        for n, p in model.named_parameters():
            tensors[f"{name}.grad.{n}"] = p.grad.detach().clone().contiguous()
    # Token classification: 5 tags, labels on some real positions, -100 elsewhere (padding included).
    torch.manual_seed(0)
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    model = BertForTokenClassification.from_pretrained(
        os.path.join(FIXTURES, "tiny-pretraining"), attn_implementation="eager", num_labels=5,
        id2label=dict(enumerate(tags)), label2id={t: i for i, t in enumerate(tags)})
    folder = os.path.join(FIXTURES, "tiny-tokcls")
    model.save_pretrained(folder, safe_serialization=True)
    model = BertForTokenClassification.from_pretrained(folder, attn_implementation="eager")
    model.eval()
    labels = torch.full_like(ids, -100)
    g = torch.Generator().manual_seed(3)
    for b in range(ids.shape[0]):
        for p in range(1, int(mask[b].sum()) - 1):
            if torch.rand(1, generator=g).item() < 0.7:
                labels[b, p] = int(torch.randint(0, 5, (1,), generator=g))
    out = model(input_ids=ids, token_type_ids=types, attention_mask=mask, labels=labels)
    out.loss.backward()
    tensors["tag.labels"] = labels
    tensors["tag.loss"] = out.loss.detach().reshape(1)
    tensors["tag.logits"] = out.logits.detach().contiguous()
    for n, p in model.named_parameters():
        tensors["tag.grad." + n] = p.grad.detach().clone().contiguous()
    # Question answering: rows without padding (transformers scores padding positions too; we do
    # not), start/end positions per row.
    torch.manual_seed(0)
    model = BertForQuestionAnswering.from_pretrained(os.path.join(FIXTURES, "tiny-pretraining"), attn_implementation="eager")
    folder = os.path.join(FIXTURES, "tiny-qa")
    model.save_pretrained(folder, safe_serialization=True)
    model = BertForQuestionAnswering.from_pretrained(folder, attn_implementation="eager")
    model.eval()
    g = torch.Generator().manual_seed(4)
    qa_ids = torch.randint(5, 99, (2, 12), generator=g)
    qa_types = torch.zeros_like(qa_ids)
    qa_types[:, 5:] = 1
    starts, ends = torch.tensor([6, 0]), torch.tensor([8, 0])
    out = model(input_ids=qa_ids, token_type_ids=qa_types, attention_mask=torch.ones_like(qa_ids),
                start_positions=starts, end_positions=ends)
    out.loss.backward()
    tensors.update({"qa.input_ids": qa_ids, "qa.token_type_ids": qa_types, "qa.starts": starts, "qa.ends": ends,
                    "qa.loss": out.loss.detach().reshape(1), "qa.start_logits": out.start_logits.detach().contiguous(),
                    "qa.end_logits": out.end_logits.detach().contiguous()})
    for n, p in model.named_parameters():
        tensors["qa.grad." + n] = p.grad.detach().clone().contiguous()
    # Multiple choice: 2 questions x 3 choices x 9 tokens, some rows padded.
    torch.manual_seed(0)
    model = BertForMultipleChoice.from_pretrained(os.path.join(FIXTURES, "tiny-pretraining"), attn_implementation="eager")
    folder = os.path.join(FIXTURES, "tiny-choice")
    model.save_pretrained(folder, safe_serialization=True)
    model = BertForMultipleChoice.from_pretrained(folder, attn_implementation="eager")
    model.eval()
    g = torch.Generator().manual_seed(5)
    mc_ids = torch.randint(5, 99, (2, 3, 9), generator=g)
    mc_mask = torch.ones_like(mc_ids)
    mc_mask[0, 1, 6:] = 0
    mc_mask[1, 2, 4:] = 0
    mc_ids = mc_ids * mc_mask
    mc_types = torch.zeros_like(mc_ids)
    mc_types[:, :, 4:] = 1
    mc_types = mc_types * mc_mask
    mc_labels = torch.tensor([2, 0])
    out = model(input_ids=mc_ids, token_type_ids=mc_types, attention_mask=mc_mask, labels=mc_labels)
    out.loss.backward()
    tensors.update({"mc.input_ids": mc_ids, "mc.token_type_ids": mc_types, "mc.attention_mask": mc_mask, "mc.labels": mc_labels,
                    "mc.loss": out.loss.detach().reshape(1), "mc.logits": out.logits.detach().contiguous()})
    for n, p in model.named_parameters():
        tensors["mc.grad." + n] = p.grad.detach().clone().contiguous()
    save_file(tensors, os.path.join(FIXTURES, "tiny_seqcls_reference.safetensors"))

    rng = np.random.default_rng(0)
    gold3 = rng.integers(0, 3, 200)
    pred3 = np.where(rng.random(200) < 0.6, gold3, rng.integers(0, 3, 200))
    gold2, pred2 = gold3 % 2, pred3 % 2
    x = rng.normal(size=300)
    y = 0.7 * x + rng.normal(size=300)
    y[::7] = y[0]  # ties for Spearman
    metrics = {
        "gold3": gold3.tolist(), "pred3": pred3.tolist(), "gold2": gold2.tolist(), "pred2": pred2.tolist(),
        "x": x.tolist(), "y": y.tolist(),
        "accuracy3": skm.accuracy_score(gold3, pred3), "macro_f1_3": skm.f1_score(gold3, pred3, average="macro"),
        "mcc3": skm.matthews_corrcoef(gold3, pred3), "f1_2": skm.f1_score(gold2, pred2), "mcc2": skm.matthews_corrcoef(gold2, pred2),
        "pearson": scipy.stats.pearsonr(x, y).statistic, "spearman": scipy.stats.spearmanr(x, y).statistic,
    }
    # seqeval (default mode) on random and malformed BIO sequences (I- after O, type changes, E-/S-).
    pool = ["O", "O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "I-ORG", "E-PER", "S-LOC", "B-ORG"]
    gold_tags = [[pool[i] for i in rng.integers(0, len(pool), rng.integers(1, 15))] for _ in range(120)]
    pred_tags = [[t if rng.random() < 0.7 else pool[rng.integers(0, len(pool))] for t in s] for s in gold_tags]
    metrics["gold_tags"], metrics["pred_tags"] = gold_tags, pred_tags
    metrics["entities"] = [[list(e) for e in get_entities(s)] for s in gold_tags]
    metrics["seqeval_precision"] = seqeval_precision(gold_tags, pred_tags)
    metrics["seqeval_recall"] = seqeval_recall(gold_tags, pred_tags)
    metrics["seqeval_f1"] = seqeval_f1(gold_tags, pred_tags)
    # The official SQuAD v2 scoring functions (normalize_answer, compute_exact, compute_f1), restated.
    import collections, re, string

    def normalize_answer(s):
        s = s.lower()
        s = "".join(ch for ch in s if ch not in set(string.punctuation))
        s = re.sub(r"\b(a|an|the)\b", " ", s)
        return " ".join(s.split())

    def compute_f1(gold, pred):
        g, p = normalize_answer(gold).split(), normalize_answer(pred).split()
        if not g or not p:
            return float(g == p)
        common = collections.Counter(g) & collections.Counter(p)
        same = sum(common.values())
        if same == 0:
            return 0.0
        precision, recall = same / len(p), same / len(g)
        return 2 * precision * recall / (precision + recall)

    pairs = [("The Eiffel Tower!", "eiffel tower"), ("in 1889, Paris", "1889"), ("a cat and the dog", "The cat, a dog."),
             ("Denver Broncos", "Carolina Panthers"), ("", "nothing"), ("$5.00 (approx.)", "5.00 approx"),
             ("an apple an apple", "apple"), ("Zoë's café", "zoës cafe")]
    metrics["squad"] = [[gold, pred, float(normalize_answer(gold) == normalize_answer(pred)), compute_f1(gold, pred)]
                        for gold, pred in pairs]
    with open(os.path.join(FIXTURES, "metrics_reference.json"), "w") as f:
        json.dump(metrics, f)


if __name__ == "__main__":
    main()
