//! `agd bench [--quick] [--json]`: our kernels, the `matrixmultiply` crate and a naive loop
//! side by side on the same inputs in one run, then whole AGD training steps and the power
//! iteration. Single-threaded `f32` unless `--threads` says otherwise.
//!
//! Contenders are timed in interleaved rounds (ours, matrixmultiply, naive, ours, …) so that
//! load from other processes hits all of them alike; each figure is the median of the rounds.

use std::hint::black_box;
use std::time::{Duration, Instant};

use agd_core::{Agd, ConvNetwork, Loss, Network, SplitMix64};
use agd_host::HostError;
use agd_host::fma_peak::FmaPeak;
use agd_host::layers::MNIST_CNN;
use agd_host::net::{HostConvNet, HostNet};
use agd_host::pages::{self, HugeBuf};
use agd_host::parallel::DataParallel;
use agd_host::timing::thread_cpu;
use rand_core::Rng;
use serde::Serialize;

/// Arguments of `agd bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A short run (a few seconds; fewer rounds, so noisier figures).
    #[arg(long)]
    pub quick: bool,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Also time the training steps batch-parallel on this many threads (1: skip).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
}

/// The matrix-product shapes `(M, K, N)`: the three forward products of the
/// `[784, 256, 256, 10]` network at batch 128, one sample through its first layer, and three
/// square sizes.
const GEMM_SHAPES: [(usize, usize, usize); 7] = [
    (128, 784, 256),
    (128, 256, 256),
    (128, 256, 10),
    (1, 784, 256),
    (64, 64, 64),
    (16, 16, 16),
    (256, 256, 256),
];

/// The square shapes again as the plain product `C = A B` (`nn`), the layout a BLAS user
/// means by `(M, K, N)`: `B` is read as stored, where the forward layout (`GEMM_SHAPES`, `nt`)
/// has to transpose it first.
const SQUARE_SHAPES: [(usize, usize, usize); 3] = [(64, 64, 64), (16, 16, 16), (256, 256, 256)];

/// Training-step networks and batch sizes, with the step-time target in µs.
const STEPS: [(&[usize], usize, f64); 3] = [
    (&[784, 256, 256, 10], 128, 1000.0),
    (&[784, 1024, 1024, 1024, 10], 128, 20_000.0),
    (&[64, 64, 10], 1, 5.0),
];

/// One matrix-product shape: GFLOP/s of each contender.
#[derive(Debug, Serialize)]
pub struct GemmRow {
    /// Which product: `nt` (`C = A Bᵀ`, the forward pass), `nn` or `tn`.
    pub op: &'static str,
    /// Rows of `C`.
    pub m: usize,
    /// Depth.
    pub k: usize,
    /// Columns of `C`.
    pub n: usize,
    /// agd-simd.
    pub ours_gflops: f64,
    /// The `matrixmultiply` crate on the same operands (strides describe the same layout).
    pub matrixmultiply_gflops: f64,
    /// `agd_simd::naive`.
    pub naive_gflops: f64,
    /// `ours / matrixmultiply`.
    pub ratio: f64,
    /// One core's FMA peak, measured in the same interleaved rounds ([`FmaPeak`]); null off
    /// x86-64 or without AVX2 and FMA.
    pub fma_peak_gflops: Option<f64>,
    /// `ours_gflops / fma_peak_gflops`.
    pub ours_of_peak: Option<f64>,
}

/// A training step's batch-parallel run: every field is null with `--threads 1` or a batch
/// of one (which cannot be split).
#[derive(Debug, Serialize)]
pub struct Threaded {
    /// Threads of the batch-parallel run.
    pub threads: Option<usize>,
    /// The fastest sample's wall-clock time per step on `threads` threads, µs.
    pub threaded_best_wall_us: Option<f64>,
    /// `best_wall_us / threaded_best_wall_us`.
    pub threaded_speedup: Option<f64>,
}

impl Threaded {
    /// From the one-thread step's timing and, if the step ran split, the threaded one's.
    /// Worker threads' CPU time is not the caller's: the comparison is by the fastest
    /// wall-clock sample of each.
    fn new(threads: usize, single: Timing, threaded: Option<Timing>) -> Self {
        let us = threaded.map(|t| t.wall_best * 1e6);
        Threaded {
            threads: us.map(|_| threads),
            threaded_best_wall_us: us,
            threaded_speedup: us.map(|p| single.wall_best * 1e6 / p),
        }
    }

    /// `(threads, fastest µs, speed-up)` if the step ran split.
    fn figures(&self) -> Option<(usize, f64, f64)> {
        match (
            self.threads,
            self.threaded_best_wall_us,
            self.threaded_speedup,
        ) {
            (Some(n), Some(us), Some(x)) => Some((n, us, x)),
            _ => None,
        }
    }
}

/// One training step: median time.
#[derive(Debug, Serialize)]
pub struct StepRow {
    /// Network widths.
    pub widths: Vec<usize>,
    /// Batch size.
    pub batch: usize,
    /// Median time of one step (forward, loss, backward, AGD update), µs of thread CPU time:
    /// the median over samples, each a run of consecutive steps, of their time per step.
    pub median_us: f64,
    /// The fastest sample's wall-clock time per step, µs.
    pub best_wall_us: f64,
    /// Median time of the same step with the gradient norms taken in a pass of their own
    /// (`compute_grads`, then `Agd::step`) instead of with the gradient product
    /// (`train_step`), µs of thread CPU time, timed in the same interleaved rounds.
    pub separate_norms_median_us: f64,
    /// The target from the performance issue, µs.
    pub target_us: f64,
    /// The step's matrix products timed alone in this run, µs: the sum, over every product
    /// the step runs, of its time at the `ours_gflops` of its row in `gemm` or
    /// `gemm_backward` (each timed alone, over and over, on operands left in cache). What
    /// the step would take with nothing but its products and no cold operand; null for a
    /// step whose products are not all rows of this report.
    pub products_alone_us: Option<f64>,
    /// One core's FMA peak, GFLOP/s, measured in the same interleaved rounds as the step
    /// (null without AVX2 and FMA): on a VM whose speed moves between runs, it says how fast
    /// the core ran while the step was timed.
    pub fma_peak_gflops: Option<f64>,
    /// The batch-parallel run, as three fields of this row.
    #[serde(flatten)]
    pub threaded: Threaded,
}

