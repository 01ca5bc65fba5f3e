#!/usr/bin/env python3
"""Build reference fixtures for the Swift BERT encoder with PyTorch + transformers.

Run (from the repository root, with the project venv):

  .cache/venv/bin/python scripts/make_model_reference.py \\
      --model .cache/models/all-MiniLM-L6-v2 --out Tests/BertModelTests/Fixtures

Options: --corpus DIR (default .cache/corpus; must hold en.txt and zh.txt),
--threads N (torch threads, default 2). The script is deterministic: the
inputs are chosen by a fixed rule, every random draw is seeded
(torch.manual_seed, seeded torch.Generator), and every number is computed
in float32 on the CPU with model.eval() and torch.no_grad(). Everything runs
offline (HF_HUB_OFFLINE=1, TRANSFORMERS_OFFLINE=1).

It writes into OUT:

minilm_inputs.json
  JSON list of the input strings (index i below = position in this list):
  18 English paragraphs from en.txt (blank-line separated blocks, lines
  stripped and joined with one space, kept when they look like a plain prose
  sentence; picked evenly spaced from five length bins; input 0 is a
  60..120-character sentence), 3 Chinese lines from zh.txt (stripped, 12..60
  characters, at least 8 and >= 70% CJK ideographs, starting with an
  ideograph and ending with 。！？; evenly spaced), one accented / odd
  Unicode string, one sentence with an in-text special token ("[MASK]", the
  tokenizer maps it to the special id 103), the empty string (-> [CLS] [SEP]),
  a single word, and one long passage (12 consecutive long English
  paragraphs joined with spaces) that is longer than 256 WordPiece tokens and
  so is truncated to exactly 256 ids (257 is checked to not be the length).

minilm_reference.safetensors  (float32 tensors, int64 ids)
  input_ids.{i}   [L_i]       AutoTokenizer(MODEL)(text, truncation=True,
                              max_length=256) -- 256 is max_seq_length from
                              sentence_bert_config.json; no padding.
  hidden.{i}      [L_i, 384]  AutoModel (BertModel) last_hidden_state for the
                              input alone (token_type_ids all 0, mask all 1).
  pooler.{i}      [384]       pooler_output (tanh(W h_CLS + b)).
  embedding.{i}   [384]       sentence-transformers embedding:
                              SentenceTransformer(MODEL, device="cpu").encode(
                              [text], convert_to_numpy=True,
                              normalize_embeddings=False). The pipeline is the
                              model's own modules.json: Transformer ->
                              Pooling (mean over attention mask) -> Normalize
                              (L2), so the vectors have unit norm. If
                              sentence-transformers cannot be imported, the
                              same pipeline is computed by hand (mean pooling
                              over the attention mask, then L2 normalisation)
                              and the script prints a warning.
  batch.input_ids      [B, S] all inputs tokenized together, padding=True
  batch.attention_mask [B, S] (right padding with id 0, S = longest = 256),
                              truncation as above.
  batch.pooler         [B, 384] pooler_output of ONE forward of that batch.
  batch.embedding      [B, 384] ST encode of the whole list, batch_size=B.
  layers.{k}.0  [L_0, 384]    output_hidden_states=True for input 0 alone,
                              k = 0..6; k = 0 is the embeddings output (after
                              the embedding LayerNorm), k = 6 equals hidden.0.

tiny-pretraining/  (config.json + model.safetensors)
  A random BertForPreTraining: torch.manual_seed(1234); BertConfig(
  vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
  intermediate_size=37, max_position_embeddings=40, type_vocab_size=2,
  hidden_act="gelu" (exact erf GELU), layer_norm_eps=1e-12,
  initializer_range=0.2). After init every LayerNorm weight gets
  1 + 0.1*N(0,1), and every LayerNorm bias and every other bias gets
  + 0.1*N(0,1) (so 0/1 initialisations cannot hide bugs). Tensor names carry
  the "bert." prefix plus the "cls." heads (cls.predictions.transform.*,
  cls.predictions.bias, cls.seq_relationship.*). The MLM decoder is tied:
  its weight is bert.embeddings.word_embeddings.weight and its bias is
  cls.predictions.bias; with transformers 5.x no cls.predictions.decoder.*
  tensor is written (config.json has tie_word_embeddings: true).
tiny-f16/, tiny-bf16/
  That model's .bert (BertModel with pooler) converted with .to(dtype) and
  saved; names without prefix; tensors in float16 / bfloat16.
tiny-gelu-tanh/
  Same sizes, hidden_act="gelu_new" (tanh approximation of GELU),
  torch.manual_seed(4321), BertModel with pooler, same perturbation.
  (pytorch_model.bin / generation_config.json are removed from all folders.)

tiny_reference.safetensors
  input_ids       [3, 11] int64  lengths 11, 7, 1; ids uniform in [1, 98]
                                 (torch.Generator seeded 99); pads are id 0
                                 on the right.
  token_type_ids  [3, 11] int64  sequence 0: 0 for positions 0..4, 1 from
                                 position 5 (pads included); others all 0.
  attention_mask  [3, 11] int64  1 on real tokens, 0 on pads.
  f32.hidden.{k}  [3, 11, 32]    k = 0..2, the tiny-pretraining model's .bert
                                 (loaded back from the folder), eval mode.
                                 Rows at pad positions are whatever
                                 transformers computes there (the mask only
                                 hides pad KEYS; pad queries still attend to
                                 the real tokens), compare them or skip them.
  f32.pooler      [3, 32]
  f32.prediction_logits       [3, 11, 99]  BertForPreTraining heads.
  f32.seq_relationship_logits [3, 2]
  f16.hidden.2, f16.pooler    tiny-f16 loaded back as float32
                              (BertModel.from_pretrained(dir, dtype=float32)).
  bf16.hidden.2, bf16.pooler  same for tiny-bf16.
  tanh.hidden.2, tanh.pooler  tiny-gelu-tanh, same batch.
  leftpad.input_ids       [1, 11]  sequence 1 (7 tokens) with 4 pads (id 0)
  leftpad.attention_mask  [1, 11]  on the LEFT; mask 0 on the pads.
  leftpad.hidden.2        [1, 11, 32]  f32 model. NOTE: transformers'
                                 default position_ids are 0..S-1 whatever the
                                 mask says, so the real tokens sit at
                                 positions 4..10 here and their hidden states
                                 differ from the right-padded sequence 1.
                                 token_type_ids are all 0.

VERSIONS.txt  python / torch / transformers / tokenizers / safetensors /
              sentence-transformers versions, the attention implementation,
              max_seq_length and the embedding pipeline.

All .safetensors files are byte-for-byte reproducible with the same versions
(checked: two runs give identical sha256).
"""

