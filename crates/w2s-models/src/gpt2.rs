//! GPT-2 (Radford et al. 2019; the paper's own ladder, small → XL), written for training.
//!
//! Follows HF `GPT2Model`: learned absolute positions from 0, pre-LN blocks, `Conv1D`
//! projections whose weights are stored `[in, out]`, one fused q/k/v projection, `gelu_new`, a
//! final LayerNorm, and an LM head tied to the token embedding (not loaded: classification reads
//! hidden states). Pooled at the last real token.
use crate::arch::{Architecture, Backbone, ConfigFile, Pooling};
use crate::error::{CandleContext, Result};
use crate::nn::{
    attend, conv1d, decoder_bias, taped_layer, Activation, AttentionShape, Embedding, LayerNorm,
    Linear, Visibility,
};
use candle_core::{DType, Module, Tensor, D};
use candle_nn::VarBuilder;
use serde::Deserialize;

/// The subset of HF `config.json` that GPT-2 needs.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Rows of the position table.
    pub n_positions: usize,
    /// Width of the hidden states.
    pub n_embd: usize,
    /// Number of layers.
    pub n_layer: usize,
    /// Attention heads.
    pub n_head: usize,
    /// Width of the MLP (4 × n_embd when absent).
    #[serde(default)]
    pub n_inner: Option<usize>,
    /// MLP activation.
    #[serde(default = "default_act")]
    pub activation_function: String,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
    /// Scores are divided by √head_dim.
    #[serde(default = "yes")]
    pub scale_attn_weights: bool,
    /// Scores of layer i are further divided by i + 1.
    #[serde(default)]
    pub scale_attn_by_inverse_layer_idx: bool,
}

fn default_act() -> String {
    "gelu_new".into()
}
fn default_eps() -> f64 {
    1e-5
}
fn yes() -> bool {
    true
}

#[derive(Debug, Clone)]
struct Block {
    ln_1: LayerNorm,
    c_attn: Linear,
    c_proj: Linear,
    ln_2: LayerNorm,
    c_fc: Linear,
    mlp_proj: Linear,
    heads: usize,
    scale: f64,
    act: Activation,
}

impl Block {
    fn load(cfg: &Config, i: usize, act: Activation, vb: VarBuilder) -> candle_core::Result<Self> {
        let (d, eps) = (cfg.n_embd, cfg.layer_norm_epsilon);
        let inner = cfg.n_inner.unwrap_or(4 * d);
        let mut scale = 1.0;
        if cfg.scale_attn_weights {
            scale /= ((d / cfg.n_head) as f64).sqrt();
        }
        if cfg.scale_attn_by_inverse_layer_idx {
            scale /= (i + 1) as f64;
        }
        Ok(Block {
            ln_1: LayerNorm::load(d, eps, vb.pp("ln_1"))?,
            c_attn: conv1d(d, 3 * d, vb.pp("attn.c_attn"))?,
            c_proj: conv1d(d, d, vb.pp("attn.c_proj"))?,
            ln_2: LayerNorm::load(d, eps, vb.pp("ln_2"))?,
            c_fc: conv1d(d, inner, vb.pp("mlp.c_fc"))?,
            mlp_proj: conv1d(inner, d, vb.pp("mlp.c_proj"))?,
            heads: cfg.n_head,
            scale,
            act,
        })
    }

    /// One taped op for candle ([`taped_layer`]), as the other architectures' layers.
    fn forward(&self, x: &Tensor, bias: &Tensor) -> candle_core::Result<Tensor> {
        let linears = [&self.c_attn, &self.c_proj, &self.c_fc, &self.mlp_proj];
        taped_layer(&linears, x, |x| self.forward_taped(x, bias))
    }

