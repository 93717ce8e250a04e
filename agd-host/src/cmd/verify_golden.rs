//! `agd verify-golden FILE [--dtype f32|f64]`: replay a reference trajectory.

use std::path::PathBuf;

use agd_host::HostError;
use agd_host::golden::{GoldenFile, StepKind, TOL_F32, TOL_F64, replay};

/// Element type of a replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Dtype {
    /// 32-bit floats (tolerance 1e-4).
    F32,
    /// 64-bit floats (tolerance 1e-9).
    F64,
}

/// Arguments of `agd verify-golden`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A golden trajectory file (JSON, format of tests/golden/README.md).
    pub file: PathBuf,
    /// Element type to replay in.
    #[arg(long, value_enum, default_value = "f64")]
    pub dtype: Dtype,
}

/// Replays the file; `Ok(true)` when every quantity is within tolerance.
pub fn run(args: &Args) -> Result<bool, HostError> {
    let file = GoldenFile::load(&args.file)?;
    let (dev, tol) = match args.dtype {
        Dtype::F64 => (replay::<f64>(&file, StepKind::Standard)?, TOL_F64),
        Dtype::F32 => (replay::<f32>(&file, StepKind::Standard)?, TOL_F32),
    };
    let name = match args.dtype {
        Dtype::F32 => "f32",
        Dtype::F64 => "f64",
    };
    println!(
        "{} ({}, {}, {} steps) in {name}: worst relative deviation per quantity",
        file.case,
        file.loss.name,
        file.network_summary(),
        file.num_steps
    );
    for (q, v) in dev.rows() {
        println!("  {q:<14} {v:.3e}{}", if v <= tol { "" } else { "  FAIL" });
    }
    println!("  exact zeros violated: {}", dev.zero_violations);
    println!(
        "  zero-gradient layers changed: {}",
        dev.unchanged_violations
    );
    let pass = dev.passes(tol);
    println!(
        "{} (tolerance {tol:.0e})",
        if pass { "PASS" } else { "FAIL" }
    );
    Ok(pass)
}
