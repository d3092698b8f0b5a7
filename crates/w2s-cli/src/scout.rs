//! `w2s scout`: which (weak, strong) pairs of a ladder have a gap worth a sweep on a dataset.
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::PathBuf;
use w2s_experiment::metrics::{mean_ci, MeanCi};
use w2s_experiment::scout::{near_chance, Verdict, MIN_USABLE_GAP, NEAR_CHANCE};
use w2s_experiment::{ExperimentConfig, Runner};

/// Arguments of `w2s scout`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
For every seed, each model is trained in probe mode on ground truth, on A (as a weak model is)
and on B (as a ceiling is), through the same stored nodes a run uses: a later `w2s sweep` or
`w2s run` into the same --out reuses them. For every weaker -> stronger pair (the ladder's order)
the gap is the ceiling's test accuracy minus the weak model's, per seed, with a t-based 95%
interval over seeds. Verdicts: usable (the interval excludes 0 and the mean gap is at least 3
points), marginal (a positive mean gap below that), no gap. A pair is also marked when its weak
model is within 10 points of chance (the test set's majority share): such labels carry little
signal, and in docs/results.md students trained on them mostly landed at or below the weak
model.

Examples:
  w2s scout --data tweets
  w2s scout --data boolq,fever --models minilm-l3,mpnet-base --seeds 5 --json")]
pub struct ScoutArgs {
    /// Datasets: built-in names or files (.jsonl, .csv, .parquet, save_to_disk folders),
    /// comma-separated.
    #[arg(long, value_delimiter = ',', required = true, value_name = "NAME|PATH")]
    data: Vec<String>,
    #[command(flatten)]
    columns: crate::data::ColumnArgs,
    /// The ladder, weakest first [default: minilm-l3,minilm-l6,e5-small,mpnet-base; for image
    /// datasets pixels,efficientnet-lite0,efficientnet-lite2].
    #[arg(long, value_delimiter = ',')]
    models: Vec<String>,
    /// Seeds 0..N.
    #[arg(long, default_value_t = 5)]
    seeds: u64,
    /// Rows kept per dataset (balanced, capped, as in `w2s run`).
    #[arg(long)]
    max_rows: Option<usize>,
    /// Maximum tokens per row.
    #[arg(long)]
    max_len: Option<usize>,
    /// Precision of the frozen weights (as `w2s run --dtype`): int8 makes decoders' features
    /// 2–3× faster on a CPU with AVX-512 VNNI.
    #[arg(long, default_value = "f32", value_parser = w2s_models::WeightDtype::NAMES)]
    dtype: String,
    /// Output folder holding the store (the same as a later sweep's to share its nodes).
    #[arg(long, default_value = "w2s-out")]
    out: PathBuf,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    json: bool,
}

/// One model's accuracies over seeds.
#[derive(Debug, Serialize)]
struct ModelRow {
    model: String,
    /// Trained on A.
    weak_acc: MeanCi,
    /// Trained on B.
    ceiling_acc: MeanCi,
}

/// One pair's gap.
#[derive(Debug, Serialize)]
struct PairRow {
    weak: String,
    strong: String,
    /// Ceiling(strong) − weak(weak) test accuracy, over seeds.
    gap: MeanCi,
    verdict: Verdict,
    /// The weak model's mean test accuracy is within `NEAR_CHANCE` of `chance`.
    weak_near_chance: bool,
}

/// One dataset's scouting.
#[derive(Debug, Serialize)]
struct DatasetRow {
    dataset: String,
    seeds: u64,
    /// Rows of A, B, val, test (seed 0).
    rows: [usize; 4],
    /// Chance level: the test rows' majority share, mean over seeds.
    chance: f64,
    models: Vec<ModelRow>,
    pairs: Vec<PairRow>,
}

/// Runs `w2s scout`.
pub fn run(mut args: ScoutArgs, quiet: bool) -> Result<()> {
    if args.models.is_empty() {
        let images = args
            .data
            .iter()
            .all(|d| w2s_data::names_images(&args.columns.apply(d)));
        let ladder: &[&str] = if images {
            &[
                w2s_models::PIXELS,
                "efficientnet-lite0",
                "efficientnet-lite2",
            ]
        } else {
            &["minilm-l3", "minilm-l6", "e5-small", "mpnet-base"]
        };
        args.models = ladder.iter().map(|m| m.to_string()).collect();
    }
    if args.models.len() < 2 {
        bail!("--models needs at least two models, weakest first");
    }
    if args.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    let mut cfg = ExperimentConfig::default();
    if let Some(n) = args.max_rows {
        cfg.max_rows = n;
    }
    if let Some(n) = args.max_len {
        cfg.max_len = n;
    }
    cfg.dtype = w2s_models::WeightDtype::parse(&args.dtype)
        .with_context(|| format!("--dtype {}", args.dtype))?;
    let data: Vec<String> = args.data.iter().map(|d| args.columns.apply(d)).collect();
    let assets = w2s_assets::Store::open();
    let total = (data.len() * args.models.len()) as u64 * args.seeds;
    let bar = crate::progress::bar(quiet || args.json, total, "models", "scouting");
    let mut runner = Runner::new(&assets, &args.out, cfg, Box::new(|_| {}));
    let specs: Vec<w2s_experiment::RunSpec> = data
        .iter()
        .map(|d| w2s_experiment::RunSpec {
            dataset: d.clone(),
            chain: args.models.clone(),
            method: w2s_experiment::Method::parse("xent").expect("xent is a method"),
            seed: 0,
        })
        .collect();
    runner.prepare(&specs)?;
    let mut out = Vec::new();
    for dataset in &data {
        // acc[model][seed] = [as weak, as ceiling]
        let mut acc = vec![Vec::new(); args.models.len()];
        let mut chance = 0.0;
        for seed in 0..args.seeds {
            chance += runner.test_majority_share(dataset, seed)? / args.seeds as f64;
            for (m, model) in args.models.iter().enumerate() {
                bar.set_message(format!("{model} on {dataset}, seed {seed}"));
                let a = runner
                    .ground_truth_accuracies(model, dataset, seed)
                    .with_context(|| format!("{model} on {dataset}, seed {seed}"))?;
                acc[m].push(a);
                bar.inc(1);
            }
        }
        let of = |m: usize, role: usize| -> Vec<f64> { acc[m].iter().map(|a| a[role]).collect() };
        let models: Vec<ModelRow> = args
            .models
            .iter()
            .enumerate()
            .map(|(m, model)| ModelRow {
                model: model.clone(),
                weak_acc: mean_ci(&of(m, 0)),
                ceiling_acc: mean_ci(&of(m, 1)),
            })
            .collect();
        let mut pairs = Vec::new();
        for w in 0..args.models.len() {
            for s in w + 1..args.models.len() {
                let gaps: Vec<f64> = (0..args.seeds as usize)
                    .map(|i| acc[s][i][1] - acc[w][i][0])
                    .collect();
                let gap = mean_ci(&gaps);
                pairs.push(PairRow {
                    weak: args.models[w].clone(),
                    strong: args.models[s].clone(),
                    gap,
                    verdict: Verdict::of(&gap),
                    weak_near_chance: near_chance(models[w].weak_acc.mean, chance),
                });
            }
        }
        out.push(DatasetRow {
            dataset: dataset.clone(),
            seeds: args.seeds,
            rows: runner.split_sizes(dataset, 0)?,
            chance,
            models,
            pairs,
        });
    }
    bar.finish_and_clear();
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&serde_json::json!({ "datasets": out }))?
        );
        return Ok(());
    }
    for d in &out {
        print_dataset(d);
    }
    println!(
        "\nusable: the gap's 95% interval over seeds excludes 0 and its mean is at least {:.0} points.",
        100.0 * MIN_USABLE_GAP
    );
    if out
        .iter()
        .flat_map(|d| &d.pairs)
        .any(|p| p.weak_near_chance)
    {
        println!(
            "weak near chance: the weak model is within {:.0} points of chance, so its labels carry little signal (in docs/results.md, students trained on such labels mostly landed at or below the weak model).",
            100.0 * NEAR_CHANCE
        );
    }
    Ok(())
}

