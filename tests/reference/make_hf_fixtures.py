#!/usr/bin/env python3
"""Tiny random-initialised Hugging Face models, one per architecture w2s reads from config.json,
with reference pooled outputs computed by `transformers` itself.

Each fixture is a folder under tests/reference/hf/NAME/ as `save_pretrained` writes it
(config.json, safetensors, tokenizer.json), plus reference.json:
  texts, ids (tokenizer.json with its post-processor), pooling ("mean" for encoders, "last" for
  decoders), pooled (transformers, float32, eager attention, each text alone, no padding), and
  for the bf16 fixture also pooled_bf16 (transformers computing in bfloat16).

Weights are re-drawn with a large spread (not the tiny HF init) so that every tensor visibly
changes the output. The fixtures cover the checkpoint layouts researchers have: different
classes (so different root prefixes: none, model., transformer., gpt_neox., roberta.), one
sharded checkpoint (model.safetensors.index.json) and one stored in bf16.

Not run in CI: its output is committed (a few hundred KB in all).
Set up: python3 -m venv V && V/bin/pip install torch transformers
Run:    V/bin/python tests/reference/make_hf_fixtures.py
"""
import json
import os
import shutil

import torch
import transformers as tf
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hf")
TEXTS = [
    "The cat sat on the mat.",
    "Weak-to-strong generalization: can a student beat its teacher?",
    "naïve café, 1234 apples & 56 pears",
    "Question: is the answer at the end? Answer: yes",
]
CORPUS = TEXTS + [
    "A weak supervisor labels held-out data; a strong student is trained on those labels.",
    "The quick brown fox jumps over the lazy dog. 0123456789",
    "Pythia, GPT-2, Llama, Qwen and Gemma are decoders; BERT and RoBERTa are encoders.",
] * 20


def byte_level_bpe(vocab_size, specials):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    return tok


def metaspace_bpe(vocab_size, specials):
    """SentencePiece-style BPE (spaces as ▁, byte fallback), like Gemma's and Llama 2's."""
    tok = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>"))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials + [f"<0x{b:02X}>" for b in range(256)],
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    return tok


def unigram(vocab_size, specials):
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=specials, unk_token="<unk>", show_progress=False
    )
    tok.train_from_iterator(CORPUS, trainer)
    return tok


def with_template(tok, single, specials):
    tok.post_processor = processors.TemplateProcessing(
        single=single, special_tokens=[(s, tok.token_to_id(s)) for s in specials]
    )
    return tok


