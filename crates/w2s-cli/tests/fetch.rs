//! `w2s fetch` goes on past an asset it cannot fetch, and fails at the end naming every one. No
//! download: pip is pointed at an interpreter that does not exist, so each fetch fails at once.
use std::process::Command;

#[test]
fn one_failed_asset_does_not_stop_the_others_and_all_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_w2s"))
        .args(["--quiet", "fetch", "minilm-l3", "tweets"])
        .env("W2S_HOME", tmp.path().join("w2s-home"))
        .env("W2S_PYTHON", tmp.path().join("no-such-python"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "fetch succeeded without pip:\n{stderr}"
    );
    for name in ["minilm-l3", "tweets"] {
        assert!(
            stderr.contains(&format!("fetching {name}:")),
            "no error for {name}:\n{stderr}"
        );
    }
    assert!(
        stderr.contains("2 of 2 assets could not be fetched: minilm-l3, tweets"),
        "no summary:\n{stderr}"
    );
    // Nothing half-made is left in the cache for either.
    let cached = Command::new(env!("CARGO_BIN_EXE_w2s"))
        .args(["fetch", "--list"])
        .env("W2S_HOME", tmp.path().join("w2s-home"))
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&cached.stdout);
    for name in ["minilm-l3", "tweets"] {
        let line = list
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} not listed:\n{list}"));
        assert!(line.contains(" no "), "{name} listed as cached: {line}");
    }
}
