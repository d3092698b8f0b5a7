//! The experiment graph on the synthetic task: no download, no cache, milliseconds per run. Each
//! test checks a property of the graph (what is trained, what is reused, what the keys depend
//! on) rather than particular accuracies.
use std::collections::BTreeSet;
use std::path::Path;
use w2s_assets::Store;
use w2s_experiment::{ExperimentConfig, Method, Mode, NodeCounts, RunRecord, RunSpec, Runner};

/// 600 rows of dimension 16: small enough for milliseconds, large enough for a clear gap.
const DATA: &str = "synthetic?rows=600&dim=16";

fn spec(chain: &[&str], method: &str, seed: u64) -> RunSpec {
    RunSpec {
        dataset: DATA.into(),
        chain: chain.iter().map(|m| m.to_string()).collect(),
        method: Method::parse(method).unwrap(),
        seed,
    }
}

fn config() -> ExperimentConfig {
    let mut cfg = ExperimentConfig::default();
    cfg.train.epochs = 8;
    cfg
}

/// Runs `specs` into `out` with a fresh runner (an empty asset cache: nothing may be fetched).
fn run_all(out: &Path, cfg: ExperimentConfig, specs: &[RunSpec]) -> (Vec<RunRecord>, NodeCounts) {
    let assets = tempfile::tempdir().unwrap();
    let store = Store::at(assets.path());
    let mut runner = Runner::new(&store, out, cfg, Box::new(|_| {}));
    runner.prepare(specs).unwrap();
    let records = specs.iter().map(|s| runner.run(s).unwrap()).collect();
    (records, runner.counts)
}

/// The node files in the store.
fn stored(out: &Path) -> BTreeSet<String> {
    let dir = out.join("store").join("models");
    std::fs::read_dir(&dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_run_trains_weak_ceiling_and_student_and_its_pgr_is_their_ratio() {
    let out = tempfile::tempdir().unwrap();
    let (records, counts) = run_all(
        out.path(),
        config(),
        &[spec(&["synthetic:1.5", "synthetic"], "xent", 0)],
    );
    let r = &records[0];
    assert_eq!(
        counts,
        NodeCounts {
            computed: 3,
            reused: 0
        }
    );
    assert_eq!(stored(out.path()).len(), 3);
    assert!(
        r.ceiling_acc > r.weak_acc + 0.05,
        "a gap: weak {} ceiling {}",
        r.weak_acc,
        r.ceiling_acc
    );
    let pgr = r.pgr.expect("a gap, so a PGR");
    let by_hand = (r.student_acc - r.weak_acc) / (r.ceiling_acc - r.weak_acc);
    assert!((pgr - by_hand).abs() < 1e-12);
    // The noise of the weak view is independent of the point: the student generalises past it.
    assert!(pgr > 0.0, "PGR {pgr}");
    assert_eq!(r.student_curve.len(), 8);
    // Balanced 50/50 by undersampling: every row of the smaller class, as many of the other.
    let rows: usize = r.rows.iter().sum();
    assert!(
        rows.is_multiple_of(2) && (540..=600).contains(&rows),
        "{rows} rows"
    );
}

#[test]
fn a_second_runner_reuses_every_node_and_writes_the_same_records() {
    let out = tempfile::tempdir().unwrap();
    let specs = [
        spec(&["synthetic:1.5", "synthetic"], "xent", 0),
        spec(&["synthetic:1.5", "synthetic"], "logconf", 0),
        spec(&["synthetic:1.5", "synthetic"], "xent", 1),
    ];
    let (first, counts) = run_all(out.path(), config(), &specs);
    // Weak and ceiling are shared by the two methods of seed 0 (the second run reads them back):
    // 2 + 2 students + 3 for seed 1.
    assert_eq!(
        counts,
        NodeCounts {
            computed: 7,
            reused: 2
        }
    );
    let (again, counts) = run_all(out.path(), config(), &specs);
    assert_eq!(counts.computed, 0);
    assert_eq!(
        serde_json::to_string(&first).unwrap(),
        serde_json::to_string(&again).unwrap(),
        "bit-identical records"
    );
}

#[test]
fn keys_depend_on_every_input_and_on_nothing_else() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let one = [spec(&["synthetic:1.5", "synthetic"], "xent", 0)];
    run_all(a.path(), config(), &one);
    run_all(b.path(), config(), &one);
    assert_eq!(
        stored(a.path()),
        stored(b.path()),
        "the same inputs give the same keys"
    );
    // Another seed, another weak view, another epoch count: every node is new.
    for (specs, cfg) in [
        (
            vec![spec(&["synthetic:1.5", "synthetic"], "xent", 1)],
            config(),
        ),
        (
            vec![spec(&["synthetic:1", "synthetic"], "xent", 0)],
            config(),
        ),
        (vec![spec(&["synthetic:1.5", "synthetic"], "xent", 0)], {
            let mut c = config();
            c.train.epochs = 9;
            c
        }),
    ] {
        let c = tempfile::tempdir().unwrap();
        run_all(c.path(), cfg, &specs);
        let new = stored(c.path());
        let shared = new.intersection(&stored(a.path())).count();
        // A new weak view leaves the ceiling (the strong model on ground truth) shared.
        let expected_shared = usize::from(specs[0].chain[0] == "synthetic:1");
        assert_eq!(shared, expected_shared, "{specs:?}");
    }
}

#[test]
fn a_chain_trains_each_link_on_the_one_before_and_reports_direct_transfer() {
    let out = tempfile::tempdir().unwrap();
    let chain = spec(&["synthetic:2", "synthetic:1", "synthetic"], "xent", 0);
    let (records, counts) = run_all(out.path(), config(), std::slice::from_ref(&chain));
    // weak, ceiling, the middle student, the final student, and the direct student.
    assert_eq!(counts.computed, 5);
    let r = &records[0];
    assert!(r.direct_student_acc.is_some() && r.direct_pgr.is_some());
    // Direct transfer is the same node a plain run trains.
    let (_, counts) = run_all(
        out.path(),
        config(),
        &[spec(&["synthetic:2", "synthetic"], "xent", 0)],
    );
    assert_eq!(
        counts.computed, 0,
        "the direct run reuses the chain's weak, ceiling and direct nodes"
    );
}

#[test]
fn an_ensemble_stores_its_members_and_rounds_add_a_student_each() {
    let out = tempfile::tempdir().unwrap();
    let (_, counts) = run_all(
        out.path(),
        config(),
        &[spec(&["synthetic:1+synthetic:2", "synthetic"], "xent", 0)],
    );
    // Two weak members (their mean is not stored), the ceiling and the student.
    assert_eq!(counts.computed, 4);
    assert_eq!(stored(out.path()).len(), 4);
    let out = tempfile::tempdir().unwrap();
    let (_, counts) = run_all(
        out.path(),
        config(),
        &[spec(&["synthetic:1.5", "synthetic"], "s2s:2+xent", 0)],
    );
    assert_eq!(
        counts.computed,
        2 + 3,
        "weak, ceiling, the student and its 2 rounds"
    );
}

#[test]
fn a_plan_lists_the_nodes_a_run_will_train_and_then_finds_them_stored() {
    let out = tempfile::tempdir().unwrap();
    let specs = [spec(&["synthetic:1.5", "synthetic"], "knn:5+xent", 0)];
    let assets = tempfile::tempdir().unwrap();
    let store = Store::at(assets.path());
    let mut runner = Runner::new(&store, out.path(), config(), Box::new(|_| {}));
    let plan = runner.plan(&specs).unwrap();
    assert!(
        plan.features.is_empty(),
        "synthetic features are never computed or cached"
    );
    assert_eq!(plan.nodes.len(), 3);
    assert!(plan.nodes.iter().all(|n| !n.stored));
    assert!(stored(out.path()).is_empty(), "planning trains nothing");
    runner.run(&specs[0]).unwrap();
    let plan = runner.plan(&specs).unwrap();
    assert!(plan.nodes.iter().all(|n| n.stored), "{:?}", plan.nodes);
}

#[test]
fn synthetic_models_refuse_what_they_cannot_do() {
    let assets = tempfile::tempdir().unwrap();
    let store = Store::at(assets.path());
    let out = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.mode = Mode::Finetune;
    let mut runner = Runner::new(&store, out.path(), cfg, Box::new(|_| {}));
    let err = runner
        .run(&spec(&["synthetic:1", "synthetic"], "xent", 0))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("synthetic model") && err.contains("no weights"),
        "{err}"
    );
    let mut runner = Runner::new(&store, out.path(), config(), Box::new(|_| {}));
    let err = runner
        .prepare(&[spec(&["synthetic:-1", "synthetic"], "xent", 0)])
        .unwrap_err()
        .to_string();
    assert!(err.contains("synthetic:-1"), "{err}");
}

