//! Reading a checkpoint's tensors, whatever the file layout, and handing each one to the model
//! either as a frozen tensor in the chosen dtype or as a trainable f32 variable.
//!
//! - safetensors: one `model.safetensors`, or shards listed by `model.safetensors.index.json`
//!   (memory-mapped; f32, f16 and bf16 are converted on load);
//! - GGUF: every tensor dequantised to f32 under Hugging Face names (`gguf.rs`).
//!
//! Checkpoints name the model root differently (`model.`, `transformer.`, `gpt_neox.`, `bert.` or
//! nothing, depending on which HF class saved them); the root is found from the architecture's
//! embedding tensor.
use crate::error::{ModelError, Result};
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The raw tensors of a checkpoint and the names they go by.
pub struct Checkpoint {
    raw: VarBuilder<'static>,
    names: Vec<String>,
    /// The files they came from (for errors).
    pub files: Vec<PathBuf>,
}

impl Checkpoint {
    /// Memory-maps safetensors files (one, or all shards of a model).
    pub fn safetensors(files: &[PathBuf], device: &Device) -> Result<Checkpoint> {
        for f in files {
            check_safetensors_header(f)?;
        }
        // SAFETY: the files are not written while mapped: w2s replaces cached files only by
        // renaming whole files, and a user's model folder is read-only input.
        let st = unsafe { MmapedSafetensors::multi(files) }.map_err(|e| ModelError::Config {
            path: files.first().cloned().unwrap_or_default(),
            reason: format!("not a readable safetensors file: {e}"),
        })?;
        let names = st.tensors().into_iter().map(|(n, _)| n).collect();
        Ok(Checkpoint {
            raw: VarBuilder::from_backend(Box::new(st), DType::F32, device.clone()),
            names,
            files: files.to_vec(),
        })
    }

    /// Tensors already in memory (a dequantised GGUF file).
    pub fn tensors(tensors: HashMap<String, Tensor>, file: &Path, device: &Device) -> Checkpoint {
        let names = tensors.keys().cloned().collect();
        Checkpoint {
            raw: VarBuilder::from_tensors(tensors, DType::F32, device),
            names,
            files: vec![file.to_path_buf()],
        }
    }

    /// Every tensor name.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The model root: the prefix (without its dot) under which `embedding` is stored, shortest
    /// first (`""` when stored bare).
    pub fn root(&self, embedding: &str) -> Result<String> {
        let mut roots: Vec<&str> = self
            .names
            .iter()
            .filter_map(|n| n.strip_suffix(embedding))
            .filter(|p| p.is_empty() || p.ends_with('.'))
            .map(|p| p.trim_end_matches('.'))
            .collect();
        roots.sort_by_key(|p| p.len());
        roots
            .first()
            .map(|p| p.to_string())
            .ok_or_else(|| ModelError::Config {
                path: self.files.first().cloned().unwrap_or_default(),
                reason: format!(
                    "no tensor named *{embedding}: the weights do not match the architecture in config.json{}",
                    self.sample_names()
                ),
            })
    }

    fn sample_names(&self) -> String {
        let mut some: Vec<&String> = self.names.iter().collect();
        some.sort();
        some.truncate(4);
        if some.is_empty() {
            " (the file holds no tensors)".into()
        } else {
            format!(" (it holds e.g. {some:?})")
        }
    }

    /// The number of layers: one more than the largest N of `{root}.{layer_prefix}.N.*`.
    pub fn layer_count(&self, root: &str, layer_prefix: &str) -> usize {
        let prefix = join(root, layer_prefix);
        self.names
            .iter()
            .filter_map(|n| crate::arch::layer_of(n, &prefix))
            .max()
            .map_or(0, |m| m + 1)
    }
}

fn join(root: &str, name: &str) -> String {
    if root.is_empty() {
        name.to_string()
    } else {
        format!("{root}.{name}")
    }
}

/// Reads a safetensors header up front, so that a truncated or garbage file is reported with
/// its path and a reason instead of a mapping error.
fn check_safetensors_header(path: &Path) -> Result<()> {
    use std::io::Read;
    let err = |reason: String| ModelError::Config {
        path: path.to_path_buf(),
        reason,
    };
    let mut f = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let size = f.metadata().map_err(|e| err(e.to_string()))?.len();
    let mut len = [0u8; 8];
    f.read_exact(&mut len)
        .map_err(|_| err("not a safetensors file: shorter than its 8-byte header length".into()))?;
    let n = u64::from_le_bytes(len);
    if n == 0 || n > size.saturating_sub(8) || n > 100_000_000 {
        return Err(err(format!(
            "not a safetensors file: header length {n} does not fit the file's {size} bytes"
        )));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header)
        .map_err(|e| err(format!("reading the header: {e}")))?;
    let value: serde_json::Value = serde_json::from_slice(&header)
        .map_err(|e| err(format!("not a safetensors file: header is not JSON ({e})")))?;
    // Every tensor's data must lie inside the file: catches a file cut short.
    let end = value
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(_, v)| v.get("data_offsets")?.get(1)?.as_u64())
        .max()
        .unwrap_or(0);
    if 8 + n + end > size {
        return Err(err(format!(
            "truncated: tensors need {} bytes, the file has {size}",
            8 + n + end
        )));
    }
    Ok(())
}

