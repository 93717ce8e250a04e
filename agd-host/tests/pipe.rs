//! `agd … | head -1`: a closed standard output must not make the tool panic. Unix only (the
//! SIGPIPE disposition `agd` restores exists only there).
#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

const AGD: &str = env!("CARGO_BIN_EXE_agd");

/// Runs `agd args`, reads `lines` lines of its output, closes the pipe, and checks that the
/// tool ended as a Unix tool does (killed by SIGPIPE, what a shell reports as 141) or
/// finished normally, and never panicked (exit 101).
fn closed_after(args: &[&str], lines: usize) {
    let mut child = Command::new(AGD)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("agd runs");
    let stdout = child.stdout.take().unwrap();
    let mut reader = BufReader::new(stdout);
    for _ in 0..lines {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
    }
    drop(reader);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    assert_ne!(out.status.code(), Some(101), "{args:?}: {stderr}");
    assert!(
        out.status.success() || out.status.signal() == Some(libc::SIGPIPE),
        "{args:?}: {:?} {stderr}",
        out.status
    );
}

#[test]
fn a_closed_stdout_ends_the_tool_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let out = out.to_str().unwrap();
    let train = [
        "train", "--widths", "64,16,10", "--epochs", "2", "--out", out,
    ];
    // Closed before the first line, and after it (`| head -1`).
    closed_after(&train, 0);
    closed_after(&train, 1);
    closed_after(&["--help"], 0);
}
