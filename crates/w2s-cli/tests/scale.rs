//! Scaling a sweep out: `--jobs N` worker processes, two sweeps writing one folder at once, and
//! `--shard i/N`, on real models (MiniLM-L3, MiniLM-L6) and a real dataset (tweets, capped). They
//! need the asset cache that `w2s fetch --all` fills (`.ci/run` does).
mod common;

use common::{files_under, forget_features, success_json};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn w2s() -> Command {
    Command::new(env!("CARGO_BIN_EXE_w2s"))
}

/// The runs without what differs between processes (timings, and the path of their predictions).
fn comparable(doc: &Value) -> Vec<Value> {
    let mut runs: Vec<Value> = doc["runs"].as_array().expect("runs").clone();
    for r in &mut runs {
        let o = r.as_object_mut().unwrap();
        o.remove("seconds");
    }
    runs
}

fn computed(doc: &Value) -> u64 {
    doc["nodes"]["computed"].as_u64().expect("nodes.computed")
}

/// A sweep file over tweets with a `max_len` no other test uses, so that its features are not in
/// the cache yet and the two sweeps below contend for them too.
fn sweep_file(dir: &Path, max_len: usize) -> PathBuf {
    let path = dir.join("grid.toml");
    std::fs::write(
        &path,
        format!(
            "datasets = [\"tweets\"]\n\
             pairs = [[\"minilm-l3\", \"minilm-l6\"]]\n\
             methods = [\"xent\", \"logconf\", \"conf-filter:0.6+xent\"]\n\
             seeds = 2\n\
             [experiment]\nmax_rows = 300\nmax_len = {max_len}\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn two_sweeps_with_two_workers_each_into_one_folder_train_every_node_once() {
    let max_len = 61;
    forget_features(&format!("tweets-len{max_len}-"));
    let dir = tempfile::tempdir().unwrap();
    let file = sweep_file(dir.path(), max_len);
    let shared = dir.path().join("shared");
    let start = |jobs: &str, out: &Path| {
        w2s()
            .args(["--quiet", "sweep"])
            .arg(&file)
            .arg("--out")
            .arg(out)
            .args(["--jobs", jobs, "--json", "--no-report"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("w2s starts")
    };
    let a = start("2", &shared);
    let b = start("2", &shared);
    let a = success_json(&a.wait_with_output().unwrap(), "first sweep");
    let b = success_json(&b.wait_with_output().unwrap(), "second sweep");
    let single = success_json(
        &start("1", &dir.path().join("single"))
            .wait_with_output()
            .unwrap(),
        "the same sweep with --jobs 1",
    );
    forget_features(&format!("tweets-len{max_len}-"));

    // 2 seeds × (weak, ceiling, 3 students) = 10 nodes, each trained by one process only.
    let stored = files_under(&shared.join("store/models"));
    assert!(
        stored
            .iter()
            .all(|p| p.extension().is_some_and(|e| e == "json")),
        "only nodes are left in the store (no claim or temporary file): {stored:?}"
    );
    assert_eq!(stored.len(), 10);
    assert_eq!(computed(&single), 10);
    assert_eq!(
        computed(&a) + computed(&b),
        10,
        "a node was trained twice: {} + {}",
        computed(&a),
        computed(&b)
    );
    // Both agree with --jobs 1, bit for bit, and every record on disk is complete.
    assert_eq!(a["summary"], single["summary"]);
    assert_eq!(b["summary"], single["summary"]);
    let strip = |v: &Value| {
        let mut runs = comparable(v);
        for r in &mut runs {
            r.as_object_mut().unwrap().remove("predictions");
        }
        runs
    };
    assert_eq!(strip(&a), strip(&single));
    assert_eq!(strip(&b), strip(&single));
    let records: Vec<PathBuf> = files_under(&shared.join("runs"))
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".json"))
        .collect();
    assert_eq!(records.len(), 6);
    for r in &records {
        let v: Value = serde_json::from_slice(&std::fs::read(r).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", r.display()));
        assert!(
            v["pgr"].is_number() || v["pgr"].is_null(),
            "{}",
            r.display()
        );
        let preds = shared.join(v["predictions"].as_str().unwrap());
        let lines = std::fs::read_to_string(&preds).unwrap().lines().count();
        assert_eq!(lines, 300, "{}", preds.display());
    }
    let leftovers: Vec<PathBuf> = files_under(&shared)
        .into_iter()
        .filter(|p| {
            let s = p.to_string_lossy();
            s.contains(".tmp-") || s.ends_with(".claim")
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn shards_split_the_grid_by_dataset_and_seed_and_add_up_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = sweep_file(dir.path(), 128);
    let run = |extra: &[&str], out: &str| {
        success_json(
            &w2s()
                .args(["--quiet", "sweep"])
                .arg(&file)
                .arg("--out")
                .arg(dir.path().join(out))
                .args(["--json", "--no-report"])
                .args(extra)
                .output()
                .unwrap(),
            &format!("sweep {extra:?}"),
        )
    };
    let whole = run(&[], "whole");
    let first = run(&["--shard", "0/2"], "sharded");
    let second = run(&["--shard", "1/2"], "sharded");
    let seeds = |v: &Value| -> Vec<u64> {
        let mut s: Vec<u64> = v["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["seed"].as_u64().unwrap())
            .collect();
        s.dedup();
        s
    };
    // One group per seed: each shard holds all three methods of one seed.
    assert_eq!(seeds(&first), [0]);
    assert_eq!(seeds(&second), [1]);
    assert_eq!(computed(&first) + computed(&second), computed(&whole));
    let mut both = comparable(&first);
    both.extend(comparable(&second));
    // Prediction paths are relative to the output folder, so they agree too.
    assert_eq!(both, comparable(&whole));
    let results = files_under(&dir.path().join("sharded/shards"));
    assert_eq!(results.len(), 2, "{results:?}");
    for r in results {
        let v: Value = serde_json::from_slice(&std::fs::read(&r).unwrap()).unwrap();
        assert_eq!(v["runs"], 3, "{}", r.display());
    }
    let err = w2s()
        .args(["sweep"])
        .arg(&file)
        .args(["--shard", "2/2"])
        .output()
        .unwrap();
    assert!(!err.status.success());
    assert!(String::from_utf8_lossy(&err.stderr).contains("0/2 to 1/2"));
}
