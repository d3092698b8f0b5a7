//! K-class runs on an image folder: `pixels` (a probe on raw pixels) as the weak model, a
//! vision backbone (the tiny ViT fixture made by transformers) as the strong one. Checks
//! properties of the records, the stored nodes and the cache, not particular accuracies.
use image::{Rgb, RgbImage};
use std::path::{Path, PathBuf};
use w2s_assets::Store;
use w2s_experiment::{ExperimentConfig, Method, NodeCounts, RunRecord, RunSpec, Runner};

const CLASSES: usize = 10;

/// An ImageFolder of `per_class` 32×32 PNGs per class: seeded noise with a bright 8×8 block whose
/// place on a 4×4 grid is the class, so raw pixels separate the classes.
fn image_folder(root: &Path, per_class: usize) {
    let mut state = 12345u32;
    let mut noise = move || {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
        (state >> 16) as u8 % 90
    };
    for c in 0..CLASSES {
        let dir = root.join(format!("class-{c:02}"));
        std::fs::create_dir_all(&dir).unwrap();
        let (bx, by) = ((c % 4) as u32 * 8, (c / 4) as u32 * 8);
        for i in 0..per_class {
            let img = RgbImage::from_fn(32, 32, |x, y| {
                let inside = (bx..bx + 8).contains(&x) && (by..by + 8).contains(&y);
                let v = if inside { 160 + noise() } else { noise() };
                Rgb([v, v / 2, 255 - v])
            });
            img.save(dir.join(format!("{i:03}.png"))).unwrap();
        }
    }
}

fn vit() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/reference/vision/vit")
        .to_string_lossy()
        .into_owned()
}

fn spec(data: &Path, chain: &[&str], method: &str) -> RunSpec {
    RunSpec {
        dataset: data.to_string_lossy().into_owned(),
        chain: chain.iter().map(|m| m.to_string()).collect(),
        method: Method::parse(method).unwrap(),
        seed: 0,
    }
}

fn config() -> ExperimentConfig {
    let mut cfg = ExperimentConfig::default();
    cfg.train.epochs = 10;
    cfg
}

struct Run {
    records: Vec<std::result::Result<RunRecord, String>>,
    counts: NodeCounts,
}

