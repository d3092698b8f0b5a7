//! The architecture extension point: one [`Architecture`] per file, chosen by `config.json`'s
//! `model_type`, all listed in [`ARCHITECTURES`] (which help text, errors and tests iterate).
//!
//! Adding an architecture is one new file implementing [`Architecture`] (its `Config` struct,
//! `load` + `forward`, built from the blocks in `nn.rs`, `rope.rs` and `decoder.rs`) and one line
//! in [`ARCHITECTURES`].
use crate::error::{ModelError, Result};
use crate::nn::Linear;
use candle_core::Tensor;
use candle_nn::VarBuilder;
use std::path::{Path, PathBuf};

/// How a sentence representation is read off the last hidden states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// The average over real tokens (sentence-transformers' encoders).
    Mean,
    /// The last real token's state: the only position of a causal model that has seen the whole text.
    LastToken,
}

impl Pooling {
    /// Name used in cache keys and docs.
    pub fn name(&self) -> &'static str {
        match self {
            Pooling::Mean => "mean",
            Pooling::LastToken => "last",
        }
    }
}

/// A model's `config.json` (or the HF-style config derived from a GGUF header) and where it came
/// from, so that a bad field is reported with its file.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    /// The parsed JSON object.
    pub value: serde_json::Value,
    /// The file it was read from.
    pub path: PathBuf,
}

impl ConfigFile {
    /// Reads and parses `path`.
    pub fn read(path: &Path) -> Result<ConfigFile> {
        let err = |reason: String| ModelError::Config {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let value = serde_json::from_str(&text).map_err(|e| err(format!("not valid JSON: {e}")))?;
        Ok(ConfigFile {
            value,
            path: path.to_path_buf(),
        })
    }

    /// The `model_type` field.
    pub fn model_type(&self) -> Result<&str> {
        self.value
            .get("model_type")
            .and_then(|v| v.as_str())
            .ok_or_else(|| self.error("no \"model_type\" field"))
    }

    /// The config as an architecture's typed `Config`; a missing or ill-typed field names the file.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_value(self.value.clone()).map_err(|e| self.error(e.to_string()))
    }

    /// An error about this file.
    pub fn error(&self, reason: impl Into<String>) -> ModelError {
        ModelError::Config {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }
}

/// A loaded backbone: token ids in, last hidden states out.
pub trait Backbone: BackboneClone + Send + Sync {
    /// `ids [b, t]` (u32) and `mask [b, t]` (1 = token, 0 = padding) → `[b, t, hidden]` in the
    /// compute dtype (after the final norm for pre-norm models).
    fn forward(&self, ids: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor>;
    /// The linear projections of each layer by short name: what LoRA adapts.
    fn layer_linears_mut(&mut self) -> Vec<Vec<(&'static str, &mut Linear)>>;
}

/// Copies of a boxed backbone, for every backbone that is `Clone`.
pub trait BackboneClone {
    /// A copy sharing the same tensors (cheap: tensors are reference-counted).
    fn boxed_clone(&self) -> Box<dyn Backbone>;
}

impl<T: Backbone + Clone + 'static> BackboneClone for T {
    fn boxed_clone(&self) -> Box<dyn Backbone> {
        Box::new(self.clone())
    }
}

/// One architecture family: how to read its config and build its backbone.
pub trait Architecture: Sync {
    /// The `model_type` values of `config.json` this file reads (the first is its name).
    fn model_types(&self) -> &'static [&'static str];
    /// How sentences are pooled.
    fn pooling(&self) -> Pooling;
    /// The token embedding tensor's name below the model root: finds the root prefix of a
    /// checkpoint (`model.`, `transformer.`, `gpt_neox.`, `bert.`, or none).
    fn embedding_name(&self) -> &'static str;
    /// The prefix of layer N's tensors below the root (`encoder.layer`, `layers`, `h`).
    fn layer_prefix(&self) -> &'static str;
    /// Width of the hidden states.
    fn hidden_size(&self, config: &ConfigFile) -> Result<usize>;
    /// The padding id the model's positions depend on, if any (RoBERTa, MPNet), else `None`.
    fn padding_idx(&self, _config: &ConfigFile) -> Option<u32> {
        None
    }
    /// The longest input the model's position table allows, if it has one (learned positions).
    fn max_tokens(&self, _config: &ConfigFile) -> Option<usize> {
        None
    }
    /// Builds the backbone from its config and weights (`vb` is rooted at the model root; its
    /// dtype is the compute dtype).
    fn load(&self, config: &ConfigFile, vb: VarBuilder) -> Result<Box<dyn Backbone>>;
}

/// Every architecture, encoders first.
pub static ARCHITECTURES: &[&dyn Architecture] = &[
    &crate::bert::BertArch,
    &crate::roberta::RobertaArch,
    &crate::mpnet::MpNetArch,
    &crate::gpt2::Gpt2Arch,
    &crate::gpt_neox::GptNeoXArch,
    &crate::llama::LlamaArch,
    &crate::qwen2::Qwen2Arch,
    &crate::qwen3::Qwen3Arch,
    &crate::gemma3::Gemma3Arch,
];

/// Every supported `model_type`, comma-separated (for errors and help).
pub fn supported_model_types() -> String {
    ARCHITECTURES
        .iter()
        .flat_map(|a| a.model_types().iter().copied())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The architecture reading `model_type`, or an error naming it and the supported ones.
pub fn architecture(model_type: &str, config: &Path) -> Result<&'static dyn Architecture> {
    ARCHITECTURES
        .iter()
        .copied()
        .find(|a| a.model_types().contains(&model_type))
        .ok_or_else(|| ModelError::Config {
            path: config.to_path_buf(),
            reason: format!(
                "unsupported model_type {model_type:?}; supported: {}",
                supported_model_types()
            ),
        })
}

/// The layer index of a tensor named `{layer_prefix}.N.…`.
pub fn layer_of(name: &str, layer_prefix: &str) -> Option<usize> {
    let rest = name.strip_prefix(layer_prefix)?.strip_prefix('.')?;
    rest.split('.').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_types_are_unique_and_found() {
        let mut seen = std::collections::HashSet::new();
        for a in ARCHITECTURES {
            for t in a.model_types() {
                assert!(seen.insert(*t), "{t} registered twice");
                let found = architecture(t, Path::new("config.json")).unwrap();
                assert_eq!(found.model_types(), a.model_types());
            }
        }
        for t in [
            "bert",
            "roberta",
            "xlm-roberta",
            "mpnet",
            "gpt2",
            "gpt_neox",
            "llama",
            "qwen2",
            "qwen3",
            "gemma3_text",
        ] {
            assert!(seen.contains(t), "{t} missing");
        }
        let err = architecture("t5", Path::new("/m/config.json"))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("\"t5\"") && err.contains("gpt_neox") && err.contains("/m/config.json"),
            "{err}"
        );
    }

    #[test]
    fn layer_names() {
        assert_eq!(
            layer_of(
                "encoder.layer.11.attention.self.query.weight",
                "encoder.layer"
            ),
            Some(11)
        );
        assert_eq!(layer_of("h.3.attn.c_attn.weight", "h"), Some(3));
        assert_eq!(layer_of("layers.0.mlp.up_proj.weight", "layers"), Some(0));
        assert_eq!(
            layer_of("embeddings.word_embeddings.weight", "encoder.layer"),
            None
        );
        assert_eq!(layer_of("hx.3.w", "h"), None);
    }
}
