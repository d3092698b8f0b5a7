//! The on-disk cache under `$W2S_HOME`: layout, locking, atomic writes, checksums.
//!
//! Layout: `downloads/` holds the verified registry packages, `assets/<name>/` the converted
//! artefacts, and other crates add their own folders (features, runs). Nothing is ever written in
//! place: files go to a temporary name beside their destination and are renamed once complete, so
//! a killed process leaves either the old file or the new one, never half of one.
use crate::error::{IoContext, Result};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Root of the cache: `$W2S_HOME`, or `~/.cache/w2s`.
pub fn home() -> PathBuf {
    if let Some(h) = std::env::var_os("W2S_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    let base = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    base.join(".cache").join("w2s")
}

/// A held exclusive lock on the cache; released on drop.
#[derive(Debug)]
pub struct CacheLock {
    _file: File,
}

/// Takes the cache-wide writer lock, waiting for any other process that holds it.
pub fn lock(root: &Path) -> Result<CacheLock> {
    std::fs::create_dir_all(root).at("cannot create cache folder", root)?;
    let path = root.join(".lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .at("cannot open lock file", &path)?;
    if file.try_lock().is_err() {
        tracing::info!(
            "waiting for another w2s process to release {}",
            path.display()
        );
        file.lock().at("cannot lock", &path)?;
    }
    Ok(CacheLock { _file: file })
}

/// This host's name (`/proc/sys/kernel/hostname`, then `$HOSTNAME`), for names that must differ
/// between machines sharing a filesystem: pids collide across hosts.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into())
}

/// 64 random bits: std's hasher keys are drawn from the OS per `RandomState`, so this needs no
/// dependency and differs between calls, threads and processes.
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// A temporary sibling path of `dest`, unique to this write: it names the host, the pid and a
/// random suffix, so that processes on several hosts sharing a folder (and threads of one
/// process) never write into one temporary file.
///
/// The path is remembered until [`temp_done`]: a stop ([`crate::stop`]) removes the temporary
/// files of writes still under way.
pub fn temp_sibling(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dest.with_file_name(format!(
        ".{name}.tmp-{}-{}-{:016x}",
        hostname(),
        std::process::id(),
        random_u64()
    ));
    if let Ok(mut live) = LIVE_TEMPS.lock() {
        live.insert(tmp.clone());
    }
    tmp
}

/// Temporary paths of writes under way in this process.
static LIVE_TEMPS: std::sync::Mutex<std::collections::BTreeSet<PathBuf>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// A temporary path from [`temp_sibling`] that was renamed into place or removed.
pub fn temp_done(tmp: &Path) {
    if let Ok(mut live) = LIVE_TEMPS.lock() {
        live.remove(tmp);
    }
}

/// Removes the temporary files (or folders) of writes under way; returns how many it removed.
pub fn remove_live_temps() -> usize {
    let live = LIVE_TEMPS
        .lock()
        .map(|mut l| std::mem::take(&mut *l))
        .unwrap_or_default();
    live.iter()
        .filter(|p| {
            if p.is_dir() {
                std::fs::remove_dir_all(p).is_ok()
            } else {
                std::fs::remove_file(p).is_ok()
            }
        })
        .count()
}

/// Removes, below `dir`, what processes of this host that are gone left behind: temporary files
/// (or folders) of [`temp_sibling`] writes and claims they held. A process killed with SIGKILL
/// leaves both; neither is ever read as a result, but they would pile up, and a claim of a node
/// that was finished just before the kill would never be broken. Files of live processes and of
/// other hosts are left alone. Returns how many it removed.
pub fn remove_leftovers(dir: &Path) -> usize {
    let host = hostname();
    let mut removed = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
            let gone = if let Some(owner) = temp_owner(&name) {
                owner.0 == host && !crate::claim::pid_alive(owner.1)
            } else if name.ends_with(".claim") && !is_dir {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                crate::claim::held_by_a_gone_process(&text)
            } else {
                if is_dir {
                    stack.push(path);
                }
                continue;
            };
            if gone {
                let ok = if is_dir {
                    std::fs::remove_dir_all(&path).is_ok()
                } else {
                    std::fs::remove_file(&path).is_ok()
                };
                removed += usize::from(ok);
            }
        }
    }
    removed
}

