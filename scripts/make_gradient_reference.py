"""Gradients of BertModel from PyTorch: the reference for EncoderGradientTests.

    .cache/venv/bin/python scripts/make_gradient_reference.py

Loads Tests/BertModelTests/Fixtures/tiny-pretraining as a BertModel (eval mode: no dropout), runs
the batch of tiny_reference.safetensors, and backpropagates the loss
    L = Σ last_hidden_state ⊙ R1 + Σ pooler_output ⊙ R2
with fixed random R1 [3, 11, 32] (zero at padded positions, whose outputs are meaningless) and
R2 [3, 32]. Writes Fixtures/tiny_gradients.safetensors: R1, R2, the loss, and the gradient of every
parameter under its BertModel name ("grad.embeddings.word_embeddings.weight", ...).
"""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import BertModel  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "Tests", "BertModelTests", "Fixtures")


def main():
    torch.manual_seed(99)
    ref = load_file(os.path.join(FIXTURES, "tiny_reference.safetensors"))
    model = BertModel.from_pretrained(os.path.join(FIXTURES, "tiny-pretraining"), attn_implementation="eager")
    model.eval()
    ids, types, mask = ref["input_ids"], ref["token_type_ids"], ref["attention_mask"]
    out = model(input_ids=ids, token_type_ids=types, attention_mask=mask)
    r1 = torch.randn(out.last_hidden_state.shape) * mask[..., None].float()
    r2 = torch.randn(out.pooler_output.shape)
    loss = (out.last_hidden_state * r1).sum() + (out.pooler_output * r2).sum()
    loss.backward()
    tensors = {"R1": r1.contiguous(), "R2": r2.contiguous(), "loss": loss.detach().reshape(1)}
    for name, p in model.named_parameters():
        tensors["grad." + name] = p.grad.detach().contiguous()
    save_file(tensors, os.path.join(FIXTURES, "tiny_gradients.safetensors"), metadata={"format": "pt"})
    print(f"loss {loss.item():.6f}; {len(tensors) - 3} parameter gradients written")


if __name__ == "__main__":
    main()
