//! GPT-NeoX (Pythia 70M → 12B: one training run at many sizes), written for training.
//!
//! Follows HF `GPTNeoXModel`: pre-LN blocks with biases, one fused q/k/v projection whose output
//! is laid out per head (`[heads, 3 · head_dim]`: each head's q, then k, then v), rotary
//! embeddings on the first `rotary_pct` of each head's dimensions, and by default the parallel
//! residual `x + attn(ln₁ x) + mlp(ln₂ x)`. Pooled at the last real token.
use crate::arch::{Architecture, Backbone, ConfigFile, Pooling};
use crate::error::{CandleContext, Result};
use crate::nn::{
    attend, decoder_bias, linear_b, taped_layer, Activation, AttentionShape, Embedding, LayerNorm,
    Linear, Visibility,
};
use crate::rope::{apply_rope, RopeSpec};
use candle_core::{DType, Module, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

/// The subset of HF `config.json` that GPT-NeoX needs (rotary settings are read by
/// [`RopeSpec::from_config`]: `rotary_pct` / `rotary_emb_base` or `rope_parameters`).
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Width of the hidden states.
    pub hidden_size: usize,
    /// Number of layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Width of the MLP.
    pub intermediate_size: usize,
    /// MLP activation.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// `x + attn(ln₁ x) + mlp(ln₂ x)` instead of two sequential residuals.
    #[serde(default = "yes")]
    pub use_parallel_residual: bool,
    /// Biases on the attention projections.
    #[serde(default = "yes")]
    pub attention_bias: bool,
}

fn default_act() -> String {
    "gelu".into()
}
fn default_eps() -> f64 {
    1e-5
}
fn yes() -> bool {
    true
}

#[derive(Debug, Clone)]
struct Layer {
    input_layernorm: LayerNorm,
    post_attention_layernorm: LayerNorm,
    qkv: Linear,
    dense: Linear,
    h_to_4h: Linear,
    four_h_to_h: Linear,
    heads: usize,
    parallel: bool,
    act: Activation,
}

impl Layer {
    fn load(cfg: &Config, act: Activation, vb: VarBuilder) -> candle_core::Result<Self> {
        let (d, eps, b) = (cfg.hidden_size, cfg.layer_norm_eps, cfg.attention_bias);
        let f = cfg.intermediate_size;
        Ok(Layer {
            input_layernorm: LayerNorm::load(d, eps, vb.pp("input_layernorm"))?,
            post_attention_layernorm: LayerNorm::load(d, eps, vb.pp("post_attention_layernorm"))?,
            qkv: linear_b(d, 3 * d, b, vb.pp("attention.query_key_value"))?,
            dense: linear_b(d, d, b, vb.pp("attention.dense"))?,
            h_to_4h: linear_b(d, f, true, vb.pp("mlp.dense_h_to_4h"))?,
            four_h_to_h: linear_b(f, d, true, vb.pp("mlp.dense_4h_to_h"))?,
            heads: cfg.num_attention_heads,
            parallel: cfg.use_parallel_residual,
            act,
        })
    }

    fn attention(
        &self,
        x: &Tensor,
        rope: &(Tensor, Tensor),
        bias: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        let (heads, hd) = (self.heads, d / self.heads);
        // [b, t, heads, 3·hd] → [b, heads, t, 3·hd] (a view): q, k, v are thirds of each head's
        // slice.
        let qkv = w2s_kernels::map(
            &self.qkv.forward(x)?,
            |y| y.reshape((b, t, heads, 3 * hd))?.transpose(1, 2),
            move |g| g.transpose(1, 2)?.reshape((b, t, 3 * d)),
        )?;
        let part = |i: usize| w2s_kernels::contiguous(&w2s_kernels::narrow(&qkv, 3, i * hd, hd)?);
        let q = apply_rope(&part(0)?, &rope.0, &rope.1)?;
        let k = apply_rope(&part(1)?, &rope.0, &rope.1)?;
        let shape = AttentionShape {
            heads,
            kv_heads: heads,
            scale: 1.0 / (hd as f64).sqrt(),
        };
        let ctx = attend(&q, &k, &part(2)?, bias, shape)?;
        self.dense.forward(&ctx)
    }

