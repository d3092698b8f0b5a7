//! Llama (Llama 2/3, SmolLM, TinyLlama): the plain rotary decoder of `decoder.rs`, with
//! `attention_bias` and `mlp_bias` as the config says and Llama 3's rope rescaling.
use crate::arch::ConfigFile;
use crate::decoder::{activation, BaseConfig, DecoderSpec, RotaryFamily};
use crate::error::Result;
use serde::Deserialize;

/// The Llama `config.json` fields beyond the shared ones.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// Shapes shared by the rotary decoders.
    #[serde(flatten)]
    pub base: BaseConfig,
    /// Biases on q, k, v and o.
    #[serde(default)]
    pub attention_bias: bool,
    /// Biases on the MLP projections.
    #[serde(default)]
    pub mlp_bias: bool,
}

/// The `llama` architecture.
pub struct LlamaArch;

impl RotaryFamily for LlamaArch {
    fn model_types(&self) -> &'static [&'static str] {
        &["llama"]
    }
    fn spec(&self, config: &ConfigFile) -> Result<DecoderSpec> {
        let cfg: Config = config.parse()?;
        let act = activation(config, "hidden_act", "silu")?;
        let mut spec = DecoderSpec::llama_like(cfg.base, act, config)?;
        spec.qkv_bias = cfg.attention_bias;
        spec.o_bias = cfg.attention_bias;
        spec.mlp_bias = cfg.mlp_bias;
        Ok(spec)
    }
}