/// Training steps per MNIST epoch at batch 128 (60,000 / 128, the last one partial).
const MNIST_STEPS_PER_EPOCH: usize = 469;

/// The CNN training step: median time and what it means for an MNIST epoch.
#[derive(Debug, Serialize)]
pub struct CnnStepRow {
    /// The layers in `--layers` syntax.
    pub layers: String,
    /// Batch size.
    pub batch: usize,
    /// Median time of one step (forward, loss, backward, AGD update), µs of thread CPU time:
    /// the median over samples, each a run of consecutive steps, of their time per step.
    pub median_us: f64,
    /// The fastest sample's wall-clock time per step, µs.
    pub best_wall_us: f64,
    /// `469 · median_us`: one MNIST training epoch on one thread, s.
    pub epoch_seconds: f64,
    /// The issue's target for that epoch, s.
    pub target_epoch_seconds: f64,
    /// `median_us` over the `[784, 256, 256, 10]` b128 step's median in the same run.
    pub vs_dense_step: f64,
    /// One core's FMA peak, GFLOP/s, measured in the same interleaved rounds as the step
    /// (null without AVX2 and FMA).
    pub fma_peak_gflops: Option<f64>,
    /// The batch-parallel run, as three fields of this row.
    #[serde(flatten)]
    pub threaded: Threaded,
}

/// One kernel's speed on one shape ([`KernelRow`]).
#[derive(Debug, Serialize)]
pub struct KernelSpeed {
    /// [`agd_simd::Kernel::name`].
    pub kernel: &'static str,
    /// GFLOP/s.
    pub gflops: f64,
    /// `gflops / matrixmultiply_gflops` of the row.
    pub ratio: f64,
}

/// One forward-layout (`nt`) shape on every matrix kernel this CPU runs, named through
/// [`agd_simd::Kernel`], and on the `matrixmultiply` crate, in the same interleaved rounds.
#[derive(Debug, Serialize)]
pub struct KernelRow {
    /// Rows of `C`.
    pub m: usize,
    /// Depth.
    pub k: usize,
    /// Columns of `C`.
    pub n: usize,
    /// The `matrixmultiply` crate on the same operands.
    pub matrixmultiply_gflops: f64,
    /// Each kernel this CPU runs, fastest first ([`agd_simd::Kernel::runnable`]).
    pub kernels: Vec<KernelSpeed>,
}

/// [`agd_simd::cache_tuning`]: the cache geometry CPUID gave and the two memory measures
/// the blocked products took from it.
#[derive(Debug, Serialize)]
pub struct CacheRow {
    /// Ways of the L1 data cache (`null` where CPUID does not say).
    pub l1d_ways: Option<u32>,
    /// KiB of the L2 cache (`null` where CPUID does not say).
    pub l2_kib: Option<u64>,
    /// Whether large products prefetched their next lines.
    pub prefetch: bool,
    /// Whether weight gradients with rows of `A` a multiple of 2 KiB apart copied `A`.
    pub copy_a: bool,
}

impl CacheRow {
    /// This CPU's.
    fn probe() -> CacheRow {
        let t = agd_simd::cache_tuning();
        CacheRow {
            l1d_ways: t.l1d_ways,
            l2_kib: t.l2_bytes.map(|b| b >> 10),
            prefetch: t.prefetch,
            copy_a: t.copy_a,
        }
    }
}

/// Everything `agd bench` measures.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Forward-layout products at every shape.
    pub gemm: Vec<GemmRow>,
    /// The back-propagation (`nn`) and weight-gradient (`tn`) layouts at the shapes the
    /// `[784, 256, 256, 10]` b128 step runs.
    pub gemm_backward: Vec<GemmRow>,
    /// The square shapes as the plain product `C = A B` (`nn`).
    pub gemm_square: Vec<GemmRow>,
    /// The forward-layout shapes on every matrix kernel this CPU runs, side by side.
    pub kernels: Vec<KernelRow>,
    /// Training steps.
    pub step: Vec<StepRow>,
    /// The issue's MNIST CNN training step, batch 128, one thread.
    pub cnn_step: CnnStepRow,
    /// One power-iteration round on a 784 x 256 matrix, µs.
    pub power_iteration_us: f64,
    /// Whether the operands and networks above got huge pages ([`agd_host::pages`]).
    pub huge_pages: pages::HugePageProbe,
    /// What the medians are in: `"thread_cpu"` (the thread's CPU time) or `"wall"` (the
    /// monotonic wall clock, on an OS without a fine thread CPU clock: [`agd_host::timing`]).
    pub clock: &'static str,
    /// The matrix kernel the products ran on ([`agd_simd::kernel`]: `"avx512"`,
    /// `"portable-avx2"`, `"portable-sse2"`, `"portable-neon"`, …).
    pub kernel: &'static str,
    /// What the products did beyond their tiles on this CPU's caches.
    pub cache: CacheRow,
    /// `true` for a `--quick` run.
    pub quick: bool,
}

