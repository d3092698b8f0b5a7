//! Qwen3: the rotary decoder of `decoder.rs` with a per-head RMSNorm of q and k before rotation,
//! an explicit `head_dim` (often not `hidden / heads`), and biases only if `attention_bias`.
use crate::arch::ConfigFile;
use crate::decoder::{activation, BaseConfig, DecoderSpec, RotaryFamily};
use crate::error::Result;
use serde::Deserialize;

/// The Qwen3 `config.json` fields beyond the shared ones.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// Shapes shared by the rotary decoders.
    #[serde(flatten)]
    pub base: BaseConfig,
    /// Biases on q, k, v and o.
    #[serde(default)]
    pub attention_bias: bool,
}

/// The `qwen3` architecture.
pub struct Qwen3Arch;

impl RotaryFamily for Qwen3Arch {
    fn model_types(&self) -> &'static [&'static str] {
        &["qwen3"]
    }
    fn spec(&self, config: &ConfigFile) -> Result<DecoderSpec> {
        let cfg: Config = config.parse()?;
        let act = activation(config, "hidden_act", "silu")?;
        let mut spec = DecoderSpec::llama_like(cfg.base, act, config)?;
        spec.qkv_bias = cfg.attention_bias;
        spec.o_bias = cfg.attention_bias;
        spec.qk_norm = true;
        Ok(spec)
    }
}
