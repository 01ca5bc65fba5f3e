#!/usr/bin/env python3
"""PyTorch checkpoint fixtures for the reader of pytorch_model.bin, written by torch itself.

Run from the repository root, in a venv with torch, transformers and safetensors
(the project's .cache/venv does not carry torch; see Fixtures/VERSIONS.txt):

  python scripts/make_pytorch_fixtures.py --fixtures Tests/BertModelTests/Fixtures \
      [--minilm .cache/models/all-MiniLM-L6-v2 --minilm-out .cache/fixtures/minilm-pytorch]

It reads the safetensors fixtures made by make_model_reference.py and writes, under
FIXTURES/pytorch/ (each model folder holds config.json and the weights only):

tiny-pretraining-bin/pytorch_model.bin
  torch.save(BertForPreTraining.from_pretrained(tiny-pretraining).state_dict()): the
  zip format, pickle protocol 2, F32; the MLM decoder weight is tied to the word
  embeddings, so two entries share one storage.
tiny-f16-bin/, tiny-bf16-bin/
  the same for tiny-f16 / tiny-bf16 (BertModel, F16 / BF16 storages).
tiny-sharded-bin/
  the tiny-pretraining state dict in 3 files pytorch_model-0000k-of-00003.bin
  (torch.save each) and pytorch_model.bin.index.json as transformers writes it
  ({"metadata": {"total_size"}, "weight_map": {name: file}}).
tiny-sharded-safetensors/
  the same split as model-0000k-of-00003.safetensors + model.safetensors.index.json.
mixed.bin + mixed_reference.safetensors
  torch.save of {"f32": 2x3, "slice": a contiguous slice at storage offset 5 of a
  larger tensor, "i64": arange(7), "scalar": 0-d F32, "empty": 0x4 F32,
  "param": an nn.Parameter (via _rebuild_parameter), "f16": 3 F16, "bool": 4 bool};
  the reference holds the same values (F32/I64 as read back by torch).
strided.bin
  {"t": a 3x4 tensor transposed}: a strided view, which the reader refuses.
legacy.bin
  the tiny state dict with _use_new_zipfile_serialization=False (the format before
  PyTorch 1.6), which the reader refuses with a message saying so.
unsafe-os-system.bin, unsafe-eval.bin
  torch.save of an object whose __reduce__ is os.system / builtins.eval (the command
  is `true`): a pickle that names a callable, refused before anything runs.

With --minilm, it also writes MINILM_OUT/ (not committed: 90 MB): the real
all-MiniLM-L6-v2 folder with model.safetensors replaced by torch.save's
pytorch_model.bin of its state dict.
"""
import argparse
import builtins
import json
import os
import shutil

import torch
from safetensors.torch import save_file
from transformers import BertForPreTraining, BertModel


def fresh(folder):
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)


def with_config(src, dst):
    fresh(dst)
    shutil.copy(os.path.join(src, "config.json"), os.path.join(dst, "config.json"))


class Runs:
    """Pickles to a call of `fn(arg)` when loaded: what a malicious checkpoint does."""

    def __init__(self, fn, arg):
        self.fn, self.arg = fn, arg

    def __reduce__(self):
        return (self.fn, (self.arg,))


