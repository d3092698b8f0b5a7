//! A sweep checks its inputs before it trains anything: every file in `configs/` passes its dry
//! run (a file naming `hf:` models that this machine's Hugging Face cache lacks fails, naming
//! them and how to get them); a dataset or model that cannot be had stops a sweep with one message
//! and nothing written; `--skip-unavailable` runs the rest under another grid id; and the plan a
//! dry run prints is what the sweep then trains. Real models (MiniLM-L3, MiniLM-L6, e5-small) on
//! a real dataset (tweets, capped); they need the asset cache that `w2s fetch --all` fills.
mod common;

use common::{files_under, forget_features, success_json};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn w2s(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_w2s"))
        .args(args)
        .output()
        .expect("w2s runs")
}

fn configs() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_config_passes_its_dry_run_or_names_the_models_it_lacks() {
    let files = configs();
    assert!(files.len() >= 5, "{files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let out_dir = tempfile::tempdir().unwrap();
        let out = w2s(&[
            "--quiet",
            "sweep",
            file.to_str().unwrap(),
            "--dry-run",
            "--out",
            out_dir.path().to_str().unwrap(),
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let name = file.file_name().unwrap().to_string_lossy();
        if out.status.success() {
            assert!(
                stdout.contains(" runs -> ") && stdout.contains("\nnodes: "),
                "{name}: no plan:\n{stdout}"
            );
        } else {
            // Only a model from the local Hugging Face cache may be missing on a machine that
            // fetched every built-in asset, and the message says how to get it.
            assert!(
                text.contains("\"hf:"),
                "{name}: the dry run failed on built-in inputs:\n{stderr}"
            );
            let problems: Vec<&str> = stderr.lines().filter(|l| l.starts_with("  - ")).collect();
            assert!(!problems.is_empty(), "{name}: no input named:\n{stderr}");
            for line in problems {
                assert!(
                    line.starts_with("  - model hf:") && line.contains("huggingface-cli download"),
                    "{name}: {line}"
                );
            }
        }
        assert!(
            files_under(out_dir.path()).is_empty(),
            "{name}: the dry run wrote into its output folder"
        );
    }
}

#[test]
fn an_input_that_cannot_be_had_stops_the_sweep_with_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("grid.toml");
    std::fs::write(
        &file,
        "datasets = [\"tweets\", \"no-such-dataset\", \"missing/rows.jsonl\"]\n\
         models = [\"minilm-l3\", \"minilm-l6\", \"no-such-model\"]\n\
         methods = [\"xent\"]\nseeds = 1\n",
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let out = w2s(&[
        "sweep",
        file.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the sweep ran:\n{stderr}");
    assert!(
        stderr.contains("3 inputs cannot be had, so nothing was trained"),
        "{stderr}"
    );
    for named in [
        "  - dataset no-such-dataset: unknown dataset 'no-such-dataset'",
        "  - dataset missing/rows.jsonl: missing/rows.jsonl: no such file",
        "  - model no-such-model: unknown model 'no-such-model'",
    ] {
        assert!(stderr.contains(named), "{named} not said:\n{stderr}");
    }
    assert!(stderr.contains("--skip-unavailable"), "{stderr}");
    assert!(!out_dir.exists(), "the sweep wrote {}", out_dir.display());
}

/// Writes a grid over tweets (200 rows, a `max_len` no other test uses), with `extra` datasets.
fn grid(dir: &Path, name: &str, extra: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "datasets = [\"tweets\"{extra}]\n\
             pairs = [[\"minilm-l3\", \"minilm-l6\"]]\n\
             chains = [[\"minilm-l3\", \"minilm-l6\", \"e5-small\"]]\n\
             methods = [\"xent\", \"conf-filter:0.55+xent\"]\n\
             seeds = 2\n\
             [experiment]\nmax_rows = 200\nmax_len = {MAX_LEN}\n"
        ),
    )
    .unwrap();
    path
}

const MAX_LEN: usize = 59;

fn plan(file: &Path, out: &Path, extra: &[&str]) -> Value {
    let mut args = vec![
        "--quiet",
        "sweep",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--dry-run",
        "--json",
    ];
    args.extend(extra);
    success_json(&w2s(&args), "the dry run")
}

fn count(plan: &Value, list: &str, flag: &str, value: bool) -> usize {
    plan[list]
        .as_array()
        .unwrap_or_else(|| panic!("no {list} in {plan}"))
        .iter()
        .filter(|n| n[flag].as_bool() == Some(value))
        .count()
}

#[test]
fn the_plan_is_what_the_sweep_trains_and_a_skip_changes_the_grid() {
    forget_features(&format!("-len{MAX_LEN}-"));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let with_missing = grid(dir.path(), "with.toml", ", \"no-such-dataset\"");
    let complete = grid(dir.path(), "complete.toml", "");

    // Without --skip-unavailable the dry run fails too, naming the dataset.
    let failed = w2s(&[
        "sweep",
        with_missing.to_str().unwrap(),
        "--dry-run",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!failed.status.success());
    assert!(String::from_utf8_lossy(&failed.stderr).contains("dataset no-such-dataset"));

    // Per seed: the weak L3, ceilings L6 and e5, and students: L3 → L6 (shared by the pair and
    // the chain's first link), then L6 → e5 and the direct L3 → e5, each for both methods.
    let before = plan(&with_missing, &out, &["--skip-unavailable"]);
    assert_eq!(before["runs"], 8, "{before}");
    assert_eq!(
        count(&before, "nodes", "stored", false),
        2 * (1 + 2 + 3 * 2)
    );
    assert_eq!(count(&before, "nodes", "stored", true), 0);
    assert_eq!(count(&before, "features", "cached", false), 3);
    assert!(!out.exists(), "the dry run wrote into {}", out.display());

    let ran = success_json(
        &w2s(&[
            "--quiet",
            "sweep",
            with_missing.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--skip-unavailable",
            "--shard",
            "0/1",
            "--no-report",
            "--json",
        ]),
        "the sweep",
    );
    assert_eq!(ran["runs"].as_array().unwrap().len(), 8);
    assert_eq!(ran["nodes"]["computed"], 18, "{}", ran["nodes"]);

    let after = plan(&with_missing, &out, &["--skip-unavailable"]);
    assert_eq!(count(&after, "nodes", "stored", true), 18, "{after}");
    assert_eq!(count(&after, "nodes", "stored", false), 0, "{after}");
    assert_eq!(count(&after, "features", "cached", true), 3);
    // The stored nodes are those the plan named before training, but for the students of the
    // label step, whose keys depend on their teachers' predictions.
    let keys = |p: &Value, role: &str| -> Vec<String> {
        let mut k: Vec<String> = p["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["role"] == role)
            .map(|n| n["key"].as_str().unwrap().to_string())
            .collect();
        k.sort();
        k
    };
    for role in ["weak", "ceiling"] {
        assert_eq!(keys(&before, role), keys(&after, role), "{role}");
    }

    // The same grid without the missing dataset is another grid: its shard writes its own
    // result file, and trains nothing.
    let again = success_json(
        &w2s(&[
            "--quiet",
            "sweep",
            complete.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--shard",
            "0/1",
            "--no-report",
            "--json",
        ]),
        "the complete sweep",
    );
    assert_eq!(again["nodes"]["computed"], 0);
    let results: Vec<PathBuf> = files_under(&out.join("shards"));
    assert_eq!(results.len(), 2, "{results:?}");
    forget_features(&format!("-len{MAX_LEN}-"));
}
