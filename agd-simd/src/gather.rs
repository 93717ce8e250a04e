//! Products whose left operand is gathered from an image in place: a convolution's windows,
//! read at fixed offsets from each output position, with no unfolded matrix in between.
//!
//! Output position `(r, q)` of a `rows x cols` [`Grid`] reads the `k = taps.len()` values
//! `a[r·row_step + q·col_step + taps[p]]`: with a zero-padded one-channel image whose rows
//! are `width` apart, `row_step = stride·width`, `col_step = stride` and `taps[i·kw + j] =
//! i·width + j` make row `r·cols + q` of `A` the window of output position `(r, q)`.
//!
//! | function | product | a convolution's |
//! |---|---|---|
//! | [`matmul_gather`] | `C (positions x n) ← A · B + β·C` | forward pass |
//! | [`matmul_gather_tn`] | `G (k x n) ← Aᵀ · D + β·G` | weight gradient |
//!
//! On a host a tile keeps a block of positions (forward) or of taps (weight gradient) in
//! vector registers across the whole depth, so each output is stored once; the unfolded
//! route writes and reads back a `positions x k` matrix first, which for a one-channel first
//! layer (`k = 9`) costs more than the products. Targets without vectors run plain loops.

use crate::element::Element;
use crate::error::{Error, check};
use crate::gemm::{check_c, check_ld};

/// The output positions of a gathered product: a `rows x cols` grid, position `(r, q)`'s
/// window starting `r·row_step + q·col_step` into the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    /// Rows of output positions.
    pub rows: usize,
    /// Output positions per row.
    pub cols: usize,
    /// Between the windows of consecutive rows (`stride · image width`).
    pub row_step: usize,
    /// Between the windows of neighbouring positions in a row (the stride).
    pub col_step: usize,
}

impl Grid {
    /// Output positions, `rows · cols`.
    fn positions(&self) -> Result<usize, Error> {
        self.rows
            .checked_mul(self.cols)
            .ok_or(Error::DimensionOverflow)
    }

    /// Checks that every window lies inside an image of `len` values.
    fn check_image(&self, taps: &[usize], len: usize) -> Result<(), Error> {
        if self.rows == 0 || self.cols == 0 || taps.is_empty() {
            return Ok(());
        }
        let reach = taps.iter().copied().max().unwrap_or(0);
        let needed = (self.rows - 1)
            .checked_mul(self.row_step)
            .and_then(|x| (self.cols - 1).checked_mul(self.col_step)?.checked_add(x))
            .and_then(|x| x.checked_add(reach))
            .and_then(|x| x.checked_add(1))
            .ok_or(Error::DimensionOverflow)?;
        if len < needed {
            return Err(Error::ShortSlice {
                operand: "a",
                needed,
                got: len,
            });
        }
        Ok(())
    }
}

/// `C ← A · B + β·C` with `A` gathered over `grid` (see the module docs): row `r·cols + q`
/// of `C`, `ldc` apart, is `Σ_p a[r·row_step + q·col_step + taps[p]] · B[p, :] + β·C`, with
/// `B` a row-major `k x n` matrix (`k = taps.len()`). With `β = 0`, `C` is only written.
///
/// ```
/// // A 3 x 3 one-channel image, its four 2 x 2 windows (stride 1) times two filters.
/// let x = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
/// let grid = agd_simd::Grid { rows: 2, cols: 2, row_step: 3, col_step: 1 };
/// let taps = [0, 1, 3, 4];
/// // Filter 0 sums its window, filter 1 takes its top-left value.
/// let b = [1.0f32, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0];
/// let mut c = [0.0f32; 8];
/// agd_simd::matmul_gather(grid, &taps, &x, &b, 2, 0.0, &mut c, 2).unwrap();
/// assert_eq!(c, [12.0, 1.0, 16.0, 2.0, 24.0, 4.0, 28.0, 5.0]);
/// ```
#[allow(clippy::too_many_arguments)]
pub fn matmul_gather<T: Element>(
    grid: Grid,
    taps: &[usize],
    a: &[T],
    b: &[T],
    n: usize,
    beta: T,
    c: &mut [T],
    ldc: usize,
) -> Result<(), Error> {
    let positions = grid.positions()?;
    grid.check_image(taps, a.len())?;
    check("b", taps.len(), n, b.len())?;
    check_c(positions, n, ldc, c.len())?;
    if positions == 0 || n == 0 {
        return Ok(());
    }
    #[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
    if T::LANES > 1 && !taps.is_empty() {
        let job = host::Forward {
            grid,
            taps,
            a,
            b,
            n,
            beta,
            c,
            ldc,
        };
        // SAFETY: every operand was checked above.
        unsafe { crate::kernel::dispatch(job) };
        return Ok(());
    }
    crate::naive::matmul_gather(grid, taps, a, b, n, beta, c, ldc);
    Ok(())
}

