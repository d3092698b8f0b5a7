//! End-to-end tests of `w2s run` and `w2s sweep` on real models and a real dataset (MiniLM-L3 and
//! MiniLM-L6 on Pang & Lee sentences, capped to keep them short). They need the asset cache that
//! `w2s fetch --all` fills (`.ci/run` does).
mod common;

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn w2s() -> Command {
    Command::new(env!("CARGO_BIN_EXE_w2s"))
}

fn run_json(args: &[&str]) -> Value {
    let out = w2s().args(args).output().expect("w2s runs");
    assert!(
        out.status.success(),
        "w2s {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object on stdout")
}

fn num(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {v}"))
}

/// Every stored node: path → bytes.
fn nodes(out: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let dir = out.join("store").join("models");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return BTreeMap::new();
    };
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

/// Starts `w2s ARGS` (a sweep into `out`) and returns once it has stored `n` nodes, checking
/// that it is still running, so that whatever stops it next lands mid-sweep.
fn sweep_until_stored(args: &[String], out: &Path, n: usize, stderr: Stdio) -> std::process::Child {
    let mut child = w2s()
        .args(args)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let start = Instant::now();
    while nodes(out).len() < n && start.elapsed() < Duration::from_secs(300) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the sweep finished before it could be stopped"
    );
    child
}

/// `w2s --quiet sweep FILE --out OUT --no-report --json`, with `--jobs N` when N > 1.
fn sweep_args(file: &Path, out: &Path, jobs: usize) -> Vec<String> {
    let mut a: Vec<String> = ["--quiet", "sweep"].map(String::from).to_vec();
    a.push(file.to_string_lossy().into_owned());
    a.push("--out".into());
    a.push(out.to_string_lossy().into_owned());
    a.extend(["--no-report", "--json"].map(String::from));
    if jobs > 1 {
        a.extend(["--jobs".to_string(), jobs.to_string()]);
    }
    a
}

