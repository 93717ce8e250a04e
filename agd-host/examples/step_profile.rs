//! Runs one network's AGD training step in a loop, for a profiler to look at:
//! `cargo run --release -p agd-host --example step_profile -- 784,256,256,10 128 2000`.
//! With `THREADS=n` set it alternates blocks of one-thread steps and blocks of
//! batch-parallel steps on `n` threads, and prints the median wall time per step of each
//! (`--layers` syntax instead of widths runs a conv network, e.g. the MNIST CNN
//! `conv16k3p1,conv32k3s2p1,conv32k3s2p1,dense10`).

use std::time::Instant;

use agd_core::{Agd, Loss, SplitMix64};
use agd_host::net::{HostConvNet, HostNet};
use agd_host::parallel::{DataParallel, Replica};
use agd_host::train::TrainNet;
use rand_core::Rng;

/// Median wall time per step, µs, of `steps` steps in blocks of `block`, alternating
/// between the contenders.
fn race(steps: usize, block: usize, fs: &mut [&mut dyn FnMut()]) -> Vec<f64> {
    let mut times = vec![Vec::new(); fs.len()];
    for _ in 0..steps.div_ceil(block) {
        for (f, t) in fs.iter_mut().zip(&mut times) {
            let start = Instant::now();
            for _ in 0..block {
                f();
            }
            t.push(start.elapsed().as_secs_f64() * 1e6 / block as f64);
        }
    }
    times
        .into_iter()
        .map(|mut t| {
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        })
        .collect()
}

fn run<N: Replica<f32>>(mut net: N, par: Option<DataParallel<f32, N>>, steps: usize) {
    let batch = TrainNet::capacity(&net);
    let mut rng = SplitMix64::new(7);
    net.init_orthogonal(&mut rng);
    let d0 = net.inputs();
    let x: Vec<f32> = (0..batch * d0)
        .map(|_| (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32)
        .collect();
    let y: Vec<usize> = (0..batch).map(|_| rng.next_u32() as usize % 10).collect();
    let agd = Agd::new();
    let mut par = par;
    if let Some(par) = &mut par {
        par.net().weights_mut().copy_from_slice(net.weights());
        par.sync();
    }
    let mut single = || {
        net.input_mut(batch).expect("batch").copy_from_slice(&x);
        net.agd_step(&agd, Loss::Xent, &y).expect("step");
    };
    match par {
        None => {
            let t = race(steps, steps, &mut [&mut single]);
            println!("{:.1} µs per step", t[0]);
        }
        Some(mut par) => {
            let n = par.threads();
            let mut parallel = || {
                par.train_step(&agd, Loss::Xent, &x, &y).expect("step");
            };
            let block = (steps / 20).max(1);
            let t = race(steps, block, &mut [&mut single, &mut parallel]);
            println!(
                "one thread {:.1} µs, {n} threads {:.1} µs per step (median of blocks of {block}): {:.2}x",
                t[0],
                t[1],
                t[0] / t[1]
            );
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let net = args.get(1).map_or("784,256,256,10", String::as_str);
    let batch: usize = args.get(2).map_or(Ok(128), |s| s.parse()).expect("batch");
    let steps: usize = args.get(3).map_or(Ok(1000), |s| s.parse()).expect("steps");
    let threads: Option<usize> = std::env::var("THREADS")
        .ok()
        .map(|t| t.parse().expect("THREADS"));
    if net.starts_with("conv") {
        let layers = agd_host::layers::parse(net, [1, 28, 28], 10).expect("layers");
        let one = HostConvNet::<f32>::new(&layers, batch).expect("layers");
        let par = threads.map(|t| DataParallel::new_conv(&layers, batch, t).expect("threads"));
        run(one, par, steps);
    } else {
        let widths: Vec<usize> = net
            .split(',')
            .map(|w| w.parse().expect("widths like 784,256,10"))
            .collect();
        let one = HostNet::<f32>::new(&widths, batch, true).expect("widths");
        let par = threads.map(|t| DataParallel::new(&widths, batch, t).expect("threads"));
        run(one, par, steps);
    }
}
