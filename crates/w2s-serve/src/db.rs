//! Submissions in SQLite: every accepted submission is committed (WAL, `synchronous = FULL`)
//! before its answer is sent, and budgets are counted from the rows, so a server killed and
//! restarted on the same file has lost neither. One connection behind a mutex: the budget check
//! and the insert of a submission happen under one lock, so concurrent callers cannot overspend.
use crate::ServeError;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A stored submission, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Submission {
    /// Its id.
    pub submission_id: i64,
    /// The task.
    pub task: String,
    /// The caller (the tokens file's name).
    pub caller: String,
    /// What the caller says it tried.
    pub name: String,
    /// Test accuracy, rounded to 0.001.
    pub accuracy: f64,
    /// PGR at the served split, rounded to 0.001.
    pub pgr: Option<f64>,
    /// Seconds since the Unix epoch.
    pub created: i64,
}

/// What [`Db::submit`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Admitted {
    /// Stored, with the submissions the caller has left on the task.
    Stored { submission_id: i64, left: usize },
    /// The caller's budget on the task was already spent; nothing was stored.
    OverBudget,
}

/// The submissions database.
pub struct Db {
    conn: Mutex<Connection>,
    path: PathBuf,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS submissions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task TEXT NOT NULL,
    caller TEXT NOT NULL,
    name TEXT NOT NULL,
    accuracy REAL NOT NULL,
    pgr REAL,
    created INTEGER NOT NULL,
    predictions TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS submissions_by_caller ON submissions (task, caller);
";

impl Db {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Db, ServeError> {
        let err = |e: rusqlite::Error| ServeError::Db {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let conn = Connection::open(path).map_err(err)?;
        // WAL: readers never block the writer; FULL: a commit is on disk before it returns.
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(ServeError::Db {
                path: path.to_path_buf(),
                message: format!("could not switch to WAL mode (the journal is {mode})"),
            });
        }
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000;")
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(Db {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
        })
    }

    fn err(&self, e: rusqlite::Error) -> ServeError {
        ServeError::Db {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while the lock was held cannot leave a half-written row: SQLite's transaction
        // was rolled back or committed, so the connection is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Submissions `caller` has made on `task`.
    pub fn used(&self, task: &str, caller: &str) -> Result<usize, ServeError> {
        let conn = self.lock();
        count(&conn, task, caller).map_err(|e| self.err(e))
    }

    /// Stores a scored submission unless `caller` has `budget` on `task` already; the check and
    /// the insert are one transaction under the lock.
    pub fn submit(
        &self,
        s: &Submission,
        predictions: &str,
        budget: usize,
    ) -> Result<Admitted, ServeError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let used = count(&tx, &s.task, &s.caller).map_err(|e| self.err(e))?;
        if used >= budget {
            return Ok(Admitted::OverBudget);
        }
        tx.execute(
            "INSERT INTO submissions (task, caller, name, accuracy, pgr, created, predictions)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                s.task,
                s.caller,
                s.name,
                s.accuracy,
                s.pgr,
                s.created,
                predictions
            ],
        )
        .map_err(|e| self.err(e))?;
        let submission_id = tx.last_insert_rowid();
        tx.commit().map_err(|e| self.err(e))?;
        Ok(Admitted::Stored {
            submission_id,
            left: budget - used - 1,
        })
    }

    /// Every submission on `task`, by `caller` when given, oldest first.
    pub fn submissions(
        &self,
        task: &str,
        caller: Option<&str>,
    ) -> Result<Vec<Submission>, ServeError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare(
                "SELECT id, task, caller, name, accuracy, pgr, created FROM submissions
                 WHERE task = ?1 AND (?2 IS NULL OR caller = ?2) ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![task, caller], |r| {
                Ok(Submission {
                    submission_id: r.get(0)?,
                    task: r.get(1)?,
                    caller: r.get(2)?,
                    name: r.get(3)?,
                    accuracy: r.get(4)?,
                    pgr: r.get(5)?,
                    created: r.get(6)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Each caller's best submission on `task` (highest accuracy, the earliest on a tie), best
    /// first.
    pub fn best(&self, task: &str) -> Result<Vec<Submission>, ServeError> {
        let mut all = self.submissions(task, None)?;
        // Oldest first already: a stable sort keeps the earliest of equal accuracies first.
        all.sort_by(|a, b| b.accuracy.total_cmp(&a.accuracy));
        let mut seen = std::collections::HashSet::new();
        all.retain(|s| seen.insert(s.caller.clone()));
        Ok(all)
    }

    /// The predictions stored with a submission (for audits).
    pub fn predictions(&self, submission_id: i64) -> Result<Option<String>, ServeError> {
        let conn = self.lock();
        conn.query_row(
            "SELECT predictions FROM submissions WHERE id = ?1",
            [submission_id],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| self.err(e))
    }
}

fn count(conn: &Connection, task: &str, caller: &str) -> rusqlite::Result<usize> {
    conn.query_row(
        "SELECT COUNT(*) FROM submissions WHERE task = ?1 AND caller = ?2",
        params![task, caller],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(caller: &str, accuracy: f64) -> Submission {
        Submission {
            submission_id: 0,
            task: "t".into(),
            caller: caller.into(),
            name: format!("{caller} at {accuracy}"),
            accuracy,
            pgr: Some(0.5),
            created: 1,
        }
    }

    #[test]
    fn budgets_and_best_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serve.db");
        {
            let db = Db::open(&path).unwrap();
            assert_eq!(
                db.submit(&sub("alice", 0.7), "{}", 2).unwrap(),
                Admitted::Stored {
                    submission_id: 1,
                    left: 1
                }
            );
            assert_eq!(
                db.submit(&sub("alice", 0.8), "{\"a\":1}", 2).unwrap(),
                Admitted::Stored {
                    submission_id: 2,
                    left: 0
                }
            );
            assert_eq!(
                db.submit(&sub("alice", 0.9), "{}", 2).unwrap(),
                Admitted::OverBudget
            );
            db.submit(&sub("bob", 0.8), "{}", 2).unwrap();
        }
        let db = Db::open(&path).unwrap();
        assert_eq!(db.used("t", "alice").unwrap(), 2);
        assert_eq!(db.used("t", "bob").unwrap(), 1);
        assert_eq!(db.used("other", "alice").unwrap(), 0);
        assert_eq!(
            db.submit(&sub("alice", 0.9), "{}", 2).unwrap(),
            Admitted::OverBudget
        );
        let best = db.best("t").unwrap();
        // alice's 0.8 came before bob's 0.8.
        let order: Vec<(&str, f64)> = best
            .iter()
            .map(|s| (s.caller.as_str(), s.accuracy))
            .collect();
        assert_eq!(order, [("alice", 0.8), ("bob", 0.8)]);
        assert_eq!(db.submissions("t", Some("alice")).unwrap().len(), 2);
        assert_eq!(db.predictions(2).unwrap().as_deref(), Some("{\"a\":1}"));
        assert_eq!(db.predictions(9).unwrap(), None);
    }

    #[test]
    fn a_file_that_is_not_a_database_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serve.db");
        std::fs::write(&path, vec![b'x'; 4096]).unwrap();
        let err = Db::open(&path).err().unwrap().to_string();
        assert!(err.contains("serve.db"), "{err}");
    }
}
