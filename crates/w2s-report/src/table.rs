//! Table (c): the median PGR per method and dataset, as data and as a table image.
use crate::plot::*;
use plotters::coord::Shift;
use plotters::prelude::*;
use w2s_experiment::scout::Verdict;
use w2s_experiment::SummaryRow;

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

/// Table (c): median PGR per method and dataset over the direct (weak, strong) pairs whose gap
/// `w2s scout` calls usable (its 95% interval excludes 0 and it is at least 3 points): a pair
/// whose ceiling beats the weak model by seed noise only would put noise into the median.
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
                            .filter(|r| r.verdict() == Verdict::Usable)
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

pub(crate) struct MedianTable<'a> {
    pub(crate) table: &'a MedianPgr,
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
