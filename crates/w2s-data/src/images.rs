//! Labelled images: Fashion-MNIST (built in, from Debian's `dataset-fashion-mnist`) and a user's
//! ImageFolder (one sub-folder per class).
//!
//! Rows are in torchvision's `ImageFolder` order: classes sorted by name (label = index), then
//! files sorted by path within each class, sub-folders included. Every image is read as 8-bit
//! RGB: grey images repeat their channel, as PIL's `convert("RGB")` does; an alpha channel is
//! dropped.
use crate::DataError;
use image::RgbImage;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use w2s_assets::Store;

/// Extensions read as images (case-insensitive).
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg"];
/// Extensions torchvision accepts that w2s does not decode: a folder holding them is refused,
/// not silently read without them.
const UNREAD_EXTENSIONS: &[&str] = &["ppm", "bmp", "pgm", "tif", "tiff", "webp"];

/// Where one image's pixels are.
#[derive(Debug, Clone)]
pub enum ImageSource {
    /// A PNG or JPEG file.
    File(PathBuf),
    /// An encoded PNG or JPEG held in memory (a `datasets` Image cell), and where it came from.
    Encoded { bytes: Arc<Vec<u8>>, origin: String },
    /// `height × width` grey pixels at `offset` of a shared buffer (an IDX file).
    Grey {
        data: Arc<Vec<u8>>,
        offset: usize,
        height: u32,
        width: u32,
    },
}

/// One labelled image.
#[derive(Debug, Clone)]
pub struct ImageRow {
    /// Stable identifier: the path below the root, or `split/index`.
    pub id: String,
    /// Class index into [`ImageSet::classes`].
    pub label: usize,
    /// Its pixels.
    pub source: ImageSource,
}

impl ImageRow {
    /// The image as 8-bit RGB; a file that cannot be decoded is an error naming it.
    pub fn rgb(&self) -> Result<RgbImage, DataError> {
        match &self.source {
            ImageSource::File(path) => {
                image::open(path)
                    .map(|i| i.to_rgb8())
                    .map_err(|e| DataError::File {
                        path: path.clone(),
                        reason: format!("not a readable image: {e}"),
                    })
            }
            ImageSource::Encoded { bytes, origin } => image::load_from_memory(bytes)
                .map(|i| i.to_rgb8())
                .map_err(|e| DataError::File {
                    path: PathBuf::from(origin),
                    reason: format!("not a readable image: {e}"),
                }),
            ImageSource::Grey {
                data,
                offset,
                height,
                width,
            } => {
                let n = (*height * *width) as usize;
                let px = &data[*offset..offset + n];
                Ok(RgbImage::from_fn(*width, *height, |x, y| {
                    let v = px[(y * *width + x) as usize];
                    image::Rgb([v, v, v])
                }))
            }
        }
    }
}

/// A labelled image dataset.
#[derive(Debug, Clone)]
pub struct ImageSet {
    /// Built-in name or folder path.
    pub name: String,
    /// Class names; a row's label indexes them.
    pub classes: Vec<String>,
    /// Rows in a fixed order.
    pub rows: Vec<ImageRow>,
    /// Content hash: class names, row ids and labels, and every image's bytes.
    pub version: String,
}

impl ImageSet {
    /// Rows per class, in class order.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for r in &self.rows {
            counts[r.label] += 1;
        }
        counts
    }
}

/// Fashion-MNIST's class names, in label order.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// The built-in image datasets.
pub const IMAGE_DATASETS: &[&str] = &["fashion-mnist"];

/// Whether `name` is a built-in image dataset or a folder of class sub-folders.
pub fn is_image_data(name: &str) -> bool {
    IMAGE_DATASETS.contains(&name)
        || Path::new(name).is_dir() && looks_like_image_folder(Path::new(name))
}

fn looks_like_image_folder(dir: &Path) -> bool {
    // A save_to_disk folder has dataset_info.json or state.json; an ImageFolder has sub-folders.
    !dir.join("state.json").exists()
        && !dir.join("dataset_dict.json").exists()
        && std::fs::read_dir(dir)
            .map(|rd| rd.flatten().any(|e| e.path().is_dir()))
            .unwrap_or(false)
}

/// Loads a built-in image dataset (fetching it if needed) or an ImageFolder.
pub fn load_images(name: &str, store: &Store) -> Result<ImageSet, DataError> {
    match name {
        "fashion-mnist" => fashion_mnist(store),
        _ => image_folder(Path::new(name)),
    }
}

