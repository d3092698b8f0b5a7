//! `w2s report`: plots (each as PNG and SVG) and an HTML page from the run records in a folder.
//!
//! - (a) `transfer-<dataset>`: test accuracy against each strong model's ceiling, one colour per
//!   weak model, one marker and dash per method, ground truth (the ceilings themselves) in black;
//!   the paper's Figure 3 layout.
//! - (b) `pgr-<dataset>`: PGR against strong-model size per method, mean ± 95% CI over seeds.
//! - (c) `median-pgr`: median PGR per method per dataset, as a table image and in the page.
//! - (d) `bootstrap-<dataset>`: accuracy of each bootstrapping chain against direct transfer.
use plotters::coord::Shift;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
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

const W: u32 = 900;
const H: u32 = 600;

/// Registers the report font once (fetched from a pinned package on first use).
fn ensure_font() -> Result<()> {
    static FONT: std::sync::OnceLock<std::result::Result<(), String>> = std::sync::OnceLock::new();
    FONT.get_or_init(|| {
        let store = w2s_assets::Store::open();
        store.ensure("font-roboto").map_err(|e| e.to_string())?;
        let path = store
            .verified_file("font-roboto", "Roboto-Regular.ttf")
            .map_err(|e| e.to_string())?;
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        for family in ["sans-serif", "serif", "monospace"] {
            for style in [FontStyle::Normal, FontStyle::Bold, FontStyle::Italic] {
                plotters::style::register_font(family, style, bytes)
                    .map_err(|_| format!("{}: not a TrueType font", path.display()))?;
            }
        }
        Ok(())
    })
    .clone()
    .map_err(ReportError::Font)
}

/// Parameters in millions of a built-in model (`None` for a user folder).
fn params_millions(model: &str) -> Option<f64> {
    w2s_models::BUILTIN
        .iter()
        .find(|m| m.name == model)
        .map(|m| m.params_millions)
}

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

fn draw_err(path: &Path, e: impl std::fmt::Display) -> ReportError {
    ReportError::Draw {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// A generic plot body: works for both backends.
trait Plot {
    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String>;

    /// Width and height in pixels.
    fn size(&self) -> (u32, u32) {
        (W, H)
    }
}

fn render<P: Plot>(dir: &Path, stem: &str, p: &P) -> Result<()> {
    let svg = dir.join(format!("{stem}.svg"));
    let png = dir.join(format!("{stem}.png"));
    let tmp_svg = dir.join(format!(".{stem}.tmp.svg"));
    let tmp_png = dir.join(format!(".{stem}.tmp.png"));
    {
        let area = SVGBackend::new(&tmp_svg, p.size()).into_drawing_area();
        p.draw(&area).map_err(|e| draw_err(&svg, e))?;
        area.present().map_err(|e| draw_err(&svg, e))?;
    }
    {
        let area = BitMapBackend::new(&tmp_png, p.size()).into_drawing_area();
        p.draw(&area).map_err(|e| draw_err(&png, e))?;
        area.present().map_err(|e| draw_err(&png, e))?;
    }
    for (tmp, dest) in [(tmp_svg, svg), (tmp_png, png)] {
        std::fs::rename(&tmp, &dest).map_err(|e| ReportError::Write(dest, e.to_string()))?;
    }
    Ok(())
}

fn s<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

type Chart<'a, DB> = ChartContext<
    'a,
    DB,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// A chart with the report's caption font and margins.
fn chart_on<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    caption: &str,
    x_label_area: u32,
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
) -> std::result::Result<Chart<'a, DB>, String> {
    ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 24))
        .margin(15)
        .x_label_area_size(x_label_area)
        .y_label_area_size(55)
        .build_cartesian_2d(x, y)
        .map_err(s)
}

/// The series legend in the report's style.
fn legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    position: SeriesLabelPosition,
) -> std::result::Result<(), String> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(s)
}

/// Figure (a): accuracy against each strong model's ceiling.
struct TransferPlot<'a> {
    dataset: &'a str,
    rows: Vec<&'a SummaryRow>,
}

