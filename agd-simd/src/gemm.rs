//! Matrix products in the three layouts a bias-free dense layer needs.
//!
//! All matrices are dense and row-major. With a batch `H` (`B x d_in`, one sample per row),
//! weights `W` (`d_out x d_in`) and back-propagated errors `Δ` (`B x d_out`):
//!
//! | pass | product | kernel |
//! |---|---|---|
//! | forward, `z_n = W h_n` | `Z = H Wᵀ` | [`matmul_nt`] |
//! | backward, `δ_prev = Wᵀ δ` | `Δ_prev = Δ W` | [`matmul_nn`] |
//! | weight gradient `Σ_n δ_n h_nᵀ` | `G = Δᵀ H` | [`matmul_tn`] |
//!
//! Each computes `C ← α·op(A)·op(B) + β·C`; with `β = 0`, `C` is only written, never read
//! (so it may hold garbage, even NaN).
//!
//! Where the vector is a single scalar (`Element::LANES == 1`: M-profile Arm, RISC-V) the
//! register-tiled loops of `gemm_scalar` run instead.

use crate::blas1::{axpy, dot, scale};
use crate::element::{Element, Vector};
use crate::error::{Error, check};
use crate::gemm_scalar;

/// `C ← β C` (`β = 0` writes zeros without reading).
#[inline]
fn apply_beta<T: Element>(beta: T, c: &mut [T]) {
    if beta == T::ZERO {
        c.fill(T::ZERO);
    } else if beta != T::ONE {
        scale(beta, c);
    }
}

/// `C (m x n) ← α · A (m x k) · B (n x k)ᵀ + β · C`: every entry is a dot product of a row of
/// `A` with a row of `B`.
///
/// ```
/// // z = W h for one sample: A = h (1 x 2), B = W (3 x 2).
/// let h = [1.0f32, 2.0];
/// let w = [1.0f32, 0.0, 0.0, 1.0, 1.0, 1.0];
/// let mut z = [0.0f32; 3];
/// agd_simd::matmul_nt(1, 3, 2, 1.0, &h, &w, 0.0, &mut z).unwrap();
/// assert_eq!(z, [1.0, 2.0, 3.0]);
/// ```
#[allow(clippy::too_many_arguments)]
pub fn matmul_nt<T: Element>(
    m: usize,
    n: usize,
    k: usize,
    alpha: T,
    a: &[T],
    b: &[T],
    beta: T,
    c: &mut [T],
) -> Result<(), Error> {
    check("a", m, k, a.len())?;
    check("b", n, k, b.len())?;
    check("c", m, n, c.len())?;
    if m == 0 || n == 0 {
        return Ok(());
    }
    if T::LANES == 1 {
        gemm_scalar::matmul_nt(m, n, k, alpha, a, b, beta, c);
        return Ok(());
    }
    let mut i = 0;
    // Four rows of A share each load of a row of B.
    while i + 4 <= m {
        let rows = [
            &a[i * k..(i + 1) * k],
            &a[(i + 1) * k..(i + 2) * k],
            &a[(i + 2) * k..(i + 3) * k],
            &a[(i + 3) * k..(i + 4) * k],
        ];
        for j in 0..n {
            let d = dot4(rows, &b[j * k..(j + 1) * k]);
            for (r, dv) in d.into_iter().enumerate() {
                let cij = &mut c[(i + r) * n + j];
                *cij = if beta == T::ZERO {
                    alpha * dv
                } else {
                    alpha * dv + beta * *cij
                };
            }
        }
        i += 4;
    }
    while i < m {
        let row = &a[i * k..(i + 1) * k];
        for j in 0..n {
            let dv = dot(row, &b[j * k..(j + 1) * k]);
            let cij = &mut c[i * n + j];
            *cij = if beta == T::ZERO {
                alpha * dv
            } else {
                alpha * dv + beta * *cij
            };
        }
        i += 1;
    }
    Ok(())
}

/// Four dot products of four rows against one shared row.
#[inline]
fn dot4<T: Element>(rows: [&[T]; 4], b: &[T]) -> [T; 4] {
    let k = b.len();
    let l = T::LANES;
    let zero = T::V::splat(T::ZERO);
    let mut acc = [zero; 4];
    let full = k - k % l;
    let mut p = 0;
    while p < full {
        let vb = T::V::load(&b[p..p + l]);
        for (s, row) in acc.iter_mut().zip(rows) {
            *s = T::V::load(&row[p..p + l]).mul_add(vb, *s);
        }
        p += l;
    }
    let mut out = [T::ZERO; 4];
    for ((o, s), row) in out.iter_mut().zip(acc).zip(rows) {
        let mut v = s.reduce_add();
        for q in full..k {
            v += row[q] * b[q];
        }
        *o = v;
    }
    out
}

