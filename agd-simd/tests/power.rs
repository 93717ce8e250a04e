//! `power_iteration` against the true top singular value, computed in the test two ways:
//!
//! * matrices built as `U · diag(σ) · Vᵀ` from random orthonormal factors (Gram–Schmidt), so
//!   every singular value and vector is known by construction;
//! * plain Gaussian matrices, whose `AᵀA` is diagonalised here by cyclic Jacobi in `f64`.
//!
//! In both cases we know the eigenvalues `λ_i = σ_i²` of `AᵀA` and the coordinates `c_i` of
//! the start vector `v₀` in its eigenvectors. After `t` rounds the kernel's estimate is
//! `σ̂² = Σ w_i λ_i / Σ w_i` with `w_i = c_i² λ_i^{2t−1}` (`v_{t−1} ∝ (AᵀA)^{t−1} v₀` and
//! `σ̂ = ||AᵀA v_{t−1}|| / ||A v_{t−1}||`), so in exact arithmetic
//! `0 ≤ σ₁² − σ̂² ≤ σ₁² · Σ_{i≥2} (c_i/c₁)² (λ_i/λ₁)^{2t−1}`. Rounding adds at most about
//! `(γ_rows + γ_cols)·||A||_F` (the last two products, each entry bounded by
//! `γ Σ|a||x|` with a unit vector `x`); we allow twice that.

mod common;

use agd_simd::{Element, Error, power_iteration};
use common::{Rng, SHAPES, gamma, narrow, widen};
use proptest::prelude::*;
use proptest::sample::select;

// ---------------------------------------------------------------------------------------
// Dense linear algebra in f64, for the ground truth only.

/// `Σ x_i y_i` with each product split exactly (`fma`) and the sum compensated (Neumaier):
/// accurate to a few ulps, so the ground truth does not add error of its own.
fn exact_dot(x: &[f64], y: &[f64]) -> f64 {
    let (mut sum, mut comp) = (0.0f64, 0.0f64);
    for (&a, &b) in x.iter().zip(y) {
        let hi = a * b;
        let lo = a.mul_add(b, -hi);
        for t in [hi, lo] {
            let s = sum + t;
            comp += if sum.abs() >= t.abs() {
                (sum - s) + t
            } else {
                (t - s) + sum
            };
            sum = s;
        }
    }
    sum + comp
}

/// `count` orthonormal vectors of length `len` (`count ≤ len`): Gaussian vectors through
/// modified Gram–Schmidt, twice ("twice is enough", Giraud et al. 2005), so they are
/// orthonormal to working accuracy.
fn orthonormal(rng: &mut Rng, len: usize, count: usize) -> Vec<Vec<f64>> {
    assert!(count <= len);
    let mut q: Vec<Vec<f64>> = Vec::with_capacity(count);
    while q.len() < count {
        let mut x: Vec<f64> = (0..len).map(|_| rng.normal()).collect();
        for _ in 0..2 {
            for e in &q {
                let d = exact_dot(e, &x);
                for (xi, ei) in x.iter_mut().zip(e) {
                    *xi -= d * ei;
                }
            }
        }
        let n = exact_dot(&x, &x).sqrt();
        if n > 1e-8 {
            q.push(x.iter().map(|v| v / n).collect());
        }
    }
    q
}

