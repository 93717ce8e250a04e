//! The gathered products ([`agd_simd::matmul_gather`], [`agd_simd::matmul_gather_tn`]) held
//! against their naive twins, for `f32` and `f64`: small-integer data, so that every
//! summation order gives the same sums and the two must agree to the last bit, over grids
//! with strides 1–3, kernels from 1 x 1 to 5 x 5 (and a 600-tap one, deeper than a packed
//! panel), and every kind of column count (one, under a vector, whole vectors, several
//! panels and a remainder); then the bounds checks.

mod common;

use agd_simd::{Element, Error, Grid, naive};
use common::Rng;

/// Integers in `-4..=4`.
fn ints<T: Element>(rng: &mut Rng, len: usize) -> Vec<T> {
    (0..len)
        .map(|_| T::from_f64(rng.below(9) as f64 - 4.0))
        .collect()
}

/// A padded `h x w` image's grid for a `kh x kw` kernel at `stride`, and its taps.
fn geometry(h: usize, w: usize, kh: usize, kw: usize, stride: usize) -> (Grid, Vec<usize>) {
    let grid = Grid {
        rows: (h - kh) / stride + 1,
        cols: (w - kw) / stride + 1,
        row_step: stride * w,
        col_step: stride,
    };
    let taps = (0..kh)
        .flat_map(|i| (0..kw).map(move |j| i * w + j))
        .collect();
    (grid, taps)
}

fn sweep<T: Element>() {
    let mut rng = Rng::new(0x6A7E);
    let mut cases = vec![
        (30, 30, 3, 3, 1),
        (9, 31, 3, 3, 2),
        (7, 8, 1, 1, 1),
        (12, 12, 5, 5, 3),
    ];
    cases.push((11, 10, 2, 3, 1));
    for &(h, w, kh, kw, stride) in &cases {
        let (grid, taps) = geometry(h, w, kh, kw, stride);
        let p = grid.rows * grid.cols;
        let k = taps.len();
        for n in [1, 3, 16, 17, 32, 70] {
            for beta in [0.0, 1.0, -2.0] {
                let beta = T::from_f64(beta);
                let what = format!("{} {h}x{w} k{kh}x{kw} s{stride} n{n} β {beta:?}", T::NAME);
                let a = ints::<T>(&mut rng, h * w);
                let b = ints::<T>(&mut rng, k * n);
                // C with gaps between rows (ldc = n + 2), and a sentinel after the last.
                let ldc = n + 2;
                let mut c0 = ints::<T>(&mut rng, (p - 1) * ldc + n);
                c0.push(T::from_f64(-7.5));
                let (mut fast, mut slow) = (c0.clone(), c0.clone());
                agd_simd::matmul_gather(grid, &taps, &a, &b, n, beta, &mut fast, ldc).unwrap();
                naive::matmul_gather(grid, &taps, &a, &b, n, beta, &mut slow, ldc);
                assert!(fast == slow, "forward {what}");
                // D with gaps (ldd = n + 1).
                let ldd = n + 1;
                let d = ints::<T>(&mut rng, (p - 1) * ldd + n);
                let g0 = ints::<T>(&mut rng, k * n);
                let (mut fast, mut slow) = (g0.clone(), g0.clone());
                agd_simd::matmul_gather_tn(grid, &taps, &a, &d, ldd, n, beta, &mut fast).unwrap();
                naive::matmul_gather_tn(grid, &taps, &a, &d, ldd, n, beta, &mut slow);
                assert!(fast == slow, "weight gradient {what}");
            }
        }
    }
    // 600 taps: deeper than one packed panel of B (the forward splits the taps in blocks).
    let taps: Vec<usize> = (0..600).collect();
    let grid = Grid {
        rows: 3,
        cols: 5,
        row_step: 40,
        col_step: 7,
    };
    let a = ints::<T>(&mut rng, 2 * 40 + 4 * 7 + 600);
    for n in [5, 16] {
        let b = ints::<T>(&mut rng, 600 * n);
        let c0 = ints::<T>(&mut rng, 15 * n);
        let (mut fast, mut slow) = (c0.clone(), c0.clone());
        let beta = T::ONE;
        agd_simd::matmul_gather(grid, &taps, &a, &b, n, beta, &mut fast, n).unwrap();
        naive::matmul_gather(grid, &taps, &a, &b, n, beta, &mut slow, n);
        assert!(fast == slow, "{} 600 taps n {n}", T::NAME);
    }
}

#[test]
fn gathered_products_match_naive_f32() {
    sweep::<f32>();
}