import argparse
import copy
import json
import os
import re
import shutil
import sys
import unicodedata

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import (  # noqa: E402
    AutoModel,
    AutoTokenizer,
    BertConfig,
    BertForPreTraining,
    BertModel,
)

MAX_SEQ = 256

try:
    transformers.utils.logging.disable_progress_bar()
except AttributeError:
    pass


def dtype_kwarg(dtype):
    """transformers >= 4.56 calls it `dtype`, older versions `torch_dtype`."""
    ver = tuple(int(x) for x in re.findall(r"\d+", transformers.__version__)[:2])
    return {"dtype": dtype} if ver >= (4, 56) else {"torch_dtype": dtype}


# ---------------------------------------------------------------- inputs ----

PROSE = re.compile(r"[A-Z][A-Za-z0-9 ,;:'\"()\-]+[a-z)]\.")


def english_paragraphs(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    paras, cur = [], []
    for line in lines + [""]:
        s = line.strip()
        if s:
            cur.append(s)
        elif cur:
            paras.append(" ".join(cur))
            cur = []
    return [p for p in paras
            if PROSE.fullmatch(p) and p.count(" ") >= 2 and "  " not in p]


def evenly(items, k):
    n = len(items)
    if n < k:
        raise SystemExit(f"need {k} items, have {n}")
    return [items[(2 * j + 1) * n // (2 * k)] for j in range(k)]


def chinese_lines(path, k):
    out = []
    for line in open(path, encoding="utf-8"):
        s = line.strip()
        cjk = sum(1 for ch in s if "\u4e00" <= ch <= "\u9fff")
        if 12 <= len(s) <= 60 and cjk >= 8 and cjk >= 0.7 * len(s) \
                and s[-1] in "。！？" and s[0] >= "\u4e00":
            out.append(s)
    return evenly(out, k)


def build_inputs(corpus, tokenizer):
    paras = english_paragraphs(os.path.join(corpus, "en.txt"))
    bins = [((60, 120), 6), ((0, 30), 3), ((30, 60), 5), ((120, 250), 3),
            ((250, 400), 1)]
    english = []
    for (lo, hi), k in bins:
        english += evenly([p for p in paras if lo < len(p) <= hi], k)
    long_pool = [p for p in paras if 150 < len(p) <= 250]
    start = len(long_pool) // 3
    long_passage = " ".join(long_pool[start:start + 12])
    full_len = len(tokenizer(long_passage)["input_ids"])
    if full_len <= MAX_SEQ + 1:
        raise SystemExit(f"long passage has only {full_len} tokens")
    inputs = english + chinese_lines(os.path.join(corpus, "zh.txt"), 3) + [
        "Café naïve résumé — Ünïcödé",
        "Paris is the [MASK] of France.",
        "",
        "Hello",
        long_passage,
    ]
    # Keep the file unambiguous: NFC as read, no stray control characters.
    assert all(unicodedata.is_normalized("NFC", s) for s in inputs)
    return inputs, full_len


# ---------------------------------------------------------------- MiniLM ----

def minilm(model_dir, corpus, out):
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir, **dtype_kwarg(torch.float32))
    model.eval()
    attn = getattr(model.config, "_attn_implementation", None)
    inputs, long_full = build_inputs(corpus, tok)
    with open(os.path.join(out, "minilm_inputs.json"), "w", encoding="utf-8") as f:
        json.dump(inputs, f, ensure_ascii=False, indent=1)
        f.write("\n")

    st_model, st_note = None, None
    try:
        from sentence_transformers import SentenceTransformer
        st_model = SentenceTransformer(model_dir, device="cpu")
        st_model.eval()
        assert st_model.max_seq_length == MAX_SEQ, st_model.max_seq_length
        st_note = "sentence-transformers " + repr(
            [type(m).__name__ for m in st_model])
    except ImportError as e:
        print(f"WARNING: sentence-transformers unavailable ({e}); embedding = "
              "mean pooling over attention mask + L2 normalize, by hand",
              file=sys.stderr)
        st_note = "by hand: mean pooling over attention mask + L2 normalize"

    def hand_embed(hidden, mask):
        m = mask.unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(mean, p=2, dim=1)

    def st_embed(texts):
        if st_model is None:
            enc = tok(texts, truncation=True, max_length=MAX_SEQ, padding=True,
                      return_tensors="pt")
            return hand_embed(model(**enc).last_hidden_state,
                              enc["attention_mask"])
        e = st_model.encode(texts, convert_to_numpy=True,
                            normalize_embeddings=False, batch_size=len(texts),
                            show_progress_bar=False)
        return torch.from_numpy(e).to(torch.float32)

    tensors = {}
    total_tokens = 0
    with torch.no_grad():
        for i, text in enumerate(inputs):
            enc = tok(text, truncation=True, max_length=MAX_SEQ,
                      return_tensors="pt")
            ids = enc["input_ids"]
            L = ids.shape[1]
            total_tokens += L
            o = model(**enc, output_hidden_states=(i == 0))
            tensors[f"input_ids.{i}"] = ids[0].to(torch.int64).contiguous()
            tensors[f"hidden.{i}"] = o.last_hidden_state[0].float().contiguous()
            tensors[f"pooler.{i}"] = o.pooler_output[0].float().contiguous()
            emb = st_embed([text])[0]
            tensors[f"embedding.{i}"] = emb.contiguous()
            # Sanity: our own mean pooling agrees with the ST pipeline.
            mine = hand_embed(o.last_hidden_state, enc["attention_mask"])[0]
            assert torch.allclose(mine, emb, atol=1e-5), (i, (mine - emb).abs().max())
            if i == 0:
                assert len(o.hidden_states) == 7
                for k, h in enumerate(o.hidden_states):
                    tensors[f"layers.{k}.0"] = h[0].float().clone()
        assert tensors[f"input_ids.{len(inputs) - 1}"].shape[0] == MAX_SEQ

        benc = tok(inputs, truncation=True, max_length=MAX_SEQ, padding=True,
                   return_tensors="pt")
        assert tok.padding_side == "right"
        bo = model(**benc)
        tensors["batch.input_ids"] = benc["input_ids"].to(torch.int64).contiguous()
        tensors["batch.attention_mask"] = benc["attention_mask"].to(torch.int64).contiguous()
        tensors["batch.pooler"] = bo.pooler_output.float().contiguous()
        tensors["batch.embedding"] = st_embed(inputs).contiguous()
        # Batched vs single consistency (loose: different matmul shapes).
        for i in range(len(inputs)):
            L = tensors[f"input_ids.{i}"].shape[0]
            assert torch.equal(benc["input_ids"][i, :L], tensors[f"input_ids.{i}"])
            d = (bo.last_hidden_state[i, :L] - tensors[f"hidden.{i}"]).abs().max()
            assert d < 1e-4, (i, d)

    path = os.path.join(out, "minilm_reference.safetensors")
    # One metadata key only: safetensors writes the header from a hash map,
    # so several keys would make the bytes differ from run to run.
    save_file(tensors, path, metadata={"format": "pt"})
    print(f"MiniLM: {len(inputs)} inputs, {total_tokens} tokens "
          f"(long passage {long_full} -> {MAX_SEQ}), batch {tuple(benc['input_ids'].shape)}, "
          f"attn={attn}, embedding via {st_note}")
    print(f"  {path}: {os.path.getsize(path)} bytes")
    return attn, st_note


# ------------------------------------------------------------------ tiny ----

def tiny_config(act):
    return BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2,
                      num_attention_heads=4, intermediate_size=37,
                      max_position_embeddings=40, type_vocab_size=2,
                      hidden_act=act, layer_norm_eps=1e-12,
                      initializer_range=0.2)


def perturb(model):
    """LayerNorm weight -> 1 + 0.1 N(0,1); every bias += 0.1 N(0,1)."""
    with torch.no_grad():
        done = set()
        for mod in model.modules():
            if isinstance(mod, torch.nn.LayerNorm):
                mod.weight.copy_(1.0 + 0.1 * torch.randn_like(mod.weight))
                done.add(id(mod.weight))
        for name, p in model.named_parameters():  # tied params appear once
            if name.endswith("bias") and id(p) not in done:
                p.add_(0.1 * torch.randn_like(p))
                done.add(id(p))


def save_clean(model, folder):
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    try:
        model.save_pretrained(folder, safe_serialization=True)
    except TypeError:
        model.save_pretrained(folder)
    for name in os.listdir(folder):
        if name not in ("config.json", "model.safetensors"):
            os.remove(os.path.join(folder, name))
    assert sorted(os.listdir(folder)) == ["config.json", "model.safetensors"], os.listdir(folder)


def tiny(out):
    torch.manual_seed(1234)
    pt = BertForPreTraining(tiny_config("gelu"))
    perturb(pt)
    pt.eval()
    d_pt = os.path.join(out, "tiny-pretraining")
    save_clean(pt, d_pt)

    bert = copy.deepcopy(pt.bert)
    save_clean(copy.deepcopy(bert).to(torch.float16), os.path.join(out, "tiny-f16"))
    save_clean(copy.deepcopy(bert).to(torch.bfloat16), os.path.join(out, "tiny-bf16"))

    torch.manual_seed(4321)
    tanh_model = BertModel(tiny_config("gelu_new"), add_pooling_layer=True)
    perturb(tanh_model)
    save_clean(tanh_model, os.path.join(out, "tiny-gelu-tanh"))

    # Fixed batch.
    S, lengths = 11, [11, 7, 1]
    g = torch.Generator().manual_seed(99)
    ids = torch.zeros(3, S, dtype=torch.int64)
    mask = torch.zeros(3, S, dtype=torch.int64)
    for b, L in enumerate(lengths):
        ids[b, :L] = torch.randint(1, 99, (L,), generator=g)
        mask[b, :L] = 1
    tt = torch.zeros(3, S, dtype=torch.int64)
    tt[0, 5:] = 1
    t = {"input_ids": ids, "token_type_ids": tt, "attention_mask": mask}
    feed = dict(input_ids=ids, token_type_ids=tt, attention_mask=mask)

    f32 = dict(dtype_kwarg(torch.float32))
    with torch.no_grad():
        pt_loaded = BertForPreTraining.from_pretrained(d_pt, **f32).eval()
        # The folder must round-trip the in-memory model exactly.
        sd_mem, sd_disk = pt.state_dict(), pt_loaded.state_dict()
        for k, v in sd_mem.items():
            assert torch.equal(v, sd_disk[k]), k
        o = pt_loaded.bert(**feed, output_hidden_states=True)
        assert len(o.hidden_states) == 3
        for k, h in enumerate(o.hidden_states):
            t[f"f32.hidden.{k}"] = h.float().contiguous()
        t["f32.pooler"] = o.pooler_output.float().contiguous()
        po = pt_loaded(**feed)
        t["f32.prediction_logits"] = po.prediction_logits.float().contiguous()
        t["f32.seq_relationship_logits"] = po.seq_relationship_logits.float().contiguous()

        for tag, folder in (("f16", "tiny-f16"), ("bf16", "tiny-bf16"),
                            ("tanh", "tiny-gelu-tanh")):
            m = BertModel.from_pretrained(os.path.join(out, folder), **f32).eval()
            assert next(m.parameters()).dtype == torch.float32
            mo = m(**feed, output_hidden_states=True)
            t[f"{tag}.hidden.2"] = mo.hidden_states[2].float().contiguous()
            t[f"{tag}.pooler"] = mo.pooler_output.float().contiguous()
            if tag != "tanh":
                err = (mo.pooler_output - o.pooler_output).abs().max().item()
                print(f"  {tag} vs f32 pooler max |diff| = {err:.3g}")

        L = lengths[1]
        lid = torch.zeros(1, S, dtype=torch.int64)
        lmask = torch.zeros(1, S, dtype=torch.int64)
        lid[0, S - L:] = ids[1, :L]
        lmask[0, S - L:] = 1
        lo = pt_loaded.bert(input_ids=lid, attention_mask=lmask,
                            token_type_ids=torch.zeros_like(lid),
                            output_hidden_states=True)
        t["leftpad.input_ids"] = lid
        t["leftpad.attention_mask"] = lmask
        t["leftpad.hidden.2"] = lo.hidden_states[2].float().contiguous()

    path = os.path.join(out, "tiny_reference.safetensors")
    save_file({k: v.clone().contiguous() for k, v in t.items()}, path,
              metadata={"format": "pt"})
    print(f"tiny: {path}: {os.path.getsize(path)} bytes")
    for folder in ("tiny-pretraining", "tiny-f16", "tiny-bf16", "tiny-gelu-tanh"):
        p = os.path.join(out, folder, "model.safetensors")
        print(f"  {p}: {os.path.getsize(p)} bytes")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="all-MiniLM-L6-v2 folder")
    ap.add_argument("--out", required=True, help="fixtures folder")
    ap.add_argument("--corpus", default=".cache/corpus",
                    help="folder with en.txt and zh.txt")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    os.makedirs(args.out, exist_ok=True)

    attn, st_note = minilm(args.model, args.corpus, args.out)
    tiny(args.out)

    try:
        import sentence_transformers
        st_ver = sentence_transformers.__version__
    except ImportError:
        st_ver = "not installed"
    import safetensors
    import tokenizers
    with open(os.path.join(args.out, "VERSIONS.txt"), "w") as f:
        f.write(f"python {sys.version.split()[0]}\n"
                f"torch {torch.__version__}\n"
                f"transformers {transformers.__version__}\n"
                f"tokenizers {tokenizers.__version__}\n"
                f"safetensors {safetensors.__version__}\n"
                f"sentence-transformers {st_ver}\n"
                f"attn_implementation {attn}\n"
                f"max_seq_length {MAX_SEQ}\n"
                f"embedding_pipeline {st_note}\n")


if __name__ == "__main__":
    main()