impl Plot for TransferPlot<'_> {
    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String> {
        area.fill(&WHITE).map_err(s)?;
        // Ground-truth accuracy of every model: its mean ceiling where it was a strong model,
        // else its mean accuracy as a weak model (trained on A, the same size as B).
        let mut gt_runs: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for r in &self.rows {
            gt_runs
                .entry(r.strong.clone())
                .or_default()
                .push(r.ceiling_acc);
        }
        for r in &self.rows {
            if !self.rows.iter().any(|o| o.strong == r.weak) {
                gt_runs.entry(r.weak.clone()).or_default().push(r.weak_acc);
            }
        }
        let ceiling: BTreeMap<String, f64> = gt_runs
            .into_iter()
            .map(|(k, v)| (k, v.iter().sum::<f64>() / v.len() as f64))
            .collect();
        let all: Vec<f64> = self
            .rows
            .iter()
            .flat_map(|r| [r.weak_acc, r.ceiling_acc, r.student_acc])
            .map(|x| 100.0 * x)
            .collect();
        let (lo, hi) = bounds(&all);
        let mut xs: Vec<f64> = ceiling.values().map(|c| 100.0 * c).collect();
        xs.sort_by(f64::total_cmp);
        let (xlo, xhi) = bounds(&xs);
        let mut chart = chart_on(
            area,
            &format!("{}: students vs. strong ceiling", self.dataset),
            45,
            xlo..xhi,
            lo..hi,
        )?;
        chart
            .configure_mesh()
            .x_desc("model's ground-truth test accuracy (strong ceiling), %")
            .y_desc("test accuracy, %")
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(s)?;
        // Ground truth: every model trained on ground truth, on the diagonal.
        let gt: Vec<(f64, f64)> = xs.iter().map(|&x| (x, x)).collect();
        chart
            .draw_series(LineSeries::new(gt.clone(), BLACK.stroke_width(2)))
            .map_err(s)?
            .label("ground truth")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(2)));
        chart
            .draw_series(gt.iter().map(|&p| Circle::new(p, 4, BLACK.filled())))
            .map_err(s)?;
        let weak_models = unique(self.rows.iter().map(|r| r.weak.clone()));
        let losses = unique(self.rows.iter().map(|r| r.series.clone()));
        for (wi, weak) in weak_models.iter().enumerate() {
            let color = PALETTE[wi % PALETTE.len()];
            for (li, loss) in losses.iter().enumerate() {
                let mut pts: Vec<(f64, f64)> = self
                    .rows
                    .iter()
                    .filter(|r| &r.weak == weak && &r.series == loss && r.chain.is_none())
                    .map(|r| (100.0 * ceiling[&r.strong], 100.0 * r.student_acc))
                    .collect();
                if pts.is_empty() {
                    continue;
                }
                // Each weak model's line starts at its own ground-truth point, as in the paper.
                let start = self
                    .rows
                    .iter()
                    .find(|r| &r.weak == weak)
                    .map(|r| ceiling.get(&r.weak).copied().unwrap_or(r.weak_acc));
                if let Some(x) = start {
                    pts.push((100.0 * x, 100.0 * x));
                }
                pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                let style = color.stroke_width(2);
                if li == 0 {
                    chart
                        .draw_series(LineSeries::new(pts.clone(), style))
                        .map_err(s)?;
                } else {
                    let dash = 4 + 3 * li as i32;
                    chart
                        .draw_series(DashedLineSeries::new(pts.clone(), dash, 4, style))
                        .map_err(s)?;
                }
                draw_markers(&mut chart, &pts, li, color)?;
            }
            // The weak model's own accuracy, as a dotted horizontal reference.
            let weak_acc = self
                .rows
                .iter()
                .filter(|r| &r.weak == weak)
                .map(|r| r.weak_acc)
                .sum::<f64>()
                / self.rows.iter().filter(|r| &r.weak == weak).count().max(1) as f64;
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(xlo, 100.0 * weak_acc), (xhi, 100.0 * weak_acc)],
                    2,
                    5,
                    color.stroke_width(1),
                ))
                .map_err(s)?;
        }
        // Legend: colour = weak model, line and marker = loss.
        for (wi, weak) in weak_models.iter().enumerate() {
            let color = PALETTE[wi % PALETTE.len()];
            chart
                .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
                .map_err(s)?
                .label(format!("weak {weak}"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
                });
        }
        let grey = RGBColor(90, 90, 90);
        for (li, loss) in losses.iter().enumerate() {
            let len = if li == 0 { 20 } else { 8 };
            chart
                .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
                .map_err(s)?
                .label(format!(
                    "{loss} ({})",
                    ["circle", "triangle", "cross"][li % 3]
                ))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + len, y)], grey.stroke_width(2))
                });
        }
        legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        Ok(())
    }
}

