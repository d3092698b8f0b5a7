//! The plot framework every figure uses: the [`Plot`] trait, rendering to PNG and SVG, the
//! shared chart, legend, markers, palette and small helpers.
use crate::{ReportError, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

pub(crate) const W: u32 = 900;
pub(crate) const H: u32 = 600;

/// Parameters in millions of a built-in model (`None` for a user folder).
pub(crate) fn params_millions(model: &str) -> Option<f64> {
    if model == w2s_models::PIXELS {
        return Some(0.0);
    }
    w2s_models::BUILTIN
        .iter()
        .find(|m| m.name == model)
        .map(|m| m.params_millions)
        .or_else(|| w2s_models::vision::vision_builtin(model).map(|b| b.params_millions))
}

pub(crate) const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

pub(crate) fn draw_err(path: &Path, e: impl std::fmt::Display) -> ReportError {
    ReportError::Draw {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// A generic plot body: works for both backends.
pub(crate) trait Plot {
    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String>;

    /// Width and height in pixels.
    fn size(&self) -> (u32, u32) {
        (W, H)
    }
}

pub(crate) fn render<P: Plot>(dir: &Path, stem: &str, p: &P) -> Result<()> {
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

pub(crate) fn s<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

type Chart<'a, DB> = ChartContext<
    'a,
    DB,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// A chart with the report's caption font and margins.
pub(crate) fn chart_on<'a, DB: DrawingBackend>(
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
pub(crate) fn legend<'a, DB: DrawingBackend + 'a>(
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

pub(crate) fn draw_markers<DB: DrawingBackend>(
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
pub(crate) fn bounds(values: &[f64]) -> (f64, f64) {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        return (0.0, 1.0);
    }
    let lo = finite.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let pad = ((hi - lo) * 0.1).max(0.5);
    (lo - pad, hi + pad)
}

pub(crate) fn unique(it: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for x in it {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

/// Median of the defined values.
pub(crate) fn median(mut v: Vec<f64>) -> Option<f64> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_by_hand() {
        assert_eq!(median(vec![0.3, 0.1, 0.2]), Some(0.2));
        assert_eq!(median(vec![0.4, 0.1, f64::NAN, 0.2, 0.3]), Some(0.25));
        assert_eq!(median(vec![]), None);
    }

    /// Image models have sizes too, so plots order a vision ladder weakest first.
    #[test]
    fn the_vision_ladder_is_ordered_by_size() {
        let sizes: Vec<f64> = ["pixels", "efficientnet-lite0", "efficientnet-lite2"]
            .iter()
            .map(|m| params_millions(m).unwrap())
            .collect();
        assert!(sizes.windows(2).all(|w| w[0] < w[1]), "{sizes:?}");
        assert_eq!(params_millions("my-folder"), None);
    }
}
