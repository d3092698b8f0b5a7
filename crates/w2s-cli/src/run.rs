//! `w2s run`: the weak-to-strong experiment on one or more datasets, with every seed and method.
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use w2s_experiment::{ExperimentConfig, Method, RunSpec};
use w2s_train::Loss;

/// The demo's datasets: the sentiment sets where probe mode has a gap (docs/experiment.md).
pub const DEMO_DATA: [&str; 2] = ["tweets", "pang-lee-sentences"];

const RUN_HELP: &str = "\
For each dataset and seed: the rows are split by group into A / B / val / test; the weak model is
trained on A with ground truth and labels B and val; the strong ceiling is trained on B with ground
truth; one student per method is trained on B with the weak labels (after the method's label
steps), early-stopped on the weak-labelled val rows only. PGR = (student - weak) / (ceiling - weak) on test accuracy, reported only when the
ceiling beats the weak model in every seed (otherwise \"no gap\").

Every trained model is stored under OUT/store keyed by everything it depends on, and reused by later
runs and sweeps; run records and per-example predictions go to OUT/runs, the report to OUT/report.

With no arguments: the demo, minilm-l3 -> mpnet-base on tweets and pang-lee-sentences, xent and
logconf, 3 seeds.";

const RUN_EXAMPLES: &str = "Examples:
  w2s run
  w2s run --data tweets --weak minilm-l3 --strong mpnet-base --loss xent,logconf --json
  w2s run --data my.jsonl --weak minilm-l3 --strong minilm-l6
  w2s run --data tweets --chain minilm-l3,minilm-l6,e5-small,mpnet-base --loss xent
  w2s run --data tweets --weak hf:gpt2 --strong hf:EleutherAI/pythia-410m --mode finetune --lora 8
  w2s run --data tweets --method xent,conf-filter:0.8+xent,knn:10+logconf,bag:3+xent
  w2s run --data tweets --weak minilm-l3+e5-small --strong mpnet-base
  w2s run --data fashion-mnist --weak pixels --strong efficientnet-lite0 --max-rows 6000
  w2s run --data my-images/ --chain pixels,efficientnet-lite0,efficientnet-lite2";

/// Arguments of `w2s run`.
#[derive(Debug, clap::Args)]
#[command(after_help = run_after_help())]
pub struct RunArgs {
    /// Dataset: a built-in name (`w2s data list`), a .jsonl/.csv/.parquet file or a Hugging Face
    /// `save_to_disk` folder with a text and a 0/1 label column; or images (K classes, probe
    /// mode): fashion-mnist, an image folder (one sub-folder per class) or a Parquet/save_to_disk
    /// dataset with --image-column. Repeat for several.
    #[arg(long = "data", value_name = "NAME|PATH")]
    data: Vec<String>,
    #[command(flatten)]
    columns: crate::data::ColumnArgs,
    /// Weak supervisor model (see the list below the options).
    #[arg(long, conflicts_with = "chain", help = model_help())]
    weak: Option<String>,
    /// Strong student model (same choices as --weak).
    #[arg(long, conflicts_with = "chain")]
    strong: Option<String>,
    /// Bootstrapping: weak,m1,...,strong; each model is trained on the previous one's labels of B.
    /// Direct weak -> strong transfer is run on the same seeds for comparison.
    #[arg(long, value_delimiter = ',', value_name = "M1,M2,...")]
    chain: Vec<String>,
    /// Student methods, comma-separated: a loss, or label steps and a loss joined by `+`
    /// (`conf-filter:0.8+xent`, `knn:10+logconf`); "all" for every loss and every step (listed
    /// below). `--loss` is the same option.
    #[arg(
        long,
        alias = "loss",
        value_delimiter = ',',
        default_value = "xent,logconf"
    )]
    method: Vec<String>,
    /// Number of seeds (0..N): each gives its own split and training order.
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    #[command(flatten)]
    settings: crate::settings::SettingArgs,
    /// Output folder (store, run records, predictions, report).
    #[arg(long, default_value = "w2s-out")]
    out: PathBuf,
    /// Do not write the HTML/PNG/SVG report.
    #[arg(long)]
    no_report: bool,
    /// Print one JSON object {"runs": [...], "summary": [...]} instead of tables.
    #[arg(long)]
    json: bool,
}

