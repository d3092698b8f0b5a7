//! `w2s scout` on real models and a real dataset: tweets at the settings of docs/results.md
//! (6,000 rows, 5 seeds), where MiniLM-L3 -> mpnet-base has a clear gap and MiniLM-L3 ->
//! MiniLM-L6 does not, and a sweep over both pairs warns about the second only. Needs the asset
//! cache that `w2s fetch --all` fills (`.ci/run` does).
mod common;

use common::success_json;
use serde_json::Value;
use std::process::Command;

#[test]
fn scout_finds_the_gaps_of_docs_results_on_tweets() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_w2s"))
        .args(["--quiet", "scout", "--data", "tweets"])
        .args([
            "--models",
            "minilm-l3,minilm-l6,mpnet-base",
            "--json",
            "--out",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let v = success_json(&out, "w2s scout");
    let d = &v["datasets"][0];
    assert_eq!(d["dataset"], "tweets");
    assert_eq!(d["seeds"], 5);
    let pair = |w: &str, s: &str| -> &Value {
        d["pairs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["weak"] == w && p["strong"] == s)
            .unwrap_or_else(|| panic!("{w} -> {s} in {d}"))
    };
    assert_eq!(
        d["pairs"].as_array().unwrap().len(),
        3,
        "every weaker -> stronger pair"
    );
    let far = pair("minilm-l3", "mpnet-base");
    assert_eq!(far["verdict"], "usable", "{far}");
    // docs/results.md: +5.7 ± 0.9 points
    let gap = far["gap"]["mean"].as_f64().unwrap();
    assert!((0.048..0.066).contains(&gap), "{far}");
    let near = pair("minilm-l3", "minilm-l6");
    assert_ne!(near["verdict"], "usable", "{near}");
    // Balanced, so chance is about 50%, and MiniLM-L3's 80.9% is far above it.
    let chance = d["chance"].as_f64().unwrap();
    assert!((0.5..0.53).contains(&chance), "chance {chance}");
    assert_eq!(far["weak_near_chance"], false, "{far}");
    // The weak and ceiling accuracies are those of the runs' own nodes: a sweep reuses them.
    let l3 = &d["models"][0];
    assert_eq!(l3["model"], "minilm-l3");
    assert!(
        (l3["weak_acc"]["mean"].as_f64().unwrap() - 0.809).abs() < 0.002,
        "{l3}"
    );
    let stored = std::fs::read_dir(dir.path().join("store/models"))
        .unwrap()
        .count();
    assert_eq!(stored, 3 * 5 * 2, "each model on A and on B, per seed");

    // A sweep over both pairs reuses the scout's nodes, and warns about the pair without a gap
    // only.
    let grid = dir.path().join("grid.toml");
    std::fs::write(
        &grid,
        "datasets = [\"tweets\"]\n\
         pairs = [[\"minilm-l3\", \"minilm-l6\"], [\"minilm-l3\", \"mpnet-base\"]]\n\
         methods = [\"xent\"]\n\
         seeds = 5\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_w2s"))
        .args(["--quiet", "sweep"])
        .arg(&grid)
        .args(["--json", "--no-report", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    let v = success_json(&out, "w2s sweep");
    assert_eq!(
        v["nodes"]["computed"],
        2 * 5,
        "only the students are trained: {}",
        v["nodes"]
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("tweets: minilm-l3 -> minilm-l6 has"),
        "no warning about L3 -> L6:\n{stderr}"
    );
    assert!(
        !stderr.contains("minilm-l3 -> mpnet-base has"),
        "a warning about L3 -> mpnet:\n{stderr}"
    );
}
