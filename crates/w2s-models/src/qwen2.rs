//! Qwen2 (Qwen2, Qwen2.5, Qwen2.5-Coder): the rotary decoder of `decoder.rs` with biases on q, k
//! and v (never on o), and optional sliding-window layers.
use crate::arch::ConfigFile;
use crate::decoder::{activation, BaseConfig, DecoderSpec, RotaryFamily};
use crate::error::Result;

/// The `qwen2` architecture (its config has no fields beyond [`BaseConfig`]).
pub struct Qwen2Arch;

impl RotaryFamily for Qwen2Arch {
    fn model_types(&self) -> &'static [&'static str] {
        &["qwen2"]
    }
    fn spec(&self, config: &ConfigFile) -> Result<DecoderSpec> {
        let base: BaseConfig = config.parse()?;
        let act = activation(config, "hidden_act", "silu")?;
        let mut spec = DecoderSpec::llama_like(base, act, config)?;
        spec.qkv_bias = true;
        Ok(spec)
    }
}
