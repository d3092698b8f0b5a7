//! The report draws the four figures as PNG and SVG and links them from the page. Run records are
//! built by hand here (the report is a function of them); the font comes from the asset cache.
use w2s_experiment::RunRecord;

#[allow(clippy::too_many_arguments)]
fn record(
    dataset: &str,
    weak: &str,
    strong: &str,
    chain: Option<Vec<&str>>,
    loss: &str,
    seed: u64,
    accs: [f64; 3],
    direct: Option<f64>,
) -> RunRecord {
    let [w, c, s] = accs;
    let pgr = w2s_experiment::metrics::pgr(w, c, s);
    RunRecord {
        dataset: dataset.into(),
        weak: weak.into(),
        strong: strong.into(),
        chain: chain.map(|c| c.into_iter().map(String::from).collect()),
        loss: loss.into(),
        method: loss.into(),
        config: String::new(),
        labels: "soft".into(),
        seed,
        rows: [10, 10, 2, 5],
        classes: 2,
        weak_acc: w,
        ceiling_acc: c,
        student_acc: s,
        pgr,
        pgr_auroc: pgr,
        no_gap: c <= w,
        weak_auroc: w,
        ceiling_auroc: c,
        student_auroc: s,
        weak_ece: 0.1,
        ceiling_ece: 0.1,
        student_ece: 0.1,
        agreement: 0.9,
        agreement_on_weak_errors: 0.6,
        misfit: 0.01,
        weak_label_acc: w,
        student_oracle_acc: Some(s + 0.01),
        student_best_epoch: 3,
        // A student that rises, then overfits the weak labels.
        student_curve: vec![w, s + 0.02, s + 0.01, s],
        ceiling_curve: vec![c - 0.05, c - 0.01, c, c],
        direct_student_acc: direct,
        direct_pgr: None,
        nodes: Default::default(),
        predictions: String::new(),
    }
}

