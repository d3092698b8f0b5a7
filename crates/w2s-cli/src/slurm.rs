//! `w2s sweep FILE --executor slurm`: the grid as two Slurm job arrays over a shared filesystem.
//!
//! The submitting process fetches every asset first (`flock` is unreliable on NFS, so no worker
//! fills the cache), then submits one array computing the missing features (as many tasks as
//! features are missing, each embedding its share of the chunks of every feature, so that one
//! slow model's rows are split too), and one array of shards (`--shard i/N`, see [`crate::shard`]) that waits for
//! it (`afterok`, `--kill-on-invalid-dep=yes`, so that a failed feature task cancels the shards
//! instead of leaving them pending forever). It polls `squeue` until both are gone, asks
//! `scontrol` how each shard ended, and counts a shard done when its result file exists. Only the
//! commands are called (`sbatch`, `squeue`, `scontrol`): no Slurm library, no version coupling.
use crate::shard::{self, Shard};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Options of the Slurm executor.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SlurmArgs {
    /// Slurm partition (`sbatch --partition`).
    #[arg(long, help_heading = "Slurm")]
    pub partition: Option<String>,
    /// Time limit per task (`sbatch --time`, e.g. 2:00:00).
    #[arg(long, help_heading = "Slurm")]
    pub time: Option<String>,
    /// Memory per task (`sbatch --mem`, e.g. 16G).
    #[arg(long, help_heading = "Slurm")]
    pub mem: Option<String>,
    /// CPUs per task (`sbatch --cpus-per-task`).
    #[arg(long, help_heading = "Slurm")]
    pub cpus_per_task: Option<u32>,
    /// GPUs per task (`sbatch --gpus-per-task`).
    #[arg(long, help_heading = "Slurm")]
    pub gpus_per_task: Option<u32>,
    /// At most K tasks of an array at once (`--array=...%K`).
    #[arg(long, value_name = "K", help_heading = "Slurm")]
    pub array_limit: Option<u32>,
    /// Any other sbatch option, passed as written (repeatable), e.g. --sbatch-arg=--qos=long.
    #[arg(
        long,
        value_name = "ARG",
        allow_hyphen_values = true,
        help_heading = "Slurm"
    )]
    pub sbatch_arg: Vec<String>,
    /// Number of shards (default: one per dataset × seed, at most 1000).
    #[arg(long, help_heading = "Slurm")]
    pub shards: Option<usize>,
    /// Seconds between two looks at the queue.
    #[arg(long, default_value_t = 5.0, help_heading = "Slurm")]
    pub poll: f64,
}

/// One array to submit: its name, its task indices, the script, and what it waits for.
#[derive(Debug, Clone, PartialEq)]
pub struct ArrayJob {
    /// `--job-name`.
    pub name: String,
    /// Task indices (`--array=0,3,5`).
    pub tasks: Vec<usize>,
    /// The batch script's path.
    pub script: PathBuf,
    /// The log pattern (`%A` job, `%a` task).
    pub log: PathBuf,
    /// Job id to wait for (`afterok`).
    pub after: Option<String>,
}

/// `--array=` text: indices, with runs of consecutive ones as ranges, and the throttle.
pub fn array_spec(tasks: &[usize], limit: Option<u32>) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < tasks.len() {
        let mut j = i;
        while j + 1 < tasks.len() && tasks[j + 1] == tasks[j] + 1 {
            j += 1;
        }
        parts.push(if j > i {
            format!("{}-{}", tasks[i], tasks[j])
        } else {
            tasks[i].to_string()
        });
        i = j + 1;
    }
    let mut s = parts.join(",");
    if let Some(k) = limit {
        s.push_str(&format!("%{k}"));
    }
    s
}

