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

/// What to time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchKind {
    /// Forward pass and mean pooling (feature extraction), no gradient.
    Embed,
    /// One fine-tuning step: forward, backward, AdamW on every parameter.
    Train,
}

/// Arguments of `w2s bench`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Both sides use the same weights (the w2s asset folder, the Hugging Face folder, or the GGUF
file), a batch of BATCH x SEQ token ids with no padding, one warm-up step and then STEPS timed
steps, on the same device (W2S_DEVICE, else the GPU when built with cuda and one is present) and
in the same dtype. The PyTorch side is bench/torch_reference.py (transformers' model classes,
eager attention); it runs when `python3 -c 'import torch, transformers'` works (`pip install
torch transformers`), and is skipped with a note otherwise. `loss` is the mean training loss of
the timed steps: the same ids and weights give the same number on any device, up to rounding.

Examples:
  w2s bench embed --model minilm-l6
  w2s bench train --model mpnet-base --batch 16 --seq 128
  w2s bench train --model hf:Qwen/Qwen2-0.5B --lora 8 --dtype bf16")]
pub struct BenchArgs {
    /// embed or train.
    kind: BenchKind,
    /// Model (built-in name, hf:ORG/NAME, a model folder or a .gguf file).
    #[arg(long, default_value = "minilm-l6")]
    model: String,
    /// Precision of frozen weights and of the forward pass (trained weights stay f32).
    #[arg(long, default_value = "f32", value_parser = ["f32", "bf16", "f16"])]
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
    /// Timed steps after one warm-up step.
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// Python interpreter for the PyTorch reference.
    #[arg(long, default_value = "python3")]
    python: String,
    /// Do not run the PyTorch reference.
    #[arg(long)]
    no_torch: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
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
    let tokens = (args.batch * args.seq * args.steps) as f64;
    let device_name = format!("{:?}", device.location());
    match args.kind {
        BenchKind::Embed => {
            let req = w2s_models::LoadRequest {
                device,
                dtype: dtype.candle(),
                train: w2s_models::Train::Nothing,
            };
            let encoder = w2s_models::Encoder::load_with(source, &req)?;
            let rows = ids(args.batch, args.seq, encoder.vocab_size() as u32);
            let first = encoder.embed_ids(&rows)?; // warm-up
            let start = Instant::now();
            for _ in 0..args.steps {
                encoder.embed_ids(&rows)?;
            }
            let seconds = start.elapsed().as_secs_f64();
            let check = first.mean_all()?.to_scalar::<f32>()? as f64;
            Ok(W2sSide {
                tokens_per_second: tokens / seconds,
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
                dtype,
                device,
            };
            let mut model = EncoderClassifier::new(&req, &refs)?;
            let vocab = model.vocab_size() as u32;
            model.set_ids(ids(args.batch, args.seq, vocab));
            let rows: Vec<usize> = (0..args.batch).collect();
            let targets = vec![[0.3f32, 0.7]; args.batch];
            let step = |epochs: usize| -> Result<(f64, f64)> {
                let cfg = TrainConfig {
                    epochs,
                    batch_size: args.batch,
                    lr: 5e-5,
                    lr_schedule: LrSchedule::Constant,
                    early_stopping: false,
                    ..TrainConfig::default()
                };
                let report = fit_plain("bench", &model, &rows, &targets, Loss::Xent, &cfg, 0)?;
                let seconds = report.epochs.iter().map(|e| e.train_seconds).sum();
                let loss = report.epochs.iter().map(|e| e.train_loss).sum::<f64>()
                    / report.epochs.len().max(1) as f64;
                Ok((seconds, loss))
            };
            step(1)?; // warm-up
            let (seconds, loss) = step(args.steps)?;
            Ok(W2sSide {
                tokens_per_second: tokens / seconds,
                peak_rss_mb: peak_rss_mb(),
                check: loss,
                device: device_name,
            })
        }
    }
}

/// Runs the PyTorch reference; `Ok(None)` with a reason when PyTorch is not installed.
fn torch_side(
    args: &BenchArgs,
    source: &ModelSource,
    device: &Device,
) -> Result<std::result::Result<serde_json::Value, String>> {
    let check = std::process::Command::new(&args.python)
        .args(["-c", "import torch, transformers"])
        .output();
    match check {
        Ok(o) if o.status.success() => {}
        _ => {
            return Ok(Err(format!(
                "PyTorch reference skipped: `{} -c 'import torch, transformers'` failed (pip install torch transformers)",
                args.python
            )))
        }
    }
    // transformers reads a GGUF file itself, anything else from its folder.
    let dir: PathBuf = source.location.clone();
    let torch_device = if device.is_cuda() { "cuda" } else { "cpu" };
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bench/torch_reference.py");
    let kind = match args.kind {
        BenchKind::Embed => "embed",
        BenchKind::Train => "train",
    };
    let out = std::process::Command::new(&args.python)
        .arg(&script)
        .arg(kind)
        .arg(&dir)
        .args([
            "--batch",
            &args.batch.to_string(),
            "--seq",
            &args.seq.to_string(),
        ])
        .args(["--steps", &args.steps.to_string()])
        .args(["--pooling", source.pooling.name()])
        .args(["--device", torch_device, "--dtype", &args.dtype])
        .args(match (args.lora, args.train_layers) {
            (Some(r), _) => vec!["--lora".to_string(), r.to_string()],
            (None, Some(k)) => vec!["--train-layers".to_string(), k.to_string()],
            (None, None) => vec![],
        })
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed:\n{}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let line = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(line.trim().lines().last().unwrap_or(""))
        .with_context(|| format!("reading the output of {}: {line}", script.display()))?;
    Ok(Ok(v))
}

/// Runs `w2s bench`.
pub fn run(args: BenchArgs, _quiet: bool) -> Result<()> {
    let store = Store::open();
    let source = w2s_models::resolve(&args.model, &store)?;
    let device = w2s_models::default_device();
    let w2s = w2s_side(&args, &source, &device)?;
    let (w2s_tps, w2s_mb) = (w2s.tokens_per_second, w2s.peak_rss_mb);
    let torch = if args.no_torch {
        Err("PyTorch reference skipped (--no-torch)".to_string())
    } else {
        torch_side(&args, &source, &device)?
    };
    let torch_tps = torch
        .as_ref()
        .ok()
        .and_then(|v| v["tokens_per_second"].as_f64());
    let ratio = torch_tps.map(|t| w2s_tps / t);
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "kind": format!("{:?}", args.kind).to_lowercase(), "model": args.model,
                "batch": args.batch, "seq": args.seq, "steps": args.steps, "dtype": args.dtype,
                "adapt": format!("{:?}", adapt_of(&args)), "device": w2s.device,
                "w2s": {"tokens_per_second": w2s_tps, "peak_rss_mb": w2s_mb, "check": w2s.check},
                "pytorch": torch.as_ref().ok(), "ratio_w2s_over_pytorch": ratio,
                "note": torch.as_ref().err(),
            })
        );
        return Ok(());
    }
    println!(
        "{:?} {} batch {} x {} tokens, {} timed steps, {} on {}",
        args.kind, args.model, args.batch, args.seq, args.steps, args.dtype, w2s.device
    );
    println!(
        "  w2s      {w2s_tps:>9.0} tokens/s   peak RSS {w2s_mb:>6.0} MB   {} {:.6}",
        if args.kind == BenchKind::Train {
            "loss"
        } else {
            "mean feature"
        },
        w2s.check
    );
    match &torch {
        Ok(v) => println!(
            "  pytorch  {:>9.0} tokens/s   peak RSS {:>6.0} MB   (torch {}, {} threads)",
            v["tokens_per_second"].as_f64().unwrap_or(f64::NAN),
            v["peak_rss_mb"].as_f64().unwrap_or(f64::NAN),
            v["torch"].as_str().unwrap_or("?"),
            v["threads"]
        ),
        Err(note) => println!("  {note}"),
    }
    if let Some(r) = ratio {
        println!("  ratio w2s / pytorch = {r:.2}");
    }
    Ok(())
}
