//! `w2s sweep --jobs N`: N worker processes on this machine take the grid's stages (the plan of
//! [`w2s_experiment::execute`]) as they become ready: the features of every (model, dataset)
//! first, then each weak supervisor and ceiling, then each run, whose students read the weak
//! labels. The workers are this binary again
//! (`w2s sweep FILE --worker`), fed one task per line on stdin and answering one JSON line each on
//! stdout; all of them share the store, whose claims keep two from training one node.
//!
//! Each stage is a node of the content-addressed store computed from its own seed, so the records
//! are the same as with `--jobs 1`, whatever order the stages ran in.
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use w2s_experiment::execute::{plan, Stage, Task};
use w2s_experiment::methods::zeroshot::Template;
use w2s_experiment::{ExperimentConfig, NodeCounts, RunRecord, RunSpec, Runner};

/// A task line: an id and its stage.
#[derive(Debug, Serialize, Deserialize)]
struct TaskLine {
    id: usize,
    #[serde(flatten)]
    stage: Stage,
}

/// A worker's answer to one task.
#[derive(Debug, Serialize, Deserialize)]
struct Reply {
    id: usize,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    record: Option<RunRecord>,
    counts: NodeCounts,
}

/// What a sweep's workers need to know.
pub struct Pool<'a> {
    /// The sweep file (the workers read it again).
    pub file: &'a Path,
    /// The output folder.
    pub out: &'a Path,
    /// Worker processes.
    pub jobs: usize,
    /// GPUs to pin the workers to, one each, round-robin (`CUDA_VISIBLE_DEVICES`).
    pub gpus: &'a [String],
    /// No progress bars.
    pub quiet: bool,
}

/// A running worker.
struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    busy: Option<usize>,
    alive: bool,
}

/// Where a stage stands.
#[derive(Clone, PartialEq)]
enum State {
    Pending,
    Running,
    Done,
    Failed(String),
}

/// The grid's progress, shared by the two phases.
struct Progress {
    state: Vec<State>,
    records: BTreeMap<usize, RunRecord>,
    counts: NodeCounts,
    bar: indicatif::ProgressBar,
}