fn draw_markers<DB: DrawingBackend>(
    chart: &mut ChartContext<
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    pts: &[(f64, f64)],
    kind: usize,
    color: RGBColor,
) -> std::result::Result<(), String> {
    match kind % 3 {
        0 => chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 5, color.filled())))
            .map(|_| ()),
        1 => chart
            .draw_series(
                pts.iter()
                    .map(|&p| TriangleMarker::new(p, 6, color.filled())),
            )
            .map(|_| ()),
        _ => chart
            .draw_series(pts.iter().map(|&p| Cross::new(p, 5, color.stroke_width(2))))
            .map(|_| ()),
    }
    .map_err(s)
}

/// Padded axis range of `values` (a default when empty).
fn bounds(values: &[f64]) -> (f64, f64) {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        return (0.0, 1.0);
    }
    let lo = finite.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let pad = ((hi - lo) * 0.1).max(0.5);
    (lo - pad, hi + pad)
}

fn unique(it: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for x in it {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

/// Figure (b): PGR against strong-model size, per method.
struct PgrPlot<'a> {
    dataset: &'a str,
    rows: Vec<&'a SummaryRow>,
}

impl PgrPlot<'_> {
    /// x position of a strong model: its rank in `order` (models sorted by size).
    fn x_of(&self, strong: &str, order: &[String]) -> f64 {
        order.iter().position(|m| m == strong).unwrap_or(0) as f64
    }
}

impl Plot for PgrPlot<'_> {
    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String> {
        area.fill(&WHITE).map_err(s)?;
        let mut order = unique(self.rows.iter().map(|r| r.strong.clone()));
        // Smallest model first; user models (size unknown) after the built-in ones.
        order.sort_by(|a, b| {
            let size = |m: &str| params_millions(m).unwrap_or(f64::INFINITY);
            size(a).total_cmp(&size(b))
        });
        let rows: Vec<&&SummaryRow> = self
            .rows
            .iter()
            .filter(|r| r.chain.is_none() && r.pgr_mean.is_some())
            .collect();
        let ys: Vec<f64> = rows
            .iter()
            .flat_map(|r| {
                let m = r.pgr_mean.unwrap_or(0.0);
                let c = r.pgr_ci95.filter(|c| c.is_finite()).unwrap_or(0.0).min(2.0);
                [m - c, m + c]
            })
            .chain([0.0, 1.0])
            .collect();
        let (ylo, yhi) = bounds(&ys);
        let (xlo, xhi) = (-0.5, order.len() as f64 - 0.5);
        let mut chart = chart_on(
            area,
            &format!("{}: PGR vs. strong model size", self.dataset),
            45,
            xlo..xhi,
            ylo..yhi,
        )?;
        let names: Vec<(f64, String)> = order
            .iter()
            .map(|m| (self.x_of(m, &order), m.clone()))
            .collect();
        chart
            .configure_mesh()
            .x_desc("strong model (by size)")
            .x_labels(4 * order.len() + 1)
            .x_label_formatter(&|x| {
                names
                    .iter()
                    .find(|(p, _)| (p - x).abs() < 0.01)
                    .map(|(_, n)| match params_millions(n) {
                        Some(m) => format!("{n} ({m:.0}M)"),
                        None => n.clone(),
                    })
                    .unwrap_or_default()
            })
            .y_desc("PGR (accuracy), mean ± 95% CI over seeds")
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(s)?;
        chart
            .draw_series(LineSeries::new(
                vec![(xlo, 0.0), (xhi, 0.0)],
                BLACK.mix(0.5),
            ))
            .map_err(s)?;
        chart
            .draw_series(DashedLineSeries::new(
                vec![(xlo, 1.0), (xhi, 1.0)],
                4,
                4,
                BLACK.mix(0.5).stroke_width(1),
            ))
            .map_err(s)?;
        let losses = unique(rows.iter().map(|r| r.series.clone()));
        let weak_models = unique(rows.iter().map(|r| r.weak.clone()));
        for (li, loss) in losses.iter().enumerate() {
            let color = PALETTE[li % PALETTE.len()];
            for (wi, weak) in weak_models.iter().enumerate() {
                // Small horizontal offsets keep error bars of different losses apart.
                let dx = 0.04 * (li as f64 - losses.len() as f64 / 2.0);
                let mut pts: Vec<(f64, f64, f64)> = rows
                    .iter()
                    .filter(|r| &r.series == loss && &r.weak == weak)
                    .map(|r| {
                        (
                            self.x_of(&r.strong, &order) + dx,
                            r.pgr_mean.unwrap_or(0.0),
                            r.pgr_ci95.filter(|c| c.is_finite()).unwrap_or(0.0),
                        )
                    })
                    .collect();
                if pts.is_empty() {
                    continue;
                }
                pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                let line: Vec<(f64, f64)> = pts.iter().map(|p| (p.0, p.1)).collect();
                let series = chart
                    .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))
                    .map_err(s)?;
                if wi == 0 {
                    series.label(loss.clone()).legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                    });
                }
                chart
                    .draw_series(pts.iter().map(|&(x, m, c)| {
                        ErrorBar::new_vertical(
                            x,
                            (m - c).max(ylo),
                            m,
                            (m + c).min(yhi),
                            color.stroke_width(1),
                            8,
                        )
                    }))
                    .map_err(s)?;
                draw_markers(&mut chart, &line, wi, color)?;
            }
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        if weak_models.len() > 1 {
            area.draw(&Text::new(
                format!("markers: weak model ({})", weak_models.join(", ")),
                (70, (H - 18) as i32),
                ("sans-serif", 13),
            ))
            .map_err(s)?;
        }
        Ok(())
    }
}

