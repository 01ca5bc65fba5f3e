"""BertForPreTraining in PyTorch: the reference for PretrainingTests.

    .cache/venv/bin/python scripts/make_pretraining_reference.py

Loads Tests/BertModelTests/Fixtures/tiny-pretraining (BertForPreTraining, eager attention, dropout
off via eval mode) and a fixed batch (the inputs of tiny_reference.safetensors, masked-LM labels at
fixed real positions, next-sentence labels [0, 1, 1]). Writes Fixtures/tiny_pretraining_steps.safetensors:
  mlm_labels [3, 11], nsp_labels [3] (int64);
  loss0, mlm_loss0, nsp_loss0 (the first forward) and grad.<name> for every parameter there;
  losses [10]: the total loss before each of 10 optimizer steps, with torch.optim.AdamW (lr 1e-3,
  betas 0.9/0.999, eps 1e-6, weight decay 0.01 except biases and LayerNorm), clip_grad_norm_ 1.0,
  and transformers' get_linear_schedule_with_warmup (3 warm-up steps of 10).
"""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import BertForPreTraining, get_linear_schedule_with_warmup  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "Tests", "BertModelTests", "Fixtures")


def main():
    ref = load_file(os.path.join(FIXTURES, "tiny_reference.safetensors"))
    model = BertForPreTraining.from_pretrained(os.path.join(FIXTURES, "tiny-pretraining"), attn_implementation="eager")
    model.eval()
    ids, types, mask = ref["input_ids"], ref["token_type_ids"], ref["attention_mask"]
    labels = torch.full_like(ids, -100)
    for b, p in [(0, 1), (0, 4), (0, 9), (1, 2), (1, 5), (2, 0)]:
        labels[b, p] = (ids[b, p] * 7 + 3) % 99
    nsp = torch.tensor([0, 1, 1], dtype=torch.int64)

    def run():
        out = model(input_ids=ids, token_type_ids=types, attention_mask=mask, labels=labels, next_sentence_label=nsp)
        v = out.prediction_logits.shape[-1]
        mlm = torch.nn.functional.cross_entropy(out.prediction_logits.view(-1, v), labels.view(-1), ignore_index=-100)
        ns = torch.nn.functional.cross_entropy(out.seq_relationship_logits.view(-1, 2), nsp.view(-1))
        return out.loss, mlm, ns

    tensors = {"mlm_labels": labels, "nsp_labels": nsp}
    loss, mlm, ns = run()
    loss.backward()
    tensors.update({"loss0": loss.detach().reshape(1), "mlm_loss0": mlm.detach().reshape(1), "nsp_loss0": ns.detach().reshape(1)})
    for name, p in model.named_parameters():
        tensors["grad." + name] = p.grad.detach().clone().contiguous()
    model.zero_grad()

    decay = [p for n, p in model.named_parameters() if not (n.endswith(".bias") or "LayerNorm" in n)]
    no_decay = [p for n, p in model.named_parameters() if n.endswith(".bias") or "LayerNorm" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.999), eps=1e-6)
    sched = get_linear_schedule_with_warmup(opt, num_warmup_steps=3, num_training_steps=10)
    losses = []
    for _ in range(10):
        loss, _, _ = run()
        losses.append(loss.item())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
    tensors["losses"] = torch.tensor(losses, dtype=torch.float32)
    save_file(tensors, os.path.join(FIXTURES, "tiny_pretraining_steps.safetensors"), metadata={"format": "pt"})
    print("losses", [round(x, 6) for x in losses])
    print("parameters:", [n for n, _ in model.named_parameters()][-8:])


if __name__ == "__main__":
    main()
