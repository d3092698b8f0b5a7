//! Converters from the formats packages ship into what `w2s-models` loads (HF-style folders).
pub mod archive;
pub mod e5;
pub mod onnx;
mod protobuf;
pub mod torch_legacy;

use crate::error::{AssetError, IoContext, Result};
use std::path::Path;

/// A dense f32 tensor on its way into a safetensors file.
#[derive(Debug, Clone, PartialEq)]
pub struct F32Tensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

/// Writes named f32 tensors as a safetensors file, atomically.
pub fn write_safetensors(path: &Path, tensors: &[(String, F32Tensor)]) -> Result<()> {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(n, t)| {
            (
                n.clone(),
                t.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
                t.shape.clone(),
            )
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(n, b, s)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| AssetError::Convert {
                    asset: String::new(),
                    path: path.to_path_buf(),
                    reason: format!("tensor {n}: {e}"),
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let out = safetensors::serialize(views, None).map_err(|e| AssetError::Convert {
        asset: String::new(),
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    crate::cache::write_atomic(path, &out)
}

/// Writes pretty JSON atomically (keys keep the order of the value).
pub fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let mut text =
        serde_json::to_string_pretty(value).expect("a serde_json::Value always serializes");
    text.push('\n');
    crate::cache::write_atomic(path, text.as_bytes())
}

/// Reads a JSON file.
pub fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).at("cannot read", path)?;
    serde_json::from_str(&text).map_err(|e| AssetError::Convert {
        asset: String::new(),
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}