#[test]
fn gathered_products_match_naive_f64() {
    sweep::<f64>();
}

/// No taps (`k = 0`): `C ← β·C` and `G` (empty) untouched; no positions: nothing written.
#[test]
fn empty_shapes() {
    let (grid, _) = geometry(4, 4, 3, 3, 1);
    let a = vec![1.0f32; 16];
    let mut c = vec![2.0f32; 4 * 3];
    agd_simd::matmul_gather(grid, &[], &a, &[], 3, 0.5, &mut c, 3).unwrap();
    assert!(c.iter().all(|&v| v == 1.0));
    agd_simd::matmul_gather_tn(grid, &[], &a, &c, 3, 3, 0.5, &mut []).unwrap();
    let none = Grid { rows: 0, ..grid };
    let mut c = vec![2.0f32; 3];
    agd_simd::matmul_gather(none, &[0, 1], &a, &[1.0; 6], 3, 0.0, &mut c, 3).unwrap();
    assert_eq!(c, [2.0; 3]);
    // With no positions the weight gradient is β·G.
    let mut g = vec![4.0f32; 6];
    agd_simd::matmul_gather_tn(none, &[0, 1], &a, &[], 3, 3, 0.5, &mut g).unwrap();
    assert_eq!(g, [2.0; 6]);
}

/// With `β = 0` the outputs are only written: NaN garbage in them does not leak.
#[test]
fn beta_zero_only_writes() {
    let (grid, taps) = geometry(6, 6, 3, 3, 1);
    let a: Vec<f32> = (0..36).map(|i| (i % 5) as f32).collect();
    let b = vec![1.0f32; 9 * 16];
    let mut c = vec![f32::NAN; 16 * 16];
    agd_simd::matmul_gather(grid, &taps, &a, &b, 16, 0.0, &mut c, 16).unwrap();
    assert!(c.iter().all(|v| v.is_finite()));
    let d = vec![1.0f32; 16 * 16];
    let mut g = vec![f32::NAN; 9 * 16];
    agd_simd::matmul_gather_tn(grid, &taps, &a, &d, 16, 16, 0.0, &mut g).unwrap();
    assert!(g.iter().all(|v| v.is_finite()));
}

/// Every operand shorter than the shape needs, and a row stride shorter than a row, is an
/// error naming it; nothing panics.
#[test]
fn short_operands_are_refused() {
    let (grid, taps) = geometry(6, 6, 3, 3, 1);
    let a = vec![1.0f32; 36];
    let b = vec![1.0f32; 9 * 4];
    let d = vec![1.0f32; 16 * 4];
    let mut c = vec![0.0f32; 16 * 4];
    let mut g = vec![0.0f32; 9 * 4];
    let named = |e: Result<(), Error>, operand: &str| {
        assert!(
            matches!(e, Err(Error::ShortSlice { operand: o, .. }) if o == operand),
            "{operand}: {e:?}"
        );
    };
    named(
        agd_simd::matmul_gather(grid, &taps, &a[1..], &b, 4, 0.0, &mut c, 4),
        "a",
    );
    named(
        agd_simd::matmul_gather(grid, &taps, &a, &b[1..], 4, 0.0, &mut c, 4),
        "b",
    );
    named(
        agd_simd::matmul_gather(grid, &taps, &a, &b, 4, 0.0, &mut c[1..], 4),
        "c",
    );
    named(
        agd_simd::matmul_gather(grid, &taps, &a, &b, 4, 0.0, &mut c, 3),
        "ldc",
    );
    named(
        agd_simd::matmul_gather_tn(grid, &taps, &a[1..], &d, 4, 4, 0.0, &mut g),
        "a",
    );
    named(
        agd_simd::matmul_gather_tn(grid, &taps, &a, &d[1..], 4, 4, 0.0, &mut g),
        "d",
    );
    named(
        agd_simd::matmul_gather_tn(grid, &taps, &a, &d, 4, 4, 0.0, &mut g[1..]),
        "g",
    );
    let huge = Grid {
        rows: usize::MAX,
        cols: 2,
        ..grid
    };
    assert_eq!(
        agd_simd::matmul_gather(huge, &taps, &a, &b, 4, 0.0, &mut c, 4),
        Err(Error::DimensionOverflow)
    );
    agd_simd::matmul_gather(grid, &taps, &a, &b, 4, 0.0, &mut c, 4).unwrap();
    agd_simd::matmul_gather_tn(grid, &taps, &a, &d, 4, 4, 0.0, &mut g).unwrap();
}
