//! Pre-norm decoder transformers: Llama (SmolLM2), Qwen2 (Qwen2.5-Coder) and Gemma3.
//!
//! The three share one skeleton (RMSNorm, rotary grouped-query attention, gated MLP) and differ
//! in switches, so they live in one file the way candle-transformers keeps close variants
//! together: Qwen2 adds biases to q/k/v; Gemma3 normalises q and k per head, wraps attention
//! and MLP in "sandwich" norms, scales embeddings by √d, uses GELU, alternates sliding-window
//! and global layers (each with its own rotary base) and stores norms as `w` applied as `1 + w`.
//! Weights use Hugging Face names (`model.layers.N.self_attn.q_proj.weight`, …): the GGUF reader
//! (`gguf.rs`) renames llama.cpp's tensors and undoes its rewrites, so this code is the HF forward.
//! Everything here is differentiable (see `nn.rs`).
use crate::nn::{apply_rope, linear_b, rope_tables, softmax_last_dim, Linear, RmsNorm};
use candle_core::{Device, Module, Result, Tensor};
use candle_nn::VarBuilder;

/// Which decoder family a checkpoint belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Llama (SmolLM2).
    Llama,
    /// Qwen2 (Qwen2.5, Qwen2.5-Coder).
    Qwen2,
    /// Gemma 3.
    Gemma3,
}

/// Shapes and constants of a decoder, read from GGUF metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Family, which decides the switches described in the module docs.
    pub family: Family,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the gated MLP.
    pub intermediate_size: usize,
    /// Number of layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention).
    pub num_key_value_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// Rotary base of global layers.
    pub rope_theta: f64,
    /// Rotary base of Gemma3's sliding-window layers.
    pub rope_local_theta: f64,
    /// Gemma3's attention window of local layers (keys further back than this are hidden).
    pub sliding_window: Option<usize>,
    /// Gemma3: every n-th layer is global, the others slide.
    pub global_every: usize,
    /// Vocabulary size (rows of the embedding).
    pub vocab_size: usize,
}

impl Config {
    fn is_gemma(&self) -> bool {
        self.family == Family::Gemma3
    }

    /// Whether layer `i` attends through a sliding window.
    pub fn is_sliding(&self, i: usize) -> bool {
        self.is_gemma()
            && self.sliding_window.is_some()
            && !(i + 1).is_multiple_of(self.global_every.max(1))
    }
}

#[derive(Debug, Clone)]
struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    q_norm: Option<RmsNorm>,
    k_norm: Option<RmsNorm>,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    fn load(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let (h, hd) = (cfg.hidden_size, cfg.head_dim);
        let bias = cfg.family == Family::Qwen2;
        let qk_norm = |name: &str| -> Result<Option<RmsNorm>> {
            if cfg.is_gemma() {
                Ok(Some(RmsNorm::load(
                    hd,
                    cfg.rms_norm_eps,
                    true,
                    vb.pp(name),
                )?))
            } else {
                Ok(None)
            }
        };
        Ok(Attention {
            q: linear_b(h, cfg.num_attention_heads * hd, bias, vb.pp("q_proj"))?,
            k: linear_b(h, cfg.num_key_value_heads * hd, bias, vb.pp("k_proj"))?,
            v: linear_b(h, cfg.num_key_value_heads * hd, bias, vb.pp("v_proj"))?,
            o: linear_b(cfg.num_attention_heads * hd, h, false, vb.pp("o_proj"))?,
            q_norm: qk_norm("q_norm")?,
            k_norm: qk_norm("k_norm")?,
            heads: cfg.num_attention_heads,
            kv_heads: cfg.num_key_value_heads,
            head_dim: hd,
        })
    }

    fn heads_of(&self, x: &Tensor, heads: usize, norm: &Option<RmsNorm>) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let x = x.reshape((b, t, heads, self.head_dim))?;
        let x = match norm {
            Some(n) => n.forward(&x)?,
            None => x,
        };
        x.transpose(1, 2)?.contiguous()
    }

    fn forward(&self, x: &Tensor, rope: &(Tensor, Tensor), bias: &Tensor) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let q = self.heads_of(&self.q.forward(x)?, self.heads, &self.q_norm)?;
        let k = self.heads_of(&self.k.forward(x)?, self.kv_heads, &self.k_norm)?;
        let v = self.heads_of(&self.v.forward(x)?, self.kv_heads, &None)?;
        let q = apply_rope(&q, &rope.0, &rope.1)?;
        let k = repeat_kv(
            &apply_rope(&k, &rope.0, &rope.1)?,
            self.heads / self.kv_heads,
        )?;
        let v = repeat_kv(&v, self.heads / self.kv_heads)?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let scores = (q.matmul(&k.t()?.contiguous()?)? * scale)?.broadcast_add(bias)?;
        let ctx = softmax_last_dim(&scores)?.matmul(&v)?;
        let ctx = ctx
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, t, self.heads * self.head_dim))?;
        self.o.forward(&ctx)
    }
}