/// Runs every benchmark and prints the report.
pub fn run(args: &Args) -> Result<bool, HostError> {
    let report = measure(args.quick, usize::from(args.threads))?;
    if args.json {
        let text = serde_json::to_string(&report).map_err(|e| HostError::Usage(e.to_string()))?;
        println!("{text}");
    } else {
        print_tables(&report);
    }
    Ok(true)
}

/// Timing budget of one contender on one case.
struct Budget {
    rounds: usize,
    sample: Duration,
}

/// Per-call seconds of one contender: the median of the samples' thread CPU time (time
/// spent descheduled by other processes on this shared machine does not count) and the
/// fastest sample's wall time.
#[derive(Debug, Clone, Copy)]
struct Timing {
    cpu_median: f64,
    wall_best: f64,
}

/// Times several contenders in interleaved rounds.
fn race(budget: &Budget, fs: &mut [&mut dyn FnMut()]) -> Vec<Timing> {
    race_weighted(budget, fs, &vec![1.0; fs.len()])
}

/// [`race`] with contender `i`'s samples lasting about `weights[i] · budget.sample`.
fn race_weighted(budget: &Budget, fs: &mut [&mut dyn FnMut()], weights: &[f64]) -> Vec<Timing> {
    // Calibrate: calls per sample so that a sample lasts about its share of `budget.sample`.
    let reps: Vec<u64> = fs
        .iter_mut()
        .zip(weights)
        .map(|(f, &w)| {
            f();
            let t = Instant::now();
            f();
            let one = t.elapsed().as_secs_f64().max(1e-9);
            ((w * budget.sample.as_secs_f64() / one) as u64).clamp(1, 1_000_000)
        })
        .collect();
    let mut cpu = vec![Vec::with_capacity(budget.rounds); fs.len()];
    let mut wall = vec![f64::INFINITY; fs.len()];
    for _ in 0..budget.rounds {
        for (((f, &r), c), w) in fs.iter_mut().zip(&reps).zip(&mut cpu).zip(&mut wall) {
            let c0 = thread_cpu();
            let start = Instant::now();
            for _ in 0..r {
                f();
            }
            let el = start.elapsed().as_secs_f64() / r as f64;
            c.push((thread_cpu() - c0) / r as f64);
            *w = w.min(el);
        }
    }
    cpu.into_iter()
        .zip(wall)
        .map(|(c, w)| Timing {
            cpu_median: median(c),
            wall_best: w,
        })
        .collect()
}

/// FMA-peak rounds per call of a peak contender: 3 MFLOP with AVX-512, about 20 µs.
const PEAK_ITERS: usize = 4096;

/// Share of a step's sample given to the FMA peak beside it: enough rounds to take a median,
/// little added to the run.
const PEAK_WEIGHT: f64 = 0.1;