#[test]
fn four_figures_as_png_and_svg_and_a_page_linking_them() {
    let mut runs = Vec::new();
    for seed in 0..3 {
        let j = seed as f64 * 0.005;
        for (loss, bonus) in [("xent", 0.0), ("logconf", 0.02)] {
            runs.push(record(
                "tweets",
                "minilm-l3",
                "mpnet-base",
                None,
                loss,
                seed,
                [0.80 + j, 0.85, 0.81 + bonus],
                None,
            ));
            runs.push(record(
                "tweets",
                "minilm-l3",
                "minilm-l6",
                None,
                loss,
                seed,
                [0.80 + j, 0.83, 0.805 + bonus],
                None,
            ));
            runs.push(record(
                "tweets",
                "minilm-l6",
                "mpnet-base",
                None,
                loss,
                seed,
                [0.83, 0.85, 0.835 + bonus],
                None,
            ));
            runs.push(record(
                "boolq",
                "minilm-l3",
                "mpnet-base",
                None,
                loss,
                seed,
                [0.55, 0.52, 0.53],
                None,
            ));
            runs.push(record(
                "tweets",
                "minilm-l3",
                "mpnet-base",
                Some(vec!["minilm-l3", "minilm-l6", "mpnet-base"]),
                loss,
                seed,
                [0.80 + j, 0.85, 0.82],
                Some(0.81),
            ));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let index = w2s_report::write_report(dir.path(), &runs).unwrap();
    let report = dir.path().join("report");
    for stem in [
        "transfer-tweets",
        "pgr-tweets",
        "median-pgr",
        "bootstrap-tweets",
        "transfer-boolq",
        "curves-tweets",
    ] {
        let png = std::fs::read(report.join(format!("{stem}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{stem}.png is a PNG");
        assert!(
            png.len() > 10_000,
            "{stem}.png has content ({} bytes)",
            png.len()
        );
        let svg = std::fs::read_to_string(report.join(format!("{stem}.svg"))).unwrap();
        assert!(
            svg.contains("<svg") && svg.contains("<text"),
            "{stem}.svg has text"
        );
    }
    assert!(
        !report.join("bootstrap-boolq.png").exists(),
        "no chain was run on boolq"
    );
    assert!(
        !report.join("curves-boolq.png").exists(),
        "no pair has a gap on boolq"
    );
    let html = std::fs::read_to_string(index).unwrap();
    for needle in [
        "transfer-tweets.png",
        "pgr-tweets.png",
        "median-pgr.png",
        "bootstrap-tweets.png",
        "curves-tweets.png",
        "no gap",
    ] {
        assert!(html.contains(needle), "page lacks {needle}");
    }
    // (c): the median over tweets' three pairs of logconf PGRs, by hand from the records above.
    let svg = std::fs::read_to_string(report.join("median-pgr.svg")).unwrap();
    assert!(svg.contains("no gap"), "boolq has no gap");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary.as_array().unwrap().len(), 10);
    // (e): the widest gap on tweets is L3 -> mpnet (5 points, against 3 and 2); its student
    // curve is the mean over the seeds, epoch by epoch.
    let curves = std::fs::read_to_string(report.join("curves-tweets.svg")).unwrap();
    assert!(
        curves.contains("minilm-l3 -&gt; mpnet-base"),
        "the widest pair"
    );
    assert!(curves.contains("student, logconf") && curves.contains("ceiling mpnet-base"));
    let row = summary
        .as_array()
        .unwrap()
        .iter()
        .find(|r| {
            r["weak"] == "minilm-l3"
                && r["strong"] == "mpnet-base"
                && r["chain"].is_null()
                && r["method"] == "xent"
        })
        .unwrap();
    let curve: Vec<f64> = serde_json::from_value(row["student_curve"].clone()).unwrap();
    // Weak accuracies 0.800, 0.805 and 0.810 over the seeds: a mean of 0.805 at epoch 1.
    assert_eq!(curve.len(), 4);
    assert!(
        (curve[0] - 0.805).abs() < 1e-12 && (curve[1] - 0.83).abs() < 1e-12,
        "{curve:?}"
    );
}

#[test]
fn an_empty_folder_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = w2s_report::write_report(dir.path(), &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("no run records"), "{err}");
}

/// Table (c) counts the pairs `w2s scout` calls usable and no others: a 2-point gap (under the
/// scout's 3) and a gap within seed noise stay out of the median, a clear 5-point gap is in it.
#[test]
fn the_median_counts_usable_gaps_only() {
    let mut runs = Vec::new();
    for seed in 0..3 {
        let wobble = 0.001 * seed as f64;
        // Usable: 5 points in every seed; PGR 0.4.
        runs.push(record(
            "tweets",
            "minilm-l3",
            "mpnet-base",
            None,
            "xent",
            seed,
            [0.70, 0.75 + wobble, 0.72 + 0.4 * wobble],
            None,
        ));
        // Under 3 points in every seed: marginal; PGR 1.0.
        runs.push(record(
            "tweets",
            "minilm-l3",
            "e5-small",
            None,
            "xent",
            seed,
            [0.70, 0.72, 0.72],
            None,
        ));
        // Positive in every seed but the interval includes 0: marginal; PGR 0.9 in every seed.
        let gap = [0.01, 0.20, 0.01][seed as usize];
        runs.push(record(
            "tweets",
            "minilm-l6",
            "mpnet-base",
            None,
            "xent",
            seed,
            [0.70, 0.70 + gap, 0.70 + 0.9 * gap],
            None,
        ));
    }
    let summary = w2s_experiment::summarize(&runs);
    let verdicts: Vec<_> = summary
        .iter()
        .map(|r| (r.strong.as_str(), r.weak.as_str(), r.verdict()))
        .collect();
    use w2s_experiment::scout::Verdict;
    assert!(
        verdicts.contains(&("mpnet-base", "minilm-l3", Verdict::Usable)),
        "{verdicts:?}"
    );
    assert!(
        verdicts.contains(&("e5-small", "minilm-l3", Verdict::Marginal)),
        "{verdicts:?}"
    );
    assert!(
        verdicts.contains(&("mpnet-base", "minilm-l6", Verdict::Marginal)),
        "{verdicts:?}"
    );
    let table = w2s_report::median_pgr(&summary);
    let median = table.cells[0][0].expect("one usable pair");
    assert!(
        (median - 0.4).abs() < 1e-9,
        "median {median}, want the usable pair's 0.4 alone"
    );
}
