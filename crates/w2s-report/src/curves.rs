//! Figure (e): training curves, the paper's Fig. 7. The student's test accuracy after each epoch
//! (mean over seeds), one line per method, against the weak model's accuracy and the ceiling's
//! own curve, for the pair with the largest gap. A student that overfits the weak labels late in
//! training rises towards the ceiling, then falls back towards the weak line.
use crate::plot::*;
use plotters::coord::Shift;
use plotters::prelude::*;
use w2s_experiment::SummaryRow;

/// The rows of the direct pair with the largest positive mean gap that have curves (`None` when
/// none do).
pub(crate) fn widest_pair<'a>(rows: &[&'a SummaryRow]) -> Option<Vec<&'a SummaryRow>> {
    let with_curves: Vec<&SummaryRow> = rows
        .iter()
        .copied()
        .filter(|r| r.chain.is_none() && r.student_curve.len() > 1 && r.gap > 0.0)
        .collect();
    let widest = with_curves.iter().max_by(|a, b| a.gap.total_cmp(&b.gap))?;
    Some(
        with_curves
            .iter()
            .copied()
            .filter(|r| r.weak == widest.weak && r.strong == widest.strong)
            .collect(),
    )
}

/// Figure (e): one pair's curves.
pub(crate) struct CurvesPlot<'a> {
    pub(crate) dataset: &'a str,
    /// One pair's rows, one per method.
    pub(crate) rows: Vec<&'a SummaryRow>,
}

impl Plot for CurvesPlot<'_> {
    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String> {
        area.fill(&WHITE).map_err(s)?;
        let Some(first) = self.rows.first() else {
            return Ok(());
        };
        let epochs = self
            .rows
            .iter()
            .map(|r| r.student_curve.len().max(r.ceiling_curve.len()))
            .max()
            .unwrap_or(1);
        let vals: Vec<f64> = self
            .rows
            .iter()
            .flat_map(|r| r.student_curve.iter().chain(&r.ceiling_curve).copied())
            .chain([first.weak_acc])
            .map(|x| 100.0 * x)
            .collect();
        let (lo, hi) = bounds(&vals);
        let hi = hi + 0.3 * (hi - lo);
        let (xlo, xhi) = (0.5, epochs as f64 + 0.5);
        let mut chart = chart_on(
            area,
            &format!(
                "{}: {} -> {}, test accuracy by epoch",
                self.dataset, first.weak, first.strong
            ),
            45,
            xlo..xhi,
            lo..hi,
        )?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .x_labels(epochs.min(20))
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_desc("test accuracy, %, mean over seeds")
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(s)?;
        let weak = 100.0 * first.weak_acc;
        chart
            .draw_series(DashedLineSeries::new(
                vec![(xlo, weak), (xhi, weak)],
                6,
                4,
                PALETTE[3].stroke_width(2),
            ))
            .map_err(s)?
            .label(format!("weak {}", first.weak))
            .legend(|(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], PALETTE[3].stroke_width(2))
            });
        let points = |curve: &[f64]| -> Vec<(f64, f64)> {
            curve
                .iter()
                .enumerate()
                .map(|(e, a)| ((e + 1) as f64, 100.0 * a))
                .collect()
        };
        let ceiling = points(&first.ceiling_curve);
        if !ceiling.is_empty() {
            chart
                .draw_series(LineSeries::new(ceiling, BLACK.stroke_width(2)))
                .map_err(s)?
                .label(format!("ceiling {} (ground truth)", first.strong))
                .legend(|(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(2))
                });
        }
        for (i, r) in self.rows.iter().enumerate() {
            // Red is the weak line's.
            let color = PALETTE[[0, 1, 2, 4, 5, 6, 7][i % 7]];
            let line = points(&r.student_curve);
            chart
                .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))
                .map_err(s)?
                .label(format!("student, {}", r.series))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            draw_markers(&mut chart, &line, i, color)?;
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        Ok(())
    }
}
