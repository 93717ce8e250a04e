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
        scale(T::ONE / nv, v);
    }
    let mut sigma = T::ZERO;
    for _ in 0..iters {
        // u = A v
        matmul_nt(rows, 1, cols, T::ONE, a, v, T::ZERO, u)?;
        let nu = nrm2(u);
        if nu == T::ZERO {
            // v is in A's null space: either A = 0, or restart from a fixed vector once.
            if a[..rows * cols].iter().all(|&x| x == T::ZERO) {
                return Ok(T::ZERO);
            }
            reset(v);
            continue;
        }
        scale(T::ONE / nu, u);
        // v = Aᵀ u  (as a 1 x rows times rows x cols product)
        matmul_nn(1, cols, rows, T::ONE, u, a, T::ZERO, v)?;
        sigma = nrm2(v);
        if sigma == T::ZERO {
            return Ok(T::ZERO);
        }
        scale(T::ONE / sigma, v);
    }
    Ok(sigma)
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
