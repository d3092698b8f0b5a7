//! int8 products of frozen weights inside the fused Linear: frozen weights take them (the
//! result is `int8::matmul`'s, bias and activation after), trained weights never do, and an input
//! under a frozen weight still gets its gradient. Its own test binary: it flips the process-wide
//! switch. The kernel-level tests (by hand, exact GGUF blocks, VNNI against portable) are beside
//! the kernels in `src/int8.rs`.
use candle_core::{Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use w2s_kernels::int8::{self, Kernel, PackedWeight};
use w2s_kernels::{fused_linear, Act};

fn random(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
}

#[test]
fn fused_linear_uses_int8_for_frozen_weights_only() -> candle_core::Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (m, n, k) = (50, 72, 96);
    let dev = Device::Cpu;
    let xs = random(&mut rng, m * k);
    let ws = random(&mut rng, n * k);
    let bs = random(&mut rng, n);
    let x = Tensor::from_vec(xs.clone(), (5, 10, k), &dev)?;
    let w = Tensor::from_vec(ws.clone(), (n, k), &dev)?;
    let b = Tensor::from_vec(bs.clone(), n, &dev)?;
    let f32_out = fused_linear(&x, &w, Some(&b), Act::Silu)?;
    let kernel = int8::set_active(true).expect("int8 products are offered on every CPU");
    eprintln!("int8 kernel on this CPU: {}", kernel.name());
    assert_eq!(kernel, int8::best_kernel());
    let int8_out = fused_linear(&x, &w, Some(&b), Act::Silu)?;
    // A trained weight keeps the f32 product, bit for bit.
    let trained = Var::from_tensor(&w)?;
    let trained_out = fused_linear(&x, trained.as_tensor(), Some(&b), Act::Silu)?;
    // A trained input under a frozen weight keeps the int8 product and gets its gradient.
    let xv = Var::from_tensor(&x)?;
    let through = fused_linear(xv.as_tensor(), &w, Some(&b), Act::Silu)?;
    let grads = through.sum_all()?.backward()?;
    assert!(grads.get(xv.as_tensor()).is_some(), "no gradient for x");
    let through = through.flatten_all()?.to_vec1::<f32>()?;
    int8::set_active(false);
    assert_eq!(int8::active(), None);
    let off_out = fused_linear(&x, &w, Some(&b), Act::Silu)?;

    // The fused op is the kernel's product, then bias and SiLU on each element.
    let mut z = vec![f32::NAN; m * n];
    let packed = PackedWeight::pack(&ws, n, k, k, 1);
    int8::matmul(Kernel::Portable, &xs, &packed, &mut z, &|_| {});
    let want: Vec<f32> = z
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let v = v + bs[i % n];
            let out = fused_linear(
                &Tensor::new(&[[v]], &dev).unwrap(),
                &Tensor::new(&[[1f32]], &dev).unwrap(),
                None,
                Act::Silu,
            )
            .unwrap();
            out.flatten_all().unwrap().to_vec1::<f32>().unwrap()[0]
        })
        .collect();
    let got = int8_out.flatten_all()?.to_vec1::<f32>()?;
    assert_eq!(
        got, want,
        "the fused op is not the int8 product + bias + SiLU"
    );
    assert_eq!(got, through, "the kept and the fused epilogue differ");

    let a = f32_out.flatten_all()?.to_vec1::<f32>()?;
    let worst = a
        .iter()
        .zip(&got)
        .map(|(p, q)| match (p - q).abs() {
            d if d.is_nan() => f32::INFINITY,
            d => d,
        })
        .fold(0f32, f32::max);
    // 96 terms of |a·b| < 1, each input rounded to 8 bits per 32-block: seen ~0.05.
    assert!(worst < 0.3, "int8 against f32 differs by up to {worst}");
    assert!(worst > 0.0, "the int8 path gave exactly the f32 result");
    assert_eq!(a, trained_out.flatten_all()?.to_vec1::<f32>()?);
    assert_eq!(a, off_out.flatten_all()?.to_vec1::<f32>()?);
    Ok(())
}

#[test]
fn kernel_rates_are_measured_and_positive() {
    // Tiny shapes: this checks the measurement, not the machine's speed.
    for kernel in [Kernel::Portable, Kernel::Vnni] {
        if kernel.available() {
            let r = int8::rate(kernel, 40, 24, 70, 2);
            assert!(r.is_finite() && r > 0.0, "{}: {r} GFLOP/s", kernel.name());
        }
    }
}
