//! Criterion benches of every agd-simd kernel at the sizes an MLP step (and the MNIST CNN's
//! conv layers) use (`cargo bench -p agd-simd-benches`). `agd bench` is the side-by-side
//! comparison with the `matrixmultiply` crate; these track each kernel on its own over time.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn data(len: usize, seed: u32) -> Vec<f32> {
    (0..len)
        .map(|i| {
            ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) as f32
                / (1u32 << 24) as f32
                - 0.5
        })
        .collect()
}

/// `(M, K, N)` of the forward products of `[784, 256, 256, 10]` at batch 128, one sample,
/// and square sizes.
const SHAPES: [(usize, usize, usize); 7] = [
    (128, 784, 256),
    (128, 256, 256),
    (128, 256, 10),
    (1, 784, 256),
    (64, 64, 64),
    (16, 16, 16),
    (256, 256, 256),
];

fn matmul(c: &mut Criterion) {
    for (name, op) in [
        (
            "matmul_nt",
            agd_simd::matmul_nt::<f32>
                as fn(
                    usize,
                    usize,
                    usize,
                    f32,
                    &[f32],
                    &[f32],
                    f32,
                    &mut [f32],
                ) -> Result<(), agd_simd::Error>,
        ),
        ("matmul_nn", agd_simd::matmul_nn::<f32>),
        ("matmul_tn", agd_simd::matmul_tn::<f32>),
    ] {
        let mut g = c.benchmark_group(name);
        for (m, k, n) in SHAPES {
            let a = data(m * k, 1);
            let b = data(k * n, 2);
            let mut out = vec![0.0f32; m * n];
            g.throughput(Throughput::Elements((2 * m * n * k) as u64));
            g.bench_function(BenchmarkId::from_parameter(format!("{m}x{k}x{n}")), |bch| {
                bch.iter(|| op(m, n, k, 1.0, black_box(&a), black_box(&b), 0.0, &mut out).unwrap())
            });
        }
        g.finish();
    }
    // f64 `A·Bᵀ` (the forward layout, whose packing transposes), at the largest MLP shape and
    // the two small cubes.
    let mut g = c.benchmark_group("matmul_nt_f64");
    for (m, k, n) in [(128, 784, 256), (64, 64, 64), (16, 16, 16)] {
        let a: Vec<f64> = data(m * k, 1).into_iter().map(f64::from).collect();
        let b: Vec<f64> = data(k * n, 2).into_iter().map(f64::from).collect();
        let mut out = vec![0.0f64; m * n];
        g.throughput(Throughput::Elements((2 * m * n * k) as u64));
        g.bench_function(BenchmarkId::from_parameter(format!("{m}x{k}x{n}")), |bch| {
            bch.iter(|| {
                agd_simd::matmul_nt(m, n, k, 1.0, black_box(&a), black_box(&b), 0.0, &mut out)
                    .unwrap()
            })
        });
    }
    g.finish();
    // The step's weight gradients (`C = Aᵀ·B`, M x K x N as in `agd bench`), plain and with
    // the sum of squares formed as the gradient is written (what the AGD step uses); the last
    // two are the `[64,64,10]` b1 step's, products of depth 1 (rank-1 updates).
    let mut g = c.benchmark_group("matmul_tn_sum_sq");
    for (m, k, n) in [
        (256, 128, 784),
        (256, 128, 256),
        (10, 128, 256),
        (64, 1, 64),
        (10, 1, 64),
    ] {
        let a = data(k * m, 1);
        let b = data(k * n, 2);
        let mut out = vec![0.0f32; m * n];
        g.throughput(Throughput::Elements((2 * m * n * k) as u64));
        g.bench_function(BenchmarkId::new("plain", format!("{m}x{k}x{n}")), |bch| {
            bch.iter(|| {
                agd_simd::matmul_tn(m, n, k, 1.0, black_box(&a), black_box(&b), 0.0, &mut out)
                    .unwrap()
            })
        });
        g.bench_function(BenchmarkId::new("sum_sq", format!("{m}x{k}x{n}")), |bch| {
            bch.iter(|| {
                agd_simd::matmul_tn_sum_sq(
                    m,
                    n,
                    k,
                    1.0,
                    black_box(&a),
                    black_box(&b),
                    0.0,
                    &mut out,
                )
                .unwrap()
            })
        });
    }
    g.finish();
    // `A·Bᵀ` with a row stride: `A` is 256 columns of a block whose rows are 784 apart (the
    // strided operands the conv layers' products read in place).
    let mut g = c.benchmark_group("matmul_nt_ld");
    let (m, k, n, lda) = (128, 256, 256, 784);
    let a = data(m * lda, 1);
    let b = data(n * k, 2);
    let mut out = vec![0.0f32; m * n];
    let ld = agd_simd::Strides {
        lda,
        ldb: k,
        ldc: n,
    };
    g.throughput(Throughput::Elements((2 * m * n * k) as u64));
    g.bench_function(
        BenchmarkId::from_parameter(format!("{m}x{k}x{n}/lda{lda}")),
        |bch| {
            bch.iter(|| agd_simd::matmul_nt_ld(m, n, k, 1.0, black_box(&a), &b, 0.0, &mut out, ld))
        },
    );
    g.finish();
}

