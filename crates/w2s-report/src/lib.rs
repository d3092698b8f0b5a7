//! `w2s report`: plots (each as PNG and SVG) and an HTML page from the run records in a folder.
//!
//! - (a) `transfer-<dataset>`: test accuracy against each strong model's ceiling, one colour per
//!   weak model, one marker and dash per method, ground truth (the ceilings themselves) in black;
//!   the paper's Figure 3 layout.
//! - (b) `pgr-<dataset>`: PGR against strong-model size per method, mean ± 95% CI over seeds.
//! - (c) `median-pgr`: median PGR per method per dataset, as a table image and in the page.
//! - (d) `bootstrap-<dataset>`: accuracy of each bootstrapping chain against direct transfer.
mod bootstrap;
mod curves;
mod font;
mod html;
mod pgr;
mod plot;
mod table;
mod transfer;

pub use table::{median_pgr, MedianPgr};

use bootstrap::BootstrapPlot;
use curves::{widest_pair, CurvesPlot};
use pgr::PgrPlot;
use plot::{params_millions, render, unique};
use std::path::{Path, PathBuf};
use table::MedianTable;
use transfer::TransferPlot;
use w2s_experiment::{summarize, RunRecord, SummaryRow};

/// Errors of the report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// No run records were found.
    #[error("no run records under {0}/runs: run `w2s run` or `w2s sweep` with --out {0} first")]
    Empty(PathBuf),
    /// The font could not be fetched or read.
    #[error("font for the plots: {0}")]
    Font(String),
    /// Drawing failed.
    #[error("drawing {path}: {reason}")]
    Draw {
        /// The plot file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// Writing failed.
    #[error("writing {0}: {1}")]
    Write(PathBuf, String),
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, ReportError>;

/// A share as a percentage with one decimal ("n/a" when undefined).
pub fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:.1}", 100.0 * x)
    } else {
        "n/a".into()
    }
}

/// A summary row's PGR: "0.23 ± 0.10", "no gap", and a `*` when the gap is within seed noise.
pub fn pgr_text(row: &SummaryRow) -> String {
    match row.pgr_mean {
        None => "no gap".into(),
        Some(m) => {
            let ci = row.pgr_ci95.unwrap_or(f64::NAN);
            let noise = if row.gap_within_noise { " *" } else { "" };
            if ci.is_finite() {
                format!("{m:.2} ± {ci:.2}{noise}")
            } else {
                format!("{m:.2}{noise}")
            }
        }
    }
}

/// Orders rows by dataset (first seen), direct pairs before chains, weak then strong model by
/// size, and losses in their canonical order.
fn sort_rows(rows: &mut [SummaryRow]) {
    let datasets = unique(rows.iter().map(|r| r.dataset.clone()));
    let size = |m: &str| params_millions(m).unwrap_or(f64::INFINITY);
    let method_rank = |r: &SummaryRow| {
        let method = if r.method.is_empty() {
            &r.loss
        } else {
            &r.method
        };
        (w2s_experiment::Method::rank(method), r.series.clone())
    };
    rows.sort_by(|a, b| {
        let da = datasets.iter().position(|d| *d == a.dataset);
        let db = datasets.iter().position(|d| *d == b.dataset);
        da.cmp(&db)
            .then(a.chain.is_some().cmp(&b.chain.is_some()))
            .then(size(&a.weak).total_cmp(&size(&b.weak)))
            .then(size(&a.strong).total_cmp(&size(&b.strong)))
            .then(a.weak.cmp(&b.weak))
            .then(a.strong.cmp(&b.strong))
            .then(format!("{:?}", a.chain).cmp(&format!("{:?}", b.chain)))
            .then(method_rank(a).cmp(&method_rank(b)))
    });
}

/// Writes `out/report/` (plots, `index.html`, `summary.json`) from `runs`; returns the page's path.
pub fn write_report(out: &Path, runs: &[RunRecord]) -> Result<PathBuf> {
    if runs.is_empty() {
        return Err(ReportError::Empty(out.to_path_buf()));
    }
    font::ensure_font()?;
    let dir = out.join("report");
    std::fs::create_dir_all(&dir).map_err(|e| ReportError::Write(dir.clone(), e.to_string()))?;
    let mut summary = summarize(runs);
    sort_rows(&mut summary);
    let datasets = unique(summary.iter().map(|r| r.dataset.clone()));
    let mut figures: Vec<(String, String)> = Vec::new();
    for d in &datasets {
        let rows: Vec<&SummaryRow> = summary.iter().filter(|r| &r.dataset == d).collect();
        let stem = format!("transfer-{}", w2s_experiment::record::slug(d));
        render(
            &dir,
            &stem,
            &TransferPlot {
                dataset: d,
                rows: rows.clone(),
            },
        )?;
        figures.push((
            stem,
            format!("(a) {d}: student accuracy against the strong ceiling"),
        ));
        let stem = format!("pgr-{}", w2s_experiment::record::slug(d));
        render(
            &dir,
            &stem,
            &PgrPlot {
                dataset: d,
                rows: rows.clone(),
            },
        )?;
        figures.push((stem, format!("(b) {d}: PGR against strong-model size")));
        if let Some(pair) = widest_pair(&rows) {
            let stem = format!("curves-{}", w2s_experiment::record::slug(d));
            render(
                &dir,
                &stem,
                &CurvesPlot {
                    dataset: d,
                    rows: pair,
                },
            )?;
            figures.push((
                stem,
                format!(
                    "(e) {d}: test accuracy by epoch, the widest gap's pair (never used to stop)"
                ),
            ));
        }
        if rows.iter().any(|r| r.chain.is_some()) {
            let stem = format!("bootstrap-{}", w2s_experiment::record::slug(d));
            render(&dir, &stem, &BootstrapPlot { dataset: d, rows })?;
            figures.push((
                stem,
                format!("(d) {d}: bootstrapping chain against direct transfer"),
            ));
        }
    }
    let table = median_pgr(&summary);
    render(&dir, "median-pgr", &MedianTable { table: &table })?;
    figures.insert(
        0,
        (
            "median-pgr".into(),
            "(c) median PGR per method and dataset".into(),
        ),
    );
    let html = html::page(&summary, &table, &figures);
    let index = dir.join("index.html");
    w2s_assets::cache::write_atomic(&index, html.as_bytes())
        .map_err(|e| ReportError::Write(index.clone(), e.to_string()))?;
    let json = serde_json::to_vec_pretty(&summary)
        .map_err(|e| ReportError::Write(dir.join("summary.json"), e.to_string()))?;
    w2s_assets::cache::write_atomic(&dir.join("summary.json"), &json)
        .map_err(|e| ReportError::Write(dir.join("summary.json"), e.to_string()))?;
    Ok(index)
}
