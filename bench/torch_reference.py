"""PyTorch reference for `w2s bench`: the same model, batch and step as w2s, timed the same way.

Usage: python3 bench/torch_reference.py {embed,train} MODEL --batch 16 --seq 128 --steps 5
MODEL is the w2s asset folder (config.json, model.safetensors) or a decoder's .gguf file (which
transformers dequantizes to float32 with the `gguf` package), loaded with transformers.
Prints one JSON line: {"tokens_per_second": ..., "peak_rss_mb": ..., "torch": version, "threads": n}.
Needs `pip install torch transformers` (not installed by w2s; the bench skips PyTorch without it).
"""
import argparse
import json
import os
import time

import torch
from transformers import AutoModel


def peak_rss_mb():
    """VmHWM of this process. Not ru_maxrss: Linux carries that over from the parent (w2s) across
    fork and exec, so it would report w2s's peak when that is higher."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["embed", "train"])
    p.add_argument("model")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    decoder = a.model.endswith(".gguf")
    if decoder:
        folder, file = os.path.split(os.path.abspath(a.model))
        model = AutoModel.from_pretrained(
            folder, gguf_file=file, dtype=torch.float32, attn_implementation="eager"
        )
    else:
        model = AutoModel.from_pretrained(a.model, attn_implementation="eager")
    hidden = model.config.hidden_size
    vocab = model.config.vocab_size
    # Real-looking ids: avoid the special tokens at the start of the vocabulary.
    ids = torch.randint(1000, vocab - 1, (a.batch, a.seq))
    mask = torch.ones(a.batch, a.seq, dtype=torch.long)
    head = torch.nn.Linear(hidden, 2)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)

    def pooled():
        h = model(input_ids=ids, attention_mask=mask).last_hidden_state
        if decoder:  # last-token pooling, as w2s pools decoders (no padding here)
            return h[:, -1]
        m = mask.unsqueeze(-1).float()
        return (h * m).sum(1) / m.sum(1)

    if a.mode == "embed":
        model.eval()

        def step():
            with torch.no_grad():
                pooled()
    else:
        model.eval()  # no dropout, as in w2s
        params = list(model.parameters()) + list(head.parameters())
        opt = torch.optim.AdamW(params, lr=5e-5, weight_decay=0.0)
        target = torch.tensor([[0.3, 0.7]] * a.batch)

        def step():
            opt.zero_grad()
            logits = head(pooled())
            loss = -(target * torch.log_softmax(logits, -1)).sum(-1).mean()
            loss.backward()
            opt.step()

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(a.steps):
        step()
    seconds = time.perf_counter() - start
    print(json.dumps({
        "tokens_per_second": a.batch * a.seq * a.steps / seconds,
        "seconds_per_step": seconds / a.steps,
        "peak_rss_mb": peak_rss_mb(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()
