"""PyTorch reference for `w2s bench`: the same model, batch and step as w2s, timed the same way.

Usage: python3 bench/torch_reference.py {embed,train} MODEL --batch 16 --seq 128 --steps 10
         [--pooling mean|last] [--device cpu|cuda] [--dtype f32|bf16|f16|int8]
         [--lora R | --train-layers K] [--attn sdpa|eager]
       python3 bench/torch_reference.py gemm - --shapes M,N,K;M,N,K... [--steps 5]
MODEL is a Hugging Face folder (config.json, safetensors) or a decoder's .gguf file (which
transformers dequantizes to float32 with the `gguf` package), loaded with transformers.
--dtype is the dtype of the frozen weights and of the forward pass, as in w2s: with --lora the
base is in that dtype and the adapters in f32; otherwise trained weights stay f32 and the forward
runs under autocast (mixed precision), the way w2s computes in that dtype with f32 master weights.
--attn is transformers' attention implementation: sdpa (its default, what a user gets) or eager.
Each step is timed alone and the median counts.
Prints one JSON line: {"tokens_per_second": ..., "peak_rss_mb": ..., "torch": version, "threads": n}.
`gemm` times torch.matmul(a [M,K], w [N,K].t()) at each shape (median of --steps after a warm-up)
and prints {"gflops": [...], "shapes": [...]}.
Needs `pip install torch transformers` (not installed by w2s; the bench skips PyTorch without it).
"""
import argparse
import json
import os
import sys
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
    p.add_argument("mode", choices=["embed", "train", "gemm"])
    p.add_argument("model")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--pooling", choices=["mean", "last"], default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", choices=["f32", "bf16", "f16", "int8"], default="f32")
    p.add_argument("--lora", type=int, default=0)
    p.add_argument("--train-layers", type=int, default=0)
    p.add_argument("--attn", choices=["sdpa", "eager"], default="sdpa")
    p.add_argument("--shapes", default="")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.mode == "gemm":
        return gemm(a)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    # int8: the f32 model with PyTorch's dynamic int8 quantization of every Linear (weights
    # int8 per tensor, activations quantized per product; fbgemm/x86 kernels), frozen only.
    int8 = a.dtype == "int8"
    if int8 and a.mode != "embed":
        sys.exit("--dtype int8 is for embed only (frozen weights)")
    low = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16,
           "int8": torch.float32}[a.dtype]
    is_gguf = a.model.endswith(".gguf")

    def load(attn):
        if is_gguf:
            folder, file = os.path.split(os.path.abspath(a.model))
            return AutoModel.from_pretrained(
                folder, gguf_file=file, dtype=torch.float32, attn_implementation=attn
            )
        return AutoModel.from_pretrained(a.model, dtype=torch.float32, attn_implementation=attn)

    attn = a.attn
    try:
        model = load(attn)
    except ValueError as e:  # some classes (MPNet) have no SDPA path: what a user gets is eager
        if attn != "sdpa" or "scaled_dot_product_attention" not in str(e):
            raise
        attn = "eager (no sdpa for this model)"
        model = load("eager")
    decoder = a.pooling == "last" if a.pooling else is_gguf
    frozen_low = a.mode == "embed" or a.lora > 0
    model = model.to(dev, dtype=low if frozen_low else torch.float32)
    if int8:
        import warnings
        warnings.filterwarnings("ignore", category=UserWarning)  # its deprecation notice
        from torch.ao.quantization import quantize_dynamic
        model = quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    hidden = model.config.hidden_size
    vocab = model.config.vocab_size
    # Real-looking ids: avoid the special tokens at the start of the vocabulary.
    low_id = min(1000, vocab // 10)
    ids = torch.randint(low_id, vocab - 1, (a.batch, a.seq), device=dev)
    mask = torch.ones(a.batch, a.seq, dtype=torch.long, device=dev)
    head = torch.nn.Linear(hidden, 2).to(dev)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    autocast = torch.autocast(dev.type, dtype=low, enabled=a.dtype != "f32" and not frozen_low)

    def pooled():
        with autocast:
            h = model(input_ids=ids, attention_mask=mask).last_hidden_state
        h = h.float()
        if decoder:  # last-token pooling, as w2s pools decoders (no padding here)
            return h[:, -1]
        m = mask.unsqueeze(-1).float()
        return (h * m).sum(1) / m.sum(1)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    if a.mode == "embed":
        model.eval()

        def step():
            with torch.no_grad():
                pooled()
    else:
        model.eval()  # no dropout, as in w2s
        if a.lora:
            params = add_lora(model, a.lora, dev)
        elif a.train_layers:
            params = top_layers(model, a.train_layers)
        else:
            params = list(model.parameters())
        params += list(head.parameters())
        opt = torch.optim.AdamW(params, lr=5e-5, weight_decay=0.0)
        target = torch.tensor([[0.3, 0.7]] * a.batch)

        def step():
            opt.zero_grad()
            logits = head(pooled())
            loss = -(target * torch.log_softmax(logits, -1)).sum(-1).mean()
            loss.backward()
            opt.step()

    step()  # warm-up
    sync()
    times = []
    for _ in range(a.steps):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    seconds = sorted(times)[len(times) // 2]
    print(json.dumps({
        "tokens_per_second": a.batch * a.seq / seconds,
        "seconds_per_step": seconds,
        "attn": attn,
        "dtype": a.dtype,
        "peak_rss_mb": peak_rss_mb(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": str(dev),
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else None,
    }))


def gemm(a):
    """torch.matmul's f32 rate at each M,N,K, in GFLOP/s (median of a.steps after a warm-up)."""
    shapes = [tuple(int(v) for v in s.split(",")) for s in a.shapes.split(";") if s]
    rates = []
    for m, n, k in shapes:
        x = torch.randn(m, k)
        w = torch.randn(n, k)
        torch.matmul(x, w.t())
        times = []
        for _ in range(max(a.steps, 1)):
            start = time.perf_counter()
            torch.matmul(x, w.t())
            times.append(time.perf_counter() - start)
        rates.append(2 * m * n * k / sorted(times)[len(times) // 2] / 1e9)
    print(json.dumps({"gflops": rates, "shapes": shapes, "torch": torch.__version__,
                      "threads": torch.get_num_threads()}))


def layer_index(name):
    """The transformer layer of a parameter name (`layers.N.`, `layer.N.`, `h.N.`), or None."""
    parts = name.split(".")
    for i, p in enumerate(parts[:-1]):
        if p in ("layers", "layer", "h") and parts[i + 1].isdigit():
            return int(parts[i + 1])
    return None


def top_layers(model, k):
    """Freezes everything but the top k layers (w2s --train-layers)."""
    n = 1 + max(layer_index(n) or 0 for n, _ in model.named_parameters())
    trained = []
    for name, p in model.named_parameters():
        li = layer_index(name)
        p.requires_grad_(li is not None and li >= n - k)
        if p.requires_grad:
            trained.append(p)
    return trained


def add_lora(model, rank, dev):
    """Rank-r adapters (alpha = 2r, f32) on every linear projection inside the layers, base
    frozen: what w2s --lora adapts (GPT-2's Conv1D included)."""
    from transformers.pytorch_utils import Conv1D

    for p in model.parameters():
        p.requires_grad_(False)
    params = []
    for name, mod in model.named_modules():
        if layer_index(name + ".x") is None or not isinstance(mod, (torch.nn.Linear, Conv1D)):
            continue
        inp, out = (mod.in_features, mod.out_features) if isinstance(mod, torch.nn.Linear) else mod.weight.shape
        A = torch.nn.Parameter((torch.rand(rank, inp, device=dev) * 2 - 1) / inp**0.5)
        B = torch.nn.Parameter(torch.zeros(out, rank, device=dev))
        params += [A, B]

        def hook(m, args, y, A=A, B=B):
            x = args[0]
            return y + ((x.to(A.dtype) @ A.t() @ B.t()) * 2.0).to(y.dtype)

        mod.register_forward_hook(hook)
    return params


if __name__ == "__main__":
    main()
