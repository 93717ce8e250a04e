//! `agd`: train with Automatic Gradient Descent — no learning rate — and check it against the
//! reference. This file only parses and dispatches.

// The argument structs' doc comments are clap's `--help` text, written for a terminal
// (`conv<channels>k<kernel>[s<stride>]`), not for rustdoc's Markdown.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

#[derive(Debug, Parser)]
#[command(
    name = "agd",
    version,
    about = "Automatic Gradient Descent: training with no learning rate"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train a network on a dataset: AGD needs no learning rate (default: digits, finishes
    /// in seconds). Writes metrics.json, metrics.csv and curves.png. Exit 0 on success, 1 if
    /// training stopped early (a diverged baseline), 2 on bad input.
    Train(cmd::train::Args),
    /// AGD against Adam and SGD over learning-rate grids, same data, network, epochs and
    /// seed. Writes compare.md, compare.json and compare.png.
    Compare(cmd::compare::Args),
    /// Test accuracy and loss of a checkpoint written by `agd train --save`, on a dataset's
    /// test split prepared as for training (exit 2 if the file is bad or does not fit).
    Eval(cmd::eval::Args),
    /// Replay a golden trajectory of the reference AGD and report the worst deviations
    /// (exit 0 within tolerance, 1 outside it, 2 on unreadable input).
    VerifyGolden(cmd::verify_golden::Args),
    /// Measure the kernels against the `matrixmultiply` crate and a naive loop, and time
    /// whole AGD training steps (see BENCHMARKS.md).
    Bench(cmd::bench::Args),
}

/// Restores the default action of SIGPIPE, which the Rust runtime sets to "ignore": a write
/// to a closed pipe then ends the process as it ends any Unix tool (`agd … | head -1`; a shell
/// reports status 141) instead of failing inside `println!` with a panic (exit 101). Files
/// are never left half-written by this: a checkpoint is written to a temporary name and
/// renamed, and nothing is printed while a file is being written.
fn default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in `main`, before any other thread exists; SIG_DFL is a
    // valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    default_sigpipe();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind::{DisplayHelp, DisplayVersion};
            if matches!(e.kind(), DisplayHelp | DisplayVersion) {
                print!("{e}");
                return ExitCode::SUCCESS;
            }
            // One line: clap's first line names the problem; when it ends in a colon, what it
            // introduces (e.g. the missing arguments) is on the next lines.
            let rendered = e.to_string();
            let mut lines = rendered.lines().map(str::trim);
            let mut line = lines
                .next()
                .unwrap_or("error: invalid arguments")
                .to_string();
            if line.ends_with(':') {
                let more: Vec<&str> = lines.take_while(|l| !l.is_empty()).collect();
                line = format!("{line} {}", more.join(", "));
            }
            eprintln!("{line} (see `agd --help`)");
            return ExitCode::from(2);
        }
    };
    let outcome = match &cli.command {
        Command::Train(args) => cmd::train::run(args),
        Command::Compare(args) => cmd::compare::run(args),
        Command::Eval(args) => cmd::eval::run(args),
        Command::VerifyGolden(args) => cmd::verify_golden::run(args),
        Command::Bench(args) => cmd::bench::run(args),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
