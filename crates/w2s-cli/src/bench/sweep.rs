//! `w2s bench sweep`: the wall time of a small probe sweep with every model's features computed
//! once and shared by all runs (w2s), against every run computing its own from scratch, as the
//! official code does (each run is one process that embeds with both of its models).
use super::BenchArgs;
use anyhow::{bail, Context, Result};
use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;
use std::time::Instant;
use w2s_assets::Store;
use w2s_experiment::{Event, ExperimentConfig, RunRecord, RunSpec, Runner};

/// What one side of the sweep bench measured.
struct SweepSide {
    seconds: f64,
    /// Seconds spent computing features (from the first to the last batch of each model).
    embed_seconds: f64,
    /// Feature extractions (model × dataset) computed.
    embeddings: usize,
    records: Vec<RunRecord>,
}

/// Times feature extraction through the runner's events.
#[derive(Default)]
struct EmbedClock {
    started: Option<Instant>,
    seconds: f64,
    count: usize,
}

impl EmbedClock {
    fn on_event(&mut self, e: &Event) {
        if let Event::Embedding { done, total, .. } = *e {
            if done == 0 || self.started.is_none() {
                self.started.get_or_insert_with(Instant::now);
            }
            if done >= total {
                if let Some(s) = self.started.take() {
                    self.seconds += s.elapsed().as_secs_f64();
                }
                self.count += 1;
            }
        }
    }
}

/// The grid: every weaker → stronger pair of the ladder × losses × seeds on one dataset.
fn specs(args: &BenchArgs) -> Result<Vec<RunSpec>> {
    let models: Vec<String> = args
        .models
        .split(',')
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty())
        .collect();
    if models.len() < 2 {
        bail!("--models needs at least two models, weakest first");
    }
    let names: Vec<String> = args.losses.split(',').map(str::to_string).collect();
    let methods = crate::run::parse_methods(&names)?;
    let mut specs = Vec::new();
    for seed in 0..args.seeds.max(1) {
        for (i, weak) in models.iter().enumerate() {
            for strong in &models[i + 1..] {
                for method in &methods {
                    specs.push(RunSpec {
                        dataset: args.data.clone(),
                        chain: vec![weak.clone(), strong.clone()],
                        method: method.clone(),
                        seed,
                    });
                }
            }
        }
    }
    Ok(specs)
}

/// Runs `specs` through runners in fresh folders under `dir`: one runner for all of them
/// (`shared`), or a fresh runner, store and feature cache for each.
fn side(
    store: &Store,
    specs: &[RunSpec],
    cfg: ExperimentConfig,
    dir: &Path,
    shared: bool,
    bar: &indicatif::ProgressBar,
) -> Result<SweepSide> {
    let clock = Rc::new(RefCell::new(EmbedClock::default()));
    let runner_in = |sub: &Path| -> Runner<'_> {
        let clock = clock.clone();
        Runner::new(
            store,
            &sub.join("out"),
            cfg,
            Box::new(move |e| clock.borrow_mut().on_event(&e)),
        )
        .with_feature_root(sub)
    };
    let start = Instant::now();
    let mut records = Vec::with_capacity(specs.len());
    let mut one = shared.then(|| runner_in(dir));
    for (i, spec) in specs.iter().enumerate() {
        let mut fresh;
        let runner = match one.as_mut() {
            Some(r) => r,
            None => {
                fresh = runner_in(&dir.join(format!("run{i}")));
                &mut fresh
            }
        };
        runner.prepare(std::slice::from_ref(spec))?;
        let record = runner
            .run(spec)
            .with_context(|| format!("run {}", spec.describe()))?;
        records.push(record);
        bar.inc(1);
    }
    let seconds = start.elapsed().as_secs_f64();
    let clock = clock.borrow();
    Ok(SweepSide {
        seconds,
        embed_seconds: clock.seconds,
        embeddings: clock.count,
        records,
    })
}