/// The `sbatch` arguments submitting `job` with the executor's options.
pub fn sbatch_args(job: &ArrayJob, opts: &SlurmArgs) -> Vec<String> {
    let mut a = vec![
        "--parsable".to_string(),
        format!("--job-name={}", job.name),
        format!("--array={}", array_spec(&job.tasks, opts.array_limit)),
        format!("--output={}", job.log.display()),
    ];
    if let Some(p) = &opts.partition {
        a.push(format!("--partition={p}"));
    }
    if let Some(t) = &opts.time {
        a.push(format!("--time={t}"));
    }
    if let Some(m) = &opts.mem {
        a.push(format!("--mem={m}"));
    }
    if let Some(c) = opts.cpus_per_task {
        a.push(format!("--cpus-per-task={c}"));
    }
    if let Some(g) = opts.gpus_per_task {
        a.push(format!("--gpus-per-task={g}"));
    }
    if let Some(after) = &job.after {
        a.push(format!("--dependency=afterok:{after}"));
        a.push("--kill-on-invalid-dep=yes".into());
    }
    a.extend(opts.sbatch_arg.iter().cloned());
    a.push(job.script.display().to_string());
    a
}

/// The job id in `sbatch --parsable`'s answer (`ID` or `ID;CLUSTER`).
pub fn parse_job_id(text: &str) -> Result<String> {
    let id = text.trim().split(';').next().unwrap_or("").trim();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        bail!("sbatch answered `{}`, not a job id", text.trim());
    }
    Ok(id.to_string())
}

/// `squeue -h -r -o '%i|%T|%r'` lines: (`JOB_TASK`, state, reason).
pub fn parse_squeue(text: &str) -> Vec<(String, String, String)> {
    text.lines()
        .filter_map(|l| {
            let mut p = l.trim().split('|');
            let id = p.next()?.trim();
            let state = p.next()?.trim();
            let reason = p.next().unwrap_or("").trim();
            (!id.is_empty()).then(|| (id.to_string(), state.to_string(), reason.to_string()))
        })
        .collect()
}

/// How one array task ended, from `scontrol show job -o`.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskEnd {
    /// The array index.
    pub task: usize,
    /// `JobState=`: COMPLETED, FAILED, CANCELLED, TIMEOUT, OUT_OF_MEMORY, ...
    pub state: String,
    /// `ExitCode=` (`code:signal`).
    pub exit_code: String,
    /// `StdOut=`: the log.
    pub log: String,
}

/// Parses `scontrol show job -o ID`: one line per array task of `KEY=VALUE` fields.
pub fn parse_scontrol(text: &str) -> Vec<TaskEnd> {
    let mut ends = Vec::new();
    for line in text.lines() {
        let fields: BTreeMap<&str, &str> = line
            .split_whitespace()
            .filter_map(|f| f.split_once('='))
            .collect();
        // A task that never started (its dependency failed) is listed in a range: `0-3%2`.
        let Some(ids) = fields.get("ArrayTaskId") else {
            continue;
        };
        let ids = ids.split('%').next().unwrap_or("");
        for part in ids.split(',') {
            let range = match part.split_once('-') {
                Some((a, b)) => a.parse::<usize>().ok().zip(b.parse::<usize>().ok()),
                None => part.parse::<usize>().ok().map(|a| (a, a)),
            };
            let Some((first, last)) = range else { continue };
            for task in first..=last {
                ends.push(TaskEnd {
                    task,
                    state: fields.get("JobState").unwrap_or(&"UNKNOWN").to_string(),
                    exit_code: fields.get("ExitCode").unwrap_or(&"").to_string(),
                    log: fields.get("StdOut").unwrap_or(&"").to_string(),
                });
            }
        }
    }
    ends
}

