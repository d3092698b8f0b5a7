//! Pretrained encoders written for training, their tokenizers, pooling and cached features.
//!
//! The backbones are our own code (in the style of candle-transformers: one file per
//! architecture, a `Config` from HF `config.json`, `load` + `forward`) because candle's fused
//! norms and softmax have no backward pass; see [`nn`].
pub mod bert;
pub mod decoder;
pub mod encoder;
pub mod error;
pub mod features;
pub mod gguf;
pub mod mpnet;
pub mod nn;
pub mod registry;
pub mod tokenize;

pub use encoder::{mean_pool, Encoder};
pub use error::{ModelError, Result};
pub use features::{cached_features, FeatureRequest, Features};
pub use registry::{resolve, Arch, ModelSource, BUILTIN};

/// The device to compute on: the first CUDA GPU when built with `cuda` and one is present, else CPU.
pub fn default_device() -> candle_core::Device {
    #[cfg(feature = "cuda")]
    if let Ok(d) = candle_core::Device::new_cuda(0) {
        return d;
    }
    candle_core::Device::Cpu
}
