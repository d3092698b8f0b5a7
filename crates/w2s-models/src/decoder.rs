//! The pre-norm rotary decoder that Llama, Qwen2, Qwen3 and Gemma3 share: RMSNorm, rotary
//! grouped-query attention, a gated MLP, with Hugging Face's tensor names
//! (`layers.N.self_attn.q_proj.weight`, … below the model root).
//!
//! The families differ only in switches, which their own files (`llama.rs`, `qwen2.rs`,
//! `qwen3.rs`, `gemma3.rs`) set from `config.json` in a [`DecoderSpec`]: biases on the
//! projections, per-head q/k norms, Gemma's sandwich norms, `1 + w` norms and √d embedding
//! scale, the MLP activation, and sliding-window layers with their own rotary base. GGUF files
//! reach the same code through an HF-style config derived from their metadata (`gguf.rs`).
//! Everything here is differentiable (see `nn.rs`).
use crate::arch::{Architecture, Backbone, ConfigFile, Pooling};
use crate::error::{CandleContext, Result};
use crate::nn::{
    attend, decoder_bias, linear_b, taped_layer, Activation, AttentionShape, Embedding, Linear,
    RmsNorm, Visibility,
};
use crate::rope::{apply_rope, RopeSpec};
use candle_core::{DType, Module, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

/// The `config.json` fields the rotary decoders have in common.
#[derive(Debug, Clone, Deserialize)]
pub struct BaseConfig {
    /// Vocabulary size (rows of the embedding).
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the gated MLP.
    pub intermediate_size: usize,
    /// Number of layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention); all heads when absent.
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Width of one head; `hidden_size / num_attention_heads` when absent.
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// RMSNorm epsilon.
    #[serde(default = "default_rms_eps")]
    pub rms_norm_eps: f64,
    /// `full_attention` / `sliding_attention` per layer (transformers 5).
    #[serde(default)]
    pub layer_types: Option<Vec<String>>,
    /// Window of sliding layers.
    #[serde(default)]
    pub sliding_window: Option<usize>,
}

fn default_rms_eps() -> f64 {
    1e-6
}

impl BaseConfig {
    /// Width of one head.
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// Key/value heads.
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }
}

/// What one layer attends to and how its positions rotate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerAttention {
    /// Rotary settings.
    pub rope: RopeSpec,
    /// Which keys are visible.
    pub visibility: Visibility,
}

/// Every switch of the shared decoder, as the family files set them.
#[derive(Debug, Clone)]
pub struct DecoderSpec {
    /// Shapes.
    pub base: BaseConfig,
    /// Biases on q, k, v.
    pub qkv_bias: bool,
    /// Bias on the attention output.
    pub o_bias: bool,
    /// Biases on the MLP projections.
    pub mlp_bias: bool,
    /// Per-head RMSNorm of q and k before rotation (Qwen3, Gemma3).
    pub qk_norm: bool,
    /// Norms scale by `1 + w` (Gemma).
    pub norm_plus_one: bool,
    /// Extra norms after attention and after the MLP (Gemma's "sandwich").
    pub sandwich_norms: bool,
    /// Embeddings are multiplied by this (Gemma: √hidden).
    pub embed_scale: Option<f64>,
    /// MLP activation.
    pub act: Activation,
    /// Attention score scale.
    pub attn_scale: f64,
    /// Per layer: rotary settings and visibility.
    pub layers: Vec<LayerAttention>,
}

impl DecoderSpec {
    /// A spec with the Llama defaults for every switch: no biases, no q/k norm, plain norms,
    /// SiLU, `1/√head_dim`, causal full attention, one rotary setting from the config.
    pub fn llama_like(base: BaseConfig, act: Activation, cfg: &ConfigFile) -> Result<DecoderSpec> {
        let rope = RopeSpec::from_config(&cfg.value, None, base.head_dim(), 10_000.0)
            .map_err(|e| cfg.error(e))?;
        let layers = layer_kinds(&base, cfg)?
            .iter()
            .map(|sliding| LayerAttention {
                rope,
                visibility: Visibility {
                    causal: true,
                    window: if *sliding { base.sliding_window } else { None },
                },
            })
            .collect();
        Ok(DecoderSpec {
            attn_scale: 1.0 / (base.head_dim() as f64).sqrt(),
            base,
            qkv_bias: false,
            o_bias: false,
            mlp_bias: false,
            qk_norm: false,
            norm_plus_one: false,
            sandwich_norms: false,
            embed_scale: None,
            act,
            layers,
        })
    }
}