/// A Hugging Face dataset with an Image column (`{bytes, path}` structs, as `datasets` stores
/// `Image()` features) and an integer label column, from a Parquet file or a `save_to_disk`
/// folder. Class names come from the label's `ClassLabel` names when the dataset declares them,
/// else they are the label values.
pub fn hf_images(
    path: &Path,
    image_column: &str,
    label_column: &str,
) -> Result<ImageSet, DataError> {
    use arrow_array::cast::AsArray;
    use arrow_array::Array;
    let (files, features) = crate::hf::batches_and_features(path)?;
    let mut rows = Vec::new();
    let mut hasher = Sha256::new();
    for (file, batches) in &files {
        let mut line = 0;
        for batch in batches {
            let images = crate::hf::column(batch, image_column, file)?;
            let labels = crate::hf::column(batch, label_column, file)?;
            let images = images.as_struct_opt().ok_or_else(|| DataError::File {
                path: file.clone(),
                reason: format!(
                    "column '{image_column}' is {}, not an Image column ({{bytes, path}})",
                    images.data_type()
                ),
            })?;
            let bytes_col = images
                .column_by_name("bytes")
                .ok_or_else(|| DataError::File {
                    path: file.clone(),
                    reason: format!("column '{image_column}' has no 'bytes' field"),
                })?;
            for i in 0..batch.num_rows() {
                line += 1;
                let bad = |reason: String| DataError::Row {
                    path: file.clone(),
                    line,
                    reason,
                };
                let bytes: Vec<u8> = if bytes_col.is_null(i) {
                    return Err(bad(format!(
                        "the image has no bytes (only a path, {:?}): save the dataset with embedded images",
                        images
                            .column_by_name("path")
                            .and_then(|p| crate::hf::cell_text(p.as_ref(), i))
                    )));
                } else if let Some(b) = bytes_col.as_binary_opt::<i32>() {
                    b.value(i).to_vec()
                } else if let Some(b) = bytes_col.as_binary_opt::<i64>() {
                    b.value(i).to_vec()
                } else {
                    return Err(bad(format!(
                        "'bytes' is {}, not binary",
                        bytes_col.data_type()
                    )));
                };
                let label: usize = crate::hf::cell_text(labels, i)
                    .and_then(|t| t.parse().ok())
                    .ok_or_else(|| {
                        bad(format!(
                            "label column '{label_column}' is not a class index"
                        ))
                    })?;
                hasher.update(Sha256::digest(&bytes));
                hasher.update((label as u64).to_le_bytes());
                rows.push(ImageRow {
                    id: format!(
                        "{}:{line}",
                        file.file_name()
                            .map(|n| n.to_string_lossy())
                            .unwrap_or_default()
                    ),
                    label,
                    source: ImageSource::Encoded {
                        bytes: Arc::new(bytes),
                        origin: format!("{}, row {line}", file.display()),
                    },
                });
            }
        }
    }
    let max_label = rows.iter().map(|r| r.label).max().unwrap_or(0);
    let names: Option<Vec<String>> = features
        .as_ref()
        .and_then(|f| f.pointer(&format!("/{label_column}/names")))
        .and_then(|n| serde_json::from_value(n.clone()).ok());
    let classes = match names {
        Some(n) if n.len() > max_label => n,
        Some(n) => {
            return Err(DataError::File {
                path: path.to_path_buf(),
                reason: format!("label {max_label} is beyond the {} class names", n.len()),
            })
        }
        None => (0..=max_label).map(|l| l.to_string()).collect(),
    };
    Ok(ImageSet {
        name: path.display().to_string(),
        classes,
        rows,
        version: hex::encode(&hasher.finalize()[..8]),
    })
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads a gzip IDX file: big-endian magic (0, 0, type 0x08 = u8, dims), dims as u32, data.
pub fn read_idx(path: &Path) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(io(path))?;
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut bytes)
        .map_err(io(path))?;
    let bad = |reason: String| DataError::File {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08 {
        return Err(bad(
            "not an IDX file of unsigned bytes (magic 0x0000_08xx)".into()
        ));
    }
    let ndim = bytes[3] as usize;
    if bytes.len() < 4 + 4 * ndim {
        return Err(bad("truncated IDX header".into()));
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|i| {
            u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize
        })
        .collect();
    let want: usize = dims.iter().product();
    let data = bytes.split_off(4 + 4 * ndim);
    if data.len() != want {
        return Err(bad(format!(
            "the header promises {dims:?} = {want} bytes but {} follow",
            data.len()
        )));
    }
    Ok((dims, data))
}

