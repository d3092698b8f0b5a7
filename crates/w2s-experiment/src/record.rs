//! The result of one run (metrics of weak, ceiling and student on the test rows) and its files;
//! `summary.rs` averages them over seeds.
use crate::config::{ExperimentConfig, RunSpec};
use crate::metrics;
use crate::node::TrainedNode;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use w2s_data::{Dataset, Split};

/// serde for a metric that can be NaN (an AUROC on a single-class test set, the agreement on the
/// weak model's errors when it makes none): JSON has no NaN, so it is written as `null` and read
/// back as NaN. Without it such a record was written but could not be read back.
pub(crate) mod nan_or_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }

    /// The same for a list (a training curve).
    pub mod vec {
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(v.iter().map(|x| x.is_finite().then_some(*x)))
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
            let v = Vec::<Option<f64>>::deserialize(d)?;
            Ok(v.into_iter().map(|x| x.unwrap_or(f64::NAN)).collect())
        }
    }
}

fn two() -> usize {
    2
}

fn is_two(k: &usize) -> bool {
    *k == 2
}

/// Everything measured in one run. Accuracies, AUROCs and ECE are on the test rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Dataset name.
    pub dataset: String,
    /// Weak supervisor.
    pub weak: String,
    /// Strong student.
    pub strong: String,
    /// The whole chain for bootstrapping runs, `None` for direct transfer.
    pub chain: Option<Vec<String>>,
    /// Student loss.
    pub loss: String,
    /// The method: label steps and loss (`conf-filter:0.8+xent`). Records written before methods
    /// existed read with their loss here.
    #[serde(default)]
    pub method: String,
    /// [`ExperimentConfig::config_id`] of the settings and method, with the prompt for the
    /// zero-shot baseline (empty in records written before it existed).
    #[serde(default)]
    pub config: String,
    /// "soft" or "hard" weak labels.
    pub labels: String,
    /// Split and training seed.
    pub seed: u64,
    /// Rows in A, B, val, test.
    pub rows: [usize; 4],
    /// K, the number of classes; left out for binary runs (their records are unchanged). With
    /// K > 2, AUROCs are macro one-vs-rest and the misfit is half the mean squared distance of
    /// the probability rows.
    #[serde(default = "two", skip_serializing_if = "is_two")]
    pub classes: usize,
    /// Weak model's test accuracy.
    #[serde(with = "nan_or_null")]
    pub weak_acc: f64,
    /// Strong model trained on ground truth: test accuracy.
    #[serde(with = "nan_or_null")]
    pub ceiling_acc: f64,
    /// Strong model trained on weak labels: test accuracy.
    #[serde(with = "nan_or_null")]
    pub student_acc: f64,
    /// `(student − weak) / (ceiling − weak)` on accuracy; `None` when `ceiling_acc ≤ weak_acc`.
    pub pgr: Option<f64>,
    /// PGR on AUROC; `None` when the ceiling's AUROC does not beat the weak model's.
    pub pgr_auroc: Option<f64>,
    /// True when the ceiling does not beat the weak model on accuracy (no PGR).
    pub no_gap: bool,
    /// Weak model's test AUROC.
    #[serde(with = "nan_or_null")]
    pub weak_auroc: f64,
    /// Ceiling's test AUROC.
    #[serde(with = "nan_or_null")]
    pub ceiling_auroc: f64,
    /// Student's test AUROC.
    #[serde(with = "nan_or_null")]
    pub student_auroc: f64,
    /// Weak model's expected calibration error.
    #[serde(with = "nan_or_null")]
    pub weak_ece: f64,
    /// Ceiling's expected calibration error.
    #[serde(with = "nan_or_null")]
    pub ceiling_ece: f64,
    /// Student's expected calibration error.
    #[serde(with = "nan_or_null")]
    pub student_ece: f64,
    /// Share of test rows where student and weak model predict the same class.
    #[serde(with = "nan_or_null")]
    pub agreement: f64,
    /// The same, on the test rows the weak model gets wrong (low = the student corrects it).
    #[serde(with = "nan_or_null")]
    pub agreement_on_weak_errors: f64,
    /// Mean squared difference of student and weak probabilities on B, the student's training rows.
    #[serde(with = "nan_or_null")]
    pub misfit: f64,
    /// Accuracy of the weak labels on B (what the student was taught).
    #[serde(with = "nan_or_null")]
    pub weak_label_acc: f64,
    /// Best test accuracy of the student over epochs: an oracle, never used for selection.
    pub student_oracle_acc: Option<f64>,
    /// Epoch the student's early stopping kept.
    pub student_best_epoch: usize,
    /// The student's test accuracy after each epoch (the paper's Fig. 7): logged, never used for
    /// early stopping. Empty for a zero-shot student and in records written before it was kept.
    #[serde(default, with = "nan_or_null::vec")]
    pub student_curve: Vec<f64>,
    /// The ceiling's test accuracy after each epoch, the same way.
    #[serde(default, with = "nan_or_null::vec")]
    pub ceiling_curve: Vec<f64>,
    /// For chains: test accuracy of direct weak → strong transfer on the same seed.
    pub direct_student_acc: Option<f64>,
    /// For chains: PGR of the direct transfer.
    pub direct_pgr: Option<f64>,
    /// Store keys of the weak, ceiling and student nodes.
    pub nodes: [String; 3],
    /// Per-example predictions (JSONL), relative to the output folder.
    pub predictions: String,
}