/// A rotary decoder family: its `model_type`s and how its config sets the switches. Every
/// family is an [`Architecture`] through this (same pooling, names and loading).
pub trait RotaryFamily: Sync {
    /// The `model_type` values of `config.json` this family reads.
    fn model_types(&self) -> &'static [&'static str];
    /// The switches of this family, from its config.
    fn spec(&self, config: &ConfigFile) -> Result<DecoderSpec>;
}

impl<F: RotaryFamily> Architecture for F {
    fn model_types(&self) -> &'static [&'static str] {
        RotaryFamily::model_types(self)
    }
    fn pooling(&self) -> Pooling {
        Pooling::LastToken
    }
    fn embedding_name(&self) -> &'static str {
        "embed_tokens.weight"
    }
    fn layer_prefix(&self) -> &'static str {
        "layers"
    }
    fn hidden_size(&self, config: &ConfigFile) -> Result<usize> {
        Ok(config.parse::<BaseConfig>()?.hidden_size)
    }
    fn load(&self, config: &ConfigFile, vb: VarBuilder) -> Result<Box<dyn Backbone>> {
        Ok(Box::new(Decoder::load(&self.spec(config)?, config, vb)?))
    }
}

/// Whether each layer slides, from `layer_types` (transformers 5) or, for older configs, from
/// `use_sliding_window` + `max_window_layers` (Qwen: layers from that index on slide).
pub fn layer_kinds(base: &BaseConfig, cfg: &ConfigFile) -> Result<Vec<bool>> {
    let n = base.num_hidden_layers;
    if let Some(types) = &base.layer_types {
        if types.len() != n {
            return Err(cfg.error(format!(
                "layer_types has {} entries for {n} layers",
                types.len()
            )));
        }
        return types
            .iter()
            .map(|t| match t.as_str() {
                "full_attention" => Ok(false),
                "sliding_attention" => Ok(true),
                other => Err(cfg.error(format!("unsupported layer type {other:?}"))),
            })
            .collect();
    }
    let sliding = cfg
        .value
        .get("use_sliding_window")
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
        && base.sliding_window.is_some();
    let from = cfg
        .value
        .get("max_window_layers")
        .and_then(|v| v.as_u64())
        .unwrap_or(0) as usize;
    Ok((0..n).map(|i| sliding && i >= from).collect())
}

/// Reads the activation field `key` (absent: `default`).
pub fn activation(cfg: &ConfigFile, key: &str, default: &str) -> Result<Activation> {
    let name = cfg
        .value
        .get(key)
        .and_then(|v| v.as_str())
        .unwrap_or(default);
    Activation::from_hf(name).map_err(|e| cfg.error(e))
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
    scale: f64,
}

impl Attention {
    fn load(spec: &DecoderSpec, vb: VarBuilder) -> candle_core::Result<Self> {
        let b = &spec.base;
        let (h, hd) = (b.hidden_size, b.head_dim());
        let qk_norm = |name: &str| -> candle_core::Result<Option<RmsNorm>> {
            spec.qk_norm
                .then(|| RmsNorm::load(hd, b.rms_norm_eps, spec.norm_plus_one, vb.pp(name)))
                .transpose()
        };
        let (heads, kv) = (b.num_attention_heads, b.kv_heads());
        Ok(Attention {
            q: linear_b(h, heads * hd, spec.qkv_bias, vb.pp("q_proj"))?,
            k: linear_b(h, kv * hd, spec.qkv_bias, vb.pp("k_proj"))?,
            v: linear_b(h, kv * hd, spec.qkv_bias, vb.pp("v_proj"))?,
            o: linear_b(heads * hd, h, spec.o_bias, vb.pp("o_proj"))?,
            q_norm: qk_norm("q_norm")?,
            k_norm: qk_norm("k_norm")?,
            heads,
            kv_heads: kv,
            head_dim: hd,
            scale: spec.attn_scale,
        })
    }

    fn heads_of(
        &self,
        x: &Tensor,
        heads: usize,
        norm: &Option<RmsNorm>,
    ) -> candle_core::Result<Tensor> {
        let (b, t, hd) = x.dims3()?;
        let d = self.head_dim;
        let x = w2s_kernels::map(
            x,
            |x| x.reshape((b, t, heads, d)),
            move |g| g.reshape((b, t, hd)),
        )?;
        let x = match norm {
            Some(n) => n.forward(&x)?,
            None => x,
        };
        w2s_kernels::map(
            &x,
            |x| x.transpose(1, 2)?.contiguous(),
            |g| g.transpose(1, 2)?.contiguous(),
        )
    }

