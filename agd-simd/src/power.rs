//! Power iteration for the top singular value `σ_max(A)`.

use crate::blas1::{axpy, dot, nrm2, scale};
use crate::element::Element;
use crate::error::{Error, check};
use crate::gemm::{matmul_nn, matmul_nt};
use crate::small::{combine_rows, dot4};

/// Estimates `σ_max(A)` of a row-major `rows x cols` matrix by `iters` rounds of power
/// iteration on `AᵀA`, warm-started from the caller's unit vector `v` (length `cols`).
///
/// Each round computes `u = A v / ||A v||` and `v = Aᵀ u / ||Aᵀ u||`; the estimate
/// `||Aᵀ u||` never exceeds `σ_max` and converges to it from below. A round reads `A` once:
/// row by row it forms `u_i = a_i · v` and adds `u_i a_i` to `z = AᵀA v` while the row is
/// still in L1, then takes `v = z / ||z||` and the estimate `||z|| / ||A v||`; a matrix
/// larger than the L2 then costs half the memory traffic of two products. `z` lives in `u`
/// where `rows ≥ cols`, else on a host in a stack buffer of up to 1024 values. Where neither
/// holds it (a wider `A`, or M-profile Arm and RISC-V with fewer rows than columns), and
/// where the squares of that pass would overflow or underflow (`σ_max` near the square root
/// of `T`'s range), the round runs as the two products instead. On return `v` holds the
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
    // Zeroed only for a matrix that uses it (8 KiB of `f64` each call otherwise).
    #[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
    let mut stack_z: Option<[T; STACK_Z]> = None;
    let mut sigma = T::ZERO;
    let mut free_restart = true;
    let mut round = 0;
    while round < iters {
        // One pass over `A` where `z = AᵀA v` has room (the first `cols` entries of `u`, or on
        // a host a stack buffer) and the plain sums of squares neither overflow nor lose
        // precision to underflow; else (and for a `v` that `A` maps to zero) the two-pass
        // round below, which redoes it safely.
        let z = if rows >= cols {
            Some(&mut u[..cols])
        } else {
            #[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
            {
                (cols <= STACK_Z).then(|| &mut stack_z.get_or_insert([T::ZERO; STACK_Z])[..cols])
            }
            #[cfg(any(target_arch = "arm", target_arch = "riscv32"))]
            None
        };
        if let Some(z) = z {
            let uu = fused_round(a, rows, cols, v, z);
            if uu.is_finite() && uu >= T::MIN_POSITIVE / T::EPSILON {
                let nz = nrm2(z);
                if nz.is_finite() && nz > T::ZERO {
                    // `vᵀz = ||Av||²` with `v` a unit vector, so `||z|| ≥ uu > 0`.
                    sigma = nz / uu.sqrt();
                    v.copy_from_slice(z);
                    normalize(v, nz);
                    round += 1;
                    continue;
                }
            }
        }
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

/// The widest `A` with fewer rows than columns whose rounds take one pass on a host: `z`
/// then lives in a stack buffer of this many values (8 KiB of `f64`). Targets without
/// vectors (M-profile Arm, RISC-V), whose stacks are small, take the two products there.
#[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
const STACK_Z: usize = 1024;

/// Rows that one fused step takes together ([`dot4`]'s four): each load of `v` and of `z`
/// serves all of them.
const GROUP: usize = 4;

/// How far ahead of its reads the fused pass asks for `A`'s lines. On Zen 3 (784 x 256
/// `f32`, `A` in L3), alternating distances of 0, 2, 4, 6, 8 and 16 KiB: the pass took 28.0,
/// 25.3, 24.6, 25.1, 26.4 and 29.9 µs on 4 KiB pages (24.0, 22.6, 22.2, 22.7, 23.7 and 26.7 on
/// huge pages).
const PREFETCH_BYTES: usize = 4096;

/// `z ← Aᵀ(A v)` in one pass over `A`'s rows (`u_i = a_i · v`, then `z += u_i a_i` while
/// `a_i` is still in L1), returning `||A v||²` as a plain sum of squares. Two passes read a
/// matrix that does not fit in L2 twice from memory; this reads it once.
fn fused_round<T: Element>(a: &[T], rows: usize, cols: usize, v: &[T], z: &mut [T]) -> T {
    z.fill(T::ZERO);
    let mut uu = T::ZERO;
    let mut groups = a[..rows * cols].chunks_exact(GROUP * cols);
    for g in &mut groups {
        let r: [&[T]; GROUP] = core::array::from_fn(|k| &g[k * cols..(k + 1) * cols]);
        let u = dot4(r, v, PREFETCH_BYTES / T::BYTES);
        for &ui in &u {
            uu += ui * ui;
        }
        combine_rows(T::ONE, |k| u[k], GROUP, g, cols, cols, T::ONE, z);
    }
    for row in groups.remainder().chunks_exact(cols) {
        let ui = dot(row, v);
        uu += ui * ui;
        axpy(ui, row, z);
    }
    uu
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// The fused pass against plain loops in `f64`, over row counts on both sides of the
    /// group size and column counts on both sides of the vector width: `z = AᵀA v` and
    /// `||A v||²`. Rounding bounds: `|δu_i| ≤ γ s_i` with `s_i = Σ_k |a_ik v_k|`, so
    /// `|δ(u_i²)| ≤ γ (u_i² + 2|u_i| s_i)` and `|δz_j| ≤ γ Σ_i |a_ij| (|u_i| + s_i)`, with
    /// `γ` for sums of `rows + cols` terms (doubled for slack).
    fn fused_matches_loops<T: Element>() {
        let val = |i: usize| T::from_f64(((i * 37 + 11) % 23) as f64 / 8.0 - 1.4);
        for rows in 1..=13 {
            for cols in 1..=2 * T::LANES + 3 {
                let a: Vec<f64> = (0..rows * cols).map(|i| val(i).to_f64()).collect();
                let v: Vec<f64> = (0..cols).map(|j| val(j * 5 + 3).to_f64()).collect();
                let row = |i: usize| &a[i * cols..(i + 1) * cols];
                let u: Vec<f64> = (0..rows)
                    .map(|i| row(i).iter().zip(&v).map(|(x, y)| x * y).sum())
                    .collect();
                let s: Vec<f64> = (0..rows)
                    .map(|i| row(i).iter().zip(&v).map(|(x, y)| (x * y).abs()).sum())
                    .collect();
                let gamma = 2.0 * (rows + cols) as f64 * T::EPSILON.to_f64();

                let (at, vt): (Vec<T>, Vec<T>) = (
                    a.iter().map(|&x| T::from_f64(x)).collect(),
                    v.iter().map(|&x| T::from_f64(x)).collect(),
                );
                let mut z = vec![T::from_f64(f64::NAN); cols];
                let uu = fused_round(&at, rows, cols, &vt, &mut z).to_f64();
                let want: f64 = u.iter().map(|x| x * x).sum();
                let bound: f64 = u
                    .iter()
                    .zip(&s)
                    .map(|(x, s)| x * x + 2.0 * x.abs() * s)
                    .sum();
                assert!(
                    (uu - want).abs() <= gamma * bound,
                    "{rows}x{cols}: {uu} vs {want}"
                );
                for (j, zj) in z.iter().enumerate() {
                    let want: f64 = (0..rows).map(|i| u[i] * a[i * cols + j]).sum();
                    let bound: f64 = (0..rows)
                        .map(|i| a[i * cols + j].abs() * (u[i].abs() + s[i]))
                        .sum();
                    let got = zj.to_f64();
                    assert!(
                        (got - want).abs() <= gamma * bound,
                        "{rows}x{cols} z[{j}]: {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn fused_matches_loops_f32() {
        fused_matches_loops::<f32>();
    }

    #[test]
    fn fused_matches_loops_f64() {
        fused_matches_loops::<f64>();
    }
}
