//! # agd-host
//!
//! The `agd` command-line tool's library: networks sized at run time ([`net::HostNet`]) on
//! the same agd-core maths as the device, golden-trajectory replay ([`golden`]), the IDX
//! reader ([`idx`]) and datasets ([`data`]), training with AGD or a baseline ([`train`],
//! [`baseline`]), the plots and files a run leaves ([`report`]), and batch-parallel training
//! steps on several threads ([`parallel`]).
#![warn(missing_docs)]

pub mod baseline;
pub mod checkpoint_file;
pub mod data;
pub mod fma_peak;
pub mod golden;
pub mod idx;
pub mod layers;
pub mod net;
pub mod pages;
pub mod parallel;
pub mod pool;
pub mod report;
pub mod timing;
pub mod train;

/// Everything the host tool can refuse. The CLI prints it on one line and exits with code 2.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The core refused (bad sizes, non-finite loss or gradient, …).
    #[error("{0}")]
    Core(#[from] agd_core::Error),
    /// A golden file could not be read or does not follow the format.
    #[error("{0}")]
    Golden(String),
    /// A checkpoint file is not valid, or does not fit the network.
    #[error("{path}: {source}")]
    Checkpoint {
        /// The file.
        path: String,
        /// What the core found wrong with it.
        source: agd_core::Error,
    },
    /// Invalid command-line usage that the parser cannot catch.
    #[error("{0}")]
    Usage(String),
    /// A file is not valid IDX.
    #[error("{path}: {source}")]
    Idx {
        /// The file.
        path: String,
        /// What is wrong with it.
        source: idx::IdxError,
    },
    /// A dataset's files are valid IDX but not the shapes or labels the dataset needs.
    #[error("{0}")]
    Data(String),
    /// Training stopped: a step refused (typically a diverged baseline: non-finite loss).
    #[error("training failed at epoch {epoch}, step {step}: {source}")]
    Training {
        /// Epoch, from 1.
        epoch: usize,
        /// Step within the epoch, from 1.
        step: usize,
        /// The core's refusal.
        source: agd_core::Error,
    },
    /// Training stopped on a batch whose step refused because of a NaN or infinity (in its
    /// inputs, loss, gradient or update).
    #[error(
        "bad batch at epoch {epoch}, step {step}{}: {source}; training stopped \
         (--skip-bad-batches skips such batches)",
        sample.map(|i| format!(" (training sample {i})")).unwrap_or_default()
    )]
    BadBatch {
        /// Epoch, from 1.
        epoch: usize,
        /// Step within the epoch, from 1.
        step: usize,
        /// The offending training sample (index in the training set), when the core names it.
        sample: Option<usize>,
        /// The core's refusal.
        source: agd_core::Error,
    },
    /// With `--skip-bad-batches`, every batch of an epoch was bad: nothing left to learn from.
    #[error("every batch of epoch {epoch} was bad and skipped; training stopped")]
    AllSkipped {
        /// Epoch, from 1.
        epoch: usize,
    },
    /// Writing a plot failed.
    #[error("plot {path}: {message}")]
    Plot {
        /// The image file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// An I/O error with the path it concerns.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
}
