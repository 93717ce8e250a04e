//! Runs one dense network's AGD training step in a loop, for a profiler to look at, and
//! prints the median thread CPU time per step (copying the batch in included, as in
//! `agd bench`):
//! `cargo run --release -p agd-host --example step_profile -- 784,256,256,10 128 2000`.

use agd_core::{Agd, Loss, Network, SplitMix64};
use agd_host::net::HostNet;
use agd_host::timing::thread_cpu as cpu;
use rand_core::Rng;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let widths: Vec<usize> = args
        .get(1)
        .map_or("784,256,256,10", String::as_str)
        .split(',')
        .map(|w| w.parse().expect("widths like 784,256,10"))
        .collect();
    let batch: usize = args.get(2).map_or(Ok(128), |s| s.parse()).expect("batch");
    let steps: usize = args.get(3).map_or(Ok(1000), |s| s.parse()).expect("steps");
    let mut net = HostNet::<f32>::new(&widths, batch, true).expect("widths");
    let mut rng = SplitMix64::new(7);
    net.view().init_orthogonal(&mut rng);
    let x: Vec<f32> = (0..batch * widths[0])
        .map(|_| (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32)
        .collect();
    let classes = widths[widths.len() - 1];
    let y: Vec<usize> = (0..batch)
        .map(|_| rng.next_u32() as usize % classes)
        .collect();
    let agd = Agd::new();
    let mut t = Vec::with_capacity(steps);
    let wall = std::time::Instant::now();
    for _ in 0..steps {
        let c0 = cpu();
        let mut v = net.view();
        v.set_input(&x).expect("input");
        v.train_step(&agd, Loss::Xent, &y).expect("step");
        t.push(cpu() - c0);
    }
    let mean_wall = wall.elapsed().as_secs_f64() * 1e6 / steps as f64;
    t.sort_by(f64::total_cmp);
    println!(
        "median {:.1} µs CPU per step (mean wall {mean_wall:.1} µs)",
        t[t.len() / 2] * 1e6
    );
}