/// The host and pid in a [`temp_sibling`] name (`.NAME.tmp-HOST-PID-RANDOM`).
fn temp_owner(name: &str) -> Option<(&str, u32)> {
    let (_, tail) = name.rsplit_once(".tmp-")?;
    let mut parts = tail.rsplitn(3, '-');
    let random = parts.next()?;
    let pid = parts.next()?.parse().ok()?;
    let host = parts.next()?;
    (random.len() == 16 && random.chars().all(|c| c.is_ascii_hexdigit())).then_some((host, pid))
}

/// Writes `bytes` to `dest` through a temporary file and a rename, creating parent folders.
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(dest, |f| f.write_all(bytes))
}

/// Like [`write_atomic`], with a closure that streams the content.
pub fn write_atomic_with(
    dest: &Path,
    fill: impl FnOnce(&mut std::io::BufWriter<File>) -> std::io::Result<()>,
) -> Result<()> {
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).at("cannot create folder", parent)?;
    }
    let tmp = temp_sibling(dest);
    let result = (|| {
        let file = File::create(&tmp)?;
        let mut w = std::io::BufWriter::new(file);
        fill(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, dest)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    temp_done(&tmp);
    result.at("cannot write", dest)
}

/// Hex sha256 of a file's content.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).at("cannot open", path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).at("cannot read", path)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Hex sha256 of a byte slice.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_known_vector() {
        assert_eq!(
            sha256_bytes(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn leftovers_of_gone_processes_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let host = hostname();
        // A pid that is not running: the largest pid this kernel hands out, plus one.
        let gone = 4_194_305u32;
        let me = std::process::id();
        let sub = dir.path().join("store").join("models");
        std::fs::create_dir_all(&sub).unwrap();
        let write = |name: String, text: &str| std::fs::write(sub.join(name), text).unwrap();
        write(format!(".a.json.tmp-{host}-{gone}-{:016x}", 7), "half");
        write(
            format!(".b.json.tmp-{host}-{me}-{:016x}", 8),
            "mine, under way",
        );
        write(
            format!(".c.json.tmp-other-host-{gone}-{:016x}", 9),
            "another host's",
        );
        write(
            "d.claim".into(),
            &format!("{host} {gone} 00000000000000aa\n"),
        );
        write("e.claim".into(), &format!("{host} {me} 00000000000000bb\n"));
        write(
            "f.claim".into(),
            &format!("other-host {gone} 00000000000000cc\n"),
        );
        write("g.json".into(), "a result");
        std::fs::create_dir(sub.join(format!(".h.tmp-{host}-{gone}-{:016x}", 10))).unwrap();
        assert_eq!(remove_leftovers(dir.path()), 3);
        let mut left: Vec<String> = std::fs::read_dir(&sub)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                format!(".b.json.tmp-{host}-{me}-{:016x}", 8),
                format!(".c.json.tmp-other-host-{gone}-{:016x}", 9),
                "e.claim".into(),
                "f.claim".into(),
                "g.json".into()
            ]
        );
        assert_eq!(
            temp_owner(".x.tmp-my-host-12-00000000000000ff"),
            Some(("my-host", 12))
        );
        assert_eq!(temp_owner("x.json"), None);
    }

    #[test]
    fn writes_under_way_are_remembered_until_done() {
        let dir = tempfile::tempdir().unwrap();
        let under_way = temp_sibling(&dir.path().join("a.json"));
        let finished = temp_sibling(&dir.path().join("b.json"));
        temp_done(&finished);
        write_atomic(&dir.path().join("c.json"), b"c").unwrap();
        // Other tests of this binary write too: look only at this folder's entries.
        let live: Vec<PathBuf> = LIVE_TEMPS
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.starts_with(dir.path()))
            .cloned()
            .collect();
        assert_eq!(live, [under_way]);
    }

    #[test]
    fn atomic_write_replaces_whole_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("sub").join("x.bin");
        write_atomic(&dest, b"first").unwrap();
        write_atomic(&dest, b"second").unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(dest.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "temp files left behind: {names:?}");
        assert_eq!(sha256_file(&dest).unwrap(), sha256_bytes(b"second"));
    }

    #[test]
    fn failed_fill_keeps_old_content() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("x.bin");
        write_atomic(&dest, b"old").unwrap();
        let err = write_atomic_with(&dest, |w| {
            w.write_all(b"partial")?;
            Err(std::io::Error::other("killed"))
        });
        assert!(err.is_err());
        assert_eq!(std::fs::read(&dest).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
