#!/usr/bin/env python3
"""The GPU check of scripts/gpu-check.sh (which sets up the binary and libraries, then runs this).

1. Makes random-initialised models of real shape with transformers, saved as HF folders:
   GPT-2-medium (355M), Pythia-410m and Qwen2-0.5B configurations (tokenizer: the tiny fixture's
   tokenizer.json, whose ids fit every vocabulary).
2. Parity, CPU against GPU, both in w2s: pooled embeddings of 64 texts (`w2s embed --save`),
   and the training loss of the same fine-tuning steps (`w2s bench train --no-torch`).
3. `w2s bench embed` and `w2s bench train` against PyTorch on the same GPU, f32 and bf16.
4. A bf16 LoRA fine-tuning step of the 0.5B model (against PyTorch with the same adapters).

Prints one summary table and writes every result to WORK/gpu-check.json as it goes.
Usage: python3 scripts/gpu_check.py --w2s PATH --work DIR [--only NAME] [--skip-bench] [--tiny]
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKENIZER = os.path.join(REPO, "tests", "reference", "hf", "gpt2", "tokenizer.json")


def make_models(work, only, tiny):
    import torch
    import transformers as tf

    if tiny:  # a dry run of the script's logic on any machine: the same classes, small shapes
        small = dict(num_hidden_layers=2, num_attention_heads=4, hidden_size=64, intermediate_size=128)
        return {name: _save(work, name, cls(cfg), tok=TOKENIZER) for name, (cfg, cls) in {
            "gpt2-medium": (tf.GPT2Config(n_embd=64, n_layer=2, n_head=4), tf.GPT2LMHeadModel),
            "pythia-410m": (tf.GPTNeoXConfig(vocab_size=50304, rotary_pct=0.25, **small),
                            tf.GPTNeoXForCausalLM),
            "qwen2-0.5b": (tf.Qwen2Config(vocab_size=1000, num_key_value_heads=2, **small),
                           tf.Qwen2ForCausalLM),
        }.items() if not only or name == only}

    shapes = {
        "gpt2-medium": (tf.GPT2Config(n_embd=1024, n_layer=24, n_head=16), tf.GPT2LMHeadModel),
        "pythia-410m": (
            tf.GPTNeoXConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                             intermediate_size=4096, vocab_size=50304, rotary_pct=0.25,
                             max_position_embeddings=2048, use_parallel_residual=True),
            tf.GPTNeoXForCausalLM,
        ),
        "qwen2-0.5b": (
            tf.Qwen2Config(hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                           num_attention_heads=14, num_key_value_heads=2, vocab_size=151936,
                           max_position_embeddings=32768, rope_theta=1000000.0,
                           tie_word_embeddings=True),
            tf.Qwen2ForCausalLM,
        ),
    }
    out = {}
    for name, (cfg, cls) in shapes.items():
        if only and name != only:
            continue
        folder = os.path.join(work, "models", name)
        out[name] = folder
        if os.path.isfile(os.path.join(folder, "config.json")):
            continue
        start = time.time()
        torch.manual_seed(0)
        dev = "cuda" if torch.cuda.is_available() else "cpu"
        with torch.device(dev):
            model = cls(cfg)
        _save(work, name, model, TOKENIZER)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        print(f"made {name}: {params:.0f}M parameters in {time.time() - start:.0f}s", flush=True)
        del model
    return out


def _save(work, name, model, tok):
    folder = os.path.join(work, "models", name)
    model.save_pretrained(folder, safe_serialization=True)
    with open(tok) as src, open(os.path.join(folder, "tokenizer.json"), "w") as dst:
        dst.write(src.read())
    return folder


def w2s(binary, args, device, work, timeout=600):
    env = dict(os.environ, W2S_DEVICE=device, W2S_HOME=os.path.join(work, "w2s-home"))
    start = time.time()
    p = subprocess.run([binary, "--quiet", *args], env=env, capture_output=True, text=True,
                       timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"w2s {' '.join(args)} on {device} failed:\n{p.stderr[-3000:]}")
    return p.stdout, time.time() - start


def texts_file(work):
    path = os.path.join(work, "texts.jsonl")
    words = "weak strong student teacher label model data the a of on is was not very good bad".split()
    with open(path, "w") as f:
        for i in range(64):
            n = 5 + (i * 7) % 40
            text = " ".join(words[(i * 3 + j * 5) % len(words)] for j in range(n))
            f.write(json.dumps({"text": f"{i}: {text}.", "label": i % 2}) + "\n")
    return path


def parity(binary, name, folder, work, results):
    data = texts_file(work)
    feats = {}
    for dev in ["cpu", "cuda"]:
        save = os.path.join(work, f"{name}-{dev}.npy")
        _, secs = w2s(binary, ["embed", "--model", folder, "--data", data, "--save", save, "--json"],
                      dev, work)
        feats[dev] = np.load(save)
        print(f"{name}: embedded 64 texts on {dev} in {secs:.0f}s", flush=True)
    a, b = feats["cpu"].astype(np.float64), feats["cuda"].astype(np.float64)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    rel = np.abs(a - b).max() / np.abs(a).max()
    losses = {}
    for dev in ["cpu", "cuda"]:
        out, _ = w2s(binary, ["bench", "train", "--model", folder, "--batch", "4", "--seq", "32",
                              "--steps", "2", "--no-torch", "--json"], dev, work)
        losses[dev] = json.loads(out)["w2s"]["check"]
    results.append({"check": "parity", "model": name, "min_cosine": float(cos.min()),
                    "max_rel_diff": float(rel), "loss_cpu": losses["cpu"],
                    "loss_gpu": losses["cuda"]})


def bench(binary, name, folder, kind, dtype, work, results, python, extra=()):
    args = ["bench", kind, "--model", folder, "--dtype", dtype, "--batch", "16", "--seq", "128",
            "--steps", "5", "--python", python, "--json", *extra]
    out, secs = w2s(binary, args, "cuda", work)
    doc = json.loads(out)
    torch_side = doc.get("pytorch") or {}
    results.append({"check": f"bench {kind}" + (" " + " ".join(extra) if extra else ""),
                    "model": name, "dtype": dtype,
                    "w2s_tok_s": doc["w2s"]["tokens_per_second"],
                    "torch_tok_s": torch_side.get("tokens_per_second"),
                    "ratio": doc.get("ratio_w2s_over_pytorch"),
                    "torch_peak_gpu_mb": torch_side.get("peak_gpu_mb"),
                    "note": doc.get("note"), "seconds": secs})
    print(f"{name} {kind} {dtype} {' '.join(extra)}: ratio {doc.get('ratio_w2s_over_pytorch')}",
          flush=True)


def table(results):
    lines = ["| check | model | dtype | result |", "|---|---|---|---|"]
    for r in results:
        if r["check"] == "parity":
            res = (f"embeddings min cosine {r['min_cosine']:.7f}, max rel diff {r['max_rel_diff']:.1e};"
                   f" train loss CPU {r['loss_cpu']:.6f} / GPU {r['loss_gpu']:.6f}")
            lines.append(f"| CPU vs GPU | {r['model']} | f32 | {res} |")
        elif "error" in r:
            lines.append(f"| {r['check']} | {r['model']} | {r.get('dtype', '')} | FAILED: {r['error'][:200]} |")
        else:
            ratio = f"{r['ratio']:.2f}" if r["ratio"] else "n/a"
            torch_tps = f"{r['torch_tok_s']:.0f}" if r["torch_tok_s"] else "n/a"
            lines.append(f"| {r['check']} | {r['model']} | {r['dtype']} | w2s {r['w2s_tok_s']:.0f} tok/s,"
                         f" PyTorch {torch_tps} tok/s, ratio {ratio} |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--w2s", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--only", default=None)
    p.add_argument("--skip-bench", action="store_true")
    p.add_argument("--tiny", action="store_true", help="small shapes: a dry run of the logic")
    p.add_argument("--python", default=sys.executable)
    a = p.parse_args()
    os.makedirs(a.work, exist_ok=True)
    results = []
    summary = os.path.join(a.work, "gpu-check.json")

    def attempt(what, fn, *args, **kw):
        try:
            fn(*args, **kw)
        except Exception as e:  # keep going: a table with one failure beats no table
            print(f"{what}: {e}", flush=True)
            results.append({"check": what, "model": args[1] if len(args) > 1 else "", "error": str(e)})
        with open(summary, "w") as f:
            json.dump(results, f, indent=1)

    models = make_models(a.work, a.only, a.tiny)
    for name, folder in models.items():
        attempt("parity", parity, a.w2s, name, folder, a.work, results)
    if not a.skip_bench:
        for name, folder in models.items():
            for dtype in ["f32", "bf16"]:
                for kind in ["embed", "train"]:
                    attempt(f"bench {kind}", bench, a.w2s, name, folder, kind, dtype, a.work,
                            results, a.python)
        if "qwen2-0.5b" in models:
            attempt("bench train --lora 8", bench, a.w2s, "qwen2-0.5b", models["qwen2-0.5b"],
                    "train", "bf16", a.work, results, a.python, ("--lora", "8"))
    print(table(results))


if __name__ == "__main__":
    main()