/// `G ← Aᵀ · D + β·G` with `A` gathered over `grid` (see the module docs): entry `(p, j)` of
/// the row-major `k x n` matrix `G` (`k = taps.len()`) is `Σ_(r, q) a[r·row_step + q·col_step +
/// taps[p]] · D[r·cols + q, j] + β·G`, with `D`'s rows `ldd` apart. The sum runs over the
/// positions in order, row after row, from `β·G`. With `β = 0`, `G` is only written.
///
/// ```
/// // The 2 x 2 windows of a 3 x 3 image, each weighted by its position's error.
/// let x = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
/// let grid = agd_simd::Grid { rows: 2, cols: 2, row_step: 3, col_step: 1 };
/// let d = [1.0f32, 0.0, 0.0, 1.0];
/// let mut g = [0.0f32; 4];
/// agd_simd::matmul_gather_tn(grid, &[0, 1, 3, 4], &x, &d, 1, 1, 0.0, &mut g).unwrap();
/// assert_eq!(g, [1.0 + 5.0, 2.0 + 6.0, 4.0 + 8.0, 5.0 + 9.0]);
/// ```
#[allow(clippy::too_many_arguments)]
pub fn matmul_gather_tn<T: Element>(
    grid: Grid,
    taps: &[usize],
    a: &[T],
    d: &[T],
    ldd: usize,
    n: usize,
    beta: T,
    g: &mut [T],
) -> Result<(), Error> {
    let positions = grid.positions()?;
    grid.check_image(taps, a.len())?;
    check_ld("d", positions, n, ldd, d.len())?;
    check("g", taps.len(), n, g.len())?;
    if taps.is_empty() || n == 0 {
        return Ok(());
    }
    #[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
    if T::LANES > 1 {
        let job = host::WeightGrad {
            grid,
            taps,
            a,
            d,
            ldd,
            n,
            beta,
            g,
        };
        // SAFETY: every operand was checked above.
        unsafe { crate::kernel::dispatch(job) };
        return Ok(());
    }
    crate::naive::matmul_gather_tn(grid, taps, a, d, ldd, n, beta, g);
    Ok(())
}

/// The vector kernels (hosts).
#[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
mod host {
    use super::Grid;
    use crate::element::Element;
    use crate::gemm::{even_blocks, pack_rows};
    use crate::kernel::{Lanes, Microkernel, finish_row, job, rows_per_tile};

