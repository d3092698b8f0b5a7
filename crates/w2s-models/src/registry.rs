//! Which models exist: the built-in ladder (fetched as assets) and user folders.
use crate::arch::{architecture, ConfigFile, Pooling};
use crate::error::{ModelError, Result};
use std::path::{Path, PathBuf};
use w2s_assets::Store;

/// How a model's weights are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    /// A Hugging Face folder: config.json, safetensors (one file or shards), tokenizer.json.
    Safetensors,
    /// One llama.cpp GGUF file holding weights, config and tokenizer (Llama, Qwen2, Gemma3).
    Gguf,
}

/// A built-in model of the ladder.
#[derive(Debug, Clone, Copy)]
pub struct BuiltinModel {
    /// Command-line name (also the asset name).
    pub name: &'static str,
    /// How the weights are stored.
    pub format: WeightFormat,
    /// Text put before every input, as the model card prescribes.
    pub prefix: &'static str,
    /// Parameters, for display and plots.
    pub params_millions: f64,
}

/// The built-in models: the encoder ladder weakest first, then the GGUF decoders.
pub const BUILTIN: [BuiltinModel; 8] = [
    BuiltinModel {
        name: "minilm-l3",
        format: WeightFormat::Safetensors,
        prefix: "",
        params_millions: 17.4,
    },
    BuiltinModel {
        name: "minilm-l6",
        format: WeightFormat::Safetensors,
        prefix: "",
        params_millions: 22.7,
    },
    BuiltinModel {
        name: "e5-small",
        format: WeightFormat::Safetensors,
        prefix: "query: ",
        params_millions: 117.7,
    },
    BuiltinModel {
        name: "mpnet-base",
        format: WeightFormat::Safetensors,
        prefix: "",
        params_millions: 109.5,
    },
    BuiltinModel {
        name: "smollm2-135m",
        format: WeightFormat::Gguf,
        prefix: "",
        params_millions: 134.5,
    },
    BuiltinModel {
        name: "gemma3-270m",
        format: WeightFormat::Gguf,
        prefix: "",
        params_millions: 268.1,
    },
    BuiltinModel {
        name: "qwen2.5-coder-0.5b",
        format: WeightFormat::Gguf,
        prefix: "",
        params_millions: 494.0,
    },
    BuiltinModel {
        name: "qwen2.5-coder-1.5b",
        format: WeightFormat::Gguf,
        prefix: "",
        params_millions: 1543.7,
    },
];

/// Where a model's files are and how to read them.
#[derive(Debug, Clone)]
pub struct ModelSource {
    /// Name used in cache keys and reports (built-in name, `hf:ORG/NAME`, or the path).
    pub name: String,
    /// How the weights are stored.
    pub format: WeightFormat,
    /// `config.json`'s `model_type` (for GGUF files: the matching HF type).
    pub model_type: String,
    /// How sentences are pooled.
    pub pooling: Pooling,
    /// Input prefix.
    pub prefix: String,
    /// The model folder, or the GGUF file itself.
    pub location: PathBuf,
    /// config.json (the GGUF file itself for GGUF decoders).
    pub config: PathBuf,
    /// model.safetensors, its shards, or model.gguf (checksum-verified for built-in models).
    pub weights: Vec<PathBuf>,
    /// tokenizer.json (the GGUF file itself for GGUF decoders).
    pub tokenizer: PathBuf,
    /// Identity of the weights for cache keys: the pinned sha256 for built-in models; for user
    /// models a hash of config.json and of each weight file's Hugging Face blob name (its
    /// sha256) or, outside the HF cache, its size and modification time.
    pub fingerprint: String,
}

impl ModelSource {
    /// A decoder in one GGUF file, which holds its weights, config and tokenizer alike.
    fn gguf(name: String, file: PathBuf, fingerprint: String) -> Result<ModelSource> {
        let model_type = crate::gguf::hf_model_type(&file)?.to_string();
        Ok(ModelSource {
            name,
            format: WeightFormat::Gguf,
            model_type,
            pooling: Pooling::LastToken,
            prefix: String::new(),
            location: file.clone(),
            config: file.clone(),
            tokenizer: file.clone(),
            weights: vec![file],
            fingerprint,
        })
    }
}

