//! Qwen2 (Qwen2, Qwen2.5, Qwen2.5-Coder): the rotary decoder of `decoder.rs` with biases on q, k
//! and v (never on o), and optional sliding-window layers.
use crate::arch::{Architecture, Backbone, ConfigFile, Pooling};
use crate::decoder::{activation, BaseConfig, Decoder, DecoderSpec};
use crate::error::Result;
use candle_nn::VarBuilder;

/// The `qwen2` architecture (its config has no fields beyond [`BaseConfig`]).
pub struct Qwen2Arch;

impl Architecture for Qwen2Arch {
    fn model_types(&self) -> &'static [&'static str] {
        &["qwen2"]
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
        let base: BaseConfig = config.parse()?;
        let act = activation(config, "hidden_act", "silu")?;
        let mut spec = DecoderSpec::llama_like(base, act, config)?;
        spec.qkv_bias = true;
        Ok(Box::new(Decoder::load(&spec, config, vb)?))
    }
}
