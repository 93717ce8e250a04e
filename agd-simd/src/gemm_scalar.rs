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

/// Where [`rows_update`] finds its coefficient `coef(i, p)`: `A[i, p]` for `A B`, `A[p, i]` for
/// `Aᵀ B` (`A` row-major with leading dimension `lda`).
#[derive(Clone, Copy)]
pub(crate) enum Coef<'a, T> {
    /// `coef(i, p) = a[i · lda + p]`.
    Rows(&'a [T], usize),
    /// `coef(i, p) = a[p · lda + i]`.
    Cols(&'a [T], usize),
}

impl<T: Element> Coef<'_, T> {
    #[inline(always)]
    fn at(self, i: usize, p: usize) -> T {
        match self {
            Coef::Rows(a, lda) => a[i * lda + p],
            Coef::Cols(a, lda) => a[p * lda + i],
        }
    }

    /// `α · coef(i0 + r, p + q)` for a full block of `R` rows: `R` or four bounds checks, not
    /// `4R`.
    #[inline(always)]
    fn block<const R: usize>(self, i0: usize, p: usize, alpha: T) -> [[T; TILE]; R] {
        let mut cf = [[T::ZERO; TILE]; R];
        match self {
            Coef::Rows(a, lda) => {
                for (r, row) in cf.iter_mut().enumerate() {
                    row.copy_from_slice(&a[(i0 + r) * lda + p..][..TILE]);
                }
            }
            Coef::Cols(a, lda) => {
                for q in 0..TILE {
                    let col = &a[(p + q) * lda + i0..][..R];
                    for (row, &x) in cf.iter_mut().zip(col) {
                        row[q] = x;
                    }
                }
            }
        }
        if alpha != T::ONE {
            for x in cf.iter_mut().flatten() {
                *x = alpha * *x;
            }
        }
        cf
    }
}

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
    if T::HAND_TILES && m >= TILE && n >= TILE {
        matmul_nt_hand(m, n, k, alpha, a, b, beta, c);
        return;
    }
    let mut i = 0;
    while i + TILE <= m {
        let ar: [&[T]; TILE] = core::array::from_fn(|r| &a[(i + r) * k..][..k]);
        let mut j = 0;
        while j + TILE <= n {
            let br: [&[T]; TILE] = core::array::from_fn(|s| &b[(j + s) * k..][..k]);
            let mut acc = [[T::ZERO; TILE]; TILE];
            // The target's hand-written tile first, if it has one; then four steps of `p` per
            // turn: the eight row addresses are formed once per turn and every load takes an
            // immediate offset (VLDR has no register-offset form).
            let mut p = T::nt_tile4(ar, br, &mut acc);
            let quads = p + (k - p) / TILE * TILE;
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
    coef: Coef<'_, T>,
    b: &[T],
    beta: T,
    c: &mut [T],
) {
    if beta == T::ZERO {
        c[..m * n].fill(T::ZERO);
    } else if beta != T::ONE {
        scale(beta, &mut c[..m * n]);
    }
    if T::HAND_TILES && m >= 2 && n >= 2 {
        rows_update_hand(m, n, k, alpha, coef, b, c);
        return;
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
                core::array::from_fn(|r| core::array::from_fn(|q| alpha * coef.at(i + r, p + q)));
            if cf.iter().flatten().all(|&x| x == T::ZERO) {
                p += TILE;
                continue;
            }
            let br: [&[T]; TILE] = core::array::from_fn(|q| &b[(p + q) * n..][..n]);
            let done = T::rows_tile(
                &cf,
                br,
                [&mut c0[..], &mut c1[..], &mut c2[..], &mut c3[..]],
            );
            for j in done..n {
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
                let f = alpha * coef.at(i + r, p);
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
            let f = alpha * coef.at(i, p);
            if f != T::ZERO {
                axpy(f, &b[p * n..][..n], cr);
            }
        }
    }
}

/// [`matmul_nt`] through the target's hand-written 4x4 tile (`m, n ≥ 4`): an edge tile is moved
/// back to overlap the previous one and stores only the rows and columns not stored yet.
#[allow(clippy::too_many_arguments)]
fn matmul_nt_hand<T: Element>(
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
    // Every tile through the hand-written kernel; an edge tile is moved back to overlap
    // the previous one and stores only the rows and columns not stored yet.
    let mut i = 0;
    while i < m {
        let i0 = i.min(m - TILE);
        let ar: [&[T]; TILE] = core::array::from_fn(|r| &a[(i0 + r) * k..][..k]);
        let mut j = 0;
        while j < n {
            let j0 = j.min(n - TILE);
            let br: [&[T]; TILE] = core::array::from_fn(|s| &b[(j0 + s) * k..][..k]);
            let mut acc = [[T::ZERO; TILE]; TILE];
            for p in T::nt_tile4(ar, br, &mut acc)..k {
                for (row, a_r) in acc.iter_mut().zip(&ar) {
                    for (v, b_s) in row.iter_mut().zip(&br) {
                        *v = madd(a_r[p], b_s[p], *v);
                    }
                }
            }
            if i0 == i && j0 == j {
                // The common case, unrolled (a dynamic skip would send the tile to memory).
                for (r, row) in acc.iter().enumerate() {
                    let c_r = &mut c[(i0 + r) * n + j0..][..TILE];
                    for (cij, &v) in c_r.iter_mut().zip(row) {
                        store(cij, v);
                    }
                }
            } else {
                for (r, row) in acc.iter().enumerate().skip(i - i0) {
                    for (s, &v) in row.iter().enumerate().skip(j - j0) {
                        store(&mut c[(i0 + r) * n + j0 + s], v);
                    }
                }
            }
            j = j0 + TILE;
        }
        i = i0 + TILE;
    }
}

/// [`rows_update`] (after β) through the target's hand-written tiles, edges included: blocks
/// of four rows of `C`, then the last one to three rows in blocks of two (the last one moved
/// back to overlap with zero coefficients for a row already done); a last partial group of `p`
/// gets zero coefficients (and repeats a valid row of `B`). So every multiply-add goes through
/// a tile; adding `0 · b` leaves `C` as it was (up to the sign of a zero).
fn rows_update_hand<T: Element>(
    m: usize,
    n: usize,
    k: usize,
    alpha: T,
    coef: Coef<'_, T>,
    b: &[T],
    c: &mut [T],
) {
    let mut i = 0;
    while i + TILE <= m {
        row_block::<T, TILE>(n, k, alpha, coef, b, c, i, 0);
        i += TILE;
    }
    while i < m {
        let i0 = i.min(m - 2);
        row_block::<T, 2>(n, k, alpha, coef, b, c, i0, i - i0);
        i = i0 + 2;
    }
}

/// Rows `i0 .. i0 + R` of [`rows_update_hand`], the first `skip` of them already done.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn row_block<T: Element, const R: usize>(
    n: usize,
    k: usize,
    alpha: T,
    coef: Coef<'_, T>,
    b: &[T],
    c: &mut [T],
    i0: usize,
    skip: usize,
) {
    let mut rows = c[i0 * n..(i0 + R) * n].chunks_exact_mut(n);
    let mut rows: [&mut [T]; R] = core::array::from_fn(|_| rows.next().unwrap_or_default());
    let mut p = 0;
    while p < k {
        let live = (k - p).min(TILE);
        let cf: [[T; TILE]; R] = if skip == 0 && live == TILE {
            coef.block(i0, p, alpha)
        } else {
            core::array::from_fn(|r| {
                core::array::from_fn(|q| {
                    if r < skip || q >= live {
                        T::ZERO
                    } else {
                        alpha * coef.at(i0 + r, p + q)
                    }
                })
            })
        };
        // Without short-circuit: one branch, not sixteen.
        if !cf
            .iter()
            .flatten()
            .fold(false, |any, &x| any | (x != T::ZERO))
        {
            p += TILE;
            continue;
        }
        let br: [&[T]; TILE] = core::array::from_fn(|q| &b[(p + q.min(live - 1)) * n..][..n]);
        let done = T::rows_tile(&cf, br, rows.each_mut().map(|r| &mut **r));
        for j in done..n {
            for (cr, f) in rows.iter_mut().zip(&cf) {
                for (q, b_q) in br.iter().enumerate() {
                    cr[j] = madd(f[q], b_q[j], cr[j]);
                }
            }
        }
        p += TILE;
    }
}

