//! `w2s fetch` goes on past an asset it cannot fetch, and fails at the end naming every one; it
//! takes every name `w2s data list` shows. No download: pip is pointed at an interpreter that does
//! not exist, so each fetch fails at once.
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
        stderr.contains("2 of the models and datasets could not be had: minilm-l3, tweets"),
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

#[test]
fn every_command_data_list_suggests_names_something_fetch_takes() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("w2s-home");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_w2s"))
            .args(args)
            .env("W2S_HOME", &home)
            .env("W2S_PYTHON", tmp.path().join("no-such-python"))
            .output()
            .unwrap()
    };
    let list = run(&["data", "list"]);
    assert!(list.status.success());
    let list = String::from_utf8_lossy(&list.stdout);
    let suggested: Vec<&str> = list
        .lines()
        .filter_map(|l| l.split("`w2s fetch ").nth(1))
        .map(|rest| rest.trim_end_matches("`)"))
        .collect();
    let names: Vec<&str> = list
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    // An empty cache: every dataset is listed as not fetched, with its own name to fetch.
    assert_eq!(suggested, names, "{list}");
    assert!(names.contains(&"pang-lee-sentences") && names.contains(&"newsgroups-hardware"));
    for name in names {
        let out = run(&["--quiet", "fetch", name]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        // The name is taken: what fails is the download (pip does not exist here), unless the
        // set comes from Debian's archive (fashion-mnist, through apt-get), which can succeed.
        assert!(
            !stderr.contains("unknown model or dataset"),
            "{name}: {stderr}"
        );
        assert!(
            out.status.success() || stderr.contains("error: fetching "),
            "{name}: {stderr}"
        );
    }
    let out = run(&["fetch", "no-such-set"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown model or dataset 'no-such-set'"),
        "{stderr}"
    );
}
