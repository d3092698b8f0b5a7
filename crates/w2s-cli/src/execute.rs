//! Running a list of runs with progress bars, and printing their tables: shared by `run` and `sweep`.
use anyhow::{Context, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget};
use std::collections::BTreeMap;
use std::path::Path;
use w2s_assets::Store;
use w2s_experiment::methods::zeroshot::Template;
use w2s_experiment::{Event, ExperimentConfig, NodeCounts, RunRecord, RunSpec, Runner, SummaryRow};
use w2s_report::{pct, pgr_text};

/// Removes what processes of this host that were killed left in `out` and in the feature cache:
/// temporary files and claims (`w2s_assets::cache::remove_leftovers`). Called once when a
/// command that writes into `out` starts (`run`, `sweep`, `serve`); live processes' files and
/// other hosts' are left alone.
pub fn tidy(out: &Path) {
    let features = Store::open().root().join("features");
    let removed =
        w2s_assets::cache::remove_leftovers(out) + w2s_assets::cache::remove_leftovers(&features);
    if removed > 0 {
        tracing::info!("removed {removed} temporary files and claims left by killed w2s processes");
    }
}

/// Runs every spec in order, with one bar over all runs (and one per feature extraction).
/// Results already in `out/store` are reused.
pub fn execute(
    specs: &[RunSpec],
    cfg: ExperimentConfig,
    templates: BTreeMap<String, Template>,
    out: &Path,
    quiet: bool,
) -> Result<(Vec<RunRecord>, NodeCounts)> {
    let store = Store::open();
    let multi = MultiProgress::with_draw_target(if quiet {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    });
    let overall = multi.add(crate::progress::bar(
        quiet,
        specs.len() as u64,
        "runs",
        "experiment",
    ));
    let mut embedding: Option<(String, ProgressBar)> = None;
    let overall_for_events = overall.clone();
    let multi_for_events = multi.clone();
    let on_event = move |e: Event| match e {
        Event::Embedding {
            model,
            dataset,
            done,
            total,
            resumed,
        } => {
            let id = format!("{model} on {dataset}");
            if embedding.as_ref().is_none_or(|(cur, _)| *cur != id) {
                if let Some((_, old)) = embedding.take() {
                    old.finish_and_clear();
                }
                let bar = multi_for_events.insert(
                    0,
                    crate::progress::bar(quiet, total as u64, "rows", &format!("embedding {id}")),
                );
                embedding = Some((id, bar));
            }
            if let Some((_, bar)) = &embedding {
                crate::progress::embedding(
                    bar,
                    w2s_models::EmbedProgress {
                        done,
                        total,
                        resumed,
                    },
                );
                if done >= total {
                    bar.finish_and_clear();
                }
            }
        }
        Event::Node {
            role,
            model,
            reused,
        } => {
            if !reused {
                overall_for_events.set_message(format!("trained {role} {model}"));
            }
        }
    };
    let mut runner =
        Runner::new(&store, out, cfg, Box::new(on_event)).with_zero_shot_templates(templates);
    runner.prepare(specs)?;
    let mut records = Vec::with_capacity(specs.len());
    for spec in specs {
        overall.set_message(spec.describe());
        let record = runner
            .run(spec)
            .with_context(|| format!("run {}", spec.describe()))?;
        records.push(record);
        overall.inc(1);
    }
    overall.finish_and_clear();
    let counts = runner.counts;
    Ok((records, counts))
}

/// `--executor local`: this machine, in this process (`--jobs 1`) or in worker processes.
pub const LOCAL: crate::sweep::ExecutorEntry = crate::sweep::ExecutorEntry {
    name: "local",
    help: "this machine: in this process, or in --jobs N worker processes",
    build: |args, _grid_id| {
        let jobs = args.jobs.unwrap_or(if args.gpus.is_empty() {
            1
        } else {
            args.gpus.len()
        });
        if jobs == 0 {
            anyhow::bail!("--jobs must be at least 1");
        }
        if jobs > 1 {
            return Ok(Box::new(crate::workers::Workers {
                jobs,
                gpus: args.gpus.clone(),
            }));
        }
        if !args.gpus.is_empty() {
            // SAFETY: set before the runs start any thread that reads the environment.
            unsafe { std::env::set_var("CUDA_VISIBLE_DEVICES", &args.gpus[0]) };
        }
        Ok(Box::new(InProcess))
    },
};

