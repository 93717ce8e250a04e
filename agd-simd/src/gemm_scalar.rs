//! Register-tiled matrix products for targets whose vector is a single scalar (M-profile Arm,
//! RISC-V: `Element::LANES == 1`).
//!
//! Without SIMD the cost of a product is its loads: the row-at-a-time loops of [`crate::gemm`]
//! load one operand per multiply-add. Here each loaded value serves four multiply-adds — a 4x4
//! tile of accumulators for `A Bᵀ`, four output rows against four input rows for the rank
//! updates — which roughly halves the instructions per multiply-add on a Cortex-M4F
//! (16 FPU registers hold the tile, 8 more the operands). Edges fall back to plain loops.

use crate::blas1::{axpy, dot, scale};
use crate::element::{Element, Vector};

/// `x·y + acc` through the element's vector multiply-add (fused where the target has it);
/// only called where the vector is one scalar.
#[inline(always)]
fn madd<T: Element>(x: T, y: T, acc: T) -> T {
    let mut out = [T::ZERO; 8];
    T::V::splat(x)
        .mul_add(T::V::splat(y), T::V::splat(acc))
        .store(&mut out[..T::LANES]);
    out[0]
}

/// Tile size: rows and columns of the accumulator block.
const TILE: usize = 4;

/// `C (m x n) ← α · A (m x k) · B (n x k)ᵀ + β · C`, sizes already checked.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_nt<T: Element>(
    m: usize,
    n: usize,
    k: usize,
    alpha: T,
    a: &[T],
    b: &[T],
    beta: T,
    c: &mut [T],
) {
    let store = |cij: &mut T, v: T| {
        *cij = if beta == T::ZERO {
            alpha * v
        } else {
            alpha * v + beta * *cij
        };
    };
    let mut i = 0;
    while i + TILE <= m {
        let ar: [&[T]; TILE] = core::array::from_fn(|r| &a[(i + r) * k..][..k]);
        let mut j = 0;
        while j + TILE <= n {
            let br: [&[T]; TILE] = core::array::from_fn(|s| &b[(j + s) * k..][..k]);
            let mut acc = [[T::ZERO; TILE]; TILE];
            // Four steps of `p` per turn: the eight row addresses are formed once per turn and
            // every load takes an immediate offset (VLDR has no register-offset form).
            let quads = k / TILE * TILE;
            let mut p = 0;
            while p < quads {
                let aq: [&[T]; TILE] = core::array::from_fn(|r| &ar[r][p..p + TILE]);
                let bq: [&[T]; TILE] = core::array::from_fn(|s| &br[s][p..p + TILE]);
                for u in 0..TILE {
                    for (row, a_r) in acc.iter_mut().zip(&aq) {
                        let x = a_r[u];
                        for (v, b_s) in row.iter_mut().zip(&bq) {
                            *v = madd(x, b_s[u], *v);
                        }
                    }
                }
                p += TILE;
            }
            for p in quads..k {
                for (row, a_r) in acc.iter_mut().zip(&ar) {
                    let x = a_r[p];
                    for (v, b_s) in row.iter_mut().zip(&br) {
                        *v = madd(x, b_s[p], *v);
                    }
                }
            }
            for (r, row) in acc.iter().enumerate() {
                for (s, &v) in row.iter().enumerate() {
                    store(&mut c[(i + r) * n + j + s], v);
                }
            }
            j += TILE;
        }
        for j in j..n {
            let bj = &b[j * k..][..k];
            for (r, row) in ar.iter().enumerate() {
                store(&mut c[(i + r) * n + j], dot(row, bj));
            }
        }
        i += TILE;
    }
    for i in i..m {
        let row = &a[i * k..][..k];
        for j in 0..n {
            store(&mut c[i * n + j], dot(row, &b[j * k..][..k]));
        }
    }
}

