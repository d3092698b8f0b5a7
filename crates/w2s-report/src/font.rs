//! The report's font: Roboto from a pinned package, registered with plotters once.
use crate::{ReportError, Result};
use plotters::prelude::*;

/// Registers the report font once (fetched from a pinned package on first use).
pub(crate) fn ensure_font() -> Result<()> {
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