/// The help of `--weak`: built-in names and supported `model_type`s, from the registries.
pub fn model_help() -> String {
    let builtin: Vec<&str> = w2s_models::BUILTIN.iter().map(|b| b.name).collect();
    format!(
        "Weak supervisor model: {}; or bring your own: hf:ORG/NAME from the local Hugging Face \
         cache, a Hugging Face model folder (config.json, safetensors, tokenizer.json) whose \
         model_type is one of {}, or a .gguf file (Llama, Qwen2, Gemma3). For images: {}, {} \
         or a Hugging Face vision folder (config.json, safetensors, preprocessor_config.json) \
         whose model_type is one of {}",
        builtin.join(", "),
        w2s_models::arch::supported_model_types(),
        w2s_models::PIXELS,
        w2s_models::vision::vision_builtin_names(),
        w2s_models::vision::supported_vision_types()
    )
}

/// What `w2s run --help` prints after the options: the experiment, the methods (from the
/// registries) and examples.
fn run_after_help() -> String {
    format!(
        "{RUN_HELP}\n\nMethods (--method; docs/methods.md). Losses:\n{}\nLabel steps, before the loss:\n{}\n\n{RUN_EXAMPLES}",
        Loss::ALL
            .iter()
            .map(|l| format!("  {:<16} {}", l.name(), l.help()))
            .collect::<Vec<_>>()
            .join("\n"),
        w2s_experiment::methods::steps_help()
    )
}

/// Parses method strings ("all" expands to every loss and every label step).
pub fn parse_methods(names: &[String]) -> Result<Vec<Method>> {
    w2s_experiment::parse_methods(names).map_err(anyhow::Error::msg)
}

/// Runs `w2s run`.
pub fn run(args: RunArgs, quiet: bool) -> Result<()> {
    let demo = args.data.is_empty()
        && args.weak.is_none()
        && args.strong.is_none()
        && args.chain.is_empty();
    let data: Vec<String> = if args.data.is_empty() {
        DEMO_DATA.iter().map(|s| s.to_string()).collect()
    } else {
        args.data.iter().map(|d| args.columns.apply(d)).collect()
    };
    let chain: Vec<String> = if !args.chain.is_empty() {
        if args.chain.len() < 2 {
            bail!("--chain needs at least two models (weak,strong)");
        }
        args.chain.clone()
    } else {
        // Images get the vision ladder's ends, texts the demo's.
        let images = !data.is_empty() && data.iter().all(|d| w2s_data::names_images(d));
        let (weak, strong) = if images {
            (w2s_models::PIXELS, "efficientnet-lite0")
        } else {
            ("minilm-l3", "mpnet-base")
        };
        vec![
            args.weak.clone().unwrap_or_else(|| weak.into()),
            args.strong.clone().unwrap_or_else(|| strong.into()),
        ]
    };
    let methods = parse_methods(&args.method)?;
    if args.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    let cfg = ExperimentConfig::from_table(&args.settings.0).map_err(anyhow::Error::msg)?;
    if demo && !quiet && !args.json {
        eprintln!(
            "w2s demo: {} on {} ({} seeds, methods {}); see `w2s run --help` for options",
            chain.join(" -> "),
            data.join(", "),
            args.seeds,
            methods
                .iter()
                .map(|m| m.name())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let mut specs = Vec::new();
    for d in &data {
        for method in &methods {
            for seed in 0..args.seeds {
                specs.push(RunSpec {
                    dataset: d.clone(),
                    chain: chain.clone(),
                    method: method.clone(),
                    seed,
                });
            }
        }
    }
    crate::execute::tidy(&args.out);
    let (records, counts) = crate::execute::execute(
        &specs,
        cfg,
        Default::default(),
        &args.out,
        quiet || args.json,
    )?;
    let summary = w2s_experiment::summarize(&records);
    if args.json {
        crate::execute::print_json(&records, &summary, counts, &args.out)?;
    } else {
        crate::execute::print_tables(&records, &summary);
        println!(
            "{} models trained, {} reused (store: {})",
            counts.computed,
            counts.reused,
            args.out.join("store").display()
        );
    }
    if !args.no_report {
        let all = w2s_experiment::read_runs(&args.out)
            .with_context(|| format!("reading runs in {}", args.out.display()))?;
        let index = w2s_report::write_report(&args.out, &all)
            .with_context(|| format!("writing the report in {}", args.out.display()))?;
        if !args.json && !quiet {
            println!("report: {}", index.display());
        }
    }
    Ok(())
}
