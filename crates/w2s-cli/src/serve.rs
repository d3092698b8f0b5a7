//! `w2s serve`: computes (or reads from the store) what each task of a task file needs, then
//! serves it with hidden test labels (w2s-serve; docs/serve.md).
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use w2s_experiment::{ExperimentConfig, RunRecord, RunSpec, Runner};
use w2s_serve::{Accuracies, Baselines, Task, TaskSpec, TestRow, TrainRow};

const SERVE_HELP: &str = "\
Each task of TASKS.toml is a dataset, a weak and a strong model, max_rows, a seed and a method:

  [[task]]
  id = \"sarcasm\"                 # the {id} of the API
  dataset = \"data/sarcasm.jsonl\" # a built-in name or a user file
  weak = \"minilm-l3\"
  strong = \"e5-small\"
  max_rows = 2000                # default 2000
  seed = 0                       # the served split; baselines use --seeds seeds from here
  method = \"xent\"                # the naive student's method, default xent

On start, w2s runs the weak model, the ceiling and the naive student for each task (or reads them
from the store in --out), then serves:

  GET  /v1/tasks                     tasks, sizes, baselines, your submissions left
  GET  /v1/tasks/{id}/train          rows B and val: id, text, weak_label
  GET  /v1/tasks/{id}/test           test rows: id, text
  POST /v1/tasks/{id}/submissions    {\"predictions\": {\"<test id>\": p, ...}, \"name\": \"...\"}
  GET  /v1/tasks/{id}/submissions    your submissions
  GET  /v1/leaderboard               every task's baselines and best submissions
  GET  /                             the leaderboard as a web page

Every /v1 request carries `Authorization: Bearer TOKEN`. Codes: 401 no or unknown token, 404
unknown task, 400 malformed body, 422 predictions that are not exactly the test ids or not
predictions, 429 budget spent. See docs/serve.md.";

/// Arguments of `w2s serve`.
#[derive(Debug, clap::Args)]
#[command(after_help = SERVE_HELP)]
pub struct ServeArgs {
    /// The task file (TOML, one [[task]] per task).
    #[arg(value_name = "TASKS.toml")]
    tasks: PathBuf,
    /// The submissions database (SQLite; created if missing). Budgets and the leaderboard are
    /// kept in it across restarts.
    #[arg(long, value_name = "PATH")]
    db: PathBuf,
    /// Address to listen on: loopback unless you open it on purpose.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port (0 picks a free one; the address is printed as `listening on http://ADDR`).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Callers, one `name token` per line. Without it, one caller `local` gets a random token,
    /// printed on start.
    #[arg(long, value_name = "FILE")]
    tokens: Option<PathBuf>,
    /// Submissions each caller may make on each task.
    #[arg(long, default_value_t = 10)]
    budget: usize,
    /// Seeds of the baselines, from each task's seed.
    #[arg(long, default_value_t = 5)]
    seeds: u64,
    /// Where the trained models (store) and run records are kept, as `w2s run --out`.
    #[arg(long, default_value = "w2s-out")]
    out: PathBuf,
}

/// Runs `w2s serve`.
pub fn run(args: ServeArgs, quiet: bool) -> Result<()> {
    let specs = w2s_serve::read_tasks(&args.tasks)?;
    if args.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    let (tokens, fresh) = match &args.tokens {
        Some(path) => (w2s_serve::Tokens::read(path)?, None),
        None => {
            let (tokens, token) = w2s_serve::Tokens::single("local");
            (tokens, Some(token))
        }
    };
    // The database first: a bad path fails before minutes of training.
    let db = w2s_serve::Db::open(&args.db)?;
    crate::execute::tidy(&args.out);
    let mut tasks = Vec::new();
    for spec in &specs {
        tasks.push(
            prepare(spec, args.seeds, &args.out, quiet)
                .with_context(|| format!("{}: task {}", args.tasks.display(), spec.id))?,
        );
    }
    if let Some(token) = fresh {
        eprintln!("no --tokens: caller `local` has the token {token}");
    }
    tracing::info!(
        tasks = tasks.len(),
        callers = tokens.len(),
        budget = args.budget,
        db = %args.db.display(),
        "serving"
    );
    w2s_serve::serve(
        w2s_serve::Server {
            tasks,
            tokens,
            db,
            budget: args.budget,
        },
        SocketAddr::new(args.host, args.port),
    )?;
    Ok(())
}

/// A task's baselines (weak, ceiling, naive student over `seeds` seeds, through the run graph and
/// its store) and its served split's rows.
fn prepare(spec: &TaskSpec, seeds: u64, out: &std::path::Path, quiet: bool) -> Result<Task> {
    let methods = crate::run::parse_methods(std::slice::from_ref(&spec.method))?;
    let [method] = &methods[..] else {
        bail!(
            "method {:?} names {} methods, not one",
            spec.method,
            methods.len()
        );
    };
    let cfg = ExperimentConfig {
        max_rows: spec.max_rows,
        ..ExperimentConfig::default()
    };
    let runs: Vec<RunSpec> = (spec.seed..spec.seed + seeds)
        .map(|seed| RunSpec {
            dataset: spec.dataset.clone(),
            chain: vec![spec.weak.clone(), spec.strong.clone()],
            method: method.clone(),
            seed,
        })
        .collect();
    let (records, _) = crate::execute::execute(&runs, cfg, Default::default(), out, quiet)?;
    let accuracies = |r: &RunRecord| Accuracies {
        weak: r.weak_acc,
        ceiling: r.ceiling_acc,
        naive_student: r.student_acc,
    };
    let mean = |f: fn(&RunRecord) -> f64| records.iter().map(f).sum::<f64>() / records.len() as f64;
    let served = records
        .iter()
        .find(|r| r.seed == spec.seed)
        .context("the served seed's run has no record")?;
    let baselines = Baselines {
        split: accuracies(served),
        mean: Accuracies {
            weak: mean(|r| r.weak_acc),
            ceiling: mean(|r| r.ceiling_acc),
            naive_student: mean(|r| r.student_acc),
        },
        seeds: records.len(),
        method: method.name(),
    };
    // The rows: the same store, so the weak node is the one the served seed's run trained.
    let assets = w2s_assets::Store::open();
    let mut runner = Runner::new(&assets, out, cfg, Box::new(|_| {}));
    runner.prepare(&runs[..1])?;
    let rows = runner.benchmark_rows(&runs[0])?;
    let weak_label = |p: &[f64]| {
        if rows.classes == 2 {
            json!(p[1])
        } else {
            json!(p)
        }
    };
    Ok(Task {
        id: spec.id.clone(),
        dataset: spec.dataset.clone(),
        weak: spec.weak.clone(),
        strong: spec.strong.clone(),
        classes: rows.classes,
        train: rows
            .train
            .iter()
            .map(|r| TrainRow {
                id: r.id.clone(),
                text: r.text.clone(),
                weak_label: weak_label(&r.weak),
            })
            .collect(),
        test: rows
            .test
            .iter()
            .map(|r| TestRow {
                id: r.id.clone(),
                text: r.text.clone(),
            })
            .collect(),
        labels: rows.test.iter().map(|r| r.label).collect(),
        baselines,
    })
}