/// Fashion-MNIST, train rows (`train/i`) then test rows (`test/i`): 70,000 images.
pub fn fashion_mnist(store: &Store) -> Result<ImageSet, DataError> {
    let dir = store.ensure("fashion-mnist")?;
    let mut rows = Vec::new();
    let mut hasher = Sha256::new();
    for (split, prefix) in [("train", "train"), ("test", "t10k")] {
        let images = dir.join(format!("{prefix}-images-idx3-ubyte.gz"));
        let labels = dir.join(format!("{prefix}-labels-idx1-ubyte.gz"));
        let (idims, pixels) = read_idx(&images)?;
        let (ldims, labs) = read_idx(&labels)?;
        if idims.len() != 3 || ldims.len() != 1 || idims[0] != ldims[0] {
            return Err(DataError::File {
                path: images,
                reason: format!("image dims {idims:?} do not match label dims {ldims:?}"),
            });
        }
        hasher.update(&pixels);
        hasher.update(&labs);
        let (h, w) = (idims[1], idims[2]);
        let data = Arc::new(pixels);
        for (i, &l) in labs.iter().enumerate() {
            if l as usize >= FASHION_MNIST_CLASSES.len() {
                return Err(DataError::Row {
                    path: labels.clone(),
                    line: i + 1,
                    reason: format!("label {l} is not one of the 10 classes"),
                });
            }
            rows.push(ImageRow {
                id: format!("{split}/{i}"),
                label: l as usize,
                source: ImageSource::Grey {
                    data: data.clone(),
                    offset: i * h * w,
                    height: h as u32,
                    width: w as u32,
                },
            });
        }
    }
    Ok(ImageSet {
        name: "fashion-mnist".into(),
        classes: FASHION_MNIST_CLASSES
            .iter()
            .map(|s| s.to_string())
            .collect(),
        rows,
        version: hex::encode(&hasher.finalize()[..8]),
    })
}

fn extension(path: &Path) -> String {
    path.extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default()
}

/// Every file below `dir`, sorted by path (torchvision sorts `os.walk` and each folder's names).
fn files_below(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), DataError> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io(dir))?;
    entries.sort();
    let (dirs, files): (Vec<PathBuf>, Vec<PathBuf>) = entries.into_iter().partition(|p| p.is_dir());
    out.extend(files);
    for d in dirs {
        files_below(&d, out)?;
    }
    Ok(())
}

