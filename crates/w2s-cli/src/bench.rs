//! `w2s bench`: throughput of w2s against a PyTorch reference on the same model, batch and step,
//! run in the same invocation. A benchmark, never a test: it asserts nothing about time.
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::time::Instant;
use w2s_assets::Store;
use w2s_models::{Device, ModelSource, WeightDtype};
use w2s_train::{
    fit_plain, Adapt, ClassifierRequest, EncoderClassifier, Loss, LrSchedule, TrainConfig,
};

mod gemm;
mod images;
mod qmatmul;
mod sweep;
mod torch;

use gemm::{best_gemm, gemm_peak, print_gemm, step_shapes};
use torch::{best_torch, torch_available, torch_side, torch_tps};

/// What to time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchKind {
    /// Forward pass and mean pooling (feature extraction), no gradient; for a vision model
    /// (`--model efficientnet-lite0` or a vision folder), what `images` times.
    Embed,
    /// One fine-tuning step: forward, backward, AdamW on every parameter.
    Train,
    /// A vision backbone's pooled features of a batch of images (images/s); `--model` is a
    /// built-in vision model (default efficientnet-lite0) or a Hugging Face vision folder.
    Images,
    /// The f32 matrix-product rate of w2s's gemm and of torch.matmul at the model's shapes and at
    /// 2048³: the peak that MFU is measured against.
    Gemm,
    /// A GGUF decoder's layer products on its quantized weights (candle's k-quant kernels, 8-bit
    /// activations) against w2s's f32 product on the dequantized weights, with the error, then
    /// this core's peak f32 and AVX2 int8 multiply-accumulate rates: any int8 kernel's ceiling.
    Qmatmul,
    /// A small probe sweep's wall time with each model's features computed once, against every
    /// run computing its own (as the official code does).
    Sweep,
}

/// Arguments of `w2s bench`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Both sides use the same weights (the w2s asset folder, the Hugging Face folder, or the GGUF
file), a batch of BATCH x SEQ token ids with no padding, one warm-up step and then STEPS steps,
each timed alone (the median counts), on the same device (W2S_DEVICE, else the GPU when built
with cuda and one is present) and in the same dtype. The PyTorch side is bench/torch_reference.py
(transformers' model classes) with its default SDPA attention, and again with eager attention; it
runs when `python3 -c 'import torch, transformers'` works (`pip install torch transformers`), and
is skipped with a note otherwise. The ratio is w2s against PyTorch's default (SDPA; eager for the
classes transformers has no SDPA path for, such as MPNet).

MFU is the step's model FLOPs per second over the f32 matmul peak measured in the same
invocation (the higher of w2s's gemm and torch.matmul, at the step's shapes and at 2048^3). Model
FLOPs: 2 per multiply-add of every linear projection of the layers for each token, plus 4·t²·width
per layer and row for attention; a training step counts three times the forward (full training;
no MFU is printed for --lora or --train-layers). --composed also times w2s with its fused CPU
kernels off (W2S_FUSED=0): the composed candle path they replace. `loss` is the mean training
loss of the timed steps: the same ids and weights give the same number on any device. The cpu
line names the allocator policy: w2s keeps freed memory in glibc's heap, and W2S_MALLOC=default
(or any MALLOC_* / GLIBC_TUNABLES setting) keeps glibc's own.

--rounds N runs the matmul peak and every side N times, alternating w2s and PyTorch, so that a
noisy neighbour on a shared machine slows both sides rather than one. Each side then reports its
fastest round (the highest peak counts for MFU, the largest peak RSS is printed) and the ratio of
each round is printed as well.