    /// `c[0..cols] ← acc + β·c` for one row of accumulators (`c` not read when `β = 0`).
    ///
    /// # Safety
    /// `c` readable (if `β ≠ 0`) and writable for `cols <= NVU · N` values.
    #[inline(always)]
    unsafe fn store_row<T: Element, V: Lanes<T>, const NVU: usize>(
        acc: [V; NVU],
        beta: T,
        c: *mut T,
        cols: usize,
    ) {
        let vb = V::splat(beta);
        if cols == NVU * V::N {
            for (v, &s) in acc.iter().enumerate() {
                // SAFETY: a whole vector of the row (caller).
                unsafe {
                    let p = c.add(v * V::N);
                    let r = if beta == T::ZERO {
                        s
                    } else if beta == T::ONE {
                        V::load(p).add(s)
                    } else {
                        V::load(p).fmadd(vb, s)
                    };
                    r.store(p);
                }
            }
            return;
        }
        // The last columns of a product: through a copy, as the matrix tile's last columns.
        let acc = core::hint::black_box(acc);
        // SAFETY: `acc` holds NVU · N >= cols values; `c` as the caller guarantees.
        unsafe {
            finish_row::<T, V>(
                acc.as_ptr().cast::<T>(),
                cols,
                V::splat(T::ONE),
                beta,
                vb,
                c,
            )
        };
    }