#[test]
fn run_on_a_user_file_gives_the_documented_schema() {
    let tmp = tempfile::tempdir().unwrap();
    // The cache names a user file's features after its path, temporary folder included.
    let _forget = common::ForgetFeaturesOnDrop::for_dir(tmp.path());
    // A file w2s has never seen: real sentences, written as a user would.
    let store = w2s_assets::Store::open();
    let data = w2s_data::load("pang-lee-sentences", &store).unwrap();
    let path = tmp.path().join("reviews.jsonl");
    let rows = data.examples.iter().step_by(5).take(700);
    common::write_jsonl(&path, rows.map(|e| (e.text.as_str(), e.label)));
    let out = tmp.path().join("out");
    let args = [
        "run",
        "--data",
        path.to_str().unwrap(),
        "--weak",
        "minilm-l3",
        "--strong",
        "minilm-l6",
        "--loss",
        "xent,logconf",
        "--seeds",
        "2",
        "--out",
        out.to_str().unwrap(),
        "--no-report",
        "--json",
    ];
    let doc = run_json(&args);
    let runs = doc["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4);
    for r in runs {
        for key in [
            "dataset",
            "weak",
            "strong",
            "chain",
            "loss",
            "seed",
            "weak_acc",
            "ceiling_acc",
            "student_acc",
            "pgr",
            "weak_auroc",
            "ceiling_auroc",
            "student_auroc",
            "agreement",
            "agreement_on_weak_errors",
            "student_ece",
            "misfit",
            "student_oracle_acc",
        ] {
            assert!(r.get(key).is_some(), "run lacks {key}: {r}");
        }
        // Ground truth beats chance on real sentiment data.
        assert!(num(r, "ceiling_acc") > 0.6, "{r}");
        // A test accuracy per epoch for the student and the ceiling; the best of the student's
        // is the oracle accuracy, and the epoch early stopping kept is on it.
        for curve in ["student_curve", "ceiling_curve"] {
            let c: Vec<f64> = serde_json::from_value(r[curve].clone()).unwrap();
            assert!(c.len() >= 2, "{curve}: {c:?}");
            assert!(c.iter().all(|a| (0.0..=1.0).contains(a)), "{curve}: {c:?}");
        }
        let student: Vec<f64> = serde_json::from_value(r["student_curve"].clone()).unwrap();
        let best = student.iter().cloned().fold(f64::MIN, f64::max);
        assert!((best - num(r, "student_oracle_acc")).abs() < 1e-12, "{r}");
        let kept = r["student_best_epoch"].as_u64().unwrap() as usize;
        assert!((1..=student.len()).contains(&kept), "{r}");
        // "no gap" is reported as null, never as a number.
        let gap = num(r, "ceiling_acc") > num(r, "weak_acc");
        assert_eq!(r["pgr"].is_number(), gap, "{r}");
        assert_eq!(r["no_gap"].as_bool(), Some(!gap));
        let preds = out.join(r["predictions"].as_str().unwrap());
        let lines = std::fs::read_to_string(&preds).unwrap();
        let rows: u64 = r["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .sum();
        // Balancing 50/50 drops some of the 700 rows; every kept row has its line.
        assert!((600..=700).contains(&rows), "{rows} rows kept");
        assert_eq!(
            lines.lines().count() as u64,
            rows,
            "one line per row in {}",
            preds.display()
        );
    }
    let summary = doc["summary"].as_array().unwrap();
    assert_eq!(summary.len(), 2);
    for s in summary {
        for key in [
            "dataset", "weak", "strong", "loss", "n_seeds", "pgr_mean", "pgr_ci95",
        ] {
            assert!(s.get(key).is_some(), "summary lacks {key}: {s}");
        }
        assert_eq!(s["n_seeds"].as_u64(), Some(2));
    }
    // The same command again reads every model from the store and gives the same numbers.
    let again = run_json(&args);
    assert_eq!(again["nodes"]["computed"].as_u64(), Some(0));
    assert_eq!(again["runs"], doc["runs"]);
}

#[test]
fn finetune_mode_runs_every_stage_including_a_chain() {
    // Fine-tuning whole encoders: weak (L3) on A, its labels of B, the ceiling (L6) on B, the
    // intermediate L3 student, the L6 student of the chain and the direct L6 student.
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let doc = run_json(&[
        "run",
        "--mode",
        "finetune",
        "--data",
        "pang-lee-sentences",
        "--chain",
        "minilm-l3,minilm-l3,minilm-l6",
        "--loss",
        "xent",
        "--seeds",
        "1",
        "--max-rows",
        "600",
        "--epochs",
        "2",
        "--max-len",
        "40",
        "--out",
        out.to_str().unwrap(),
        "--no-report",
        "--json",
    ]);
    let runs = doc["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{doc}");
    let r = &runs[0];
    assert_eq!(r["chain"].as_array().map(Vec::len), Some(3), "{r}");
    for key in [
        "weak_acc",
        "ceiling_acc",
        "student_acc",
        "direct_student_acc",
        "ceiling_auroc",
    ] {
        let v = num(r, key);
        assert!((0.0..=1.0).contains(&v), "{key} = {v}");
    }
    // A MiniLM-L6 fine-tuned on ground truth ranks real sentences better than chance. (AUROC, not
    // accuracy: 14 steps from the zero head leave the threshold near 0.5, where accuracy is noisy.)
    assert!(num(r, "ceiling_auroc") > 0.6, "{r}");
    // weak, weak labels are part of the weak node; ceiling; chain L3 and L6; direct L6.
    assert_eq!(doc["nodes"]["computed"].as_u64(), Some(5), "{doc}");
}

const SWEEP: &str = r#"
datasets = ["pang-lee-sentences"]
models = ["minilm-l3", "minilm-l6"]
methods = ["all"]
seeds = 3
[experiment]
max_rows = 1200
"#;

#[test]
fn kill_9_during_a_sweep_loses_nothing_and_a_restart_recomputes_nothing_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("sweep.toml");
    std::fs::write(&file, SWEEP).unwrap();
    let killed = tmp.path().join("killed");
    let args = |out: &Path| sweep_args(&file, out, 1);
    // Warm the feature cache first so the kill lands among the trained models.
    let reference = tmp.path().join("reference");
    let full = run_json(
        &args(&reference)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let total = nodes(&reference).len();
    // Per seed: weak, ceiling, a student per method, one more per strong-to-strong round beyond
    // the first student (shared with xent), and bag's weak models.
    let all = w2s_experiment::Method::all();
    let per_seed: usize = 2 + all
        .iter()
        .map(|m| 1 + m.rounds() + m.bagged_weak_models())
        .sum::<usize>()
        - all.iter().filter(|m| m.rounds() > 0).count();
    assert_eq!(total, 3 * per_seed, "3 seeds × {per_seed} nodes");

    let mut child = sweep_until_stored(&args(&killed), &killed, 4, Stdio::null());
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = nodes(&killed);
    assert!(
        !before.is_empty() && before.len() < total,
        "{} nodes",
        before.len()
    );
    for (path, bytes) in &before {
        serde_json::from_slice::<Value>(bytes)
            .unwrap_or_else(|e| panic!("{} is damaged after kill -9: {e}", path.display()));
    }

    let resumed = run_json(&args(&killed).iter().map(String::as_str).collect::<Vec<_>>());
    let after = nodes(&killed);
    for (path, bytes) in &before {
        assert_eq!(after.get(path), Some(bytes), "{} changed", path.display());
    }
    assert_eq!(after.len(), total);
    assert_eq!(
        resumed["nodes"]["computed"].as_u64(),
        Some((total - before.len()) as u64),
        "only the missing nodes are trained"
    );
    // Interrupted or not, the numbers are the same.
    assert_eq!(resumed["summary"], full["summary"]);

    let third = run_json(&args(&killed).iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(third["nodes"]["computed"].as_u64(), Some(0));
}

/// Every file below `dir` whose name holds `pattern`.
fn files_named(dir: &Path, pattern: &str) -> Vec<PathBuf> {
    common::files_under(dir)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().contains(pattern))
        })
        .collect()
}