/// Median of the defined values.
fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Table (c): median PGR per method (rows) and dataset (columns); `None` where no pair has a gap.
#[derive(Debug, Clone, PartialEq)]
pub struct MedianPgr {
    /// Row names.
    pub losses: Vec<String>,
    /// Column names.
    pub datasets: Vec<String>,
    /// `cells[loss][dataset]`.
    pub cells: Vec<Vec<Option<f64>>>,
}

/// Table (c): median PGR over all direct (weak, strong) pairs with a gap, per method and dataset.
pub fn median_pgr(summary: &[SummaryRow]) -> MedianPgr {
    let datasets = unique(summary.iter().map(|r| r.dataset.clone()));
    let losses = unique(summary.iter().map(|r| r.series.clone()));
    let cells = losses
        .iter()
        .map(|l| {
            datasets
                .iter()
                .map(|d| {
                    median(
                        summary
                            .iter()
                            .filter(|r| &r.series == l && &r.dataset == d && r.chain.is_none())
                            .filter_map(|r| r.pgr_mean)
                            .collect(),
                    )
                })
                .collect()
        })
        .collect();
    MedianPgr {
        losses,
        datasets,
        cells,
    }
}

struct MedianTable<'a> {
    table: &'a MedianPgr,
}

impl Plot for MedianTable<'_> {
    fn size(&self) -> (u32, u32) {
        (W, 100 + 48 * (self.table.losses.len() as u32 + 1))
    }

    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String> {
        area.fill(&WHITE).map_err(s)?;
        let MedianPgr {
            losses,
            datasets,
            cells,
        } = self.table;
        area.draw(&Text::new(
            "median PGR per method (rows) and dataset (columns)",
            (20, 15),
            ("sans-serif", 20),
        ))
        .map_err(s)?;
        let left = 130i32;
        let top = 60i32;
        let cw = ((W as i32 - left - 20) / datasets.len().max(1) as i32).min(180);
        let ch = 48;
        for (j, d) in datasets.iter().enumerate() {
            let x = left + j as i32 * cw;
            let name: String = d.chars().take(18).collect();
            area.draw(&Text::new(name, (x + 6, top + ch / 3), ("sans-serif", 14)))
                .map_err(s)?;
        }
        for (i, l) in losses.iter().enumerate() {
            let y = top + (i as i32 + 1) * ch;
            area.draw(&Text::new(l.clone(), (20, y + ch / 3), ("sans-serif", 15)))
                .map_err(s)?;
            for (j, v) in cells[i].iter().enumerate() {
                let x = left + j as i32 * cw;
                let fill = match v {
                    // Blue for positive PGR, red for negative, stronger with magnitude.
                    Some(p) if *p >= 0.0 => RGBColor(31, 119, 180).mix(p.min(1.0) * 0.6 + 0.1),
                    Some(p) => RGBColor(214, 39, 40).mix((-p).min(1.0) * 0.6 + 0.1),
                    None => WHITE.mix(1.0),
                };
                area.draw(&Rectangle::new(
                    [(x, y), (x + cw - 4, y + ch - 4)],
                    fill.filled(),
                ))
                .map_err(s)?;
                area.draw(&Rectangle::new(
                    [(x, y), (x + cw - 4, y + ch - 4)],
                    BLACK.mix(0.3),
                ))
                .map_err(s)?;
                let text = v
                    .map(|p| format!("{p:.2}"))
                    .unwrap_or_else(|| "no gap".into());
                area.draw(&Text::new(text, (x + 8, y + ch / 3), ("sans-serif", 16)))
                    .map_err(s)?;
            }
        }
        Ok(())
    }
}