/// `[b, kv, t, d]` → `[b, kv·n, t, d]`, each key/value head serving `n` query heads.
fn repeat_kv(x: &Tensor, n: usize) -> Result<Tensor> {
    if n == 1 {
        return Ok(x.clone());
    }
    let (b, kv, t, d) = x.dims4()?;
    x.unsqueeze(2)?
        .broadcast_as((b, kv, n, t, d))?
        .contiguous()?
        .reshape((b, kv * n, t, d))
}

#[derive(Debug, Clone)]
struct Mlp {
    gate: Linear,
    up: Linear,
    down: Linear,
    gelu: bool,
}

impl Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let g = self.gate.forward(x)?;
        // Gemma's gelu_pytorch_tanh is candle's `gelu` (tanh approximation).
        let g = if self.gelu { g.gelu()? } else { g.silu()? };
        self.down.forward(&(g * self.up.forward(x)?)?)
    }
}

/// One decoder layer.
#[derive(Debug, Clone)]
pub struct DecoderLayer {
    input_norm: RmsNorm,
    attn: Attention,
    post_attn_norm: Option<RmsNorm>,
    ffn_norm: RmsNorm,
    mlp: Mlp,
    post_ffn_norm: Option<RmsNorm>,
    sliding: bool,
}

impl DecoderLayer {
    fn load(cfg: &Config, i: usize, vb: VarBuilder) -> Result<Self> {
        let (h, eps, g) = (cfg.hidden_size, cfg.rms_norm_eps, cfg.is_gemma());
        let norm = |name: &str| RmsNorm::load(h, eps, g, vb.pp(name));
        let f = cfg.intermediate_size;
        let mlp = vb.pp("mlp");
        Ok(DecoderLayer {
            input_norm: norm("input_layernorm")?,
            attn: Attention::load(cfg, vb.pp("self_attn"))?,
            // Llama/Qwen2 call the pre-MLP norm `post_attention_layernorm`; Gemma uses that name
            // for the norm of the attention output and has a separate pre-MLP norm.
            post_attn_norm: if g {
                Some(norm("post_attention_layernorm")?)
            } else {
                None
            },
            ffn_norm: norm(if g {
                "pre_feedforward_layernorm"
            } else {
                "post_attention_layernorm"
            })?,
            mlp: Mlp {
                gate: linear_b(h, f, false, mlp.pp("gate_proj"))?,
                up: linear_b(h, f, false, mlp.pp("up_proj"))?,
                down: linear_b(f, h, false, mlp.pp("down_proj"))?,
                gelu: g,
            },
            post_ffn_norm: if g {
                Some(norm("post_feedforward_layernorm")?)
            } else {
                None
            },
            sliding: cfg.is_sliding(i),
        })
    }