/// The local executor with one job: every run in this process, one after the other.
pub struct InProcess;

impl w2s_experiment::Executor for InProcess {
    fn name(&self) -> &'static str {
        "local"
    }

    fn execute(
        &self,
        grid: &w2s_experiment::Grid,
    ) -> Result<w2s_experiment::Outcome, w2s_experiment::ExecutorError> {
        let (records, counts) = execute(
            grid.specs,
            grid.cfg,
            grid.templates.clone(),
            grid.out,
            grid.quiet,
        )?;
        Ok(w2s_experiment::Outcome { records, counts })
    }
}

fn pct_ci(mean: f64, ci: f64) -> String {
    if ci.is_finite() {
        format!("{} ± {:.1}", pct(mean), 100.0 * ci)
    } else {
        pct(mean)
    }
}

/// Prints one table per (dataset, weak, strong, chain): weak, ceiling, then a row per loss.
pub fn print_tables(runs: &[RunRecord], summary: &[SummaryRow]) {
    let mut seen: Vec<String> = Vec::new();
    for row in summary {
        let id = format!(
            "{}|{}|{}|{:?}",
            row.dataset, row.weak, row.strong, row.chain
        );
        if seen.contains(&id) {
            continue;
        }
        seen.push(id.clone());
        let rows: Vec<&SummaryRow> = summary
            .iter()
            .filter(|r| format!("{}|{}|{}|{:?}", r.dataset, r.weak, r.strong, r.chain) == id)
            .collect();
        let first = runs
            .iter()
            .find(|r| r.dataset == row.dataset && r.weak == row.weak && r.strong == row.strong);
        let sizes = first
            .map(|r| {
                format!(
                    "A {} / B {} / val {} / test {}",
                    r.rows[0], r.rows[1], r.rows[2], r.rows[3]
                )
            })
            .unwrap_or_default();
        let path = match &row.chain {
            Some(c) => c.join(" → "),
            None => format!("{} → {}", row.weak, row.strong),
        };
        println!();
        println!(
            "{}: {path}  ({sizes}; {} seeds, {} labels)",
            row.dataset, row.n_seeds, row.labels
        );
        let gap = row.ceiling_acc - row.weak_acc;
        println!("  weak     {:<14} test acc {}", row.weak, pct(row.weak_acc));
        println!(
            "  ceiling  {:<14} test acc {}   (gap {:+.1} ± {:.1} points)",
            row.strong,
            pct(row.ceiling_acc),
            100.0 * gap,
            100.0 * row.gap_ci95
        );
        println!(
            "  {:<23} {:>13}  {:>16}  {:>10}  {:>9}  {:>13}{}",
            "student method",
            "test acc",
            "PGR (acc)",
            "PGR (AUROC)",
            "agreement",
            "agr. weak err",
            if row.chain.is_some() {
                "   direct acc"
            } else {
                ""
            }
        );
        for r in rows {
            let direct = r
                .direct_student_acc
                .map(|d| format!("   {:>10}", pct(d)))
                .unwrap_or_default();
            println!(
                "  {:<23} {:>13}  {:>16}  {:>10}  {:>9}  {:>13}{direct}",
                r.series,
                pct_ci(r.student_acc, r.student_acc_ci95),
                pgr_text(r),
                r.pgr_auroc_mean
                    .map(|p| format!("{p:.2}"))
                    .unwrap_or_else(|| "no gap".into()),
                pct(r.agreement),
                pct(r.agreement_on_weak_errors),
            );
        }
    }
    if summary
        .iter()
        .any(|r| r.gap_within_noise && r.pgr_mean.is_some())
    {
        println!(
            "\n* the ceiling-weak gap's 95% interval includes 0: that PGR is mostly seed noise."
        );
    }
    println!(
        "PGR = (student - weak) / (ceiling - weak), mean ± 95% CI over seeds; see docs/metrics.md."
    );
}

/// Prints `{"runs": [...], "summary": [...], ...}` on one line.
pub fn print_json(
    runs: &[RunRecord],
    summary: &[SummaryRow],
    counts: NodeCounts,
    out: &Path,
) -> Result<()> {
    let doc = serde_json::json!({
        "runs": runs, "summary": summary, "nodes": counts, "out": out,
    });
    println!("{}", serde_json::to_string(&doc)?);
    Ok(())
}