/// Figure (d): weak, direct transfer, chain and ceiling accuracy per chain and loss.
struct BootstrapPlot<'a> {
    dataset: &'a str,
    rows: Vec<&'a SummaryRow>,
}

impl Plot for BootstrapPlot<'_> {
    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String> {
        area.fill(&WHITE).map_err(s)?;
        let groups: Vec<&SummaryRow> = self
            .rows
            .iter()
            .copied()
            .filter(|r| r.chain.is_some())
            .collect();
        let vals: Vec<f64> = groups
            .iter()
            .flat_map(|r| {
                [
                    r.weak_acc,
                    r.ceiling_acc,
                    r.student_acc,
                    r.direct_student_acc.unwrap_or(r.weak_acc),
                ]
            })
            .map(|x| 100.0 * x)
            .collect();
        let (lo, hi) = bounds(&vals);
        // Headroom above the bars for the legend.
        let hi = hi + 0.45 * (hi - lo);
        let n = groups.len().max(1) as f64;
        let chains = unique(
            groups
                .iter()
                .map(|r| r.chain.as_ref().map(|c| c.join(" -> ")).unwrap_or_default()),
        );
        let caption = if chains.len() == 1 {
            format!("{}: {} vs. direct", self.dataset, chains[0])
        } else {
            format!("{}: bootstrapping vs. direct transfer", self.dataset)
        };
        let mut chart = chart_on(area, &caption, 60, 0.0..n, lo..hi)?;
        let labels: Vec<String> = groups
            .iter()
            .map(|r| {
                let c = r.chain.as_ref().map(|c| c.join(" -> ")).unwrap_or_default();
                match chains.iter().position(|x| *x == c) {
                    Some(i) if chains.len() > 1 => format!("{} (chain {})", r.series, i + 1),
                    _ => r.series.clone(),
                }
            })
            .collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(groups.len().max(1) * 2 + 1)
            .x_label_formatter(&|x| {
                let i = x.floor() as usize;
                if (x - x.floor() - 0.5).abs() < 0.01 {
                    labels.get(i).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_desc("test accuracy, %")
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(s)?;
        let kinds: [(&str, RGBColor); 4] = [
            ("weak", PALETTE[3]),
            ("direct weak -> strong", PALETTE[1]),
            ("chain (bootstrapped)", PALETTE[2]),
            ("strong ceiling", BLACK),
        ];
        for (k, (name, color)) in kinds.iter().enumerate() {
            let color = *color;
            let bars: Vec<(f64, f64)> = groups
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let v = match k {
                        0 => r.weak_acc,
                        1 => r.direct_student_acc.unwrap_or(f64::NAN),
                        2 => r.student_acc,
                        _ => r.ceiling_acc,
                    };
                    (i as f64 + 0.15 + 0.18 * k as f64, 100.0 * v)
                })
                .filter(|(_, v)| v.is_finite())
                .collect();
            chart
                .draw_series(bars.iter().map(|&(x, v)| {
                    Rectangle::new([(x, lo), (x + 0.16, v)], color.mix(0.8).filled())
                }))
                .map_err(s)?
                .label(*name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                });
        }
        legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        Ok(())
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

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
    ensure_font()?;
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
    let html = page(&summary, &table, &figures);
    let index = dir.join("index.html");
    w2s_assets::cache::write_atomic(&index, html.as_bytes())
        .map_err(|e| ReportError::Write(index.clone(), e.to_string()))?;
    let json = serde_json::to_vec_pretty(&summary)
        .map_err(|e| ReportError::Write(dir.join("summary.json"), e.to_string()))?;
    w2s_assets::cache::write_atomic(&dir.join("summary.json"), &json)
        .map_err(|e| ReportError::Write(dir.join("summary.json"), e.to_string()))?;
    Ok(index)
}

