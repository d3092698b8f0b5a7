//! The f32 matrix-product peak that MFU is measured against: w2s's gemm and torch.matmul at a
//! step's shapes and at 2048³, in the same invocation.
use super::torch::torch_script;
use super::*;

/// The matrix products of one forward pass, and its model FLOPs.
pub(super) struct StepShapes {
    /// Distinct `(rows, out, in)` of the layers' linear projections.
    pub(super) products: Vec<Mnk>,
    /// Model FLOPs of one forward pass over the batch.
    pub(super) forward_flops: f64,
}

pub(super) fn step_shapes(
    args: &BenchArgs,
    source: &ModelSource,
    device: &Device,
) -> Result<StepShapes> {
    let encoder = w2s_models::Encoder::load(source, device)?;
    let layers = encoder.linear_shapes();
    let rows = args.batch * args.seq;
    let mut products: Vec<Mnk> = Vec::new();
    let mut flops = 0.0;
    for layer in &layers {
        for &(inp, out) in layer {
            flops += 2.0 * (rows * inp * out) as f64;
            if !products.contains(&(rows, out, inp)) {
                products.push((rows, out, inp));
            }
        }
        // q·kᵀ and p·v: 2 · t² · width multiply-adds per row, width the layer's input width.
        let width = layer.first().map_or(0, |l| l.0);
        flops += 4.0 * (args.batch * args.seq * args.seq * width) as f64;
    }
    Ok(StepShapes {
        products,
        forward_flops: flops,
    })
}

/// What `w2s bench gemm` (and every bench, for MFU) measured.
pub(super) struct GemmPeak {
    /// `(shape, w2s GFLOP/s, PyTorch GFLOP/s)`.
    pub(super) rows: Vec<(Mnk, f64, Option<f64>)>,
    /// w2s's bf16 products at the same shapes (`w2s bench gemm` on a CPU that has them), with
    /// the kernel's name; not part of the peak, which is f32's.
    pub(super) bf16: Option<(&'static str, Vec<f64>)>,
    pub(super) peak: f64,
}

/// The peak at `shapes` and 2048³; `torch` says whether PyTorch is there to time as well.
pub(super) fn gemm_peak(args: &BenchArgs, shapes: &StepShapes, torch: bool) -> Result<GemmPeak> {
    let mut all = shapes.products.clone();
    all.push((2048, 2048, 2048));
    let w2s: Vec<f64> = all
        .iter()
        .map(|&(m, n, k)| w2s_kernels::gemm_rate(m, n, k, 5))
        .collect();
    let torch: Vec<Option<f64>> = if torch {
        let spec: Vec<String> = all.iter().map(|(m, n, k)| format!("{m},{n},{k}")).collect();
        let extra = [
            "gemm".to_string(),
            "-".to_string(),
            "--shapes".to_string(),
            spec.join(";"),
        ];
        let v = torch_script(args, &extra)?;
        (0..all.len()).map(|i| v["gflops"][i].as_f64()).collect()
    } else {
        vec![None; all.len()]
    };
    let bf16 = match w2s_kernels::bf16::best_kernel() {
        Some(kernel) if args.kind == BenchKind::Gemm => Some((
            kernel.name(),
            all.iter()
                .map(|&(m, n, k)| w2s_kernels::bf16::rate(kernel, m, n, k, 5))
                .collect(),
        )),
        _ => None,
    };
    let peak = w2s
        .iter()
        .chain(torch.iter().flatten())
        .fold(0f64, |m, &v| m.max(v));
    Ok(GemmPeak {
        rows: all
            .into_iter()
            .zip(w2s)
            .zip(torch)
            .map(|((s, w), t)| (s, w, t))
            .collect(),
        bf16,
        peak,
    })
}

/// The round with the highest peak (each round's shapes are the same).
pub(super) fn best_gemm(rounds: Vec<GemmPeak>) -> Option<GemmPeak> {
    rounds.into_iter().max_by(|a, b| a.peak.total_cmp(&b.peak))
}

pub(super) fn print_gemm(args: &BenchArgs, cpu: &str, gemm: Option<&GemmPeak>) -> Result<()> {
    let Some(g) = gemm else {
        bail!("w2s bench gemm times the CPU gemm; run it with W2S_DEVICE=cpu")
    };
    let bf16_at = |i: usize| g.bf16.as_ref().map(|(_, r)| r[i]);
    if args.json {
        let rows: Vec<serde_json::Value> = g
            .rows
            .iter()
            .enumerate()
            .map(|(i, ((m, n, k), w, t))| serde_json::json!({"m": m, "n": n, "k": k, "w2s_gflops": w, "pytorch_gflops": t, "w2s_bf16_gflops": bf16_at(i)}))
            .collect();
        println!(
            "{}",
            serde_json::json!({"kind": "gemm", "model": args.model, "cpu": cpu, "shapes": rows, "peak_gflops": g.peak, "bf16_kernel": g.bf16.as_ref().map(|(k, _)| k)})
        );
        return Ok(());
    }
    println!("f32 matmul [m, k] x [n, k]^T, median of 5 after a warm-up, every thread");
    println!("  cpu      {cpu}");
    let bf16_head = g.bf16.as_ref().map_or(String::new(), |(k, _)| {
        format!("   {:>14}", format!("bf16 ({k})"))
    });
    println!(
        "  {:>18}   {:>10}   {:>10}{bf16_head}",
        "m x n x k", "w2s", "pytorch"
    );
    for (i, ((m, n, k), w, t)) in g.rows.iter().enumerate() {
        let t = t.map_or("-".to_string(), |t| format!("{t:.0}"));
        let b = bf16_at(i).map_or(String::new(), |b| format!("   {b:>14.0}"));
        println!(
            "  {:>18}   {w:>10.0}   {t:>10}{b}   GFLOP/s",
            format!("{m}x{n}x{k}")
        );
    }
    println!("  peak {:.0} GFLOP/s", g.peak);
    Ok(())
}