/// Times `contenders` in interleaved rounds with the FMA peak, where the CPU has one, as one
/// more contender whose samples last `peak_weight` of the others': the timings in the order
/// given, and the peak in GFLOP/s (`PEAK_ITERS` rounds a call, long enough that the call costs
/// nothing next to it).
fn race_with_peak(
    budget: &Budget,
    contenders: Vec<&mut dyn FnMut()>,
    peak_weight: f64,
) -> (Vec<Timing>, Option<f64>) {
    let peak = FmaPeak::detect();
    let mut peak_call = || {
        if let Some(p) = peak {
            black_box(p.run(black_box(PEAK_ITERS)));
        }
    };
    let n = contenders.len();
    // Moved into a new vector one by one, each re-borrowed for this function only: the peak's
    // closure below does not live as long as the caller's contenders.
    let mut fs: Vec<&mut dyn FnMut()> = Vec::with_capacity(n + 1);
    for f in contenders {
        fs.push(f);
    }
    let mut weights = vec![1.0; n];
    if peak.is_some() {
        fs.push(&mut peak_call);
        weights.push(peak_weight);
    }
    let mut t = race_weighted(budget, &mut fs, &weights);
    let gflops = peak.map(|p| p.flops(PEAK_ITERS) / t[n].cpu_median / 1e9);
    t.truncate(n);
    (t, gflops)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Uniform on `[-0.5, 0.5)`.
fn uniform_one(rng: &mut SplitMix64) -> f32 {
    (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32 - 0.5
}

fn uniform(rng: &mut SplitMix64, len: usize) -> Vec<f32> {
    (0..len).map(|_| uniform_one(rng)).collect()
}

/// `values` where the networks keep their buffers, on huge pages ([`agd_host::pages`]): every
/// contender's operands live in memory like the weights and activations a step hands it.
fn on_pages(values: &[f32]) -> HugeBuf<f32> {
    HugeBuf::copy_of(values).expect("memory for a benchmark's operands")
}

/// `C = A Bᵀ` (`nt`), `A B` (`nn`) or `Aᵀ B` (`tn`) by the `matrixmultiply` crate, the
/// strides describing our layouts: `A` stored `m x k` (`k x m` for `tn`), `B` stored `k x n`
/// (`n x k` for `nt`), `C` `m x n`.
fn matrixmultiply_sgemm(
    op: &str,
    (m, k, n): (usize, usize, usize),
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    let (rsa, csa) = if op == "tn" { (1, m) } else { (k, 1) };
    let (rsb, csb) = if op == "nt" { (1, k) } else { (n, 1) };
    // SAFETY: the strides keep every index inside `a` (m·k values), `b` (k·n) and `c` (m·n),
    // whose lengths were checked above.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        )
    }
}

/// The seeded operands of one product shape on huge pages, the same for every table and
/// contender that times it: `A` (`m·k` values) and `B` (`k·n`), uniform in `[-0.5, 0.5)`.
fn product_operands((m, k, n): (usize, usize, usize)) -> (HugeBuf<f32>, HugeBuf<f32>) {
    let mut rng = SplitMix64::new((m * 31 + k * 7 + n) as u64);
    let a = on_pages(&uniform(&mut rng, m * k));
    let b = on_pages(&uniform(&mut rng, k * n));
    (a, b)
}

/// GFLOP/s of one `m x k x n` product taking `secs`.
fn gflops((m, k, n): (usize, usize, usize), secs: f64) -> f64 {
    2.0 * (m * n * k) as f64 / secs / 1e9
}

/// Whether `x` agrees with `reference`, an entry of a depth-`k` product of values in
/// `[-0.5, 0.5)`, up to the rounding of two summation orders.
fn agrees(x: f32, reference: f32, k: usize) -> bool {
    (x - reference).abs() <= 1e-4 * (1.0 + reference.abs()) * (k as f32).sqrt()
}

/// `C = A Bᵀ` (`nt`), `A B` (`nn`) or `Aᵀ B` (`tn`) by all three contenders.
fn gemm_row(op: &'static str, (m, k, n): (usize, usize, usize), quick: bool) -> GemmRow {
    let (a, b) = product_operands((m, k, n));
    let mut c1 = HugeBuf::zeros(m * n).expect("memory for a benchmark's operands");
    let mut c2 = HugeBuf::zeros(m * n).expect("memory for a benchmark's operands");
    let mut c3 = vec![0.0f32; m * n];
    let ours = |c: &mut [f32]| {
        let r = match op {
            "nt" => agd_simd::matmul_nt(m, n, k, 1.0, &a, &b, 0.0, c),
            "nn" => agd_simd::matmul_nn(m, n, k, 1.0, &a, &b, 0.0, c),
            _ => agd_simd::matmul_tn(m, n, k, 1.0, &a, &b, 0.0, c),
        };
        r.expect("operands sized for the shape");
    };
    let samples = if quick { 3 } else { 61 };
    let budget = Budget {
        rounds: samples,
        sample: Duration::from_micros(if quick { 200 } else { 500 }),
    };
    // The naive loop is slow at the big shapes: one round of one call is enough to place it.
    let naive_budget = Budget {
        rounds: if quick { 1 } else { 3 },
        sample: Duration::from_micros(1),
    };
    let mut ours_call = || ours(black_box(&mut c1));
    let mut mm_call = || matrixmultiply_sgemm(op, (m, k, n), &a, &b, black_box(&mut c2));
    // The FMA peak as a third contender with samples as long as the products'.
    let (t, fma_peak_gflops) = race_with_peak(&budget, vec![&mut ours_call, &mut mm_call], 1.0);
    let tn = race(
        &naive_budget,
        &mut [&mut || match op {
            "nt" => agd_simd::naive::matmul_nt(m, n, k, 1.0, &a, &b, 0.0, black_box(&mut c3)),
            "nn" => agd_simd::naive::matmul_nn(m, n, k, 1.0, &a, &b, 0.0, black_box(&mut c3)),
            _ => agd_simd::naive::matmul_tn(m, n, k, 1.0, &a, &b, 0.0, black_box(&mut c3)),
        }],
    );
    // The three must agree, or the speed figures compare different work.
    for (&x, (&y, &z)) in c1.iter().zip(c2.iter().zip(&c3)) {
        assert!(
            agrees(x, z, k) && agrees(y, z, k),
            "{op} {m}x{k}x{n}: results disagree"
        );
    }
    let g = |secs: f64| gflops((m, k, n), secs);
    GemmRow {
        op,
        m,
        k,
        n,
        ours_gflops: g(t[0].cpu_median),
        matrixmultiply_gflops: g(t[1].cpu_median),
        naive_gflops: g(tn[0].cpu_median),
        ratio: t[1].cpu_median / t[0].cpu_median,
        fma_peak_gflops,
        ours_of_peak: fma_peak_gflops.map(|p| g(t[0].cpu_median) / p),
    }
}

/// `C = A Bᵀ` on every kernel this CPU runs and on matrixmultiply, in interleaved rounds;
/// every kernel's `C` checked against matrixmultiply's.
fn kernel_row((m, k, n): (usize, usize, usize), quick: bool) -> KernelRow {
    let (a, b) = product_operands((m, k, n));
    let kernels: Vec<agd_simd::Kernel> = agd_simd::Kernel::runnable().collect();
    let mut cs: Vec<HugeBuf<f32>> = (0..=kernels.len())
        .map(|_| HugeBuf::zeros(m * n).expect("memory for a benchmark's operands"))
        .collect();
    let (mm_c, kernel_cs) = cs.split_last_mut().expect("one C for matrixmultiply");
    let mut calls: Vec<Box<dyn FnMut() + '_>> = kernels
        .iter()
        .zip(kernel_cs.iter_mut())
        .map(|(&kernel, c)| {
            let (a, b) = (&a, &b);
            Box::new(move || {
                kernel
                    .matmul_nt(m, n, k, 1.0, a, b, 0.0, black_box(&mut c[..]))
                    .expect("an available kernel and operands sized for the shape");
            }) as Box<dyn FnMut()>
        })
        .collect();
    calls.push(Box::new(|| {
        matrixmultiply_sgemm("nt", (m, k, n), &a, &b, black_box(&mut mm_c[..]));
    }));
    let budget = Budget {
        rounds: if quick { 3 } else { 31 },
        sample: Duration::from_micros(if quick { 200 } else { 500 }),
    };
    let mut fs: Vec<&mut dyn FnMut()> = calls.iter_mut().map(|f| &mut **f as _).collect();
    let t = race(&budget, &mut fs);
    drop(fs);
    drop(calls);
    let (mm_c, kernel_cs) = cs.split_last().expect("one C for matrixmultiply");
    for (kernel, c) in kernels.iter().zip(kernel_cs) {
        for (&x, &y) in c.iter().zip(mm_c.iter()) {
            assert!(
                agrees(x, y, k),
                "{} {m}x{k}x{n}: results disagree with matrixmultiply",
                kernel.name()
            );
        }
    }
    let g = |secs: f64| gflops((m, k, n), secs);
    let mm = t.last().expect("matrixmultiply's timing").cpu_median;
    KernelRow {
        m,
        k,
        n,
        matrixmultiply_gflops: g(mm),
        kernels: kernels
            .iter()
            .zip(&t)
            .map(|(kernel, t)| KernelSpeed {
                kernel: kernel.name(),
                gflops: g(t.cpu_median),
                ratio: mm / t.cpu_median,
            })
            .collect(),
    }
}

/// Median time of one full training step.
fn step_row(
    widths: &[usize],
    batch: usize,
    target_us: f64,
    quick: bool,
    threads: usize,
) -> Result<StepRow, HostError> {
    let mut net = HostNet::<f32>::new(widths, batch, true)?;
    let mut rng = SplitMix64::new(7);
    // Dense kernels take the same time whatever the weights, so a cheap random start with
    // the orthogonal start's scale (row norms about sqrt(d_out/d_in)·…) stands in for
    // `init_orthogonal`, which takes seconds at width 1024.
    let mut off = 0;
    let w = net.weights_mut();
    for pair in widths.windows(2) {
        let (d_in, d_out) = (pair[0], pair[1]);
        let s = (3.0 / d_in as f32).sqrt() * 2.0;
        for v in &mut w[off..off + d_in * d_out] {
            *v = uniform_one(&mut rng) * s;
        }
        off += d_in * d_out;
    }
    let x: Vec<f32> = uniform(&mut rng, batch * widths[0])
        .into_iter()
        .map(|v| v + 0.5)
        .collect();
    let classes = *widths.last().expect("widths are non-empty");
    let y: Vec<usize> = (0..batch)
        .map(|_| rng.next_u32() as usize % classes)
        .collect();
    let agd = Agd::new();
    let mut failure = None;
    let big = widths.iter().sum::<usize>() > 2000;
    // Each sample is a run of consecutive steps of one contender, as training runs them
    // (BENCHMARKS.md, "How the figures are taken"): a step timed right after another
    // contender's starts from caches that one filled (the `[784,1024³,10]` step so took
    // 20.6–21.4 ms against 16.4–16.8 ms a step in `agd train`'s epochs).
    let (rounds, sample_ms) = match (quick, big) {
        (true, true) => (3, 40),
        (true, false) => (5, 5),
        (false, true) => (15, 200),
        (false, false) => (21, 50),
    };
    let budget = Budget {
        rounds,
        sample: Duration::from_millis(sample_ms),
    };
    let mut par = DataParallel::<f32>::new(widths, batch, threads)?;
    // A batch of one cannot be split: no threaded figure then.
    let threads = par.threads();
    par.net().weights_mut().copy_from_slice(net.weights());
    par.sync();
    // The same step with the norms in a pass of their own, on a copy of the network.
    let mut separate_net = HostNet::<f32>::new(widths, batch, true)?;
    separate_net.weights_mut().copy_from_slice(net.weights());
    let mut separate_failure = None;
    let mut separate = || {
        let mut view = separate_net.view();
        let r = view
            .set_input(&x)
            .and_then(|_| view.compute_grads(Loss::Xent, &y))
            .and_then(|_| {
                let (layout, w, g) = view.step_parts();
                agd.step(layout, w, g)
            });
        if let Err(e) = r {
            separate_failure = Some(e);
        }
    };
    let mut par_failure = None;
    let mut single = || {
        let mut view = net.view();
        let r = view
            .set_input(&x)
            .and_then(|_| view.train_step(&agd, Loss::Xent, &y));
        if let Err(e) = r {
            failure = Some(e);
        }
    };
    let mut parallel = || {
        if let Err(e) = par.train_step(&agd, Loss::Xent, &x, &y) {
            par_failure = Some(e);
        }
    };
    let mut contenders: Vec<&mut dyn FnMut()> = vec![&mut single, &mut separate];
    if threads > 1 {
        contenders.push(&mut parallel);
    }
    let (t, fma_peak_gflops) = race_with_peak(&budget, contenders, PEAK_WEIGHT);
    if let Some(e) = failure.or(separate_failure).or(par_failure) {
        return Err(e.into());
    }
    Ok(StepRow {
        widths: widths.to_vec(),
        batch,
        median_us: t[0].cpu_median * 1e6,
        best_wall_us: t[0].wall_best * 1e6,
        separate_norms_median_us: t[1].cpu_median * 1e6,
        target_us,
        products_alone_us: None,
        fma_peak_gflops,
        threaded: Threaded::new(threads, t[0], t.get(2).copied()),
    })
}

/// Median time of the CNN's training step (orthogonal start, uniform inputs), and with
/// `threads > 1` its fastest batch-parallel step.
fn cnn_step_row(
    quick: bool,
    dense_median_us: f64,
    threads: usize,
) -> Result<CnnStepRow, HostError> {
    let batch = 128;
    let mut net = HostConvNet::<f32>::new(&MNIST_CNN, batch)?;
    let mut rng = SplitMix64::new(7);
    net.view().init_orthogonal(&mut rng);
    let x = uniform(&mut rng, batch * 784);
    let y: Vec<usize> = (0..batch).map(|_| rng.next_u32() as usize % 10).collect();
    let agd = Agd::new();
    let mut par = DataParallel::new_conv(&MNIST_CNN, batch, threads)?;
    let threads = par.threads();
    par.net().weights_mut().copy_from_slice(net.weights());
    par.sync();
    let (mut failure, mut par_failure) = (None, None);
    // Runs of about 8 consecutive steps per sample, as for the dense steps: a CNN step timed
    // right after the two-thread one took 8–10 % longer than the steps of `agd train`'s epochs.
    let budget = Budget {
        rounds: if quick { 3 } else { 21 },
        sample: Duration::from_millis(if quick { 30 } else { 100 }),
    };
    let mut single = || {
        let mut view = net.view();
        if let Err(e) = view
            .set_input(&x)
            .and_then(|_| view.train_step(&agd, Loss::Xent, &y))
        {
            failure = Some(e);
        }
    };
    let mut parallel = || {
        if let Err(e) = par.train_step(&agd, Loss::Xent, &x, &y) {
            par_failure = Some(e);
        }
    };
    let mut contenders: Vec<&mut dyn FnMut()> = vec![&mut single];
    if threads > 1 {
        contenders.push(&mut parallel);
    }
    let (t, fma_peak_gflops) = race_with_peak(&budget, contenders, PEAK_WEIGHT);
    if let Some(e) = failure.or(par_failure) {
        return Err(e.into());
    }
    let median_us = t[0].cpu_median * 1e6;
    Ok(CnnStepRow {
        layers: agd_host::layers::layers_text(&MNIST_CNN),
        batch,
        median_us,
        best_wall_us: t[0].wall_best * 1e6,
        epoch_seconds: median_us * 1e-6 * MNIST_STEPS_PER_EPOCH as f64,
        target_epoch_seconds: 6.0,
        vs_dense_step: median_us / dense_median_us,
        fma_peak_gflops,
        threaded: Threaded::new(threads, t[0], t.get(1).copied()),
    })
}

/// The `[784, 256, 256, 10]` b128 step's products other than the forward ones (`STEPS[0]`,
/// [`step_products`]): the errors `Δ_prev = Δ W` (`nn`), then the weight gradients `G = Δᵀ H`
/// (`tn`), each in layer order.
fn backward_shapes() -> Vec<(&'static str, usize, usize, usize)> {
    let shapes = step_products(STEPS[0].0, STEPS[0].1);
    ["nn", "tn"]
        .into_iter()
        .flat_map(|op| shapes.iter().copied().filter(move |s| s.0 == op))
        .collect()
}

/// Every benchmark, in the order of the report.
pub fn measure(quick: bool, threads: usize) -> Result<Report, HostError> {
    let gemm: Vec<GemmRow> = GEMM_SHAPES
        .iter()
        .map(|&s| gemm_row("nt", s, quick))
        .collect();
    let gemm_backward: Vec<GemmRow> = backward_shapes()
        .into_iter()
        .map(|(op, m, k, n)| gemm_row(op, (m, k, n), quick))
        .collect();
    let gemm_square: Vec<GemmRow> = SQUARE_SHAPES
        .iter()
        .map(|&s| gemm_row("nn", s, quick))
        .collect();
    let kernels: Vec<KernelRow> = GEMM_SHAPES.iter().map(|&s| kernel_row(s, quick)).collect();
    let mut step = Vec::new();
    for (widths, batch, target) in STEPS {
        let mut row = step_row(widths, batch, target, quick, threads)?;
        row.products_alone_us = products_alone_us(widths, batch, &[&gemm, &gemm_backward]);
        step.push(row);
    }
    let cnn_step = cnn_step_row(quick, step[0].median_us, threads)?;
    let (rows, cols) = (784, 256);
    let mut rng = SplitMix64::new(3);
    let a = on_pages(&uniform(&mut rng, rows * cols));
    let mut v = uniform(&mut rng, cols);
    let mut u = vec![0.0f32; rows];
    let budget = Budget {
        rounds: if quick { 5 } else { 51 },
        sample: Duration::from_micros(if quick { 200 } else { 2000 }),
    };
    let t = race(
        &budget,
        &mut [&mut || {
            black_box(agd_simd::power_iteration(&a, rows, cols, &mut v, &mut u, 1).ok());
        }],
    );
    Ok(Report {
        gemm,
        gemm_backward,
        gemm_square,
        kernels,
        step,
        cnn_step,
        power_iteration_us: t[0].cpu_median * 1e6,
        huge_pages: pages::probe(),
        clock: agd_host::timing::CLOCK,
        kernel: agd_simd::kernel(),
        cache: CacheRow::probe(),
        quick,
    })
}

/// The products of a dense step (widths `d_0..d_L`, batch `b`), as `(op, m, k, n)`: per layer
/// the forward `Z = H Wᵀ` (`nt`, `b x d_in x d_out`) and the weight gradient `G = Δᵀ H` (`tn`,
/// `d_out x b x d_in`), and for every layer but the first the errors `Δ W` (`nn`, `b x d_out x
/// d_in`).
fn step_products(widths: &[usize], b: usize) -> Vec<(&'static str, usize, usize, usize)> {
    let mut v = Vec::new();
    for (l, pair) in widths.windows(2).enumerate() {
        let (d_in, d_out) = (pair[0], pair[1]);
        v.push(("nt", b, d_in, d_out));
        v.push(("tn", d_out, b, d_in));
        if l > 0 {
            v.push(("nn", b, d_out, d_in));
        }
    }
    v
}

/// [`StepRow::products_alone_us`]: the step's products at the speeds their rows measured,
/// µs; `None` if a product has no row.
fn products_alone_us(widths: &[usize], batch: usize, tables: &[&[GemmRow]]) -> Option<f64> {
    step_products(widths, batch)
        .into_iter()
        .map(|(op, m, k, n)| {
            let row = tables
                .iter()
                .flat_map(|t| t.iter())
                .find(|r| (r.op, r.m, r.k, r.n) == (op, m, k, n))?;
            Some(2.0 * (m * k * n) as f64 / (row.ours_gflops * 1e3))
        })
        .sum()
}

fn print_gemm(title: &str, rows: &[GemmRow]) {
    println!("{title}");
    println!(
        "  {:<3} {:>4} {:>4} {:>4}  {:>9} {:>15} {:>8}  {:>8}  {:>9}  {:>9}",
        "op", "M", "K", "N", "ours", "matrixmultiply", "naive", "ours/mm", "FMA peak", "ours/peak"
    );
    for r in rows {
        let (peak, of) = match (r.fma_peak_gflops, r.ours_of_peak) {
            (Some(p), Some(f)) => (format!("{p:.1}"), format!("{:.0} %", 100.0 * f)),
            _ => ("-".to_string(), "-".to_string()),
        };
        println!(
            "  {:<3} {:>4} {:>4} {:>4}  {:>9.1} {:>15.1} {:>8.2}  {:>7.2}x  {:>9}  {:>9}",
            r.op,
            r.m,
            r.k,
            r.n,
            r.ours_gflops,
            r.matrixmultiply_gflops,
            r.naive_gflops,
            r.ratio,
            peak,
            of
        );
    }
}

/// The named kernels' table: GFLOP/s (and the ratio to matrixmultiply) per kernel.
fn print_kernels(rows: &[KernelRow]) {
    let Some(first) = rows.first() else { return };
    println!("every matrix kernel this CPU runs, C = A·Bᵀ (GFLOP/s, ours/matrixmultiply)");
    let mut head = format!("  {:>4} {:>4} {:>4}", "M", "K", "N");
    for s in &first.kernels {
        head += &format!("  {:>20}", s.kernel);
    }
    println!("{head}  {:>15}", "matrixmultiply");
    for r in rows {
        let mut line = format!("  {:>4} {:>4} {:>4}", r.m, r.k, r.n);
        for s in &r.kernels {
            line += &format!("  {:>20}", format!("{:.1} ({:.2}x)", s.gflops, s.ratio));
        }
        println!("{line}  {:>15.1}", r.matrixmultiply_gflops);
    }
}

/// An FMA peak in GFLOP/s for the tables, `-` where there is none.
fn peak_text(gflops: Option<f64>) -> String {
    gflops.map_or_else(|| "-".to_string(), |g| format!("{g:.0}"))
}

fn print_tables(r: &Report) {
    print_gemm(
        "matrix products, f32, one thread (GFLOP/s; C = A·Bᵀ, A is M x K)",
        &r.gemm,
    );
    print_gemm(
        "back-propagation products of the [784,256,256,10] b128 step (GFLOP/s)",
        &r.gemm_backward,
    );
    print_gemm(
        "square products as plain C = A·B (nn: B read as stored, not transposed) (GFLOP/s)",
        &r.gemm_square,
    );
    print_kernels(&r.kernels);
    println!("AGD training step (forward, loss, backward, update), f32, one thread");
    println!(
        "  {:<28} {:>5} {:>10} {:>10} {:>12} {:>22} {:>22} {:>9}",
        "widths",
        "batch",
        "median µs",
        "target µs",
        "best wall µs",
        "N threads: best µs (x)",
        "separate norms µs (x)",
        "FMA peak"
    );
    for s in &r.step {
        let par = match s.threaded.figures() {
            Some((n, us, x)) => format!("{n}: {us:.1} ({x:.2}x)"),
            None => "-".to_string(),
        };
        let separate = format!(
            "{:.1} ({:.3}x)",
            s.separate_norms_median_us,
            s.median_us / s.separate_norms_median_us
        );
        println!(
            "  {:<28} {:>5} {:>10.1} {:>10.0} {:>12.1} {:>22} {:>22} {:>9}",
            format!("{:?}", s.widths),
            s.batch,
            s.median_us,
            s.target_us,
            s.best_wall_us,
            par,
            separate,
            peak_text(s.fma_peak_gflops)
        );
    }
    for s in &r.step {
        if let Some(us) = s.products_alone_us {
            println!(
                "  the {:?} b{} step's products, each timed alone (rows above): {us:.1} µs, \
                 {:.0} % of its median",
                s.widths,
                s.batch,
                100.0 * us / s.median_us
            );
        }
    }
    let c = &r.cnn_step;
    println!(
        "MNIST CNN {} b{}, f32, one thread: median {:.0} µs per step ({:.2}x the \
         [784,256,256,10] step), {:.1} s per epoch of {MNIST_STEPS_PER_EPOCH} steps \
         (target {:.0} s); FMA peak {} GFLOP/s",
        c.layers,
        c.batch,
        c.median_us,
        c.vs_dense_step,
        c.epoch_seconds,
        c.target_epoch_seconds,
        peak_text(c.fma_peak_gflops)
    );
    if let Some((n, us, x)) = c.threaded.figures() {
        println!(
            "  fastest run of steps by the wall clock {:.0} µs a step; on {n} threads {us:.0} µs ({x:.2}x)",
            c.best_wall_us
        );
    }
    println!(
        "power iteration, one round on 784 x 256: {:.2} µs",
        r.power_iteration_us
    );
    let h = &r.huge_pages;
    println!(
        "memory: transparent huge pages {}; {}",
        h.thp_mode.as_deref().unwrap_or("unavailable"),
        match h.probe_huge_kib {
            Some(0) => "a 4 MiB probe buffer got none: operands and networks sat on 4 KiB \
                        pages, slower (docs/benchmark-history.md, session 13)"
                .to_string(),
            Some(k) => format!("a 4 MiB probe buffer's mapping holds {k} KiB of them"),
            None => "could not tell whether buffers got them".to_string(),
        }
    );
    println!(
        "kernel: {} (AVX-512 where the CPU has it, else as agd-simd was compiled: README, \
         \"In your own project\")",
        r.kernel
    );
    let c = &r.cache;
    let known =
        |v: Option<u64>, unit: &str| v.map_or("unknown".to_string(), |v| format!("{v}{unit}"));
    println!(
        "caches: L1d {} ways, L2 {}: large products {}prefetch, 2 KiB-strided weight gradients \
         {}copy A (BENCHMARKS.md, session 26)",
        known(c.l1d_ways.map(u64::from), ""),
        known(c.l2_kib, " KiB"),
        if c.prefetch { "" } else { "do not " },
        if c.copy_a { "" } else { "do not " },
    );
    if r.clock != "thread_cpu" {
        println!(
            "times: the wall clock, not thread CPU time (this OS has no fine thread CPU clock), \
             so time the machine spent elsewhere counts too"
        );
    }
    if r.quick {
        println!("(--quick: few rounds; rerun without it for figures to quote)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gemm(op: &'static str, (m, k, n): (usize, usize, usize), ours_gflops: f64) -> GemmRow {
        GemmRow {
            op,
            m,
            k,
            n,
            ours_gflops,
            matrixmultiply_gflops: 1.0,
            naive_gflops: 1.0,
            ratio: 1.0,
            fma_peak_gflops: None,
            ours_of_peak: None,
        }
    }

    /// A step's products are its layers' forward and weight-gradient products and every
    /// layer's but the first errors, each timed at its own row's speed; a missing row gives
    /// no figure, and a row of the right shape in the wrong layout does not stand in.
    #[test]
    fn products_alone_sum_the_steps_products_at_their_rows_speeds() {
        assert_eq!(
            step_products(&[4, 3, 2], 5),
            [
                ("nt", 5, 4, 3),
                ("tn", 3, 5, 4),
                ("nt", 5, 3, 2),
                ("tn", 2, 5, 3),
                ("nn", 5, 2, 3),
            ]
        );
        // 2·m·k·n flops at g GFLOP/s take 2·m·k·n / (1000·g) µs.
        let forward = [gemm("nt", (5, 4, 3), 0.12), gemm("nt", (5, 3, 2), 0.03)];
        let mut backward = vec![
            gemm("tn", (3, 5, 4), 0.06),
            gemm("tn", (2, 5, 3), 0.02),
            gemm("nn", (5, 2, 3), 0.01),
        ];
        let us = products_alone_us(&[4, 3, 2], 5, &[&forward, &backward]).unwrap();
        assert!((us - (1.0 + 2.0 + 2.0 + 3.0 + 6.0)).abs() < 1e-9, "{us}");
        backward[2] = gemm("tn", (5, 2, 3), 0.01);
        assert_eq!(
            products_alone_us(&[4, 3, 2], 5, &[&forward, &backward]),
            None
        );
        // The bench's own rows hold every product of its [784, 256, 256, 10] b128 step, the
        // backward ones in the report's order.
        let backward = backward_shapes();
        assert_eq!(
            backward,
            [
                ("nn", 128, 256, 256),
                ("nn", 128, 10, 256),
                ("tn", 256, 128, 784),
                ("tn", 256, 128, 256),
                ("tn", 10, 128, 256),
            ]
        );
        let shapes = step_products(STEPS[0].0, STEPS[0].1);
        assert_eq!(shapes.len(), 8);
        for (op, m, k, n) in shapes {
            let listed = match op {
                "nt" => GEMM_SHAPES.contains(&(m, k, n)),
                _ => backward.contains(&(op, m, k, n)),
            };
            assert!(listed, "{op} {m}x{k}x{n}");
        }
    }

    /// The threaded figures are three plain fields of each row's JSON, as the docs
    /// (README, BENCHMARKS.md) list them: numbers after a split step, nulls otherwise.
    #[test]
    fn threaded_fields_sit_flat_in_both_rows() {
        let timing = |wall_best| Timing {
            cpu_median: 0.0,
            wall_best,
        };
        let row = |threaded| StepRow {
            widths: vec![64, 10],
            batch: 2,
            median_us: 3.0,
            best_wall_us: 4.0,
            separate_norms_median_us: 5.0,
            target_us: 6.0,
            products_alone_us: None,
            fma_peak_gflops: Some(7.0),
            threaded,
        };
        let split = Threaded::new(2, timing(0.75), Some(timing(0.5)));
        assert_eq!(
            serde_json::to_string(&row(split)).unwrap(),
            r#"{"widths":[64,10],"batch":2,"median_us":3.0,"best_wall_us":4.0,"#.to_string()
                + r#""separate_norms_median_us":5.0,"target_us":6.0,"#
                + r#""products_alone_us":null,"fma_peak_gflops":7.0,"threads":2,"#
                + r#""threaded_best_wall_us":500000.0,"threaded_speedup":1.5}"#
        );
        let whole = Threaded::new(2, timing(0.75), None);
        assert_eq!(whole.figures(), None);
        let cnn = CnnStepRow {
            layers: "dense10".into(),
            batch: 2,
            median_us: 3.0,
            best_wall_us: 4.0,
            epoch_seconds: 5.0,
            target_epoch_seconds: 6.0,
            vs_dense_step: 7.0,
            fma_peak_gflops: None,
            threaded: whole,
        };
        let nulls = r#""threads":null,"threaded_best_wall_us":null,"threaded_speedup":null}"#;
        let json = serde_json::to_string(&cnn).unwrap();
        assert!(
            json.ends_with(&(r#""vs_dense_step":7.0,"fma_peak_gflops":null,"#.to_string() + nulls)),
            "{json}"
        );
    }
}
