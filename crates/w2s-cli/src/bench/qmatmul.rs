//! `w2s bench qmatmul`: a GGUF decoder's layer products run directly on the quantized weights
//! (candle's k-quant CPU kernels) and through w2s's int8 kernel (`--dtype int8`), against w2s's
//! f32 product on the dequantized weights, at the bench's rows: how much faster each is than f32
//! on this CPU, how far its outputs move, and how much of each weight int8 packs exactly.
use super::BenchArgs;
use anyhow::{bail, Result};
use w2s_models::quant::QuantProduct;

/// Runs `w2s bench qmatmul`.
pub fn run(args: &BenchArgs) -> Result<()> {
    let store = w2s_assets::Store::open();
    let source = w2s_models::resolve(&args.model, &store)?;
    if source.format != w2s_models::WeightFormat::Gguf {
        bail!(
            "{}: qmatmul times a GGUF file's quantized weights; this model is {:?}",
            source.name,
            source.format
        );
    }
    let rows = args.batch * args.seq;
    let steps = args.steps.max(1);
    let products = w2s_models::quant::layer_products(&source.weights[0], rows, steps)?;
    let flops = |p: &QuantProduct| 2.0 * (p.shape.0 * p.shape.1 * p.shape.2) as f64;
    // The f32 side: the same shapes through w2s's gemm, the product the f32 decoder runs.
    let f32_rates: Vec<f64> = products
        .iter()
        .map(|p| w2s_kernels::gemm_rate(p.shape.0, p.shape.1, p.shape.2, steps))
        .collect();
    let total: f64 = products.iter().map(flops).sum();
    let q_seconds: f64 = products.iter().map(|p| p.seconds).sum();
    let int8_seconds: f64 = products.iter().map(|p| p.int8_seconds).sum();
    let int8_kernel = w2s_kernels::int8::best_kernel().name();
    let f32_seconds: f64 = products
        .iter()
        .zip(&f32_rates)
        .map(|(p, r)| flops(p) / (r * 1e9))
        .sum();
    let cpu = super::cpu_model();
    // The ceiling: what any int8 kernel could gain over f32 on this core, whatever its tiling.
    let peaks = w2s_kernels::peak::peaks();
    if args.json {
        let each: Vec<_> = products
            .iter()
            .zip(&f32_rates)
            .map(|(p, r)| {
                serde_json::json!({"tensor": p.name, "dtype": p.dtype, "rows": p.shape.0,
                    "out": p.shape.1, "in": p.shape.2,
                    "quantized_gflops": flops(p) / p.seconds / 1e9, "f32_gflops": r,
                    "relative_error": p.rel_error,
                    "int8_gflops": flops(p) / p.int8_seconds / 1e9,
                    "int8_relative_error": p.int8_rel_error, "int8_exact_share": p.int8_exact})
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({"kind": "qmatmul", "model": source.name, "cpu": cpu,
                "products": each, "quantized_gflops": total / q_seconds / 1e9,
                "f32_gflops": total / f32_seconds / 1e9,
                "quantized_over_f32": f32_seconds / q_seconds,
                "int8_kernel": int8_kernel, "int8_gflops": total / int8_seconds / 1e9,
                "int8_over_f32": f32_seconds / int8_seconds,
                "peak_gmacs_per_core": peaks.map(|p| serde_json::json!({
                    "f32_fma": p.f32_fma, "int8_pure": p.int8_pure, "int8_signed": p.int8_signed,
                    "int8_blocks": p.int8_blocks,
                    "vnni": p.vnni.map(|v| serde_json::json!({"f32_fma512": v.f32_fma512,
                        "int8_pure": v.int8_pure, "int8_blocks": v.int8_blocks}))}))})
        );
        return Ok(());
    }
    println!(
        "{}: layer 0's products at {rows} rows ({} x {}): quantized weights (candle's k-quant kernels, 8-bit activations) against f32 (w2s's gemm on the dequantized weights)",
        source.name, args.batch, args.seq
    );
    println!("cpu: {cpu}");
    println!(
        "  and w2s's int8 products ({int8_kernel}; --dtype int8: 32-element blocks packed from the dequantized weights)"
    );
    println!(
        "{:<24} {:>6} {:>16} {:>10} {:>9} {:>9} {:>6} {:>8} {:>8} {:>6}",
        "tensor",
        "dtype",
        "rows x out x in",
        "candle GF/s",
        "int8 GF/s",
        "f32 GF/s",
        "int8/f32",
        "err cand.",
        "err int8",
        "exact"
    );
    for (p, r) in products.iter().zip(&f32_rates) {
        let q = flops(p) / p.seconds / 1e9;
        let i = flops(p) / p.int8_seconds / 1e9;
        println!(
            "{:<24} {:>6} {:>16} {:>11.1} {:>9.1} {:>9.1} {:>7.2}x {:>8.1e} {:>8.1e} {:>5.0}%",
            p.name,
            p.dtype,
            format!("{}x{}x{}", p.shape.0, p.shape.1, p.shape.2),
            q,
            i,
            r,
            i / r,
            p.rel_error,
            p.int8_rel_error,
            100.0 * p.int8_exact
        );
    }
    println!(
        "layer: candle {:.1} GFLOP/s, w2s int8 {:.1} GFLOP/s, f32 {:.1} GFLOP/s; candle / f32 = {:.2}x, int8 / f32 = {:.2}x",
        total / q_seconds / 1e9,
        total / int8_seconds / 1e9,
        total / f32_seconds / 1e9,
        f32_seconds / q_seconds,
        f32_seconds / int8_seconds
    );
    match peaks {
        Some(p) => {
            println!(
                "peak per core: f32 FMA {:.1} GMAC/s; int8 (AVX2 vpmaddubsw) {:.1} = {:.2}x with per-row scales, {:.2}x with signed activations, {:.2}x with 32-element block scales (llama.cpp's Q8_0)",
                p.f32_fma,
                p.int8_pure,
                p.int8_pure / p.f32_fma,
                p.int8_signed / p.f32_fma,
                p.int8_blocks / p.f32_fma
            );
            match p.vnni {
                Some(v) => println!(
                    "AVX-512: f32 FMA {:.1} GMAC/s; int8 (VNNI vpdpbusd) {:.1} = {:.2}x that with per-row scales, {:.2}x with 32-element block scales",
                    v.f32_fma512,
                    v.int8_pure,
                    v.int8_pure / v.f32_fma512,
                    v.int8_blocks / v.f32_fma512
                ),
                None => println!("no AVX-512 VNNI on this CPU: its int8 ceiling is not measured"),
            }
        }
        None => println!("peak per core: not measured (needs AVX2 + FMA)"),
    }
    Ok(())
}
