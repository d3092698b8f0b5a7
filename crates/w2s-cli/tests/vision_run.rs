//! `w2s data show` and `w2s run` on a folder of class sub-folders of PNGs, as a user would bring
//! it: ten classes, images of another size than the backbone's and a grey one among them, the raw
//! pixels as the weak model and the built-in EfficientNet-Lite0 (from the asset cache that `w2s
//! fetch --all` fills; `.ci/run` does) as the strong one.
mod common;

use image::{GrayImage, Luma, Rgb, RgbImage};
use std::path::Path;
use std::process::Command;

const CLASSES: usize = 10;

fn w2s() -> Command {
    Command::new(env!("CARGO_BIN_EXE_w2s"))
}

/// Ten classes of `per_class` 40×30 PNGs: noise and a bright band whose height is the class;
/// the first image of class 3 is grey.
fn image_folder(root: &Path, per_class: usize) {
    let mut state = 7u32;
    let mut noise = move || {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
        (state >> 16) as u8 % 80
    };
    for c in 0..CLASSES {
        let dir = root.join(format!("{c}-class"));
        std::fs::create_dir_all(&dir).unwrap();
        let band = (c as u32 * 3)..(c as u32 * 3 + 3);
        for i in 0..per_class {
            let path = dir.join(format!("img-{i:02}.png"));
            if c == 3 && i == 0 {
                GrayImage::from_fn(40, 30, |_, y| {
                    Luma([if band.contains(&y) { 250 } else { noise() }])
                })
                .save(path)
                .unwrap();
                continue;
            }
            RgbImage::from_fn(40, 30, |x, y| {
                let v = if band.contains(&y) {
                    170 + noise()
                } else {
                    noise()
                };
                Rgb([v, (x * 6) as u8, 255 - v])
            })
            .save(path)
            .unwrap();
        }
    }
}

#[test]
fn a_ten_class_image_folder_shows_and_runs_from_pixels_to_efficientnet() {
    let tmp = tempfile::tempdir().unwrap();
    // The cache names the features after the folder's path, temporary folder included.
    let _forget = common::ForgetFeaturesOnDrop::for_dir(tmp.path());
    let data = tmp.path().join("images");
    image_folder(&data, 8);
    let data = data.to_string_lossy().into_owned();

    let shown = w2s().args(["data", "show", &data]).output().unwrap();
    assert!(shown.status.success(), "{shown:?}");
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.contains("80 rows") && text.contains("10 classes"),
        "{text}"
    );
    assert!(text.contains("9-class"), "{text}");

    let out = tmp.path().join("out");
    let run = w2s()
        .args(["run", "--data", &data, "--weak", "pixels", "--strong"])
        .args([
            "efficientnet-lite0",
            "--seeds",
            "2",
            "--method",
            "xent,logconf",
        ])
        .args(["--json", "--no-report", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let v = common::success_json(&run, "w2s run on images");
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4);
    for r in runs {
        assert_eq!(r["classes"], CLASSES, "{r}");
        let acc = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} in {r}"));
        for k in [
            "weak_acc",
            "ceiling_acc",
            "student_acc",
            "agreement",
            "weak_auroc",
        ] {
            assert!((0.0..=1.0).contains(&acc(k)), "{k} in {r}");
        }
        // Ten classes: chance is 0.1, and the bands are plain in the pixels.
        assert!(acc("weak_acc") > 0.3, "{r}");
        match r["pgr"].as_f64() {
            Some(pgr) => {
                let want =
                    (acc("student_acc") - acc("weak_acc")) / (acc("ceiling_acc") - acc("weak_acc"));
                assert!((pgr - want).abs() < 1e-9, "{r}");
            }
            None => assert_eq!(r["no_gap"], true, "{r}"),
        }
    }
    // `w2s scout` on images scouts the vision ladder when no --models are given.
    let scout = w2s()
        .args(["scout", "--data", &data, "--seeds", "1", "--json", "--out"])
        .arg(tmp.path().join("scout"))
        .output()
        .unwrap();
    let v = common::success_json(&scout, "w2s scout on images");
    let models: Vec<&str> = v["datasets"][0]["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["model"].as_str().unwrap())
        .collect();
    assert_eq!(
        models,
        ["pixels", "efficientnet-lite0", "efficientnet-lite2"]
    );

    // `w2s embed` caches an image model's features, and a second call reads them.
    let embed = |model: &str| {
        w2s()
            .args(["embed", "--model", model, "--data", &data, "--json"])
            .output()
            .unwrap()
    };
    let first = common::success_json(&embed("pixels"), "w2s embed --model pixels");
    assert_eq!((&first["rows"], &first["dim"]), (&80.into(), &2352.into()));
    let again = common::success_json(&embed("pixels"), "w2s embed again");
    assert_eq!(again["cached"], true);
    let refused = embed("minilm-l3");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("holds images"));

    // A text model on images is refused before anything is trained, and says why.
    let wrong = w2s()
        .args([
            "run",
            "--data",
            &data,
            "--weak",
            "pixels",
            "--strong",
            "minilm-l3",
        ])
        .args(["--seeds", "1", "--no-report", "--out"])
        .arg(tmp.path().join("wrong"))
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(err.contains("holds images"), "{err}");
}
