//! The server's inputs as files: the task file (TOML, one `[[task]]` per task) and the tokens file
//! (`name token` per line). Both are parsed into types here, once, with errors naming the file
//! and the place.
use crate::ServeError;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

/// One task of the task file, as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// The task's id in the API (`/v1/tasks/{id}`): letters, digits, `-`, `_` and `.`.
    pub id: String,
    /// A built-in dataset name or a user file.
    pub dataset: String,
    /// The weak supervisor.
    pub weak: String,
    /// The strong student.
    pub strong: String,
    /// Rows kept of the dataset (balanced first, as `w2s run` does).
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
    /// The served split's seed; the baselines use 5 seeds from it.
    #[serde(default)]
    pub seed: u64,
    /// The naive student's method (a `w2s run --method` name).
    #[serde(default = "default_method")]
    pub method: String,
}

fn default_max_rows() -> usize {
    2000
}

fn default_method() -> String {
    "xent".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskFile {
    task: Vec<TaskSpec>,
}

/// Reads a task file: at least one task, ids unique and URL-safe.
pub fn read_tasks(path: &Path) -> Result<Vec<TaskSpec>, ServeError> {
    let bad = |message: String| ServeError::Input {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let file: TaskFile = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
    if file.task.is_empty() {
        return Err(bad("no [[task]]".into()));
    }
    let mut seen = HashSet::new();
    for t in &file.task {
        let safe = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if t.id.is_empty() || !t.id.chars().all(safe) {
            return Err(bad(format!(
                "task id {:?}: use letters, digits, '-', '_' and '.' only",
                t.id
            )));
        }
        if !seen.insert(t.id.as_str()) {
            return Err(bad(format!("task id {:?} is used twice", t.id)));
        }
        if t.max_rows == 0 {
            return Err(bad(format!("task {}: max_rows must be at least 1", t.id)));
        }
    }
    Ok(file.task)
}

/// Callers by token: each token names one caller, whose budget is counted by that name.
#[derive(Debug, Clone, PartialEq)]
pub struct Tokens {
    by_token: BTreeMap<String, String>,
}

impl Tokens {
    /// Parses `name token` lines; blank lines and lines starting with `#` are skipped. Names and
    /// tokens must each be unique, and a token at least 8 characters long.
    pub fn parse(text: &str, path: &Path) -> Result<Tokens, ServeError> {
        let mut by_token = BTreeMap::new();
        let mut names = HashSet::new();
        for (i, line) in text.lines().enumerate() {
            let bad = |message: String| ServeError::Input {
                path: path.to_path_buf(),
                message: format!("line {}: {message}", i + 1),
            };
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [name, token] = fields[..] else {
                return Err(bad(format!(
                    "expected `name token`, found {} fields",
                    fields.len()
                )));
            };
            if token.len() < 8 {
                return Err(bad(format!("the token of {name} is under 8 characters")));
            }
            if !names.insert(name.to_string()) {
                return Err(bad(format!("name {name} appears twice")));
            }
            if by_token
                .insert(token.to_string(), name.to_string())
                .is_some()
            {
                return Err(bad(format!("the token of {name} is another caller's too")));
            }
        }
        if by_token.is_empty() {
            return Err(ServeError::Input {
                path: path.to_path_buf(),
                message: "no tokens".into(),
            });
        }
        Ok(Tokens { by_token })
    }

    /// Reads a tokens file.
    pub fn read(path: &Path) -> Result<Tokens, ServeError> {
        let text = std::fs::read_to_string(path).map_err(|e| ServeError::Input {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Tokens::parse(&text, path)
    }

    /// One caller, `name`, with a fresh random token (for a server started without a tokens
    /// file); the token is returned to be shown to whoever started it.
    pub fn single(name: &str) -> (Tokens, String) {
        use rand::Rng;
        let token: String = rand::thread_rng()
            .sample_iter(&rand::distributions::Alphanumeric)
            .take(32)
            .map(char::from)
            .collect();
        let by_token = BTreeMap::from([(token.clone(), name.to_string())]);
        (Tokens { by_token }, token)
    }

    /// The caller a token names.
    pub fn caller(&self, token: &str) -> Option<&str> {
        self.by_token.get(token).map(String::as_str)
    }

    /// How many callers there are.
    pub fn len(&self) -> usize {
        self.by_token.len()
    }

    /// Never true: a `Tokens` holds at least one caller.
    pub fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_and_refuse() {
        let p = Path::new("tokens.txt");
        let t = Tokens::parse("# callers\nalice  aaaaaaaa11\n\nbob bbbbbbbb22\n", p).unwrap();
        assert_eq!(t.caller("aaaaaaaa11"), Some("alice"));
        assert_eq!(t.caller("bbbbbbbb22"), Some("bob"));
        assert_eq!(t.caller("aaaaaaaa1"), None);
        assert_eq!(t.len(), 2);
        let err = |text: &str| Tokens::parse(text, p).unwrap_err().to_string();
        assert!(err("alice\n").contains("tokens.txt: line 1: expected `name token`"));
        assert!(err("a aaaaaaaa11\nb c d\n").contains("line 2"));
        assert!(err("a short\n").contains("under 8"));
        assert!(err("a aaaaaaaa11\na bbbbbbbb22\n").contains("appears twice"));
        assert!(err("a aaaaaaaa11\nb aaaaaaaa11\n").contains("another caller's"));
        assert!(err("# none\n").contains("no tokens"));
        let (one, token) = Tokens::single("local");
        assert_eq!(one.caller(&token), Some("local"));
        assert_eq!(token.len(), 32);
    }

    #[test]
    fn task_files_parse_and_refuse() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tasks.toml");
        let write = |text: &str| std::fs::write(&path, text).unwrap();
        write(
            "[[task]]\nid = \"sarcasm\"\ndataset = \"data/s.jsonl\"\nweak = \"minilm-l3\"\n\
             strong = \"e5-small\"\nmax_rows = 500\nseed = 3\n\n[[task]]\nid = \"t2\"\n\
             dataset = \"tweets\"\nweak = \"a\"\nstrong = \"b\"\n",
        );
        let tasks = read_tasks(&path).unwrap();
        assert_eq!(tasks.len(), 2);
        assert_eq!(tasks[0].max_rows, 500);
        assert_eq!(tasks[0].seed, 3);
        assert_eq!(tasks[1].max_rows, 2000);
        assert_eq!(tasks[1].method, "xent");
        let err = |text: &str| {
            write(text);
            read_tasks(&path).unwrap_err().to_string()
        };
        let one = "dataset = \"d\"\nweak = \"a\"\nstrong = \"b\"\n";
        assert!(err(&format!("[[task]]\nid = \"a b\"\n{one}")).contains("letters, digits"));
        assert!(err(&format!(
            "[[task]]\nid = \"x\"\n{one}[[task]]\nid = \"x\"\n{one}"
        ))
        .contains("used twice"));
        assert!(err(&format!("[[task]]\nid = \"x\"\nwieght = 1\n{one}")).contains("wieght"));
        assert!(err("task = []\n").contains("no [[task]]"));
        assert!(err(&format!("[[task]]\nid = \"x\"\nmax_rows = 0\n{one}")).contains("max_rows"));
    }
}