/// The numbers two sides must agree on, run by run.
fn outcomes(records: &[RunRecord]) -> Vec<(f64, f64, f64)> {
    records
        .iter()
        .map(|r| (r.weak_acc, r.ceiling_acc, r.student_acc))
        .collect()
}

/// Runs `w2s bench sweep`.
pub fn run(args: &BenchArgs, quiet: bool) -> Result<()> {
    let store = Store::open();
    let specs = specs(args)?;
    let cfg = ExperimentConfig {
        max_rows: args.max_rows,
        ..ExperimentConfig::default()
    };
    let tmp = tempfile::tempdir().context("creating a scratch folder")?;
    let mut sides = Vec::new();
    for (name, shared) in [("features once", true), ("features every run", false)] {
        let bar = crate::progress::bar(
            quiet || args.json,
            specs.len() as u64,
            "runs",
            &format!("sweep, {name}"),
        );
        let dir = tmp.path().join(if shared { "once" } else { "every" });
        sides.push(side(&store, &specs, cfg, &dir, shared, &bar)?);
        bar.finish_and_clear();
    }
    let (once, every) = (&sides[0], &sides[1]);
    let identical = outcomes(&once.records) == outcomes(&every.records);
    let speedup = every.seconds / once.seconds;
    let side_json = |s: &SweepSide| {
        serde_json::json!({"seconds": s.seconds, "embed_seconds": s.embed_seconds,
            "embeddings": s.embeddings})
    };
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "kind": "sweep", "data": args.data, "models": args.models, "losses": args.losses,
                "seeds": args.seeds, "max_rows": args.max_rows, "runs": specs.len(),
                "cpu": super::cpu_model(), "features_once": side_json(once),
                "features_every_run": side_json(every), "speedup": speedup,
                "identical_results": identical,
            })
        );
    } else {
        println!(
            "Sweep {} x [{}] pairs x [{}] x {} seeds = {} probe runs, at most {} rows",
            args.data,
            args.models,
            args.losses,
            args.seeds,
            specs.len(),
            args.max_rows
        );
        println!("  cpu      {}", super::cpu_model());
        for (name, s) in [("features once", once), ("every run", every)] {
            println!(
                "  {name:<14} {:>8.1} s   ({} feature extractions, {:.1} s of them)",
                s.seconds, s.embeddings, s.embed_seconds
            );
        }
        println!("  ratio every run / once = {speedup:.1}");
        println!(
            "  results {}",
            if identical {
                "identical run by run (weak, ceiling and student accuracy)"
            } else {
                "DIFFER between the two sides"
            }
        );
    }
    if !identical {
        bail!(
            "the two sides of the sweep bench disagree: features or training are not deterministic"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: BenchArgs,
    }

    #[test]
    fn the_default_grid_is_every_pair_of_the_four_encoders_two_losses_three_seeds() {
        let cli = Cli::try_parse_from(["bench", "sweep"]).unwrap();
        let specs = specs(&cli.args).unwrap();
        assert_eq!(specs.len(), 6 * 2 * 3);
        assert!(specs.iter().all(|s| s.dataset == "tweets"));
        let first = &specs[0];
        assert_eq!(first.chain, ["minilm-l3", "minilm-l6"]);
        assert!(specs
            .iter()
            .any(|s| s.chain == ["e5-small", "mpnet-base"] && s.seed == 2));
        let one = Cli::try_parse_from(["bench", "sweep", "--models", "minilm-l3"]).unwrap();
        assert!(super::specs(&one.args).is_err());
    }

    #[test]
    fn the_clock_counts_each_extraction_once() {
        let mut clock = EmbedClock::default();
        for (done, total) in [(0, 64), (32, 64), (64, 64), (0, 10), (10, 10)] {
            clock.on_event(&Event::Embedding {
                model: "m",
                dataset: "d",
                done,
                total,
                resumed: 0,
            });
        }
        assert_eq!(clock.count, 2);
        assert!(clock.started.is_none());
        assert!(clock.seconds >= 0.0);
    }
}