    /// One taped op for candle ([`taped_layer`]), as the other architectures' layers.
    fn forward(
        &self,
        x: &Tensor,
        rope: &(Tensor, Tensor),
        bias: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let linears = [&self.qkv, &self.dense, &self.h_to_4h, &self.four_h_to_h];
        taped_layer(&linears, x, |x| self.forward_taped(x, rope, bias))
    }

    /// The layer's ops: taped inside a region, candle's graph outside one.
    fn forward_taped(
        &self,
        x: &Tensor,
        rope: &(Tensor, Tensor),
        bias: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let mlp = |h: &Tensor| -> candle_core::Result<Tensor> {
            let h = self.post_attention_layernorm.forward(h)?;
            self.four_h_to_h
                .forward(&self.h_to_4h.forward_act(&h, self.act)?)
        };
        let a = self.attention(&self.input_layernorm.forward(x)?, rope, bias)?;
        if self.parallel {
            w2s_kernels::add(&w2s_kernels::add(&mlp(x)?, &a)?, x)
        } else {
            let h = w2s_kernels::add(&a, x)?;
            w2s_kernels::add(&mlp(&h)?, &h)
        }
    }
}

/// A GPT-NeoX transformer without its LM head (`embed_out`).
#[derive(Debug, Clone)]
pub struct GptNeoX {
    embed_in: Embedding,
    layers: Vec<Layer>,
    final_layer_norm: LayerNorm,
    rope: RopeSpec,
    dtype: DType,
}

impl Backbone for GptNeoX {
    fn forward(&self, ids: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let (_, t) = ids.dims2()?;
        let mut x = self.embed_in.forward(ids, self.dtype)?;
        let rope = self.rope.tables(t, self.dtype, ids.device())?;
        let vis = Visibility {
            causal: true,
            window: None,
        };
        let bias = decoder_bias(mask, vis, self.dtype)?;
        for l in &self.layers {
            x = l.forward(&x, &rope, &bias)?;
        }
        self.final_layer_norm.forward(&x)
    }

    fn layer_linears_mut(&mut self) -> Vec<Vec<(&'static str, &mut Linear)>> {
        self.layers
            .iter_mut()
            .map(|l| {
                vec![
                    ("query_key_value", &mut l.qkv),
                    ("dense", &mut l.dense),
                    ("dense_h_to_4h", &mut l.h_to_4h),
                    ("dense_4h_to_h", &mut l.four_h_to_h),
                ]
            })
            .collect()
    }
}

/// The `gpt_neox` architecture.
pub struct GptNeoXArch;

impl Architecture for GptNeoXArch {
    fn model_types(&self) -> &'static [&'static str] {
        &["gpt_neox"]
    }
    fn pooling(&self) -> Pooling {
        Pooling::LastToken
    }
    fn embedding_name(&self) -> &'static str {
        "embed_in.weight"
    }
    fn layer_prefix(&self) -> &'static str {
        "layers"
    }
    fn hidden_size(&self, config: &ConfigFile) -> Result<usize> {
        Ok(config.parse::<Config>()?.hidden_size)
    }
    fn load(&self, config: &ConfigFile, vb: VarBuilder) -> Result<Box<dyn Backbone>> {
        let cfg: Config = config.parse()?;
        let act = Activation::from_hf(&cfg.hidden_act).map_err(|e| config.error(e))?;
        let hd = cfg.hidden_size / cfg.num_attention_heads.max(1);
        let rope = RopeSpec::from_config(&config.value, None, hd, 10_000.0)
            .map_err(|e| config.error(e))?;
        let what = format!("building GPT-NeoX from {}", config.path.display());
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| Layer::load(&cfg, act, vb.pp(format!("layers.{i}"))))
            .collect::<candle_core::Result<Vec<_>>>()
            .context(&what)?;
        Ok(Box::new(GptNeoX {
            embed_in: Embedding::load(cfg.vocab_size, cfg.hidden_size, vb.pp("embed_in"))
                .context(&what)?,
            layers,
            final_layer_norm: LayerNorm::load(
                cfg.hidden_size,
                cfg.layer_norm_eps,
                vb.pp("final_layer_norm"),
            )
            .context(&what)?,
            rope,
            dtype: vb.dtype(),
        }))
    }
}