#[test]
fn a_benchmark_serves_b_and_val_with_the_runs_weak_labels_and_test_with_its_labels() {
    let out = tempfile::tempdir().unwrap();
    let assets = tempfile::tempdir().unwrap();
    let store = Store::at(assets.path());
    let mut runner = Runner::new(&store, out.path(), config(), Box::new(|_| {}));
    let s = spec(&["synthetic:1.5", "synthetic"], "xent", 3);
    runner.prepare(std::slice::from_ref(&s)).unwrap();
    let record = runner.run(&s).unwrap();
    let trained = runner.counts.computed;
    let rows = runner.benchmark_rows(&s).unwrap();
    // The run's own weak node, read back: nothing more is trained.
    assert_eq!(runner.counts.computed, trained);
    let [a, b, val, test] = record.rows;
    assert_eq!(rows.train.len(), b + val);
    assert_eq!(rows.test.len(), test);
    assert_eq!(rows.classes, 2);
    let train_ids: BTreeSet<&str> = rows.train.iter().map(|r| r.id.as_str()).collect();
    let test_ids: BTreeSet<&str> = rows.test.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(train_ids.len(), b + val);
    assert_eq!(test_ids.len(), test);
    assert!(train_ids.is_disjoint(&test_ids));
    assert!(a > 0);
    for r in &rows.train {
        assert_eq!(r.weak.len(), 2);
        assert!((r.weak[0] + r.weak[1] - 1.0).abs() < 1e-6, "{:?}", r.weak);
    }
    // The weak labels are the weak model's, not the truth: on a noisy weak view some are wrong,
    // and most are right (the weak model is well above chance here).
    let data = w2s_data::load(DATA, &store).unwrap();
    let truth: std::collections::HashMap<&str, u8> = data
        .examples
        .iter()
        .map(|e| (e.id.as_str(), e.label))
        .collect();
    let agree = rows
        .train
        .iter()
        .filter(|r| u8::from(r.weak[1] > 0.5) == truth[r.id.as_str()])
        .count() as f64
        / rows.train.len() as f64;
    assert!(
        agree > 0.6 && agree < 1.0,
        "weak labels agree with truth on {agree}"
    );
    assert!(rows.test.iter().all(|r| r.label == truth[r.id.as_str()]));
}
