//! Progress bars shared by the subcommands.
use indicatif::{ProgressBar, ProgressStyle};
use std::time::Duration;

/// A spinner with a message, hidden when `quiet`.
pub fn spinner(quiet: bool, msg: &str) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
            .expect("valid template"),
    );
    bar.set_message(msg.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// A bar over `len` items with rate and ETA, hidden when `quiet`.
pub fn bar(quiet: bool, len: u64, unit: &str, msg: &str) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    let template = format!("{{msg}} [{{elapsed_precise}}] {{wide_bar}} {{pos}}/{{len}} {unit} ({{per_sec}}, ETA {{eta}})");
    bar.set_style(ProgressStyle::with_template(&template).expect("valid template"));
    bar.set_message(msg.to_string());
    bar
}

/// Moves an embedding bar to `p`; the first report of a resumed pass names the rows found
/// already computed and restarts the rate, so that the ETA counts only rows embedded now.
pub fn embedding(bar: &ProgressBar, p: w2s_models::EmbedProgress) {
    bar.set_position(p.done as u64);
    if p.resumed > 0 && p.done == p.resumed {
        bar.set_message(format!("{} ({} rows resumed)", bar.message(), p.resumed));
        bar.reset_eta();
    }
}