/// Processes whose command line holds `needle`.
fn processes_with(needle: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            String::from_utf8_lossy(&cmd).contains(needle) && !status.contains("State:\tZ")
        })
        .collect()
}

#[test]
fn sigterm_stops_a_sweep_and_its_workers_cleanly_and_a_rerun_starts_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("sweep.toml");
    // 20 seeds × 19 nodes: enough work with two workers for the signal to land mid-sweep.
    std::fs::write(&file, SWEEP.replace("seeds = 3", "seeds = 20")).unwrap();
    let args = |out: &Path| sweep_args(&file, out, 2);
    let reference = tmp.path().join("reference");
    let full = run_json(
        &args(&reference)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let total = nodes(&reference).len();

    let stopped = tmp.path().join("stopped");
    let child = sweep_until_stored(&args(&stopped), &stopped, 20, Stdio::piped());
    // SAFETY: a signal to the child this test started.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Exit status 128 + SIGTERM, and the stop said what it did instead of listing failures.
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    assert!(
        stderr.contains("SIGTERM received: stopping 2 workers"),
        "{stderr}"
    );
    assert!(!stderr.contains("stages failed"), "{stderr}");
    // The workers stopped with it, and nothing holds a claim or lies half-written.
    let needle = stopped.to_string_lossy().into_owned();
    let start = Instant::now();
    while !processes_with(&needle).is_empty() && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        processes_with(&needle),
        Vec::<u32>::new(),
        "workers outlived the stop"
    );
    assert_eq!(files_named(&stopped, ".claim"), Vec::<PathBuf>::new());
    assert_eq!(files_named(&stopped, ".tmp-"), Vec::<PathBuf>::new());
    let before = nodes(&stopped);
    assert!(
        !before.is_empty() && before.len() < total,
        "{} nodes",
        before.len()
    );

    // A rerun, with an hour's claim timeout, trains only what is missing and gives the
    // uninterrupted numbers.
    let resumed = w2s()
        .args(args(&stopped))
        .env("W2S_CLAIM_STALE_SECS", "3600")
        .output()
        .unwrap();
    let resumed = common::success_json(&resumed, "the rerun");
    assert_eq!(
        resumed["nodes"]["computed"].as_u64(),
        Some((total - before.len()) as u64)
    );
    assert_eq!(resumed["summary"], full["summary"]);
    for (path, bytes) in &before {
        assert_eq!(
            nodes(&stopped).get(path),
            Some(bytes),
            "{} changed",
            path.display()
        );
    }
}

