//! Criterion benches of every agd-simd kernel at the sizes an MLP step uses
//! (`cargo bench -p agd-simd`). `agd bench` is the side-by-side comparison with the
//! `matrixmultiply` crate; these track each kernel on its own over time.

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
    // f64, at the largest MLP shape.
    let (m, k, n) = (128, 784, 256);
    let a: Vec<f64> = data(m * k, 1).into_iter().map(f64::from).collect();
    let b: Vec<f64> = data(k * n, 2).into_iter().map(f64::from).collect();
    let mut out = vec![0.0f64; m * n];
    let mut g = c.benchmark_group("matmul_nt_f64");
    g.throughput(Throughput::Elements((2 * m * n * k) as u64));
    g.bench_function("128x784x256", |bch| {
        bch.iter(|| {
            agd_simd::matmul_nt(m, n, k, 1.0, black_box(&a), black_box(&b), 0.0, &mut out).unwrap()
        })
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

fn power(c: &mut Criterion) {
    let (rows, cols) = (784, 256);
    let a = data(rows * cols, 5);
    let mut v = data(cols, 6);
    let mut u = vec![0.0f32; rows];
    c.bench_function("power_iteration/784x256/1", |b| {
        b.iter(|| agd_simd::power_iteration(black_box(&a), rows, cols, &mut v, &mut u, 1).unwrap())
    });
}

criterion_group!(benches, matmul, level1, power);
criterion_main!(benches);
