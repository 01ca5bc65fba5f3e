"""A model written by swift-bert, loaded by transformers: the reference for InteropTests.

Writes into Tests/BertModelTests/Fixtures (run from the repository root after building `bert`):

    swift build -c release --product bert
    .cache/venv/bin/python scripts/make_interop_reference.py

1. `bert init --config <tiny config> --seed 11 --out Fixtures/ours-tiny`: a small BertModel with
   BERT's initialisation, as config.json + model.safetensors written by our code.
2. transformers' `BertModel.from_pretrained(Fixtures/ours-tiny)` must load it with no missing,
   unexpected or mismatched tensors (the script fails otherwise).
3. Its outputs on a fixed padded batch go to `ours_tiny_reference.safetensors`:
   input_ids, token_type_ids, attention_mask [2, 9] (int64), last_hidden_state [2, 9, 32],
   pooler_output [2, 32], float32, eval mode.

The Swift test then checks that the same seed still writes byte-identical files (so the reference
applies) and that our forward on them equals transformers' outputs.
"""
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import BertModel  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "Tests", "BertModelTests", "Fixtures")
BERT = os.environ.get("BERT_BIN", os.path.join(ROOT, ".build", "release", "bert"))

CONFIG = {
    "vocab_size": 99, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
    "intermediate_size": 37, "max_position_embeddings": 40, "type_vocab_size": 2,
    "hidden_act": "gelu", "layer_norm_eps": 1e-12, "initializer_range": 0.2,
}


def main():
    if not os.access(BERT, os.X_OK):
        sys.exit(f"no bert executable at {BERT}; run: swift build -c release --product bert")
    out = os.path.join(FIXTURES, "ours-tiny")
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(CONFIG, f)
        config_path = f.name
    subprocess.run([BERT, "init", "--config", config_path, "--seed", "11", "--out", out], check=True)
    os.unlink(config_path)

    model, info = BertModel.from_pretrained(out, output_loading_info=True)
    problems = {k: v for k, v in info.items() if v}
    if problems:
        sys.exit(f"transformers reported loading problems: {problems}")
    model.eval()

    ids = torch.tensor([[2, 17, 45, 9, 88, 31, 64, 3, 98], [2, 5, 71, 3, 0, 0, 0, 0, 0]], dtype=torch.int64)
    types = torch.tensor([[0, 0, 0, 0, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0, 0, 0, 0]], dtype=torch.int64)
    mask = (torch.arange(9)[None, :] < torch.tensor([[9], [4]])).to(torch.int64)
    with torch.no_grad():
        o = model(input_ids=ids, token_type_ids=types, attention_mask=mask)
    save_file({
        "input_ids": ids, "token_type_ids": types, "attention_mask": mask,
        "last_hidden_state": o.last_hidden_state.contiguous(), "pooler_output": o.pooler_output.contiguous(),
    }, os.path.join(FIXTURES, "ours_tiny_reference.safetensors"), metadata={"format": "pt"})
    print(f"loaded {out} in transformers {__import__('transformers').__version__} with no problems; "
          f"wrote ours_tiny_reference.safetensors")


if __name__ == "__main__":
    main()
