//! Puts the chosen memory map where cortex-m-rt's `link.x` looks for `memory.x`.
//!
//! Every binary of this crate links against one map: `memory-an386-256k.x` (RAM cut to
//! 256 KiB) unless `AGD_MEMORY=an386` asks for the board's whole 4 MiB. The maps are named
//! `memory-<board>.x`, never `memory.x`: a `memory.x` in the crate root would be found before
//! the copy in `OUT_DIR`.

use std::{env, fs, path::PathBuf};

fn main() {
    let board = env::var("AGD_MEMORY").unwrap_or_else(|_| "an386-256k".into());
    let src = format!("memory-{board}.x");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let map =
        fs::read(&src).unwrap_or_else(|e| panic!("AGD_MEMORY={board}: cannot read {src}: {e}"));
    fs::write(out.join("memory.x"), map).expect("OUT_DIR is writable");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed={src}");
    println!("cargo:rerun-if-env-changed=AGD_MEMORY");
    println!("cargo:rerun-if-changed=../../data/digits");
}