def spread_weights(model, seed):
    """Re-draws every parameter: matrices N(0, 0.35), vectors 0.1·N(0, 1) (+1 for norm scales
    stored as w, +0 for Gemma's 1 + w), so no part of the network is negligible."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * 0.35)
            else:
                base = 1.0 if ("norm" in name.lower() or "ln" in name) and name.endswith("weight") else 0.0
                if "gemma" in type(model).__name__.lower() and "norm" in name:
                    base = 0.0
                p.copy_(base + 0.1 * torch.randn(p.shape, generator=g))


def pooled_outputs(folder, ids_list, pooling, dtype):
    model = tf.AutoModel.from_pretrained(folder, dtype=dtype, attn_implementation="eager")
    model.eval()
    out = []
    with torch.no_grad():
        for ids in ids_list:
            x = torch.tensor([ids])
            h = model(input_ids=x, attention_mask=torch.ones_like(x)).last_hidden_state[0].float()
            out.append((h.mean(0) if pooling == "mean" else h[-1]).tolist())
    return out


def fixture(name, config, cls, tok, pooling, seed, shard=None, save_dtype=None):
    folder = os.path.join(OUT, name)
    shutil.rmtree(folder, ignore_errors=True)
    torch.manual_seed(seed)
    model = cls(config)
    spread_weights(model, seed)
    if save_dtype is not None:
        model = model.to(save_dtype)
    kwargs = {"max_shard_size": shard} if shard else {}
    model.save_pretrained(folder, safe_serialization=True, **kwargs)
    tok.save(os.path.join(folder, "tokenizer.json"))
    ids = [tok.encode(t).ids for t in TEXTS]
    ref = {
        "model_type": config.model_type,
        "class": cls.__name__,
        "texts": TEXTS,
        "ids": ids,
        "pooling": pooling,
        "pooled": pooled_outputs(folder, ids, pooling, torch.float32),
    }
    if save_dtype is torch.bfloat16:
        ref["pooled_bf16"] = pooled_outputs(folder, ids, pooling, torch.bfloat16)
    with open(os.path.join(folder, "reference.json"), "w") as f:
        json.dump(ref, f)
    files = sorted(os.listdir(folder))
    size = sum(os.path.getsize(os.path.join(folder, f)) for f in files)
    print(f"{name}: {files} {size / 1024:.0f} KB")


def main():
    os.makedirs(OUT, exist_ok=True)
    eot = "<|endoftext|>"
    gpt_tok = byte_level_bpe(300, [eot])
    V = gpt_tok.get_vocab_size()
    small = dict(vocab_size=V, tie_word_embeddings=False)

    fixture("gpt2", tf.GPT2Config(n_embd=16, n_layer=2, n_head=4, n_positions=64, vocab_size=V,
                                  bos_token_id=0, eos_token_id=0),
            tf.GPT2LMHeadModel, gpt_tok, "last", 1)
    neox = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=4, intermediate_size=40,
                max_position_embeddings=64, rope_parameters={"rope_type": "default", "rope_theta": 500.0,
                                                             "partial_rotary_factor": 0.5},
                eos_token_id=0, bos_token_id=0, **small)
    fixture("gpt_neox", tf.GPTNeoXConfig(use_parallel_residual=True, **neox),
            tf.GPTNeoXForCausalLM, gpt_tok, "last", 2)
    fixture("gpt_neox-sequential", tf.GPTNeoXConfig(use_parallel_residual=False, **neox),
            tf.GPTNeoXModel, gpt_tok, "last", 3)

    llama_tok = with_template(byte_level_bpe(300, ["<s>", "</s>"]), "<s> $A", ["<s>"])
    VL = llama_tok.get_vocab_size()
    llama = dict(hidden_size=16, intermediate_size=40, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=64, vocab_size=VL, bos_token_id=0,
                 eos_token_id=1, tie_word_embeddings=False)
    fixture("llama", tf.LlamaConfig(rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0,
                                                     "factor": 8.0, "low_freq_factor": 1.0,
                                                     "high_freq_factor": 4.0,
                                                     "original_max_position_embeddings": 16},
                                    **llama),
            tf.LlamaForCausalLM, llama_tok, "last", 4)
    fixture("llama-bf16", tf.LlamaConfig(**llama), tf.LlamaForCausalLM, llama_tok, "last", 5,
            save_dtype=torch.bfloat16)

    fixture("qwen2", tf.Qwen2Config(hidden_size=16, intermediate_size=40, num_hidden_layers=2,
                                    num_attention_heads=4, num_key_value_heads=1,
                                    max_position_embeddings=64, **small),
            tf.Qwen2Model, gpt_tok, "last", 6)
    fixture("qwen3-sharded", tf.Qwen3Config(hidden_size=16, intermediate_size=40, num_hidden_layers=3,
                                            num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                                            max_position_embeddings=64, **small),
            tf.Qwen3ForCausalLM, gpt_tok, "last", 7, shard="20KB")

    gemma_tok = with_template(metaspace_bpe(400, ["<pad>", "<eos>", "<bos>", "<unk>"]), "<bos> $A",
                              ["<bos>"])
    VG = gemma_tok.get_vocab_size()
    fixture("gemma3", tf.Gemma3TextConfig(hidden_size=16, intermediate_size=40, num_hidden_layers=2,
                                          num_attention_heads=2, num_key_value_heads=1, head_dim=8,
                                          query_pre_attn_scalar=16, sliding_window=4,
                                          layer_types=["sliding_attention", "full_attention"],
                                          max_position_embeddings=64, vocab_size=VG, pad_token_id=0,
                                          eos_token_id=1, bos_token_id=2),
            tf.Gemma3ForCausalLM, gemma_tok, "last", 8)

    rob_tok = byte_level_bpe(300, ["<s>", "<pad>", "</s>", "<unk>"])
    rob_tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    enc = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=4, intermediate_size=40,
               max_position_embeddings=70, vocab_size=rob_tok.get_vocab_size(), pad_token_id=1,
               bos_token_id=0, eos_token_id=2, type_vocab_size=1)
    fixture("roberta", tf.RobertaConfig(**enc), tf.RobertaModel, rob_tok, "mean", 9)
    xlm_tok = with_template(unigram(300, ["<s>", "<pad>", "</s>", "<unk>"]), "<s> $A </s>",
                            ["<s>", "</s>"])
    enc["vocab_size"] = xlm_tok.get_vocab_size()
    fixture("xlm-roberta", tf.XLMRobertaConfig(**enc), tf.XLMRobertaForSequenceClassification, xlm_tok,
            "mean", 10)


if __name__ == "__main__":
    main()
