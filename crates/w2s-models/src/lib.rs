//! Pretrained backbones written for training, their tokenizers, pooling and cached features.
//!
//! The backbones are our own code (in the style of candle-transformers: one file per
//! architecture, a `Config` from HF `config.json`, `load` + `forward`) because candle's fused
//! norms and softmax have no backward pass; see [`nn`]. Architectures are chosen by
//! `model_type` through the registry in [`arch`].
pub mod arch;
pub mod bert;
pub mod decoder;
pub mod dtype;
pub mod encoder;
pub mod error;
pub mod features;
pub mod gemma3;
pub mod gguf;
mod gguf_check;
pub mod gpt2;
pub mod gpt_neox;
pub mod hub;
pub mod llama;
pub mod mpnet;
pub mod nn;
pub mod quant;
pub mod qwen2;
pub mod qwen3;
pub mod registry;
pub mod roberta;
pub mod rope;
pub mod tokenize;
pub mod vision;
pub mod weights;

pub use arch::{Architecture, Pooling, ARCHITECTURES};
/// The compute device, re-exported so callers need not depend on candle.
pub use candle_core::Device;
pub use dtype::WeightDtype;
pub use encoder::{mean_pool, Encoder, LoadRequest, Train};
pub use error::{ModelError, Result};
pub use features::images::{
    cached_image_features, image_feature_share, ImageFeatureRequest, ImageModel, ImageRows, PIXELS,
};
pub use features::{
    cached_features, feature_share, save_features, EmbedProgress, FeatureRequest, Features, Rows,
    Share, ShareReport, DEFAULT_CHUNK_ROWS,
};
pub use registry::{resolve, ModelSource, WeightFormat, BUILTIN};

/// The device to compute on: `W2S_DEVICE` (`cpu`, `cuda`, `cuda:N`) when set; otherwise the
/// first CUDA GPU when built with `cuda` and one is present, else the CPU.
pub fn default_device() -> candle_core::Device {
    let wanted = std::env::var("W2S_DEVICE").unwrap_or_default();
    if wanted == "cpu" {
        return candle_core::Device::Cpu;
    }
    #[cfg(feature = "cuda")]
    {
        let ordinal = wanted
            .strip_prefix("cuda:")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if let Ok(d) = candle_core::Device::new_cuda(ordinal) {
            return d;
        }
    }
    if !wanted.is_empty() {
        tracing::warn!(
            "W2S_DEVICE={wanted} is not available in this build or on this machine; using the CPU"
        );
    }
    candle_core::Device::Cpu
}