/// Resolves a built-in name (fetching it if needed), `hf:ORG/NAME` from the local Hugging Face
/// cache, a model folder, or a `.gguf` file.
pub fn resolve(name_or_path: &str, store: &Store) -> Result<ModelSource> {
    if let Some(b) = BUILTIN.iter().find(|b| b.name == name_or_path) {
        store.ensure(b.name)?;
        let asset = store.manifest().asset(b.name)?;
        if b.format == WeightFormat::Gguf {
            let weights = store.verified_file(b.name, "model.gguf")?;
            let fingerprint = asset.files.get("model.gguf").cloned().unwrap_or_default();
            return ModelSource::gguf(b.name.to_string(), weights, fingerprint);
        }
        // Checksums first; then the asset folder reads like any HF folder, keeping the pinned
        // identity and the model card's input prefix.
        let weights = store.verified_file(b.name, "model.safetensors")?;
        for f in ["config.json", "tokenizer.json"] {
            store.verified_file(b.name, f)?;
        }
        let dir = weights.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut source = folder(&dir, b.name.to_string())?;
        source.prefix = b.prefix.to_string();
        source.fingerprint = asset
            .files
            .get("model.safetensors")
            .cloned()
            .unwrap_or_default();
        return Ok(source);
    }
    if let Some(reference) = name_or_path.strip_prefix(crate::hub::PREFIX) {
        let dir = crate::hub::snapshot(reference, &crate::hub::cache_dir())?;
        return folder(&dir, name_or_path.to_string());
    }
    let path = Path::new(name_or_path);
    if path.is_file() && path.extension().is_some_and(|e| e == "gguf") {
        let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        return ModelSource::gguf(
            canonical.display().to_string(),
            path.to_path_buf(),
            size_and_mtime(path)?,
        );
    }
    if !path.is_dir() {
        return Err(ModelError::UnknownModel(name_or_path.to_string()));
    }
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    folder(path, canonical.display().to_string())
}

/// A Hugging Face model folder (a snapshot of the HF cache or any `save_pretrained` output).
fn folder(dir: &Path, name: String) -> Result<ModelSource> {
    let config = dir.join("config.json");
    let tokenizer = dir.join("tokenizer.json");
    let single = dir.join("model.safetensors");
    let index = dir.join("model.safetensors.index.json");
    let weights = if single.is_file() {
        vec![single]
    } else if index.is_file() {
        crate::weights::shards_of_index(&index)?
    } else {
        let pickles: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".bin") || n.ends_with(".pt") || n.ends_with(".pth"))
                    .collect()
            })
            .unwrap_or_default();
        if !pickles.is_empty() {
            return Err(ModelError::NeedsSafetensors {
                dir: dir.to_path_buf(),
                found: pickles.join(", "),
            });
        }
        return Err(ModelError::Config {
            path: single,
            reason: "missing (and no model.safetensors.index.json for shards); a model folder needs config.json, safetensors weights and tokenizer.json".into(),
        });
    };
    for f in [&config, &tokenizer] {
        if !f.is_file() {
            return Err(ModelError::Config {
                path: f.clone(),
                reason: "missing; a model folder needs config.json, safetensors weights and tokenizer.json (a slow tokenizer can be converted once with transformers: AutoTokenizer.from_pretrained(dir).save_pretrained(dir))".into(),
            });
        }
    }
    let cfg = ConfigFile::read(&config)?;
    let model_type = cfg.model_type()?.to_string();
    let arch = architecture(&model_type, &config)?;
    let fingerprint = fingerprint(&config, &weights)?;
    Ok(ModelSource {
        name,
        format: WeightFormat::Safetensors,
        model_type,
        pooling: arch.pooling(),
        prefix: String::new(),
        location: dir.to_path_buf(),
        config,
        weights,
        tokenizer,
        fingerprint,
    })
}

/// Identity of a user model: config.json's bytes and each weight file's identity (the HF blob
/// name, which is the file's sha256, when the file links into an HF cache; else size + mtime).
pub(crate) fn fingerprint(config: &Path, weights: &[PathBuf]) -> Result<String> {
    let mut desc = String::new();
    let bytes = std::fs::read(config).map_err(|e| ModelError::Config {
        path: config.to_path_buf(),
        reason: e.to_string(),
    })?;
    desc.push_str(&w2s_assets::cache::sha256_bytes(&bytes));
    for w in weights {
        desc.push('|');
        match std::fs::read_link(w)
            .ok()
            .filter(|t| t.components().any(|c| c.as_os_str() == "blobs"))
        {
            Some(target) => {
                desc.push_str(&target.file_name().unwrap_or_default().to_string_lossy())
            }
            None => desc.push_str(&size_and_mtime(w)?),
        }
    }
    Ok(w2s_assets::cache::sha256_bytes(desc.as_bytes())[..32].to_string())
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
