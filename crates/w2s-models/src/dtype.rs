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
    /// 8-bit integer products of frozen weights on the CPU: the weights in blocks of 32 with a
    /// scale each (a GGUF file's Q8_0, Q5_0 and Q4_0 blocks exactly), activations quantized per
    /// block per product, exact int32 dot products ([`w2s_kernels::int8`]). Everything else, and
    /// trained weights, stays f32. Elsewhere than a CPU: f32.
    Int8,
}

impl WeightDtype {
    /// Every dtype, in the order help texts list them.
    pub const ALL: [WeightDtype; 4] = [
        WeightDtype::F32,
        WeightDtype::Bf16,
        WeightDtype::F16,
        WeightDtype::Int8,
    ];

    /// The command-line names of [`WeightDtype::ALL`].
    pub const NAMES: [&'static str; 4] = ["f32", "bf16", "f16", "int8"];

    /// The candle dtype the weights are held in (int8 products keep f32 weights and pack them).
    pub fn candle(&self) -> DType {
        match self {
            WeightDtype::F32 | WeightDtype::Int8 => DType::F32,
            WeightDtype::Bf16 => DType::BF16,
            WeightDtype::F16 => DType::F16,
        }
    }

    /// The dtype weights load in on `device`. bf16 on a CPU with AMX or AVX512-BF16 loads f32 and
    /// turns on [`w2s_kernels::bf16`]'s products for frozen weights (the norms, softmax and
    /// activations then stay on the fused f32 kernels, as under autocast); elsewhere it is
    /// [`WeightDtype::candle`]. The switch is process-wide: one process computes in one dtype.
    pub fn load_dtype(&self, device: &Device) -> DType {
        let int8_products = self.int8_products_on(device).is_some();
        if let Some(kernel) = w2s_kernels::int8::set_active(int8_products) {
            warn_if_portable(kernel);
        }
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

    /// The int8 kernel that [`WeightDtype::load_dtype`] would run products on, or `None` where
    /// this dtype is not int8 or the device not a CPU.
    pub fn int8_products_on(&self, device: &Device) -> Option<&'static str> {
        (*self == WeightDtype::Int8 && device.is_cpu())
            .then(|| w2s_kernels::int8::best_kernel().name())
    }

    /// Command-line name.
    pub fn name(&self) -> &'static str {
        let i = Self::ALL.iter().position(|d| d == self).unwrap_or(0);
        Self::NAMES[i]
    }

    /// Parses a command-line name.
    pub fn parse(s: &str) -> Option<WeightDtype> {
        let i = Self::NAMES.iter().position(|n| *n == s)?;
        Some(Self::ALL[i])
    }

    /// True for the default, which cache and store keys leave out (keys made before `--dtype`
    /// existed stay valid).
    pub fn is_default(&self) -> bool {
        *self == WeightDtype::F32
    }
}

/// Warns, once per process, when int8 products run on the portable kernel: a CPU without AVX-512
/// VNNI gets the same numbers, far slower than f32.
fn warn_if_portable(kernel: w2s_kernels::int8::Kernel) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    if kernel == w2s_kernels::int8::Kernel::Portable {
        WARNED.call_once(|| {
            tracing::warn!(
                "--dtype int8: this CPU has no AVX-512 VNNI, so the 8-bit products run on the \
                 portable kernel: the same numbers as on a VNNI CPU, about 50x slower than \
                 --dtype f32 (docs/performance.md)"
            );
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_match_serde() {
        for (d, name) in WeightDtype::ALL.iter().zip(WeightDtype::NAMES) {
            assert_eq!(d.name(), name);
            assert_eq!(WeightDtype::parse(name), Some(*d));
            assert_eq!(serde_json::to_value(d).unwrap(), serde_json::json!(name));
        }
        assert_eq!(WeightDtype::parse("f8"), None);
    }
}
