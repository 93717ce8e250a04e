//! Runs the MNIST CNN's AGD training step (batch 128) in a loop, for a profiler to
//! look at, and prints the median thread CPU time per step:
//! `cargo run --release -p agd-host --example cnn_profile -- 200`. With `IM2COL=1` set, it
//! first times each conv layer's unfolding and folding back (ns per unfolded entry); with
//! `GEMMS=1`, the matrix products the conv layers run (GFLOP/s and µs per call); with
//! `LAYERS=1`, each conv layer's forward pass, weight gradient and input gradient over the
//! whole batch, as the network calls them (median µs of 20).

use agd_core::{Agd, ConvNetwork, Loss, SplitMix64};
use agd_host::layers::MNIST_CNN;
use agd_host::net::HostConvNet;
use agd_host::timing::thread_cpu as cpu;
use rand_core::Rng;

fn main() {
    let steps: usize = std::env::args()
        .nth(1)
        .map_or(Ok(100), |s| s.parse())
        .expect("steps");
    let batch: usize = std::env::var("BATCH")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(128);
    let layers = MNIST_CNN;
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
                let len = cv.positions() * cv.patch_len();
                let order = agd_core::conv::Order::Interleaved;
                let mut cols = vec![0.0f32; len];
                let reps = 2000;
                let t0 = cpu();
                for _ in 0..reps {
                    cv.unfold(1, &xin, order, &mut cols).unwrap();
                }
                let ns = (cpu() - t0) * 1e9 / (reps * b * len) as f64;
                let t0 = cpu();
                let mut dx = vec![0.0f32; cv.in_features()];
                for _ in 0..reps {
                    cv.fold(1, &cols, order, &mut dx).unwrap();
                }
                let ns2 = (cpu() - t0) * 1e9 / (reps * b * len) as f64;
                println!("layer {li}: im2col {ns:.3} ns/elem, col2im {ns2:.3} ns/elem");
                // The input-gradient pass alone (product, fold back and the activation's
                // derivative), per sample, as the network runs it.
                let io = agd_core::spec::conv_io(&layers, li);
                if io.activated_input {
                    let mut scratch = vec![0.0f32; agd_core::spec::scratch_count(&layers)];
                    let w = vec![0.01f32; cv.param_count()];
                    let d = vec![0.5f32; cv.out_features()];
                    let xin: Vec<f32> = (0..cv.in_features())
                        .map(|i| if i % 3 == 0 { 0.0 } else { 1.0 })
                        .collect();
                    let mut dx = vec![0.0f32; cv.in_features()];
                    let t0 = cpu();
                    for _ in 0..reps {
                        cv.backward_with(1, &w, &xin, &d, None, Some(&mut dx), &mut scratch, io)
                            .unwrap();
                    }
                    let us = (cpu() - t0) * 1e6 / reps as f64;
                    println!("layer {li}: input gradient {us:.2} µs per sample");
                }
            }
        }
    }
    if std::env::var("GEMMS").is_ok() {
        // (kind, m, n, k) of the products the conv layers run per chunk.
        let shapes = [
            ("nt", 3136, 16, 9),
            ("tn", 9, 16, 3136),
            ("tn", 3136, 16, 9),
            ("nn", 9, 16, 3136),
            ("nt", 196, 32, 144),
            ("tn", 144, 32, 196),
            ("nn", 196, 144, 32),
            ("nt", 49, 32, 288),
            ("tn", 288, 32, 49),
            ("nn", 49, 288, 32),
        ];
        for (kind, m, n, k) in shapes {
            let a = vec![0.5f32; m * k];
            let b = vec![0.25f32; n * k];
            let mut c = vec![0.0f32; m * n];
            let reps = (2e8 / (2.0 * (m * n * k) as f64)).ceil() as usize;
            let t0 = cpu();
            for _ in 0..reps {
                match kind {
                    "nt" => agd_simd::matmul_nt(m, n, k, 1.0, &a, &b, 0.0, &mut c),
                    "tn" => agd_simd::matmul_tn(m, n, k, 1.0, &a, &b, 0.0, &mut c),
                    _ => agd_simd::matmul_nn(m, n, k, 1.0, &a, &b, 0.0, &mut c),
                }
                .unwrap();
            }
            let dt = (cpu() - t0) / reps as f64;
            println!(
                "{kind} ({m},{n},{k}): {:.1} GFLOP/s, {:.0} µs",
                2.0 * (m * n * k) as f64 / dt * 1e-9,
                dt * 1e6
            );
        }
        // (kind, m, n, k, row stride of A): the strided products reading a padded image in
        // place, one kernel row per call.
        let strided = [
            ("nt", 210, 32, 48, 32),
            ("tn", 48, 32, 210, 32),
            ("nt", 56, 32, 96, 64),
            ("tn", 96, 32, 56, 64),
        ];
        for (kind, m, n, k, lda) in strided {
            let rows = if kind == "nt" { m } else { k };
            let a = vec![0.5f32; rows * lda + 2 * k * lda];
            let b = vec![0.25f32; n * k * 3];
            let mut c = vec![0.0f32; m * n];
            let reps = (2e8 / (2.0 * (m * n * k) as f64)).ceil() as usize;
            let t0 = cpu();
            for _ in 0..reps {
                if kind == "nt" {
                    let ld = agd_simd::Strides {
                        lda,
                        ldb: 3 * k,
                        ldc: n,
                    };
                    agd_simd::matmul_nt_ld(m, n, k, 1.0, &a, &b, 0.0, &mut c, ld)
                } else {
                    let ld = agd_simd::Strides {
                        lda,
                        ldb: n,
                        ldc: n,
                    };
                    agd_simd::matmul_tn_ld(m, n, k, 1.0, &a, &b, 0.0, &mut c, ld)
                }
                .unwrap();
            }
            let dt = (cpu() - t0) / reps as f64;
            println!(
                "{kind}_ld ({m},{n},{k}; lda {lda}): {:.1} GFLOP/s, {:.2} µs",
                2.0 * (m * n * k) as f64 / dt * 1e-9,
                dt * 1e6
            );
        }
    }
    if std::env::var("LAYERS").is_ok() {
        layer_times(&layers, batch);
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
    println!(
        "median {:.1} µs CPU per step (fastest {:.1}, 10th percentile {:.1})",
        t[t.len() / 2] * 1e6,
        t[0] * 1e6,
        t[t.len() / 10] * 1e6
    );
}

