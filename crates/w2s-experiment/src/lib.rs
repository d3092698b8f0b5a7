//! The weak-to-strong experiment: the graph of stages (weak model, weak labels, ceiling, students,
//! chains), its content-addressed store, the metrics every run reports, and summaries over seeds.
pub mod config;
pub mod execute;
pub mod kclass;
pub mod methods;
pub mod metrics;
pub mod node;
pub mod plan;
pub mod record;
pub mod runner;
pub mod scout;
pub mod settings;
pub mod store;
pub mod summary;
pub mod sweep_file;
pub mod synthetic;

pub use config::{ExperimentConfig, FinetuneConfig, LabelForm, Mode, RunSpec};
pub use execute::{Executor, ExecutorError, Grid, Outcome, Stage};
pub use methods::{parse_methods, Method};
pub use plan::{InputKind, Missing, Plan};
pub use record::{read_runs, RunRecord};
pub use runner::{
    BenchmarkRows, Event, ExperimentError, LabelledRow, NodeCounts, Runner, TrainedNode, WeakRow,
};
pub use store::NodeStore;
pub use summary::{summarize, SummaryRow};
pub use sweep_file::SweepFile;
