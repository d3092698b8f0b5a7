//! `w2s serve`: weak-to-strong as a benchmark. Callers get the rows a student trains on with the
//! weak supervisor's labels, and the test rows without labels; they submit test predictions and
//! get back accuracy and PGR against fixed weak and ceiling baselines. Test labels never leave
//! the server, only the test split is ever scored, and each caller has a budget of submissions
//! per task, kept in SQLite with every submission (docs/serve.md).
//!
//! This crate serves tasks it is given; computing them (splits, weak labels, baselines) is the
//! experiment's job, wired by the CLI.
mod app;
pub mod config;
pub mod db;
mod page;
pub mod task;

pub use app::{serve, Server};
pub use config::{read_tasks, TaskSpec, Tokens};
pub use db::{Admitted, Db, Submission};
pub use task::{Accuracies, Baselines, Score, Task, TestRow, TrainRow};

use std::path::PathBuf;

/// Errors of the server's inputs and its database.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A task or tokens file is unreadable or malformed.
    #[error("{}: {message}", path.display())]
    Input {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        message: String,
    },
    /// The submissions database failed.
    #[error("database {}: {message}", path.display())]
    Db {
        /// The database file.
        path: PathBuf,
        /// SQLite's message.
        message: String,
    },
    /// The address could not be bound or served.
    #[error("serving on {addr}: {message}")]
    Net {
        /// The address.
        addr: String,
        /// The cause.
        message: String,
    },
}