/// A folder with one sub-folder per class holding PNG or JPEG files.
pub fn image_folder(root: &Path) -> Result<ImageSet, DataError> {
    if !root.is_dir() {
        return Err(DataError::NoSuchFile(root.to_path_buf()));
    }
    let mut classes: Vec<String> = std::fs::read_dir(root)
        .map_err(io(root))?
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    classes.sort();
    if classes.is_empty() {
        return Err(DataError::File {
            path: root.to_path_buf(),
            reason: "no class folders: an image folder holds one sub-folder per class".into(),
        });
    }
    let mut rows = Vec::new();
    let mut hasher = Sha256::new();
    for (label, class) in classes.iter().enumerate() {
        let dir = root.join(class);
        let mut files = Vec::new();
        files_below(&dir, &mut files)?;
        let mut kept = 0;
        for f in files {
            let ext = extension(&f);
            if UNREAD_EXTENSIONS.contains(&ext.as_str()) {
                return Err(DataError::File {
                    path: f,
                    reason: format!(
                        "{ext} images are not read; convert them to PNG ({})",
                        IMAGE_EXTENSIONS.join(", ")
                    ),
                });
            }
            if !IMAGE_EXTENSIONS.contains(&ext.as_str()) {
                continue;
            }
            let bytes = std::fs::read(&f).map_err(io(&f))?;
            let id = f
                .strip_prefix(root)
                .unwrap_or(&f)
                .to_string_lossy()
                .into_owned();
            hasher.update(id.as_bytes());
            hasher.update((label as u64).to_le_bytes());
            hasher.update(Sha256::digest(&bytes));
            rows.push(ImageRow {
                id,
                label,
                source: ImageSource::File(f),
            });
            kept += 1;
        }
        if kept == 0 {
            return Err(DataError::File {
                path: dir,
                reason: format!(
                    "class folder '{class}' holds no image ({})",
                    IMAGE_EXTENSIONS.join(", ")
                ),
            });
        }
    }
    Ok(ImageSet {
        name: root.display().to_string(),
        classes,
        rows,
        version: hex::encode(&hasher.finalize()[..8]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(path: &Path, img: &image::DynamicImage) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        img.save(path).unwrap();
    }

    #[test]
    fn folders_are_read_in_torchvision_order_with_grey_as_rgb() {
        let t = tempfile::tempdir().unwrap();
        let grey =
            image::DynamicImage::ImageLuma8(image::GrayImage::from_pixel(3, 2, image::Luma([77])));
        let rgb = image::DynamicImage::ImageRgb8(RgbImage::from_pixel(2, 2, image::Rgb([1, 2, 3])));
        png(&t.path().join("zebra/b.png"), &rgb);
        png(&t.path().join("zebra/a.png"), &grey);
        png(&t.path().join("ant/sub/c.png"), &rgb);
        png(&t.path().join("ant/b.png"), &rgb);
        std::fs::write(t.path().join("ant/notes.txt"), "ignored").unwrap();
        let set = image_folder(t.path()).unwrap();
        assert_eq!(set.classes, ["ant", "zebra"]);
        let ids: Vec<(&str, usize)> = set.rows.iter().map(|r| (r.id.as_str(), r.label)).collect();
        assert_eq!(
            ids,
            [
                ("ant/b.png", 0),
                ("ant/sub/c.png", 0),
                ("zebra/a.png", 1),
                ("zebra/b.png", 1)
            ]
        );
        assert_eq!(set.class_counts(), [2, 2]);
        let g = set.rows[2].rgb().unwrap();
        assert_eq!(
            (g.width(), g.height(), g.get_pixel(1, 1).0),
            (3, 2, [77, 77, 77])
        );
        // The version follows the bytes.
        let v = set.version.clone();
        png(&t.path().join("zebra/b.png"), &grey);
        assert_ne!(image_folder(t.path()).unwrap().version, v);
    }

    #[test]
    fn corrupt_images_and_empty_classes_name_the_file() {
        let t = tempfile::tempdir().unwrap();
        let rgb = image::DynamicImage::ImageRgb8(RgbImage::from_pixel(2, 2, image::Rgb([1, 2, 3])));
        png(&t.path().join("a/x.png"), &rgb);
        std::fs::create_dir_all(t.path().join("b")).unwrap();
        let e = image_folder(t.path()).unwrap_err().to_string();
        assert!(e.contains("'b'") && e.contains("no image"), "{e}");
        std::fs::write(
            t.path().join("b/broken.png"),
            b"\x89PNG\r\n\x1a\nnot really",
        )
        .unwrap();
        let set = image_folder(t.path()).unwrap();
        let e = set.rows[1].rgb().unwrap_err().to_string();
        assert!(e.contains("broken.png"), "{e}");
        std::fs::write(t.path().join("b/old.bmp"), b"BM").unwrap();
        let e = image_folder(t.path()).unwrap_err().to_string();
        assert!(e.contains("old.bmp") && e.contains("not read"), "{e}");
        let e = image_folder(&t.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope"), "{e}");
    }

    #[test]
    fn idx_headers_are_checked_against_the_data() {
        use std::io::Write;
        let t = tempfile::tempdir().unwrap();
        let write = |name: &str, bytes: &[u8]| {
            let p = t.path().join(name);
            let mut gz = flate2::write::GzEncoder::new(
                std::fs::File::create(&p).unwrap(),
                flate2::Compression::fast(),
            );
            gz.write_all(bytes).unwrap();
            gz.finish().unwrap();
            p
        };
        // 2 images of 2x3: 12 bytes.
        let mut ok = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3];
        ok.extend(0..12u8);
        let (dims, data) = read_idx(&write("ok.gz", &ok)).unwrap();
        assert_eq!((dims, data.len(), data[11]), (vec![2, 2, 3], 12, 11));
        // A lying header: promises 3 images.
        let mut lying = ok.clone();
        lying[7] = 3;
        let e = read_idx(&write("lying.gz", &lying))
            .unwrap_err()
            .to_string();
        assert!(e.contains("lying.gz") && e.contains("promises"), "{e}");
        let e = read_idx(&write("magic.gz", &[1, 2, 3, 4]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("magic.gz") && e.contains("IDX"), "{e}");
    }
}