/// The 4x4 tiles as hand-scheduled `vfma.f32` loops (feature `arm-vfma`, hard-float Arm).
///
/// LLVM keeps the tile in registers but re-derives every operand address with an `add` (VLDR
/// has no register-offset form), about 2.2 instructions per multiply-add. Here each operand pair
/// comes in with one post-incrementing `vldmia`: 8 loads feed 32 multiply-adds (`A Bᵀ`), or
/// 4 loads + 4 loads + 4 stores of `C` (the rank updates), all 32 FPU registers in use.
#[cfg(all(target_arch = "arm", target_abi = "eabihf", feature = "arm-vfma"))]
pub(crate) mod m4 {
    /// `acc[r][s] += Σ_{p < 2·pairs} a_r[p] · b_s[p]`.
    ///
    /// # Safety
    /// `pairs ≥ 1` and every `a[r]`, `b[s]` points at `2·pairs` readable `f32`s.
    #[inline(always)]
    pub(crate) unsafe fn nt_tile(
        a: [*const f32; 4],
        b: [*const f32; 4],
        pairs: usize,
        acc: &mut [[f32; 4]; 4],
    ) {
        // SAFETY: the caller's contract; the asm only reads through the eight pointers.
        unsafe {
            core::arch::asm!(
            "2:",
            "vldmia {a0}!, {{s16, s17}}",
            "vldmia {a1}!, {{s18, s19}}",
            "vldmia {a2}!, {{s20, s21}}",
            "vldmia {a3}!, {{s22, s23}}",
            "vldmia {b0}!, {{s24, s25}}",
            "vldmia {b1}!, {{s26, s27}}",
            "vldmia {b2}!, {{s28, s29}}",
            "vldmia {b3}!, {{s30, s31}}",
            "vfma.f32 s0, s16, s24",
            "vfma.f32 s1, s16, s26",
            "vfma.f32 s2, s16, s28",
            "vfma.f32 s3, s16, s30",
            "vfma.f32 s4, s18, s24",
            "vfma.f32 s5, s18, s26",
            "vfma.f32 s6, s18, s28",
            "vfma.f32 s7, s18, s30",
            "vfma.f32 s8, s20, s24",
            "vfma.f32 s9, s20, s26",
            "vfma.f32 s10, s20, s28",
            "vfma.f32 s11, s20, s30",
            "vfma.f32 s12, s22, s24",
            "vfma.f32 s13, s22, s26",
            "vfma.f32 s14, s22, s28",
            "vfma.f32 s15, s22, s30",
            "vfma.f32 s0, s17, s25",
            "vfma.f32 s1, s17, s27",
            "vfma.f32 s2, s17, s29",
            "vfma.f32 s3, s17, s31",
            "vfma.f32 s4, s19, s25",
            "vfma.f32 s5, s19, s27",
            "vfma.f32 s6, s19, s29",
            "vfma.f32 s7, s19, s31",
            "vfma.f32 s8, s21, s25",
            "vfma.f32 s9, s21, s27",
            "vfma.f32 s10, s21, s29",
            "vfma.f32 s11, s21, s31",
            "vfma.f32 s12, s23, s25",
            "vfma.f32 s13, s23, s27",
            "vfma.f32 s14, s23, s29",
            "vfma.f32 s15, s23, s31",
            "subs {n}, {n}, #1",
            "bne 2b",
            a0 = inout(reg) a[0] => _,
            a1 = inout(reg) a[1] => _,
            a2 = inout(reg) a[2] => _,
            a3 = inout(reg) a[3] => _,
            b0 = inout(reg) b[0] => _,
            b1 = inout(reg) b[1] => _,
            b2 = inout(reg) b[2] => _,
            b3 = inout(reg) b[3] => _,
            n = inout(reg) pairs => _,
            inout("s0") acc[0][0],
            inout("s1") acc[0][1],
            inout("s2") acc[0][2],
            inout("s3") acc[0][3],
            inout("s4") acc[1][0],
            inout("s5") acc[1][1],
            inout("s6") acc[1][2],
            inout("s7") acc[1][3],
            inout("s8") acc[2][0],
            inout("s9") acc[2][1],
            inout("s10") acc[2][2],
            inout("s11") acc[2][3],
            inout("s12") acc[3][0],
            inout("s13") acc[3][1],
            inout("s14") acc[3][2],
            inout("s15") acc[3][3],
            out("s16") _,
            out("s17") _,
            out("s18") _,
            out("s19") _,
            out("s20") _,
            out("s21") _,
            out("s22") _,
            out("s23") _,
            out("s24") _,
            out("s25") _,
            out("s26") _,
            out("s27") _,
            out("s28") _,
            out("s29") _,
            out("s30") _,
            out("s31") _,
            options(nostack, readonly),
            );
        }
    }

