//! # agd-host
//!
//! The `agd` command-line tool's library: networks sized at run time ([`net::HostNet`]) on
//! the same agd-core maths as the device, and golden-trajectory replay ([`golden`]).
#![warn(missing_docs)]

pub mod golden;
pub mod net;
pub mod parallel;

/// Everything the host tool can refuse. The CLI prints it on one line and exits with code 2.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The core refused (bad sizes, non-finite loss or gradient, …).
    #[error("{0}")]
    Core(#[from] agd_core::Error),
    /// A golden file could not be read or does not follow the format.
    #[error("{0}")]
    Golden(String),
    /// Invalid command-line usage that the parser cannot catch.
    #[error("{0}")]
    Usage(String),
    /// An I/O error with the path it concerns.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
}
