//! Figure (d): the accuracy of each bootstrapping chain against direct transfer.
use crate::plot::*;
use plotters::coord::Shift;
use plotters::prelude::*;
use w2s_experiment::SummaryRow;

/// Figure (d): weak, direct transfer, chain and ceiling accuracy per chain and loss.
pub(crate) struct BootstrapPlot<'a> {
    pub(crate) dataset: &'a str,
    pub(crate) rows: Vec<&'a SummaryRow>,
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