/// Each conv layer's forward pass, weight gradient and input gradient (where the network
/// forms one) over `batch` samples, with the orders and activations the network uses and a
/// scratch of the network's size: median µs of 20 calls each.
fn layer_times(layers: &[agd_core::spec::LayerSpec], batch: usize) {
    let mut scratch = vec![0.0f32; agd_core::spec::scratch_count(layers)];
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2] * 1e6
    };
    for (li, l) in layers.iter().enumerate() {
        let agd_core::spec::LayerSpec::Conv(cv) = l else {
            continue;
        };
        let io = agd_core::spec::conv_io(layers, li);
        let value = |i: usize| ((i * 7919) % 13) as f32 * 0.1 - 0.3;
        let h: Vec<f32> = (0..batch * cv.in_features()).map(value).collect();
        let w: Vec<f32> = (0..cv.param_count()).map(|i| value(i) * 0.1).collect();
        let d: Vec<f32> = (0..batch * cv.out_features()).map(value).collect();
        let mut z = vec![0.0f32; batch * cv.out_features()];
        let mut g = vec![0.0f32; cv.param_count()];
        let mut prev = vec![0.0f32; batch * cv.in_features()];
        let (mut fwd, mut grad, mut input) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..20 {
            let t0 = cpu();
            cv.forward_with(batch, &w, &h, &mut z, &mut scratch, io)
                .expect("forward");
            fwd.push(cpu() - t0);
            let t0 = cpu();
            cv.backward_with(batch, &w, &h, &d, Some(&mut g), None, &mut scratch, io)
                .expect("weight gradient");
            grad.push(cpu() - t0);
            if io.activated_input {
                let t0 = cpu();
                cv.backward_with(batch, &w, &h, &d, None, Some(&mut prev), &mut scratch, io)
                    .expect("input gradient");
                input.push(cpu() - t0);
            }
        }
        let input = if input.is_empty() {
            "-".to_string()
        } else {
            format!("{:.0} µs", median(input))
        };
        println!(
            "layer {li} ({} MFLOP a pass): forward {:.0} µs, weight gradient {:.0} µs, input \
             gradient {input}",
            2 * batch * cv.positions() * cv.patch_len() * cv.c_out / 1_000_000,
            median(fwd),
            median(grad)
        );
    }
}
