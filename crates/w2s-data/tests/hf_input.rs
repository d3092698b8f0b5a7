//! Hugging Face datasets files as input: a Parquet file and a `save_to_disk` folder written by the
//! `datasets` library (tests/reference/hf-data/make.py), with the columns chosen by name.
use std::path::PathBuf;
use w2s_assets::Store;
use w2s_data::Dataset;

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/reference/hf-data")
        .join(name)
        .display()
        .to_string()
}

fn load(reference: &str) -> Result<Dataset, w2s_data::DataError> {
    w2s_data::load(reference, &Store::open())
}

fn rows(ds: &Dataset) -> Vec<(String, u8, String)> {
    ds.examples
        .iter()
        .map(|e| (e.text.clone(), e.label, e.group.clone()))
        .collect()
}

#[test]
fn parquet_and_a_saved_folder_give_the_same_rows() {
    let columns = "?text=sentence&label=sentiment&group=qid";
    let parquet = load(&(fixture("reviews.parquet") + columns)).unwrap();
    let saved = load(&(fixture("reviews_saved") + columns)).unwrap();
    let want: Vec<(String, u8, String)> = [
        ("good film", 1, "7"),
        ("bad film", 0, "7"),
        ("great plot", 1, "8"),
        ("awful acting", 0, "8"),
        ("fine", 1, "9"),
        ("terrible", 0, "9"),
    ]
    .iter()
    .map(|(t, l, g)| (t.to_string(), *l, g.to_string()))
    .collect();
    // The ClassLabel column arrives as its integer; the int64 group as text; the two .arrow
    // shards of the saved folder in state.json's order.
    assert_eq!(rows(&parquet), want);
    assert_eq!(rows(&saved), want);
    assert_eq!(parquet.version, saved.version, "same content, same version");
    assert_eq!(parquet.examples[2].id, "row-3");
}

#[test]
fn a_missing_column_names_the_file_and_the_columns_it_has() {
    let err = load(&fixture("reviews.parquet")).unwrap_err().to_string();
    assert!(err.contains("reviews.parquet: no column 'text'"), "{err}");
    assert!(
        err.contains("its columns: sentence, sentiment, qid"),
        "{err}"
    );
    let err = load(&(fixture("reviews_saved") + "?text=sentence&label=stars"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("data-00000-of-00002.arrow: no column 'stars'"),
        "{err}"
    );
}

#[test]
fn a_label_that_is_not_0_or_1_names_the_file_and_the_row() {
    let err = load(&(fixture("bad_label.parquet") + "?text=sentence&label=stars"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bad_label.parquet:3: 'stars': label '2' is not 0 or 1"),
        "{err}"
    );
    // Declared as three classes, the same file reads (stars are class indices).
    let three = load(&(fixture("bad_label.parquet") + "?text=sentence&label=stars&classes=3"));
    assert!(three.is_ok_and(|d| d.classes() == 3));
    let err = load(&(fixture("reviews.parquet") + "?txt=sentence"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown key `txt`"), "{err}");
}

/// A `datasets` Image column with a ClassLabel, from Parquet and from `save_to_disk`: class names
/// from the dataset's features, the PNG bytes decoded (grey as RGB).
#[test]
fn image_columns_from_parquet_and_saved_folders() {
    for f in ["images.parquet", "images_saved"] {
        let set = w2s_data::images::hf_images(&PathBuf::from(fixture(f)), "img", "kind").unwrap();
        assert_eq!(set.classes, ["red", "green", "grey"], "{f}");
        let labels: Vec<usize> = set.rows.iter().map(|r| r.label).collect();
        assert_eq!(labels, [0, 1, 2], "{f}");
        let px: Vec<[u8; 3]> = set
            .rows
            .iter()
            .map(|r| r.rgb().unwrap().get_pixel(3, 2).0)
            .collect();
        assert_eq!(px, [[255, 0, 0], [0, 255, 0], [90, 90, 90]], "{f}");
        let first = set.rows[0].rgb().unwrap();
        assert_eq!((first.width(), first.height()), (4, 3));
    }
    let e = w2s_data::images::hf_images(&PathBuf::from(fixture("images.parquet")), "image", "kind")
        .unwrap_err()
        .to_string();
    assert!(e.contains("image") && e.contains("img"), "{e}");
    let e = w2s_data::images::hf_images(
        &PathBuf::from(fixture("reviews.parquet")),
        "sentence",
        "sentiment",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("not an Image column"), "{e}");
}
