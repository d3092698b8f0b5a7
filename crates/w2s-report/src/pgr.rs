//! Figure (b): PGR against strong-model size, per method, mean ± 95% CI over seeds.
use crate::plot::*;
use plotters::coord::Shift;
use plotters::prelude::*;
use w2s_experiment::SummaryRow;

/// Figure (b): PGR against strong-model size, per method.
pub(crate) struct PgrPlot<'a> {
    pub(crate) dataset: &'a str,
    pub(crate) rows: Vec<&'a SummaryRow>,
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