/// Runs a Slurm command with a timeout (they block for minutes when the controller or munge is
/// down), returning its stdout.
fn slurm(cmd: &str, args: &[String]) -> Result<String> {
    let out = Command::new("timeout")
        .arg("60")
        .arg(cmd)
        .args(args)
        .output()
        .with_context(|| format!("running {cmd} (is Slurm installed and on PATH?)"))?;
    if !out.status.success() {
        bail!(
            "{cmd} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The batch script of one array: it runs this very binary on the sweep, from the shared paths
/// (with the sweep's `--skip-unavailable`, so that every task drops the runs this one did).
pub fn script(exe: &Path, sweep: &SlurmSweep, what: &str, count: usize) -> String {
    let home = w2s_assets::cache::home();
    let q = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', r"'\''"));
    format!(
        "#!/bin/bash\n\
         # Written by w2s sweep --executor slurm; one array task = one {what} of {count}.\n\
         set -euo pipefail\n\
         export W2S_HOME={home}\n\
         # As many threads as CPUs given to the task, not the node's count.\n\
         export RAYON_NUM_THREADS=\"${{SLURM_CPUS_PER_TASK:-$(nproc)}}\"\n\
         echo \"w2s: $(hostname) task ${{SLURM_ARRAY_TASK_ID}} of {what}s\"\n\
         exec {exe} --quiet sweep {file} --out {out} --no-report{skip}{extra} --shard \"${{SLURM_ARRAY_TASK_ID}}/{count}\"\n",
        home = q(&home),
        exe = q(exe),
        file = q(sweep.file),
        out = q(sweep.out),
        skip = if sweep.skip_unavailable { " --skip-unavailable" } else { "" },
        extra = if what == "feature share" { " --features-only" } else { "" },
    )
}

/// What [`submit`] needs.
pub struct SlurmSweep<'a> {
    /// The sweep file, absolute.
    pub file: &'a Path,
    /// The output folder, absolute.
    pub out: &'a Path,
    /// The grid's id.
    pub grid: &'a str,
    /// Shards of the grid.
    pub shards: usize,
    /// Tasks of the feature array: each computes its share of the chunks of every feature the
    /// grid reads (0 when all are cached).
    pub feature_tasks: usize,
    /// Print the scripts and commands instead of submitting.
    pub dry_run: bool,
    /// Runs whose inputs cannot be had were left out of the grid (`--skip-unavailable`).
    pub skip_unavailable: bool,
    /// No progress bar.
    pub quiet: bool,
}

/// Submits the missing shards (and features), waits for them, and reports how each ended. Ok
/// when every shard's result file exists.
pub fn submit(sweep: &SlurmSweep, opts: &SlurmArgs) -> Result<()> {
    let dir = sweep.out.join("slurm");
    let logs = dir.join("logs");
    let done = |i: usize| {
        let s = Shard {
            index: i,
            count: sweep.shards,
        };
        matches!(shard::read_result(sweep.out, sweep.grid, s), Ok(Some(_)))
    };
    let missing: Vec<usize> = (0..sweep.shards).filter(|&i| !done(i)).collect();
    if missing.is_empty() {
        tracing::info!("all {} shards are done", sweep.shards);
        return Ok(());
    }
    let exe = std::env::current_exe().context("finding the w2s binary")?;
    // Each array with its script; the shards wait for the features when there are any.
    let mut jobs: Vec<(ArrayJob, String)> = Vec::new();
    if sweep.feature_tasks > 0 {
        jobs.push((
            ArrayJob {
                name: format!("w2s-features-{}", sweep.grid),
                tasks: (0..sweep.feature_tasks).collect(),
                script: dir.join(format!("features-{}.sh", sweep.grid)),
                log: logs.join("features-%A_%a.log"),
                after: None,
            },
            script(&exe, sweep, "feature share", sweep.feature_tasks),
        ));
    }
    jobs.push((
        ArrayJob {
            name: format!("w2s-shards-{}", sweep.grid),
            tasks: missing.clone(),
            script: dir.join(format!("shards-{}-of-{}.sh", sweep.grid, sweep.shards)),
            log: logs.join("shard-%A_%a.log"),
            after: None,
        },
        script(&exe, sweep, "shard", sweep.shards),
    ));
    if sweep.dry_run {
        for (i, (job, text)) in jobs.iter().enumerate() {
            let mut shown = job.clone();
            if i > 0 {
                shown.after = Some("FEATURES_JOB_ID".into());
            }
            println!("# {}\n{text}", job.script.display());
            println!("sbatch {}\n", sbatch_args(&shown, opts).join(" "));
        }
        println!(
            "{} of {} shards to run; nothing submitted (--dry-run)",
            missing.len(),
            sweep.shards
        );
        return Ok(());
    }
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let mut ids: Vec<String> = Vec::new();
    for (i, (job, text)) in jobs.iter_mut().enumerate() {
        w2s_assets::cache::write_atomic(&job.script, text.as_bytes())
            .with_context(|| format!("writing {}", job.script.display()))?;
        if i > 0 {
            job.after = ids.first().cloned();
        }
        let id = parse_job_id(&slurm("sbatch", &sbatch_args(job, opts))?)?;
        tracing::info!(
            "submitted {} as job {id} (array {})",
            job.name,
            array_spec(&job.tasks, opts.array_limit)
        );
        ids.push(id);
    }
    let shard_job = ids.last().cloned().unwrap_or_default();
    let bar = crate::progress::bar(sweep.quiet, missing.len() as u64, "shards", "slurm");
    let start = Instant::now();
    let mut failures = 0;
    loop {
        let queue = match slurm(
            "squeue",
            &[
                "-h".into(),
                "-r".into(),
                "-j".into(),
                ids.join(","),
                "-o".into(),
                "%i|%T|%r".into(),
            ],
        ) {
            Ok(q) => {
                failures = 0;
                parse_squeue(&q)
            }
            // Jobs that left the controller's memory make squeue refuse their ids.
            Err(e) if format!("{e}").contains("Invalid job id") => Vec::new(),
            Err(e) => {
                failures += 1;
                if failures > 5 {
                    return Err(e.context("squeue keeps failing"));
                }
                tracing::warn!("{e:#}; trying again");
                std::thread::sleep(Duration::from_secs_f64(opts.poll.max(0.5)));
                continue;
            }
        };
        let finished = missing.iter().filter(|&&i| done(i)).count();
        bar.set_position(finished as u64);
        let mut by_state: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, state, _) in &queue {
            *by_state.entry(state.as_str()).or_default() += 1;
        }
        bar.set_message(
            by_state
                .iter()
                .map(|(s, n)| format!("{n} {}", s.to_lowercase()))
                .collect::<Vec<_>>()
                .join(", "),
        );
        if queue.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_secs_f64(opts.poll.max(0.5)));
    }
    bar.finish_and_clear();
    let ends = slurm(
        "scontrol",
        &["show".into(), "job".into(), "-o".into(), shard_job.clone()],
    )
    .map(|t| parse_scontrol(&t))
    .unwrap_or_default();
    let mut ok = 0;
    // On stderr, like the progress: stdout stays one JSON document under --json.
    eprintln!(
        "slurm job {shard_job}: {} shards in {:.0}s",
        missing.len(),
        start.elapsed().as_secs_f64()
    );
    for &i in &missing {
        let end = ends.iter().find(|e| e.task == i);
        let state = end.map_or("UNKNOWN", |e| e.state.as_str());
        let log = end.map_or_else(
            || {
                logs.join(format!("shard-{shard_job}_{i}.log"))
                    .display()
                    .to_string()
            },
            |e| e.log.clone(),
        );
        let result = if done(i) {
            ok += 1;
            "result written"
        } else {
            "no result"
        };
        eprintln!(
            "  shard {i}/{}: {state:<13} exit {:<6} {result:<14} {log}",
            sweep.shards,
            end.map_or("", |e| e.exit_code.as_str())
        );
    }
    if ok < missing.len() {
        bail!(
            "{} of {} shards did not finish (see their logs above); rerun the same command to \
             resume: finished nodes are reused",
            missing.len() - ok,
            missing.len()
        );
    }
    Ok(())
}

