//! Claims: "this process is computing that file", so that several workers sharing a folder (on one
//! host, or on several hosts over NFS) compute each artefact once.
//!
//! A claim is a small file created with `O_EXCL` (`create_new`), which is atomic on local
//! filesystems and on NFSv3+; `flock` is not reliable on network filesystems. It holds the
//! holder's host, pid and a random id, and the holder touches it every [`HEARTBEAT`] from a
//! background thread. Another process treats it as stale, removes it and claims in turn, when the
//! holder is on the same host and its process is gone, or when the file has not been touched for
//! the staleness timeout (`W2S_CLAIM_STALE_SECS`, default 120 s), which covers a holder on
//! another host that was killed.
//!
//! Claims only save work: the artefact itself is always written by a temporary file and a
//! rename, so two processes that do compute the same thing (after a stale claim was broken by
//! two at once) write the same bytes and nothing is corrupt.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};
use std::time::{Duration, SystemTime};

/// How often a holder touches its claims.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// The staleness timeout: `W2S_CLAIM_STALE_SECS`, or 120 s (eight missed heartbeats).
pub fn stale_after() -> Duration {
    std::env::var("W2S_CLAIM_STALE_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(120))
}

/// The claims this process holds, touched by the heartbeat thread.
static HELD: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static HEARTBEAT_THREAD: Once = Once::new();

/// A held claim; dropping it removes the file.
#[derive(Debug)]
pub struct Claim {
    path: PathBuf,
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Ok(mut held) = HELD.lock() {
            held.retain(|p| p != &self.path);
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Claim {
    /// The claim file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// What [`try_claim`] found.
#[derive(Debug)]
pub enum Attempt {
    /// The claim is ours.
    Taken(Claim),
    /// Another live process holds it; the text says who (`host pid id`).
    Held(String),
}

/// The text a claim file holds: host, pid and a random id.
fn holder_text() -> String {
    format!(
        "{} {} {:016x}\n",
        crate::cache::hostname(),
        std::process::id(),
        crate::cache::random_u64()
    )
}

/// True when a process `pid` runs on this host (a zombie counts as gone).
pub(crate) fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(status) => !status
            .lines()
            .any(|l| l.starts_with("State:") && l.contains("zombie")),
        // Without /proc (not Linux) the timeout alone decides.
        Err(_) => !Path::new("/proc/self").exists(),
    }
}

/// Why the claim with this text and modification time is stale, if it is.
fn staleness(text: &str, modified: Option<SystemTime>, stale_after: Duration) -> Option<String> {
    if held_by_a_gone_process(text) {
        return Some(format!(
            "its process on this host is gone ({})",
            text.trim()
        ));
    }
    let age = modified.and_then(|m| SystemTime::now().duration_since(m).ok());
    match age {
        Some(age) if age > stale_after => Some(format!(
            "it was last touched {}s ago (timeout {}s)",
            age.as_secs(),
            stale_after.as_secs()
        )),
        _ => None,
    }
}

/// True when a claim's text names a holder on this host whose process is gone.
pub fn held_by_a_gone_process(text: &str) -> bool {
    let mut parts = text.split_whitespace();
    match (
        parts.next(),
        parts.next().and_then(|p| p.parse::<u32>().ok()),
    ) {
        (Some(host), Some(pid)) => host == crate::cache::hostname() && !pid_alive(pid),
        _ => false,
    }
}

/// Removes every claim this process holds (a stop: [`crate::stop`]); returns how many.
pub fn release_all() -> usize {
    release_where(|_| true)
}

/// Removes the held claims whose path `pick` accepts.
fn release_where(pick: impl Fn(&Path) -> bool) -> usize {
    let picked: Vec<PathBuf> = match HELD.lock() {
        Ok(mut held) => {
            let (picked, kept) = std::mem::take(&mut *held)
                .into_iter()
                .partition(|p| pick(p));
            *held = kept;
            picked
        }
        Err(_) => Vec::new(),
    };
    picked
        .iter()
        .filter(|p| std::fs::remove_file(p).is_ok())
        .count()
}

fn start_heartbeat() {
    HEARTBEAT_THREAD.call_once(|| {
        let spawned = std::thread::Builder::new()
            .name("w2s-claims".into())
            .spawn(|| loop {
                std::thread::sleep(HEARTBEAT);
                let held = HELD.lock().map(|h| h.clone()).unwrap_or_default();
                for path in held {
                    if let Ok(f) = std::fs::File::options().append(true).open(&path) {
                        let _ = f.set_modified(SystemTime::now());
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot start the claim heartbeat ({e}): long claims may be broken");
        }
    });
}

/// Tries to claim `path` once, breaking a stale claim first.
pub fn try_claim(path: &Path) -> std::io::Result<Attempt> {
    try_claim_with(path, stale_after())
}

/// [`try_claim`] with an explicit staleness timeout.
pub fn try_claim_with(path: &Path, stale_after: Duration) -> std::io::Result<Attempt> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    for _ in 0..3 {
        match create_with_holder(path) {
            Ok(()) => return hold(path, crate::stop::stopping).map(Attempt::Taken),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
                // An empty claim may be one just created by the `O_EXCL` fallback, its text not
                // written yet: held, unless it has stayed empty past a grace period.
                let stale = if text.is_empty() {
                    empty_staleness(modified)
                } else {
                    staleness(&text, modified, stale_after)
                };
                match stale {
                    Some(why) => {
                        tracing::warn!("{}: breaking a stale claim: {why}", path.display());
                        break_stale(path, &text);
                    }
                    _ => return Ok(Attempt::Held(text.trim().to_string())),
                }
            }
            Err(e) => return Err(e),
        }
    }
    let text = std::fs::read_to_string(path).unwrap_or_default();
    Ok(Attempt::Held(text.trim().to_string()))
}

/// Adds the claim file just created at `path` to the claims this process holds, unless a stop
/// has begun: then the file is removed and the claim refused. The check and the push happen
/// under the lock [`release_all`] takes, and a stop sets its flag before releasing, so a claim
/// taken while a stop releases the others is either released by it or never held (a worker's
/// main thread used to create one just after its stop thread had released all, and leave it).
fn hold(path: &Path, stopping: impl Fn() -> bool) -> std::io::Result<Claim> {
    let mut held = HELD
        .lock()
        .map_err(|_| std::io::Error::other("claim list poisoned"))?;
    if stopping() {
        drop(held);
        let _ = std::fs::remove_file(path);
        return Err(std::io::Error::other("stopping: no new claims"));
    }
    held.push(path.to_path_buf());
    drop(held);
    start_heartbeat();
    Ok(Claim {
        path: path.to_path_buf(),
    })
}

/// Creates the claim file with its holder's text in one step: the text goes to a temporary file
/// that is then hard-linked to `path`, which fails if `path` exists (atomic on local filesystems
/// and NFS). A claim file is thus never seen empty, and a process killed while claiming leaves no
/// empty claim (the soak test found one, which held a sweep until the claim timeout).
/// Filesystems without hard links get `O_EXCL` and a write, as before.
fn create_with_holder(path: &Path) -> std::io::Result<()> {
    let tmp = crate::cache::temp_sibling(path);
    // Written, linked, then removed whatever happened; a failed write (a full disk) is the
    // error, with nothing left behind.
    let written = std::fs::write(&tmp, holder_text());
    let linked = written.as_ref().map(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    crate::cache::temp_done(&tmp);
    match linked {
        Err(_) => written,
        Ok(Err(e)) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            let mut f = std::fs::File::options()
                .write(true)
                .create_new(true)
                .open(path)?;
            f.write_all(holder_text().as_bytes()).inspect_err(|_| {
                let _ = std::fs::remove_file(path);
            })
        }
        Ok(other) => other,
    }
}

/// Why an empty claim is stale, if it is: one left by a process killed between creating and
/// writing it (the `O_EXCL` fallback, or an earlier w2s), once no live writer could still be
/// writing it.
fn empty_staleness(modified: Option<SystemTime>) -> Option<String> {
    let age = modified.and_then(|m| SystemTime::now().duration_since(m).ok())?;
    (age > EMPTY_GRACE).then(|| format!("it has been empty for {}s", age.as_secs()))
}

/// How long an empty claim may be in the middle of being written.
const EMPTY_GRACE: Duration = Duration::from_secs(10);

/// Removes a stale claim: renamed aside first, so that of two processes breaking it at once only
/// one removes it, and a fresh claim taken meanwhile (other text) is put back.
fn break_stale(path: &Path, seen: &str) {
    let aside = crate::cache::temp_sibling(path);
    if std::fs::rename(path, &aside).is_err() {
        return;
    }
    let moved = std::fs::read_to_string(&aside).unwrap_or_default();
    if moved != seen {
        // Not the claim we judged stale: put it back unless a newer one took its place.
        let _ = std::fs::hard_link(&aside, path);
    }
    let _ = std::fs::remove_file(&aside);
    crate::cache::temp_done(&aside);
}

/// Waits until `done()` holds or the claim on `path` is ours: `Ok(None)` when another process
/// produced the artefact meanwhile, `Ok(Some(claim))` when this process should compute it (the
/// caller checks `done()` once more: it may have appeared just before the claim was taken).
pub fn claim_or_wait(
    path: &Path,
    done: &dyn Fn() -> bool,
    on_wait: &mut dyn FnMut(&str),
) -> std::io::Result<Option<Claim>> {
    let stale = stale_after();
    let mut delay = Duration::from_millis(200);
    let mut told = false;
    loop {
        if done() {
            return Ok(None);
        }
        match try_claim_with(path, stale)? {
            Attempt::Taken(c) => return Ok(Some(c)),
            Attempt::Held(holder) => {
                if !told {
                    on_wait(&holder);
                    told = true;
                }
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_created_while_stopping_is_removed_not_held() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("late.claim");
        create_with_holder(&path).unwrap();
        let err = hold(&path, || true).unwrap_err();
        assert!(err.to_string().contains("stopping"), "{err}");
        assert!(!path.exists());
        assert!(!HELD.lock().unwrap().contains(&path));
        // Not stopping: held, and released on drop.
        create_with_holder(&path).unwrap();
        let claim = hold(&path, || false).unwrap();
        assert!(HELD.lock().unwrap().contains(&path));
        drop(claim);
        assert!(!path.exists());
    }

    #[test]
    fn one_holder_at_a_time_and_release_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.claim");
        let Attempt::Taken(claim) = try_claim(&path).unwrap() else {
            panic!("a free claim is taken");
        };
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(&std::process::id().to_string()), "{text}");
        assert!(matches!(try_claim(&path).unwrap(), Attempt::Held(_)));
        drop(claim);
        assert!(!path.exists());
        assert!(matches!(try_claim(&path).unwrap(), Attempt::Taken(_)));
    }

    #[test]
    fn a_claim_is_never_empty_and_an_old_empty_one_is_broken() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.claim");
        let Attempt::Taken(claim) = try_claim(&path).unwrap() else {
            panic!("not taken")
        };
        assert!(!std::fs::read_to_string(&path).unwrap().is_empty());
        drop(claim);
        // An empty claim (a process killed between O_EXCL and its write): held while fresh...
        std::fs::write(&path, "").unwrap();
        assert!(matches!(try_claim(&path).unwrap(), Attempt::Held(_)));
        // ...and broken once it has been empty past the grace period.
        let old = SystemTime::now() - EMPTY_GRACE - Duration::from_secs(1);
        std::fs::File::options()
            .append(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert!(matches!(try_claim(&path).unwrap(), Attempt::Taken(_)));
        // No temporary file of the claiming is left beside it.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(
            names.len(),
            0,
            "the dropped claim removed its file, and nothing else is left"
        );
    }

    #[test]
    fn a_release_removes_the_claims_this_process_holds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("held.claim");
        let Attempt::Taken(claim) = try_claim(&path).unwrap() else {
            panic!("not taken")
        };
        assert!(path.exists());
        // Other tests of this binary hold claims too: release only this folder's.
        assert_eq!(release_where(|p| p.starts_with(dir.path())), 1);
        assert!(!path.exists());
        drop(claim);
    }

    #[test]
    fn a_claim_of_a_dead_process_on_this_host_is_broken() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.claim");
        // A finished child's pid, reaped: no such process any more.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let host = crate::cache::hostname();
        std::fs::write(&path, format!("{host} {pid} 0\n")).unwrap();
        assert!(matches!(try_claim(&path).unwrap(), Attempt::Taken(_)));
        // A live holder on this host (this process) is respected.
        std::fs::write(&path, format!("{host} {} 0\n", std::process::id())).unwrap();
        assert!(matches!(
            try_claim_with(&path, Duration::from_secs(3600)).unwrap(),
            Attempt::Held(_)
        ));
    }

    #[test]
    fn a_claim_from_another_host_is_broken_after_the_timeout_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.claim");
        std::fs::write(&path, "elsewhere 1 0\n").unwrap();
        let hour = Duration::from_secs(3600);
        assert!(matches!(
            try_claim_with(&path, hour).unwrap(),
            Attempt::Held(h) if h == "elsewhere 1 0"
        ));
        let old = SystemTime::now() - Duration::from_secs(600);
        std::fs::File::options()
            .append(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert!(matches!(
            try_claim_with(&path, Duration::from_secs(300)).unwrap(),
            Attempt::Taken(_)
        ));
    }

    #[test]
    fn waiting_ends_when_the_artefact_appears() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.claim");
        let target = dir.path().join("x.json");
        std::fs::write(
            &path,
            format!("{} {} 0\n", crate::cache::hostname(), std::process::id()),
        )
        .unwrap();
        let t = target.clone();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            std::fs::write(&t, b"{}").unwrap();
        });
        let mut waited = Vec::new();
        let got = claim_or_wait(&path, &|| target.exists(), &mut |h| {
            waited.push(h.to_string())
        })
        .unwrap();
        writer.join().unwrap();
        assert!(got.is_none(), "the artefact appeared: nothing to claim");
        assert_eq!(waited.len(), 1, "told once who holds it");
    }
}
