//! Instructions per multiply-accumulate of the dense matrix kernels on the device, at the
//! shapes the digits network `[64, 32, 10]` runs at batch 8: the forward products
//! (`matmul_nt`), the error back-propagation (`matmul_nn`) and the weight gradients
//! (`matmul_tn`), plus a square 32³ of each.
//!
//! SysTick under `-icount shift=0` (one tick = 40 instructions), each product repeated so
//! the count is many ticks long. Exits 0 when every kernel is at most 2.5 instructions per
//! multiply-accumulate (the performance issue's target), 1 otherwise.
#![no_std]
#![no_main]

use agd_cortex_m4::{cycles, exit};
use cortex_m_rt::entry;
use defmt_semihosting as _;
use panic_probe as _;
use static_cell::ConstStaticCell;

agd_cortex_m4::exit_on_hard_fault!();

const MAX: usize = 64 * 32;
static A: ConstStaticCell<[f32; MAX]> = ConstStaticCell::new([0.0; MAX]);
static B: ConstStaticCell<[f32; MAX]> = ConstStaticCell::new([0.0; MAX]);
static C: ConstStaticCell<[f32; MAX]> = ConstStaticCell::new([0.0; MAX]);

/// Target from the performance issue.
const TARGET: f32 = 2.5;
const REPEAT: u64 = 8;

#[entry]
fn main() -> ! {
    let cp = cortex_m::Peripherals::take().unwrap();
    cycles::start(cp.SYST);
    let (a, b, c) = (A.take(), B.take(), C.take());
    for (i, v) in a.iter_mut().enumerate() {
        *v = ((i * 37 % 101) as f32) * 0.01 - 0.5;
    }
    for (i, v) in b.iter_mut().enumerate() {
        *v = ((i * 53 % 97) as f32) * 0.01 - 0.5;
    }
    // (name, m, n, k): C is m x n, depth k.
    let cases: [(&str, usize, usize, usize); 8] = [
        ("nt forward  8x32 <- 8x64 . 32x64^T", 8, 32, 64),
        ("nt forward  8x10 <- 8x32 . 10x32^T", 8, 10, 32),
        ("nt square  32x32x32", 32, 32, 32),
        ("nn backprop 8x32 <- 8x10 . 10x32", 8, 32, 10),
        ("nn square  32x32x32", 32, 32, 32),
        ("tn gradient 32x64 <- 8x32^T . 8x64", 32, 64, 8),
        ("tn gradient 10x32 <- 8x10^T . 8x32", 10, 32, 8),
        ("tn square  32x32x32", 32, 32, 32),
    ];
    let mut worst = 0.0f32;
    for (name, m, n, k) in cases {
        let t0 = cycles::now();
        for _ in 0..REPEAT {
            let (x, y, z) = (&a[..m * k], &b[..n * k], &mut c[..m * n]);
            let r = match &name[..2] {
                "nt" => agd_simd::matmul_nt(m, n, k, 1.0, x, y, 0.0, z),
                "nn" => agd_simd::matmul_nn(m, n, k, 1.0, x, y, 0.0, z),
                _ => agd_simd::matmul_tn(m, n, k, 1.0, x, y, 0.0, z),
            };
            r.unwrap();
            core::hint::black_box(&mut c[..]);
        }
        let ins = cycles::instructions(t0, cycles::now());
        let macs = (m * n * k) as u64 * REPEAT;
        let per = ins as f32 / macs as f32;
        worst = worst.max(per);
        defmt::info!("{=str}: {=f32} instructions per MAC", name, per);
    }
    defmt::info!(
        "worst {=f32} instructions per MAC (target <= {=f32})",
        worst,
        TARGET
    );
    exit(if worst <= TARGET { 0 } else { 1 })
}