    /// The layer's linear projections by name: what LoRA adapts.
    pub fn linears_mut(&mut self) -> [(&'static str, &mut Linear); 7] {
        [
            ("q", &mut self.attn.q),
            ("k", &mut self.attn.k),
            ("v", &mut self.attn.v),
            ("o", &mut self.attn.o),
            ("gate", &mut self.mlp.gate),
            ("up", &mut self.mlp.up),
            ("down", &mut self.mlp.down),
        ]
    }

    fn forward(&self, x: &Tensor, rope: &(Tensor, Tensor), bias: &Tensor) -> Result<Tensor> {
        let a = self
            .attn
            .forward(&self.input_norm.forward(x)?, rope, bias)?;
        let a = match &self.post_attn_norm {
            Some(n) => n.forward(&a)?,
            None => a,
        };
        let x = (x + a)?;
        let m = self.mlp.forward(&self.ffn_norm.forward(&x)?)?;
        let m = match &self.post_ffn_norm {
            Some(n) => n.forward(&m)?,
            None => m,
        };
        x + m
    }
}

/// A decoder without its language-model head: token ids in, final (normed) hidden states out.
#[derive(Debug, Clone)]
pub struct Decoder {
    embed: Tensor,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    cfg: Config,
}

impl Decoder {
    /// Loads the weights under `model.*` (Hugging Face names).
    pub fn load(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let vb = vb.pp("model");
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| DecoderLayer::load(cfg, i, vb.pp(format!("layers.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        Ok(Decoder {
            embed: vb
                .pp("embed_tokens")
                .get((cfg.vocab_size, cfg.hidden_size), "weight")?,
            layers,
            norm: RmsNorm::load(
                cfg.hidden_size,
                cfg.rms_norm_eps,
                cfg.is_gemma(),
                vb.pp("norm"),
            )?,
            cfg: cfg.clone(),
        })
    }

    /// The layers, for adapters.
    pub fn layers_mut(&mut self) -> &mut [DecoderLayer] {
        &mut self.layers
    }

    /// `ids [b, t]`, `mask [b, t]` (1 = token, 0 = padding) → `[b, t, hidden]`.
    ///
    /// Attention is causal; padded keys are hidden too, so a row's states do not depend on how
    /// much padding follows it (or precedes it).
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let dev = ids.device();
        let mut x = self.embed.index_select(&ids.flatten_all()?, 0)?.reshape((
            b,
            t,
            self.cfg.hidden_size,
        ))?;
        if self.cfg.is_gemma() {
            x = (x * (self.cfg.hidden_size as f64).sqrt())?;
        }
        let mask_rows = mask.to_dtype(candle_core::DType::F32)?.to_vec2::<f32>()?;
        let global = attention_bias(&mask_rows, t, None, dev)?;
        let local = match self.cfg.sliding_window {
            Some(w) if self.cfg.is_gemma() && w < t => attention_bias(&mask_rows, t, Some(w), dev)?,
            _ => global.clone(),
        };
        let rope_global = rope_tables(t, self.cfg.head_dim, self.cfg.rope_theta, dev)?;
        let rope_local = if self.cfg.is_gemma() {
            rope_tables(t, self.cfg.head_dim, self.cfg.rope_local_theta, dev)?
        } else {
            rope_global.clone()
        };
        for layer in &self.layers {
            x = if layer.sliding {
                layer.forward(&x, &rope_local, &local)?
            } else {
                layer.forward(&x, &rope_global, &global)?
            };
        }
        self.norm.forward(&x)
    }
}

/// Additive attention bias `[b, 1, t, t]`: 0 where query i may see key j (j ≤ i, key not padding,
/// and within `window` positions when given), a large negative number elsewhere.
fn attention_bias(
    mask: &[Vec<f32>],
    t: usize,
    window: Option<usize>,
    dev: &Device,
) -> Result<Tensor> {
    let mut bias = Vec::with_capacity(mask.len() * t * t);
    for row in mask {
        for i in 0..t {
            for (j, &m) in row.iter().enumerate().take(t) {
                let visible = j <= i && m > 0.5 && window.is_none_or(|w| i - j < w);
                bias.push(if visible { 0f32 } else { -1e9 });
            }
        }
    }
    Tensor::from_vec(bias, (mask.len(), 1, t, t), dev)
}

/// The hidden state of each row's last real token `[b, hidden]`: the sentence representation of a
/// causal model (the only position that has seen the whole text).
///
/// Lengths come from the mask, never from token ids: a row may legitimately contain id 0 (it is
/// `<|endoftext|>` in SmolLM2 and `<pad>` in Gemma), which the paper's code mistook for padding.
pub fn last_token_pool(hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let (b, t, h) = hidden.dims3()?;
    let lengths = mask
        .to_dtype(candle_core::DType::F32)?
        .sum(1)?
        .to_vec1::<f32>()?;
    let mut index = Vec::with_capacity(b);
    for (row, len) in lengths.iter().enumerate() {
        let len = len.round() as usize;
        if len == 0 {
            candle_core::bail!("row {row} has no tokens to pool");
        }
        index.push((row * t + len - 1) as u32);
    }
    let index = Tensor::from_vec(index, b, hidden.device())?;
    hidden.reshape((b * t, h))?.index_select(&index, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_token_pool_uses_the_mask_not_token_ids() {
        let dev = Device::Cpu;
        // Row 0: 3 real tokens, then padding; row 1: 1 real token.
        let hidden = Tensor::arange(0f32, 12., &dev)
            .unwrap()
            .reshape((2, 3, 2))
            .unwrap();
        let mask = Tensor::new(&[[1f32, 1., 1.], [1., 0., 0.]], &dev).unwrap();
        let pooled = last_token_pool(&hidden, &mask)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(pooled, vec![vec![4.0, 5.0], vec![6.0, 7.0]]);
        let empty = Tensor::new(&[[0f32, 0., 0.], [1., 0., 0.]], &dev).unwrap();
        assert!(last_token_pool(&hidden, &empty).is_err());
    }

    #[test]
    fn attention_bias_is_causal_hides_padding_and_slides() {
        let dev = Device::Cpu;
        let mask = vec![vec![1f32, 1., 1., 0.]];
        let b = attention_bias(&mask, 4, None, &dev)
            .unwrap()
            .reshape((4, 4))
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let visible: Vec<Vec<bool>> = b
            .iter()
            .map(|r| r.iter().map(|&v| v == 0.0).collect())
            .collect();
        assert_eq!(visible[0], [true, false, false, false]);
        assert_eq!(visible[2], [true, true, true, false]);
        assert_eq!(visible[3], [true, true, true, false], "padding key hidden");
        let w = attention_bias(&mask, 4, Some(2), &dev)
            .unwrap()
            .reshape((4, 4))
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(
            w[2].iter().map(|&v| v == 0.0).collect::<Vec<_>>(),
            [false, true, true, false]
        );
    }

    #[test]
    fn rope_rotates_pairs_half_apart() {
        let dev = Device::Cpu;
        let (cos, sin) = rope_tables(2, 4, 10_000.0, &dev).unwrap();
        // x = e0 at position 1: frequency 0 is 1 rad, so (cos 1, 0, sin 1, 0).
        let x = Tensor::new(&[[[[1f32, 0., 0., 0.], [1., 0., 0., 0.]]]], &dev).unwrap();
        let y = apply_rope(&x, &cos, &sin)
            .unwrap()
            .reshape((2, 4))
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(y[0], [1.0, 0.0, 0.0, 0.0]);
        assert!((y[1][0] - 1f32.cos()).abs() < 1e-6 && (y[1][2] - 1f32.sin()).abs() < 1e-6);
        assert_eq!(y[1][1], 0.0);
    }
}