`sweep` runs the probe sweep DATA x every weaker -> stronger pair of MODELS x LOSSES x SEEDS
twice in scratch folders, both from nothing: once with one runner (each model's features are
computed once and every run reuses them, as `w2s sweep` does), and once with a fresh runner,
store and feature cache for every run (each run embeds with both its models and trains its own
weak model and ceiling, as the official code's one-process-per-run does). Both sides must give the
same accuracies run by run.

Examples:
  w2s bench gemm --model minilm-l6
  w2s bench embed --model minilm-l6 --composed
  w2s bench train --model mpnet-base --batch 16 --seq 128 --rounds 3
  w2s bench train --model hf:Qwen/Qwen2-0.5B --lora 8 --dtype bf16
  w2s bench sweep --seeds 1 --max-rows 200
  w2s bench qmatmul --model qwen2.5-coder-0.5b --batch 16 --seq 128
  w2s bench images --model efficientnet-lite0 --batch 16 --steps 5")]
pub struct BenchArgs {
    /// What to time.
    kind: BenchKind,
    /// Model (built-in name, hf:ORG/NAME, a model folder or a .gguf file).
    #[arg(long, default_value = "minilm-l6")]
    model: String,
    /// Precision of frozen weights and of the forward pass (trained weights stay f32).
    #[arg(long, default_value = "f32", value_parser = w2s_models::WeightDtype::NAMES)]
    dtype: String,
    /// train: LoRA adapters of rank R instead of training every weight.
    #[arg(long, value_name = "R", conflicts_with = "train_layers")]
    lora: Option<usize>,
    /// train: only the top K layers train.
    #[arg(long, value_name = "K")]
    train_layers: Option<usize>,
    /// Rows per step.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Tokens per row.
    #[arg(long, default_value_t = 128)]
    seq: usize,
    /// Timed steps after one warm-up step (the median counts).
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Also time w2s with its fused CPU kernels off (the composed path they replace).
    #[arg(long)]
    composed: bool,
    /// Rounds of every side, alternating w2s and PyTorch; each side reports its best round.
    #[arg(long, default_value_t = 1, value_name = "N")]
    rounds: usize,
    /// Python interpreter for the PyTorch reference.
    #[arg(long, default_value = "python3")]
    python: String,
    /// Do not run the PyTorch reference.
    #[arg(long)]
    no_torch: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// sweep: the dataset.
    #[arg(long, default_value = "tweets")]
    data: String,
    /// sweep: the ladder, weakest first (every weaker -> stronger pair is a run).
    #[arg(long, default_value = "minilm-l3,minilm-l6,e5-small,mpnet-base")]
    models: String,
    /// sweep: the student losses, comma-separated.
    #[arg(long, default_value = "xent,logconf")]
    losses: String,
    /// sweep: seeds 0..N.
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// sweep: rows of the dataset used (split into A, B, val and test).
    #[arg(long, default_value_t = 300)]
    max_rows: usize,
}

/// Resets this process's peak resident memory to its current size (Linux's `clear_refs` 5), so
/// that each side of the bench reports its own peak.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Median of some timings.
fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs.get(xs.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The CPU's model name and the vector/matrix extensions that matter for f32/bf16 products.
pub(crate) fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let name = info
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown CPU".to_string(), |s| s.trim().to_string());
    let flags: Vec<&str> = info
        .lines()
        .find(|l| l.starts_with("flags"))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    let has: Vec<&str> = ["avx2", "fma", "avx512f", "avx512_bf16", "amx_tile"]
        .into_iter()
        .filter(|f| flags.contains(f))
        .collect();
    let bf16 = w2s_kernels::bf16::best_kernel().map_or("none", |k| k.name());
    format!(
        "{name} ({}); element loops {}, bf16 products {bf16}; malloc: {}",
        has.join(" "),
        w2s_kernels::simd_level(),
        crate::memory::policy()
    )
}

/// Peak resident memory of this process so far, in MB (Linux; 0 elsewhere).
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Deterministic token ids below `vocab`, avoiding the special tokens at the start of real
/// vocabularies (the first 1,000 ids, or the first tenth of a small one).
fn ids(batch: usize, seq: usize, vocab: u32) -> Vec<Vec<u32>> {
    let low = 1000.min(vocab / 10);
    let span = vocab.saturating_sub(low + 1).max(1) as usize;
    (0..batch)
        .map(|b| {
            (0..seq)
                .map(|t| low + ((b * 7919 + t * 104_729) % span) as u32)
                .collect()
        })
        .collect()
}

/// What the w2s side measured.
struct W2sSide {
    tokens_per_second: f64,
    peak_rss_mb: f64,
    /// Mean training loss of the timed steps (train), or the mean pooled value (embed): a
    /// fingerprint of the computation for comparing devices.
    check: f64,
    device: String,
}

fn dtype_of(args: &BenchArgs) -> Result<WeightDtype> {
    WeightDtype::parse(&args.dtype).with_context(|| format!("--dtype {}", args.dtype))
}

fn adapt_of(args: &BenchArgs) -> Adapt {
    match (args.lora, args.train_layers) {
        (Some(r), _) => Adapt::Lora {
            rank: r.max(1),
            alpha: 2.0 * r.max(1) as f64,
        },
        (None, Some(k)) => Adapt::TopLayers(k),
        (None, None) => Adapt::All,
    }
}

fn w2s_side(args: &BenchArgs, source: &ModelSource, device: &Device) -> Result<W2sSide> {
    let dtype = dtype_of(args)?;
    let tokens = (args.batch * args.seq) as f64;
    let device_name = format!("{:?}", device.location());
    reset_peak_rss();
    match args.kind {
        BenchKind::Embed
        | BenchKind::Gemm
        | BenchKind::Sweep
        | BenchKind::Qmatmul
        | BenchKind::Images => {
            let req = w2s_models::LoadRequest {
                device,
                dtype: dtype.load_dtype(device),
                train: w2s_models::Train::Nothing,
            };
            let encoder = w2s_models::Encoder::load_with(source, &req)?;
            let rows = ids(args.batch, args.seq, encoder.vocab_size() as u32);
            let first = encoder.embed_ids(&rows)?; // warm-up
            let mut times = Vec::with_capacity(args.steps);
            for _ in 0..args.steps.max(1) {
                let start = Instant::now();
                encoder.embed_ids(&rows)?;
                times.push(start.elapsed().as_secs_f64());
            }
            let check = first.mean_all()?.to_scalar::<f32>()? as f64;
            Ok(W2sSide {
                tokens_per_second: tokens / median(times),
                peak_rss_mb: peak_rss_mb(),
                check,
                device: device_name,
            })
        }
        BenchKind::Train => {
            // Texts of exactly `seq` tokens are hard to come by; the classifier is given ids.
            let texts: Vec<String> = (0..args.batch).map(|_| "x".to_string()).collect();
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let req = ClassifierRequest {
                source,
                max_len: args.seq,
                adapt: adapt_of(args),
                head_lr_scale: 1.0,
                classes: 2,
                dtype,
                device,
            };
            let mut model = EncoderClassifier::new(&req, &refs)?;
            let vocab = model.vocab_size() as u32;
            model.set_ids(ids(args.batch, args.seq, vocab));
            let rows: Vec<usize> = (0..args.batch).collect();
            let targets = vec![[0.3f32, 0.7]; args.batch];
            // One epoch is one step (the batch is the whole training set).
            let steps = |epochs: usize| -> Result<(Vec<f64>, f64)> {
                let cfg = TrainConfig {
                    epochs,
                    batch_size: args.batch,
                    lr: 5e-5,
                    lr_schedule: LrSchedule::Constant,
                    early_stopping: false,
                    ..TrainConfig::default()
                };
                let report = fit_plain(
                    "bench",
                    &model,
                    &rows,
                    targets.as_flattened(),
                    Loss::XENT,
                    &cfg,
                    0,
                )?;
                let seconds = report.epochs.iter().map(|e| e.train_seconds).collect();
                let loss = report.epochs.iter().map(|e| e.train_loss).sum::<f64>()
                    / report.epochs.len().max(1) as f64;
                Ok((seconds, loss))
            };
            steps(1)?; // warm-up
            let (seconds, loss) = steps(args.steps.max(1))?;
            Ok(W2sSide {
                tokens_per_second: tokens / median(seconds),
                peak_rss_mb: peak_rss_mb(),
                check: loss,
                device: device_name,
            })
        }
    }
}

/// A product's `(m, n, k)`.
type Mnk = (usize, usize, usize);

/// Runs `w2s bench`.
pub fn run(args: BenchArgs, quiet: bool) -> Result<()> {
    if args.kind == BenchKind::Sweep {
        return sweep::run(&args, quiet);
    }
    if args.kind == BenchKind::Qmatmul {
        return qmatmul::run(&args);
    }
    // `embed` of an image model is the images bench: the same question (features/s against
    // PyTorch on the same weights), asked of a vision backbone.
    let image_model =
        args.model != w2s_models::PIXELS && w2s_models::ImageModel::is_image_model(&args.model);
    if args.kind == BenchKind::Images || (args.kind == BenchKind::Embed && image_model) {
        return images::run(&args);
    }
    let store = Store::open();
    let source = w2s_models::resolve(&args.model, &store)?;
    let device = w2s_models::default_device();
    let cpu = cpu_model();
    let shapes = step_shapes(&args, &source, &device)?;
    let torch_ok = torch_available(&args);
    let rounds = args.rounds.max(1);
    let dtype = dtype_of(&args)?;
    let int8 = dtype == WeightDtype::Int8;
    if int8 && args.kind == BenchKind::Train {
        bail!("--dtype int8 is for frozen weights: measure it with `w2s bench embed`");
    }
    // Round by round, one entry a round.
    let (mut peaks, mut w2s_runs, mut composed_runs) = (Vec::new(), Vec::new(), Vec::new());
    let (mut torch_runs, mut eager_runs) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        if !device.is_cuda() {
            peaks.push(gemm_peak(&args, &shapes, torch_ok.is_ok())?);
        }
        if args.kind == BenchKind::Gemm {
            continue;
        }
        w2s_runs.push(w2s_side(&args, &source, &device)?);
        if args.composed {
            w2s_kernels::set_enabled(false);
            composed_runs.push(w2s_side(&args, &source, &device)?);
            w2s_kernels::set_enabled(true);
        }
        if torch_ok.is_ok() {
            // int8 is measured against PyTorch f32 (the target) and beside PyTorch's
            // own int8 path (dynamic quantization of every Linear), which takes eager's place.
            let (main, second) = match int8 {
                true => (("sdpa", "f32"), ("sdpa", "int8")),
                false => (
                    ("sdpa", args.dtype.as_str()),
                    ("eager", args.dtype.as_str()),
                ),
            };
            torch_runs.push(torch_side(&args, &source, &device, main.0, main.1)?);
            // The second PyTorch side is context, not the ratio: its failure (PyTorch's int8
            // of a 1.5B model needs 14 GB) is reported and the bench goes on.
            match torch_side(&args, &source, &device, second.0, second.1) {
                Ok(v) => eager_runs.push(v),
                Err(e) => tracing::warn!(
                    "PyTorch {} ({}) failed, left out: {}",
                    second.1,
                    second.0,
                    e.to_string().lines().next().unwrap_or("")
                ),
            }
        }
    }
    let gemm = best_gemm(peaks);
    if args.kind == BenchKind::Gemm {
        return print_gemm(&args, &cpu, gemm.as_ref());
    }
    let round_ratios: Vec<f64> = w2s_runs
        .iter()
        .zip(&torch_runs)
        .map(|(w, t)| w.tokens_per_second / torch_tps(t))
        .collect();
    let full = args.lora.is_none() && args.train_layers.is_none();
    let flops = match args.kind {
        BenchKind::Train => 3.0 * shapes.forward_flops,
        _ => shapes.forward_flops,
    };
    let tokens = (args.batch * args.seq) as f64;
    let mfu = |tps: f64| -> Option<f64> {
        let peak = gemm.as_ref()?.peak;
        (full && peak > 0.0).then(|| flops * tps / tokens / (peak * 1e9))
    };
    let w2s = best_w2s(w2s_runs).context("w2s bench: no round ran")?;
    let composed = best_w2s(composed_runs);
    let torch: std::result::Result<serde_json::Value, String> = match torch_ok {
        Ok(()) => best_torch(torch_runs).ok_or_else(|| "no PyTorch round ran".to_string()),
        Err(note) => Err(note),
    };
    let torch_eager = best_torch(eager_runs);
    let ratio = torch
        .as_ref()
        .ok()
        .and_then(|v| v["tokens_per_second"].as_f64())
        .map(|t| w2s.tokens_per_second / t);
    let side_json = |s: &W2sSide| {
        serde_json::json!({"tokens_per_second": s.tokens_per_second, "peak_rss_mb": s.peak_rss_mb,
            "check": s.check, "mfu": mfu(s.tokens_per_second)})
    };
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "kind": format!("{:?}", args.kind).to_lowercase(), "model": args.model,
                "batch": args.batch, "seq": args.seq, "steps": args.steps, "dtype": args.dtype,
                "bf16_products": dtype.bf16_products_on(&device),
                "int8_products": dtype.int8_products_on(&device),
                "adapt": format!("{:?}", adapt_of(&args)), "device": w2s.device, "cpu": cpu,
                "model_flops_per_step": flops, "matmul_peak_gflops": gemm.as_ref().map(|g| g.peak),
                "w2s": side_json(&w2s), "w2s_composed": composed.as_ref().map(side_json),
                "pytorch": torch.as_ref().ok(), "pytorch_eager": torch_eager,
                "ratio_w2s_over_pytorch": ratio, "ratio_per_round": round_ratios,
                "rounds": rounds, "note": torch.as_ref().err(),
            })
        );
        return Ok(());
    }
    let precision = match (
        dtype.bf16_products_on(&device),
        dtype.int8_products_on(&device),
    ) {
        (Some(kernel), _) => format!("bf16 products on {kernel} (weights rounded, f32 elsewhere)"),
        (_, Some(kernel)) => {
            format!("int8 products on {kernel} (32-element blocks, f32 elsewhere; PyTorch in f32)")
        }
        _ => args.dtype.clone(),
    };
    let best_of = if rounds > 1 {
        format!(", best of {rounds} rounds")
    } else {
        String::new()
    };
    println!(
        "{:?} {} batch {} x {} tokens, median of {} steps{best_of}, {precision} on {}",
        args.kind, args.model, args.batch, args.seq, args.steps, w2s.device
    );
    println!("  cpu      {cpu}");
    if let Some(g) = &gemm {
        println!(
            "  matmul peak {:.0} GFLOP/s (the highest rate of `w2s bench gemm`); step {:.1} GFLOP",
            g.peak,
            flops / 1e9
        );
    }
    let what = if args.kind == BenchKind::Train {
        "loss"
    } else {
        "mean feature"
    };
    // int8 products are not f32 FLOPs: their rate is given as a multiple of the f32 peak.
    let mfu_text = |tps: f64, int8: bool| {
        mfu(tps).map_or(String::new(), |m| match int8 {
            true => format!("{m:.2}x the f32 peak"),
            false => format!("MFU {:>3.0}%", 100.0 * m),
        })
    };
    let line = |name: &str, s: &W2sSide| {
        println!(
            "  {name:<14} {:>7.0} tokens/s   peak RSS {:>6.0} MB   {}   {what} {:.6}",
            s.tokens_per_second,
            s.peak_rss_mb,
            mfu_text(s.tokens_per_second, int8),
            s.check
        )
    };
    line("w2s", &w2s);
    if let Some(c) = &composed {
        line("w2s composed", c);
    }
    let torch_line = |name: &str, v: &serde_json::Value| {
        let tps = torch_tps(v);
        println!(
            "  {name:<14} {tps:>7.0} tokens/s   peak RSS {:>6.0} MB   {}   (torch {}, {} threads)",
            v["peak_rss_mb"].as_f64().unwrap_or(f64::NAN),
            mfu_text(tps, v["dtype"] == "int8"),
            v["torch"].as_str().unwrap_or("?"),
            v["threads"]
        )
    };
    match &torch {
        Ok(v) => {
            torch_line("pytorch sdpa", v);
            if let Some(attn) = v["attn"].as_str().filter(|a| *a != "sdpa") {
                println!("    (attention: {attn})");
            }
        }
        Err(note) => println!("  {note}"),
    }
    if let Some(v) = &torch_eager {
        torch_line(
            if int8 {
                "pytorch int8"
            } else {
                "pytorch eager"
            },
            v,
        );
    }
    if let Some(c) = &composed {
        println!(
            "  fused / composed = {:.2}",
            w2s.tokens_per_second / c.tokens_per_second
        );
    }
    if let Some(r) = ratio {
        let reference = if int8 {
            "pytorch f32 (sdpa)"
        } else {
            "pytorch (sdpa)"
        };
        println!("  ratio w2s / {reference} = {r:.2}");
    }
    if round_ratios.len() > 1 {
        let each: Vec<String> = round_ratios.iter().map(|r| format!("{r:.2}")).collect();
        println!("    (round by round: {})", each.join(", "));
    }
    Ok(())
}