/// A finished run: what it was, the rows, and its trained nodes.
pub struct RunNodes<'a> {
    /// The run.
    pub spec: &'a RunSpec,
    /// The settings.
    pub cfg: &'a ExperimentConfig,
    /// The run's configuration id: [`ExperimentConfig::config_id`], with the prompt for the
    /// zero-shot baseline.
    pub config: &'a str,
    /// The dataset's experiment rows.
    pub dataset: &'a Dataset,
    /// Their labels.
    pub labels: &'a [u8],
    /// The split.
    pub split: &'a Split,
    /// The weak supervisor.
    pub weak: &'a TrainedNode,
    /// The strong model on ground truth.
    pub ceiling: &'a TrainedNode,
    /// The (last) student.
    pub student: &'a TrainedNode,
    /// For chains: the direct weak → strong student.
    pub direct: Option<&'a TrainedNode>,
}

/// Computes a run's metrics from its nodes.
pub fn evaluate(run: &RunNodes) -> RunRecord {
    let RunNodes {
        spec,
        cfg,
        config,
        dataset,
        split,
        weak,
        ceiling,
        student,
        ..
    } = *run;
    let m = if weak.classes == 2 {
        measure_binary(run)
    } else {
        measure_classes(run)
    };
    let Measured {
        weak_acc,
        ceiling_acc,
        student_acc,
        weak_auroc,
        ceiling_auroc,
        student_auroc,
        weak_ece,
        ceiling_ece,
        student_ece,
        agreement,
        agreement_on_weak_errors,
        misfit,
        weak_label_acc,
        direct_acc,
    } = m;
    RunRecord {
        dataset: dataset.name.clone(),
        weak: spec.weak().to_string(),
        strong: spec.strong().to_string(),
        chain: spec.is_chain().then(|| spec.chain.clone()),
        loss: if spec.method.zero_shot() {
            "none".to_string()
        } else {
            spec.method.loss().name().to_string()
        },
        method: spec.method.name(),
        config: config.to_string(),
        labels: cfg.labels.name().to_string(),
        seed: spec.seed,
        rows: [
            split.a.len(),
            split.b.len(),
            split.val.len(),
            split.test.len(),
        ],
        classes: weak.classes,
        weak_acc,
        ceiling_acc,
        student_acc,
        pgr: metrics::pgr(weak_acc, ceiling_acc, student_acc),
        pgr_auroc: metrics::pgr(weak_auroc, ceiling_auroc, student_auroc),
        no_gap: ceiling_acc <= weak_acc,
        weak_auroc,
        ceiling_auroc,
        student_auroc,
        weak_ece,
        ceiling_ece,
        student_ece,
        agreement,
        agreement_on_weak_errors,
        misfit,
        weak_label_acc,
        student_oracle_acc: student.fit.oracle_best(),
        student_best_epoch: student.fit.best_epoch,
        student_curve: test_curve(student),
        ceiling_curve: test_curve(ceiling),
        direct_student_acc: direct_acc,
        direct_pgr: direct_acc.and_then(|d| metrics::pgr(weak_acc, ceiling_acc, d)),
        nodes: [weak.key.clone(), ceiling.key.clone(), student.key.clone()],
        predictions: String::new(),
    }
}