fn page(summary: &[SummaryRow], table: &MedianPgr, figures: &[(String, String)]) -> String {
    let mut h = String::new();
    h.push_str("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>w2s report</title>\n<style>\
        body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}\
        table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}\
        th{background:#f3f3f3}td.l,th.l{text-align:left}img{max-width:100%;border:1px solid #eee}\
        .note{color:#666;font-size:90%}</style></head><body>\n<h1>Weak-to-strong report</h1>\n");
    h.push_str("<p>PGR = (student &minus; weak) / (ceiling &minus; weak) on test accuracy, the mean of per-seed values \
        &plusmn; a 95% t-interval; &ldquo;no gap&rdquo; when the ceiling does not beat the weak model in every seed. \
        * marks a gap whose 95% interval includes 0 (PGR mostly noise). Definitions: docs/metrics.md.</p>\n");
    let MedianPgr {
        losses,
        datasets,
        cells,
    } = table;
    h.push_str(
        "<h2>(c) Median PGR per method and dataset</h2>\n<table><tr><th class=l>method</th>",
    );
    for d in datasets {
        let _ = write!(h, "<th>{}</th>", html_escape(d));
    }
    h.push_str("</tr>\n");
    for (i, l) in losses.iter().enumerate() {
        let _ = write!(h, "<tr><td class=l>{}</td>", html_escape(l));
        for v in &cells[i] {
            let _ = write!(
                h,
                "<td>{}</td>",
                v.map(|p| format!("{p:.2}"))
                    .unwrap_or_else(|| "no gap".into())
            );
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n<h2>Runs, mean over seeds</h2>\n<table><tr><th class=l>dataset</th><th class=l>weak -> strong</th>\
        <th class=l>method</th><th>seeds</th><th>weak</th><th>ceiling</th><th>student</th><th>PGR</th><th>PGR (AUROC)</th>\
        <th>agreement</th><th>agr. on weak errors</th><th>direct</th></tr>\n");
    for r in summary {
        let path = match &r.chain {
            Some(c) => c.join(" -> "),
            None => format!("{} -> {}", r.weak, r.strong),
        };
        let pgr = pgr_text(r);
        let _ = writeln!(
            h,
            "<tr><td class=l>{}</td><td class=l>{}</td><td class=l>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            html_escape(&r.dataset),
            html_escape(&path),
            html_escape(&r.series),
            r.n_seeds,
            pct(r.weak_acc),
            pct(r.ceiling_acc),
            pct(r.student_acc),
            pgr,
            r.pgr_auroc_mean.map(|p| format!("{p:.2}")).unwrap_or_else(|| "no gap".into()),
            pct(r.agreement),
            pct(r.agreement_on_weak_errors),
            r.direct_student_acc.map(pct).unwrap_or_default(),
        );
    }
    h.push_str("</table>\n<h2>Figures</h2>\n");
    for (stem, caption) in figures {
        let _ = writeln!(
            h,
            "<figure><img src=\"{stem}.png\" alt=\"{}\"><figcaption>{} &middot; <a href=\"{stem}.svg\">SVG</a></figcaption></figure>",
            html_escape(caption),
            html_escape(caption)
        );
    }
    h.push_str("<p class=note>Written by w2s report.</p></body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_by_hand() {
        assert_eq!(median(vec![0.3, 0.1, 0.2]), Some(0.2));
        assert_eq!(median(vec![0.4, 0.1, f64::NAN, 0.2, 0.3]), Some(0.25));
        assert_eq!(median(vec![]), None);
    }
}
