//! Runs the MNIST CNN's AGD training step (batch 128) in a loop, for a profiler to
//! look at, and prints the median thread CPU time per step:
//! `cargo run --release -p agd-host --example cnn_profile -- 200`. With `IM2COL=1` set, it
//! first times each conv layer's unfolding and folding back (ns per unfolded entry).

use agd_core::spec::{chain, conv, dense};
use agd_core::{Agd, ConvNetwork, Loss, SplitMix64};
use agd_host::net::HostConvNet;
use rand_core::Rng;

fn main() {
    let steps: usize = std::env::args()
        .nth(1)
        .map_or(Ok(100), |s| s.parse())
        .expect("steps");
    let batch = 128;
    let layers = chain(
        [1, 28, 28],
        [
            conv(16, 3, 1, 1),
            conv(32, 3, 2, 1),
            conv(32, 3, 2, 1),
            dense(10),
        ],
    );
    let mut net = HostConvNet::<f32>::new(&layers, batch).expect("layers");
    let mut rng = SplitMix64::new(7);
    net.view().init_orthogonal(&mut rng);
    let x: Vec<f32> = (0..batch * 784)
        .map(|_| (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32)
        .collect();
    let y: Vec<usize> = (0..batch).map(|_| rng.next_u32() as usize % 10).collect();
    let agd = Agd::new();
    if std::env::var("IM2COL").is_ok() {
        for (li, l) in layers.iter().enumerate() {
            let agd_core::spec::LayerSpec::Conv(cv) = l else {
                continue;
            };
            {
                let b = 1;
                let xin = vec![0.5f32; cv.in_features()];
                let mut cols = vec![0.0f32; cv.scratch_len()];
                let reps = 2000;
                let t0 = cpu();
                for _ in 0..reps {
                    cv.im2col(&xin, &mut cols).unwrap();
                }
                let ns = (cpu() - t0) * 1e9 / (reps * b * cv.scratch_len()) as f64;
                let t0 = cpu();
                let mut dx = vec![0.0f32; cv.in_features()];
                for _ in 0..reps {
                    cv.col2im(&cols, &mut dx).unwrap();
                }
                let ns2 = (cpu() - t0) * 1e9 / (reps * b * cv.scratch_len()) as f64;
                println!("layer {li}: im2col {ns:.3} ns/elem, col2im {ns2:.3} ns/elem");
            }
        }
    }
    let mut t = Vec::with_capacity(steps);
    for _ in 0..steps {
        let c0 = cpu();
        let mut v = net.view();
        v.set_input(&x).expect("input");
        v.train_step(&agd, Loss::Xent, &y).expect("step");
        t.push(cpu() - c0);
    }
    t.sort_by(f64::total_cmp);
    println!("median {:.1} µs CPU per step", t[t.len() / 2] * 1e6);
}

/// The calling thread's CPU time in seconds.
fn cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}
