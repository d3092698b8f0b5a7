"""Reference outputs for the GGUF decoder parity tests (crates/w2s-models/tests/decoders.rs; output: tests/reference/decoders.json).

Independent of w2s: Hugging Face transformers reads the same GGUF files (dequantising with the
`gguf` package), rebuilds each tokenizer from the GGUF metadata with its own converters, and runs
its own modelling code in float32 with eager attention. We record token ids for a set of awkward
strings and the final (post-norm) hidden states for a short prompt.

    python tests/reference/decoder_reference.py OUT.json name=path/to/model.gguf ...

Needs torch, transformers and gguf (not installed by CI; the JSON it writes is committed).
"""
import json
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

TEXTS = [
    "Hello world! The capital of France is Paris.",
    "  two  spaces,\ttabs\nand new lines\n\n end",
    "Numbers 12345 and 3.14159; dates 2026-11-27.",
    "Unicode: café naïve 東京 😀 — dashes",
    "don't I'll we've THEY'RE",
    "   leading spaces",
]
PROMPT = "The capital of France is"


def main():
    out_path, specs = sys.argv[1], sys.argv[2:]
    torch.manual_seed(0)
    result = {}
    for spec in specs:
        name, path = spec.split("=", 1)
        folder, file = path.rsplit("/", 1)
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=file)
        model = AutoModelForCausalLM.from_pretrained(
            folder, gguf_file=file, dtype=torch.float32, attn_implementation="eager"
        )
        model.eval()
        ids = tok(PROMPT, add_special_tokens=True)["input_ids"]
        with torch.no_grad():
            hidden = model.model(torch.tensor([ids])).last_hidden_state[0]
        result[name] = {
            "texts": TEXTS,
            "text_ids": [tok(t, add_special_tokens=False)["input_ids"] for t in TEXTS],
            "prompt": PROMPT,
            "prompt_ids": ids,
            # Every position's first 8 values and L2 norm, and the whole last position.
            "hidden_head": hidden[:, :8].tolist(),
            "hidden_norm": hidden.norm(dim=-1).tolist(),
            "hidden_last": hidden[-1].tolist(),
        }
        print(name, ids, hidden.norm(dim=-1).tolist(), flush=True)
        del model
    with open(out_path, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