    /// `R` neighbouring positions of a grid row times a packed panel of `NVU` vectors per
    /// tap: `C[i, :] ← Σ_p a[i·step + taps[p]] · bp[p, :] + β·C[i, :]`.
    ///
    /// Each shape a function of its own, as the matrix tiles are: a [`PositionsTile`] job
    /// given to the kernel's `enter`.
    ///
    /// # Safety
    /// `a` readable at `i·step + t` for `i < R` and every tap `t`; `bp` readable for
    /// `taps.len()` rows of `NVU · N` values; `c` as [`store_row`] for `R` rows `ldc` apart.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn positions_tile<T: Element, V: Lanes<T>, const R: usize, const NVU: usize>(
        taps: &[usize],
        a: *const T,
        step: usize,
        bp: *const T,
        beta: T,
        c: *mut T,
        ldc: usize,
        cols: usize,
    ) {
        let mut acc = [[V::zero(); NVU]; R];
        let mut bp = bp;
        for &t in taps {
            let mut b = [V::zero(); NVU];
            for (v, bv) in b.iter_mut().enumerate() {
                // SAFETY: panel row `p` holds `NVU · N` values (caller).
                *bv = unsafe { V::load(bp.add(v * V::N)) };
            }
            for (i, row) in acc.iter_mut().enumerate() {
                // SAFETY: inside the image (caller).
                let x = V::splat(unsafe { *a.add(i * step + t) });
                for (s, &bv) in row.iter_mut().zip(&b) {
                    *s = x.fmadd(bv, *s);
                }
            }
            bp = bp.wrapping_add(NVU * V::N);
        }
        for (i, row) in acc.iter().enumerate() {
            // SAFETY: row `i < R` of `C` (caller).
            unsafe { store_row::<T, V, NVU>(*row, beta, c.add(i * ldc), cols) };
        }
    }

    /// `R` taps times the positions of the whole grid:
    /// `G[p, :] ← Σ_pos a[base(pos) + taps[p]] · D[pos, :] + β·G[p, :]` for the `R` taps.
    ///
    /// Each shape a function of its own: a [`TapsTile`] job given to the kernel's `enter`.
    ///
    /// # Safety
    /// Every window inside `a`; `d` readable for every position's `cols` values, `ldd`
    /// apart, whole vectors when `cols = NVU · N`; `g` as [`store_row`] for `R` rows `ldg`
    /// apart.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn taps_tile<T: Element, V: Lanes<T>, const R: usize, const NVU: usize>(
        grid: Grid,
        taps: &[usize],
        a: *const T,
        d: *const T,
        ldd: usize,
        beta: T,
        g: *mut T,
        ldg: usize,
        cols: usize,
    ) {
        let mut off = [0usize; R];
        off.copy_from_slice(&taps[..R]);
        let mut acc = [[V::zero(); NVU]; R];
        let whole = cols == NVU * V::N;
        let mut dp = d;
        for r in 0..grid.rows {
            let mut ap = a.wrapping_add(r * grid.row_step);
            for _ in 0..grid.cols {
                let mut dv = [V::zero(); NVU];
                for (v, x) in dv.iter_mut().enumerate() {
                    let col = v * V::N;
                    // SAFETY: the position's `cols` values of `D` (caller).
                    *x = unsafe {
                        if whole {
                            V::load(dp.add(col))
                        } else if col < cols {
                            V::load_partial(dp.add(col), (cols - col).min(V::N))
                        } else {
                            V::zero()
                        }
                    };
                }
                for (row, &t) in acc.iter_mut().zip(&off) {
                    // SAFETY: inside the window (caller).
                    let x = V::splat(unsafe { *ap.add(t) });
                    for (s, &y) in row.iter_mut().zip(&dv) {
                        *s = x.fmadd(y, *s);
                    }
                }
                ap = ap.wrapping_add(grid.col_step);
                dp = dp.wrapping_add(ldd);
            }
        }
        for (i, row) in acc.iter().enumerate() {
            // SAFETY: row `i < R` of `G` (caller).
            unsafe { store_row::<T, V, NVU>(*row, beta, g.add(i * ldg), cols) };
        }
    }

    job! {
        /// The arguments of one [`positions_tile`].
        struct PositionsTile['a, T, const R: usize, const NVU: usize]['_, T, R, NVU] {
            taps: &'a [usize],
            a: *const T,
            step: usize,
            bp: *const T,
            beta: T,
            c: *mut T,
            ldc: usize,
            cols: usize,
        } => positions_tile::<T, K::V, R, NVU>
    }

    job! {
        /// The arguments of one [`taps_tile`].
        struct TapsTile['a, T, const R: usize, const NVU: usize]['_, T, R, NVU] {
            grid: Grid,
            taps: &'a [usize],
            a: *const T,
            d: *const T,
            ldd: usize,
            beta: T,
            g: *mut T,
            ldg: usize,
            cols: usize,
        } => taps_tile::<T, K::V, R, NVU>
    }

    /// `K::enter($job { $fields })` for the tile job with `$rows` rows of one of the listed
    /// counts and `$nv` vectors.
    macro_rules! rows {
        ($job:ident, $K:ty, $rows:expr, $nv:literal: [$($r:literal)*] $fields:tt) => {
            match $rows {
                $($r => <$K as Microkernel<T>>::enter($job::<T, $r, $nv> $fields),)*
                _ => unreachable!("rows_per_tile bounds the rows"),
            }
        };
    }

    /// Runs tile job `$job` with `rows` rows (positions or taps) and `nv` vectors per row,
    /// the shapes [`crate::kernel::run_tile`] instantiates (`rows <= rows_per_tile(nv)`).
    macro_rules! dispatch {
        ($job:ident, $K:ty, $rows:expr, $nv:expr, $fields:tt) => {
            match $nv {
                1 => rows!($job, $K, $rows, 1: [1 2 3 4 5 6 7 8 9 10 11 12] $fields),
                2 => rows!($job, $K, $rows, 2: [1 2 3 4 5 6 7 8 9 10 11 12] $fields),
                3 if <$K as Microkernel<T>>::NV >= 3 => {
                    rows!($job, $K, $rows, 3: [1 2 3 4 5 6 7 8] $fields)
                }
                4 if <$K as Microkernel<T>>::NV >= 4 => rows!($job, $K, $rows, 4: [1 2 3 4 5 6] $fields),
                _ => unreachable!("kernels have at most four vectors per row"),
            }
        };
    }

    job! {
        /// The arguments of [`forward`], checked by [`super::matmul_gather`].
        pub(super) struct Forward['a, 'c, T]['_, '_, T] {
            pub(super) grid: Grid,
            pub(super) taps: &'a [usize],
            pub(super) a: &'a [T],
            pub(super) b: &'a [T],
            pub(super) n: usize,
            pub(super) beta: T,
            pub(super) c: &'c mut [T],
            pub(super) ldc: usize,
        } => forward::<T, K>
    }

    job! {
        /// The arguments of [`weight_grad`], checked by [`super::matmul_gather_tn`].
        pub(super) struct WeightGrad['a, 'g, T]['_, '_, T] {
            pub(super) grid: Grid,
            pub(super) taps: &'a [usize],
            pub(super) a: &'a [T],
            pub(super) d: &'a [T],
            pub(super) ldd: usize,
            pub(super) n: usize,
            pub(super) beta: T,
            pub(super) g: &'g mut [T],
        } => weight_grad::<T, K>
    }

    /// [`super::matmul_gather`] on a host, bounds checked: per panel of columns, `B` packed
    /// once (zero-padded to whole vectors), then every grid row in tiles of positions. Runs
    /// as a [`Forward`] job, inside the kernel's `enter`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn forward<T: Element, K: Microkernel<T>>(
        grid: Grid,
        taps: &[usize],
        a: &[T],
        b: &[T],
        n: usize,
        beta: T,
        c: &mut [T],
        ldc: usize,
    ) {
        let w = <K::V as Lanes<T>>::N;
        let k = taps.len();
        let mut buf = K::buf();
        let bp = K::buf_ptr(&mut buf);
        let (ap, cp) = (a.as_ptr(), c.as_mut_ptr());
        let mut j0 = 0;
        while j0 < n {
            let cols = (K::NV * w).min(n - j0);
            let nv = cols.div_ceil(w);
            let nr = nv * w;
            // The panel holds `KC · NV · w` values: taps in blocks of at most `KC · NV / nv`
            // rows, the first applying β and the others adding.
            let kc_cap = K::KC * K::NV / nv;
            for (p0, kc) in even_blocks(k, kc_cap) {
                // SAFETY: `B` holds `k x n` values (checked by the entry point);
                // `kc · nr <= KC · NV · w`, the buffer's length.
                unsafe { pack_rows::<T, K>(b.as_ptr().add(p0 * n + j0), n, kc, cols, nr, bp) };
                let beta_p = if p0 == 0 { beta } else { T::ONE };
                let tp = &taps[p0..p0 + kc];
                for r in 0..grid.rows {
                    for (q0, len) in even_blocks(grid.cols, rows_per_tile::<T, K>(nv)) {
                        // SAFETY: the entry point checked every window against `a` and
                        // every position's row of `C`; the panel holds `kc` rows of `nr`.
                        unsafe {
                            let at = ap.add(r * grid.row_step + q0 * grid.col_step);
                            let ct = cp.add((r * grid.cols + q0) * ldc + j0);
                            let step = grid.col_step;
                            let b = bp.cast_const();
                            dispatch!(
                                PositionsTile,
                                K,
                                len,
                                nv,
                                {
                                    taps: tp,
                                    a: at,
                                    step,
                                    bp: b,
                                    beta: beta_p,
                                    c: ct,
                                    ldc,
                                    cols,
                                }
                            );
                        }
                    }
                }
            }
            j0 += cols;
        }
    }

    /// [`super::matmul_gather_tn`] on a host, bounds checked: per panel of columns and block
    /// of taps, one pass over every position with the block's sums in registers. Runs as a
    /// [`WeightGrad`] job, inside the kernel's `enter`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn weight_grad<T: Element, K: Microkernel<T>>(
        grid: Grid,
        taps: &[usize],
        a: &[T],
        d: &[T],
        ldd: usize,
        n: usize,
        beta: T,
        g: &mut [T],
    ) {
        let w = <K::V as Lanes<T>>::N;
        let (ap, dp, gp) = (a.as_ptr(), d.as_ptr(), g.as_mut_ptr());
        let mut j0 = 0;
        while j0 < n {
            let cols = (K::NV * w).min(n - j0);
            let nv = cols.div_ceil(w);
            for (p0, len) in even_blocks(taps.len(), rows_per_tile::<T, K>(nv)) {
                // SAFETY: the entry point checked every window against `a`, every position's
                // row of `D` and `G`'s `k x n` values.
                unsafe {
                    let tp = &taps[p0..p0 + len];
                    let (dt, gt) = (dp.add(j0), gp.add(p0 * n + j0));
                    dispatch!(
                        TapsTile,
                        K,
                        len,
                        nv,
                        {
                            grid,
                            taps: tp,
                            a: ap,
                            d: dt,
                            ldd,
                            beta,
                            g: gt,
                            ldg: n,
                            cols,
                        }
                    );
                }
            }
            j0 += cols;
        }
    }
}

