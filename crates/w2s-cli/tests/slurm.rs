//! `w2s sweep --executor slurm` on a real Slurm cluster: `.ci/run` starts a single-node one
//! (`.ci/slurm-single-node.sh`) and sets `W2S_REQUIRE_SLURM=1`, so that there a missing cluster
//! fails the test. Elsewhere, without `sbatch` on PATH, the test says it was skipped.
//!
//! The grid: 2 datasets × 2 pairs × 2 losses × 2 seeds = 16 runs in 4 shards (dataset × seed),
//! few rows, many probe epochs so that a shard runs for seconds and can be cancelled mid-run.
mod common;

use common::{files_under, forget_features, success_json};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn w2s() -> Command {
    Command::new(env!("CARGO_BIN_EXE_w2s"))
}

fn slurm_is_up() -> bool {
    let up = Command::new("timeout")
        .args(["10", "sinfo", "-h", "-o", "%T"])
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.is_empty());
    if !up && std::env::var_os("W2S_REQUIRE_SLURM").is_some() {
        panic!("W2S_REQUIRE_SLURM is set but no Slurm cluster answers `sinfo`");
    }
    up
}

const MAX_LEN: usize = 63;

fn stored_nodes(out: &Path) -> usize {
    files_under(&out.join("store/models"))
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .count()
}

/// The running task of the shard array, as `JOB_TASK`.
fn running_shard() -> Option<String> {
    let out = Command::new("timeout")
        .args(["10", "squeue", "-h", "-r", "-o", "%i|%T|%j"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let f: Vec<&str> = l.split('|').collect();
        (f.len() == 3 && f[1] == "RUNNING" && f[2].starts_with("w2s-shards"))
            .then(|| f[0].to_string())
    })
}

#[test]
fn a_sweep_on_slurm_equals_the_local_one_and_survives_a_cancelled_shard() {
    if !slurm_is_up() {
        eprintln!("skipped: no Slurm cluster (sinfo does not answer); .ci/run starts one");
        return;
    }
    forget_features(&format!("-len{MAX_LEN}-"));
    let dir = tempfile::tempdir().unwrap();
    let grid = dir.path().join("grid.toml");
    std::fs::write(
        &grid,
        format!(
            "datasets = [\"tweets\", \"pang-lee-sentences\"]\n\
             pairs = [[\"minilm-l3\", \"minilm-l6\"], [\"minilm-l3\", \"e5-small\"]]\n\
             methods = [\"xent\", \"logconf\"]\n\
             seeds = 2\n\
             [experiment]\nmax_rows = 400\nmax_len = {MAX_LEN}\n\
             [experiment.train]\nepochs = 1000\n"
        ),
    )
    .unwrap();
    let out = dir.path().join("on-slurm");
    let sweep = || {
        let mut c = w2s();
        c.args(["--quiet", "sweep"])
            .arg(&grid)
            .arg("--out")
            .arg(&out)
            .args([
                "--executor",
                "slurm",
                "--cpus-per-task",
                "1",
                "--array-limit",
                "1",
            ])
            .args(["--poll", "1", "--json", "--no-report"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    };

    // First attempt: cancel the second shard to run once it has stored a node.
    let first = sweep().spawn().expect("w2s starts");
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut seen_running = None;
    let cancelled = loop {
        assert!(Instant::now() < deadline, "no shard ran within 10 minutes");
        match running_shard() {
            Some(task) if !task.ends_with("_0") => {
                let before = seen_running.get_or_insert_with(|| (task.clone(), stored_nodes(&out)));
                if before.0 != task {
                    *before = (task.clone(), stored_nodes(&out));
                }
                if stored_nodes(&out) > before.1 {
                    let st = Command::new("scancel").arg(&task).status().unwrap();
                    assert!(st.success(), "scancel {task}");
                    break task;
                }
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let first = first.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&first.stderr).into_owned();
    eprintln!("first attempt, {cancelled} cancelled:\n{report}");
    assert!(
        !first.status.success(),
        "a cancelled shard fails the sweep:\n{report}"
    );
    let index: usize = cancelled.rsplit('_').next().unwrap().parse().unwrap();
    let line = report
        .lines()
        .find(|l| l.contains(&format!("shard {index}/4:")))
        .unwrap_or_else(|| panic!("shard {index} is listed:\n{report}"));
    assert!(
        line.contains("CANCELLED") && line.contains("no result"),
        "{line}"
    );
    assert!(line.contains(".log"), "its log is named: {line}");
    assert_eq!(
        report.lines().filter(|l| l.contains("COMPLETED")).count(),
        3,
        "the other shards complete:\n{report}"
    );

    // The same command again: only the cancelled shard runs, reusing what it had stored.
    let second = sweep().output().unwrap();
    let report = String::from_utf8_lossy(&second.stderr).into_owned();
    eprintln!("rerun:\n{report}");
    assert!(second.status.success(), "the rerun completes:\n{report}");
    let shard_lines: Vec<&str> = report.lines().filter(|l| l.contains("  shard ")).collect();
    assert_eq!(
        shard_lines.len(),
        1,
        "only the missing shard is resubmitted:\n{report}"
    );
    assert!(shard_lines[0].contains("COMPLETED"), "{}", shard_lines[0]);
    let on_slurm = success_json(&second, "the rerun");
    for i in 0..4 {
        let results = files_under(&out.join("shards"));
        assert!(
            results
                .iter()
                .any(|p| p.to_string_lossy().ends_with(&format!("-{i}-of-4.json"))),
            "shard {i} wrote its result: {results:?}"
        );
    }

    // The same grid in this process, into another folder.
    let local = w2s()
        .args(["--quiet", "sweep"])
        .arg(&grid)
        .arg("--out")
        .arg(dir.path().join("local"))
        .args(["--json", "--no-report"])
        .output()
        .unwrap();
    let local = success_json(&local, "the local sweep");
    forget_features(&format!("-len{MAX_LEN}-"));
    assert_eq!(on_slurm["summary"], local["summary"]);
    assert_eq!(
        on_slurm["runs"].as_array().map(Vec::len),
        Some(16),
        "every run is in the summary's records"
    );
    let trained = |v: &Value| v["nodes"]["computed"].as_u64().unwrap();
    assert_eq!(trained(&local), 28);
    assert!(
        trained(&on_slurm) < 28,
        "the rerun shard reused the nodes stored before its cancel (trained {} of 28)",
        trained(&on_slurm)
    );
    assert_eq!(stored_nodes(&out), 28);
}