/// Runs `pool.jobs` worker processes over the tasks that `phase` selects, each worker with
/// `threads` threads, until none of them can run any more.
fn drive(
    pool: &Pool,
    tasks: &[Task],
    phase: &dyn Fn(&Stage) -> bool,
    threads: usize,
    p: &mut Progress,
) -> Result<()> {
    if !tasks
        .iter()
        .zip(&p.state)
        .any(|(t, s)| phase(&t.stage) && *s == State::Pending)
    {
        return Ok(());
    }
    let exe = std::env::current_exe().context("finding the w2s binary to start workers")?;
    let (tx, rx) = mpsc::channel::<(usize, Option<String>)>();
    let mut workers = Vec::new();
    for w in 0..pool.jobs {
        let mut cmd = Command::new(&exe);
        cmd.arg("--quiet")
            .arg("sweep")
            .arg(pool.file)
            .arg("--out")
            .arg(pool.out)
            .arg("--worker")
            .env("RAYON_NUM_THREADS", threads.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if !pool.gpus.is_empty() {
            cmd.env("CUDA_VISIBLE_DEVICES", &pool.gpus[w % pool.gpus.len()]);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting worker {w} ({})", exe.display()))?;
        // A stop of this process stops its workers first (w2s_assets::stop).
        w2s_assets::stop::register_child(child.id());
        let stdout = child.stdout.take().context("worker stdout")?;
        let stdin = child.stdin.take();
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                match line {
                    Ok(l) => {
                        if tx.send((w, Some(l))).is_err() {
                            return;
                        }
                    }
                    Err(_) => break,
                }
            }
            let _ = tx.send((w, None));
        });
        workers.push(Worker {
            child,
            stdin,
            busy: None,
            alive: true,
        });
    }
    drop(tx);
    let state = &mut p.state;
    loop {
        // Skip what can no longer run, then hand every idle worker the first ready stage.
        for t in 0..tasks.len() {
            if state[t] == State::Pending {
                if let Some(d) = tasks[t]
                    .deps
                    .iter()
                    .find(|&&d| matches!(state[d], State::Failed(_)))
                {
                    state[t] =
                        State::Failed(format!("skipped: {} failed", tasks[*d].stage.describe()));
                    p.bar.inc(1);
                }
            }
        }
        for worker in workers.iter_mut().filter(|w| w.alive && w.busy.is_none()) {
            let Some(t) = (0..tasks.len()).find(|&t| {
                state[t] == State::Pending
                    && phase(&tasks[t].stage)
                    && tasks[t].deps.iter().all(|&d| state[d] == State::Done)
            }) else {
                break;
            };
            let line = serde_json::to_string(&TaskLine {
                id: t,
                stage: tasks[t].stage.clone(),
            })?;
            let sent = worker
                .stdin
                .as_mut()
                .map(|s| writeln!(s, "{line}").and_then(|()| s.flush()));
            if matches!(sent, Some(Ok(()))) {
                worker.busy = Some(t);
                state[t] = State::Running;
            } else {
                worker.alive = false;
            }
        }
        let running: Vec<String> = workers
            .iter()
            .filter_map(|w| w.busy.map(|t| tasks[t].stage.describe()))
            .collect();
        if running.is_empty() {
            break;
        }
        p.bar.set_message(running.join("; "));
        let Ok((w, line)) = rx.recv() else { break };
        match line {
            None => {
                workers[w].alive = false;
                let status = workers[w].child.wait().ok();
                w2s_assets::stop::forget_child(workers[w].child.id());
                if let Some(t) = workers[w].busy.take() {
                    state[t] = State::Failed(format!(
                        "worker {w} exited ({}) during {}",
                        status.map_or("unknown status".into(), |s| s.to_string()),
                        tasks[t].stage.describe()
                    ));
                    p.bar.inc(1);
                }
            }
            Some(line) => {
                let reply: Reply = serde_json::from_str(&line)
                    .with_context(|| format!("worker {w} answered `{line}`"))?;
                workers[w].busy = None;
                p.counts.computed += reply.counts.computed;
                p.counts.reused += reply.counts.reused;
                state[reply.id] = match reply.error {
                    Some(e) => State::Failed(e),
                    None => State::Done,
                };
                if let Some(r) = reply.record {
                    p.records.insert(reply.id, r);
                }
                p.bar.inc(1);
            }
        }
        if workers.iter().all(|w| !w.alive) {
            for (t, s) in tasks.iter().zip(state.iter_mut()) {
                if *s == State::Pending && phase(&t.stage) {
                    *s = State::Failed("no worker left".into());
                }
            }
            break;
        }
    }
    for w in &mut workers {
        w.stdin.take();
    }
    for w in &mut workers {
        let _ = w.child.wait();
        w2s_assets::stop::forget_child(w.child.id());
    }
    Ok(())
}

