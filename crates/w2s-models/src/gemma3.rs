//! Gemma 3 (text): the rotary decoder of `decoder.rs` with every Gemma switch on: `1 + w` norms,
//! per-head q/k norms, sandwich norms around attention and MLP, embeddings scaled by √hidden,
//! GELU (tanh), scores scaled by `query_pre_attn_scalar^-½`, and sliding-window layers with their
//! own rotary base (`layer_types`, or every `sliding_window_pattern`-th layer global in older
//! configs).
use crate::arch::ConfigFile;
use crate::decoder::{activation, BaseConfig, DecoderSpec, LayerAttention, RotaryFamily};
use crate::error::Result;
use crate::nn::Visibility;
use crate::rope::RopeSpec;
use serde::Deserialize;

/// The Gemma3 `config.json` fields beyond the shared ones.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// Shapes shared by the rotary decoders.
    #[serde(flatten)]
    pub base: BaseConfig,
    /// Scores are scaled by `query_pre_attn_scalar^-½` (not `head_dim^-½`).
    #[serde(default = "default_qpas")]
    pub query_pre_attn_scalar: f64,
    /// Older configs: every n-th layer is global.
    #[serde(default = "default_pattern", alias = "_sliding_window_pattern")]
    pub sliding_window_pattern: usize,
    /// Attention-logit soft cap (Gemma 2); not supported.
    #[serde(default)]
    pub attn_logit_softcapping: Option<f64>,
    /// Embedding Gemma attends both ways.
    #[serde(default)]
    pub use_bidirectional_attention: bool,
    /// Biases on q, k, v and o.
    #[serde(default)]
    pub attention_bias: bool,
}

fn default_qpas() -> f64 {
    256.0
}
fn default_pattern() -> usize {
    6
}

/// The `gemma3_text` architecture.
pub struct Gemma3Arch;

impl RotaryFamily for Gemma3Arch {
    fn model_types(&self) -> &'static [&'static str] {
        &["gemma3_text"]
    }
    fn spec(&self, config: &ConfigFile) -> Result<DecoderSpec> {
        let cfg: Config = config.parse()?;
        if cfg.attn_logit_softcapping.is_some() {
            return Err(config.error("attn_logit_softcapping is not supported"));
        }
        let act = activation(config, "hidden_activation", "gelu_pytorch_tanh")?;
        let b = &cfg.base;
        let n = b.num_hidden_layers;
        let sliding: Vec<bool> = match &b.layer_types {
            Some(_) => crate::decoder::layer_kinds(b, config)?,
            None => (0..n)
                .map(|i| !(i + 1).is_multiple_of(cfg.sliding_window_pattern.max(1)))
                .collect(),
        };
        let hd = b.head_dim();
        let rope = |layer_type: &str| {
            RopeSpec::from_config(&config.value, Some(layer_type), hd, 10_000.0)
                .map_err(|e| config.error(e))
        };
        let (local, global) = (rope("sliding_attention")?, rope("full_attention")?);
        let causal = !cfg.use_bidirectional_attention;
        let layers = sliding
            .iter()
            .map(|&s| LayerAttention {
                rope: if s { local } else { global },
                visibility: Visibility {
                    causal,
                    window: if s { b.sliding_window } else { None },
                },
            })
            .collect();
        let mut spec = DecoderSpec::llama_like(cfg.base.clone(), act, config)?;
        spec.layers = layers;
        spec.qkv_bias = cfg.attention_bias;
        spec.o_bias = cfg.attention_bias;
        spec.qk_norm = true;
        spec.norm_plus_one = true;
        spec.sandwich_norms = true;
        spec.embed_scale = Some((cfg.base.hidden_size as f64).sqrt());
        spec.attn_scale = cfg.query_pre_attn_scalar.powf(-0.5);
        Ok(spec)
    }
}
