//! Qwen3: Llama's switches (`llama.rs`: biases only if `attention_bias`; Qwen3 configs have no
//! `mlp_bias`) plus a per-head RMSNorm of q and k before rotation, with the explicit `head_dim`
//! Qwen3 configs carry (often not `hidden / heads`).
use crate::arch::ConfigFile;
use crate::decoder::{DecoderSpec, RotaryFamily};
use crate::error::Result;
use crate::llama::LlamaArch;

/// The `qwen3` architecture.
pub struct Qwen3Arch;

impl RotaryFamily for Qwen3Arch {
    fn model_types(&self) -> &'static [&'static str] {
        &["qwen3"]
    }
    fn spec(&self, config: &ConfigFile) -> Result<DecoderSpec> {
        let mut spec = LlamaArch.spec(config)?;
        spec.qk_norm = true;
        Ok(spec)
    }
}
