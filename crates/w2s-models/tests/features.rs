//! Feature extraction is cached by key, reused on the second call, and rebuilt when corrupt.
use candle_core::Device;
use w2s_assets::Store;
use w2s_data::{Dataset, Example};

fn rows(d: &Dataset) -> w2s_models::Rows<'_> {
    w2s_models::Rows {
        name: &d.name,
        version: &d.version,
        texts: d.examples.iter().map(|e| e.text.as_str()).collect(),
    }
}
use w2s_models::{cached_features, feature_share, resolve, FeatureRequest, Share};

fn dataset(texts: &[&str]) -> Dataset {
    let rows = texts
        .iter()
        .enumerate()
        .map(|(i, t)| Example {
            id: i.to_string(),
            text: t.to_string(),
            label: (i % 2) as u8,
            group: i.to_string(),
            ..Default::default()
        })
        .collect();
    Dataset::new("unit-test", rows)
}

#[test]
fn second_call_reads_the_cache_and_matches() {
    let root = tempfile::tempdir().unwrap();
    let model = resolve("minilm-l3", &Store::open()).unwrap();
    let ds = dataset(&[
        "a short one",
        "a somewhat longer sentence about cats and dogs",
        "third",
        "fourth row here",
        "fifth",
    ]);
    let req = FeatureRequest {
        model: &model,
        dataset: rows(&ds),
        max_len: 128,
        batch_size: 2,
        dtype: w2s_models::WeightDtype::F32,
        chunk_rows: 2,
    };
    let mut calls = 0;
    let first = cached_features(root.path(), &req, &Device::Cpu, &mut |_| calls += 1).unwrap();
    assert!(!first.from_cache);
    assert_eq!(
        calls, 4,
        "once before the first batch, then after each of 3 (5 rows in 2s)"
    );
    assert_eq!((first.rows, first.dim), (5, 384));
    let second = cached_features(root.path(), &req, &Device::Cpu, &mut |_| {
        panic!("must not recompute")
    })
    .unwrap();
    assert!(second.from_cache);
    assert_eq!(first.values, second.values);
    // Length-sorted batching must give the same row as embedding it alone.
    let enc = w2s_models::Encoder::load(&model, &Device::Cpu).unwrap();
    let alone = enc
        .embed(&["a somewhat longer sentence about cats and dogs"], 128)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    for (a, b) in alone[0].iter().zip(&first.values[384..768]) {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
    // Another max length or other rows are another key.
    let other = FeatureRequest {
        max_len: 64,
        ..req.clone()
    };
    assert_ne!(other.key(), req.key());
    let ds2 = dataset(&["a short one"]);
    assert_ne!(
        FeatureRequest {
            dataset: rows(&ds2),
            ..req.clone()
        }
        .key(),
        req.key()
    );
    // A truncated cache file is detected and recomputed.
    std::fs::write(&first.path, b"garbage").unwrap();
    let third = cached_features(root.path(), &req, &Device::Cpu, &mut |_| {}).unwrap();
    assert!(!third.from_cache);
    assert_eq!(third.values, first.values);
}

#[test]
fn truncation_keeps_the_end_and_the_prefix() {
    let model = resolve("e5-small", &Store::open()).unwrap();
    let enc = w2s_models::Encoder::load(&model, &Device::Cpu).unwrap();
    let long = format!(
        "{} Question: is the answer at the end?",
        "filler words ".repeat(200)
    );
    let ids = enc.tokenizer.encode(&long, 32).unwrap();
    assert_eq!(ids.len(), 32);
    let full = enc.tokenizer.encode(&long, 10_000).unwrap();
    // [<s>] + "query:" prefix tokens ... then the last tokens of the text, then [</s>]
    assert_eq!(ids[..3], full[..3], "prefix kept");
    assert_eq!(ids[ids.len() - 12..], full[full.len() - 12..], "end kept");
}

#[test]
fn shares_of_a_real_model_assemble_the_bits_of_one_pass() {
    let root = tempfile::tempdir().unwrap();
    let model = resolve("minilm-l3", &Store::open()).unwrap();
    let texts: Vec<String> = (0..11)
        .map(|i| format!("row {i} {}", "with more words ".repeat(i % 4)))
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let ds = dataset(&refs);
    let req = FeatureRequest {
        model: &model,
        dataset: rows(&ds),
        max_len: 64,
        batch_size: 2,
        dtype: w2s_models::WeightDtype::F32,
        chunk_rows: 4,
    };
    let share = |index| Share {
        index,
        count: 2,
        offset: 0,
    };
    let first = feature_share(root.path(), &req, &Device::Cpu, share(1), &mut |_| {}).unwrap();
    // 11 rows in chunks of 4: share 1 of 2 holds chunk 1 (4 rows), share 0 chunks 0 and 2.
    assert_eq!((first.rows, first.computed, first.resumed), (4, 4, 0));
    assert!(first.features.is_none(), "share 0 is still missing");
    let mut reports = Vec::new();
    let second = feature_share(root.path(), &req, &Device::Cpu, share(0), &mut |p| {
        reports.push(p)
    })
    .unwrap();
    assert_eq!((reports[0].done, reports[0].total), (0, 7));
    let shared = second.features.expect("the last share assembles");
    // One uninterrupted pass in another folder.
    let other = tempfile::tempdir().unwrap();
    let whole = cached_features(other.path(), &req, &Device::Cpu, &mut |_| {}).unwrap();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&shared.values), bits(&whole.values));
    // Read back by the ordinary path, without computing.
    let again =
        cached_features(root.path(), &req, &Device::Cpu, &mut |_| panic!("cached")).unwrap();
    assert!(again.from_cache);
    assert_eq!(bits(&again.values), bits(&whole.values));
}