/// `c_row ← β c_row + α Σ_p coef(p) · B[p, :]`: a row of the product as a combination of the
/// rows of `B` (`k x n`). Rows with a zero coefficient are skipped (ReLU zeroes many errors).
#[inline]
fn combine_rows<T: Element>(
    alpha: T,
    coef: impl Fn(usize) -> T,
    k: usize,
    b: &[T],
    n: usize,
    beta: T,
    c_row: &mut [T],
) {
    apply_beta(beta, c_row);
    let l = T::LANES;
    let full = n - n % l;
    let mut p = 0;
    while p + 4 <= k {
        let cs = [
            alpha * coef(p),
            alpha * coef(p + 1),
            alpha * coef(p + 2),
            alpha * coef(p + 3),
        ];
        if cs.iter().all(|&x| x == T::ZERO) {
            p += 4;
            continue;
        }
        let rows = [
            &b[p * n..(p + 1) * n],
            &b[(p + 1) * n..(p + 2) * n],
            &b[(p + 2) * n..(p + 3) * n],
            &b[(p + 3) * n..(p + 4) * n],
        ];
        let vc = cs.map(T::V::splat);
        let mut q = 0;
        while q < full {
            let mut acc = T::V::load(&c_row[q..q + l]);
            for (v, row) in vc.iter().zip(rows) {
                acc = v.mul_add(T::V::load(&row[q..q + l]), acc);
            }
            acc.store(&mut c_row[q..q + l]);
            q += l;
        }
        for q in full..n {
            let mut acc = c_row[q];
            for (&cv, row) in cs.iter().zip(rows) {
                acc += cv * row[q];
            }
            c_row[q] = acc;
        }
        p += 4;
    }
    while p < k {
        let cv = alpha * coef(p);
        if cv != T::ZERO {
            axpy(cv, &b[p * n..(p + 1) * n], c_row);
        }
        p += 1;
    }
}

/// `C (m x n) ← α · A (m x k) · B (k x n) + β · C`.
///
/// ```
/// // δ_prev = Wᵀ δ for one sample: A = δ (1 x 2), B = W (2 x 3).
/// let delta = [1.0f64, -1.0];
/// let w = [1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0];
/// let mut out = [0.0f64; 3];
/// agd_simd::matmul_nn(1, 3, 2, 1.0, &delta, &w, 0.0, &mut out).unwrap();
/// assert_eq!(out, [-3.0, -3.0, -3.0]);
/// ```
#[allow(clippy::too_many_arguments)]
pub fn matmul_nn<T: Element>(
    m: usize,
    n: usize,
    k: usize,
    alpha: T,
    a: &[T],
    b: &[T],
    beta: T,
    c: &mut [T],
) -> Result<(), Error> {
    check("a", m, k, a.len())?;
    check("b", k, n, b.len())?;
    check("c", m, n, c.len())?;
    if n == 0 {
        return Ok(());
    }
    if T::LANES == 1 {
        gemm_scalar::rows_update(m, n, k, alpha, |i, p| a[i * k + p], b, beta, c);
        return Ok(());
    }
    for (i, c_row) in c.chunks_exact_mut(n).take(m).enumerate() {
        let a_row = &a[i * k..(i + 1) * k];
        combine_rows(alpha, |p| a_row[p], k, b, n, beta, c_row);
    }
    Ok(())
}

/// `C (m x n) ← α · A (k x m)ᵀ · B (k x n) + β · C`: with `A = Δ` and `B = H` this is the
/// weight gradient `Σ_n δ_n h_nᵀ`, and with `α = -c`, `β = 1` a rank-`k` weight update.
///
/// ```
/// // g = δ hᵀ for one sample: A = δ (1 x 2), B = h (1 x 3).
/// let delta = [1.0f32, 2.0];
/// let h = [1.0f32, 0.0, -1.0];
/// let mut g = [0.0f32; 6];
/// agd_simd::matmul_tn(2, 3, 1, 1.0, &delta, &h, 0.0, &mut g).unwrap();
/// assert_eq!(g, [1.0, 0.0, -1.0, 2.0, 0.0, -2.0]);
/// ```
#[allow(clippy::too_many_arguments)]
pub fn matmul_tn<T: Element>(
    m: usize,
    n: usize,
    k: usize,
    alpha: T,
    a: &[T],
    b: &[T],
    beta: T,
    c: &mut [T],
) -> Result<(), Error> {
    check("a", k, m, a.len())?;
    check("b", k, n, b.len())?;
    check("c", m, n, c.len())?;
    if n == 0 {
        return Ok(());
    }
    if T::LANES == 1 {
        gemm_scalar::rows_update(m, n, k, alpha, |i, p| a[p * m + i], b, beta, c);
        return Ok(());
    }
    for (i, c_row) in c.chunks_exact_mut(n).take(m).enumerate() {
        combine_rows(alpha, |p| a[p * m + i], k, b, n, beta, c_row);
    }
    Ok(())
}
