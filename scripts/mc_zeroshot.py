"""Zero-shot multiple-choice accuracy of a GGUF decoder on QuaRTz, by language-model likelihood.

A diagnostic, not part of the experiment: it says whether a pretrained decoder already "knows" a
task before any training, which bounds what a fine-tuned or probed ceiling can reach. For each
question it scores every option by the summed log-probability of the option's tokens after
`question + " "` and picks the highest.

Usage: python3 scripts/mc_zeroshot.py MODEL.gguf SAMPLES.jsonl [N]
  SAMPLES.jsonl: the evals QuaRTz file ($W2S_HOME/assets/quartz/samples.jsonl after
  `w2s fetch quartz`); N: the first N questions (default all).
Prints one JSON line: {"model": ..., "questions": n, "accuracy": ..., "stderr": ...}.
Needs torch, transformers and gguf (`pip install torch transformers gguf`).
"""
import json
import math
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def questions(path):
    """(question, [option A, option B], index of the right option) from the chat-format rows."""
    for line in open(path, encoding="utf-8"):
        if not line.strip():
            continue
        row = json.loads(line)
        user = [m for m in row["input"] if m["role"] == "user"][-1]["content"]
        question, opts = user.rsplit("\n\n", 1)
        a, b = opts.split("\n B: ")
        yield question.strip(), [a.strip()[3:], b.strip()], "AB".index(row["ideal"].strip())


def option_logprob(model, tok, question, option):
    """Summed log-probability of the option's tokens given the question."""
    context = tok(question, return_tensors="pt").input_ids
    full = tok(question + " " + option, return_tensors="pt").input_ids
    with torch.no_grad():
        logp = torch.log_softmax(model(full).logits[0, :-1], -1)
    targets = full[0, 1:]
    per_token = logp[torch.arange(len(targets)), targets]
    return per_token[context.shape[1] - 1 :].sum().item()


def main():
    gguf, samples = sys.argv[1], sys.argv[2]
    limit = int(sys.argv[3]) if len(sys.argv) > 3 else None
    folder, name = gguf.rsplit("/", 1)
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    model.eval()
    right = total = 0
    for i, (question, options, answer) in enumerate(questions(samples)):
        if limit is not None and i >= limit:
            break
        scores = [option_logprob(model, tok, question, o) for o in options]
        right += max(range(len(options)), key=scores.__getitem__) == answer
        total += 1
    acc = right / total
    print(json.dumps({
        "model": gguf,
        "questions": total,
        "accuracy": acc,
        "stderr": math.sqrt(acc * (1 - acc) / total),
    }))


if __name__ == "__main__":
    main()