/// Every run record of a results folder, by file name.
fn records(out: &Path) -> BTreeMap<String, Vec<u8>> {
    common::files_under(&out.join("runs"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let name = p.strip_prefix(out).unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

/// The soak test: a `--jobs 2` sweep killed with SIGKILL (the whole process group, as a machine
/// that dies takes its workers) at 20 moments spread over its stages, then finished.
#[test]
fn a_sweep_killed_20_times_finishes_with_the_uninterrupted_results_and_nothing_left_over() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("sweep.toml");
    std::fs::write(&file, SWEEP.replace("seeds = 3", "seeds = 10")).unwrap();
    let args = |out: &Path| sweep_args(&file, out, 2);
    let reference = tmp.path().join("reference");
    let start = Instant::now();
    let full = run_json(
        &args(&reference)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let uninterrupted = start.elapsed();

    let soaked = tmp.path().join("soaked");
    // Kill moments from a fixed LCG: reproducible, from 0.3 s (past a restart's loading) to a
    // third of the uninterrupted run more, so that the 20 runs together advance through the
    // whole sweep.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut finished_early = 0;
    let mut progress = Vec::new();
    for _ in 0..20 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let share = (state >> 11) as f64 / (1u64 << 53) as f64;
        let wait = Duration::from_millis(300) + uninterrupted.mul_f64(share / 3.0);
        use std::os::unix::process::CommandExt;
        let mut child = w2s()
            .args(args(&soaked))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        std::thread::sleep(wait);
        if child.try_wait().unwrap().is_some() {
            finished_early += 1;
            continue;
        }
        // SAFETY: SIGKILL to the process group this test started (the sweep and its workers).
        unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
        child.wait().unwrap();
        progress.push(nodes(&soaked).len());
    }
    eprintln!(
        "nodes stored after each kill: {progress:?} of {}; left behind: {} claims, {} temporary files",
        nodes(&reference).len(),
        files_named(&soaked, ".claim").len(),
        files_named(&soaked, ".tmp-").len()
    );
    // The kills landed all along the sweep, not all before its first node or after its last.
    assert!(
        progress
            .iter()
            .any(|&n| n > 0 && n < nodes(&reference).len()),
        "{progress:?}"
    );
    assert!(
        finished_early < 10,
        "{finished_early} of 20 runs finished before their kill"
    );
    let resumed = run_json(&args(&soaked).iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(resumed["summary"], full["summary"]);
    // Every node of the uninterrupted sweep, each once, and the same run records byte for byte.
    let names = |out: &Path| {
        nodes(out)
            .into_keys()
            .map(|p| p.file_name().unwrap().to_owned())
    };
    assert_eq!(
        names(&soaked).collect::<Vec<_>>(),
        names(&reference).collect::<Vec<_>>()
    );
    assert_eq!(records(&soaked), records(&reference));
    // The finishing run removed what the killed ones left: no claim, no temporary file.
    assert_eq!(files_named(&soaked, ".claim"), Vec::<PathBuf>::new());
    assert_eq!(files_named(&soaked, ".tmp-"), Vec::<PathBuf>::new());
}

/// A sweep whose output folder is a 400 KiB tmpfs: the disk fills, the error names the file that
/// could not be written, what was stored stays whole, nothing half-written or claimed is left,
/// and the same sweep finishes once there is room. The tmpfs is mounted in a mount namespace of
/// its own (`unshare -m`, with `-r` when not root), where the sweep runs and its folder is copied
/// out for the checks.
#[test]
fn a_full_disk_is_an_error_naming_the_file_and_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("sweep.toml");
    std::fs::write(&file, SWEEP).unwrap();
    let sweep = |out: &Path| sweep_args(&file, out, 1);
    let reference = tmp.path().join("reference");
    let full = run_json(
        &sweep(&reference)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let total = nodes(&reference).len();

    let mnt = tmp.path().join("small-disk");
    let copy = tmp.path().join("copy");
    std::fs::create_dir(&mnt).unwrap();
    let out = mnt.join("out");
    let script = r#"mount -t tmpfs -o size=400k tmpfs "$1" || exit 97
"$2" "${@:4}" 2> "$1/../stderr.txt"; echo $? > "$1/../status.txt"; cp -a "$1/out" "$3""#;
    let root = unsafe { libc::geteuid() } == 0;
    let status = Command::new("unshare")
        .args(if root { vec!["-m"] } else { vec!["-r", "-m"] })
        .args(["bash", "-c", script, "bash"])
        .arg(&mnt)
        .arg(env!("CARGO_BIN_EXE_w2s"))
        .arg(&copy)
        .args(sweep(&out))
        .env_remove("W2S_DEVICE")
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        assert!(
            std::env::var_os("W2S_REQUIRE_TMPFS").is_none(),
            "W2S_REQUIRE_TMPFS is set and no tmpfs could be mounted ({status:?})"
        );
        eprintln!(
            "NOT CHECKED: this machine cannot mount a tmpfs in a mount namespace ({status:?})"
        );
        return;
    }
    let code = std::fs::read_to_string(tmp.path().join("status.txt")).unwrap();
    let stderr = std::fs::read_to_string(tmp.path().join("stderr.txt")).unwrap();
    assert_eq!(code.trim(), "1", "{stderr}");
    // The error says what could not be written, and why.
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(stderr.contains(&*out.to_string_lossy()), "{stderr}");
    // What was stored is whole, and nothing is half-written or claimed.
    let stored = nodes(&copy);
    assert!(
        !stored.is_empty() && stored.len() < total,
        "{} of {total}",
        stored.len()
    );
    for (path, bytes) in &stored {
        serde_json::from_slice::<Value>(bytes)
            .unwrap_or_else(|e| panic!("{} is damaged: {e}", path.display()));
    }
    assert_eq!(files_named(&copy, ".tmp-"), Vec::<PathBuf>::new());
    assert_eq!(files_named(&copy, ".claim"), Vec::<PathBuf>::new());
    // With room, the same sweep trains only what is missing and gives the same numbers.
    let resumed = run_json(&sweep(&copy).iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(
        resumed["nodes"]["computed"].as_u64(),
        Some((total - stored.len()) as u64)
    );
    assert_eq!(resumed["summary"], full["summary"]);
}

/// A user's text file of three classes (posts of three newsgroups, labels 0-2), read with
/// `--classes 3`, runs in K-class probe mode; without the flag, its label 2 is refused with the
/// way to say so.
#[test]
fn a_user_text_file_of_three_classes_runs_with_classes() {
    let tmp = tempfile::tempdir().unwrap();
    let _forget = common::ForgetFeaturesOnDrop::for_dir(tmp.path());
    let store = w2s_assets::Store::open();
    let data = w2s_data::load("newsgroups-20", &store).unwrap();
    let path = tmp.path().join("groups.jsonl");
    let mut per_class = [0usize; 3];
    let rows = data.examples.iter().filter(|e| {
        let k = e.label as usize;
        let take = k < 3 && per_class[k] < 150 && !e.text.trim().is_empty();
        if take {
            per_class[k] += 1;
        }
        take
    });
    common::write_jsonl(&path, rows.map(|e| (e.text.as_str(), e.label)));
    assert_eq!(per_class, [150; 3]);
    let out = tmp.path().join("out");
    let run = |classes: Option<&str>, mode: &[&'static str]| {
        let mut a = vec!["run", "--data", path.to_str().unwrap()];
        if let Some(k) = classes {
            a.extend(["--classes", k]);
        }
        a.extend(mode);
        a.extend([
            "--weak",
            "minilm-l3",
            "--strong",
            "minilm-l6",
            "--loss",
            "xent",
        ]);
        a.extend([
            "--seeds",
            "1",
            "--max-len",
            "64",
            "--no-report",
            "--json",
            "--out",
        ]);
        a.push(out.to_str().unwrap());
        w2s().args(&a).output().unwrap()
    };
    let refused = run(None, &[]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("label '2' is not 0 or 1") && err.contains("--classes K"),
        "{err}"
    );
    let doc = common::success_json(&run(Some("3"), &[]), "w2s run --classes 3");
    let r = &doc["runs"][0];
    assert_eq!(r["classes"], 3, "{r}");
    for key in ["weak_acc", "ceiling_acc", "student_acc"] {
        let v = num(r, key);
        // Three balanced classes: chance is a third; sentence encoders do better on topics.
        assert!(v > 0.4 && v <= 1.0, "{key} = {v}");
    }
    // Fine-tuning with a three-way head: every stage runs, each model's predictions are three
    // probabilities a row, and the fine-tuned L6 ranks each class above chance.
    let ft = ["--mode", "finetune", "--epochs", "2"];
    let doc = common::success_json(&run(Some("3"), &ft), "w2s run --classes 3 --mode finetune");
    let r = &doc["runs"][0];
    assert_eq!(r["classes"], 3, "{r}");
    for key in ["weak_acc", "ceiling_acc", "student_acc", "agreement"] {
        let v = num(r, key);
        assert!((0.0..=1.0).contains(&v), "{key} = {v}");
    }
    assert!(num(r, "ceiling_auroc") > 0.6, "{r}");
    let preds = std::fs::read_to_string(out.join(r["predictions"].as_str().unwrap())).unwrap();
    for line in preds.lines() {
        let line: serde_json::Value = serde_json::from_str(line).unwrap();
        let p: Vec<f64> = serde_json::from_value(line["student"].clone()).unwrap();
        assert_eq!(p.len(), 3);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-4, "{p:?}");
    }
}

/// `--choices` on a built-in multiple-choice set: sciq's questions as a choice among their four
/// candidates, one row per question.
#[test]
fn sciq_runs_as_a_choice_among_four() {
    let tmp = tempfile::tempdir().unwrap();
    // The view's features are named after it; no other test embeds it at 64 tokens.
    let _forget = common::ForgetFeaturesOnDrop("sciq_choices-len64".into());
    let out = tmp.path().join("out");
    let args = [
        "run",
        "--data",
        "sciq",
        "--choices",
        "--weak",
        "minilm-l3",
        "--strong",
        "minilm-l6",
        "--loss",
        "xent",
        "--seeds",
        "1",
        "--max-rows",
        "200",
        "--max-len",
        "64",
        "--no-report",
        "--json",
        "--out",
    ];
    let mut a = args.to_vec();
    a.push(out.to_str().unwrap());
    let doc = common::success_json(&w2s().args(&a).output().unwrap(), "w2s run --choices");
    let r = &doc["runs"][0];
    assert_eq!(
        (r["classes"].as_u64(), r["dataset"].as_str()),
        (Some(4), Some("sciq?choices")),
        "{r}"
    );
    let rows: u64 = r["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(rows, 200, "questions, not candidates");
    for key in ["weak_acc", "ceiling_acc", "student_acc"] {
        let v = num(r, key);
        assert!((0.0..=1.0).contains(&v), "{key} = {v}");
    }
    // Fine-tuning: a one-output scorer of the candidates, every stage run, every question's
    // predictions a distribution over its four candidates.
    let mut ft = a.clone();
    ft.extend(["--mode", "finetune", "--epochs", "1"]);
    let doc = common::success_json(
        &w2s().args(&ft).output().unwrap(),
        "w2s run --choices --mode finetune",
    );
    let r = &doc["runs"][0];
    assert_eq!(r["classes"].as_u64(), Some(4), "{r}");
    for key in ["weak_acc", "ceiling_acc", "student_acc"] {
        let v = num(r, key);
        assert!((0.0..=1.0).contains(&v), "{key} = {v}");
    }
    let preds = std::fs::read_to_string(out.join(r["predictions"].as_str().unwrap())).unwrap();
    assert_eq!(preds.lines().count(), 200);
    for line in preds.lines() {
        let line: serde_json::Value = serde_json::from_str(line).unwrap();
        let p: Vec<f64> = serde_json::from_value(line["student"].clone()).unwrap();
        assert_eq!(p.len(), 4);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-4, "{p:?}");
    }
    // knn is refused for the choice view with the reason.
    let mut knn = a.clone();
    knn[9] = "knn:5+xent";
    let refused = w2s().args(&knn).output().unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("logreg-relabel works there"), "{err}");
}

#[test]
fn a_warmup_outside_zero_to_one_is_refused_with_the_flag_named() {
    let out = w2s()
        .args(["run", "--data", "tweets", "--warmup", "1.5", "--json"])
        .output()
        .expect("w2s runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--warmup") && err.contains("1.5"), "{err}");
}