    /// `c_r[j] += Σ_q cf[r][q] · b_q[j]` for `j < 2·pairs`, rows `r < 4`.
    ///
    /// # Safety
    /// `pairs ≥ 1`; every `b[q]` points at `2·pairs` readable and every `c[r]` at `2·pairs`
    /// writable `f32`s, and no `c` row overlaps another row or any `b` row.
    #[inline(always)]
    pub(crate) unsafe fn rows_tile(
        cf: &[[f32; 4]; 4],
        b: [*const f32; 4],
        c: [*mut f32; 4],
        pairs: usize,
    ) {
        // SAFETY: the caller's contract.
        unsafe {
            core::arch::asm!(
            "2:",
            "vldmia {b0}!, {{s16, s17}}",
            "vldmia {b1}!, {{s18, s19}}",
            "vldmia {b2}!, {{s20, s21}}",
            "vldmia {b3}!, {{s22, s23}}",
            "vldmia {c0}, {{s24, s25}}",
            "vldmia {c1}, {{s26, s27}}",
            "vldmia {c2}, {{s28, s29}}",
            "vldmia {c3}, {{s30, s31}}",
            "vfma.f32 s24, s0, s16",
            "vfma.f32 s25, s0, s17",
            "vfma.f32 s26, s4, s16",
            "vfma.f32 s27, s4, s17",
            "vfma.f32 s28, s8, s16",
            "vfma.f32 s29, s8, s17",
            "vfma.f32 s30, s12, s16",
            "vfma.f32 s31, s12, s17",
            "vfma.f32 s24, s1, s18",
            "vfma.f32 s25, s1, s19",
            "vfma.f32 s26, s5, s18",
            "vfma.f32 s27, s5, s19",
            "vfma.f32 s28, s9, s18",
            "vfma.f32 s29, s9, s19",
            "vfma.f32 s30, s13, s18",
            "vfma.f32 s31, s13, s19",
            "vfma.f32 s24, s2, s20",
            "vfma.f32 s25, s2, s21",
            "vfma.f32 s26, s6, s20",
            "vfma.f32 s27, s6, s21",
            "vfma.f32 s28, s10, s20",
            "vfma.f32 s29, s10, s21",
            "vfma.f32 s30, s14, s20",
            "vfma.f32 s31, s14, s21",
            "vfma.f32 s24, s3, s22",
            "vfma.f32 s25, s3, s23",
            "vfma.f32 s26, s7, s22",
            "vfma.f32 s27, s7, s23",
            "vfma.f32 s28, s11, s22",
            "vfma.f32 s29, s11, s23",
            "vfma.f32 s30, s15, s22",
            "vfma.f32 s31, s15, s23",
            "vstmia {c0}!, {{s24, s25}}",
            "vstmia {c1}!, {{s26, s27}}",
            "vstmia {c2}!, {{s28, s29}}",
            "vstmia {c3}!, {{s30, s31}}",
            "subs {n}, {n}, #1",
            "bne 2b",
            b0 = inout(reg) b[0] => _,
            b1 = inout(reg) b[1] => _,
            b2 = inout(reg) b[2] => _,
            b3 = inout(reg) b[3] => _,
            c0 = inout(reg) c[0] => _,
            c1 = inout(reg) c[1] => _,
            c2 = inout(reg) c[2] => _,
            c3 = inout(reg) c[3] => _,
            n = inout(reg) pairs => _,
            in("s0") cf[0][0],
            in("s1") cf[0][1],
            in("s2") cf[0][2],
            in("s3") cf[0][3],
            in("s4") cf[1][0],
            in("s5") cf[1][1],
            in("s6") cf[1][2],
            in("s7") cf[1][3],
            in("s8") cf[2][0],
            in("s9") cf[2][1],
            in("s10") cf[2][2],
            in("s11") cf[2][3],
            in("s12") cf[3][0],
            in("s13") cf[3][1],
            in("s14") cf[3][2],
            in("s15") cf[3][3],
            out("s16") _,
            out("s17") _,
            out("s18") _,
            out("s19") _,
            out("s20") _,
            out("s21") _,
            out("s22") _,
            out("s23") _,
            out("s24") _,
            out("s25") _,
            out("s26") _,
            out("s27") _,
            out("s28") _,
            out("s29") _,
            out("s30") _,
            out("s31") _,
            options(nostack),
            );
        }
    }
    /// [`rows_tile`] for two rows of `C`.
    ///
    /// # Safety
    /// As [`rows_tile`].
    #[inline(always)]
    pub(crate) unsafe fn rows_tile2(
        cf: &[[f32; 4]; 2],
        b: [*const f32; 4],
        c: [*mut f32; 2],
        pairs: usize,
    ) {
        // SAFETY: the caller's contract.
        unsafe {
            core::arch::asm!(
            "2:",
            "vldmia {b0}!, {{s16, s17}}",
            "vldmia {b1}!, {{s18, s19}}",
            "vldmia {b2}!, {{s20, s21}}",
            "vldmia {b3}!, {{s22, s23}}",
            "vldmia {c0}, {{s24, s25}}",
            "vldmia {c1}, {{s26, s27}}",
            "vfma.f32 s24, s0, s16",
            "vfma.f32 s25, s0, s17",
            "vfma.f32 s26, s4, s16",
            "vfma.f32 s27, s4, s17",
            "vfma.f32 s24, s1, s18",
            "vfma.f32 s25, s1, s19",
            "vfma.f32 s26, s5, s18",
            "vfma.f32 s27, s5, s19",
            "vfma.f32 s24, s2, s20",
            "vfma.f32 s25, s2, s21",
            "vfma.f32 s26, s6, s20",
            "vfma.f32 s27, s6, s21",
            "vfma.f32 s24, s3, s22",
            "vfma.f32 s25, s3, s23",
            "vfma.f32 s26, s7, s22",
            "vfma.f32 s27, s7, s23",
            "vstmia {c0}!, {{s24, s25}}",
            "vstmia {c1}!, {{s26, s27}}",
            "subs {n}, {n}, #1",
            "bne 2b",
            b0 = inout(reg) b[0] => _,
            b1 = inout(reg) b[1] => _,
            b2 = inout(reg) b[2] => _,
            b3 = inout(reg) b[3] => _,
            c0 = inout(reg) c[0] => _,
            c1 = inout(reg) c[1] => _,
            n = inout(reg) pairs => _,
            in("s0") cf[0][0],
            in("s1") cf[0][1],
            in("s2") cf[0][2],
            in("s3") cf[0][3],
            in("s4") cf[1][0],
            in("s5") cf[1][1],
            in("s6") cf[1][2],
            in("s7") cf[1][3],
            out("s16") _,
            out("s17") _,
            out("s18") _,
            out("s19") _,
            out("s20") _,
            out("s21") _,
            out("s22") _,
            out("s23") _,
            out("s24") _,
            out("s25") _,
            out("s26") _,
            out("s27") _,
            options(nostack),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec;
    use std::vec::Vec;

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
    // Safe code on every host (the hand-written tiles are Arm-only): nothing for Miri to find.
    #[cfg_attr(miri, ignore)]
    fn tiled_products_match_naive() {
        let sizes = [1, 2, 3, 4, 5, 6, 8, 9, 10, 13];
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
                            Coef::Rows(&a, k),
                            &b[..k * n],
                            beta,
                            &mut got,
                        );
                        naive::matmul_nn(m, n, k, alpha, &a, &b[..k * n], beta, &mut want);
                        assert!(close(&got, &want), "nn {m} {n} {k}");

                        // Aᵀ B with A (k x m): the same buffer read as k x m.
                        // The hand-tile drivers' edge logic (overlapping edge tiles, zero
                        // padding), here with the plain loops in place of the tiles.
                        if m >= TILE && n >= TILE {
                            let mut got = c.clone();
                            matmul_nt_hand(m, n, k, alpha, &a, &b[..n * k], beta, &mut got);
                            let mut want = c.clone();
                            naive::matmul_nt(m, n, k, alpha, &a, &b[..n * k], beta, &mut want);
                            assert!(close(&got, &want), "nt hand {m} {n} {k}");
                        }
                        if m >= 2 {
                            let mut got: Vec<f64> = c.iter().map(|&x| beta * x).collect();
                            rows_update_hand(
                                m,
                                n,
                                k,
                                alpha,
                                Coef::Rows(&a, k),
                                &b[..k * n],
                                &mut got,
                            );
                            let mut want = c.clone();
                            naive::matmul_nn(m, n, k, alpha, &a, &b[..k * n], beta, &mut want);
                            assert!(close(&got, &want), "nn hand {m} {n} {k}");
                            let mut got: Vec<f64> = c.iter().map(|&x| beta * x).collect();
                            rows_update_hand(
                                m,
                                n,
                                k,
                                alpha,
                                Coef::Cols(&a, m),
                                &b[..k * n],
                                &mut got,
                            );
                            let mut want = c.clone();
                            naive::matmul_tn(m, n, k, alpha, &a, &b[..k * n], beta, &mut want);
                            assert!(close(&got, &want), "tn hand {m} {n} {k}");
                        }

                        let (mut got, mut want) = (c.clone(), c.clone());
                        rows_update(
                            m,
                            n,
                            k,
                            alpha,
                            Coef::Cols(&a, m),
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