/// The fastest of some rounds by `tps`, and the largest `rss` of any of them.
fn fastest<T>(
    rounds: Vec<T>,
    tps: impl Fn(&T) -> f64,
    rss: impl Fn(&T) -> f64,
) -> Option<(T, f64)> {
    let largest = rounds.iter().map(&rss).fold(0f64, f64::max);
    let best = rounds
        .into_iter()
        .max_by(|a, b| tps(a).total_cmp(&tps(b)))?;
    Some((best, largest))
}

/// The fastest w2s round, with the largest peak RSS of any round.
fn best_w2s(rounds: Vec<W2sSide>) -> Option<W2sSide> {
    let (mut best, rss) = fastest(rounds, |s| s.tokens_per_second, |s| s.peak_rss_mb)?;
    best.peak_rss_mb = rss;
    Some(best)
}

#[cfg(test)]
mod tests {
    use super::gemm::GemmPeak;
    use super::*;

    fn side(tokens_per_second: f64, peak_rss_mb: f64) -> W2sSide {
        W2sSide {
            tokens_per_second,
            peak_rss_mb,
            check: 0.5,
            device: "Cpu".into(),
        }
    }

    #[test]
    fn rounds_combine_into_the_fastest_round_and_the_largest_peak_memory() {
        let w2s = best_w2s(vec![
            side(90.0, 700.0),
            side(120.0, 650.0),
            side(100.0, 800.0),
        ])
        .expect("three rounds");
        assert_eq!((w2s.tokens_per_second, w2s.peak_rss_mb), (120.0, 800.0));
        let torch = best_torch(vec![
            serde_json::json!({"tokens_per_second": 80.0, "peak_rss_mb": 1500.0}),
            serde_json::json!({"tokens_per_second": 95.0, "peak_rss_mb": 1400.0}),
        ])
        .expect("two rounds");
        assert_eq!(torch["tokens_per_second"], 95.0);
        assert_eq!(torch["peak_rss_mb"], 1500.0);
        assert!(best_w2s(Vec::new()).is_none());
        let peaks = [50.0, 70.0, 60.0].map(|peak| GemmPeak {
            rows: Vec::new(),
            bf16: None,
            peak,
        });
        assert_eq!(best_gemm(peaks.into()).map(|g| g.peak), Some(70.0));
    }
}
