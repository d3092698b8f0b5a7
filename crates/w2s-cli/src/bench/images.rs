//! `w2s bench images`: a vision backbone's feature rate (images/s) against PyTorch on the same
//! weights and batch, in the same invocation.
use super::*;
use w2s_models::vision::{resolve_vision, VisionModel};

/// The built-in backbone timed when `--model` is left at the text default.
const DEFAULT_VISION_MODEL: &str = "efficientnet-lite0";

/// Deterministic 8-bit images of `size × size`: a pattern, not noise, so every run times the
/// same input.
fn images(batch: usize, size: usize) -> Vec<image::RgbImage> {
    (0..batch)
        .map(|b| {
            image::RgbImage::from_fn(size as u32, size as u32, |x, y| {
                let v = |c: usize| {
                    ((b * 7919 + c * 31 + y as usize * 104_729 + x as usize * 13) % 256) as u8
                };
                image::Rgb([v(0), v(1), v(2)])
            })
        })
        .collect()
}

pub(super) fn run(args: &BenchArgs) -> Result<()> {
    let name = if args.model == "minilm-l6" {
        DEFAULT_VISION_MODEL
    } else {
        args.model.as_str()
    };
    let store = Store::open();
    let dir = resolve_vision(name, &store)?;
    let device = w2s_models::default_device();
    let model = VisionModel::load(&dir, &device)?;
    // The size the processor makes of any image; without resizing or cropping, the model's own
    // input size (ViT) or 224.
    let size = match (model.processor.resize, model.processor.crop) {
        (None, None) => model.input_size().map_or(224, |(h, _)| h),
        _ => model.processor.output_size(1024, 1024).0,
    };
    let batch = images(args.batch, size);
    println!("cpu: {}", cpu_model());
    println!(
        "model: {name} ({}), {} images of {size}x{size} per step",
        dir.display(),
        args.batch
    );
    let mut w2s_rates = Vec::new();
    let mut torch_rates = Vec::new();
    let torch_ok = torch_vision_available(args);
    for _ in 0..args.rounds.max(1) {
        model.embed(&batch)?; // warm-up
        let mut times = Vec::new();
        for _ in 0..args.steps.max(1) {
            let start = Instant::now();
            model.embed(&batch)?;
            times.push(start.elapsed().as_secs_f64());
        }
        w2s_rates.push(args.batch as f64 / median(times));
        if torch_ok.is_ok() {
            let extra: Vec<String> = vec![
                dir.display().to_string(),
                "--batch".into(),
                args.batch.to_string(),
                "--size".into(),
                size.to_string(),
                "--steps".into(),
                args.steps.to_string(),
            ];
            let v = super::torch::run_script(args, "torch_vision_reference.py", &extra)?;
            torch_rates.push(v["images_per_second"].as_f64().unwrap_or(f64::NAN));
        }
    }
    let best = |xs: &[f64]| xs.iter().copied().fold(f64::NAN, f64::max);
    println!(
        "w2s      {:>9.1} images/s (preprocessing included)",
        best(&w2s_rates)
    );
    match torch_ok {
        Ok(()) => {
            println!(
                "PyTorch  {:>9.1} images/s (pixel values given)",
                best(&torch_rates)
            );
            println!(
                "ratio    {:>9.2}x (w2s / PyTorch)",
                best(&w2s_rates) / best(&torch_rates)
            );
            for (i, (w, t)) in w2s_rates.iter().zip(&torch_rates).enumerate() {
                println!("round {i}: {:.2}x", w / t);
            }
        }
        Err(why) => println!("{why}"),
    }
    Ok(())
}

/// Whether the PyTorch side can run: torch, and for EfficientNet-Lite its implementation.
fn torch_vision_available(args: &BenchArgs) -> std::result::Result<(), String> {
    if args.no_torch {
        return Err("PyTorch reference skipped (--no-torch)".to_string());
    }
    let ok = std::process::Command::new(&args.python)
        .args([
            "-c",
            "import torch, transformers, efficientnet_lite_pytorch",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "PyTorch reference skipped: `{} -c 'import torch, transformers, efficientnet_lite_pytorch'` failed (pip install torch transformers efficientnet_lite_pytorch)",
            args.python
        ))
    }
}
