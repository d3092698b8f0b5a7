//! Figure (a): student accuracy against each strong model's ceiling, per weak model and method.
use crate::plot::*;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::collections::BTreeMap;
use w2s_experiment::SummaryRow;

/// Figure (a): accuracy against each strong model's ceiling.
pub(crate) struct TransferPlot<'a> {
    pub(crate) dataset: &'a str,
    pub(crate) rows: Vec<&'a SummaryRow>,
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