/// Eigenvalues (descending) and eigenvectors (`vecs[i]` goes with `vals[i]`) of a symmetric
/// `n x n` matrix, by cyclic Jacobi rotations (Golub & Van Loan, *Matrix Computations*,
/// §8.5, `sym.schur2`). Accurate to a few ulps of the largest eigenvalue.
fn sym_eigen(mut s: Vec<f64>, n: usize) -> (Vec<f64>, Vec<Vec<f64>>) {
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    let total: f64 = s.iter().map(|x| x * x).sum();
    let mut converged = false;
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| s[i * n + j] * s[i * n + j])
            .sum();
        if off <= 1e-36 * total {
            converged = true;
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = s[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let tau = (s[q * n + q] - s[p * n + p]) / (2.0 * apq);
                let t = if tau.abs() > 1e150 {
                    0.5 / tau
                } else {
                    tau.signum() / (tau.abs() + (1.0 + tau * tau).sqrt())
                };
                let c = 1.0 / (1.0 + t * t).sqrt();
                let sn = t * c;
                // S ← Jᵀ S J and V ← V J, J the rotation in the (p, q) plane.
                for k in 0..n {
                    let (kp, kq) = (s[k * n + p], s[k * n + q]);
                    s[k * n + p] = c * kp - sn * kq;
                    s[k * n + q] = sn * kp + c * kq;
                }
                for k in 0..n {
                    let (pk, qk) = (s[p * n + k], s[q * n + k]);
                    s[p * n + k] = c * pk - sn * qk;
                    s[q * n + k] = sn * pk + c * qk;
                }
                // The rotation was chosen to annihilate (p, q); drop the rounding residue.
                s[p * n + q] = 0.0;
                s[q * n + p] = 0.0;
                for k in 0..n {
                    let (kp, kq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * kp - sn * kq;
                    v[k * n + q] = sn * kp + c * kq;
                }
            }
        }
    }
    assert!(converged || total == 0.0, "Jacobi did not converge");
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| s[j * n + j].total_cmp(&s[i * n + i]));
    let vals = order.iter().map(|&i| s[i * n + i].max(0.0)).collect();
    let vecs = order
        .iter()
        .map(|&j| (0..n).map(|i| v[i * n + j]).collect())
        .collect();
    (vals, vecs)
}

/// What the truth says about one run: the eigenvalues of `AᵀA` (descending) and the
/// coordinates of the start vector in its eigenvectors.
struct Spectrum {
    lambda: Vec<f64>,
    coord: Vec<f64>,
}

impl Spectrum {
    fn sigma_max(&self) -> f64 {
        self.lambda[0].sqrt()
    }

    /// Exact-arithmetic bound on `(σ₁² − σ̂²)/σ₁²` after `t` rounds (module docs), capped at 1.
    fn shortfall(&self, t: usize) -> f64 {
        let (l1, c1) = (self.lambda[0], self.coord[0]);
        if l1 == 0.0 {
            return 0.0;
        }
        if c1 == 0.0 {
            return 1.0;
        }
        let b: f64 = self.lambda[1..]
            .iter()
            .zip(&self.coord[1..])
            .map(|(&l, &c)| (c / c1).powi(2) * (l / l1).powi(2 * t as i32 - 1))
            .sum();
        b.min(1.0)
    }
}

/// Runs `power_iteration` on `a` (rounded to `T`) from `v0` for `t` rounds and checks
/// `σ₁·sqrt(1 − shortfall) − tol ≤ σ̂ ≤ σ₁ + tol`. Returns `σ̂` and the final `v`.
fn check_against<T: Element>(
    a: &[f64],
    rows: usize,
    cols: usize,
    spec: &Spectrum,
    v0: &[f64],
    t: usize,
) -> Result<(f64, Vec<T>), TestCaseError> {
    let at: Vec<T> = narrow(a);
    let mut v: Vec<T> = narrow(v0);
    let mut u = vec![T::from_f64(f64::NAN); rows]; // scratch: its contents must not matter
    let got = power_iteration(&at, rows, cols, &mut v, &mut u, t)
        .map_err(|e| TestCaseError::fail(e.to_string()))?
        .to_f64();
    let frob = exact_dot(&widen(&at), &widen(&at)).sqrt();
    let tol = 4.0 * gamma::<T>(rows + cols + 8) * frob;
    let s1 = spec.sigma_max();
    let low = s1 * (1.0 - spec.shortfall(t)).sqrt() - tol;
    prop_assert!(
        got >= low && got <= s1 + tol,
        "{} {}x{} t={}: σ̂ = {:e}, σ_max = {:e}, allowed [{:e}, {:e}]",
        T::NAME,
        rows,
        cols,
        t,
        got,
        s1,
        low,
        s1 + tol
    );
    Ok((got, v))
}

// ---------------------------------------------------------------------------------------
// Matrices with known singular values.

