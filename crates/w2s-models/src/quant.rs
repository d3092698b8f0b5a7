//! Products on a GGUF file's quantized weights, timed: the measurement behind the choice of f32
//! for frozen decoders (`w2s bench qmatmul`). candle's k-quant CPU kernels quantize the
//! activations to 8-bit blocks and take block dot products, tiled over rows and four columns.
use crate::error::{CandleContext, ModelError, Result};
use candle_core::quantized::QMatMul;
use candle_core::{Device, Module, Tensor};
use std::path::Path;
use std::time::Instant;

/// One weight's quantized product.
#[derive(Debug, Clone)]
pub struct QuantProduct {
    /// The GGUF tensor.
    pub name: String,
    /// Its quantization (`Q4K`, `Q6K`, ...).
    pub dtype: String,
    /// `(rows, out, in)`.
    pub shape: (usize, usize, usize),
    /// Median seconds of one product on the quantized weights.
    pub seconds: f64,
    /// `‖y_quantized − y_f32‖ / ‖y_f32‖`, against f32 activations times the dequantized weights.
    pub rel_error: f64,
    /// Median seconds of the same product through w2s's int8 kernel ([`w2s_kernels::int8`]).
    pub int8_seconds: f64,
    /// Its relative error, as `rel_error`.
    pub int8_rel_error: f64,
    /// Share of the weight's values that w2s's int8 packing reproduces exactly.
    pub int8_exact: f64,
}

/// Activations of a plausible scale without a pattern the kernels could shortcut on.
fn activations(rows: usize, k: usize) -> candle_core::Result<Tensor> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let v: Vec<f32> = (0..rows * k)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 4.0
        })
        .collect();
    Tensor::from_vec(v, (rows, k), &Device::Cpu)
}

/// Median seconds of `steps` calls of `product` (at least one); the caller has run it once
/// already, which is the warm-up.
fn median_seconds(
    steps: usize,
    mut product: impl FnMut() -> candle_core::Result<()>,
) -> candle_core::Result<f64> {
    let mut times = Vec::with_capacity(steps.max(1));
    for _ in 0..steps.max(1) {
        let t = Instant::now();
        product()?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// `‖got − reference‖ / ‖reference‖`, summed in f64.
fn relative_error(got: &[f32], reference: &[f32]) -> f64 {
    let (mut diff, mut norm) = (0f64, 0f64);
    for (a, b) in got.iter().zip(reference) {
        diff += (f64::from(*a) - f64::from(*b)).powi(2);
        norm += f64::from(*b).powi(2);
    }
    (diff / norm).sqrt()
}

/// w2s's int8 product of `x` and the dequantized `w` on the best kernel: median seconds of
/// `steps` after a warm-up, relative error against `reference` (the f32 product), and the share
/// of `w`'s values the packing reproduces exactly.
fn int8_product(
    x: &Tensor,
    w: &Tensor,
    reference: &[f32],
    steps: usize,
) -> candle_core::Result<(f64, f64, f64)> {
    use w2s_kernels::int8;
    let (n, k) = w.dims2()?;
    let ws = w.flatten_all()?.to_vec1::<f32>()?;
    let xs = x.flatten_all()?.to_vec1::<f32>()?;
    let packed = int8::PackedWeight::pack(&ws, n, k, k, 1);
    let exact = (0..n * k)
        .filter(|&i| {
            let (q, d) = packed.get(i / k, i % k);
            f32::from(q) * d == ws[i]
        })
        .count() as f64
        / (n * k).max(1) as f64;
    let kernel = int8::best_kernel();
    let mut y = vec![0f32; reference.len()];
    int8::matmul(kernel, &xs, &packed, &mut y, &|_| {});
    let error = relative_error(&y, reference);
    let seconds = median_seconds(steps, || {
        int8::matmul(kernel, &xs, &packed, &mut y, &|_| {});
        Ok(())
    })?;
    Ok((seconds, error, exact))
}

/// Times every 2-D weight of the first layer of the GGUF file at `path` on `rows` activation
/// rows, `steps` times each (the median counts), after one warm-up product.
pub fn layer_products(path: &Path, rows: usize, steps: usize) -> Result<Vec<QuantProduct>> {
    let bad = |reason: String| ModelError::Config {
        path: path.to_path_buf(),
        reason,
    };
    let mut file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let content = crate::gguf::read_content(&mut file).map_err(bad)?;
    let mut names: Vec<&String> = content
        .tensor_infos
        .iter()
        .filter(|(n, info)| {
            n.starts_with("blk.0.") && n.ends_with(".weight") && info.shape.rank() == 2
        })
        .map(|(n, _)| n)
        .collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let what = format!("{name} of {}", path.display());
        let q = content
            .tensor(&mut file, name, &Device::Cpu)
            .context(what.clone())?;
        let dtype = format!("{:?}", q.dtype());
        let (n, k) = q.shape().dims2().context(what.clone())?;
        let w = q.dequantize(&Device::Cpu).context(what.clone())?;
        let x = activations(rows, k).context(what.clone())?;
        let qm = QMatMul::from_qtensor(q).context(what.clone())?;
        // The f32 product both quantized paths are measured against, computed once.
        let flat = |t: candle_core::Result<Tensor>| t?.flatten_all()?.to_vec1::<f32>();
        let reference = flat(w.t().and_then(|wt| x.matmul(&wt))).context(what.clone())?;
        let got = flat(qm.forward(&x)).context(what.clone())?;
        let rel_error = relative_error(&got, &reference);
        let seconds = median_seconds(steps, || qm.forward(&x).map(|_| ())).context(what.clone())?;
        let int8 = int8_product(&x, &w, &reference, steps).context(what.clone())?;
        out.push(QuantProduct {
            name: name.clone(),
            dtype,
            shape: (rows, n, k),
            seconds,
            rel_error,
            int8_seconds: int8.0,
            int8_rel_error: int8.1,
            int8_exact: int8.2,
        });
    }
    Ok(out)
}