#[test]
fn a_finetune_run_after_a_probe_run_into_one_folder_keeps_both_records() {
    // The case of issue 12: the second run used to replace the first one's record.
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("X");
    let base = [
        "run",
        "--data",
        "tweets",
        "--weak",
        "minilm-l3",
        "--strong",
        "minilm-l6",
        "--loss",
        "xent",
        "--seeds",
        "1",
        "--max-rows",
        "300",
        "--out",
        out.to_str().unwrap(),
        "--no-report",
        "--json",
    ];
    let probe = run_json(&base);
    let mut finetune = base.to_vec();
    finetune.extend(["--mode", "finetune", "--epochs", "1", "--max-len", "40"]);
    let ft = run_json(&finetune);
    let (p, f) = (&probe["runs"][0], &ft["runs"][0]);
    assert_ne!(
        p["config"], f["config"],
        "the two configurations have one id"
    );
    assert_ne!(p["predictions"], f["predictions"]);
    let records = w2s_experiment::read_runs(&out).unwrap();
    assert_eq!(records.len(), 2, "both records are on disk");
    let probe_record = records
        .iter()
        .find(|r| r.config == p["config"].as_str().unwrap())
        .expect("the probe record survives");
    assert_eq!(probe_record.student_acc, num(p, "student_acc"));
    assert!(out.join(&probe_record.predictions).is_file());
    let summary = w2s_experiment::summarize(&records);
    assert_eq!(
        summary.len(),
        2,
        "the summary keeps the configurations apart"
    );
    assert!(
        summary.iter().all(|s| s.series.starts_with("xent @")),
        "{summary:?}"
    );
    // The same probe command again finds its record and its nodes.
    let again = run_json(&base);
    assert_eq!(again["nodes"]["computed"].as_u64(), Some(0));
    assert_eq!(w2s_experiment::read_runs(&out).unwrap().len(), 2);
}