/// The Slurm executor: a job array computing the missing features, then one of shards (each a
/// `w2s sweep --shard i/N` of this binary), polled until done; the records are then read back
/// from the store in this process.
pub struct Slurm {
    /// sbatch options.
    pub opts: SlurmArgs,
    /// The grid's id (names the shards' result files).
    pub grid_id: String,
    /// Print the scripts and commands instead of submitting.
    pub dry_run: bool,
    /// Runs whose inputs cannot be had were left out (the shards do the same).
    pub skip_unavailable: bool,
}

/// `--executor slurm`.
pub const SLURM: crate::sweep::ExecutorEntry = crate::sweep::ExecutorEntry {
    name: "slurm",
    help: "a Slurm cluster: a job array of features, then one of shards, over a shared filesystem (docs/cluster.md)",
    build: |args, grid_id| {
        if args.jobs.is_some_and(|j| j > 1) || args.shard.is_some() || args.features_only {
            bail!("--executor slurm makes its own shards: leave out --jobs, --shard and --features-only (use --cpus-per-task and --shards)");
        }
        Ok(Box::new(Slurm {
            opts: args.slurm.clone(),
            grid_id: grid_id.to_string(),
            dry_run: args.dry_run,
            skip_unavailable: args.skip_unavailable,
        }))
    },
};

