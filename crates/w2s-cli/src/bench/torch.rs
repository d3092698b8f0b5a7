//! The PyTorch side of a bench: whether it can run, and the timing script it runs.
use super::*;

/// Whether `python -c 'import torch, transformers'` works; the reason to skip PyTorch otherwise.
pub(super) fn torch_available(args: &BenchArgs) -> std::result::Result<(), String> {
    if args.no_torch {
        return Err("PyTorch reference skipped (--no-torch)".to_string());
    }
    let check = std::process::Command::new(&args.python)
        .args(["-c", "import torch, transformers"])
        .output();
    match check {
        Ok(o) if o.status.success() => Ok(()),
        _ => Err(format!(
            "PyTorch reference skipped: `{} -c 'import torch, transformers'` failed (pip install torch transformers)",
            args.python
        )),
    }
}

/// Runs bench/torch_reference.py with `extra` arguments and reads its JSON line.
pub(super) fn torch_script(args: &BenchArgs, extra: &[String]) -> Result<serde_json::Value> {
    run_script(args, "torch_reference.py", extra)
}

/// Runs `bench/SCRIPT` with `extra` arguments and reads the JSON object of its last line.
pub(super) fn run_script(
    args: &BenchArgs,
    script: &str,
    extra: &[String],
) -> Result<serde_json::Value> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../bench")
        .join(script);
    let out = std::process::Command::new(&args.python)
        .arg(&script)
        .args(extra)
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed ({}):\n{}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let line = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(line.trim().lines().last().unwrap_or(""))
        .with_context(|| format!("reading the output of {}: {line}", script.display()))
}

/// The PyTorch step with transformers' attention `attn` (sdpa or eager), in `dtype` (the
/// script's `int8` is PyTorch's dynamic int8 quantization of every Linear).
pub(super) fn torch_side(
    args: &BenchArgs,
    source: &ModelSource,
    device: &Device,
    attn: &str,
    dtype: &str,
) -> Result<serde_json::Value> {
    let torch_device = if device.is_cuda() { "cuda" } else { "cpu" };
    let kind = match args.kind {
        BenchKind::Train => "train",
        _ => "embed",
    };
    let mut extra: Vec<String> = vec![kind.into(), source.location.display().to_string()];
    for (flag, value) in [
        ("--batch", args.batch.to_string()),
        ("--seq", args.seq.to_string()),
        ("--steps", args.steps.to_string()),
        ("--pooling", source.pooling.name().to_string()),
        ("--device", torch_device.to_string()),
        ("--dtype", dtype.to_string()),
        ("--attn", attn.to_string()),
    ] {
        extra.push(flag.into());
        extra.push(value);
    }
    match (args.lora, args.train_layers) {
        (Some(r), _) => extra.extend(["--lora".to_string(), r.to_string()]),
        (None, Some(k)) => extra.extend(["--train-layers".to_string(), k.to_string()]),
        (None, None) => {}
    }
    torch_script(args, &extra)
}

/// A PyTorch side's tokens/s (NaN when the script did not report it).
pub(super) fn torch_tps(v: &serde_json::Value) -> f64 {
    v["tokens_per_second"].as_f64().unwrap_or(f64::NAN)
}

/// The fastest PyTorch round, with the largest peak RSS of any round.
pub(super) fn best_torch(rounds: Vec<serde_json::Value>) -> Option<serde_json::Value> {
    let rss_of = |v: &serde_json::Value| v["peak_rss_mb"].as_f64().unwrap_or(0.0);
    let (mut best, rss) = fastest(rounds, torch_tps, rss_of)?;
    best["peak_rss_mb"] = serde_json::json!(rss);
    Some(best)
}