def shards(state, k):
    names = list(state.keys())
    size = (len(names) + k - 1) // k
    return [names[i:i + size] for i in range(0, len(names), size)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", default="Tests/BertModelTests/Fixtures")
    ap.add_argument("--minilm")
    ap.add_argument("--minilm-out", default=".cache/fixtures/minilm-pytorch")
    args = ap.parse_args()
    fx = args.fixtures
    out = os.path.join(fx, "pytorch")
    os.makedirs(out, exist_ok=True)
    f32 = {"dtype": torch.float32}

    src = os.path.join(fx, "tiny-pretraining")
    pt = BertForPreTraining.from_pretrained(src, **f32).eval()
    sd = pt.state_dict()
    assert sd["cls.predictions.decoder.weight"].data_ptr() == sd["bert.embeddings.word_embeddings.weight"].data_ptr()
    d = os.path.join(out, "tiny-pretraining-bin")
    with_config(src, d)
    torch.save(sd, os.path.join(d, "pytorch_model.bin"))

    for tag, dtype in (("f16", torch.float16), ("bf16", torch.bfloat16)):
        s = os.path.join(fx, f"tiny-{tag}")
        m = BertModel.from_pretrained(s, dtype=dtype).eval()
        assert next(m.parameters()).dtype == dtype
        d = os.path.join(out, f"tiny-{tag}-bin")
        with_config(s, d)
        torch.save(m.state_dict(), os.path.join(d, "pytorch_model.bin"))

    # Sharded, both formats. Tied tensors are cloned apart first (safetensors refuses shared
    # storage, and transformers drops the tied copy): the decoder weight is left out, as there.
    plain = {k: v.detach().clone().contiguous() for k, v in sd.items() if k != "cls.predictions.decoder.weight"}
    total = sum(v.numel() * v.element_size() for v in plain.values())
    groups = shards(plain, 3)
    for fmt, index_name, pattern in (("bin", "pytorch_model.bin.index.json", "pytorch_model-{:05d}-of-{:05d}.bin"),
                                     ("safetensors", "model.safetensors.index.json",
                                      "model-{:05d}-of-{:05d}.safetensors")):
        d = os.path.join(out, f"tiny-sharded-{fmt}")
        with_config(src, d)
        weight_map = {}
        for k, names in enumerate(groups):
            fname = pattern.format(k + 1, len(groups))
            part = {n: plain[n] for n in names}
            if fmt == "bin":
                torch.save(part, os.path.join(d, fname))
            else:
                save_file(part, os.path.join(d, fname), metadata={"format": "pt"})
            weight_map.update({n: fname for n in names})
        with open(os.path.join(d, index_name), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2, sort_keys=True)

    g = torch.Generator().manual_seed(7)
    big = torch.randn(20, generator=g)
    mixed = {
        "f32": torch.randn(2, 3, generator=g),
        "slice": big[5:11],
        "i64": torch.arange(7, dtype=torch.int64) - 3,
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 4),
        "param": torch.nn.Parameter(torch.randn(4, generator=g)),
        "f16": torch.tensor([0.5, -1.25, 3.0], dtype=torch.float16),
        "bool": torch.tensor([True, False, True, True]),
    }
    assert mixed["slice"].storage_offset() == 5
    torch.save(mixed, os.path.join(out, "mixed.bin"))
    ref = {k: v.detach().clone().contiguous() for k, v in mixed.items()}
    ref["f16"] = ref["f16"].float()
    ref["bool"] = ref["bool"].to(torch.int64)
    save_file(ref, os.path.join(out, "mixed_reference.safetensors"), metadata={"format": "pt"})

    torch.save({"t": torch.randn(3, 4, generator=g).t()}, os.path.join(out, "strided.bin"))
    torch.save({k: sd[k] for k in list(sd)[:3]}, os.path.join(out, "legacy.bin"), _use_new_zipfile_serialization=False)
    torch.save({"x": Runs(os.system, "true")}, os.path.join(out, "unsafe-os-system.bin"))
    torch.save({"x": Runs(builtins.eval, "1")}, os.path.join(out, "unsafe-eval.bin"))

    for root, _, files in sorted(os.walk(out)):
        for name in sorted(files):
            p = os.path.join(root, name)
            print(f"{p}: {os.path.getsize(p)} bytes")

    if args.minilm:
        d = args.minilm_out
        if os.path.isdir(d):
            shutil.rmtree(d)
        shutil.copytree(args.minilm, d, ignore=shutil.ignore_patterns("model.safetensors", ".*"))
        m = BertModel.from_pretrained(args.minilm, **f32).eval()
        torch.save(m.state_dict(), os.path.join(d, "pytorch_model.bin"))
        print(f"{d}/pytorch_model.bin: {os.path.getsize(os.path.join(d, 'pytorch_model.bin'))} bytes")


if __name__ == "__main__":
    main()
