//! `--dtype bf16` probe features stay within bf16's rounding of the f32 ones, on real rows of the
//! demo's dataset, for two encoders and a decoder. Where the CPU has AMX or AVX512-BF16 this is
//! the f32 forward with bf16 products of the frozen weights; elsewhere candle's forward in bf16.
//! Its own test binary: it flips the process-wide bf16 switch.
mod common;

use candle_core::{DType, Device};
use w2s_models::WeightDtype;

#[test]
fn bf16_features_are_within_bf16_rounding_of_f32() {
    let dev = Device::Cpu;
    let path = match WeightDtype::Bf16.bf16_products_on(&dev) {
        Some(kernel) => format!("f32 forward, bf16 products on {kernel}"),
        None => "candle's bf16 forward".to_string(),
    };
    // The switch follows the dtype: on for bf16 where the CPU has a kernel, off for f32.
    assert_eq!(
        WeightDtype::Bf16.load_dtype(&dev) == DType::F32,
        WeightDtype::Bf16.bf16_products_on(&dev).is_some()
    );
    assert_eq!(WeightDtype::F32.load_dtype(&dev), DType::F32);
    assert!(w2s_kernels::bf16::active().is_none());
    let tweets = common::tweets(16);
    let texts: Vec<&str> = tweets.iter().map(String::as_str).collect();
    for model in ["minilm-l3", "mpnet-base", "smollm2-135m"] {
        let (f32s, width) = common::features_in(model, &texts, WeightDtype::F32);
        let (bf16s, _) = common::features_in(model, &texts, WeightDtype::Bf16);
        assert_ne!(f32s, bf16s, "{model}: bf16 gave the f32 features exactly");
        let worst = f32s
            .chunks(width)
            .zip(bf16s.chunks(width))
            .map(|(a, b)| common::cosine(a, b))
            .fold(1f64, f64::min);
        eprintln!("{model} ({path}): lowest per-row cosine to f32 {worst:.6}");
        // bf16 keeps 8 bits of mantissa: a 2⁻⁹ relative error per rounding, averaged over
        // hundreds of terms per product; 0.999 leaves room for a dozen layers of it.
        assert!(worst > 0.999, "{model}: a row's cosine to f32 is {worst}");
    }
}