#[test]
fn every_method_of_the_list_is_one_run_sharing_what_it_can() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let methods =
        "xent,conf-filter:0.6+xent,knn:10+xent,logreg-relabel+logconf,s2s:2+xent,bag:3+xent";
    let run = |weak: &str, methods: &str| {
        let out = out.to_str().unwrap();
        run_json(&[
            "run",
            "--data",
            "tweets",
            "--weak",
            weak,
            "--strong",
            "minilm-l6",
            "--method",
            methods,
            "--seeds",
            "1",
            "--max-rows",
            "1000",
            "--out",
            out,
            "--no-report",
            "--json",
        ])
    };
    let doc = run("minilm-l3", methods);
    let runs = doc["runs"].as_array().unwrap();
    let names: Vec<&str> = runs.iter().map(|r| r["method"].as_str().unwrap()).collect();
    assert_eq!(names, methods.split(',').collect::<Vec<_>>());
    assert_eq!(runs[3]["loss"], "logconf");
    let nodes: Vec<&Value> = runs.iter().map(|r| &r["nodes"]).collect();
    for n in &nodes[1..] {
        assert_eq!(n[1], nodes[0][1], "one ceiling");
        assert_ne!(n[2], nodes[0][2], "a student of its own");
    }
    for n in &nodes[1..5] {
        assert_eq!(n[0], nodes[0][0], "one weak model");
    }
    // bag:3 has its own supervisor (the mean of three weak models) and so its own weak accuracy.
    assert_ne!(nodes[5][0], nodes[0][0]);
    for r in runs {
        assert!((0.0..=1.0).contains(&num(r, "student_acc")), "{r}");
    }
    // weak, ceiling, 4 students, 2 strong-to-strong rounds (round 0 is xent's student), 3 bagged
    // weak models and their student.
    assert_eq!(doc["nodes"]["computed"].as_u64(), Some(12), "{doc}");

    // The mean of two weak models: E5's weak model and the student are new, L3's is reused.
    let two = run("minilm-l3+e5-small", "xent");
    let r = &two["runs"][0];
    assert_eq!(r["weak"], "minilm-l3+e5-small");
    assert_ne!(r["nodes"][0], nodes[0][0]);
    assert_eq!(two["nodes"]["computed"].as_u64(), Some(2), "{two}");

    let bad = w2s()
        .args([
            "run",
            "--data",
            "tweets",
            "--method",
            "conf-filter:2+xent",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("conf-filter") && err.contains("(0, 1]"),
        "{err}"
    );
}

