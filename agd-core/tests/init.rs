//! Orthogonal initialisation: every singular value of `W_k` equals `s_k = sqrt(d_out/d_in)`.

use agd_core::{Layout, SplitMix64, init};
use agd_simd::{Element, matmul_nn, matmul_nt, power_iteration};

/// Max |M − s² I| for the Gram matrix of the short side: `W Wᵀ` (wide) or `Wᵀ W` (tall).
fn gram_error<T: Element>(w: &[T], rows: usize, cols: usize, s: f64) -> f64 {
    let short = rows.min(cols);
    let mut gram = vec![T::ZERO; short * short];
    if rows <= cols {
        // W Wᵀ: rows x rows
        matmul_nt(rows, rows, cols, T::ONE, w, w, T::ZERO, &mut gram).unwrap();
    } else {
        // Wᵀ W: cols x cols, as (Wᵀ)(W) with Wᵀ formed explicitly.
        let mut wt = vec![T::ZERO; rows * cols];
        for i in 0..rows {
            for j in 0..cols {
                wt[j * rows + i] = w[i * cols + j];
            }
        }
        matmul_nn(cols, cols, rows, T::ONE, &wt, w, T::ZERO, &mut gram).unwrap();
    }
    let mut worst = 0.0f64;
    for i in 0..short {
        for j in 0..short {
            let want = if i == j { s * s } else { 0.0 };
            worst = worst.max((gram[i * short + j].to_f64() - want).abs());
        }
    }
    worst
}

fn check_widths<T: Element>(widths: &[usize], seed: u64, tol: f64) {
    let layout = Layout::new(widths).unwrap();
    let mut w = vec![T::ZERO; layout.param_count()];
    init::orthogonal(layout, &mut w, &mut SplitMix64::new(seed));
    for k in 0..layout.depth() {
        let (rows, cols) = layout.shape(k);
        let wk = &w[layout.weight_range(k)];
        let s = layout.scale::<f64>(k);
        let err = gram_error(wk, rows, cols, s);
        assert!(
            err <= tol * s * s,
            "{widths:?} layer {k}: |Gram − s²I| = {err:e}"
        );
        let (mut v, mut u) = (vec![T::ZERO; cols], vec![T::ZERO; rows]);
        let sigma = power_iteration(wk, rows, cols, &mut v, &mut u, 30)
            .unwrap()
            .to_f64();
        assert!(
            (sigma - s).abs() <= 10.0 * tol * s,
            "{widths:?} layer {k}: σ_max {sigma} vs s_k {s}"
        );
    }
}

#[test]
fn every_singular_value_is_the_scale_f64() {
    for (i, widths) in [
        &[784, 256, 256, 10][..],
        &[64, 128, 128, 10],
        &[3, 17, 1],
        &[7, 7, 63, 2],
        &[1, 5, 130],
        // Tall layers with more columns than one block of the strided path (64): 130 x 65
        // is a block and one column, 200 x 150 two blocks and a part.
        &[65, 130, 3],
        &[150, 200, 10],
    ]
    .iter()
    .enumerate()
    {
        check_widths::<f64>(widths, i as u64, 1e-12);
    }
}

#[test]
fn every_singular_value_is_the_scale_f32() {
    for (i, widths) in [
        &[64, 32, 10][..],
        &[784, 64, 10],
        &[9, 40, 40, 3],
        &[150, 200, 10],
    ]
    .iter()
    .enumerate()
    {
        check_widths::<f32>(widths, 100 + i as u64, 2e-5);
    }
}

#[test]
fn init_is_deterministic_per_seed() {
    let layout = Layout::new(&[10, 20, 5]).unwrap();
    let draw = |seed| {
        let mut w = vec![0.0f64; layout.param_count()];
        init::orthogonal(layout, &mut w, &mut SplitMix64::new(seed));
        w
    };
    assert_eq!(draw(3), draw(3));
    assert_ne!(draw(3), draw(4));
}

#[test]
fn gaussian_draws_have_unit_variance() {
    let mut rng = SplitMix64::new(11);
    let n = 200_000;
    let (mut s1, mut s2) = (0.0, 0.0);
    for _ in 0..n / 2 {
        let (a, b) = init::gaussian_pair(&mut rng);
        s1 += a + b;
        s2 += a * a + b * b;
    }
    let mean = s1 / n as f64;
    let var = s2 / n as f64 - mean * mean;
    assert!(mean.abs() < 0.01, "mean {mean}");
    assert!((var - 1.0).abs() < 0.015, "variance {var}");
}