/// The shards of a sharded checkpoint, from `model.safetensors.index.json` (in order, each once).
pub fn shards_of_index(index: &Path) -> Result<Vec<PathBuf>> {
    let err = |reason: String| ModelError::Config {
        path: index.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(index).map_err(|e| err(e.to_string()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| err(format!("not valid JSON: {e}")))?;
    let map = value
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| err("no \"weight_map\" object".into()))?;
    let dir = index.parent().unwrap_or(Path::new("."));
    let mut files: Vec<String> = map
        .values()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| err(format!("weight_map value {v} is not a file name")))
        })
        .collect::<Result<_>>()?;
    files.sort();
    files.dedup();
    let paths: Vec<PathBuf> = files.iter().map(|f| dir.join(f)).collect();
    if let Some(missing) = paths.iter().find(|p| !p.is_file()) {
        return Err(err(format!("shard {} is missing", missing.display())));
    }
    if paths.is_empty() {
        return Err(err("weight_map lists no shard".into()));
    }
    Ok(paths)
}

/// Which tensors become trainable f32 variables (the rest are frozen, in the frozen dtype).
pub type TrainedPredicate = Box<dyn Fn(&str) -> bool + Send + Sync>;

/// A VarBuilder backend over a checkpoint: trained tensors become variables of `varmap` (f32,
/// whatever the file stores), the others frozen tensors in `frozen_dtype`. Every tensor handed
/// out is remembered, so the model can be rebuilt later without reading the files again.
pub struct Loader {
    raw: VarBuilder<'static>,
    root: String,
    frozen_dtype: DType,
    trained: Option<(VarMap, TrainedPredicate)>,
    handed_out: Arc<Mutex<HashMap<String, Tensor>>>,
}

impl Loader {
    /// A loader of `checkpoint` below `root`.
    pub fn new(
        checkpoint: &Checkpoint,
        root: String,
        frozen_dtype: DType,
        trained: Option<(VarMap, TrainedPredicate)>,
    ) -> Loader {
        Loader {
            raw: checkpoint.raw.clone(),
            root,
            frozen_dtype,
            trained,
            handed_out: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The map every tensor handed out is recorded in.
    pub fn handed_out(&self) -> Arc<Mutex<HashMap<String, Tensor>>> {
        self.handed_out.clone()
    }

    fn record(&self, name: &str, t: &Tensor) {
        self.handed_out
            .lock()
            .expect("tensor record lock")
            .insert(name.to_string(), t.clone());
    }
}

impl SimpleBackend for Loader {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        _: Init,
        _dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let file_name = join(&self.root, name);
        if let Some((varmap, is_trained)) = &self.trained {
            if is_trained(name) {
                let mut vars = varmap.data().lock().expect("var map lock");
                let var = match vars.get(name) {
                    Some(v) => v.clone(),
                    None => {
                        let t = self.raw.get_with_hints_dtype(
                            shape.clone(),
                            &file_name,
                            Init::Const(0.0),
                            DType::F32,
                        )?;
                        let v = Var::from_tensor(&t.to_device(dev)?)?;
                        vars.insert(name.to_string(), v.clone());
                        v
                    }
                };
                self.record(name, var.as_tensor());
                return Ok(var.as_tensor().clone());
            }
        }
        let t = self
            .raw
            .get_with_hints_dtype(shape, &file_name, Init::Const(0.0), self.frozen_dtype)?
            .to_device(dev)?;
        self.record(name, &t);
        Ok(t)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.raw
            .get_unchecked_dtype(&join(&self.root, name), dtype)?
            .to_device(dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.raw.contains_tensor(&join(&self.root, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_are_found_from_the_embedding() {
        let dev = Device::Cpu;
        let t = Tensor::zeros(1, DType::F32, &dev).unwrap();
        let ck = |names: &[&str]| {
            Checkpoint::tensors(
                names.iter().map(|n| (n.to_string(), t.clone())).collect(),
                Path::new("x.safetensors"),
                &dev,
            )
        };
        assert_eq!(
            ck(&["wte.weight", "h.0.ln_1.weight"])
                .root("wte.weight")
                .unwrap(),
            ""
        );
        assert_eq!(
            ck(&["transformer.wte.weight", "lm_head.weight"])
                .root("wte.weight")
                .unwrap(),
            "transformer"
        );
        assert_eq!(
            ck(&["gpt_neox.embed_in.weight", "embed_out.weight"])
                .root("embed_in.weight")
                .unwrap(),
            "gpt_neox"
        );
        // "xembed_in.weight" is not the embedding under root "x".
        let err = ck(&["xembed_in.weight"])
            .root("embed_in.weight")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("embed_in.weight") && err.contains("x.safetensors"),
            "{err}"
        );
        assert_eq!(
            ck(&[
                "model.layers.0.a",
                "model.layers.11.a",
                "model.embed_tokens.weight"
            ])
            .layer_count("model", "layers"),
            12
        );
    }

    #[test]
    fn garbage_and_truncated_safetensors_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("model.safetensors");
        std::fs::write(&garbage, b"not a safetensors file at all").unwrap();
        let err = check_safetensors_header(&garbage).unwrap_err().to_string();
        assert!(
            err.contains("model.safetensors") && err.contains("header"),
            "{err}"
        );
        let t = Tensor::arange(0f32, 64., &Device::Cpu).unwrap();
        let good = dir.path().join("good.safetensors");
        t.save_safetensors("w", &good).unwrap();
        check_safetensors_header(&good).unwrap();
        let bytes = std::fs::read(&good).unwrap();
        let cut = dir.path().join("cut.safetensors");
        std::fs::write(&cut, &bytes[..bytes.len() - 10]).unwrap();
        let err = check_safetensors_header(&cut).unwrap_err().to_string();
        assert!(
            err.contains("cut.safetensors") && err.contains("truncated"),
            "{err}"
        );
    }
}
