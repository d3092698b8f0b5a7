//! Errors of model loading and feature extraction.
use std::path::PathBuf;

/// What can go wrong while loading a model or computing features.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A tensor operation failed (shape mismatch, missing weight, ...).
    #[error("{context}: {source}")]
    Candle {
        context: String,
        #[source]
        source: candle_core::Error,
    },
    /// The asset layer failed (not fetched, checksum, ...).
    #[error(transparent)]
    Asset(#[from] w2s_assets::AssetError),
    /// The tokenizer could not be loaded or failed on a text.
    #[error("tokenizer {path}: {reason}")]
    Tokenizer { path: PathBuf, reason: String },
    /// config.json is missing a field or names an unsupported architecture.
    #[error("model config {path}: {reason}")]
    Config { path: PathBuf, reason: String },
    /// Neither a built-in model name nor a model folder.
    #[error("unknown model '{0}': use a built-in name (w2s fetch --list), hf:ORG/NAME from the local Hugging Face cache, a folder with config.json, model.safetensors (or shards) and tokenizer.json, or a .gguf file (Llama, Qwen2, Gemma3)")]
    UnknownModel(String),
    /// An `hf:` reference that the local Hugging Face cache does not hold.
    #[error("model {model} is not in the Hugging Face cache: {reason}")]
    NotInHfCache {
        /// The reference as given.
        model: String,
        /// What was looked for, and where.
        reason: String,
    },
    /// A model folder holds only PyTorch pickles, which w2s never unpickles.
    #[error("model folder {dir}: found {found} but no model.safetensors; w2s reads safetensors only (it never unpickles). Convert once with: python -c \"from transformers import AutoModel; AutoModel.from_pretrained('{dir}').save_pretrained('{dir}', safe_serialization=True)\"")]
    NeedsSafetensors {
        /// The folder.
        dir: PathBuf,
        /// The pickle file(s) found.
        found: String,
    },
    /// A cached feature file could not be read or written.
    #[error("feature cache {path}: {reason}")]
    Cache { path: PathBuf, reason: String },
}

/// Result alias for this crate.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;

/// Adds context to candle errors.
pub trait CandleContext<T> {
    /// Wraps the error with a description of what was being done.
    fn context(self, what: impl Into<String>) -> Result<T>;
}

impl<T> CandleContext<T> for candle_core::Result<T> {
    fn context(self, what: impl Into<String>) -> Result<T> {
        self.map_err(|source| ModelError::Candle {
            context: what.into(),
            source,
        })
    }
}
