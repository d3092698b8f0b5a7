//! `--dtype`: the precision of frozen weights and of the forward pass.
use candle_core::DType;
use serde::{Deserialize, Serialize};

/// Precision of frozen weights (probe features, frozen layers, LoRA's base) and of the forward
/// pass. Trained weights and optimizer state stay f32 whatever this says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum WeightDtype {
    /// 32-bit floats (the CPU default).
    #[default]
    F32,
    /// bfloat16.
    Bf16,
    /// IEEE half precision.
    F16,
}

impl WeightDtype {
    /// The candle dtype.
    pub fn candle(&self) -> DType {
        match self {
            WeightDtype::F32 => DType::F32,
            WeightDtype::Bf16 => DType::BF16,
            WeightDtype::F16 => DType::F16,
        }
    }

    /// Command-line name.
    pub fn name(&self) -> &'static str {
        match self {
            WeightDtype::F32 => "f32",
            WeightDtype::Bf16 => "bf16",
            WeightDtype::F16 => "f16",
        }
    }

    /// Parses a command-line name.
    pub fn parse(s: &str) -> Option<WeightDtype> {
        match s {
            "f32" => Some(WeightDtype::F32),
            "bf16" => Some(WeightDtype::Bf16),
            "f16" => Some(WeightDtype::F16),
            _ => None,
        }
    }

    /// True for the default, which cache and store keys leave out (keys made before `--dtype`
    /// existed stay valid).
    pub fn is_default(&self) -> bool {
        *self == WeightDtype::F32
    }
}
