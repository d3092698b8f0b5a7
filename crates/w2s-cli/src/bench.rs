//! `w2s bench`: throughput of w2s against a PyTorch reference on the same model, batch and step,
//! run in the same invocation. A benchmark, never a test: it asserts nothing about time.
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::time::Instant;
use w2s_assets::Store;
use w2s_train::{fit_plain, Adapt, EncoderClassifier, Loss, LrSchedule, TrainConfig};

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
Both sides use the same weights (the w2s asset folder), a batch of BATCH x SEQ token ids with no
padding, one warm-up step and then STEPS timed steps. The PyTorch side is bench/torch_reference.py
(transformers' model classes, eager attention); it runs when `python3 -c 'import torch,
transformers'` works (`pip install torch transformers`), and is skipped with a note otherwise.

Examples:
  w2s bench embed --model minilm-l6
  w2s bench train --model mpnet-base --batch 16 --seq 128")]
pub struct BenchArgs {
    /// embed or train.
    kind: BenchKind,
    /// Model (built-in name or folder).
    #[arg(long, default_value = "minilm-l6")]
    model: String,
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

/// Token ids that are not special tokens, deterministic.
fn ids(batch: usize, seq: usize, vocab_hint: u32) -> Vec<Vec<u32>> {
    (0..batch)
        .map(|b| {
            (0..seq)
                .map(|t| 1000 + ((b * 7919 + t * 104_729) as u32 % (vocab_hint - 1001)))
                .collect()
        })
        .collect()
}

fn w2s_side(args: &BenchArgs, store: &Store) -> Result<(f64, f64)> {
    let source = w2s_models::resolve(&args.model, store)?;
    let device = w2s_models::default_device();
    let tokens = (args.batch * args.seq * args.steps) as f64;
    match args.kind {
        BenchKind::Embed => {
            let encoder = w2s_models::Encoder::load(&source, &device)?;
            let rows = ids(args.batch, args.seq, 30_000);
            encoder.embed_ids(&rows)?; // warm-up
            let start = Instant::now();
            for _ in 0..args.steps {
                encoder.embed_ids(&rows)?;
            }
            Ok((tokens / start.elapsed().as_secs_f64(), peak_rss_mb()))
        }
        BenchKind::Train => {
            // Texts of exactly `seq` tokens are hard to come by; the classifier is given ids.
            let texts: Vec<String> = (0..args.batch).map(|_| "x".to_string()).collect();
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let mut model =
                EncoderClassifier::new(&source, &refs, args.seq, Adapt::All, 1.0, &device)?;
            model.set_ids(ids(args.batch, args.seq, 30_000));
            let rows: Vec<usize> = (0..args.batch).collect();
            let targets = vec![[0.3f32, 0.7]; args.batch];
            let step = |epochs: usize| -> Result<f64> {
                let cfg = TrainConfig {
                    epochs,
                    batch_size: args.batch,
                    lr: 5e-5,
                    lr_schedule: LrSchedule::Constant,
                    early_stopping: false,
                    ..TrainConfig::default()
                };
                let report = fit_plain("bench", &model, &rows, &targets, Loss::Xent, &cfg, 0)?;
                Ok(report.epochs.iter().map(|e| e.train_seconds).sum())
            };
            step(1)?; // warm-up
            let seconds = step(args.steps)?;
            Ok((tokens / seconds, peak_rss_mb()))
        }
    }
}

/// Runs the PyTorch reference; `Ok(None)` with a reason when PyTorch is not installed.
fn torch_side(
    args: &BenchArgs,
    store: &Store,
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
    let source = w2s_models::resolve(&args.model, store)?;
    // transformers reads a decoder's GGUF file itself, an encoder from its asset folder.
    let dir: PathBuf = if source.arch == w2s_models::Arch::Decoder {
        source.weights.clone()
    } else {
        source
            .weights
            .parent()
            .context("model folder")?
            .to_path_buf()
    };
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
    let (w2s_tps, w2s_mb) = w2s_side(&args, &store)?;
    let torch = if args.no_torch {
        Err("PyTorch reference skipped (--no-torch)".to_string())
    } else {
        torch_side(&args, &store)?
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
                "batch": args.batch, "seq": args.seq, "steps": args.steps,
                "w2s": {"tokens_per_second": w2s_tps, "peak_rss_mb": w2s_mb},
                "pytorch": torch.as_ref().ok(), "ratio_w2s_over_pytorch": ratio,
                "note": torch.as_ref().err(),
            })
        );
        return Ok(());
    }
    println!(
        "{:?} {} batch {} x {} tokens, {} timed steps",
        args.kind, args.model, args.batch, args.seq, args.steps
    );
    println!("  w2s      {w2s_tps:>9.0} tokens/s   peak RSS {w2s_mb:>6.0} MB");
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
