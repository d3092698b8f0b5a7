//! `cargo run --release -p w2s-fuzz -- TARGET [--seconds N | --cases N] [--seed S]`: fuzzes one
//! reader, or `all` of them in turn, and says how many cases ran and what they found.
use anyhow::{bail, Result};
use clap::Parser;
use std::time::Duration;
use w2s_fuzz::{fuzz, Budget, TARGETS};

/// Fuzz w2s's readers with mutated inputs grown from the corpus in crates/w2s-fuzz/corpus.
#[derive(Parser)]
#[command(after_help = targets_help())]
struct Args {
    /// A target (listed below), or `all`.
    target: String,
    /// Run each target for this many seconds.
    #[arg(long, conflicts_with = "cases")]
    seconds: Option<f64>,
    /// Run each target for this many mutated cases (default 2,000).
    #[arg(long)]
    cases: Option<usize>,
    /// Seed of the mutations: the same seed, corpus and code give the same cases.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn targets_help() -> String {
    let lines: Vec<String> = TARGETS
        .iter()
        .map(|t| format!("  {:<14} {}", t.name, t.help))
        .collect();
    format!("Targets:\n{}", lines.join("\n"))
}

fn main() -> std::process::ExitCode {
    match run(Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<()> {
    let targets: Vec<_> = if args.target == "all" {
        TARGETS.iter().collect()
    } else {
        match w2s_fuzz::target(&args.target) {
            Some(t) => vec![t],
            None => bail!("no target {:?}\n{}", args.target, targets_help()),
        }
    };
    let budget = match (args.seconds, args.cases) {
        (Some(s), _) => Budget::Time(Duration::from_secs_f64(s)),
        (None, Some(n)) => Budget::Cases(n),
        (None, None) => Budget::Cases(2000),
    };
    let mut found = 0;
    for t in targets {
        let start = std::time::Instant::now();
        let r = fuzz(t, budget, args.seed)?;
        println!(
            "{:<14} {:>7} cases + {:>3} corpus files in {:>6.1} s: {:>6} accepted, {} panics",
            t.name,
            r.cases,
            r.replayed,
            start.elapsed().as_secs_f64(),
            r.accepted,
            r.crashes.len()
        );
        let mut kinds = std::collections::BTreeMap::<&str, usize>::new();
        for c in &r.crashes {
            *kinds.entry(c.message.as_str()).or_default() += 1;
            if let Some(saved) = &c.saved {
                println!(
                    "  panic: {}\n  input saved as {}",
                    c.message,
                    saved.display()
                );
            }
        }
        if r.crashes.len() > kinds.len() {
            println!("  ({} panics of {} kinds)", r.crashes.len(), kinds.len());
        }
        found += r.crashes.len();
    }
    if found > 0 {
        bail!("{found} panics found; each input is saved in the corpus and replayed by every later run");
    }
    Ok(())
}
