#!/usr/bin/env python3
"""Exports a Hugging Face BERT folder to ONNX (last_hidden_state), for the ONNX Runtime side
of scripts/bench-precision.sh.

Usage (in a venv with torch, transformers and onnx):
  python scripts/export_onnx.py --model .cache/models/all-MiniLM-L6-v2 --out model.onnx
  python scripts/export_onnx.py --config-preset base --out base.onnx

Inputs input_ids, attention_mask, token_type_ids (int64, batch x sequence, both dynamic); eager
attention (what ORT's BERT fusion recognises); opset 17; the TorchScript exporter.
"""

import argparse
import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import torch  # noqa: E402
from transformers import AutoModel, BertConfig, BertModel  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="Hugging Face model folder")
    src.add_argument("--config-preset", choices=["base"], help="random BERT-base (seed 0), as bench_encoder_peer.py")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    if args.model:
        model = AutoModel.from_pretrained(args.model, attn_implementation="eager")
    else:
        torch.manual_seed(0)
        model = BertModel(BertConfig(), add_pooling_layer=True)
    model = model.float().eval()

    class ByName(torch.nn.Module):
        """Calls the model with keyword inputs: forward's positional order differs between
        transformers versions (5.x takes other arguments third)."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    model = ByName(model)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    example = tuple(torch.ones(2, 16, dtype=torch.int64) if n != "token_type_ids" else torch.zeros(2, 16, dtype=torch.int64) for n in names)
    axes = {n: {0: "batch", 1: "sequence"} for n in names + ["last_hidden_state"]}
    partial = args.out + ".partial"
    with torch.no_grad():
        torch.onnx.export(model, example, partial, input_names=names, output_names=["last_hidden_state"],
                          dynamic_axes=axes, opset_version=17, dynamo=False)
    os.replace(partial, args.out)


if __name__ == "__main__":
    main()
