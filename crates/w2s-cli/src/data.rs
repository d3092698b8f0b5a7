//! `w2s data`: list and inspect datasets.
use anyhow::Result;
use clap::Subcommand;
use w2s_assets::Store;

/// Subcommands of `w2s data`.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Show every built-in dataset: rows, share of positives, source (converting what is fetched).
    List {
        /// Fetch and convert datasets that are not cached yet.
        #[arg(long)]
        fetch: bool,
    },
    /// Print rows of a dataset (a built-in name, or a .jsonl/.csv file with text and label).
    Show {
        /// Dataset name or path.
        name: String,
        /// Number of rows.
        #[arg(short = 'n', default_value_t = 5)]
        rows: usize,
        /// Skip this many rows first.
        #[arg(long, default_value_t = 0)]
        skip: usize,
    },
}

/// Runs `w2s data`.
pub fn run(cmd: DataCommand) -> Result<()> {
    let store = Store::open();
    match cmd {
        DataCommand::List { fetch } => {
            println!("{:<19} {:>7} {:>9}  source", "name", "rows", "positive");
            for info in &w2s_data::DATASETS {
                let available = w2s_data::registry::is_converted(&store, info.name)
                    || store.is_cached(info.asset);
                if available || fetch {
                    let ds = w2s_data::load(info.name, &store)?;
                    println!(
                        "{:<19} {:>7} {:>8.1}%  {}",
                        info.name,
                        ds.examples.len(),
                        100.0 * ds.positive_share(),
                        info.source
                    );
                } else {
                    println!(
                        "{:<19} {:>7} {:>9}  {} (not fetched: `w2s fetch {}`)",
                        info.name, "-", "-", info.source, info.asset
                    );
                }
            }
        }
        DataCommand::Show { name, rows, skip } => {
            let ds = w2s_data::load(&name, &store)?;
            println!(
                "{}: {} rows, {:.1}% positive, version {}",
                ds.name,
                ds.examples.len(),
                100.0 * ds.positive_share(),
                ds.version
            );
            for e in ds.examples.iter().skip(skip).take(rows) {
                println!(
                    "\n[{}] label={} group={}\n{}",
                    e.id, e.label, e.group, e.text
                );
            }
        }
    }
    Ok(())
}