/// The metrics of a run, computed for binary or K-class nodes.
struct Measured {
    weak_acc: f64,
    ceiling_acc: f64,
    student_acc: f64,
    weak_auroc: f64,
    ceiling_auroc: f64,
    student_auroc: f64,
    weak_ece: f64,
    ceiling_ece: f64,
    student_ece: f64,
    agreement: f64,
    agreement_on_weak_errors: f64,
    misfit: f64,
    weak_label_acc: f64,
    direct_acc: Option<f64>,
}

/// The binary metrics, on class-1 probabilities.
fn measure_binary(run: &RunNodes) -> Measured {
    let RunNodes {
        labels,
        split,
        weak,
        ceiling,
        student,
        direct,
        ..
    } = *run;
    let test = &split.test;
    let y: Vec<u8> = test.iter().map(|&r| labels[r]).collect();
    let (w, c, s) = (
        weak.probs_of(test),
        ceiling.probs_of(test),
        student.probs_of(test),
    );
    let weak_wrong: Vec<bool> = w
        .iter()
        .zip(&y)
        .map(|(p, l)| metrics::predict(*p) != *l)
        .collect();
    let yb: Vec<u8> = split.b.iter().map(|&r| labels[r]).collect();
    Measured {
        weak_acc: metrics::accuracy(&w, &y),
        ceiling_acc: metrics::accuracy(&c, &y),
        student_acc: metrics::accuracy(&s, &y),
        weak_auroc: metrics::auroc(&w, &y),
        ceiling_auroc: metrics::auroc(&c, &y),
        student_auroc: metrics::auroc(&s, &y),
        weak_ece: metrics::ece(&w, &y, 10),
        ceiling_ece: metrics::ece(&c, &y, 10),
        student_ece: metrics::ece(&s, &y, 10),
        agreement: metrics::agreement(&s, &w, None),
        agreement_on_weak_errors: metrics::agreement(&s, &w, Some(&weak_wrong)),
        misfit: metrics::misfit(&student.probs_of(&split.b), &weak.probs_of(&split.b)),
        weak_label_acc: metrics::accuracy(&weak.probs_of(&split.b), &yb),
        direct_acc: direct.map(|d| metrics::accuracy(&d.probs_of(test), &y)),
    }
}

