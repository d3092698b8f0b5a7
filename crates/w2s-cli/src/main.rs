//! `w2s`: weak-to-strong generalization experiments on real pretrained models and real datasets.
mod bench;
mod data;
mod embed;
mod execute;
mod fetch;
mod memory;
mod progress;
mod report;
mod run;
mod scout;
mod serve;
mod settings;
mod shard;
mod slurm;
mod sweep;
mod workers;

use clap::{Parser, Subcommand};

/// Weak-to-strong generalization experiments (Burns et al. 2023) on real models and datasets.
///
/// A weak model trained on ground truth labels held-out data; a strong model trained on those
/// labels is compared with the same strong model trained on ground truth. PGR, the performance gap
/// recovered, is (student - weak) / (ceiling - weak). See docs/ for the data splits and metrics.
///
/// Everything is fetched from package registries into $W2S_HOME (default ~/.cache/w2s).
#[derive(Debug, Parser)]
#[command(name = "w2s", version, propagate_version = true, max_term_width = 100)]
struct Cli {
    /// Print less: no progress bars, warnings only.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Download, verify and convert pretrained models and datasets into the cache.
    Fetch(fetch::FetchArgs),
    /// List the built-in datasets or print rows of one.
    #[command(subcommand)]
    Data(data::DataCommand),
    /// Compute (or read from the cache) pooled features of a model for every row of a dataset.
    Embed(embed::EmbedArgs),
    /// Run the weak-to-strong experiment: weak model, weak labels, strong ceiling, students, PGR.
    /// With no arguments: the demo (minilm-l3 -> mpnet-base on two sentiment datasets).
    Run(Box<run::RunArgs>),
    /// Run a grid of experiments from a TOML file, reusing every stage already stored.
    Sweep(sweep::SweepArgs),
    /// Which weak -> strong pairs of a model ladder have a real gap on a dataset (probe mode).
    Scout(scout::ScoutArgs),
    /// Write plots (PNG, SVG) and an HTML page from the runs in a folder.
    Report(report::ReportArgs),
    /// Time embedding or a fine-tuning step in w2s and in a PyTorch reference, same invocation.
    Bench(bench::BenchArgs),
    /// Serve weak-to-strong tasks as a benchmark: hidden test labels, a submission budget per
    /// caller, scores and a leaderboard kept in SQLite.
    Serve(serve::ServeArgs),
}

/// How long candle's element-wise pool spins before it parks (candle 0.11's variable).
const SPIN_LIMIT: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";

fn main() -> std::process::ExitCode {
    // Die quietly on a closed pipe (`w2s fetch --list | head`) like other Unix tools, instead of
    // panicking on the failed write.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    // Before any thread starts (rayon's pool below): every thread must inherit the blocked stop
    // signals. `w2s serve` stops through tokio's own handler (it holds no claims or temporary
    // files; its database is committed per request).
    if !matches!(cli.command, Command::Serve(_)) {
        w2s_assets::stop::install();
    }
    memory::keep_freed_memory();
    // The main thread, which runs every op of a step, joins rayon's pool as one of its workers:
    // a parallel op then splits its work with the other workers directly, instead of handing it
    // to them and sleeping until they finish (a futex wake-up each way, for every op).
    if let Err(e) = rayon::ThreadPoolBuilder::new()
        .use_current_thread()
        .build_global()
    {
        eprintln!("w2s: rayon's thread pool was already set up ({e}); going on with it");
    }
    // candle runs element-wise ops on a pool of its own whose threads spin 25,000 turns after
    // each op, taking a core from gemm's rayon pool meanwhile (3.9% of a MiniLM-L6 training
    // profile on 2 cores, 0.04% with this limit; docs/journal.md). A short spin makes them park
    // instead. A limit the user set is kept.
    if std::env::var_os(SPIN_LIMIT).is_none() {
        std::env::set_var(SPIN_LIMIT, "200");
    }
    // Errors say what failed and where; a library's stack trace inside one (candle attaches one to
    // its errors whenever RUST_BACKTRACE is set, as it often is in shells for panics) buries that
    // under internal frames. RUST_LIB_BACKTRACE, which std reads before RUST_BACKTRACE for error
    // backtraces only, turns them off unless the user set it: panics keep their backtraces, and
    // RUST_LIB_BACKTRACE=1 brings the errors' back.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    let default_level = if cli.quiet { "warn" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("W2S_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let result = match cli.command {
        Command::Fetch(args) => fetch::run(args, cli.quiet),
        Command::Data(cmd) => data::run(cmd),
        Command::Embed(args) => embed::run(args, cli.quiet),
        Command::Run(args) => run::run(*args, cli.quiet),
        Command::Sweep(args) => sweep::run(args, cli.quiet),
        Command::Scout(args) => scout::run(args, cli.quiet),
        Command::Report(args) => report::run(args, cli.quiet),
        Command::Bench(args) => bench::run(args, cli.quiet),
        Command::Serve(args) => serve::run(args, cli.quiet),
    };
    // A stop (SIGTERM, SIGINT) ends the process from its own thread, with its own exit code.
    w2s_assets::stop::wait_if_stopping();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
