//! MPNet encoder (all-mpnet-base-v2), written for training.
//!
//! Follows HF `MPNetModel`: RoBERTa-style positions (padding index + running count of real
//! tokens), no token types, and a learned relative-position bias (32 log-spaced buckets, shared by
//! all layers) added to every attention score matrix.
use crate::arch::{Architecture, Backbone, ConfigFile, Pooling};
use crate::error::{CandleContext, Result};
use crate::nn::{
    attention_bias, positions_after_padding, Activation, AttentionNames, Embedding, EncoderLayer,
    LayerNorm, Linear,
};
use candle_core::{DType, Module, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

/// The subset of HF `config.json` that MPNet needs.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Width of the hidden states.
    pub hidden_size: usize,
    /// Number of layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer.
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Rows of the position table.
    pub max_position_embeddings: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// Padding token id; positions start after it.
    pub pad_token_id: u32,
    /// Number of relative-position buckets.
    #[serde(default = "default_buckets")]
    pub relative_attention_num_buckets: usize,
    /// Feed-forward activation.
    #[serde(default = "default_act")]
    pub hidden_act: String,
}

fn default_act() -> String {
    "gelu".into()
}

fn default_buckets() -> usize {
    32
}

/// Largest relative distance that still gets its own log-spaced bucket (HF default).
const MAX_DISTANCE: f64 = 128.0;

const NAMES: AttentionNames = AttentionNames {
    q: "attention.attn.q",
    k: "attention.attn.k",
    v: "attention.attn.v",
    o: "attention.attn.o",
    norm: "attention.LayerNorm",
};

/// An MPNet encoder without pooler.
#[derive(Debug, Clone)]
pub struct MpNet {
    word: Embedding,
    position: Embedding,
    emb_norm: LayerNorm,
    relative_bias: Embedding,
    layers: Vec<EncoderLayer>,
    pad: u32,
    buckets: usize,
    dtype: DType,
}

/// The bucket of relative position `memory - context`, as in HF `relative_position_bucket`.
pub fn relative_position_bucket(relative: i64, num_buckets: usize) -> u32 {
    let half = (num_buckets / 2) as i64;
    let n = -relative;
    let mut bucket = if n < 0 { half } else { 0 };
    let n = n.abs();
    let max_exact = half / 2;
    bucket += if n < max_exact {
        n
    } else {
        let large = max_exact as f64
            + ((n as f64 / max_exact as f64).ln() / (MAX_DISTANCE / max_exact as f64).ln()
                * (half - max_exact) as f64);
        (large as i64).min(half - 1)
    };
    bucket as u32
}

impl MpNet {
    /// Builds the model from a VarBuilder with HF names.
    pub fn load(cfg: &Config, config: &ConfigFile, vb: VarBuilder) -> Result<Self> {
        let act = Activation::from_hf(&cfg.hidden_act).map_err(|e| config.error(e))?;
        let h = cfg.hidden_size;
        let e = vb.pp("embeddings");
        let build = || -> candle_core::Result<MpNet> {
            let layers = (0..cfg.num_hidden_layers)
                .map(|i| {
                    EncoderLayer::load(
                        h,
                        cfg.intermediate_size,
                        cfg.num_attention_heads,
                        cfg.layer_norm_eps,
                        act,
                        &NAMES,
                        vb.pp(format!("encoder.layer.{i}")),
                    )
                })
                .collect::<candle_core::Result<_>>()?;
            Ok(MpNet {
                word: Embedding::load(cfg.vocab_size, h, e.pp("word_embeddings"))?,
                position: Embedding::load(
                    cfg.max_position_embeddings,
                    h,
                    e.pp("position_embeddings"),
                )?,
                emb_norm: LayerNorm::load(h, cfg.layer_norm_eps, e.pp("LayerNorm"))?,
                relative_bias: Embedding::load(
                    cfg.relative_attention_num_buckets,
                    cfg.num_attention_heads,
                    vb.pp("encoder.relative_attention_bias"),
                )?,
                layers,
                pad: cfg.pad_token_id,
                buckets: cfg.relative_attention_num_buckets,
                dtype: vb.dtype(),
            })
        };
        build().context(format!("building MPNet from {}", config.path.display()))
    }
}

