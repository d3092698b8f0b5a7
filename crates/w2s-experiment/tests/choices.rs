//! Multiple choice as a choice among K (`FILE?choices`): a file of candidate rows, 2 to 4 per
//! question, whose texts are points a synthetic model reads. The right candidate is the one
//! furthest along a fixed direction, so a model that sees the points exactly can learn to pick
//! it; a noisy view is a weaker supervisor. Checks properties of the records and predictions.
use std::io::Write;
use std::path::{Path, PathBuf};
use w2s_assets::Store;
use w2s_experiment::{ExperimentConfig, Method, RunRecord, RunSpec, Runner};

const QUESTIONS: usize = 600;
const DIM: usize = 6;

/// Candidates of question q: 2 + q % 3 of them.
fn candidates(q: usize) -> usize {
    2 + q % 3
}

/// Writes the candidate rows as JSONL (`text`: the point, `label`, `question`, `group`).
fn choice_file(dir: &Path) -> PathBuf {
    let path = dir.join("choices.jsonl");
    let mut f = std::fs::File::create(&path).unwrap();
    // splitmix64: uniform in [-2, 2).
    let mut state = 7u64;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) as f64 / u64::MAX as f64 * 4.0 - 2.0
    };
    let direction = [1.0, -0.5, 0.8, 0.0, 0.3, -1.0];
    for q in 0..QUESTIONS {
        let points: Vec<Vec<f64>> = (0..candidates(q))
            .map(|_| (0..DIM).map(|_| next()).collect())
            .collect();
        let score = |p: &Vec<f64>| p.iter().zip(&direction).map(|(a, b)| a * b).sum::<f64>();
        let right = (0..points.len())
            .max_by(|&a, &b| score(&points[a]).total_cmp(&score(&points[b])))
            .unwrap();
        for (j, p) in points.iter().enumerate() {
            let text: Vec<String> = p.iter().map(|v| format!("{v:.4}")).collect();
            let row = serde_json::json!({
                "id": format!("q{q}-{j}"), "text": text.join(" "), "label": (j == right) as u8,
                "question": format!("q{q}"), "group": format!("q{q}"),
            });
            writeln!(f, "{row}").unwrap();
        }
    }
    path
}

fn spec(data: &str, method: &str) -> RunSpec {
    RunSpec {
        dataset: data.to_string(),
        chain: vec!["synthetic:2".into(), "synthetic".into()],
        method: Method::parse(method).unwrap(),
        seed: 0,
    }
}

fn run(
    out: &Path,
    cfg: ExperimentConfig,
    specs: &[RunSpec],
) -> Vec<std::result::Result<RunRecord, String>> {
    let assets = tempfile::tempdir().unwrap();
    let store = Store::at(assets.path());
    let mut runner = Runner::new(&store, out, cfg, Box::new(|_| {}));
    specs
        .iter()
        .map(|s| runner.run(s).map_err(|e| e.to_string()))
        .collect()
}

fn config() -> ExperimentConfig {
    let mut cfg = ExperimentConfig::default();
    // A few dozen questions: small batches and a large step, so that the head gets somewhere.
    cfg.train.epochs = 20;
    cfg.train.batch_size = 8;
    cfg.train.lr = 0.05;
    cfg
}

#[test]
fn a_choice_view_runs_questions_of_two_to_four_candidates() {
    let dir = tempfile::tempdir().unwrap();
    let file = choice_file(dir.path());
    let view = format!("{}?choices", file.display());
    let out = tempfile::tempdir().unwrap();
    let methods = [
        "xent",
        "logconf",
        "logreg-relabel+xent",
        "conf-filter:0.5+xent",
    ];
    let specs: Vec<RunSpec> = methods.iter().map(|m| spec(&view, m)).collect();
    let records = run(out.path(), config(), &specs);
    for r in &records {
        let r = r.as_ref().unwrap();
        // K is the widest question; the rows are questions.
        assert_eq!(r.classes, 4);
        assert_eq!(r.rows.iter().sum::<usize>(), QUESTIONS);
        for v in [r.weak_acc, r.ceiling_acc, r.student_acc, r.agreement] {
            assert!(v.is_finite() && (0.0..=1.0).contains(&v), "{r:?}");
        }
        // The exact view learns to pick the right candidate; the noisy one does worse.
        assert!(r.ceiling_acc >= 0.85, "ceiling {} {r:?}", r.ceiling_acc);
        assert!(r.weak_acc < r.ceiling_acc, "{r:?}");
        // Predictions: one per question, a distribution over its own candidates only.
        let preds = std::fs::read_to_string(out.path().join(&r.predictions)).unwrap();
        let mut lines = 0;
        for line in preds.lines() {
            let line: serde_json::Value = serde_json::from_str(line).unwrap();
            let q: usize = line["id"].as_str().unwrap()[1..].parse().unwrap();
            let row: Vec<f64> = serde_json::from_value(line["student"].clone()).unwrap();
            assert_eq!(row.len(), 4);
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-4);
            assert!(
                row[candidates(q)..].iter().all(|&p| p == 0.0),
                "{q}: {row:?}"
            );
            assert!((line["label"].as_u64().unwrap() as usize) < candidates(q));
            lines += 1;
        }
        assert_eq!(lines, QUESTIONS);
    }

    // knn cannot compare questions: refused with the reason.
    let refused = run(out.path(), config(), &[spec(&view, "knn:5+xent")]);
    let err = refused[0].as_ref().unwrap_err();
    assert!(err.contains("logreg-relabel works there"), "{err}");

    // Without ?choices the same file is binary: one row per candidate, balanced (every right
    // candidate and as many wrong ones).
    let plain = run(
        out.path(),
        config(),
        &[spec(&file.to_string_lossy(), "xent")],
    );
    let plain = plain[0].as_ref().unwrap();
    assert_eq!(plain.classes, 2);
    assert_eq!(plain.rows.iter().sum::<usize>(), 2 * QUESTIONS);
}

#[test]
fn a_malformed_question_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.jsonl");
    let mut rows = String::new();
    for q in 0..30 {
        for j in 0..3 {
            // Question q7 has two right candidates.
            let label = (j == 0 || (q == 7 && j == 2)) as u8;
            rows.push_str(&format!(
                "{{\"text\":\"{q} {j}\",\"label\":{label},\"question\":\"q{q}\"}}\n"
            ));
        }
    }
    std::fs::write(&path, rows).unwrap();
    let out = tempfile::tempdir().unwrap();
    let view = format!("{}?choices", path.display());
    let records = run(out.path(), config(), &[spec(&view, "xent")]);
    let err = records[0].as_ref().unwrap_err();
    assert!(
        err.contains("question q7: two right candidates (the second at row 24, id row-24)"),
        "{err}"
    );
}