/// Runs `specs` on `pool.jobs` workers; returns the records in the order of `specs`, and the
/// nodes trained and reused by all workers together.
///
/// Two phases, each with its own workers: the features, then the training. Features are
/// embedding, a few large tasks where one model (mpnet) can be half the work, so their workers
/// get twice their share of the cores: on 2 cores, 2 workers × 2 threads embedded a 4-encoder
/// grid 1.11× faster than one process, and 2 × 1 thread 0.86× as fast. Probe training is many
/// small tasks, which run best without oversubscription (cores / N threads each).
pub fn execute(
    pool: &Pool,
    specs: &[RunSpec],
    cfg: ExperimentConfig,
    templates: BTreeMap<String, Template>,
) -> Result<(Vec<RunRecord>, NodeCounts)> {
    let assets = w2s_assets::Store::open();
    // Resolve every model and load every dataset here first: a misspelt name fails before any
    // worker starts, and missing assets are fetched once, not by every worker at once.
    let mut runner =
        Runner::new(&assets, pool.out, cfg, Box::new(|_| {})).with_zero_shot_templates(templates);
    runner.prepare(specs)?;
    let tasks = plan(&runner, specs, pool.jobs);
    // Features already cached need no worker (one that started only to read them would waste
    // its start-up).
    let mut state = vec![State::Pending; tasks.len()];
    for (t, s) in tasks.iter().zip(state.iter_mut()) {
        if let Stage::Features { model, dataset, .. } = &t.stage {
            if runner.features_cached(model, dataset)? {
                *s = State::Done;
            }
        }
    }
    drop(runner);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let share = (cores / pool.jobs).max(1);
    let done = state.iter().filter(|s| **s == State::Done).count();
    let mut progress = Progress {
        state,
        records: BTreeMap::new(),
        counts: NodeCounts::default(),
        bar: crate::progress::bar(
            pool.quiet,
            tasks.len() as u64,
            "stages",
            &format!("{} workers", pool.jobs),
        ),
    };
    progress.bar.inc(done as u64);
    let is_features = |s: &Stage| matches!(s, Stage::Features { .. });
    drive(
        pool,
        &tasks,
        &is_features,
        (2 * share).min(cores),
        &mut progress,
    )?;
    drive(pool, &tasks, &|s| !is_features(s), share, &mut progress)?;
    progress.bar.finish_and_clear();
    let Progress {
        state,
        records,
        counts,
        ..
    } = progress;
    let failed: Vec<String> = tasks
        .iter()
        .zip(&state)
        .filter_map(|(t, s)| match s {
            State::Failed(e) if !e.starts_with("skipped") => {
                Some(format!("{}: {e}", t.stage.describe()))
            }
            _ => None,
        })
        .collect();
    if !failed.is_empty() {
        let skipped = state
            .iter()
            .filter(|s| matches!(s, State::Failed(e) if e.starts_with("skipped")))
            .count();
        bail!(
            "{} stages failed ({skipped} more skipped; what finished is stored, rerun to resume):\n  {}",
            failed.len(),
            failed.join("\n  ")
        );
    }
    let records = records.into_values().collect();
    Ok((records, counts))
}

/// `w2s sweep FILE --worker`: reads task lines on stdin and answers each on stdout, until stdin
/// closes.
pub fn serve(
    out: &Path,
    cfg: ExperimentConfig,
    templates: BTreeMap<String, Template>,
) -> Result<()> {
    let assets = w2s_assets::Store::open();
    let mut runner =
        Runner::new(&assets, out, cfg, Box::new(|_| {})).with_zero_shot_templates(templates);
    let stdout = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        let line = line.context("reading a task")?;
        let task: TaskLine =
            serde_json::from_str(&line).with_context(|| format!("task `{line}`"))?;
        let before = runner.counts;
        let (record, error) = match runner.run_stage(&task.stage) {
            Ok(record) => (record, None),
            Err(e) => (None, Some(format!("{e}"))),
        };
        let reply = Reply {
            id: task.id,
            error,
            record,
            counts: NodeCounts {
                computed: runner.counts.computed - before.computed,
                reused: runner.counts.reused - before.reused,
            },
        };
        let mut w = stdout.lock();
        writeln!(w, "{}", serde_json::to_string(&reply)?)?;
        w.flush()?;
    }
    Ok(())
}

/// The absolute form of `path` (workers and batch jobs may start elsewhere).
pub fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))
}

/// The local executor with `--jobs N` (N > 1): worker processes on this machine.
pub struct Workers {
    /// Worker processes.
    pub jobs: usize,
    /// GPUs to pin the workers to, round-robin.
    pub gpus: Vec<String>,
}

impl w2s_experiment::Executor for Workers {
    fn name(&self) -> &'static str {
        "local"
    }

    fn execute(
        &self,
        grid: &w2s_experiment::Grid,
    ) -> Result<w2s_experiment::Outcome, w2s_experiment::ExecutorError> {
        let file = absolute(grid.file)?;
        let pool = Pool {
            file: &file,
            out: grid.out,
            jobs: self.jobs,
            gpus: &self.gpus,
            quiet: grid.quiet,
        };
        let (records, counts) = execute(&pool, grid.specs, grid.cfg, grid.templates.clone())?;
        Ok(w2s_experiment::Outcome { records, counts })
    }
}