    fn forward(
        &self,
        x: &Tensor,
        rope: &(Tensor, Tensor),
        bias: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let q = self.heads_of(&self.q.forward(x)?, self.heads, &self.q_norm)?;
        let k = self.heads_of(&self.k.forward(x)?, self.kv_heads, &self.k_norm)?;
        let q = apply_rope(&q, &rope.0, &rope.1)?;
        let k = apply_rope(&k, &rope.0, &rope.1)?;
        // v stays `[b, t, kv·d]` and shared key/value heads are read, not repeated.
        let shape = AttentionShape {
            heads: self.heads,
            kv_heads: self.kv_heads,
            scale: self.scale,
        };
        let ctx = attend(&q, &k, &self.v.forward(x)?, bias, shape)?;
        self.o.forward(&ctx)
    }
}

#[derive(Debug, Clone)]
struct Mlp {
    gate: Linear,
    up: Linear,
    down: Linear,
    act: Activation,
}

impl Mlp {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let h = w2s_kernels::gated(&self.gate.forward(x)?, &self.up.forward(x)?, self.act)?;
        self.down.forward(&h)
    }
}

/// One decoder layer.
#[derive(Debug, Clone)]
struct DecoderLayer {
    input_norm: RmsNorm,
    attn: Attention,
    post_attn_norm: Option<RmsNorm>,
    ffn_norm: RmsNorm,
    mlp: Mlp,
    post_ffn_norm: Option<RmsNorm>,
    kind: usize,
}

impl DecoderLayer {
    fn load(spec: &DecoderSpec, kind: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        let b = &spec.base;
        let (h, f, eps, p1) = (
            b.hidden_size,
            b.intermediate_size,
            b.rms_norm_eps,
            spec.norm_plus_one,
        );
        let norm = |name: &str| RmsNorm::load(h, eps, p1, vb.pp(name));
        let sandwich = |name: &str| spec.sandwich_norms.then(|| norm(name)).transpose();
        let mlp = vb.pp("mlp");
        Ok(DecoderLayer {
            input_norm: norm("input_layernorm")?,
            attn: Attention::load(spec, vb.pp("self_attn"))?,
            // Llama/Qwen call the pre-MLP norm `post_attention_layernorm`; Gemma uses that name
            // for the norm of the attention output and has a separate pre-MLP norm.
            post_attn_norm: sandwich("post_attention_layernorm")?,
            ffn_norm: norm(if spec.sandwich_norms {
                "pre_feedforward_layernorm"
            } else {
                "post_attention_layernorm"
            })?,
            mlp: Mlp {
                gate: linear_b(h, f, spec.mlp_bias, mlp.pp("gate_proj"))?,
                up: linear_b(h, f, spec.mlp_bias, mlp.pp("up_proj"))?,
                down: linear_b(f, h, spec.mlp_bias, mlp.pp("down_proj"))?,
                act: spec.act,
            },
            post_ffn_norm: sandwich("post_feedforward_layernorm")?,
            kind,
        })
    }

    fn linears_mut(&mut self) -> Vec<(&'static str, &mut Linear)> {
        vec![
            ("q", &mut self.attn.q),
            ("k", &mut self.attn.k),
            ("v", &mut self.attn.v),
            ("o", &mut self.attn.o),
            ("gate", &mut self.mlp.gate),
            ("up", &mut self.mlp.up),
            ("down", &mut self.mlp.down),
        ]
    }

    fn forward(
        &self,
        x: &Tensor,
        rope: &(Tensor, Tensor),
        bias: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let (at, m) = (&self.attn, &self.mlp);
        let linears = [&at.q, &at.k, &at.v, &at.o, &m.gate, &m.up, &m.down];
        taped_layer(&linears, x, |x| self.forward_taped(x, rope, bias))
    }

    /// The layer's ops: taped inside a region, candle's graph outside one.
    fn forward_taped(
        &self,
        x: &Tensor,
        rope: &(Tensor, Tensor),
        bias: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let a = self
            .attn
            .forward(&self.input_norm.forward(x)?, rope, bias)?;
        let a = match &self.post_attn_norm {
            Some(n) => n.forward(&a)?,
            None => a,
        };
        let x = w2s_kernels::add(x, &a)?;
        let m = self.mlp.forward(&self.ffn_norm.forward(&x)?)?;
        let m = match &self.post_ffn_norm {
            Some(n) => n.forward(&m)?,
            None => m,
        };
        w2s_kernels::add(&x, &m)
    }
}

/// A rotary decoder without its language-model head: token ids in, final normed states out.
#[derive(Debug, Clone)]
pub struct Decoder {
    embed: Embedding,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    /// The distinct (rope, visibility) pairs; layers index into this.
    kinds: Vec<LayerAttention>,
    embed_scale: Option<f64>,
    dtype: DType,
}

