//! Decoder checkpoints in llama.cpp's GGUF format: an HF-style `config.json` derived from the
//! metadata (so the same `llama.rs` / `qwen2.rs` / `gemma3.rs` code reads both formats), weights
//! dequantised to f32 under Hugging Face names, and the tokenizer rebuilt from the embedded
//! vocabulary.
//!
//! The registry's decoders exist only as 4-bit GGUF files (see shared/notes/models.md). We
//! dequantise every tensor once at load time and train the result as an ordinary dense model.
//! Two rewrites made by llama.cpp's converter are undone so that `decoder.rs` is the plain HF
//! forward: Llama's q/k rows are permuted for llama.cpp's interleaved rotary layout, and Gemma's
//! norm weights are stored as `1 + w`.
use crate::arch::ConfigFile;
use crate::error::{CandleContext, ModelError, Result};
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::{Replace, NFC};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

/// Qwen2's pre-tokenizer pattern (as in its tokenizer.json and llama.cpp's `qwen2` pre-type).
const QWEN2_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The decoder families llama.cpp's GGUF files come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Llama,
    Qwen2,
    Gemma3,
}

impl Family {
    fn of(arch: &str) -> std::result::Result<Family, String> {
        Ok(match arch {
            "llama" => Family::Llama,
            "qwen2" => Family::Qwen2,
            "gemma3" => Family::Gemma3,
            other => {
                return Err(format!(
                    "unsupported architecture {other:?} (supported: llama, qwen2, gemma3)"
                ))
            }
        })
    }

    /// The Hugging Face `model_type` of the same architecture.
    fn model_type(&self) -> &'static str {
        match self {
            Family::Llama => "llama",
            Family::Qwen2 => "qwen2",
            Family::Gemma3 => "gemma3_text",
        }
    }
}

/// The parsed header of a GGUF file (metadata and tensor index; no tensor data).
pub struct Gguf {
    path: PathBuf,
    content: Content,
    family: Family,
    /// The HF-style config derived from the metadata.
    pub config: ConfigFile,
}

/// A GGUF file's header, read by candle after every size in it was checked against the file
/// ([`crate::gguf_check`]); a panic of candle's reader on a malformed header is an error too.
pub fn read_content(file: &mut std::fs::File) -> std::result::Result<Content, String> {
    use std::io::Seek;
    let size = file.metadata().map_err(|e| e.to_string())?.len();
    crate::gguf_check::check_header(std::io::BufReader::new(&mut *file), size)
        .map_err(|e| format!("not a readable GGUF file: {e}"))?;
    file.rewind().map_err(|e| e.to_string())?;
    w2s_assets::contain::contain(|| Content::read(file))
        .map_err(|panic| format!("not a readable GGUF file ({panic})"))?
        .map_err(|e| format!("not a readable GGUF file: {e}"))
}

/// The Hugging Face `model_type` of the decoder in a GGUF file (reads only its header).
pub fn hf_model_type(path: &Path) -> Result<&'static str> {
    Ok(Gguf::open(path)?.family.model_type())
}

/// A decoder tokenizer and the special ids around a text.
pub struct DecoderTokenizer {
    /// The rebuilt tokenizer.
    pub tokenizer: Tokenizer,
    /// Put before every text when the model was trained that way (Gemma's `<bos>`).
    pub bos: Option<u32>,
    /// Padding id for batches (never read back: pooling uses the mask).
    pub pad: u32,
}