impl Slurm {
    /// Shards, and the job ready to submit.
    fn job<'a>(
        &'a self,
        grid: &w2s_experiment::Grid,
        file: &'a Path,
        out: &'a Path,
        quiet: bool,
    ) -> Result<SlurmSweep<'a>> {
        let shards = self
            .opts
            .shards
            .unwrap_or_else(|| shard::groups(grid.specs).len().min(1000));
        if shards == 0 || shards > 1000 {
            bail!("--shards must be between 1 and 1000 (Slurm's default MaxArraySize is 1001)");
        }
        shard::check_count(grid.specs, shards)?;
        // Every asset is fetched here, before anything is submitted (flock is unreliable on
        // NFS, so no task fills the cache); this checks the runs' shape too.
        let assets = w2s_assets::Store::open();
        let mut runner = w2s_experiment::Runner::new(&assets, grid.out, grid.cfg, Box::new(|_| {}))
            .with_zero_shot_templates(grid.templates.clone());
        runner.prepare(grid.specs)?;
        let mut feature_tasks = 0;
        for (model, dataset) in runner.feature_needs(grid.specs) {
            feature_tasks += !runner.features_cached(&model, &dataset)? as usize;
        }
        Ok(SlurmSweep {
            file,
            out,
            grid: &self.grid_id,
            shards,
            feature_tasks,
            dry_run: self.dry_run,
            skip_unavailable: self.skip_unavailable,
            quiet,
        })
    }
}