#[derive(Debug, Clone)]
struct Known {
    rows: usize,
    cols: usize,
    /// `σ₁`.
    top: f64,
    /// The other singular values are uniform in `[0, gap·σ₁]`.
    gap: f64,
    seed: u64,
}

fn known() -> impl Strategy<Value = Known> {
    (
        select(SHAPES.to_vec()),
        select(SHAPES.to_vec()),
        prop_oneof![Just(1.0), 1e-3..1e3f64],
        prop_oneof![Just(0.0), 0.1..0.9f64],
        any::<u64>(),
    )
        .prop_map(|(rows, cols, top, gap, seed)| Known {
            rows,
            cols,
            top,
            gap,
            seed,
        })
}

/// `A = U diag(σ) Vᵀ` (row-major `rows x cols`), its spectrum, and a random start vector.
fn build(k: &Known) -> (Vec<f64>, Spectrum, Vec<f64>) {
    let (rows, cols) = (k.rows, k.cols);
    let r = rows.min(cols);
    let mut rng = Rng::new(k.seed);
    let u = orthonormal(&mut rng, rows, r);
    let v = orthonormal(&mut rng, cols, r);
    let mut sigma = vec![k.top];
    sigma.extend((1..r).map(|_| rng.uniform(0.0, k.gap * k.top)));
    let mut a = vec![0.0; rows * cols];
    for i in 0..rows {
        for j in 0..cols {
            let terms: Vec<f64> = (0..r).map(|l| sigma[l] * u[l][i]).collect();
            let vj: Vec<f64> = (0..r).map(|l| v[l][j]).collect();
            a[i * cols + j] = exact_dot(&terms, &vj);
        }
    }
    let v0: Vec<f64> = (0..cols).map(|_| rng.normal()).collect();
    let n0 = exact_dot(&v0, &v0).sqrt();
    // Only the components in the row space matter (the null space has λ = 0).
    let coord = v.iter().map(|vl| exact_dot(vl, &v0) / n0).collect();
    let lambda = sigma.iter().map(|s| s * s).collect();
    // The singular values are not sorted beyond σ₁ ≥ gap·σ₁ ≥ the rest; the bound only
    // needs λ₁ first.
    (a, Spectrum { lambda, coord }, v0)
}