impl Gguf {
    /// Reads the header of `path`.
    pub fn open(path: &Path) -> Result<Gguf> {
        let mut file = std::fs::File::open(path).map_err(|e| ModelError::Config {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let content = read_content(&mut file).map_err(|reason| ModelError::Config {
            path: path.to_path_buf(),
            reason,
        })?;
        let (family, value) = config_of(&content).map_err(|reason| ModelError::Config {
            path: path.to_path_buf(),
            reason,
        })?;
        Ok(Gguf {
            path: path.to_path_buf(),
            content,
            family,
            config: ConfigFile {
                value,
                path: path.to_path_buf(),
            },
        })
    }

    fn meta(&self, key: &str) -> Option<&Value> {
        self.content.metadata.get(key)
    }

    fn bad(&self, reason: impl Into<String>) -> ModelError {
        ModelError::Config {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    /// Every tensor the decoder uses, dequantised to f32 on `device`, under HF names. The output
    /// head is skipped: classification reads hidden states.
    pub fn tensors(&self, device: &Device) -> Result<HashMap<String, Tensor>> {
        let mut file = std::fs::File::open(&self.path).map_err(|e| self.bad(e.to_string()))?;
        let mut out = HashMap::new();
        let mut names: Vec<&String> = self.content.tensor_infos.keys().collect();
        names.sort();
        for name in names {
            let Some(hf) = hf_name(name, self.family) else {
                continue;
            };
            let what = format!("dequantising {name} of {}", self.path.display());
            let q = self
                .content
                .tensor(&mut file, name, &Device::Cpu)
                .context(what.clone())?;
            let mut t = q.dequantize(&Device::Cpu).context(what.clone())?;
            let heads = |key: &str| self.config.value[key].as_u64().unwrap_or(1) as usize;
            if self.family == Family::Llama {
                if hf.ends_with("q_proj.weight") {
                    t = unpermute(&t, heads("num_attention_heads")).context(what.clone())?;
                } else if hf.ends_with("k_proj.weight") {
                    t = unpermute(&t, heads("num_key_value_heads")).context(what.clone())?;
                }
            }
            if self.family == Family::Gemma3 && hf.ends_with("norm.weight") {
                t = (t - 1.0).context(what.clone())?;
            }
            out.insert(hf, t.to_device(device).context(what)?);
        }
        Ok(out)
    }

    /// The tokenizer described by `tokenizer.ggml.*`.
    pub fn tokenizer(&self) -> Result<DecoderTokenizer> {
        let strings = |key: &str| -> Result<Vec<String>> {
            self.meta(key)
                .ok_or_else(|| self.bad(format!("missing {key}")))?
                .to_vec()
                .and_then(|v| v.iter().map(|s| s.to_string().cloned()).collect())
                .map_err(|e| self.bad(format!("{key}: {e}")))
        };
        let tokens = strings("tokenizer.ggml.tokens")?;
        let types: Vec<i32> = match self.meta("tokenizer.ggml.token_type") {
            Some(v) => v
                .to_vec()
                .and_then(|v| v.iter().map(Value::to_i32).collect())
                .map_err(|e| self.bad(format!("tokenizer.ggml.token_type: {e}")))?,
            None => vec![1; tokens.len()],
        };
        let id = |key: &str| self.meta(key).and_then(|v| v.to_u32().ok());
        let flag = |key: &str| self.meta(key).and_then(|v| v.to_bool().ok());
        let text = |key: &str| {
            self.meta(key)
                .and_then(|v| v.to_string().ok())
                .cloned()
                .unwrap_or_default()
        };
        let model = text("tokenizer.ggml.model");
        // Built once, in the map type the BPE builder takes (it is moved into the model).
        let vocab: ahash::AHashMap<String, u32> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let tok_err = |e: tokenizers::Error| self.bad(format!("building the tokenizer: {e}"));
        let mut tokenizer = match model.as_str() {
            "gpt2" => {
                let merges = strings("tokenizer.ggml.merges")?
                    .into_iter()
                    .map(|m| {
                        m.split_once(' ')
                            .map(|(a, b)| (a.to_string(), b.to_string()))
                            .ok_or_else(|| self.bad(format!("merge without a space: {m:?}")))
                    })
                    .collect::<Result<Vec<_>>>()?;
                let bpe = BPE::builder()
                    .vocab_and_merges(vocab, merges)
                    .build()
                    .map_err(tok_err)?;
                let mut tk = Tokenizer::new(bpe);
                match text("tokenizer.ggml.pre").as_str() {
                    "qwen2" => {
                        let split = Split::new(
                            SplitPattern::Regex(QWEN2_PATTERN.into()),
                            SplitDelimiterBehavior::Isolated,
                            false,
                        )
                        .map_err(tok_err)?;
                        tk.with_normalizer(Some(NFC)).map_err(tok_err)?;
                        tk.with_pre_tokenizer(Some(Sequence::new(vec![
                            split.into(),
                            ByteLevel::new(false, false, false).into(),
                        ])));
                    }
                    "smollm" => {
                        tk.with_pre_tokenizer(Some(Sequence::new(vec![
                            Digits::new(true).into(),
                            ByteLevel::new(false, true, true).into(),
                        ])));
                    }
                    other => {
                        return Err(self.bad(format!(
                            "unsupported GPT-2-style pre-tokenizer {other:?} (supported: qwen2, smollm)"
                        )))
                    }
                }
                tk
            }
            "llama" => {
                if flag("tokenizer.ggml.add_space_prefix").unwrap_or(false) {
                    return Err(self.bad(
                        "SentencePiece tokenizers with add_space_prefix are not supported yet",
                    ));
                }
                // SentencePiece BPE: merge priorities come from the piece scores.
                let scores: Vec<f32> = self
                    .meta("tokenizer.ggml.scores")
                    .ok_or_else(|| self.bad("missing tokenizer.ggml.scores"))?
                    .to_vec()
                    .and_then(|v| v.iter().map(Value::to_f32).collect())
                    .map_err(|e| self.bad(format!("tokenizer.ggml.scores: {e}")))?;
                let merges = merges_from_scores(&tokens, &scores, &vocab);
                let unk = id("tokenizer.ggml.unknown_token_id")
                    .and_then(|i| tokens.get(i as usize).cloned())
                    .unwrap_or_else(|| "<unk>".into());
                let bpe = BPE::builder()
                    .vocab_and_merges(vocab, merges)
                    .unk_token(unk)
                    .fuse_unk(true)
                    .byte_fallback(true)
                    .build()
                    .map_err(tok_err)?;
                let mut tk = Tokenizer::new(bpe);
                tk.with_normalizer(Some(Replace::new(" ", "▁").map_err(tok_err)?))
                    .map_err(tok_err)?;
                tk
            }
            other => return Err(self.bad(format!("unsupported tokenizer model {other:?}"))),
        };
        // Control tokens (3) are special; user-defined ones (4, Gemma's whitespace runs) must be
        // matched whole before the model sees the text, exactly as llama.cpp does.
        let added: Vec<AddedToken> = tokens
            .iter()
            .zip(&types)
            .filter(|(_, &ty)| ty == 3 || ty == 4)
            .map(|(t, &ty)| {
                AddedToken::from(t.clone(), ty == 3).normalized(ty == 4 && model == "llama")
            })
            .collect();
        tokenizer
            .add_special_tokens(added.iter().filter(|t| t.special).cloned())
            .map_err(tok_err)?;
        tokenizer
            .add_tokens(added.iter().filter(|t| !t.special).cloned())
            .map_err(tok_err)?;
        let bos = match flag("tokenizer.ggml.add_bos_token") {
            Some(true) => id("tokenizer.ggml.bos_token_id"),
            _ => None,
        };
        let pad = id("tokenizer.ggml.padding_token_id")
            .or_else(|| id("tokenizer.ggml.eos_token_id"))
            .unwrap_or(0);
        Ok(DecoderTokenizer {
            tokenizer,
            bos,
            pad,
        })
    }
}

/// Undoes llama.cpp's q/k row permutation: GGUF row `h·d + 2j + s` holds HF row `h·d + s·d/2 + j`.
fn unpermute(w: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
    let (out, inp) = w.dims2()?;
    if heads == 0 || !out.is_multiple_of(2 * heads) {
        candle_core::bail!("{out} rows do not split into {heads} heads of pairs");
    }
    let d = out / heads;
    w.reshape((heads, d / 2, 2, inp))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((out, inp))
}

/// HF name of a llama.cpp tensor, or `None` for tensors the classifier does not use.
fn hf_name(gguf: &str, family: Family) -> Option<String> {
    let fixed = match gguf {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(f.to_string());
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let (module, kind) = rest.rsplit_once('.')?;
    let hf = match module {
        "attn_norm" => "input_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "attn_q_norm" => "self_attn.q_norm",
        "attn_k_norm" => "self_attn.k_norm",
        // The pre-MLP norm: HF Llama/Qwen2 name it after the attention, Gemma3 before the MLP.
        "ffn_norm" if family == Family::Gemma3 => "pre_feedforward_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        "post_attention_norm" => "post_attention_layernorm",
        "post_ffw_norm" => "post_feedforward_layernorm",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}.{kind}"))
}

/// Merges of a SentencePiece BPE vocabulary: every split of a piece into two pieces, ranked by the
/// merged piece's score (highest first), ties by the ids of the halves — the ordering of Hugging
/// Face's SentencePiece extractor, under which byte-pair merging reproduces SentencePiece.
fn merges_from_scores(
    tokens: &[String],
    scores: &[f32],
    vocab: &ahash::AHashMap<String, u32>,
) -> Vec<(String, String)> {
    let mut by_score: Vec<usize> = (0..tokens.len()).collect();
    by_score.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut merges: Vec<(f32, String, String)> = Vec::new();
    for i in by_score {
        let piece = &tokens[i];
        let mut local: Vec<(u32, u32, usize)> = Vec::new();
        for (k, _) in piece.char_indices().skip(1) {
            let (l, r) = piece.split_at(k);
            if let (Some(&a), Some(&b)) = (vocab.get(l), vocab.get(r)) {
                local.push((a, b, k));
            }
        }
        local.sort();
        merges.extend(local.into_iter().map(|(_, _, k)| {
            let (l, r) = piece.split_at(k);
            (scores[i], l.to_string(), r.to_string())
        }));
    }
    // Stable: equal scores keep the order above.
    merges.sort_by(|a, b| b.0.total_cmp(&a.0));
    merges.into_iter().map(|(_, l, r)| (l, r)).collect()
}

/// The family and an HF-style `config.json` of the decoder described by the metadata.
fn config_of(c: &Content) -> std::result::Result<(Family, serde_json::Value), String> {
    let arch = c
        .metadata
        .get("general.architecture")
        .and_then(|v| v.to_string().ok())
        .cloned()
        .ok_or("missing general.architecture")?;
    let family = Family::of(&arch)?;
    let get = |key: &str| c.metadata.get(&format!("{arch}.{key}"));
    let usize_of = |key: &str| -> std::result::Result<usize, String> {
        let v = get(key).ok_or(format!("missing {arch}.{key}"))?;
        v.to_u32()
            .map(|x| x as usize)
            .or_else(|_| v.to_u64().map(|x| x as usize))
            .map_err(|e| format!("{arch}.{key}: {e}"))
    };
    let f64_of = |key: &str, default: f64| -> f64 {
        get(key)
            .and_then(|v| v.to_f32().ok().map(f64::from).or_else(|| v.to_f64().ok()))
            .unwrap_or(default)
    };
    let hidden = usize_of("embedding_length")?;
    let heads = usize_of("attention.head_count")?;
    let head_dim = usize_of("attention.key_length").unwrap_or(hidden / heads.max(1));
    let vocab = c
        .tensor_infos
        .get("token_embd.weight")
        .ok_or("missing token_embd.weight")?
        .shape
        .dims()[0];
    let mut cfg = serde_json::json!({
        "model_type": family.model_type(),
        "vocab_size": vocab,
        "hidden_size": hidden,
        "intermediate_size": usize_of("feed_forward_length")?,
        "num_hidden_layers": usize_of("block_count")?,
        "num_attention_heads": heads,
        "num_key_value_heads": usize_of("attention.head_count_kv").unwrap_or(heads),
        "head_dim": head_dim,
        "rms_norm_eps": f64_of("attention.layer_norm_rms_epsilon", 1e-6),
        "rope_theta": f64_of("rope.freq_base", 10_000.0),
        // llama.cpp stores an untied LM head as `output.weight`.
        "tie_word_embeddings": !c.tensor_infos.contains_key("output.weight"),
    });
    if family == Family::Gemma3 {
        // llama.cpp hard-codes Gemma3's local rotary base, layer pattern and score scale (the
        // head width for every released size but 27B); so do we.
        cfg["rope_local_base_freq"] = 10_000.0.into();
        cfg["sliding_window_pattern"] = 6.into();
        cfg["query_pre_attn_scalar"] = head_dim.into();
        if let Ok(w) = usize_of("attention.sliding_window") {
            cfg["sliding_window"] = w.into();
        }
    }
    Ok((family, cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpermute_inverts_llama_cpp_permutation() {
        // One head of width 4, one input column: HF rows [a0 a1 b0 b1] (halves a, b) are stored
        // by llama.cpp interleaved as [a0 b0 a1 b1].
        let stored = Tensor::new(&[[0f32], [2.], [1.], [3.]], &Device::Cpu).unwrap();
        let hf = unpermute(&stored, 1).unwrap().flatten_all().unwrap();
        assert_eq!(hf.to_vec1::<f32>().unwrap(), [0.0, 1.0, 2.0, 3.0]);
    }

    #[test]
    fn merges_follow_piece_scores() {
        let tokens: Vec<String> = ["a", "b", "c", "ab", "bc", "abc"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let scores = [0.0, 0.0, 0.0, -2.0, -1.0, -3.0];
        let vocab = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let m = merges_from_scores(&tokens, &scores, &vocab);
        let pairs: Vec<(&str, &str)> = m.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        // "bc" (-1) before "ab" (-2) before the two ways to make "abc" (-3), halves by id.
        assert_eq!(pairs, [("b", "c"), ("a", "b"), ("a", "bc"), ("ab", "c")]);
    }

    #[test]
    fn tensor_names_map_to_hugging_face() {
        assert_eq!(
            hf_name("blk.3.attn_q.bias", Family::Qwen2).unwrap(),
            "model.layers.3.self_attn.q_proj.bias"
        );
        assert_eq!(
            hf_name("token_embd.weight", Family::Llama).unwrap(),
            "model.embed_tokens.weight"
        );
        assert_eq!(hf_name("output.weight", Family::Llama), None);
        assert_eq!(
            hf_name("blk.0.ffn_norm.weight", Family::Gemma3).unwrap(),
            "model.layers.0.pre_feedforward_layernorm.weight"
        );
        assert_eq!(
            hf_name("blk.0.ffn_norm.weight", Family::Llama).unwrap(),
            "model.layers.0.post_attention_layernorm.weight"
        );
        assert_eq!(hf_name("rope_freqs.weight", Family::Llama), None);
    }
}
