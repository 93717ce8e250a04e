//! Runs one `f32` matrix product a given number of times and nothing else, for counting the
//! instructions it takes on targets this machine can only emulate. Under `qemu-aarch64` with
//! one instruction per translation block, every executed instruction logs one `Trace` line,
//! so the count for `reps = 3` minus the count for `reps = 1`, halved, is one product's:
//!
//! ```sh
//! CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
//!   cargo build --release -p agd-simd --example product_loop --target aarch64-unknown-linux-gnu
//! qemu-aarch64 -L /usr/aarch64-linux-gnu -singlestep -d exec,nochain -D log.txt \
//!   target/aarch64-unknown-linux-gnu/release/examples/product_loop nt 64 64 64 3
//! grep -c ^Trace log.txt
//! ```
//!
//! Arguments: `nt`, `nn` or `tn`, then `M K N` and the number of products.
use std::hint::black_box;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dims: Option<Vec<usize>> = args.iter().skip(1).map(|s| s.parse().ok()).collect();
    let (op, [m, k, n, reps]) = match (args.first(), dims.as_deref()) {
        (Some(op), Some(&[m, k, n, reps])) if ["nt", "nn", "tn"].contains(&op.as_str()) => {
            (op.as_str(), [m, k, n, reps])
        }
        _ => {
            eprintln!("usage: product_loop nt|nn|tn M K N REPS");
            return ExitCode::from(2);
        }
    };
    let a: Vec<f32> = (0..m * k).map(|x| ((x * 7 + 3) % 9) as f32 - 4.0).collect();
    let b: Vec<f32> = (0..k * n).map(|x| ((x * 5 + 1) % 9) as f32 - 4.0).collect();
    let mut c = vec![0.0f32; m * n];
    for _ in 0..reps {
        let (a, b) = (black_box(&a), black_box(&b));
        let r = match op {
            "nt" => agd_simd::matmul_nt(m, n, k, 1.0, a, b, 0.0, &mut c),
            "nn" => agd_simd::matmul_nn(m, n, k, 1.0, a, b, 0.0, &mut c),
            _ => agd_simd::matmul_tn(m, n, k, 1.0, a, b, 0.0, &mut c),
        };
        if let Err(e) = r {
            eprintln!("product_loop: {e}");
            return ExitCode::FAILURE;
        }
    }
    black_box(&c);
    ExitCode::SUCCESS
}