fn run_all(out: &Path, features: &Path, specs: &[RunSpec]) -> Run {
    let assets = tempfile::tempdir().unwrap();
    let store = Store::at(assets.path());
    let mut runner =
        Runner::new(&store, out, config(), Box::new(|_| {})).with_feature_root(features);
    runner.prepare(specs).unwrap();
    let records = specs
        .iter()
        .map(|s| runner.run(s).map_err(|e| e.to_string()))
        .collect();
    Run {
        records,
        counts: runner.counts,
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn ten_class_runs_on_an_image_folder_give_k_class_records_and_reuse_everything() {
    let data = tempfile::tempdir().unwrap();
    image_folder(data.path(), 12);
    let (out, features) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let vit = vit();
    let specs = [
        spec(data.path(), &["pixels", &vit], "xent"),
        spec(data.path(), &["pixels", &vit], "logconf"),
    ];
    let first = run_all(out.path(), features.path(), &specs);
    // Weak and ceiling are shared (the second run reads them); each loss trains its student.
    assert_eq!(
        first.counts,
        NodeCounts {
            computed: 4,
            reused: 2
        }
    );
    for r in &first.records {
        let r = r.as_ref().unwrap();
        assert_eq!(r.classes, CLASSES);
        assert_eq!(r.rows.iter().sum::<usize>(), 120);
        for v in [
            r.weak_acc,
            r.ceiling_acc,
            r.student_acc,
            r.weak_auroc,
            r.ceiling_auroc,
            r.student_auroc,
            r.weak_ece,
            r.student_ece,
            r.agreement,
            r.weak_label_acc,
            r.misfit,
        ] {
            assert!(v.is_finite() && (0.0..=1.0).contains(&v), "{v} in {r:?}");
        }
        // The blocks are plain in the pixels: far above chance (0.1).
        assert!(r.weak_acc > 0.5, "weak {}", r.weak_acc);
        match r.pgr {
            Some(pgr) => {
                let by_hand = (r.student_acc - r.weak_acc) / (r.ceiling_acc - r.weak_acc);
                assert!((pgr - by_hand).abs() < 1e-12);
                assert!(!r.no_gap);
            }
            None => assert!(r.no_gap && r.ceiling_acc <= r.weak_acc),
        }
        // Every row's predictions are a distribution over the ten classes.
        let preds = std::fs::read_to_string(out.path().join(&r.predictions)).unwrap();
        let lines: Vec<serde_json::Value> = preds
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 120);
        for line in &lines {
            let row: Vec<f64> = serde_json::from_value(line["student"].clone()).unwrap();
            assert_eq!(row.len(), CLASSES);
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-4);
            assert!(line["label"].as_u64().unwrap() < CLASSES as u64);
        }
    }
    // Both models' features are cached, one file each.
    let cached: Vec<PathBuf> = files_under(&features.path().join("features"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    assert_eq!(cached.len(), 2, "{cached:?}");
    // A second runner reuses every node and writes the same records.
    let second = run_all(out.path(), features.path(), &specs);
    assert_eq!(
        second.counts,
        NodeCounts {
            computed: 0,
            reused: 6
        }
    );
    // (As JSON: a metric can be NaN, the agreement on the weak model's errors when it makes none.)
    let json = |r: &std::result::Result<RunRecord, String>| {
        serde_json::to_string(r.as_ref().unwrap()).unwrap()
    };
    for (a, b) in first.records.iter().zip(&second.records) {
        assert_eq!(json(a), json(b));
    }
}

#[test]
fn every_label_step_runs_on_ten_classes_and_mismatched_models_are_refused() {
    let data = tempfile::tempdir().unwrap();
    image_folder(data.path(), 4);
    let (out, features) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let vit = vit();
    let methods = [
        // Ten classes: chance is 0.1, and four images a class leave the weak model unsure.
        "conf-filter:0.2+xent",
        "knn:3+logconf",
        "logreg-relabel+xent",
        "bag:2+s2s:1+logconf",
    ];
    let specs: Vec<RunSpec> = methods
        .iter()
        .map(|m| spec(data.path(), &["pixels", &vit], m))
        .collect();
    let run = run_all(out.path(), features.path(), &specs);
    for (m, r) in methods.iter().zip(&run.records) {
        let r = r.as_ref().unwrap_or_else(|e| panic!("{m}: {e}"));
        assert_eq!((r.classes, r.method.as_str()), (CLASSES, *m));
        assert!(r.student_acc.is_finite());
    }
    // Each method's student differs from plain xent's: the steps changed what it learnt from.
    let keys: std::collections::BTreeSet<&str> = run
        .records
        .iter()
        .map(|r| r.as_ref().unwrap().nodes[2].as_str())
        .collect();
    assert_eq!(keys.len(), methods.len());

    // A text model on images, and an image model on texts, are refused before any training.
    let assets = tempfile::tempdir().unwrap();
    let store = Store::at(assets.path());
    let mut runner = Runner::new(&store, out.path(), config(), Box::new(|_| {}));
    let err = runner
        .prepare(&[spec(data.path(), &["synthetic", &vit], "xent")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("synthetic is a text model") && err.contains("holds images"),
        "{err}"
    );
    let mut texts = spec(data.path(), &["pixels", "synthetic"], "xent");
    texts.dataset = "synthetic?rows=100".into();
    let err = runner.prepare(&[texts]).unwrap_err().to_string();
    assert!(
        err.contains("pixels is an image model") && err.contains("holds texts"),
        "{err}"
    );
    assert_eq!(runner.counts, NodeCounts::default());
    // Image models are frozen feature extractors: fine-tuning them is refused with the reason.
    let mut cfg = config();
    cfg.mode = w2s_experiment::Mode::Finetune;
    let mut runner = Runner::new(&store, out.path(), cfg, Box::new(|_| {}));
    let finetune = spec(data.path(), &["pixels", &vit], "xent");
    runner.prepare(std::slice::from_ref(&finetune)).unwrap();
    let err = runner.run(&finetune).unwrap_err().to_string();
    assert!(err.contains("probe mode"), "{err}");
}

/// A Parquet file with a `datasets` Image column and a ClassLabel (made by
/// `tests/reference/hf-data/make_shapes.py`), named with its columns as `--image-column` writes
/// it: a 4-class run from pixels to a ResNet, whose record names the reference as given.
#[test]
fn a_parquet_image_column_runs_as_a_k_class_dataset() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/reference");
    let data = format!(
        "{}?label=shape&image=img",
        root.join("hf-data/shapes.parquet").display()
    );
    let resnet = root.join("vision/resnet").to_string_lossy().into_owned();
    let (out, features) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let spec = RunSpec {
        dataset: data.clone(),
        chain: vec!["pixels".into(), resnet],
        method: Method::parse("xent").unwrap(),
        seed: 0,
    };
    let run = run_all(out.path(), features.path(), &[spec]);
    let r = run.records[0].as_ref().unwrap();
    assert_eq!((r.classes, r.dataset.as_str()), (4, data.as_str()));
    assert_eq!(r.rows.iter().sum::<usize>(), 48);
    // Bars of bright pixels: the pixel probe is far above chance (0.25).
    assert!(r.weak_acc > 0.5, "{r:?}");
}