/// Every matrix kernel this CPU runs ([`agd_simd::Kernel`]), the forward layout `C = A·Bᵀ` at
/// the same shapes as `matmul_nt`, one group per shape so criterion's report puts the
/// kernels side by side (`kernel/<M>x<K>x<N>/<name>`).
fn kernels(c: &mut Criterion) {
    let available: Vec<agd_simd::Kernel> = agd_simd::Kernel::runnable().collect();
    for (m, k, n) in SHAPES {
        let a = data(m * k, 1);
        let b = data(k * n, 2);
        let mut out = vec![0.0f32; m * n];
        let mut g = c.benchmark_group(format!("kernel/{m}x{k}x{n}"));
        g.throughput(Throughput::Elements((2 * m * n * k) as u64));
        for &kernel in &available {
            g.bench_function(kernel.name(), |bch| {
                bch.iter(|| {
                    kernel
                        .matmul_nt(m, n, k, 1.0, black_box(&a), black_box(&b), 0.0, &mut out)
                        .unwrap()
                })
            });
        }
        g.finish();
    }
}

/// The convolution kernels at the shapes of the MNIST CNN, one sample: the 16→32
/// stride-2 layer's windows read in place (`_ld`, the products of one kernel row, over all
/// 210 windows; `_grouped`, over the 196 of the output rows, as the layer runs them) and its
/// input gradient added back onto them, and the grey first layer's gathered products.
fn conv(c: &mut Criterion) {
    use agd_simd::{Grid, Strides};
    let mut g = c.benchmark_group("conv");
    // 16→32, 3x3, stride 2 on a padded 28x28 image dealt into row-parity planes: 210 windows
    // (14 rows of 15) of kw·c_in = 48 values, 32 (= stride·c_in) apart.
    let (r, run, co) = (210, 48, 32);
    let image = data(2 * 15 * 30 * 16 + 16, 3);
    let w = data(run * co, 4);
    let d = data(r * co, 5);
    let mut z = vec![0.0f32; r * co];
    let ld = Strides {
        lda: 32,
        ldb: co,
        ldc: co,
    };
    g.throughput(Throughput::Elements((2 * r * run * co) as u64));
    g.bench_function("matmul_nn_ld/210x48x32", |b| {
        b.iter(|| agd_simd::matmul_nn_ld(r, co, run, 1.0, black_box(&image), &w, 0.0, &mut z, ld))
    });
    let mut gw = vec![0.0f32; run * co];
    g.bench_function("matmul_tn_ld/48x210x32", |b| {
        b.iter(|| agd_simd::matmul_tn_ld(run, co, r, 1.0, black_box(&image), &d, 0.0, &mut gw, ld))
    });
    let wt = data(co * run, 6);
    let mut dx = vec![0.0f32; image.len()];
    let back = Strides {
        lda: co,
        ldb: run,
        ldc: 32,
    };
    g.bench_function("matmul_nn_ld_add/210x32x48", |b| {
        b.iter(|| agd_simd::matmul_nn_ld_add(r, run, co, 1.0, black_box(&d), &wt, &mut dx, back))
    });
    // The same products as the layer runs them: the 196 windows of the 14 output rows only,
    // a group per row (the rows 15 windows = 480 values apart in the image, 14 x 32 apart in
    // the output), against the 210 above with their extra windows.
    let (p, groups) = (
        196,
        agd_simd::Groups {
            rows: 14,
            a: 480,
            c: 14 * co,
        },
    );
    g.throughput(Throughput::Elements((2 * p * run * co) as u64));
    g.bench_function("matmul_nn_grouped/196x48x32", |b| {
        b.iter(|| {
            agd_simd::matmul_nn_grouped(
                p,
                co,
                run,
                1.0,
                black_box(&image),
                &w,
                0.0,
                &mut z,
                ld,
                groups,
                &[],
            )
        })
    });
    let back_groups = agd_simd::Groups {
        rows: 14,
        a: 14 * co,
        c: 480,
    };
    g.bench_function("matmul_nn_grouped_add/196x32x48", |b| {
        b.iter(|| {
            agd_simd::matmul_nn_grouped_add(
                p,
                run,
                co,
                1.0,
                black_box(&d),
                &wt,
                &mut dx,
                back,
                back_groups,
                &[],
            )
        })
    });
    // The grey layer: 1→16, 3x3, pad 1 on 28x28, read from a 30x30 padded copy.
    let grid = Grid {
        rows: 28,
        cols: 28,
        row_step: 30,
        col_step: 1,
    };
    let taps: Vec<usize> = (0..3)
        .flat_map(|i| (0..3).map(move |j| i * 30 + j))
        .collect();
    let x = data(30 * 30, 7);
    let wg = data(9 * 16, 8);
    let dg = data(784 * 16, 9);
    let mut zg = vec![0.0f32; 784 * 16];
    let mut gg = vec![0.0f32; 9 * 16];
    g.throughput(Throughput::Elements((2 * 784 * 9 * 16) as u64));
    g.bench_function("matmul_gather/28x28x9x16", |b| {
        b.iter(|| agd_simd::matmul_gather(grid, &taps, black_box(&x), &wg, 16, 0.0, &mut zg, 16))
    });
    g.bench_function("matmul_gather_tn/28x28x9x16", |b| {
        b.iter(|| agd_simd::matmul_gather_tn(grid, &taps, black_box(&x), &dg, 16, 16, 0.0, &mut gg))
    });
    g.finish();
}

