//! Which models exist: the built-in ladder (fetched as assets) and user folders.
use crate::error::{ModelError, Result};
use std::path::{Path, PathBuf};
use w2s_assets::Store;

/// Encoder architectures we have trainable code for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// BERT and its relatives (MiniLM, e5).
    Bert,
    /// MPNet.
    MpNet,
    /// A decoder (Llama, Qwen2, Gemma3) in a GGUF file holding weights, config and tokenizer.
    Decoder,
}

/// A built-in model of the ladder.
#[derive(Debug, Clone, Copy)]
pub struct BuiltinModel {
    /// Command-line name (also the asset name).
    pub name: &'static str,
    /// Architecture.
    pub arch: Arch,
    /// Text put before every input, as the model card prescribes.
    pub prefix: &'static str,
    /// Parameters, for display and plots.
    pub params_millions: f64,
}

/// The built-in models: the encoder ladder weakest first, then the GGUF decoders.
pub const BUILTIN: [BuiltinModel; 8] = [
    BuiltinModel {
        name: "minilm-l3",
        arch: Arch::Bert,
        prefix: "",
        params_millions: 17.4,
    },
    BuiltinModel {
        name: "minilm-l6",
        arch: Arch::Bert,
        prefix: "",
        params_millions: 22.7,
    },
    BuiltinModel {
        name: "e5-small",
        arch: Arch::Bert,
        prefix: "query: ",
        params_millions: 117.7,
    },
    BuiltinModel {
        name: "mpnet-base",
        arch: Arch::MpNet,
        prefix: "",
        params_millions: 109.5,
    },
    BuiltinModel {
        name: "smollm2-135m",
        arch: Arch::Decoder,
        prefix: "",
        params_millions: 134.5,
    },
    BuiltinModel {
        name: "gemma3-270m",
        arch: Arch::Decoder,
        prefix: "",
        params_millions: 268.1,
    },
    BuiltinModel {
        name: "qwen2.5-coder-0.5b",
        arch: Arch::Decoder,
        prefix: "",
        params_millions: 494.0,
    },
    BuiltinModel {
        name: "qwen2.5-coder-1.5b",
        arch: Arch::Decoder,
        prefix: "",
        params_millions: 1543.7,
    },
];

/// Where a model's files are and how to read them.
#[derive(Debug, Clone)]
pub struct ModelSource {
    /// Name used in cache keys and reports (built-in name, or the folder path).
    pub name: String,
    /// Architecture from config.json.
    pub arch: Arch,
    /// Input prefix.
    pub prefix: String,
    /// config.json (the GGUF file itself for decoders).
    pub config: PathBuf,
    /// model.safetensors or model.gguf (checksum-verified for built-in models).
    pub weights: PathBuf,
    /// tokenizer.json (the GGUF file itself for decoders).
    pub tokenizer: PathBuf,
    /// Identity of the weights for cache keys: the pinned sha256, or size+mtime for user folders.
    pub fingerprint: String,
}

impl ModelSource {
    /// A decoder in one GGUF file, which holds its weights, config and tokenizer alike.
    fn gguf(name: String, file: PathBuf, fingerprint: String) -> ModelSource {
        ModelSource {
            name,
            arch: Arch::Decoder,
            prefix: String::new(),
            config: file.clone(),
            tokenizer: file.clone(),
            weights: file,
            fingerprint,
        }
    }
}

/// Resolves a built-in name (fetching it if needed) or a model folder.
pub fn resolve(name_or_path: &str, store: &Store) -> Result<ModelSource> {
    if let Some(b) = BUILTIN.iter().find(|b| b.name == name_or_path) {
        store.ensure(b.name)?;
        let asset = store.manifest().asset(b.name)?;
        if b.arch == Arch::Decoder {
            let weights = store.verified_file(b.name, "model.gguf")?;
            let fingerprint = asset.files.get("model.gguf").cloned().unwrap_or_default();
            return Ok(ModelSource::gguf(b.name.to_string(), weights, fingerprint));
        }
        let weights = store.verified_file(b.name, "model.safetensors")?;
        return Ok(ModelSource {
            name: b.name.to_string(),
            arch: b.arch,
            prefix: b.prefix.to_string(),
            config: store.verified_file(b.name, "config.json")?,
            tokenizer: store.verified_file(b.name, "tokenizer.json")?,
            weights,
            fingerprint: asset
                .files
                .get("model.safetensors")
                .cloned()
                .unwrap_or_default(),
        });
    }
    let dir = Path::new(name_or_path);
    if dir.is_file() && dir.extension().is_some_and(|e| e == "gguf") {
        let canonical = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        return Ok(ModelSource::gguf(
            canonical.display().to_string(),
            dir.to_path_buf(),
            size_and_mtime(dir)?,
        ));
    }
    if !dir.is_dir() {
        return Err(ModelError::UnknownModel(name_or_path.to_string()));
    }
    let config = dir.join("config.json");
    let weights = dir.join("model.safetensors");
    let tokenizer = dir.join("tokenizer.json");
    for f in [&config, &weights, &tokenizer] {
        if !f.is_file() {
            return Err(ModelError::Config { path: f.clone(), reason: "missing; a model folder needs config.json, model.safetensors and tokenizer.json".into() });
        }
    }
    let text = std::fs::read_to_string(&config).map_err(|e| ModelError::Config {
        path: config.clone(),
        reason: e.to_string(),
    })?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| ModelError::Config {
        path: config.clone(),
        reason: e.to_string(),
    })?;
    let arch = match value.get("model_type").and_then(|v| v.as_str()) {
        Some("bert") => Arch::Bert,
        Some("mpnet") => Arch::MpNet,
        other => {
            return Err(ModelError::Config {
                path: config.clone(),
                reason: format!("unsupported model_type {other:?}; BERT and MPNet are supported"),
            })
        }
    };
    let canonical = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let fingerprint = size_and_mtime(&weights)?;
    Ok(ModelSource {
        name: canonical.display().to_string(),
        arch,
        prefix: String::new(),
        config,
        weights,
        tokenizer,
        fingerprint,
    })
}

/// Identity of a user's weights file for cache keys: its size and modification time.
fn size_and_mtime(weights: &Path) -> Result<String> {
    let meta = std::fs::metadata(weights).map_err(|e| ModelError::Config {
        path: weights.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Ok(format!("{}-{}", meta.len(), mtime))
}
