//! The bf16 products of frozen weights: every kernel this CPU has against the products of the
//! same bf16-rounded values in f64 (only the f32 summation order differs), against the f32
//! product within bf16's rounding, and inside the fused Linear: frozen weights take them, trained
//! weights never do.
//!
//! The portable kernel runs everywhere; AMX and AVX512-BF16 run where the CPU has them (the test
//! prints which ran, so a log shows what a machine covered).
use candle_core::{Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use w2s_kernels::bf16::{self, from_bf16, to_bf16, Kernel, PackedWeight};
use w2s_kernels::{fused_linear, Act};

fn random(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
}

fn kernels() -> Vec<Kernel> {
    let ks: Vec<Kernel> = [Kernel::Portable, Kernel::Avx512, Kernel::Amx]
        .into_iter()
        .filter(|k| k.available())
        .collect();
    eprintln!(
        "bf16 kernels on this CPU: {:?}",
        ks.iter().map(|k| k.name()).collect::<Vec<_>>()
    );
    ks
}

#[test]
fn every_kernel_matches_the_rounded_product_and_the_f32_one_within_bf16() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    // Edges in every dimension: one element, partial row tasks (m not a multiple of 32), partial
    // column blocks (n not a multiple of 32), k not a multiple of the tile depth (32).
    let shapes = [
        (1, 1, 1),
        (5, 17, 3),
        (33, 40, 70),
        (64, 64, 64),
        (100, 48, 384),
        (40, 33, 65),
    ];
    for kernel in kernels() {
        for &(m, n, k) in &shapes {
            let x = random(&mut rng, m * k);
            let w = random(&mut rng, n * k);
            let packed = PackedWeight::pack(&w, n, k, k, 1);
            let mut got = vec![f32::NAN; m * n];
            bf16::matmul(kernel, &x, &packed, &mut got, &|_| {});
            for i in 0..m {
                for j in 0..n {
                    let (mut rounded, mut exact, mut size) = (0f64, 0f64, 0f64);
                    for c in 0..k {
                        let (a, b) = (x[i * k + c], w[j * k + c]);
                        rounded +=
                            f64::from(from_bf16(to_bf16(a))) * f64::from(from_bf16(to_bf16(b)));
                        exact += f64::from(a) * f64::from(b);
                        size += f64::from(a.abs() * b.abs());
                    }
                    let g = f64::from(got[i * n + j]);
                    let what = format!("{} {m}x{n}x{k} at ({i}, {j})", kernel.name());
                    // f32 accumulation of k terms: a few ulp of the size of the sum.
                    assert!(
                        (g - rounded).abs() <= 1e-6 * size * (k as f64).sqrt() + 1e-30,
                        "{what}: {g} against the rounded product {rounded}"
                    );
                    // Each input rounded to 8 bits of mantissa: relative 2⁻⁸ per product at most.
                    assert!(
                        (g - exact).abs() <= size / 128.0,
                        "{what}: {g} against the f32 product {exact}"
                    );
                }
            }
        }
    }
}

#[test]
fn strided_weights_pack_as_their_transpose() {
    // W given as the transpose view of a [k, n] buffer (GPT-2's Conv1D layout).
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (m, n, k) = (9, 20, 37);
    let wt = random(&mut rng, k * n);
    let w: Vec<f32> = (0..n * k).map(|i| wt[(i % k) * n + i / k]).collect();
    let x = random(&mut rng, m * k);
    let (mut a, mut b) = (vec![0f32; m * n], vec![0f32; m * n]);
    bf16::matmul(
        Kernel::Portable,
        &x,
        &PackedWeight::pack(&w, n, k, k, 1),
        &mut a,
        &|_| {},
    );
    bf16::matmul(
        Kernel::Portable,
        &x,
        &PackedWeight::pack(&wt, n, k, 1, n),
        &mut b,
        &|_| {},
    );
    assert_eq!(a, b);
}

#[test]
fn fused_linear_uses_bf16_for_frozen_weights_only() -> candle_core::Result<()> {
    let Some(kernel) = bf16::best_kernel() else {
        eprintln!(
            "no AMX or AVX512-BF16 on this CPU: bf16 products are not offered, nothing to check"
        );
        assert_eq!(bf16::set_active(true), None);
        assert_eq!(bf16::active(), None);
        return Ok(());
    };
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let (m, n, k) = (50, 72, 96);
    let dev = Device::Cpu;
    let x = Tensor::from_vec(random(&mut rng, m * k), (5, 10, k), &dev)?;
    let w = Tensor::from_vec(random(&mut rng, n * k), (n, k), &dev)?;
    let b = Tensor::from_vec(random(&mut rng, n), n, &dev)?;
    let f32_out = fused_linear(&x, &w, Some(&b), Act::GeluErf)?;
    assert_eq!(bf16::set_active(true), Some(kernel));
    let bf16_out = fused_linear(&x, &w, Some(&b), Act::GeluErf)?;
    // A trained weight keeps the f32 product, bit for bit.
    let trained = Var::from_tensor(&w)?;
    let trained_out = fused_linear(&x, trained.as_tensor(), Some(&b), Act::GeluErf)?;
    // A trained input under a frozen weight (LoRA's base, frozen layers) keeps the bf16 product,
    // with the activation outside it (backward needs the pre-activation), and gets its gradient.
    let xv = Var::from_tensor(&x)?;
    let through = fused_linear(xv.as_tensor(), &w, Some(&b), Act::GeluErf)?;
    let grads = through.sum_all()?.backward()?;
    assert!(grads.get(xv.as_tensor()).is_some(), "no gradient for x");
    let through = through.flatten_all()?.to_vec1::<f32>()?;
    bf16::set_active(false);
    let off_out = fused_linear(&x, &w, Some(&b), Act::GeluErf)?;
    let a = f32_out.flatten_all()?.to_vec1::<f32>()?;
    let c = bf16_out.flatten_all()?.to_vec1::<f32>()?;
    let worst = a
        .iter()
        .zip(&c)
        // NaN (an element the kernel did not write, in tests) counts as infinitely far.
        .map(|(p, q)| match (p - q).abs() {
            d if d.is_nan() => f32::INFINITY,
            d => d,
        })
        .fold(0f32, f32::max);
    // |x·w| ≤ 96 terms of |a·b| < 1 with 2⁻⁸ relative error each: about 0.1 at most; seen ~0.02.
    assert!(worst < 0.1, "bf16 against f32 differs by up to {worst}");
    assert!(
        worst > 0.0,
        "the bf16 path gave exactly the f32 result: did it run?"
    );
    assert_eq!(c, through, "the kept and the fused epilogue differ");
    assert_eq!(a, trained_out.flatten_all()?.to_vec1::<f32>()?);
    assert_eq!(a, off_out.flatten_all()?.to_vec1::<f32>()?);
    Ok(())
}

#[test]
fn kernel_rates_are_measured_and_positive() {
    // Tiny shapes: this checks the measurement, not the machine's speed.
    for kernel in kernels() {
        let r = bf16::rate(kernel, 40, 24, 70, 2);
        assert!(r.is_finite() && r > 0.0, "{}: {r} GFLOP/s", kernel.name());
    }
    if let Some(k) = bf16::best_kernel() {
        eprintln!("probe {:?}: {:?}", k.name(), bf16::slower_than_f32(k));
    }
}