    /// The block's ops: taped inside a region, candle's graph outside one.
    fn forward_taped(&self, x: &Tensor, bias: &Tensor) -> candle_core::Result<Tensor> {
        let qkv = self.c_attn.forward(&self.ln_1.forward(x)?)?;
        let d = x.dim(D::Minus1)?;
        let last = qkv.rank() - 1;
        // Thirds of the fused projection, read in place by the attention.
        let part = |i: usize| w2s_kernels::narrow(&qkv, last, i * d, d);
        let shape = AttentionShape {
            heads: self.heads,
            kv_heads: self.heads,
            scale: self.scale,
        };
        let ctx = attend(&part(0)?, &part(1)?, &part(2)?, bias, shape)?;
        let x = w2s_kernels::add(x, &self.c_proj.forward(&ctx)?)?;
        let m = self
            .mlp_proj
            .forward(&self.c_fc.forward_act(&self.ln_2.forward(&x)?, self.act)?)?;
        w2s_kernels::add(&x, &m)
    }
}

/// A GPT-2 transformer without its LM head.
#[derive(Debug, Clone)]
pub struct Gpt2 {
    wte: Embedding,
    wpe: Embedding,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    dtype: DType,
}

impl Backbone for Gpt2 {
    fn forward(&self, ids: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let (_, t) = ids.dims2()?;
        let positions = Tensor::arange(0u32, t as u32, ids.device())?.unsqueeze(0)?;
        let mut x = self
            .wte
            .forward(ids, self.dtype)?
            .broadcast_add(&self.wpe.forward(&positions, self.dtype)?)?;
        let vis = Visibility {
            causal: true,
            window: None,
        };
        let bias = decoder_bias(mask, vis, self.dtype)?;
        for b in &self.blocks {
            x = b.forward(&x, &bias)?;
        }
        self.ln_f.forward(&x)
    }

    fn layer_linears_mut(&mut self) -> Vec<Vec<(&'static str, &mut Linear)>> {
        self.blocks
            .iter_mut()
            .map(|b| {
                vec![
                    ("c_attn", &mut b.c_attn),
                    ("c_proj", &mut b.c_proj),
                    ("c_fc", &mut b.c_fc),
                    ("mlp_c_proj", &mut b.mlp_proj),
                ]
            })
            .collect()
    }
}

/// The `gpt2` architecture.
pub struct Gpt2Arch;

impl Architecture for Gpt2Arch {
    fn model_types(&self) -> &'static [&'static str] {
        &["gpt2"]
    }
    fn pooling(&self) -> Pooling {
        Pooling::LastToken
    }
    fn embedding_name(&self) -> &'static str {
        "wte.weight"
    }
    fn layer_prefix(&self) -> &'static str {
        "h"
    }
    fn hidden_size(&self, config: &ConfigFile) -> Result<usize> {
        Ok(config.parse::<Config>()?.n_embd)
    }
    fn max_tokens(&self, config: &ConfigFile) -> Option<usize> {
        config.parse::<Config>().ok().map(|c| c.n_positions)
    }
    fn load(&self, config: &ConfigFile, vb: VarBuilder) -> Result<Box<dyn Backbone>> {
        let cfg: Config = config.parse()?;
        let act = Activation::from_hf(&cfg.activation_function).map_err(|e| config.error(e))?;
        let what = format!("building GPT-2 from {}", config.path.display());
        let d = cfg.n_embd;
        let blocks = (0..cfg.n_layer)
            .map(|i| Block::load(&cfg, i, act, vb.pp(format!("h.{i}"))))
            .collect::<candle_core::Result<Vec<_>>>()
            .context(&what)?;
        Ok(Box::new(Gpt2 {
            wte: Embedding::load(cfg.vocab_size, d, vb.pp("wte")).context(&what)?,
            wpe: Embedding::load(cfg.n_positions, d, vb.pp("wpe")).context(&what)?,
            blocks,
            ln_f: LayerNorm::load(d, cfg.layer_norm_epsilon, vb.pp("ln_f")).context(&what)?,
            dtype: vb.dtype(),
        }))
    }
}
