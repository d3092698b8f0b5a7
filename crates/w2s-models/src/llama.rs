//! Llama (Llama 2/3, SmolLM, TinyLlama): the plain rotary decoder of `decoder.rs`, with
//! `attention_bias` and `mlp_bias` as the config says and Llama 3's rope rescaling.
use crate::arch::{Architecture, Backbone, ConfigFile, Pooling};
use crate::decoder::{activation, BaseConfig, Decoder, DecoderSpec};
use crate::error::Result;
use candle_nn::VarBuilder;
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

impl Architecture for LlamaArch {
    fn model_types(&self) -> &'static [&'static str] {
        &["llama"]
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
        let cfg: Config = config.parse()?;
        let act = activation(config, "hidden_act", "silu")?;
        let mut spec = DecoderSpec::llama_like(cfg.base, act, config)?;
        spec.qkv_bias = cfg.attention_bias;
        spec.o_bias = cfg.attention_bias;
        spec.mlp_bias = cfg.mlp_bias;
        Ok(Box::new(Decoder::load(&spec, config, vb)?))
    }
}