impl w2s_experiment::Executor for Slurm {
    fn name(&self) -> &'static str {
        "slurm"
    }

    fn show(&self, grid: &w2s_experiment::Grid) -> Result<(), w2s_experiment::ExecutorError> {
        let file = crate::workers::absolute(grid.file)?;
        let out = crate::workers::absolute(grid.out)?;
        submit(&self.job(grid, &file, &out, true)?, &self.opts)?;
        Ok(())
    }

    fn execute(
        &self,
        grid: &w2s_experiment::Grid,
    ) -> Result<w2s_experiment::Outcome, w2s_experiment::ExecutorError> {
        let file = crate::workers::absolute(grid.file)?;
        let out = crate::workers::absolute(grid.out)?;
        let job = self.job(grid, &file, &out, grid.quiet)?;
        let shards = job.shards;
        submit(&job, &self.opts)?;
        // Every shard finished: read every run back (nothing is trained when all were stored).
        let read_back = w2s_experiment::Grid {
            quiet: true,
            ..*grid
        };
        let mut outcome =
            w2s_experiment::Executor::execute(&crate::execute::InProcess, &read_back)?;
        if outcome.counts.computed > 0 {
            tracing::warn!(
                "{} nodes were missing after every shard finished, and were trained here",
                outcome.counts.computed
            );
        }
        let done: Vec<shard::ShardResult> = (0..shards)
            .filter_map(|index| {
                let s = Shard {
                    index,
                    count: shards,
                };
                shard::read_result(grid.out, &self.grid_id, s)
                    .ok()
                    .flatten()
            })
            .collect();
        outcome.counts = w2s_experiment::NodeCounts {
            computed: done.iter().map(|r| r.computed).sum::<usize>() + outcome.counts.computed,
            reused: done.iter().map(|r| r.reused).sum(),
        };
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_are_written_as_ranges_with_the_throttle() {
        assert_eq!(array_spec(&[0, 1, 2, 3], None), "0-3");
        assert_eq!(array_spec(&[0, 2, 3, 4, 7], Some(2)), "0,2-4,7%2");
        assert_eq!(array_spec(&[5], None), "5");
    }

    #[test]
    fn sbatch_lines_carry_every_option_and_the_dependency() {
        let job = ArrayJob {
            name: "w2s-shards-ab".into(),
            tasks: vec![0, 1, 3],
            script: "/o/slurm/shards.sh".into(),
            log: "/o/slurm/logs/shard-%A_%a.log".into(),
            after: Some("41".into()),
        };
        let opts = SlurmArgs {
            partition: Some("gpu".into()),
            time: Some("1:00:00".into()),
            mem: Some("8G".into()),
            cpus_per_task: Some(4),
            gpus_per_task: Some(1),
            array_limit: Some(8),
            sbatch_arg: vec!["--qos=long".into()],
            shards: None,
            poll: 5.0,
        };
        assert_eq!(
            sbatch_args(&job, &opts),
            [
                "--parsable",
                "--job-name=w2s-shards-ab",
                "--array=0-1,3%8",
                "--output=/o/slurm/logs/shard-%A_%a.log",
                "--partition=gpu",
                "--time=1:00:00",
                "--mem=8G",
                "--cpus-per-task=4",
                "--gpus-per-task=1",
                "--dependency=afterok:41",
                "--kill-on-invalid-dep=yes",
                "--qos=long",
                "/o/slurm/shards.sh",
            ]
        );
        let bare = sbatch_args(&ArrayJob { after: None, ..job }, &SlurmArgs::default());
        assert_eq!(bare.len(), 5);
        assert!(!bare.iter().any(|a| a.contains("dependency")));
    }

    #[test]
    fn job_ids_queue_lines_and_task_ends_are_parsed() {
        assert_eq!(parse_job_id("1234\n").unwrap(), "1234");
        assert_eq!(parse_job_id("77;cluster-a").unwrap(), "77");
        assert!(parse_job_id("sbatch: error: Batch job submission failed").is_err());
        let q = parse_squeue("12_3|RUNNING|None\n12_[4-7%2]|PENDING|JobArrayTaskLimit\n\n");
        assert_eq!(q.len(), 2);
        assert_eq!(q[1].1, "PENDING");
        assert_eq!(q[1].2, "JobArrayTaskLimit");
        // As scontrol 22.05 prints them (fields abridged).
        let text = "JobId=14 ArrayJobId=12 ArrayTaskId=2 JobName=w2s JobState=CANCELLED Reason=None ExitCode=0:15 StdOut=/o/logs/shard-12_2.log\n\
                    JobId=12 ArrayJobId=12 ArrayTaskId=0 JobName=w2s JobState=COMPLETED Reason=None ExitCode=0:0 StdOut=/o/logs/shard-12_0.log\n\
                    JobId=15 ArrayJobId=12 ArrayTaskId=3 JobState=OUT_OF_MEMORY ExitCode=0:125 StdOut=/o/logs/shard-12_3.log";
        let ends = parse_scontrol(text);
        assert_eq!(ends.len(), 3);
        assert_eq!(
            ends[0],
            TaskEnd {
                task: 2,
                state: "CANCELLED".into(),
                exit_code: "0:15".into(),
                log: "/o/logs/shard-12_2.log".into()
            }
        );
        assert_eq!(ends[2].state, "OUT_OF_MEMORY");
        assert!(parse_scontrol("slurm_load_jobs error: Invalid job id specified").is_empty());
        let never = parse_scontrol("JobId=20 ArrayJobId=20 ArrayTaskId=1-3,5%2 JobState=CANCELLED Reason=DependencyNeverSatisfied ExitCode=0:0 StdOut=/o/s-%A_%a.log");
        let tasks: Vec<usize> = never.iter().map(|e| e.task).collect();
        assert_eq!(tasks, [1, 2, 3, 5]);
    }

    #[test]
    fn the_batch_script_runs_this_binary_on_its_share() {
        let mut sweep = SlurmSweep {
            file: Path::new("/cfg/it's.toml"),
            out: Path::new("/out"),
            grid: "g",
            shards: 4,
            feature_tasks: 6,
            dry_run: true,
            skip_unavailable: false,
            quiet: true,
        };
        let s = script(Path::new("/bin/w2s"), &sweep, "shard", 4);
        assert!(s.starts_with("#!/bin/bash\n"));
        assert!(s.contains(
            r"exec '/bin/w2s' --quiet sweep '/cfg/it'\''s.toml' --out '/out' --no-report --shard"
        ));
        assert!(s.contains("\"${SLURM_ARRAY_TASK_ID}/4\""));
        sweep.skip_unavailable = true;
        let f = script(Path::new("/bin/w2s"), &sweep, "feature share", 6);
        assert!(f.contains(
            "--no-report --skip-unavailable --features-only --shard \"${SLURM_ARRAY_TASK_ID}/6\""
        ));
    }
}
