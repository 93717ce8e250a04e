//! Helpers shared by the CLI integration tests: run the binary, check how it ended, and
//! build IDX files.
#![allow(dead_code)] // each test crate uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const AGD: &str = env!("CARGO_BIN_EXE_agd");

pub fn digits_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/digits")
}

/// Runs `agd args`.
pub fn agd(args: &[&str]) -> Output {
    Command::new(AGD)
        .args(args)
        .output()
        .expect("the agd binary runs")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs `agd args` and asserts it succeeded; returns its output.
pub fn agd_ok(args: &[&str]) -> Output {
    let o = agd(args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    o
}

/// Exit code 2, exactly one line on stderr, no panic, and that line says `needle`
/// (case-insensitive). Returns the line.
pub fn assert_refused(out: &Output, needle: &str) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "stderr: {err}");
    assert!(!err.contains("panicked"), "stderr: {err}");
    assert!(
        err.to_lowercase().contains(&needle.to_lowercase()),
        "expected {needle:?} in: {err}"
    );
    err.trim_end().to_string()
}

/// Runs `agd args` and asserts it was refused (see [`assert_refused`]).
pub fn refused(args: &[&str], needle: &str) -> String {
    assert_refused(&agd(args), needle)
}

pub fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).expect("file written");
    serde_json::from_str(&text).expect("valid JSON")
}

/// An IDX file: type code, dimensions, payload.
pub fn idx(code: u8, dims: &[u32], payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, code, dims.len() as u8];
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend_from_slice(payload);
    b
}

/// The digits images (u8, 1797 x 8 x 8) and labels, without their IDX headers.
pub fn digits_raw() -> (Vec<u8>, Vec<u8>) {
    let images = std::fs::read(digits_dir().join("digits-images-idx3-ubyte")).unwrap();
    let labels = std::fs::read(digits_dir().join("digits-labels-idx1-ubyte")).unwrap();
    (images[16..].to_vec(), labels[8..].to_vec())
}

/// A `--dataset idx` directory: the first `n_train` digits as the training set and the next
/// `n_test` as the test set, u8 images, MNIST-style file names.
pub fn idx_digits(n_train: usize, n_test: usize) -> tempfile::TempDir {
    let (images, labels) = digits_raw();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, b: Vec<u8>| std::fs::write(dir.path().join(name), b).unwrap();
    let (tr, te) = (n_train, n_train + n_test);
    write(
        "train-images-idx3-ubyte",
        idx(0x08, &[tr as u32, 8, 8], &images[..tr * 64]),
    );
    write(
        "train-labels-idx1-ubyte",
        idx(0x08, &[tr as u32], &labels[..tr]),
    );
    write(
        "t10k-images-idx3-ubyte",
        idx(0x08, &[n_test as u32, 8, 8], &images[tr * 64..te * 64]),
    );
    write(
        "t10k-labels-idx1-ubyte",
        idx(0x08, &[n_test as u32], &labels[tr..te]),
    );
    dir
}

/// Big-endian f32 payload.
pub fn f32_payload(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_be_bytes()).collect()
}