fn level1(c: &mut Criterion) {
    let n = 784 * 256;
    let x = data(n, 3);
    let mut y = data(n, 4);
    let mut g = c.benchmark_group("level1");
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("dot", |b| {
        b.iter(|| agd_simd::dot(black_box(&x), black_box(&y)))
    });
    g.bench_function("axpy", |b| {
        b.iter(|| agd_simd::axpy(0.5, black_box(&x), &mut y))
    });
    g.bench_function("scale", |b| {
        b.iter(|| agd_simd::scale(0.999, black_box(&mut y)))
    });
    g.bench_function("amax", |b| b.iter(|| agd_simd::amax(black_box(&x))));
    g.bench_function("nrm2", |b| b.iter(|| agd_simd::nrm2(black_box(&x))));
    g.bench_function("sum_sq_scaled", |b| {
        b.iter(|| agd_simd::sum_sq_scaled(black_box(&x)))
    });
    g.finish();
}

/// One round on a tall matrix (read once: `u_i = a_i·v` and `z += u_i a_i` row by row) and on
/// its wide transpose (two products: `u = A v`, then `v = Aᵀ u`).
fn power(c: &mut Criterion) {
    for (rows, cols) in [(784, 256), (256, 784)] {
        let a = data(rows * cols, 5);
        let mut v = data(cols, 6);
        let mut u = vec![0.0f32; rows];
        c.bench_function(&format!("power_iteration/{rows}x{cols}/1"), |b| {
            b.iter(|| {
                agd_simd::power_iteration(black_box(&a), rows, cols, &mut v, &mut u, 1).unwrap()
            })
        });
    }
}

criterion_group!(benches, matmul, kernels, conv, level1, power);
criterion_main!(benches);
