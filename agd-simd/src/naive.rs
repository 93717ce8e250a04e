//! Naive reference versions of every kernel: plain triple loops with no blocking, no SIMD
//! and no scaling. The property tests hold the fast kernels against these, and `agd bench`
//! reports them as the floor.

use crate::element::Element;

/// `C ← α A Bᵀ + β C`, `A` is `m x k`, `B` is `n x k`.
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
) {
    for i in 0..m {
        for j in 0..n {
            let mut s = T::ZERO;
            for p in 0..k {
                s += a[i * k + p] * b[j * k + p];
            }
            c[i * n + j] = if beta == T::ZERO {
                alpha * s
            } else {
                alpha * s + beta * c[i * n + j]
            };
        }
    }
}

/// `C ← α A B + β C`, `A` is `m x k`, `B` is `k x n`.
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
) {
    for i in 0..m {
        for j in 0..n {
            let mut s = T::ZERO;
            for p in 0..k {
                s += a[i * k + p] * b[p * n + j];
            }
            c[i * n + j] = if beta == T::ZERO {
                alpha * s
            } else {
                alpha * s + beta * c[i * n + j]
            };
        }
    }
}

/// `C += α A B` row after row, row `i` of the product added onto the `n` entries from
/// `c[i·ldc]` (rows may overlap, `ldc < n`); `A` is `m x k` with rows `lda` apart, `B` is
/// `k x n` with rows `ldb` apart.
#[allow(clippy::too_many_arguments)]
pub fn matmul_nn_ld_add<T: Element>(
    m: usize,
    n: usize,
    k: usize,
    alpha: T,
    (a, lda): (&[T], usize),
    (b, ldb): (&[T], usize),
    c: &mut [T],
    ldc: usize,
) {
    for i in 0..m {
        for j in 0..n {
            let mut s = T::ZERO;
            for p in 0..k {
                s += a[i * lda + p] * b[p * ldb + j];
            }
            c[i * ldc + j] += alpha * s;
        }
    }
}

/// [`crate::matmul_gather`]: `C[pos, j] ← Σ_p a[base(pos) + taps[p]] · b[p·n + j] + β·C`
/// over the grid's positions in order, `C`'s rows `ldc` apart.
#[allow(clippy::too_many_arguments)]
pub fn matmul_gather<T: Element>(
    grid: crate::Grid,
    taps: &[usize],
    a: &[T],
    b: &[T],
    n: usize,
    beta: T,
    c: &mut [T],
    ldc: usize,
) {
    for r in 0..grid.rows {
        for q in 0..grid.cols {
            let base = r * grid.row_step + q * grid.col_step;
            let row = &mut c[(r * grid.cols + q) * ldc..][..n];
            for (j, cj) in row.iter_mut().enumerate() {
                let mut s = T::ZERO;
                for (p, &t) in taps.iter().enumerate() {
                    s += a[base + t] * b[p * n + j];
                }
                *cj = if beta == T::ZERO { s } else { s + beta * *cj };
            }
        }
    }
}

/// [`crate::matmul_gather_tn`]: `G[p, j] ← β·G + Σ_pos a[base(pos) + taps[p]] · d[pos·ldd + j]`,
/// the positions in order.
#[allow(clippy::too_many_arguments)]
pub fn matmul_gather_tn<T: Element>(
    grid: crate::Grid,
    taps: &[usize],
    a: &[T],
    d: &[T],
    ldd: usize,
    n: usize,
    beta: T,
    g: &mut [T],
) {
    for (p, &t) in taps.iter().enumerate() {
        for j in 0..n {
            let mut s = if beta == T::ZERO {
                T::ZERO
            } else {
                beta * g[p * n + j]
            };
            for r in 0..grid.rows {
                for q in 0..grid.cols {
                    let x = a[r * grid.row_step + q * grid.col_step + t];
                    s += x * d[(r * grid.cols + q) * ldd + j];
                }
            }
            g[p * n + j] = s;
        }
    }
}

/// `C ← α Aᵀ B + β C`, `A` is `k x m`, `B` is `k x n`.
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
) {
    for i in 0..m {
        for j in 0..n {
            let mut s = T::ZERO;
            for p in 0..k {
                s += a[p * m + i] * b[p * n + j];
            }
            c[i * n + j] = if beta == T::ZERO {
                alpha * s
            } else {
                alpha * s + beta * c[i * n + j]
            };
        }
    }
}

/// `Σ a_i b_i`.
pub fn dot<T: Element>(a: &[T], b: &[T]) -> T {
    let mut s = T::ZERO;
    for (&x, &y) in a.iter().zip(b) {
        s += x * y;
    }
    s
}

/// `y ← α x + y`.
pub fn axpy<T: Element>(alpha: T, x: &[T], y: &mut [T]) {
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi += alpha * xi;
    }
}

/// `x ← α x`.
pub fn scale<T: Element>(alpha: T, x: &mut [T]) {
    for xi in x {
        *xi *= alpha;
    }
}

/// Norm by plain squares in `f64` (overflows past about 1e154, which the tests stay below).
pub fn nrm2<T: Element>(x: &[T]) -> f64 {
    libm::sqrt(x.iter().map(|v| v.to_f64() * v.to_f64()).sum::<f64>())
}

/// `max_i |x_i|`: 0 for an empty slice, NaN if any entry is NaN.
pub fn amax<T: Element>(x: &[T]) -> T {
    let mut m = T::ZERO;
    for &v in x {
        let a = v.abs();
        // Only NaN is unordered with itself; it must win over every number.
        if a.partial_cmp(&a).is_none() {
            return a;
        }
        if a > m {
            m = a;
        }
    }
    m
}
