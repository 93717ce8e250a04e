//! Power iteration for the top singular value `σ_max(A)`.

use crate::blas1::{dot, nrm2, scale};
use crate::element::Element;
use crate::error::{Error, check};
use crate::gemm::{matmul_nn, matmul_nt};

/// Estimates `σ_max(A)` of a row-major `rows x cols` matrix by `iters` rounds of power
/// iteration on `AᵀA`, warm-started from the caller's unit vector `v` (length `cols`).
///
/// Each round computes `u = A v / ||A v||` and `v = Aᵀ u / ||Aᵀ u||`; the estimate
/// `||Aᵀ u||` never exceeds `σ_max` and converges to it from below. On return `v` holds the
/// new right singular vector estimate, ready to warm-start the next call (one round per
/// training step is then enough to track a slowly changing matrix). A `v` that is all zero,
/// or not finite, is first reset to a fixed, deterministic start. `u` (length `rows`) is
/// scratch space.
///
/// Returns 0 for a zero matrix.
///
/// ```
/// // diag(3, 1): σ_max = 3.
/// let a = [3.0f64, 0.0, 0.0, 1.0];
/// let (mut v, mut u) = ([0.0; 2], [0.0; 2]);
/// let s = agd_simd::power_iteration(&a, 2, 2, &mut v, &mut u, 50).unwrap();
/// assert!((s - 3.0).abs() < 1e-12);
/// ```
pub fn power_iteration<T: Element>(
    a: &[T],
    rows: usize,
    cols: usize,
    v: &mut [T],
    u: &mut [T],
    iters: usize,
) -> Result<T, Error> {
    check("a", rows, cols, a.len())?;
    check("v", 1, cols, v.len())?;
    check("u", 1, rows, u.len())?;
    if iters == 0 {
        return Err(Error::NoIterations);
    }
    let (v, u) = (&mut v[..cols], &mut u[..rows]);
    if rows == 0 || cols == 0 {
        return Ok(T::ZERO);
    }
    let nv = nrm2(v);
    if nv == T::ZERO || !nv.is_finite() {
        reset(v);
    } else {
        normalize(v, nv);
    }
    let mut sigma = T::ZERO;
    let mut free_restart = true;
    let mut round = 0;
    while round < iters {
        // u = A v
        matmul_nt(rows, 1, cols, T::ONE, a, v, T::ZERO, u)?;
        let nu = nrm2(u);
        if nu == T::ZERO {
            // v is in A's null space: either A = 0, or restart from A's largest row. The
            // first restart is not counted as a round, so that a single warm-started round
            // still returns an estimate rather than 0.
            if a[..rows * cols].iter().all(|&x| x == T::ZERO) {
                return Ok(T::ZERO);
            }
            restart_from_largest_row(a, rows, cols, v);
            if free_restart {
                free_restart = false;
            } else {
                round += 1;
            }
            continue;
        }
        normalize(u, nu);
        // v = Aᵀ u  (as a 1 x rows times rows x cols product)
        matmul_nn(1, cols, rows, T::ONE, u, a, T::ZERO, v)?;
        sigma = nrm2(v);
        if sigma == T::ZERO {
            return Ok(T::ZERO);
        }
        normalize(v, sigma);
        round += 1;
    }
    Ok(sigma)
}

/// `v ← a_i / ||a_i||` for the row `a_i` of largest norm: `A` does not map it to zero, since
/// `(A a_iᵀ)_i = ||a_i||²`, so unlike a fixed vector it cannot lie in `A`'s null space.
fn restart_from_largest_row<T: Element>(a: &[T], rows: usize, cols: usize, v: &mut [T]) {
    let mut best = (T::ZERO, 0);
    for (i, row) in a.chunks_exact(cols).take(rows).enumerate() {
        let n = nrm2(row);
        if n > best.0 {
            best = (n, i);
        }
    }
    let (n, i) = best;
    if n == T::ZERO || !n.is_finite() {
        reset(v);
        return;
    }
    v.copy_from_slice(&a[i * cols..(i + 1) * cols]);
    normalize(v, n);
}

/// `x ← x / n` for a norm `n > 0`: by one multiply with `1/n`, or by division when `n` is
/// subnormal and `1/n` overflows (a tiny but non-zero matrix would otherwise give NaN).
fn normalize<T: Element>(x: &mut [T], n: T) {
    let inv = T::ONE / n;
    if inv.is_finite() {
        scale(inv, x);
    } else {
        for xi in x {
            *xi = *xi / n;
        }
    }
}

/// A deterministic unit start vector with no special structure: entries `1 + (i mod 7)/7`
/// with alternating sign, normalised. (All-ones would be orthogonal to the top singular
/// vector of common test matrices.)
fn reset<T: Element>(v: &mut [T]) {
    for (i, x) in v.iter_mut().enumerate() {
        let mag = 1.0 + (i % 7) as f64 / 7.0;
        *x = T::from_f64(if i % 2 == 0 { mag } else { -mag });
    }
    let n = dot(v, v).sqrt();
    scale(T::ONE / n, v);
}
