//! `--dtype`: the precision of frozen weights and of the forward pass.
use candle_core::{DType, Device};
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

    /// The dtype weights load in on `device`. bf16 on a CPU with AMX or AVX512-BF16 loads f32 and
    /// turns on [`w2s_kernels::bf16`]'s products for frozen weights (the norms, softmax and
    /// activations then stay on the fused f32 kernels, as under autocast); elsewhere it is
    /// [`WeightDtype::candle`]. The switch is process-wide: one process computes in one dtype.
    pub fn load_dtype(&self, device: &Device) -> DType {
        let bf16_products = self.bf16_products_on(device).is_some();
        if let Some(kernel) = w2s_kernels::bf16::set_active(bf16_products) {
            warn_if_slower(kernel);
            DType::F32
        } else {
            self.candle()
        }
    }

    /// The kernel that [`WeightDtype::load_dtype`] would run bf16 products on (`"amx"`,
    /// `"avx512-bf16"`), or `None` where this dtype loads as itself.
    pub fn bf16_products_on(&self, device: &Device) -> Option<&'static str> {
        if *self != WeightDtype::Bf16 || !device.is_cpu() {
            return None;
        }
        w2s_kernels::bf16::best_kernel().map(|k| k.name())
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

/// Warns, once per process, when bf16 products run slower than f32 on this CPU: `--dtype bf16`
/// is asked for speed, and some CPUs give the opposite (see
/// [`w2s_kernels::bf16::slower_than_f32`]).
fn warn_if_slower(kernel: w2s_kernels::bf16::Kernel) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        if let Some((bf16, f32)) = w2s_kernels::bf16::slower_than_f32(kernel) {
            tracing::warn!(
                "--dtype bf16: this CPU's bf16 products ({}) run at {bf16:.0} GFLOP/s against \
                 {f32:.0} for f32 (measured just now), so --dtype f32 is faster here and more precise; \
                 bf16 pays off with AMX or on AMD Zen 4 (docs/performance.md)",
                kernel.name()
            );
        }
    });
}