/// The K-class metrics ([`crate::kclass`]), on every class's probabilities.
fn measure_classes(run: &RunNodes) -> Measured {
    use crate::kclass;
    let RunNodes {
        labels,
        split,
        weak,
        ceiling,
        student,
        direct,
        ..
    } = *run;
    let test = &split.test;
    let y: Vec<usize> = test.iter().map(|&r| labels[r] as usize).collect();
    let (w, c, s) = (
        weak.classes_of(test),
        ceiling.classes_of(test),
        student.classes_of(test),
    );
    let weak_wrong: Vec<bool> = (0..y.len())
        .map(|i| kclass::predict(w.row(i)) != y[i])
        .collect();
    let yb: Vec<usize> = split.b.iter().map(|&r| labels[r] as usize).collect();
    let weak_b = weak.classes_of(&split.b);
    Measured {
        weak_acc: kclass::accuracy(&w, &y),
        ceiling_acc: kclass::accuracy(&c, &y),
        student_acc: kclass::accuracy(&s, &y),
        weak_auroc: kclass::auroc(&w, &y),
        ceiling_auroc: kclass::auroc(&c, &y),
        student_auroc: kclass::auroc(&s, &y),
        weak_ece: kclass::ece(&w, &y, 10),
        ceiling_ece: kclass::ece(&c, &y, 10),
        student_ece: kclass::ece(&s, &y, 10),
        agreement: kclass::agreement(&s, &w, None),
        agreement_on_weak_errors: kclass::agreement(&s, &w, Some(&weak_wrong)),
        misfit: kclass::misfit(&student.classes_of(&split.b), &weak_b),
        weak_label_acc: kclass::accuracy(&weak_b, &yb),
        direct_acc: direct.map(|d| kclass::accuracy(&d.classes_of(test), &y)),
    }
}

/// A node's test accuracy after each epoch (empty when an epoch was not scored on the test rows).
fn test_curve(node: &TrainedNode) -> Vec<f64> {
    node.fit
        .epochs
        .iter()
        .map(|e| e.oracle_score)
        .collect::<Option<Vec<f64>>>()
        .unwrap_or_default()
}

/// A file-name-safe version of `s`.
pub fn slug(s: &str) -> String {
    let base = Path::new(s)
        .file_stem()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| s.to_string());
    base.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The run's file stem: `weak-to-strong[-via-m1-m2]-method-labels-seedN-config`, where `config`
/// is the run's [`ExperimentConfig::config_id`] (absent in records written before it existed).
pub fn run_name(r: &RunRecord) -> String {
    let via = match &r.chain {
        Some(c) => format!(
            "-via-{}",
            c[1..c.len() - 1]
                .iter()
                .map(|m| slug(m))
                .collect::<Vec<_>>()
                .join("-")
        ),
        None => String::new(),
    };
    let method = if r.method.is_empty() {
        &r.loss
    } else {
        &r.method
    };
    // Not `slug`, which would take `0.8+xent` for a file extension.
    let method: String = method
        .chars()
        .map(|c| match c {
            ':' => '-',
            '+' => '_',
            c if c.is_ascii_alphanumeric() || c == '-' || c == '.' => c,
            _ => '_',
        })
        .collect();
    let config = if r.config.is_empty() {
        String::new()
    } else {
        format!("-{}", r.config)
    };
    format!(
        "{}-to-{}{via}-{method}-{}-seed{}{config}",
        slug(&r.weak),
        slug(&r.strong),
        r.labels,
        r.seed
    )
}

/// Writes `out/runs/<dataset>/<run>.json` and the per-example `<run>.preds.jsonl`, each atomically.
pub fn write(
    out: &Path,
    record: &RunRecord,
    run: &RunNodes,
) -> std::result::Result<RunRecord, (PathBuf, std::io::Error)> {
    let RunNodes {
        dataset,
        labels,
        split,
        weak,
        ceiling,
        student,
        ..
    } = *run;
    let dir = out.join("runs").join(slug(&dataset.name));
    let name = run_name(record);
    let preds = dir.join(format!("{name}.preds.jsonl"));
    let parts: [(&str, &[usize]); 4] = [
        ("test", &split.test),
        ("B", &split.b),
        ("val", &split.val),
        ("A", &split.a),
    ];
    w2s_assets::cache::write_atomic_with(&preds, |f| {
        for (part, rows) in parts {
            for &r in rows {
                // Binary: each model's class-1 probability; K classes: its probability row.
                let p = |n: &TrainedNode| -> serde_json::Value {
                    if n.classes == 2 {
                        n.probs[r].into()
                    } else {
                        n.probs[r * n.classes..(r + 1) * n.classes].into()
                    }
                };
                let line = serde_json::json!({
                    "id": dataset.examples[r].id, "part": part, "label": labels[r],
                    "weak": p(weak), "ceiling": p(ceiling), "student": p(student),
                });
                writeln!(f, "{line}")?;
            }
        }
        Ok(())
    })
    .map_err(|e| (preds.clone(), std::io::Error::other(e)))?;
    let mut record = record.clone();
    record.predictions = format!("runs/{}/{name}.preds.jsonl", slug(&dataset.name));
    let path = dir.join(format!("{name}.json"));
    let bytes = serde_json::to_vec_pretty(&record).map_err(|e| (path.clone(), e.into()))?;
    w2s_assets::cache::write_atomic(&path, &bytes)
        .map_err(|e| (path.clone(), std::io::Error::other(e)))?;
    retire_unversioned(&dir, &record);
    Ok(record)
}