#[test]
fn the_zero_shot_baseline_scores_a_decoder_without_training_and_refuses_an_encoder() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let out = out.to_str().unwrap();
    let doc = run_json(&[
        "run",
        "--data",
        "tweets",
        "--weak",
        "minilm-l3",
        "--strong",
        "smollm2-135m",
        "--method",
        "zeroshot",
        "--seeds",
        "1",
        "--max-rows",
        "120",
        "--max-len",
        "64",
        "--out",
        out,
        "--no-report",
        "--json",
    ]);
    let r = &doc["runs"][0];
    assert_eq!(r["method"], "zeroshot");
    assert_eq!(r["loss"], "none");
    assert_eq!(
        r["student_best_epoch"].as_u64(),
        Some(0),
        "nothing was trained"
    );
    assert!((0.0..=1.0).contains(&num(r, "student_auroc")), "{r}");
    // The scores are the model's, row by row: not a constant.
    let preds =
        std::fs::read_to_string(Path::new(out).join(r["predictions"].as_str().unwrap())).unwrap();
    let p: Vec<f64> = preds
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["student"]
                .as_f64()
                .unwrap()
        })
        .collect();
    let (lo, hi) = p
        .iter()
        .fold((1.0f64, 0.0f64), |(a, b), &x| (a.min(x), b.max(x)));
    assert!(hi - lo > 0.01, "zero-shot scores {lo}..{hi}");
    // weak, ceiling (a probe on SmolLM2's features) and the zero-shot node.
    assert_eq!(doc["nodes"]["computed"].as_u64(), Some(3), "{doc}");

    // Another prompt from a sweep file: a new zero-shot node and a second record, the first kept.
    let file = tmp.path().join("zs.toml");
    std::fs::write(
        &file,
        "datasets = [\"tweets\"]\npairs = [[\"minilm-l3\", \"smollm2-135m\"]]\n\
         methods = [\"zeroshot\"]\nseeds = 1\n\
         [zeroshot.tweets]\ntemplate = \"{text}\\nGood or bad news? Answer:\"\n\
         answers = [\" bad\", \" good\"]\n\
         [experiment]\nmax_rows = 120\nmax_len = 64\n",
    )
    .unwrap();
    let swept = run_json(&[
        "--quiet",
        "sweep",
        file.to_str().unwrap(),
        "--out",
        out,
        "--no-report",
        "--json",
    ]);
    assert_eq!(swept["nodes"]["computed"].as_u64(), Some(1), "{swept}");
    assert_ne!(swept["runs"][0]["config"], r["config"]);
    assert_ne!(swept["runs"][0]["student_auroc"], r["student_auroc"]);
    assert_eq!(w2s_experiment::read_runs(Path::new(out)).unwrap().len(), 2);

    let bad = w2s()
        .args([
            "run",
            "--data",
            "tweets",
            "--weak",
            "minilm-l3",
            "--strong",
            "minilm-l6",
            "--method",
            "zeroshot",
            "--seeds",
            "1",
            "--max-rows",
            "100",
            "--out",
            out,
            "--json",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("causal language model"), "{err}");
}