/// The gathered products through the portable and AVX2 kernels, which a CPU with AVX-512F
/// never takes otherwise (`tests/gather.rs` holds the full sweep, through whichever kernel runs): small
/// integers, so the products must equal the naive ones to the last bit.
#[cfg(all(test, not(any(target_arch = "arm", target_arch = "riscv32"))))]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// `len` integers in `-4..=4` from a small LCG.
    fn ints<T: Element>(seed: &mut u64, len: usize) -> Vec<T> {
        (0..len)
            .map(|_| {
                *seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                T::from_f64((*seed >> 33) as f64 % 9.0 - 4.0)
            })
            .collect()
    }

    fn sweep<T: Element>() {
        let mut seed = 7;
        // (h, w, k, stride): 3 x 3 and 5 x 5 windows, strides 1 and 2; a 600-tap one deeper
        // than a packed panel.
        for (h, w, kk, stride) in [(12, 12, 3, 1), (11, 13, 5, 2), (3, 620, 1, 1)] {
            let taps: Vec<usize> = if kk == 1 {
                (0..600).collect()
            } else {
                (0..kk)
                    .flat_map(|i| (0..kk).map(move |j| i * w + j))
                    .collect()
            };
            let width = if kk == 1 { 600 } else { kk };
            let grid = Grid {
                rows: (h - if kk == 1 { 1 } else { kk }) / stride + 1,
                cols: (w - width) / stride + 1,
                row_step: stride * w,
                col_step: stride,
            };
            let (p, k) = (grid.rows * grid.cols, taps.len());
            let a = ints::<T>(&mut seed, h * w);
            for n in [1, 3, 16, 17, 70] {
                for beta in [0.0, 1.0, -2.0].map(T::from_f64) {
                    let b = ints::<T>(&mut seed, k * n);
                    let c0 = ints::<T>(&mut seed, p * n);
                    let (mut fast, mut slow) = (c0.clone(), c0);
                    matmul_gather(grid, &taps, &a, &b, n, beta, &mut fast, n).unwrap();
                    crate::naive::matmul_gather(grid, &taps, &a, &b, n, beta, &mut slow, n);
                    assert!(fast == slow, "forward {h}x{w} k{kk} n{n}");
                    let d = ints::<T>(&mut seed, p * n);
                    let g0 = ints::<T>(&mut seed, k * n);
                    let (mut fast, mut slow) = (g0.clone(), g0);
                    matmul_gather_tn(grid, &taps, &a, &d, n, n, beta, &mut fast).unwrap();
                    crate::naive::matmul_gather_tn(grid, &taps, &a, &d, n, n, beta, &mut slow);
                    assert!(fast == slow, "weight gradient {h}x{w} k{kk} n{n}");
                }
            }
        }
    }

    /// Only on x86-64: elsewhere `dispatch` runs the portable kernel anyway.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_portable_kernel_matches_naive() {
        crate::kernel::forced::run(crate::kernel::forced::Kernel::Portable, || {
            sweep::<f32>();
            sweep::<f64>();
        });
    }

    #[cfg(all(target_arch = "x86_64", not(miri)))]
    #[test]
    fn the_avx2_kernel_matches_naive() {
        let ran = crate::kernel::forced::run(crate::kernel::forced::Kernel::Avx2, || {
            sweep::<f32>();
            sweep::<f64>();
        });
        if ran.is_none() {
            std::eprintln!("this CPU has no AVX2 and FMA: the AVX2 kernel is not checked");
        }
    }

    #[test]
    fn the_dispatched_kernel_matches_naive() {
        sweep::<f32>();
        sweep::<f64>();
    }
}