/// `C (m x n) ← α · Σ_p coef(i, p) · B[p, :] + β · C` over rows `i` of `C` and `p < k`: the
/// shape shared by `A B` (`coef(i, p) = A[i, p]`) and `Aᵀ B` (`coef(i, p) = A[p, i]`).
/// Four rows of `C` take four rows of `B` at a time; a 4x4 block of zero coefficients (ReLU
/// zeroes many errors) is skipped.
#[allow(clippy::too_many_arguments)]
pub(crate) fn rows_update<T: Element>(
    m: usize,
    n: usize,
    k: usize,
    alpha: T,
    coef: impl Fn(usize, usize) -> T,
    b: &[T],
    beta: T,
    c: &mut [T],
) {
    if beta == T::ZERO {
        c[..m * n].fill(T::ZERO);
    } else if beta != T::ONE {
        scale(beta, &mut c[..m * n]);
    }
    let mut i = 0;
    while i + TILE <= m {
        let block = &mut c[i * n..(i + TILE) * n];
        let (c0, rest) = block.split_at_mut(n);
        let (c1, rest) = rest.split_at_mut(n);
        let (c2, c3) = rest.split_at_mut(n);
        let mut p = 0;
        while p + TILE <= k {
            let cf: [[T; TILE]; TILE] =
                core::array::from_fn(|r| core::array::from_fn(|q| alpha * coef(i + r, p + q)));
            if cf.iter().flatten().all(|&x| x == T::ZERO) {
                p += TILE;
                continue;
            }
            let br: [&[T]; TILE] = core::array::from_fn(|q| &b[(p + q) * n..][..n]);
            for j in 0..n {
                let bv: [T; TILE] = core::array::from_fn(|q| br[q][j]);
                let upd = |cr: &mut T, f: &[T; TILE]| {
                    *cr = madd(
                        f[3],
                        bv[3],
                        madd(f[2], bv[2], madd(f[1], bv[1], madd(f[0], bv[0], *cr))),
                    );
                };
                upd(&mut c0[j], &cf[0]);
                upd(&mut c1[j], &cf[1]);
                upd(&mut c2[j], &cf[2]);
                upd(&mut c3[j], &cf[3]);
            }
            p += TILE;
        }
        for p in p..k {
            let bp = &b[p * n..][..n];
            for (r, cr) in [&mut *c0, &mut *c1, &mut *c2, &mut *c3]
                .into_iter()
                .enumerate()
            {
                let f = alpha * coef(i + r, p);
                if f != T::ZERO {
                    axpy(f, bp, cr);
                }
            }
        }
        i += TILE;
    }
    for i in i..m {
        let cr = &mut c[i * n..(i + 1) * n];
        for p in 0..k {
            let f = alpha * coef(i, p);
            if f != T::ZERO {
                axpy(f, &b[p * n..][..n], cr);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec;

    use super::*;
    use crate::naive;

    fn fill(x: &mut [f64], seed: u64) {
        let mut s = seed;
        for v in x {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *v = ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0;
        }
    }

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= 1e-12 * (1.0 + y.abs()))
    }

    /// Every edge: sizes below, at and above the tile, with and without β.
    #[test]
    fn tiled_products_match_naive() {
        let sizes = [1, 3, 4, 5, 8, 9, 13];
        for &m in &sizes {
            for &n in &sizes {
                for &k in &sizes {
                    for &(alpha, beta) in &[(1.0, 0.0), (-0.5, 1.0), (2.0, 0.25)] {
                        let mut a = vec![0.0; m * k];
                        let mut b = vec![0.0; n.max(k) * n.max(k)];
                        let mut c = vec![0.0; m * n];
                        fill(&mut a, (m * 31 + k) as u64);
                        fill(&mut b, (n * 17 + k) as u64);
                        fill(&mut c, 5);
                        // Some zero coefficients, to reach the skipped blocks.
                        a.iter_mut().step_by(3).for_each(|v| *v = 0.0);
                        let mut want = c.clone();

                        let mut got = c.clone();
                        matmul_nt(m, n, k, alpha, &a, &b[..n * k], beta, &mut got);
                        naive::matmul_nt(m, n, k, alpha, &a, &b[..n * k], beta, &mut want);
                        assert!(close(&got, &want), "nt {m} {n} {k}");

                        let (mut got, mut want) = (c.clone(), c.clone());
                        rows_update(
                            m,
                            n,
                            k,
                            alpha,
                            |i, p| a[i * k + p],
                            &b[..k * n],
                            beta,
                            &mut got,
                        );
                        naive::matmul_nn(m, n, k, alpha, &a, &b[..k * n], beta, &mut want);
                        assert!(close(&got, &want), "nn {m} {n} {k}");

                        // Aᵀ B with A (k x m): the same buffer read as k x m.
                        let (mut got, mut want) = (c.clone(), c.clone());
                        rows_update(
                            m,
                            n,
                            k,
                            alpha,
                            |i, p| a[p * m + i],
                            &b[..k * n],
                            beta,
                            &mut got,
                        );
                        naive::matmul_tn(m, n, k, alpha, &a, &b[..k * n], beta, &mut want);
                        assert!(close(&got, &want), "tn {m} {n} {k}");
                    }
                }
            }
        }
    }
}
