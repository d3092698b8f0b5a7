//! `w2s embed` killed with SIGKILL between (or inside) chunk commits resumes where it stopped and
//! gives features bit-identical to one uninterrupted pass, computing fewer tokens than a full pass.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A W2S_HOME of its own whose only asset is the real cache's minilm-l3 (linked, not copied), so
/// that the features this test writes stay out of the user's cache.
fn home_with_minilm(dir: &Path) -> PathBuf {
    let real = w2s_assets::Store::open();
    let model = real.asset_dir("minilm-l3");
    assert!(
        real.is_cached("minilm-l3"),
        "minilm-l3 is not fetched: run `w2s fetch minilm-l3` (this test cannot check resuming without a model)"
    );
    let home = dir.join("home");
    std::fs::create_dir_all(home.join("assets")).unwrap();
    std::os::unix::fs::symlink(model, home.join("assets/minilm-l3")).unwrap();
    home
}

fn embed(home: &Path, data: &Path, save: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_w2s"));
    c.env("W2S_HOME", home)
        .env("W2S_DEVICE", "cpu")
        .args(["--quiet", "embed", "--model", "minilm-l3", "--data"])
        .arg(data)
        .args([
            "--batch-size",
            "8",
            "--chunk-rows",
            "8",
            "--max-len",
            "64",
            "--json",
            "--save",
        ])
        .arg(save);
    c
}

fn chunk_files(home: &Path) -> usize {
    let Ok(models) = std::fs::read_dir(home.join("features/minilm-l3")) else {
        return 0;
    };
    models
        .flatten()
        .filter(|e| e.path().is_dir())
        .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
        .filter(|f| f.file_name().to_string_lossy().starts_with("chunk-"))
        .count()
}

fn json(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_killed_embedding_resumes_to_the_bits_of_a_clean_pass() {
    let dir = tempfile::tempdir().unwrap();
    let home = home_with_minilm(dir.path());
    // 3,000 rows of varied length (about 10 to 40 tokens).
    let data = dir.path().join("rows.jsonl");
    let words = [
        "weak", "strong", "label", "student", "teacher", "gap", "probe", "elicit",
    ];
    let mut body = String::new();
    for i in 0..3000usize {
        let text: Vec<&str> = (0..(i * 7 % 31 + 5))
            .map(|k| words[(i + k * k) % 8])
            .collect();
        body.push_str(&serde_json::json!({"text": text.join(" "), "label": i % 2}).to_string());
        body.push('\n');
    }
    std::fs::write(&data, body).unwrap();

    // Killed three times, after different amounts of progress.
    let killed_home = home.clone();
    for wait_for in [2, 40, 120] {
        let mut child = embed(&killed_home, &data, &dir.path().join("unused.npy"))
            .spawn()
            .unwrap();
        let start = Instant::now();
        while chunk_files(&killed_home) < wait_for && start.elapsed() < Duration::from_secs(120) {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "the embedding finished before it could be killed (after {wait_for} chunks); the test checks nothing"
        );
    }
    let resumed_chunks = chunk_files(&killed_home);
    assert!(
        resumed_chunks >= 120,
        "{resumed_chunks} chunks survived the kills"
    );
    let resumed = json(
        &embed(&killed_home, &data, &dir.path().join("resumed.npy"))
            .output()
            .unwrap(),
    );
    assert_eq!(resumed["rows"], 3000);
    let resumed_rows = resumed["resumed"].as_u64().unwrap();
    assert!(resumed_rows >= 120 * 8, "{resumed}");
    assert_eq!(
        chunk_files(&killed_home),
        0,
        "the chunks are removed once assembled"
    );

    // One uninterrupted pass in a fresh home.
    let clean_home = home_with_minilm(&dir.path().join("clean"));
    let clean = json(
        &embed(&clean_home, &data, &dir.path().join("clean.npy"))
            .output()
            .unwrap(),
    );
    assert_eq!(clean["resumed"], 0);
    assert!(
        resumed["tokens"].as_u64().unwrap() < clean["tokens"].as_u64().unwrap(),
        "the rerun embeds only what the kills left: {} against {} tokens",
        resumed["tokens"],
        clean["tokens"]
    );
    let a = std::fs::read(dir.path().join("resumed.npy")).unwrap();
    let b = std::fs::read(dir.path().join("clean.npy")).unwrap();
    assert_eq!(a.len(), b.len());
    assert!(a == b, "resumed features differ from a clean pass's");
}