impl Backbone for MpNet {
    fn forward(&self, ids: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let (_, t) = ids.dims2()?;
        let (dev, dt) = (ids.device(), self.dtype);
        let positions = positions_after_padding(mask, self.pad)?;
        let x = (self.word.forward(ids, dt)? + self.position.forward(&positions, dt)?)?;
        let mut x = self.emb_norm.forward(&x)?;
        let buckets: Vec<u32> = (0..t as i64)
            .flat_map(|i| (0..t as i64).map(move |j| (i, j)))
            .map(|(i, j)| relative_position_bucket(j - i, self.buckets))
            .collect();
        let buckets = Tensor::from_vec(buckets, (t, t), dev)?;
        // [t, t, heads] → [1, heads, t, t]
        let position_bias = self
            .relative_bias
            .forward(&buckets, dt)?
            .permute((2, 0, 1))?
            .unsqueeze(0)?;
        let bias = attention_bias(mask, dt)?.broadcast_add(&position_bias)?;
        for l in &self.layers {
            x = l.forward(&x, &bias)?;
        }
        Ok(x)
    }

    fn layer_linears_mut(&mut self) -> Vec<Vec<(&'static str, &mut Linear)>> {
        EncoderLayer::stack_linears_mut(&mut self.layers)
    }
}

/// The `mpnet` architecture.
pub struct MpNetArch;

impl Architecture for MpNetArch {
    fn model_types(&self) -> &'static [&'static str] {
        &["mpnet"]
    }
    fn pooling(&self) -> Pooling {
        Pooling::Mean
    }
    fn embedding_name(&self) -> &'static str {
        "embeddings.word_embeddings.weight"
    }
    fn layer_prefix(&self) -> &'static str {
        "encoder.layer"
    }
    fn hidden_size(&self, config: &ConfigFile) -> Result<usize> {
        Ok(config.parse::<Config>()?.hidden_size)
    }
    fn padding_idx(&self, config: &ConfigFile) -> Option<u32> {
        config.parse::<Config>().ok().map(|c| c.pad_token_id)
    }
    /// Positions start after the padding index, so the table holds `pad + 1` fewer tokens.
    fn max_tokens(&self, config: &ConfigFile) -> Option<usize> {
        let cfg = config.parse::<Config>().ok()?;
        Some(
            cfg.max_position_embeddings
                .saturating_sub(cfg.pad_token_id as usize + 1),
        )
    }
    fn load(&self, config: &ConfigFile, vb: VarBuilder) -> Result<Box<dyn Backbone>> {
        let cfg: Config = config.parse()?;
        Ok(Box::new(MpNet::load(&cfg, config, vb)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_match_hf_formula() {
        // Hand-computed with HF's relative_position_bucket(num_buckets=32, max_distance=128):
        // n = -(j - i); exact buckets for |n| < 8; n < 0 (key after query) uses the upper half.
        assert_eq!(relative_position_bucket(0, 32), 0);
        assert_eq!(relative_position_bucket(-3, 32), 3);
        assert_eq!(relative_position_bucket(3, 32), 19);
        // n = 8: 8 + floor(ln(1)/ln(16)*8) = 8; n = 20: 8 + floor(ln(2.5)/ln(16)*8) = 8 + 2 = 10
        assert_eq!(relative_position_bucket(-8, 32), 8);
        assert_eq!(relative_position_bucket(-20, 32), 10);
        // far away saturates at 15 (or 31 on the other side)
        assert_eq!(relative_position_bucket(-1000, 32), 15);
        assert_eq!(relative_position_bucket(1000, 32), 31);
    }
}