/// Removes the record an earlier version wrote for this very run under the name without a
/// config id, so that rerunning a command in an old folder does not list the run twice. Only
/// when its three nodes are this run's: the node keys hash every setting the run depends on.
fn retire_unversioned(dir: &Path, record: &RunRecord) {
    let mut old = record.clone();
    old.config.clear();
    old.method.clear();
    let name = run_name(&old);
    let path = dir.join(format!("{name}.json"));
    let Ok(bytes) = std::fs::read(&path) else {
        return;
    };
    match serde_json::from_slice::<RunRecord>(&bytes) {
        Ok(r) if r.config.is_empty() && r.nodes == record.nodes => {
            let _ = std::fs::remove_file(dir.join(format!("{name}.preds.jsonl")));
            let _ = std::fs::remove_file(&path);
        }
        _ => {}
    }
}

/// Reads every run record under `out/runs`.
pub fn read_runs(out: &Path) -> std::io::Result<Vec<RunRecord>> {
    let mut records = Vec::new();
    let runs = out.join("runs");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&runs)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|e| e == "json")
                    && !p.to_string_lossy().ends_with(".preds.json")
            })
            .collect();
        files.sort();
        for f in files {
            let bytes = std::fs::read(&f)?;
            match serde_json::from_slice::<RunRecord>(&bytes) {
                Ok(mut r) => {
                    if r.method.is_empty() {
                        r.method = r.loss.clone();
                    }
                    records.push(r)
                }
                Err(e) => tracing::warn!("{}: not a run record ({e}); skipped", f.display()),
            }
        }
    }
    Ok(records)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A record with the given accuracies (the rest fixed), for the tests here and in `summary`.
    pub(crate) fn run(seed: u64, weak: f64, ceiling: f64, student: f64) -> RunRecord {
        RunRecord {
            dataset: "d".into(),
            weak: "w".into(),
            strong: "s".into(),
            chain: None,
            loss: "xent".into(),
            method: "xent".into(),
            config: "c0ffee00".into(),
            labels: "soft".into(),
            seed,
            rows: [1, 1, 1, 1],
            classes: 2,
            weak_acc: weak,
            ceiling_acc: ceiling,
            student_acc: student,
            pgr: metrics::pgr(weak, ceiling, student),
            pgr_auroc: None,
            no_gap: ceiling <= weak,
            weak_auroc: 0.5,
            ceiling_auroc: 0.5,
            student_auroc: 0.5,
            weak_ece: 0.0,
            ceiling_ece: 0.0,
            student_ece: 0.0,
            agreement: 1.0,
            agreement_on_weak_errors: 1.0,
            misfit: 0.0,
            weak_label_acc: 0.0,
            student_oracle_acc: None,
            student_best_epoch: 1,
            student_curve: vec![weak, student],
            ceiling_curve: vec![ceiling],
            direct_student_acc: None,
            direct_pgr: None,
            nodes: Default::default(),
            predictions: String::new(),
        }
    }

    /// Every record w2s writes reads back, edge values included: a weak model without errors
    /// (agreement on its errors is NaN), a constant predictor (AUROC NaN), no gap (PGR none), and
    /// NaN everywhere. serde_json writes NaN as null, which an f64 field used to refuse.
    #[test]
    fn records_with_edge_values_round_trip() {
        let mut no_errors = run(0, 1.0, 1.0, 1.0);
        no_errors.agreement_on_weak_errors = f64::NAN;
        let mut constant = run(1, 0.5, 0.8, 0.5);
        constant.weak_auroc = f64::NAN;
        constant.student_auroc = f64::NAN;
        let no_gap = run(2, 0.8, 0.7, 0.75);
        let mut all_nan = run(3, f64::NAN, f64::NAN, f64::NAN);
        all_nan.misfit = f64::NAN;
        all_nan.weak_ece = f64::INFINITY;
        let out = tempfile::tempdir().unwrap();
        let dir = out.path().join("runs").join("d");
        std::fs::create_dir_all(&dir).unwrap();
        let records = [no_errors, constant, no_gap, all_nan];
        for (i, r) in records.iter().enumerate() {
            let json = serde_json::to_vec(r).unwrap();
            std::fs::write(dir.join(format!("r{i}.json")), json).unwrap();
        }
        let back = read_runs(out.path()).unwrap();
        assert_eq!(back.len(), 4, "every record reads back");
        assert!(back[0].agreement_on_weak_errors.is_nan());
        assert_eq!(back[0].agreement, 1.0);
        assert!(back[1].weak_auroc.is_nan() && back[1].ceiling_auroc == 0.5);
        assert_eq!(back[2].pgr, None);
        assert!(back[3].weak_acc.is_nan() && back[3].weak_ece.is_nan());
        // The summary of such records reads back too.
        let summary = crate::summarize(&back);
        let json = serde_json::to_string(&summary).unwrap();
        let again: Vec<crate::SummaryRow> = serde_json::from_str(&json).unwrap();
        assert_eq!(again.len(), summary.len());
    }

    #[test]
    fn run_names_are_file_safe_and_distinct() {
        let mut r = run(3, 0.5, 0.6, 0.55);
        r.weak = "/tmp/my model".into();
        assert_eq!(run_name(&r), "my_model-to-s-xent-soft-seed3-c0ffee00");
        r.chain = Some(vec!["w".into(), "m".into(), "s".into()]);
        assert_eq!(run_name(&r), "my_model-to-s-via-m-xent-soft-seed3-c0ffee00");
        r.method = "conf-filter:0.8+xent".into();
        assert_eq!(
            run_name(&r),
            "my_model-to-s-via-m-conf-filter-0.8_xent-soft-seed3-c0ffee00"
        );
        // Records written before config ids existed keep their old names.
        r.config.clear();
        r.method.clear();
        assert_eq!(run_name(&r), "my_model-to-s-via-m-xent-soft-seed3");
    }

    #[test]
    fn an_earlier_versions_record_of_the_same_run_is_retired_and_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let mut old = run(0, 0.7, 0.8, 0.75);
        old.config.clear();
        old.method.clear();
        old.nodes = ["w".into(), "c".into(), "s".into()];
        let old_path = dir.path().join(format!("{}.json", run_name(&old)));
        let old_preds = dir.path().join(format!("{}.preds.jsonl", run_name(&old)));
        let put = || {
            std::fs::write(&old_path, serde_json::to_vec(&old).unwrap()).unwrap();
            std::fs::write(&old_preds, "{}\n").unwrap();
        };
        let mut new = old.clone();
        new.config = "c0ffee00".into();
        new.method = "xent".into();
        // Another student (say, another learning rate): the old record stays.
        put();
        let mut other = new.clone();
        other.nodes[2] = "s2".into();
        retire_unversioned(dir.path(), &other);
        assert!(old_path.is_file() && old_preds.is_file());
        // The same three nodes: the same run, written again under its new name.
        retire_unversioned(dir.path(), &new);
        assert!(!old_path.exists() && !old_preds.exists());
    }
}
