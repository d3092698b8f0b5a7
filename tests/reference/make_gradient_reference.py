#!/usr/bin/env python3
"""PyTorch reference for one full training step of MiniLM-L3: the loss and every parameter's
gradient, for `crates/w2s-models/tests/gradients.rs`.

The step is the one w2s fine-tunes with: the BERT backbone (transformers' BertModel, eager
attention, float64 so the reference carries no rounding of its own), mean pooling over the
padding mask, a linear head and the soft-label cross-entropy, mean over rows. Ids, padding,
head weights and targets are given by formulas that the Rust test repeats. Output (small, not
whole tensors): the loss, each parameter's gradient L2 norm, and three sampled gradient values
per parameter (at its largest |g| and at two fixed flat indices): tests/reference/gradients.json.

Set up: python3 -m venv /tmp/V && /tmp/V/bin/pip install torch transformers
Run:    /tmp/V/bin/python tests/reference/make_gradient_reference.py ~/.cache/w2s/assets/minilm-l3
"""
import json
import math
import os
import sys

import torch
from transformers import BertModel

LENGTHS = [16, 12, 9, 16]
SEQ = 16


def ids_and_mask(vocab):
    """Row r, position i < LENGTHS[r]: 1000 + (r·7919 + i·104729) mod (vocab − 1001); pad 0."""
    ids, mask = [], []
    for r, n in enumerate(LENGTHS):
        ids.append([1000 + (r * 7919 + i * 104729) % (vocab - 1001) if i < n else 0 for i in range(SEQ)])
        mask.append([1 if i < n else 0 for i in range(SEQ)])
    return torch.tensor(ids), torch.tensor(mask)


def head(hidden):
    """W[c, j] = 0.05·sin(1 + c·hidden + j), b = (0.1, −0.1)."""
    w = torch.tensor([[0.05 * math.sin(1 + c * hidden + j) for j in range(hidden)] for c in range(2)], dtype=torch.float64)
    return w, torch.tensor([0.1, -0.1], dtype=torch.float64)


def targets():
    """Row r: (p, 1 − p) with p = 0.2 + 0.15·r."""
    return torch.tensor([[0.2 + 0.15 * r, 0.8 - 0.15 * r] for r in range(len(LENGTHS))], dtype=torch.float64)


def main():
    folder = sys.argv[1]
    model = BertModel.from_pretrained(folder, attn_implementation="eager").double().eval()
    ids, mask = ids_and_mask(model.config.vocab_size)
    h = model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).last_hidden_state
    m = mask.unsqueeze(-1).double()
    pooled = (h * m).sum(1) / m.sum(1)
    w, b = head(model.config.hidden_size)
    logits = pooled @ w.t() + b
    loss = -(targets() * torch.log_softmax(logits, -1)).sum(-1).mean()
    loss.backward()
    params = {}
    for name, p in model.named_parameters():
        if p.grad is None:  # the pooler, which w2s does not load
            continue
        g = p.grad.flatten()
        n = g.numel()
        picks = [int(g.abs().argmax()), n // 3, (7 * n) // 11]
        params[name] = {
            "shape": list(p.shape),
            "norm": float(g.norm()),
            "samples": [[i, float(g[i])] for i in picks],
        }
    out = {
        "model": "minilm-l3",
        "lengths": LENGTHS,
        "seq": SEQ,
        "loss": float(loss.detach()),
        "torch": torch.__version__,
        "params": params,
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gradients.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {path}: loss {float(loss):.6f}, {len(params)} parameters")


if __name__ == "__main__":
    main()