fn check_known<T: Element>(k: &Known) -> Result<(), TestCaseError> {
    let (a, spec, v0) = build(k);
    for t in [1, 3, 60] {
        check_against::<T>(&a, k.rows, k.cols, &spec, &v0, t)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Gaussian matrices, truth by Jacobi.

fn check_gaussian<T: Element>(rows: usize, cols: usize, seed: u64) -> Result<(), TestCaseError> {
    let mut rng = Rng::new(seed);
    let a: Vec<f64> = (0..rows * cols).map(|_| rng.normal()).collect();
    let a_t: Vec<f64> = widen(&narrow::<T>(&a)); // the matrix the kernel will see
    let col = |j: usize| -> Vec<f64> { (0..rows).map(|i| a_t[i * cols + j]).collect() };
    let cols_v: Vec<Vec<f64>> = (0..cols).map(col).collect();
    let mut ata = vec![0.0; cols * cols];
    for i in 0..cols {
        for j in 0..cols {
            ata[i * cols + j] = exact_dot(&cols_v[i], &cols_v[j]);
        }
    }
    let (lambda, vecs) = sym_eigen(ata, cols);
    let v0: Vec<f64> = (0..cols).map(|_| rng.normal()).collect();
    let n0 = exact_dot(&v0, &v0).sqrt();
    let coord = vecs.iter().map(|e| exact_dot(e, &v0) / n0).collect();
    let spec = Spectrum { lambda, coord };
    for t in [1, 2, 30, 300] {
        check_against::<T>(&a_t, rows, cols, &spec, &v0, t)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn known_singular_values_f32(k in known()) { check_known::<f32>(&k)?; }

    #[test]
    fn known_singular_values_f64(k in known()) { check_known::<f64>(&k)?; }

    #[test]
    fn gaussian_matrices(
        rows in select(SHAPES.to_vec()),
        cols in select(SHAPES[..12].to_vec()), // Jacobi on cols x cols: keep it ≤ 17
        seed in any::<u64>(),
    ) {
        check_gaussian::<f32>(rows, cols, seed)?;
        check_gaussian::<f64>(rows, cols, seed)?;
    }

    /// After convergence, one more warm-started round stays where it was, and so does the
    /// vector it hands back.
    #[test]
    fn warm_start_one_round_stays_converged(mut k in known()) {
        k.gap = k.gap.min(0.5); // converged within 60 rounds: 0.5^238 is far below ε
        warm_start::<f32>(&k)?;
        warm_start::<f64>(&k)?;
    }

    /// `s · Q` with orthonormal columns (or rows) has every non-zero singular value `s`:
    /// one round from any start finds it.
    #[test]
    fn semi_orthogonal_times_s(
        rows in select(SHAPES.to_vec()),
        cols in select(SHAPES.to_vec()),
        s in prop_oneof![Just(1.0), 1e-3..1e3f64],
        seed in any::<u64>(),
    ) {
        semi_orthogonal::<f32>(rows, cols, s, seed)?;
        semi_orthogonal::<f64>(rows, cols, s, seed)?;
    }
}

fn warm_start<T: Element>(k: &Known) -> Result<(), TestCaseError> {
    let (a, spec, v0) = build(k);
    let (first, v) = check_against::<T>(&a, k.rows, k.cols, &spec, &v0, 60)?;
    let at: Vec<T> = narrow(&a);
    let mut v1 = v.clone();
    let mut u = vec![T::ZERO; k.rows];
    let second = power_iteration(&at, k.rows, k.cols, &mut v1, &mut u, 1)
        .map_err(|e| TestCaseError::fail(e.to_string()))?
        .to_f64();
    let frob = exact_dot(&widen(&at), &widen(&at)).sqrt();
    let tol = 4.0 * gamma::<T>(k.rows + k.cols + 8) * frob;
    prop_assert!(
        (second - first).abs() <= tol,
        "{} warm start moved σ̂ from {:e} to {:e} (tol {:e})",
        T::NAME,
        first,
        second,
        tol
    );
    // v is a unit vector and barely moved.
    let (v, v1) = (widen(&v), widen(&v1));
    prop_assert!((exact_dot(&v1, &v1).sqrt() - 1.0).abs() <= gamma::<T>(k.cols + 4));
    let moved: f64 = v
        .iter()
        .zip(&v1)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt();
    prop_assert!(
        moved <= 2.0 * tol / spec.sigma_max() + 4.0 * gamma::<T>(k.cols + 4),
        "v moved {moved:e}"
    );
    Ok(())
}

/// `Q` (`rows x cols`) with orthonormal columns if `rows ≥ cols`, else orthonormal rows.
fn semi_orthogonal_matrix(rng: &mut Rng, rows: usize, cols: usize) -> Vec<f64> {
    if rows >= cols {
        let q = orthonormal(rng, rows, cols);
        (0..rows * cols).map(|x| q[x % cols][x / cols]).collect()
    } else {
        let q = orthonormal(rng, cols, rows);
        (0..rows * cols).map(|x| q[x / cols][x % cols]).collect()
    }
}

fn semi_orthogonal<T: Element>(
    rows: usize,
    cols: usize,
    s: f64,
    seed: u64,
) -> Result<(), TestCaseError> {
    let mut rng = Rng::new(seed);
    let a: Vec<T> = narrow(
        &semi_orthogonal_matrix(&mut rng, rows, cols)
            .iter()
            .map(|x| s * x)
            .collect::<Vec<_>>(),
    );
    let frob = s * (rows.min(cols) as f64).sqrt();
    // The rounded Q is orthonormal to about γ_rows; the rest as in the module docs.
    let tol = 4.0 * gamma::<T>(rows + cols + 8) * frob;
    for t in [1, 5] {
        let mut v: Vec<T> = (0..cols).map(|_| T::from_f64(rng.normal())).collect();
        let mut u = vec![T::ZERO; rows];
        let got = power_iteration(&a, rows, cols, &mut v, &mut u, t)
            .map_err(|e| TestCaseError::fail(e.to_string()))?
            .to_f64();
        prop_assert!(
            (got - s).abs() <= tol,
            "{} {rows}x{cols} t={t}: {got:e} vs s = {s:e}",
            T::NAME
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Edge cases.

/// The zero matrix has σ_max = 0 exactly, from any start; so do empty matrices.
fn zero_matrix<T: Element>() {
    for &rows in &SHAPES {
        for &cols in &[1, 3, 8, 17] {
            let a = vec![T::ZERO; rows * cols];
            for start in [0.0, 1.0, f64::NAN] {
                let mut v = vec![T::from_f64(start); cols];
                let mut u = vec![T::ZERO; rows];
                let s = power_iteration(&a, rows, cols, &mut v, &mut u, 3).unwrap();
                assert_eq!(s.to_bits_u64(), 0, "{rows}x{cols} from {start}");
            }
        }
    }
    for (rows, cols) in [(0, 3), (3, 0), (0, 0)] {
        let mut v = vec![T::ONE; 3];
        let mut u = vec![T::ONE; 3];
        let a = [T::ONE; 0];
        assert_eq!(
            power_iteration(&a, rows, cols, &mut v, &mut u, 1),
            Ok(T::ZERO)
        );
    }
}

#[test]
fn zero_matrix_f32() {
    zero_matrix::<f32>();
}
#[test]
fn zero_matrix_f64() {
    zero_matrix::<f64>();
}

#[test]
fn zero_iterations_is_an_error() {
    let a = [1.0f32, 2.0, 3.0, 4.0];
    let (mut v, mut u) = ([1.0f32, 0.0], [0.0f32; 2]);
    assert_eq!(
        power_iteration(&a, 2, 2, &mut v, &mut u, 0),
        Err(Error::NoIterations)
    );
    assert_eq!(v, [1.0, 0.0], "v untouched on error");
}

#[test]
fn short_slices_are_refused() {
    let a = [1.0f64; 6]; // 2 x 3
    let mut v = [1.0f64; 3];
    let mut u = [0.0f64; 2];
    let short = |operand, needed, got| {
        Err(Error::ShortSlice {
            operand,
            needed,
            got,
        })
    };
    assert_eq!(
        power_iteration(&a[..5], 2, 3, &mut v, &mut u, 1),
        short("a", 6, 5)
    );
    assert_eq!(
        power_iteration(&a, 2, 3, &mut v[..2], &mut u, 1),
        short("v", 3, 2)
    );
    assert_eq!(
        power_iteration(&a, 2, 3, &mut v, &mut u[..1], 1),
        short("u", 2, 1)
    );
    assert_eq!(v, [1.0; 3], "v untouched on error");
}

/// A start vector in the null space (`A v = 0` exactly) must not cost the answer: even a
/// single round returns `σ_max`, not 0. `A = s·[I 0]` (`2 x 3`) from `v = e₃`.
fn null_space_start<T: Element>() {
    let s = T::from_f64(2.5);
    let z = T::ZERO;
    let a = [s, z, z, z, s, z];
    for iters in [1, 2, 10] {
        let mut v = [z, z, T::ONE];
        let mut u = [z; 2];
        let got = power_iteration(&a, 2, 3, &mut v, &mut u, iters).unwrap();
        assert!(
            (got - s).abs() <= T::from_f64(4.0) * T::EPSILON * s,
            "{} iters={iters}: {got:?}",
            T::NAME
        );
    }
}

#[test]
fn null_space_start_f32() {
    null_space_start::<f32>();
}
#[test]
fn null_space_start_f64() {
    null_space_start::<f64>();
}

/// A NaN or infinite start vector is replaced by a fixed start, not propagated.
#[test]
fn non_finite_start_is_reset() {
    let a = [3.0f64, 0.0, 0.0, 1.0];
    for bad in [f64::NAN, f64::INFINITY] {
        let (mut v, mut u) = ([bad, 1.0], [0.0; 2]);
        let s = power_iteration(&a, 2, 2, &mut v, &mut u, 60).unwrap();
        assert!((s - 3.0).abs() <= 4.0 * f64::EPSILON * 3.0, "{bad}: {s}");
    }
}

/// The ground-truth helpers themselves: Jacobi on a matrix with known eigenvalues, and
/// Gram–Schmidt output is orthonormal.
#[test]
fn jacobi_and_gram_schmidt_are_right() {
    let mut rng = Rng::new(11);
    let n = 9;
    let q = orthonormal(&mut rng, n, n);
    for i in 0..n {
        for j in 0..n {
            let d = exact_dot(&q[i], &q[j]);
            assert!((d - if i == j { 1.0 } else { 0.0 }).abs() < 1e-14);
        }
    }
    let want: Vec<f64> = (0..n).map(|i| (n - i) as f64 * 1.5).collect();
    let mut s = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            s[i * n + j] = (0..n).map(|l| want[l] * q[l][i] * q[l][j]).sum();
        }
    }
    let (vals, vecs) = sym_eigen(s, n);
    for (l, (&got, &w)) in vals.iter().zip(&want).enumerate() {
        assert!((got - w).abs() < 1e-12, "λ{l} = {got} vs {w}");
        assert!((exact_dot(&vecs[l], &q[l]).abs() - 1.0).abs() < 1e-10);
    }
}

/// Scale invariance over the whole range: `s·Q` for `s` near both ends of `T`'s normal range
/// gives `s`, and a matrix whose entries are subnormal still gives a finite, right answer
/// (rather than NaN from a reciprocal norm that overflows). With subnormal entries every
/// rounding is to a grid of absolute spacing `denorm_min`, so that is allowed per operation.
fn extreme_scales<T: Element>(
    normal: &[f64],
    subnormal_steps: &[i32],
) -> Result<(), TestCaseError> {
    for &s in normal {
        for (rows, cols) in [(1, 1), (3, 5), (7, 2), (17, 17)] {
            semi_orthogonal::<T>(rows, cols, s, 5)?;
        }
    }
    let denorm_min = T::MIN_POSITIVE.to_f64() * T::EPSILON.to_f64();
    for &step in subnormal_steps {
        let s = T::from_f64(libm::scalbn(T::MIN_POSITIVE.to_f64(), -step));
        for (rows, cols) in [(1, 1), (2, 3), (5, 2), (8, 8)] {
            // s·[I 0] or s·[I; 0]: every singular value is s.
            let mut a = vec![T::ZERO; rows * cols];
            for i in 0..rows.min(cols) {
                a[i * cols + i] = s;
            }
            let mut rng = Rng::new(step as u64);
            let mut v: Vec<T> = (0..cols).map(|_| T::from_f64(rng.normal())).collect();
            let mut u = vec![T::ZERO; rows];
            let got = power_iteration(&a, rows, cols, &mut v, &mut u, 3)
                .map_err(|e| TestCaseError::fail(e.to_string()))?
                .to_f64();
            let s = s.to_f64();
            let tol = 4.0 * gamma::<T>(rows + cols + 8) * s * (rows.min(cols) as f64).sqrt()
                + 4.0 * (rows + cols) as f64 * denorm_min;
            prop_assert!(
                (got - s).abs() <= tol,
                "{} {rows}x{cols}, subnormal s = {s:e}: {got:e}",
                T::NAME
            );
        }
    }
    Ok(())
}

/// Wider than the host's stack buffer for `z` (1024 values), so its rounds take the two
/// products; and as wide as that buffer, so they take the one pass.
#[test]
fn wide_matrices() {
    for (rows, cols) in [(3, 1025), (2, 1500), (5, 1024)] {
        for s in [1.0, 37.5] {
            semi_orthogonal::<f32>(rows, cols, s, 9).unwrap();
            semi_orthogonal::<f64>(rows, cols, s, 9).unwrap();
        }
    }
}

#[test]
fn extreme_scales_f32() {
    extreme_scales::<f32>(&[1e-30, 1e-36, 1e30, 1e36], &[1, 4, 10, 20]).unwrap();
}
#[test]
fn extreme_scales_f64() {
    extreme_scales::<f64>(&[1e-300, 1e-306, 1e300, 1e306], &[1, 4, 20, 45]).unwrap();
}