impl Decoder {
    /// Builds the decoder of `spec` from weights below the model root (`embed_tokens`,
    /// `layers.N.*`, `norm`).
    pub fn load(spec: &DecoderSpec, cfg: &ConfigFile, vb: VarBuilder) -> Result<Self> {
        let b = &spec.base;
        if spec.layers.len() != b.num_hidden_layers {
            return Err(cfg.error("one attention setting per layer is needed"));
        }
        let what = format!("building the decoder of {}", cfg.path.display());
        let mut kinds: Vec<LayerAttention> = Vec::new();
        let mut layers = Vec::with_capacity(b.num_hidden_layers);
        for (i, la) in spec.layers.iter().enumerate() {
            let kind = match kinds.iter().position(|k| k == la) {
                Some(k) => k,
                None => {
                    kinds.push(*la);
                    kinds.len() - 1
                }
            };
            layers
                .push(DecoderLayer::load(spec, kind, vb.pp(format!("layers.{i}"))).context(&what)?);
        }
        Ok(Decoder {
            embed: Embedding::load(b.vocab_size, b.hidden_size, vb.pp("embed_tokens"))
                .context(&what)?,
            layers,
            norm: RmsNorm::load(
                b.hidden_size,
                b.rms_norm_eps,
                spec.norm_plus_one,
                vb.pp("norm"),
            )
            .context(&what)?,
            kinds,
            embed_scale: spec.embed_scale,
            dtype: vb.dtype(),
        })
    }
}

impl Backbone for Decoder {
    /// Attention hides padded keys too, so a row's states do not depend on the padding after it.
    fn forward(&self, ids: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let (_, t) = ids.dims2()?;
        let dev = ids.device();
        let mut x = self.embed.forward(ids, self.dtype)?;
        if let Some(s) = self.embed_scale {
            // Hugging Face rounds the scale to the weights' dtype first.
            let s = Tensor::new(s as f32, dev)?.to_dtype(self.dtype)?;
            x = x.broadcast_mul(&s)?;
        }
        let mut tables = Vec::with_capacity(self.kinds.len());
        for k in &self.kinds {
            let rope = k.rope.tables(t, self.dtype, dev)?;
            let bias = decoder_bias(mask, k.visibility, self.dtype)?;
            tables.push((rope, bias));
        }
        for layer in &self.layers {
            let (rope, bias) = &tables[layer.kind];
            x = layer.forward(&x, rope, bias)?;
        }
        self.norm.forward(&x)
    }

    fn layer_linears_mut(&mut self) -> Vec<Vec<(&'static str, &mut Linear)>> {
        self.layers
            .iter_mut()
            .map(DecoderLayer::linears_mut)
            .collect()
    }
}

/// The hidden state of each row's last real token `[b, hidden]`: the sentence representation of a
/// causal model (the only position that has seen the whole text).
///
/// Lengths come from the mask, never from token ids: a row may legitimately contain id 0 (it is
/// `<|endoftext|>` in SmolLM2 and `<pad>` in Gemma), which the paper's code mistook for padding.
pub fn last_token_pool(hidden: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let (b, t, h) = hidden.dims3()?;
    let lengths = mask.to_dtype(DType::F32)?.sum(1)?.to_vec1::<f32>()?;
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
    use candle_core::Device;

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
    fn layer_kinds_from_either_vintage() {
        let cfg = |v: serde_json::Value| ConfigFile {
            value: v,
            path: "config.json".into(),
        };
        let base =
            |v: &serde_json::Value| -> BaseConfig { serde_json::from_value(v.clone()).unwrap() };
        let common = serde_json::json!({"vocab_size": 8, "hidden_size": 4, "intermediate_size": 8,
            "num_hidden_layers": 3, "num_attention_heads": 2, "sliding_window": 2});
        let mut new = common.clone();
        new["layer_types"] =
            serde_json::json!(["sliding_attention", "full_attention", "sliding_attention"]);
        assert_eq!(
            layer_kinds(&base(&new), &cfg(new.clone())).unwrap(),
            [true, false, true]
        );
        let mut old = common.clone();
        old["use_sliding_window"] = true.into();
        old["max_window_layers"] = 1.into();
        assert_eq!(
            layer_kinds(&base(&old), &cfg(old.clone())).unwrap(),
            [false, true, true]
        );
        assert_eq!(
            layer_kinds(&base(&common), &cfg(common.clone())).unwrap(),
            [false, false, false]
        );
        let mut bad = common.clone();
        bad["layer_types"] = serde_json::json!(["full_attention"]);
        assert!(layer_kinds(&base(&bad), &cfg(bad.clone())).is_err());
    }
}