fn pm(v: &MeanCi) -> String {
    if v.ci95.is_finite() {
        format!("{:.1} ± {:.1}", 100.0 * v.mean, 100.0 * v.ci95)
    } else {
        format!("{:.1}", 100.0 * v.mean)
    }
}

fn print_dataset(d: &DatasetRow) {
    let [a, b, val, test] = d.rows;
    println!(
        "\n{}  ({} seeds; A {a} / B {b} / val {val} / test {test}; chance {:.1}%)",
        d.dataset,
        d.seeds,
        100.0 * d.chance
    );
    println!(
        "  {:<16} {:>16} {:>18}",
        "model", "trained on A", "trained on B"
    );
    for m in &d.models {
        println!(
            "  {:<16} {:>16} {:>18}",
            m.model,
            pm(&m.weak_acc),
            pm(&m.ceiling_acc)
        );
    }
    println!("  {:<34} {:>16}  verdict", "weak -> strong", "gap (points)");
    for p in &d.pairs {
        let gap = if p.gap.ci95.is_finite() {
            format!("{:+.1} ± {:.1}", 100.0 * p.gap.mean, 100.0 * p.gap.ci95)
        } else {
            format!("{:+.1}", 100.0 * p.gap.mean)
        };
        println!(
            "  {:<34} {:>16}  {}{}",
            format!("{} -> {}", p.weak, p.strong),
            gap,
            p.verdict.name(),
            if p.weak_near_chance {
                ", weak near chance"
            } else {
                ""
            }
        );
    }
}
