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
//! On the host, products go through one blocked, packed loop over a per-ISA microkernel
//! (`kernel/`), or, for a single row or column of `C`, through the unpacked kernels of
//! `small`. Where the vector is a single scalar (`Element::LANES == 1`: M-profile Arm,
//! RISC-V) the register-tiled loops of `gemm_scalar` run instead.

use crate::blas1::{dot, scale};
use crate::choice::{Auto, Dispatch};
use crate::element::Element;
use crate::error::{Error, check};
use crate::gemm_scalar;
#[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
use crate::kernel::{Job, Lanes, Microkernel, rows_per_tile, run_tile};
use crate::small::{combine_rows, dot_rows};

/// `C ← β C` (`β = 0` writes zeros without reading).
#[inline]
fn apply_beta<T: Element>(beta: T, c: &mut [T]) {
    if beta == T::ZERO {
        c.fill(T::ZERO);
    } else if beta != T::ONE {
        scale(beta, c);
    }
}

/// How `op(A)` (`m x k`) sits in its slice.
#[derive(Clone, Copy)]
enum OpA<'a, T> {
    /// Entry `(i, p)` at `a[i·lda + p]`.
    Rows(&'a [T], usize),
    /// Entry `(i, p)` at `a[p·lda + i]` (`A` given transposed).
    Cols(&'a [T], usize),
}

/// How `op(B)` (`k x n`) sits in its slice.
#[derive(Clone, Copy)]
enum OpB<'a, T> {
    /// Entry `(p, j)` at `b[p·ldb + j]`.
    Rows(&'a [T], usize),
    /// Entry `(p, j)` at `b[j·ldb + p]` (`B` given transposed).
    Cols(&'a [T], usize),
}

/// `C (m x n, row stride ldc) ← α · op(A) · op(B) + β · C` with every operand's bounds
/// already checked: the matrix-vector shapes and tiny batches go to the unpacked kernels,
/// everything else through the blocked loop.
///
/// With `sum_sq`, also adds the plain `Σ_ij C_ij²` of the result to it: the blocked loop
/// reads each finished tile back while it is still in L1; the other paths, cheap or rare,
/// make a pass over `C` afterwards.
///
/// Inlined into each entry point, with the blocked loop: 16³ `A·Bᵀ` took 0.93x the time of
/// one shared out-of-line copy (`product_loop`, eight alternating runs each), and the `agd`
/// binary stayed smaller than before the kernel was chosen at run time.
///
/// `d` picks the blocked loop's kernel: `Auto` (the CPU's fastest) for every public product,
/// a caller's [`crate::Kernel`] for its methods.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn gemm<T: Element, D: Dispatch>(
    d: D,
    m: usize,
    n: usize,
    k: usize,
    alpha: T,
    a: OpA<'_, T>,
    b: OpB<'_, T>,
    beta: T,
    c: &mut [T],
    ldc: usize,
    sum_sq: Option<&mut T>,
) {
    gemm_warm(d, m, n, k, alpha, a, b, beta, c, ldc, sum_sq, Ahead::NONE);
}

/// [`gemm`], asking for the lines of `warm` while the tiles compute ([`Ahead`]); products
/// that do not run as tiles of the blocked loop, or that copy `A` first, ignore it.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn gemm_warm<T: Element, D: Dispatch>(
    d: D,
    m: usize,
    n: usize,
    k: usize,
    alpha: T,
    a: OpA<'_, T>,
    b: OpB<'_, T>,
    beta: T,
    c: &mut [T],
    ldc: usize,
    sum_sq: Option<&mut T>,
    warm: Ahead,
) {
    #[cfg(any(target_arch = "arm", target_arch = "riscv32"))]
    let _ = warm;
    if m == 0 || n == 0 {
        return;
    }
    #[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
    if let (1, OpB::Rows(b, _)) = (k, b) {
        rank1(m, n, alpha, a, &b[..n], beta, c, ldc, sum_sq);
        return;
    }
    #[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
    if k > 0 && m >= SMALL_M && n > 1 {
        let measures = crate::cache::measures();
        let job = Blocked::new(
            m,
            n,
            k,
            alpha,
            a,
            b,
            beta,
            c,
            ldc,
            sum_sq,
            measures.prefetch,
        );
        // SAFETY: every operand's bounds were checked by the entry points, and the CPU
        // runs `d`'s kernel (the CPU's own choice, or a `Kernel` checked available).
        unsafe {
            if measures.copy_a && a_aliases::<T>(job.acol, job.lda, n) {
                copied(d, job);
            } else {
                d.dispatch(Blocked { warm, ..job });
            }
        }
        return;
    }
    #[cfg(any(target_arch = "arm", target_arch = "riscv32"))]
    let _ = d;
    unblocked(m, n, k, alpha, a, b, beta, c, ldc);
    if let Some(s) = sum_sq {
        for row in c.chunks_mut(ldc).take(m) {
            let row = &row[..n];
            *s += dot(row, row);
        }
    }
}

/// `C ← α · a bᵀ + β · C`, the product of depth 1 (a one-sample weight gradient, an outer
/// product): `a` is `op(A)`'s one column, `b` `op(B)`'s one row. Each row of `C` is one pass of
/// whole vectors, the squares for `sum_sq` taken from the values as they are stored. The
/// blocked loop ran this as dozens of tiles of one multiply-add each, each with its packing
/// and its own sum of squares: 64 x 1 x 64 took 1.2 µs, most of a `[64,64,10]` b1 step.
///
/// Rounds as the microkernels do: `a_i b_j` once, then `α ·` it, then `+ β c_ij` fused.
#[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn rank1<T: Element>(
    m: usize,
    n: usize,
    alpha: T,
    a: OpA<'_, T>,
    b: &[T],
    beta: T,
    c: &mut [T],
    ldc: usize,
    sum_sq: Option<&mut T>,
) {
    use crate::element::Vector;
    let l = T::LANES;
    let (va, vb) = (T::V::splat(alpha), T::V::splat(beta));
    let (alpha_one, beta_zero, beta_one) = (alpha == T::ONE, beta == T::ZERO, beta == T::ONE);
    let finish = |t: T::V, c: &[T]| -> T::V {
        match (alpha_one, beta_zero) {
            (true, true) => t,
            (false, true) => t * va,
            (true, false) if beta_one => T::V::load(c) + t,
            _ => T::V::load(c).mul_add(vb, t * va),
        }
    };
    let whole = n - n % l;
    let mut acc = T::V::splat(T::ZERO);
    let mut tail_sq = T::ZERO;
    // A padded vector for the last `n % l` columns, so they round as the others do.
    let mut pad_b = [T::ZERO; 64];
    let mut pad_c = [T::ZERO; 64];
    pad_b[..n - whole].copy_from_slice(&b[whole..]);
    for i in 0..m {
        let ai = T::V::splat(match a {
            OpA::Rows(a, lda) => a[i * lda],
            OpA::Cols(a, _) => a[i],
        });
        let row = &mut c[i * ldc..i * ldc + n];
        let mut j = 0;
        while j < whole {
            let r = finish(ai * T::V::load(&b[j..]), &row[j..]);
            r.store(&mut row[j..]);
            acc = r.mul_add(r, acc);
            j += l;
        }
        if j < n {
            let rest = n - j;
            pad_c[..rest].copy_from_slice(&row[j..]);
            finish(ai * T::V::load(&pad_b[..l]), &pad_c[..l]).store(&mut pad_c[..l]);
            row[j..].copy_from_slice(&pad_c[..rest]);
            for &x in &pad_c[..rest] {
                tail_sq += x * x;
            }
        }
    }
    if let Some(s) = sum_sq {
        *s += acc.reduce_add() + tail_sq;
    }
}

/// Runs `job` as a [`CopiedA`] job, out of line: the portable kernel runs its job inlined
/// into the caller, and the copy's 64 KiB stack frame, probed page by page, would then be
/// every product's (16³ took 1.3x as long).
///
/// # Safety
/// As [`Dispatch::dispatch`], with `job.acol`.
#[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
#[inline(never)]
unsafe fn copied<T: Element, D: Dispatch>(d: D, job: Blocked<'_, T>) {
    // SAFETY: the caller's contract.
    unsafe { d.dispatch(CopiedA(job)) }
}

/// The products [`gemm`] does not send through the blocked loop: `k = 0`, the scalar loops
/// of targets without vectors, and the unpacked kernels.
#[allow(clippy::too_many_arguments)]
fn unblocked<T: Element>(
    m: usize,
    n: usize,
    k: usize,
    alpha: T,
    a: OpA<'_, T>,
    b: OpB<'_, T>,
    beta: T,
    c: &mut [T],
    ldc: usize,
) {
    if k == 0 {
        for i in 0..m {
            apply_beta(beta, &mut c[i * ldc..i * ldc + n]);
        }
        return;
    }
    if T::LANES == 1 {
        // No vector unit (M-profile Arm, RISC-V): the register-tiled scalar loops, for the
        // layouts the public entry points pass.
        match (a, b) {
            (OpA::Rows(a, lda), OpB::Cols(b, ldb)) if lda == k && ldb == k && ldc == n => {
                return gemm_scalar::matmul_nt(m, n, k, alpha, a, b, beta, c);
            }
            (OpA::Rows(a, lda), OpB::Rows(b, ldb)) if ldb == n && ldc == n => {
                let coef = gemm_scalar::Coef::Rows(a, lda);
                return gemm_scalar::rows_update(m, n, k, alpha, coef, b, beta, c);
            }
            (OpA::Cols(a, lda), OpB::Rows(b, ldb)) if ldb == n && ldc == n => {
                let coef = gemm_scalar::Coef::Cols(a, lda);
                return gemm_scalar::rows_update(m, n, k, alpha, coef, b, beta, c);
            }
            _ => {}
        }
    }
    unpacked(m, n, k, alpha, a, b, beta, c, ldc);
}

/// Below this many rows of `C` the unpacked kernels win: packing a panel of `B` costs a pass
/// over `B` that one or two rows cannot pay back.
#[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
const SMALL_M: usize = 3;

/// A product whose `C`, or whose `op(B)`, takes at least this many bytes asks for its next
/// lines ahead of use ([`Ahead`]): an operand that large has usually left L1 and L2 by the
/// time the product runs (a training step's weights and gradients), while a smaller one is
/// usually still there, and its product is short enough for the prefetch instructions to
/// show. Not on a CPU with an L2 of 2 MiB or more ([`crate::CacheTuning::prefetch`]).
#[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
const PREFETCH_BYTES: usize = 512 * 1024;

/// Whether `rows x cols` values of `T` reach [`PREFETCH_BYTES`].
#[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
#[inline(always)]
fn large<T>(rows: usize, cols: usize) -> bool {
    rows.saturating_mul(cols)
        .saturating_mul(core::mem::size_of::<T>())
        >= PREFETCH_BYTES
}

/// Whether an `m x n x k` product is large enough to prefetch `C` and `op(B)` ([`large`]):
/// decided for the whole product, also when it runs in blocks ([`blocked_copied`]), and
/// only where the CPU's caches make it pay ([`Blocked::ahead`]).
#[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
#[inline(always)]
fn ahead<T>(m: usize, n: usize, k: usize) -> (bool, bool) {
    (large::<T>(m, n), large::<T>(k, n))
}

/// Lines the blocked loop asks for while a tile computes, so that they arrive from L3 or
/// memory before they are needed: `runs` runs of `run` bytes, `stride` bytes apart, from
/// `base`. Prefetches are hints: they read and write nothing and never fault, so the
/// addresses are formed with wrapping arithmetic and need not be checked.
///
/// * The next tile's rows of `C`, asked for to be written (`prefetchw` where the CPU has it,
///   else a plain prefetch): a weight gradient writes a `C` that was last touched a whole
///   step ago, and without this each tile's stores waited for their lines at the end.
/// * The block of `op(B)` that the next packing (or in-place tile) reads, into L2, a share
///   of it per tile of the current block.
/// * A region the caller reads next (a convolution's next sample: the `_warm` products),
///   into L2, as runs of one line ([`Ahead::lines_of`]), the tiles taking shares of it by
///   their multiply-adds. A burst of hundreds of prefetches before a product waits for the
///   lines it asks for; spread over the tiles they arrive while the tiles compute.
///
/// Only x86-64 has the instruction here; elsewhere (aarch64 hosts) the hints compile to
/// nothing. The M-profile and RISC-V targets run no blocked loop and ask for nothing.
#[derive(Clone, Copy)]
#[cfg_attr(any(target_arch = "arm", target_arch = "riscv32"), allow(dead_code))]
struct Ahead {
    base: *const u8,
    runs: usize,
    run: usize,
    stride: usize,
}

#[cfg_attr(any(target_arch = "arm", target_arch = "riscv32"), allow(dead_code))]
impl Ahead {
    /// Nothing to ask for.
    const NONE: Ahead = Ahead {
        base: core::ptr::null(),
        runs: 0,
        run: 0,
        stride: 0,
    };

    /// The cache lines that hold `s`, one run each.
    fn lines_of<T>(s: &[T]) -> Self {
        if s.is_empty() {
            return Ahead::NONE;
        }
        let start = s.as_ptr() as usize;
        let first = start & !63;
        Ahead {
            base: s.as_ptr().cast::<u8>().wrapping_sub(start - first),
            runs: (start + core::mem::size_of_val(s) - first).div_ceil(64),
            run: 64,
            stride: 64,
        }
    }

    /// Runs `rows` of a row-major block starting at `p`, each `cols` values of `T`, `ld`
    /// values apart.
    #[inline(always)]
    fn block<T>(p: *const T, rows: usize, cols: usize, ld: usize) -> Self {
        let size = core::mem::size_of::<T>();
        Ahead {
            base: p.cast(),
            runs: rows,
            run: cols * size,
            stride: ld * size,
        }
    }

    /// Asks for the lines of runs `from..to`; `WRITE` for lines about to be written.
    #[inline(always)]
    fn fetch<const WRITE: bool>(&self, from: usize, to: usize) {
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        for r in from..to {
            use core::arch::x86_64::{_MM_HINT_ET0, _MM_HINT_T1, _mm_prefetch};
            let row = self.base.wrapping_add(r * self.stride).cast::<i8>();
            let mut off = 0;
            while off < self.run {
                let line = row.wrapping_add(off);
                // SAFETY: a prefetch reads and writes nothing and never faults.
                unsafe {
                    if WRITE {
                        _mm_prefetch::<_MM_HINT_ET0>(line);
                    } else {
                        _mm_prefetch::<_MM_HINT_T1>(line);
                    }
                }
                off += 64;
            }
            // A run that starts inside a line can end in one more.
            if WRITE && self.run > 0 {
                // SAFETY: as above.
                unsafe { _mm_prefetch::<_MM_HINT_ET0>(row.wrapping_add(self.run - 1)) };
            }
        }
        #[cfg(not(all(target_arch = "x86_64", not(miri))))]
        let _ = (self.base, self.run, self.stride, from, to);
    }
}

/// The unpacked products: each row of `C` as dot products with the columns of `op(B)` or as
/// a combination of its rows; a single column of `C` as the same with the roles of `A` and
/// `B` swapped.
#[allow(clippy::too_many_arguments)]
fn unpacked<T: Element>(
    m: usize,
    n: usize,
    k: usize,
    alpha: T,
    a: OpA<'_, T>,
    b: OpB<'_, T>,
    beta: T,
    c: &mut [T],
    ldc: usize,
) {
    if n == 1 && ldc == 1 {
        // One column of C: c = α op(A) b + β c with b contiguous when its stride allows.
        match (a, b) {
            (OpA::Rows(a, lda), OpB::Cols(b, _)) => {
                return dot_rows(alpha, &b[..k], a, lda, m, beta, &mut c[..m]);
            }
            (OpA::Rows(a, lda), OpB::Rows(b, 1)) => {
                return dot_rows(alpha, &b[..k], a, lda, m, beta, &mut c[..m]);
            }
            (OpA::Cols(a, lda), OpB::Rows(b, ldb)) => {
                return combine_rows(alpha, |p| b[p * ldb], k, a, lda, m, beta, &mut c[..m]);
            }
            _ => {}
        }
    }
    for i in 0..m {
        let c_row = &mut c[i * ldc..i * ldc + n];
        match (a, b) {
            (OpA::Rows(a, lda), OpB::Cols(b, ldb)) => {
                dot_rows(alpha, &a[i * lda..i * lda + k], b, ldb, n, beta, c_row)
            }
            (OpA::Rows(a, lda), OpB::Rows(b, ldb)) => {
                combine_rows(alpha, |p| a[i * lda + p], k, b, ldb, n, beta, c_row)
            }
            (OpA::Cols(a, lda), OpB::Rows(b, ldb)) => {
                combine_rows(alpha, |p| a[p * lda + i], k, b, ldb, n, beta, c_row)
            }
            (OpA::Cols(a, lda), OpB::Cols(b, ldb)) => {
                for (j, cij) in c_row.iter_mut().enumerate() {
                    let mut s = T::ZERO;
                    for p in 0..k {
                        s += a[p * lda + i] * b[j * ldb + p];
                    }
                    *cij = if beta == T::ZERO {
                        alpha * s
                    } else {
                        alpha * s + beta * *cij
                    };
                }
            }
        }
    }
}

/// The blocked, packed loop (written once for every microkernel and element): for each
/// panel of `NR` columns and each depth block of at most `KC`, pack `op(B)`'s panel into a
/// stack buffer, then run every row block of `A` past it (`MR` rows; more, up to
/// `MAX_ROWS`, for a narrower last panel). `A` is never packed: the tile broadcasts its
/// entries straight from the caller's slice. `C` is visited once per depth block (the first
/// applies `β`, later ones add). When `C` or `op(B)` is large ([`PREFETCH_BYTES`]), each
/// tile first asks for the next tile's rows of `C` and a share of the next block of
/// `op(B)` ([`Ahead`]).
///
/// Runs inside the kernel's `enter`, as a [`Blocked`] job ([`blocked`]) or on blocks of a
/// copy of `A` ([`blocked_copied`]); `ahead_c` and `ahead_b` say whether to prefetch, decided
/// for the whole product.
///
/// # Safety
/// As [`Blocked`].
#[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
#[inline(always)]
unsafe fn blocked_body<T: Element, K: Microkernel<T>>(
    job: Blocked<'_, T>,
    ahead_c: bool,
    ahead_b: bool,
) {
    let Blocked {
        m,
        n,
        k,
        alpha,
        a: ap,
        lda,
        acol,
        b: bsrc,
        ldb,
        bcol,
        beta,
        c: cp,
        ldc,
        mut sum_sq,
        // Decided by the caller: `ahead_c` and `ahead_b`.
        prefetch: _,
        warm,
        groups,
    } = job;
    // Tiles per panel and depth block: every group's rows shared evenly between its tiles.
    let tiles_of = |rows_cap: usize| {
        let (full, rest) = (m / groups.rows, m % groups.rows);
        full * groups.rows.div_ceil(rows_cap) + rest.div_ceil(rows_cap)
    };
    // `warm`'s lines, spread over the tiles by their share of the multiply-adds: each tile
    // asks for the lines up to `done · lines / (m·n·k)`, `done` counting its own.
    let warm_rate = warm.runs as f64 / (m as f64 * n as f64 * k as f64);
    let (mut warm_done, mut warm_asked) = (0.0f64, 0usize);
    let w = <K::V as Lanes<T>>::N;
    // A short `A` (more rows than a full-width tile takes, few enough for one taller tile)
    // runs in half-width panels: one tile of all `m` rows per panel, not two. So do short
    // groups.
    let g_rows = groups.rows.min(m);
    let nr_max = if K::NV >= 4 && g_rows > K::MR && g_rows <= K::MAX_ROWS {
        K::NV / 2 * w
    } else {
        K::NV * w
    };
    let mut buf = K::buf();
    let bp = K::buf_ptr(&mut buf);
    let mut j0 = 0;
    while j0 < n {
        let cols = nr_max.min(n - j0);
        // A narrower (last) panel is packed at the width it needs and run in taller tiles.
        let nv = cols.div_ceil(w);
        let nr = nv * w;
        // The most rows per tile, and the deepest block: a narrower panel takes
        // proportionally deeper blocks (the same buffer and L1 footprint, and fewer passes
        // over `C`: `n = 10` at `k = 256` is one block, not two). Matched on `nv` so that
        // both fold to constants: at 16³ a few integer divisions are a tenth of the call.
        let (rows_cap, kc_cap) = match nv {
            1 => (rows_per_tile::<T, K>(1), K::KC * K::NV),
            2 => (rows_per_tile::<T, K>(2), K::KC * K::NV / 2),
            3 => (rows_per_tile::<T, K>(3), K::KC * K::NV / 3),
            _ => (rows_per_tile::<T, K>(4), K::KC * K::NV / 4),
        };
        // Equal depth blocks, so no block is a sliver.
        let kc_max = if k <= kc_cap {
            k
        } else {
            k.div_ceil(k.div_ceil(kc_cap))
        };
        let mut p0 = 0;
        while p0 < k {
            let kc = kc_max.min(k - p0);
            // The panel the tiles read and its row stride. A row-major `op(B)` read by a
            // single tile is used in place (its rows are already the vectors the tile wants,
            // and a copy would only be read once); a whole panel is needed for that, the
            // tile loads every vector of a row. So is one whose rows are exactly a panel's
            // (`ldb = nr`: the packed copy would be the same values in the same places).
            // SAFETY: the public entry points checked that op(B) holds every (p, j),
            // p < k, j < n; the buffer holds KC·NV·w >= kc·nv·w = kc·nr values.
            let (panel, ld_panel) = unsafe {
                if !bcol && cols == nr && (m <= rows_cap || ldb == nr) {
                    (bsrc.add(p0 * ldb + j0), ldb)
                } else if !bcol {
                    pack_rows::<T, K>(bsrc.add(p0 * ldb + j0), ldb, kc, cols, nr, bp);
                    (bp.cast_const(), nr)
                } else {
                    K::pack_b_transposed(bsrc.add(j0 * ldb + p0), ldb, kc, cols, nr, bp);
                    (bp.cast_const(), nr)
                }
            };
            let beta_p = if p0 == 0 { beta } else { T::ONE };
            // Rows shared evenly between the fewest tiles (64 = 5·11 + 9, not 5·12 + 4 with
            // 12-row tiles): a short remainder tile has too few accumulators to hide the FMA
            // latency.
            // The block of op(B) the next packing reads: the panel's next depth block, or
            // the next panel's first (its width and depth as the loop above will choose,
            // up to a narrower last panel's deeper block), and how many tiles share it.
            let next_b = if !ahead_b {
                None
            } else if p0 + kc < k {
                Some((j0, p0 + kc, cols, kc_max.min(k - p0 - kc)))
            } else if j0 + cols < n {
                Some((j0 + cols, 0, nr_max.min(n - j0 - cols), kc_max.min(k)))
            } else {
                None
            };
            let next_b = next_b.map(|(jn, pn, cn, kn)| {
                let block = if bcol {
                    Ahead::block(bsrc.wrapping_add(jn * ldb + pn), cn, kn, ldb)
                } else {
                    Ahead::block(bsrc.wrapping_add(pn * ldb + jn), kn, cn, ldb)
                };
                (block, tiles_of(rows_cap).max(1))
            });
            let (mut t, mut g0, mut ga, mut gc) = (0, 0, 0, 0);
            while g0 < m {
                let g_len = groups.rows.min(m - g0);
                for (i0, rows) in even_blocks(g_len, rows_cap) {
                    if warm.runs > warm_asked {
                        warm_done += (rows * cols * kc) as f64;
                        let upto = ((warm_done * warm_rate) as usize).min(warm.runs);
                        warm.fetch::<false>(warm_asked, upto);
                        warm_asked = upto;
                    }
                    if let Some((block, tiles)) = next_b {
                        block.fetch::<false>(block.runs * t / tiles, block.runs * (t + 1) / tiles);
                    }
                    if ahead_c {
                        // The next tile's rows (as many again, up to the last row of its group).
                        let (at, next) = if i0 + rows < g_len {
                            (gc + (i0 + rows) * ldc, rows.min(g_len - i0 - rows))
                        } else {
                            (gc + groups.c, rows.min(m - g0 - g_len).min(groups.rows))
                        };
                        Ahead::block(cp.wrapping_add(at + j0), next, cols, ldc)
                            .fetch::<true>(0, next);
                    }
                    // SAFETY: rows i0..i0+rows, depth p0..p0+kc and columns j0..j0+cols lie
                    // inside A and C (checked by the entry points); the panel holds kc rows of
                    // nr >= cols readable values, `ld_panel` apart; `rows <= rows_per_tile(nv)`.
                    unsafe {
                        let c_tile = cp.add(gc + i0 * ldc + j0);
                        if acol {
                            let a_tile = ap.add(p0 * lda + ga + i0);
                            run_tile::<T, K, true>(
                                rows, nv, cols, kc, alpha, a_tile, lda, panel, ld_panel, beta_p,
                                c_tile, ldc,
                            );
                        } else {
                            let a_tile = ap.add(ga + i0 * lda + p0);
                            run_tile::<T, K, false>(
                                rows, nv, cols, kc, alpha, a_tile, lda, panel, ld_panel, beta_p,
                                c_tile, ldc,
                            );
                        }
                        // The tile is final after the last depth block: its squares now, from L1.
                        if let Some(s) = sum_sq.as_deref_mut()
                            && p0 + kc == k
                        {
                            *s += tile_sum_sq::<T, K::V>(c_tile, rows, cols, ldc);
                        }
                    }
                    t += 1;
                }
                g0 += g_len;
                ga += groups.a;
                gc += groups.c;
            }
            p0 += kc;
        }
        j0 += cols;
    }
}

/// Bytes of the stack copy [`blocked_copied`] makes of a transposed `A` whose stored rows would
/// share L1 sets: up to 146 depths of 112 `f32` rows (56 `f64`), a batch of 128 in one block.
#[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
const A_COPY_BYTES: usize = 64 * 1024;

/// Bytes between the copy's depths: seven cache lines, so that consecutive depths fall in
/// different L1 sets (7 and the 64 sets of a 32 KiB, 8-way L1 share no factor).
#[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
const A_COPY_LD_BYTES: usize = 7 * 64;

/// Whether a transposed `A` with stored rows `lda` values apart is copied
/// ([`blocked_copied`]): when its rows are a multiple of 2 KiB apart, a tile's reads down
/// one column of `op(A)` fall in at most 2 of the 64 sets of a 32 KiB L1 (one, at 4 KiB),
/// evict each other before the next tile reads the rest of their lines, and stop the
/// hardware prefetcher at every page or half page. The weight gradient of a layer 1024 wide
/// (`tn` 1024 x 128 x 1024, `f32`) ran at 0.51–0.57x `matrixmultiply`, which packs `A`, on
/// a Zen 3 core; 512 wide lost 10 %. At 1 KiB (4 sets, a layer 256 wide) the copy gained
/// nothing and cost 10 % at 256 x 128 x 256, so it is not made. Only for products at least
/// 64 columns wide: the copy costs a load and a store per value of `A` and saves a read
/// of it per panel of `NR` columns. [`gemm`] makes the copy only where the L1 has at most 8
/// ways ([`crate::CacheTuning::copy_a`]): with 12 (Emerald Rapids) the same product took
/// about a tenth longer with it (0.93–0.96x `matrixmultiply` against 1.04–1.06x).
#[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
#[inline(always)]
fn a_aliases<T>(acol: bool, lda: usize, n: usize) -> bool {
    // (Wrapping: with one depth `lda` is never used, and may be anything.)
    acol && n >= 64
        && lda
            .wrapping_mul(core::mem::size_of::<T>())
            .is_multiple_of(2048)
}

/// The blocked loop ([`blocked_body`]) over the whole product: a [`Blocked`] job.
///
/// # Safety
/// As [`Blocked`].
#[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
#[inline(always)]
unsafe fn blocked<T: Element, K: Microkernel<T>>(job: Blocked<'_, T>) {
    // Large operands come from L3 or memory: ask for their next lines while tiles compute.
    let (ahead_c, ahead_b) = job.ahead();
    // SAFETY: the caller's contract.
    unsafe { blocked_body::<T, K>(job, ahead_c, ahead_b) }
}

/// The blocked loop ([`blocked_body`]) for a transposed `A` whose stored rows alias in L1
/// ([`a_aliases`]): over blocks of up to 112 rows of `C` (56 for `f64`) and 146 depths, each
/// block of `A` first copied to the stack with rows [`A_COPY_LD_BYTES`] apart. `op(B)` is
/// then packed once per block of rows instead of once, 1/112 of a load and store per
/// multiply-add. A job of its own ([`CopiedA`], run through [`copied`]), so that the other
/// products do not pay for the 64 KiB stack frame: its probe, a store to each page.
///
/// # Safety
/// As [`Blocked`], with `acol`.
#[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
#[inline(always)]
unsafe fn blocked_copied<T: Element, K: Microkernel<T>>(mut job: Blocked<'_, T>) {
    debug_assert!(job.acol);
    let (ahead_c, ahead_b) = job.ahead();
    let mut sum_sq = job.sum_sq.take();
    let ld_copy = A_COPY_LD_BYTES / core::mem::size_of::<T>();
    let mut store = [const { core::mem::MaybeUninit::<u64>::uninit() }; A_COPY_BYTES / 8];
    let buf = store.as_mut_ptr().cast::<T>();
    for (i0, rows) in even_blocks(job.m, ld_copy) {
        for (p0, depth) in even_blocks(job.k, A_COPY_BYTES / A_COPY_LD_BYTES) {
            // SAFETY: depths p0..p0+depth of rows i0..i0+rows of op(A) lie inside A (the
            // job's contract); the copy holds depth <= A_COPY_BYTES / A_COPY_LD_BYTES rows
            // of ld_copy >= rows values, aligned for T (u64 storage, T is f32 or f64).
            unsafe {
                for p in 0..depth {
                    core::ptr::copy_nonoverlapping(
                        job.a.add((p0 + p) * job.lda + i0),
                        buf.add(p * ld_copy),
                        rows,
                    );
                }
            }
            // The product's job on this block: the rest (α, strides, layouts) is the same.
            let block = Blocked {
                m: rows,
                k: depth,
                a: buf.cast_const(),
                lda: ld_copy,
                // SAFETY: depth p0 of op(B) lies inside B (the job's contract).
                b: unsafe {
                    if job.bcol {
                        job.b.add(p0)
                    } else {
                        job.b.add(p0 * job.ldb)
                    }
                },
                beta: if p0 == 0 { job.beta } else { T::ONE },
                // SAFETY: row i0 of C lies inside C.
                c: unsafe { job.c.add(i0 * job.ldc) },
                // Each tile adds its squares after its last depth.
                sum_sq: if p0 + depth == job.k {
                    sum_sq.as_deref_mut()
                } else {
                    None
                },
                warm: Ahead::NONE,
                ..job
            };
            // SAFETY: the block's operands lie inside the job's (above).
            unsafe { blocked_body::<T, K>(block, ahead_c, ahead_b) };
        }
    }
}

/// The arguments of [`blocked`], run with a kernel through [`crate::kernel::dispatch`] (or a
/// given kernel's `enter`): `op(A)` and `op(B)` as a start, a stride and whether the matrix
/// is stored transposed (`acol`: entry `(i, p)` at `a[p·lda + i]`, else `a[i·lda + p]`;
/// `bcol`: entry `(p, j)` at `b[j·ldb + p]`, else `b[p·ldb + j]`), `C` at `c` with rows `ldc`
/// apart.
///
/// Plain fields, not the `OpA` and `OpB` enums: LLVM built those in memory and copied each
/// into the job with one 256-bit load, which waits for the narrower stores that wrote it (a
/// failed store-to-load forwarding: 16³ took 1.1x as long).
///
/// Its contract (the public entry points check it): every entry the product reads or writes
/// lies inside the caller's slices.
#[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
struct Blocked<'s, T> {
    m: usize,
    n: usize,
    k: usize,
    alpha: T,
    a: *const T,
    lda: usize,
    acol: bool,
    b: *const T,
    ldb: usize,
    bcol: bool,
    beta: T,
    c: *mut T,
    ldc: usize,
    sum_sq: Option<&'s mut T>,
    /// Whether a large product prefetches (this CPU's [`crate::CacheTuning::prefetch`]).
    prefetch: bool,
    /// Lines to ask for while the tiles compute, whatever the product's size.
    warm: Ahead,
    /// The rows in groups ([`Groups`]; one group of all rows unless a grouped product):
    /// rows per group, and the offsets between groups' first rows in `A` (in rows of a
    /// transposed `A`) and in `C`. A tile never spans two groups.
    groups: Groups,
}

#[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
impl<'s, T: Element> Blocked<'s, T> {
    /// Whether the product prefetches `C` and `op(B)`: [`ahead`] where `prefetch`.
    #[inline(always)]
    fn ahead(&self) -> (bool, bool) {
        if self.prefetch {
            ahead::<T>(self.m, self.n, self.k)
        } else {
            (false, false)
        }
    }

    /// The job for `C ← α · op(A) · op(B) + β · C`, prefetching if it is large and
    /// `prefetch` (the CPU's caches decide it for [`gemm`]; the tests take `true`).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn new(
        m: usize,
        n: usize,
        k: usize,
        alpha: T,
        a: OpA<'_, T>,
        b: OpB<'_, T>,
        beta: T,
        c: &mut [T],
        ldc: usize,
        sum_sq: Option<&'s mut T>,
        prefetch: bool,
    ) -> Self {
        let (a, lda, acol) = match a {
            OpA::Rows(s, l) => (s.as_ptr(), l, false),
            OpA::Cols(s, l) => (s.as_ptr(), l, true),
        };
        let (b, ldb, bcol) = match b {
            OpB::Rows(s, l) => (s.as_ptr(), l, false),
            OpB::Cols(s, l) => (s.as_ptr(), l, true),
        };
        Blocked {
            m,
            n,
            k,
            alpha,
            a,
            lda,
            acol,
            b,
            ldb,
            bcol,
            beta,
            c: c.as_mut_ptr(),
            ldc,
            sum_sq,
            prefetch,
            warm: Ahead::NONE,
            groups: Groups::ONE,
        }
    }
}

#[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
impl<T: Element> Job<T> for Blocked<'_, T> {
    type Out = ();
    #[inline(always)]
    unsafe fn run<K: Microkernel<T>>(self) {
        // SAFETY: the job's contract, the caller's.
        unsafe { blocked::<T, K>(self) }
    }
}

/// A [`Blocked`] job run through [`blocked_copied`]: a transposed `A` whose stored rows
/// alias in L1 ([`a_aliases`]).
#[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
struct CopiedA<'s, T>(Blocked<'s, T>);

#[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
impl<T: Element> Job<T> for CopiedA<'_, T> {
    type Out = ();
    #[inline(always)]
    unsafe fn run<K: Microkernel<T>>(self) {
        // SAFETY: the job's contract, the caller's (`acol`: `gemm` checked `a_aliases`).
        unsafe { blocked_copied::<T, K>(self.0) }
    }
}

/// `Σ c²` over the `rows x cols` block of `C` at `c` (row stride `ldc`): one accumulator per
/// vector of a row (at most four), so consecutive FMAs do not wait on each other.
///
/// # Safety
/// `c` readable at `i·ldc + j` for `i < rows`, `j < cols`; `cols <= 4 · V::N`.
#[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
#[inline(always)]
unsafe fn tile_sum_sq<T: Element, V: Lanes<T>>(
    c: *const T,
    rows: usize,
    cols: usize,
    ldc: usize,
) -> T {
    let mut acc = [V::zero(); 4];
    for i in 0..rows {
        let mut col = 0;
        for a in &mut acc {
            if col >= cols {
                break;
            }
            let n = (cols - col).min(V::N);
            // SAFETY: `n` values of row `i` from column `col` (caller).
            let v = unsafe {
                let p = c.add(i * ldc + col);
                if n == V::N {
                    V::load(p)
                } else {
                    V::load_partial(p, n)
                }
            };
            *a = v.fmadd(v, *a);
            col += V::N;
        }
    }
    acc[0].add(acc[1]).add(acc[2].add(acc[3])).reduce_add()
}

/// `count` items shared evenly between the fewest blocks of at most `cap` (at least one
/// block): `(start, len)` of each, the longer ones first. A short remainder block has too few
/// accumulators to hide the FMA latency; the matrix products' row tiles and the gathered
/// products' tiles (positions, taps, depth) are cut this way.
#[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
pub(crate) fn even_blocks(count: usize, cap: usize) -> impl Iterator<Item = (usize, usize)> {
    let blocks = count.div_ceil(cap).max(1);
    let (base, extra) = (count / blocks, count % blocks);
    let mut start = 0;
    (0..blocks).map(move |t| {
        let len = base + usize::from(t < extra);
        let item = (start, len);
        start += len;
        item
    })
}

/// Packs `kc x cols` of a row-major `op(B)` (stride `ldb`) into `kc` rows of `nr`, zeroing
/// columns `cols..nr`.
///
/// # Safety
/// `b` readable at `p·ldb + j` for `p < kc`, `j < cols`; `dst` writable for `kc · nr`.
#[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
#[inline(always)]
pub(crate) unsafe fn pack_rows<T: Element, K: Microkernel<T>>(
    b: *const T,
    ldb: usize,
    kc: usize,
    cols: usize,
    nr: usize,
    dst: *mut T,
) {
    let w = <K::V as Lanes<T>>::N;
    if cols == nr {
        // Whole panel rows: vector moves (a `memcpy` call per short row costs more than
        // the copy).
        // The vector count is the constant `K::NV` with a test, not `nr / w`, which LLVM
        // turned back into a `memcpy` call per row.
        for p in 0..kc {
            for v in 0..K::NV {
                if v * w < nr {
                    // SAFETY: as documented; `v·w + w <= nr = cols`.
                    unsafe {
                        K::V::load(b.add(p * ldb + v * w)).store(dst.add(p * nr + v * w));
                    }
                }
            }
        }
        return;
    }
    for p in 0..kc {
        // SAFETY: as documented.
        unsafe {
            for j in 0..cols {
                *dst.add(p * nr + j) = *b.add(p * ldb + j);
            }
            for j in cols..nr {
                *dst.add(p * nr + j) = T::ZERO;
            }
        }
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
    nt(Auto, m, n, k, alpha, a, b, beta, c)
}

/// [`matmul_nt`]'s checks and product on `d`'s kernel. Not `#[inline(always)]`, like [`tn`]:
/// the public function is then a one-line call that inlines into its caller, and this stays
/// one out-of-line product per element and kernel choice.
#[allow(clippy::too_many_arguments)]
pub(crate) fn nt<T: Element, D: Dispatch>(
    d: D,
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
    let (a, b) = (OpA::Rows(a, k), OpB::Cols(b, k));
    gemm(d, m, n, k, alpha, a, b, beta, c, n, None);
    Ok(())
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
    nn(Auto, m, n, k, alpha, a, b, beta, c)
}

/// [`matmul_nn`]'s checks and product on `d`'s kernel (out of line, as [`nt`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn nn<T: Element, D: Dispatch>(
    d: D,
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
    let (a, b) = (OpA::Rows(a, k), OpB::Rows(b, n));
    gemm(d, m, n, k, alpha, a, b, beta, c, n, None);
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
    tn(Auto, m, n, k, alpha, a, b, beta, c, None)
}

/// [`matmul_tn`] that also returns the plain sum of squares of the result, `Σ_ij C_ij²`:
/// the weight gradient and the square of its Frobenius norm, which the AGD step needs, in one
/// pass. The squares are added tile by tile while each tile of `C` is still in L1, which
/// saves the step a pass over the whole gradient.
///
/// The sum is plain arithmetic: it is `+∞` if it overflows (or `C` holds an infinity), NaN if
/// `C` holds a NaN, and inexact if squares underflowed. [`sum_sq_checked`] turns it into a
/// safe [`SumSq`] (falling back to the scaled sum over `C` when it is out of range).
///
/// [`sum_sq_checked`]: crate::sum_sq_checked
/// [`SumSq`]: crate::SumSq
#[allow(clippy::too_many_arguments)]
pub fn matmul_tn_sum_sq<T: Element>(
    m: usize,
    n: usize,
    k: usize,
    alpha: T,
    a: &[T],
    b: &[T],
    beta: T,
    c: &mut [T],
) -> Result<T, Error> {
    let mut s = T::ZERO;
    tn(Auto, m, n, k, alpha, a, b, beta, c, Some(&mut s))?;
    Ok(s)
}

/// [`matmul_tn`]'s checks and product on `d`'s kernel, adding the squares of `C` into `sum`
/// when given.
#[allow(clippy::too_many_arguments)]
pub(crate) fn tn<T: Element, D: Dispatch>(
    d: D,
    m: usize,
    n: usize,
    k: usize,
    alpha: T,
    a: &[T],
    b: &[T],
    beta: T,
    c: &mut [T],
    sum: Option<&mut T>,
) -> Result<(), Error> {
    check("a", k, m, a.len())?;
    check("b", k, n, b.len())?;
    check("c", m, n, c.len())?;
    let (a, b) = (OpA::Cols(a, m), OpB::Rows(b, n));
    gemm(d, m, n, k, alpha, a, b, beta, c, n, sum);
    Ok(())
}

/// The row strides of the operands of a strided product ([`matmul_nt_ld`], [`matmul_tn_ld`]):
/// how far apart, in elements, consecutive rows of `A`, `B` and `C` as stored start.
///
/// The rows of `A` and `B` may overlap (a stride shorter than a row): a convolution reads its
/// inputs in place this way, each output position's window starting a stride after the
/// previous one's. `C`'s may not (`ldc` is at least its row length), except in
/// [`matmul_nn_ld_add`], which adds each row onto `C` in turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Strides {
    /// Between rows of `A` as stored.
    pub lda: usize,
    /// Between rows of `B` as stored.
    pub ldb: usize,
    /// Between rows of `C`.
    pub ldc: usize,
}

/// Checks that `rows` stored rows of `len` values, `ld` apart, lie inside a slice of `got`.
pub(crate) fn check_ld(
    operand: &'static str,
    rows: usize,
    len: usize,
    ld: usize,
    got: usize,
) -> Result<(), Error> {
    if rows == 0 || len == 0 {
        return Ok(());
    }
    let needed = (rows - 1)
        .checked_mul(ld)
        .and_then(|x| x.checked_add(len))
        .ok_or(Error::DimensionOverflow)?;
    if got < needed {
        return Err(Error::ShortSlice {
            operand,
            needed,
            got,
        });
    }
    Ok(())
}

/// `C ← α · C`'s rows `ldc` apart: rejects an `ldc` shorter than a row (rows would overlap).
pub(crate) fn check_c(m: usize, n: usize, ldc: usize, got: usize) -> Result<(), Error> {
    if m > 1 && ldc < n {
        return Err(Error::ShortSlice {
            operand: "ldc",
            needed: n,
            got: ldc,
        });
    }
    check_ld("c", m, n, ldc, got)
}

/// [`matmul_nt`] over strided operands: `C (m x n) ← α · A · Bᵀ + β · C` with entry `(i, p)`
/// of `A` at `a[i·lda + p]`, entry `(j, p)` of `B` at `b[j·ldb + p]` and entry `(i, j)` of
/// `C` at `c[i·ldc + j]`. Same kernels, same arithmetic order as [`matmul_nt`].
///
/// ```
/// // The three windows of 2 in [1, 2, 3, 4], one step apart, dotted with [1, 1].
/// let x = [1.0f32, 2.0, 3.0, 4.0];
/// let mut c = [0.0f32; 3];
/// let ld = agd_simd::Strides { lda: 1, ldb: 2, ldc: 1 };
/// agd_simd::matmul_nt_ld(3, 1, 2, 1.0, &x, &[1.0, 1.0], 0.0, &mut c, ld).unwrap();
/// assert_eq!(c, [3.0, 5.0, 7.0]);
/// ```
#[allow(clippy::too_many_arguments)]
pub fn matmul_nt_ld<T: Element>(
    m: usize,
    n: usize,
    k: usize,
    alpha: T,
    a: &[T],
    b: &[T],
    beta: T,
    c: &mut [T],
    ld: Strides,
) -> Result<(), Error> {
    check_ld("a", m, k, ld.lda, a.len())?;
    check_ld("b", n, k, ld.ldb, b.len())?;
    check_c(m, n, ld.ldc, c.len())?;
    gemm(
        Auto,
        m,
        n,
        k,
        alpha,
        OpA::Rows(a, ld.lda),
        OpB::Cols(b, ld.ldb),
        beta,
        c,
        ld.ldc,
        None,
    );
    Ok(())
}

/// [`matmul_nn`] over strided operands: `C (m x n) ← α · A · B + β · C` with entry `(i, p)`
/// of `A` at `a[i·lda + p]`, entry `(p, j)` of `B` at `b[p·ldb + j]` and `(i, j)` of `C` at
/// `c[i·ldc + j]`. Same kernels, same arithmetic order as [`matmul_nn`].
///
/// ```
/// // The three windows of 2 in [1, 2, 3, 4], one step apart, times [1, 1]ᵀ.
/// let x = [1.0f32, 2.0, 3.0, 4.0];
/// let mut c = [0.0f32; 3];
/// let ld = agd_simd::Strides { lda: 1, ldb: 1, ldc: 1 };
/// agd_simd::matmul_nn_ld(3, 1, 2, 1.0, &x, &[1.0, 1.0], 0.0, &mut c, ld).unwrap();
/// assert_eq!(c, [3.0, 5.0, 7.0]);
/// ```
#[allow(clippy::too_many_arguments)]
pub fn matmul_nn_ld<T: Element>(
    m: usize,
    n: usize,
    k: usize,
    alpha: T,
    a: &[T],
    b: &[T],
    beta: T,
    c: &mut [T],
    ld: Strides,
) -> Result<(), Error> {
    matmul_nn_ld_warm(m, n, k, alpha, a, b, beta, c, ld, &[])
}

/// [`matmul_nn_ld`], asking for `warm` to be brought into the cache (L2) while the product
/// computes, a share of its lines per tile: for the data the caller reads next, such as a
/// convolution's next sample. A hint: the result is the same to the bit. Products too small
/// to run in tiles, and targets without a prefetch instruction here (everything but
/// x86-64), ignore it.
///
/// ```
/// let x = [1.0f32, 2.0, 3.0, 4.0];
/// let next = [5.0f32; 64];
/// let mut c = [0.0f32; 3];
/// let ld = agd_simd::Strides { lda: 1, ldb: 1, ldc: 1 };
/// agd_simd::matmul_nn_ld_warm(3, 1, 2, 1.0, &x, &[1.0, 1.0], 0.0, &mut c, ld, &next).unwrap();
/// assert_eq!(c, [3.0, 5.0, 7.0]);
/// ```
#[allow(clippy::too_many_arguments)]
pub fn matmul_nn_ld_warm<T: Element>(
    m: usize,
    n: usize,
    k: usize,
    alpha: T,
    a: &[T],
    b: &[T],
    beta: T,
    c: &mut [T],
    ld: Strides,
    warm: &[T],
) -> Result<(), Error> {
    check_ld("a", m, k, ld.lda, a.len())?;
    check_ld("b", k, n, ld.ldb, b.len())?;
    check_c(m, n, ld.ldc, c.len())?;
    gemm_warm(
        Auto,
        m,
        n,
        k,
        alpha,
        OpA::Rows(a, ld.lda),
        OpB::Rows(b, ld.ldb),
        beta,
        c,
        ld.ldc,
        None,
        Ahead::lines_of(warm),
    );
    Ok(())
}

/// [`matmul_tn`] over strided operands: `C (m x n) ← α · Aᵀ · B + β · C` with entry `(p, i)`
/// of the stored `A` (`k x m`) at `a[p·lda + i]`, entry `(p, j)` of `B` at `b[p·ldb + j]` and
/// `(i, j)` of `C` at `c[i·ldc + j]`. Same kernels, same arithmetic order as [`matmul_tn`].
///
/// ```
/// // Σ_p window_p · b_p over the windows of 2 in [1, 2, 3, 4], one step apart.
/// let x = [1.0f32, 2.0, 3.0, 4.0];
/// let mut c = [0.0f32; 2];
/// let ld = agd_simd::Strides { lda: 1, ldb: 1, ldc: 1 };
/// agd_simd::matmul_tn_ld(2, 1, 3, 1.0, &x, &[1.0, 0.0, 1.0], 0.0, &mut c, ld).unwrap();
/// assert_eq!(c, [4.0, 6.0]);
/// ```
#[allow(clippy::too_many_arguments)]
pub fn matmul_tn_ld<T: Element>(
    m: usize,
    n: usize,
    k: usize,
    alpha: T,
    a: &[T],
    b: &[T],
    beta: T,
    c: &mut [T],
    ld: Strides,
) -> Result<(), Error> {
    matmul_tn_ld_warm(m, n, k, alpha, a, b, beta, c, ld, &[])
}

/// [`matmul_tn_ld`], asking for `warm` to be brought into the cache while the product
/// computes, as [`matmul_nn_ld_warm`] does. A hint: the result is the same to the bit.
#[allow(clippy::too_many_arguments)]
pub fn matmul_tn_ld_warm<T: Element>(
    m: usize,
    n: usize,
    k: usize,
    alpha: T,
    a: &[T],
    b: &[T],
    beta: T,
    c: &mut [T],
    ld: Strides,
    warm: &[T],
) -> Result<(), Error> {
    check_ld("a", k, m, ld.lda, a.len())?;
    check_ld("b", k, n, ld.ldb, b.len())?;
    check_c(m, n, ld.ldc, c.len())?;
    gemm_warm(
        Auto,
        m,
        n,
        k,
        alpha,
        OpA::Cols(a, ld.lda),
        OpB::Rows(b, ld.ldb),
        beta,
        c,
        ld.ldc,
        None,
        Ahead::lines_of(warm),
    );
    Ok(())
}

/// `C += α · A · B` over strided operands whose rows of `C` may overlap (`ldc` shorter than
/// `n`): row `i` of the product is added onto the `n` entries from `c[i·ldc]`, row after row,
/// so an entry that several rows cover receives each of their sums. Entry `(i, p)` of `A` is
/// at `a[i·lda + p]`, entry `(p, j)` of `B` at `b[p·ldb + j]`.
///
/// This is the adjoint of [`matmul_nt_ld`] / [`matmul_nn_ld`] reading overlapping windows:
/// a convolution's input gradient adds each output position's `kw·c_in` values back onto the
/// window it read, in place, with no unfolded matrix to fold back. Same kernels as
/// [`matmul_nn_ld`], whose every path reads, adds to and stores `C` a row (or a tile's row)
/// at a time, in order, so each read sees every earlier store.
///
/// ```
/// // Windows of 2, one step apart, each adding [1, 1] times its row of A onto x.
/// let mut x = [0.0f32; 4];
/// let ld = agd_simd::Strides { lda: 1, ldb: 2, ldc: 1 };
/// agd_simd::matmul_nn_ld_add(3, 2, 1, 1.0, &[1.0, 2.0, 3.0], &[1.0, 1.0], &mut x, ld).unwrap();
/// assert_eq!(x, [1.0, 3.0, 5.0, 3.0]);
/// ```
#[allow(clippy::too_many_arguments)]
pub fn matmul_nn_ld_add<T: Element>(
    m: usize,
    n: usize,
    k: usize,
    alpha: T,
    a: &[T],
    b: &[T],
    c: &mut [T],
    ld: Strides,
) -> Result<(), Error> {
    matmul_nn_ld_add_warm(m, n, k, alpha, a, b, c, ld, &[])
}

/// [`matmul_nn_ld_add`], asking for `warm` to be brought into the cache while the product
/// computes, as [`matmul_nn_ld_warm`] does. A hint: the result is the same to the bit.
#[allow(clippy::too_many_arguments)]
pub fn matmul_nn_ld_add_warm<T: Element>(
    m: usize,
    n: usize,
    k: usize,
    alpha: T,
    a: &[T],
    b: &[T],
    c: &mut [T],
    ld: Strides,
    warm: &[T],
) -> Result<(), Error> {
    check_ld("a", m, k, ld.lda, a.len())?;
    check_ld("b", k, n, ld.ldb, b.len())?;
    check_ld("c", m, n, ld.ldc, c.len())?;
    // β = 1: the blocked loop's tiles and the unpacked kernels each read, add to and store
    // one row of `C` before the next (through raw pointers or a fresh slice per row), so
    // overlapping rows accumulate. `gemm` with `ldc = n` is only ever this with disjoint rows.
    gemm_warm(
        Auto,
        m,
        n,
        k,
        alpha,
        OpA::Rows(a, ld.lda),
        OpB::Rows(b, ld.ldb),
        T::ONE,
        c,
        ld.ldc,
        None,
        Ahead::lines_of(warm),
    );
    Ok(())
}

/// Rows of `A` and `C` in groups, for [`matmul_nn_grouped`]: row `i` of `A` starts at
/// `(i / rows)·a + (i mod rows)·lda`, row `i` of `C` at `(i / rows)·c + (i mod rows)·ldc`.
/// A convolution's windows are grouped this way, a group per output row: the windows of one
/// row are a stride apart, the next row's start a padded image row later, and the positions
/// between (past the row's end) are not computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Groups {
    /// Rows per group (at least 1; the last group may be shorter).
    pub rows: usize,
    /// Between the first rows of consecutive groups in `A`'s slice.
    pub a: usize,
    /// Between the first rows of consecutive groups in `C`'s slice.
    pub c: usize,
}

impl Groups {
    /// All rows in one group: a plain product.
    #[cfg_attr(any(target_arch = "arm", target_arch = "riscv32"), allow(dead_code))]
    const ONE: Groups = Groups {
        rows: usize::MAX,
        a: 0,
        c: 0,
    };
}

/// Checks that every group's rows (`len` values each, `ld` apart within a group, groups
/// `stride` apart) lie inside a slice of `got`.
fn check_groups(
    operand: &'static str,
    m: usize,
    len: usize,
    ld: usize,
    groups: Groups,
    stride: usize,
    got: usize,
) -> Result<(), Error> {
    if groups.rows == 0 && m > 0 {
        return Err(Error::ShortSlice {
            operand: "groups.rows",
            needed: 1,
            got: 0,
        });
    }
    let (mut g0, mut start) = (0, 0usize);
    while g0 < m {
        let rows = groups.rows.min(m - g0);
        if len > 0 {
            let needed = (rows - 1)
                .checked_mul(ld)
                .and_then(|x| x.checked_add(len))
                .and_then(|x| x.checked_add(start))
                .ok_or(Error::DimensionOverflow)?;
            if got < needed {
                return Err(Error::ShortSlice {
                    operand,
                    needed,
                    got,
                });
            }
        }
        g0 += rows;
        if g0 < m {
            start = start.checked_add(stride).ok_or(Error::DimensionOverflow)?;
        }
    }
    Ok(())
}

/// [`matmul_nn_ld`] with the rows of `A` and `C` in groups ([`Groups`]): `C (m x n) ← α · A ·
/// B + β · C`, asking for `warm` while it computes as [`matmul_nn_ld_warm`] does. One call
/// instead of one per group: `B` is packed once, not per group, and no tile spans two
/// groups. A group of at least 3 rows gets the values a [`matmul_nn_ld`] of its rows gives,
/// to the bit. The rows of `C` may not overlap, within a group or across groups.
///
/// ```
/// // Two groups of two windows of 2, one step apart, from rows of 4 (the last two windows
/// // of each row skipped), dotted with [1, 1].
/// let x = [1.0f32, 2.0, 3.0, 4.0, 10.0, 20.0, 30.0, 40.0];
/// let mut c = [0.0f32; 4];
/// let ld = agd_simd::Strides { lda: 1, ldb: 1, ldc: 1 };
/// let g = agd_simd::Groups { rows: 2, a: 4, c: 2 };
/// agd_simd::matmul_nn_grouped(4, 1, 2, 1.0, &x, &[1.0, 1.0], 0.0, &mut c, ld, g, &[]).unwrap();
/// assert_eq!(c, [3.0, 5.0, 30.0, 50.0]);
/// ```
#[allow(clippy::too_many_arguments)]
pub fn matmul_nn_grouped<T: Element>(
    m: usize,
    n: usize,
    k: usize,
    alpha: T,
    a: &[T],
    b: &[T],
    beta: T,
    c: &mut [T],
    ld: Strides,
    groups: Groups,
    warm: &[T],
) -> Result<(), Error> {
    check_groups("a", m, k, ld.lda, groups, groups.a, a.len())?;
    check_ld("b", k, n, ld.ldb, b.len())?;
    check_c(groups.rows.min(m), n, ld.ldc, c.len())?;
    if m > groups.rows {
        let span = (groups.rows - 1).saturating_mul(ld.ldc).saturating_add(n);
        if groups.c < span {
            return Err(Error::ShortSlice {
                operand: "groups.c",
                needed: span,
                got: groups.c,
            });
        }
    }
    check_groups("c", m, n, ld.ldc, groups, groups.c, c.len())?;
    gemm_grouped(m, n, k, alpha, a, b, beta, c, ld, groups, warm);
    Ok(())
}

/// [`matmul_nn_ld_add`] with the rows of `A` and `C` in groups ([`Groups`]): `C (m x n) +=
/// α · A · B`, the rows of `C` allowed to overlap (each row's sum is added onto `C` in turn),
/// asking for `warm` while it computes. The adjoint of [`matmul_nn_grouped`]'s windows: a
/// convolution's input gradient added back onto its padded image, a group per output row.
/// A group of at least 3 rows adds what a [`matmul_nn_ld_add`] of its rows adds, to the bit.
#[allow(clippy::too_many_arguments)]
pub fn matmul_nn_grouped_add<T: Element>(
    m: usize,
    n: usize,
    k: usize,
    alpha: T,
    a: &[T],
    b: &[T],
    c: &mut [T],
    ld: Strides,
    groups: Groups,
    warm: &[T],
) -> Result<(), Error> {
    check_groups("a", m, k, ld.lda, groups, groups.a, a.len())?;
    check_ld("b", k, n, ld.ldb, b.len())?;
    check_groups("c", m, n, ld.ldc, groups, groups.c, c.len())?;
    // β = 1: rows of `C` overlapping accumulate, as in `matmul_nn_ld_add`.
    gemm_grouped(m, n, k, alpha, a, b, T::ONE, c, ld, groups, warm);
    Ok(())
}

/// The grouped products, bounds checked: in the blocked loop, one job for every group, where
/// each group's own product would run there (depth 2 or more, at least [`SMALL_M`] rows,
/// `n > 1`); otherwise (and on targets without vectors) a product per group.
#[allow(clippy::too_many_arguments)]
fn gemm_grouped<T: Element>(
    m: usize,
    n: usize,
    k: usize,
    alpha: T,
    a: &[T],
    b: &[T],
    beta: T,
    c: &mut [T],
    ld: Strides,
    groups: Groups,
    warm: &[T],
) {
    if m == 0 || n == 0 {
        return;
    }
    #[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
    if k > 1 && groups.rows.min(m) >= SMALL_M && n > 1 {
        let measures = crate::cache::measures();
        let (ra, rb) = (OpA::Rows(a, ld.lda), OpB::Rows(b, ld.ldb));
        let job = Blocked::new(
            m,
            n,
            k,
            alpha,
            ra,
            rb,
            beta,
            c,
            ld.ldc,
            None,
            measures.prefetch,
        );
        let warm = Ahead::lines_of(warm);
        // SAFETY: every group's rows were checked against `a` and `c`, and `B` against `b`;
        // `Auto` is the CPU's own kernel.
        unsafe {
            Auto.dispatch(Blocked {
                warm,
                groups,
                ..job
            })
        };
        return;
    }
    let _ = warm;
    let (mut g0, mut ga, mut gc) = (0, 0, 0);
    while g0 < m {
        let rows = groups.rows.min(m - g0);
        let ra = OpA::Rows(a.get(ga..).unwrap_or(&[]), ld.lda);
        let cg = &mut c[gc..];
        gemm(
            Auto,
            rows,
            n,
            k,
            alpha,
            ra,
            OpB::Rows(b, ld.ldb),
            beta,
            cg,
            ld.ldc,
            None,
        );
        g0 += rows;
        if g0 < m {
            (ga, gc) = (ga + groups.a, gc + groups.c);
        }
    }
}

#[cfg(test)]
mod tests {
    //! Every shape class the dispatcher distinguishes (vectors, tiny batches, tile and panel
    //! remainders, several depth blocks), every layout, both elements and both host kernels,
    //! against the naive triple loop.
    use super::*;
    use crate::naive;
    use std::{format, vec, vec::Vec};

    #[cfg(not(miri))]
    const DIMS: &[usize] = &[1, 2, 3, 4, 7, 12, 13, 16, 17, 33, 63, 130];
    /// Depths: none, one, a remainder, one block, one block and a bit, two and three blocks.
    #[cfg(not(miri))]
    const DEPTHS: &[usize] = &[0, 1, 5, 16, 17, 300, 600];
    /// Under Miri (every `unsafe` path of the kernels, interpreted, thousands of times slower):
    /// the unpacked one- and two-row paths, a 13-row block split 7 + 6, a partial vector of
    /// columns; `depth_blocks_match_naive` adds a depth cut into two `KC` blocks.
    #[cfg(miri)]
    const DIMS: &[usize] = &[1, 2, 13];
    #[cfg(miri)]
    const DEPTHS: &[usize] = &[0, 1, 5, 17];

    fn fill<T: Element>(len: usize, seed: u64) -> Vec<T> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                T::from_f64((s % 2001) as f64 / 1000.0 - 1.0)
            })
            .collect()
    }

    type Op<T> = fn(usize, usize, usize, T, &[T], &[T], T, &mut [T]);

    fn close<T: Element>(what: &str, got: &[T], want: &[T], k: usize) {
        let tol = T::EPSILON.to_f64() * 4.0 * (k as f64 + 4.0);
        for (idx, (g, w)) in got.iter().zip(want).enumerate() {
            let (g, w) = (g.to_f64(), w.to_f64());
            assert!(
                (g - w).abs() <= tol * (1.0 + w.abs()),
                "{what}: entry {idx}: {g} vs {w}"
            );
        }
    }

    fn sweep<T: Element>(
        name: &str,
        ours: Op<T>,
        reference: Op<T>,
        dims: &[usize],
        depths: &[usize],
    ) {
        for &m in dims {
            for &n in dims {
                for &k in depths {
                    check_shape(name, ours, reference, m, n, k);
                }
            }
        }
    }

    /// One `m x n x k` product against the reference, for three (α, β) pairs (two under
    /// Miri), `C` filled with NaN where β = 0 (so a read of it shows).
    fn check_shape<T: Element>(
        name: &str,
        ours: Op<T>,
        reference: Op<T>,
        m: usize,
        n: usize,
        k: usize,
    ) {
        let pairs: &[(f64, f64)] = if cfg!(miri) {
            &[(1.0, 0.0), (2.0, -0.25)]
        } else {
            &[(1.0, 0.0), (-0.5, 1.0), (2.0, -0.25)]
        };
        for &(alpha, beta) in pairs {
            let (alpha, beta) = (T::from_f64(alpha), T::from_f64(beta));
            let a = fill::<T>(m * k, 1);
            let b = fill::<T>(n * k, 2);
            let c0 = fill::<T>(m * n, 3);
            let mut got = c0.clone();
            let mut want = c0.clone();
            if beta == T::ZERO {
                got.fill(T::from_f64(f64::NAN));
            }
            ours(m, n, k, alpha, &a, &b, beta, &mut got);
            reference(m, n, k, alpha, &a, &b, beta, &mut want);
            close(
                &format!("{name} {m}x{n}x{k} {alpha:?} {beta:?}"),
                &got,
                &want,
                k,
            );
        }
    }

    /// The sum [`matmul_tn_sum_sq`] returned against `Σ c²` of the `C` it wrote, in `f64`:
    /// within `n` roundings of the working precision for `n` entries.
    fn check_sum_sq<T: Element>(what: &str, got: T, c: &[T]) {
        let want: f64 = c.iter().map(|v| v.to_f64() * v.to_f64()).sum();
        let tol = T::EPSILON.to_f64() * (c.len() as f64 + 2.0);
        let got = got.to_f64();
        assert!(
            (got - want).abs() <= tol * want,
            "{what}: sum of squares {got:e} vs {want:e} over {} entries",
            c.len()
        );
    }

    /// Every layout with its naive twin; `matmul_tn_sum_sq` also checks its sum of squares
    /// against the `C` it wrote.
    fn layouts<T: Element>() -> [(&'static str, Op<T>, Op<T>); 4] {
        [
            (
                "nt",
                |m, n, k, al, a, b, be, c| matmul_nt(m, n, k, al, a, b, be, c).unwrap(),
                naive::matmul_nt,
            ),
            (
                "nn",
                |m, n, k, al, a, b, be, c| matmul_nn(m, n, k, al, a, b, be, c).unwrap(),
                naive::matmul_nn,
            ),
            (
                "tn",
                |m, n, k, al, a, b, be, c| matmul_tn(m, n, k, al, a, b, be, c).unwrap(),
                naive::matmul_tn,
            ),
            (
                "tn_sum_sq",
                |m, n, k, al, a, b, be, c| {
                    let s = matmul_tn_sum_sq(m, n, k, al, a, b, be, c).unwrap();
                    check_sum_sq(&format!("tn_sum_sq {m}x{n}x{k}"), s, c);
                },
                naive::matmul_tn,
            ),
        ]
    }

    /// Every layout against the naive loops over `dims x dims x depths`.
    fn sweep_all<T: Element>(dims: &[usize], depths: &[usize]) {
        for (name, ours, reference) in layouts::<T>() {
            sweep::<T>(name, ours, reference, dims, depths);
        }
    }

    fn all_ops<T: Element>() {
        sweep_all::<T>(DIMS, DEPTHS);
    }

    #[test]
    fn every_shape_matches_naive_f32() {
        all_ops::<f32>();
    }

    #[test]
    fn every_shape_matches_naive_f64() {
        all_ops::<f64>();
    }

    /// The same through the portable kernel, which a CPU with AVX-512F never takes
    /// otherwise: its blocked loop, and the matrix-vector kernels over its vectors. (On
    /// other architectures `dispatch` runs the portable kernel anyway, so the tests above
    /// are this one.)
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn every_shape_matches_naive_on_the_portable_kernel() {
        crate::kernel::forced::run(crate::kernel::forced::Kernel::Portable, || {
            let name = crate::kernel();
            assert!(name.starts_with("portable"), "{name}");
            all_ops::<f32>();
            all_ops::<f64>();
        });
    }

    /// The same through the AVX2 kernel, on a CPU that has AVX2 and FMA (on any other this
    /// test checks nothing and says so).
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    #[test]
    fn every_shape_matches_naive_on_the_avx2_kernel() {
        let ran = crate::kernel::forced::run(crate::kernel::forced::Kernel::Avx2, || {
            assert_eq!(crate::kernel(), "avx2");
            all_ops::<f32>();
            all_ops::<f64>();
            blocked_with::<f32, crate::kernel::avx2::Avx2>();
            blocked_with::<f64, crate::kernel::avx2::Avx2>();
        });
        if ran.is_none() {
            std::eprintln!("this CPU has no AVX2 and FMA: the AVX2 kernel is not checked");
        }
    }

    /// A depth of 260 is cut into two blocks of 130 (`KC` = 256; three of 87 with the AVX-512
    /// kernels' 128): later blocks add to `C` with β = 1. One 9 x 9 shape per layout,
    /// small enough for Miri.
    #[test]
    fn depth_blocks_match_naive() {
        sweep_all::<f32>(&[9], &[260]);
    }

    /// Products whose `C` or `op(B)` reaches [`PREFETCH_BYTES`], so that the blocked loop
    /// asks for lines ahead ([`Ahead`]): a tall `C` with a shallow `B`, a wide `C` with a
    /// large `B`, and a large `B` alone, cut into two or three depth blocks by the kernels
    /// (so the next block is sometimes the same panel's and sometimes the next panel's); the
    /// last panel narrower than the rest. In `f32` and `f64`. The hints must not change a
    /// value. Only where they are instructions: elsewhere (aarch64, under emulation in CI)
    /// the other sweeps cover the loop, and these shapes took 40 s of CI's time.
    #[test]
    #[cfg_attr(
        any(miri, not(target_arch = "x86_64")),
        ignore = "prefetching is compiled in on x86-64 only (and not under Miri)"
    )]
    fn products_that_prefetch_match_naive() {
        let shapes: &[(usize, usize, usize)] = &[(1030, 130, 7), (130, 1030, 130), (40, 1030, 300)];
        // Whatever this CPU's caches say ([`crate::cache_tuning`]).
        crate::cache::forced::run(crate::cache::Measures::ALL, || {
            for &(m, n, k) in shapes {
                assert_ne!(ahead::<f32>(m, n, k), (false, false), "{m}x{n}x{k}");
                for (name, ours, reference) in layouts::<f32>() {
                    check_shape::<f32>(name, ours, reference, m, n, k);
                }
                for (name, ours, reference) in layouts::<f64>() {
                    check_shape::<f64>(name, ours, reference, m, n, k);
                }
            }
        });
    }

    /// Weight gradients whose `A` rows are 2 KiB or 4 KiB apart, which [`blocked_copied`]
    /// copies in blocks: several blocks of rows (`f32`: 112 rows each at most, `f64`: 56)
    /// and of depths (146), through `matmul_tn` and `matmul_tn_sum_sq` (whose squares must
    /// be added once, after each tile's last depth block), and one with every stride
    /// padded (`matmul_tn_ld`, `lda` 4 KiB beyond `m`), both `β` cases. With the copy forced
    /// on: a CPU whose L1 has more than 8 ways does not make it.
    #[test]
    #[cfg_attr(miri, ignore = "too slow interpreted")]
    fn products_with_a_copied_match_naive() {
        fn tn_only<T: Element>(m: usize, n: usize, k: usize) {
            assert!(a_aliases::<T>(true, m, n), "{m} x {n} would not be copied");
            for (name, ours, reference) in layouts::<T>() {
                if name.starts_with("tn") {
                    check_shape::<T>(name, ours, reference, m, n, k);
                }
            }
        }
        // Whatever this CPU's caches say ([`crate::cache_tuning`]).
        crate::cache::forced::run(crate::cache::Measures::ALL, || {
            tn_only::<f32>(512, 70, 300);
            tn_only::<f32>(1024, 64, 20);
            tn_only::<f64>(256, 64, 150);
            tn_only::<f64>(512, 100, 3);
            let (m, n, k, lda) = (300, 65, 160, 512);
            assert!(a_aliases::<f64>(true, lda, n));
            let ld = Strides {
                lda,
                ldb: n + 3,
                ldc: n + 1,
            };
            let a = fill::<f64>((k - 1) * lda + m, 4);
            let b = fill::<f64>((k - 1) * ld.ldb + n, 3);
            for beta in [0.0f64, 0.5] {
                let c0 = fill::<f64>((m - 1) * ld.ldc + n, 9);
                let mut got = c0.clone();
                matmul_tn_ld(m, n, k, 1.5, &a, &b, beta, &mut got, ld).unwrap();
                let want = direct(
                    m,
                    n,
                    k,
                    &c0,
                    ld.ldc,
                    beta,
                    |i, p| a[p * lda + i],
                    |j, p| b[p * ld.ldb + j],
                );
                close(
                    &format!("tn_ld {m}x{n}x{k} {ld:?} beta {beta}"),
                    &got,
                    &want,
                    k,
                );
            }
        });
    }

    /// Every panel width the kernels tell apart: one to four vectors (16 to 64 `f32`
    /// columns with AVX-512), whole and partial, and full panels followed by a narrower one
    /// (80, 96, 112), whose tiles take more rows (up to 12) than a full panel's; row counts
    /// that split into tiles of many heights; depths of one step, one block and two blocks of
    /// the AVX-512 `f32` kernel (`KC` = 128 for four vectors, 170 for three, 256 for two).
    #[test]
    #[cfg_attr(miri, ignore = "covered by the shapes above; too slow interpreted")]
    fn panel_widths_match_naive() {
        let dims: &[usize] = &[5, 11, 24, 32, 40, 48, 64, 80, 96, 112];
        let depths: &[usize] = &[1, 64, 129, 300];
        sweep_all::<f32>(dims, depths);
        sweep::<f64>(
            "nt f64",
            |m, n, k, al, a, b, be, c| matmul_nt(m, n, k, al, a, b, be, c).unwrap(),
            naive::matmul_nt,
            dims,
            depths,
        );
    }

    /// `A·Bᵀ` in `f32` and `f64` with `B`'s rows spread out (`ldb > k`) or packed, exact:
    /// small integer values, so every sum is exact and any value the transposing pack puts in
    /// the wrong place shows. The shapes take the pack through runs of whole blocks (16 x 16
    /// in `f32`, 8 x 8 in `f64`; one and several), a depth tail, and a last panel narrower
    /// than a block. Through the kernel this CPU runs, then (on x86-64) the portable one and
    /// the AVX2 one (where the CPU has AVX2 and FMA).
    #[test]
    fn transposed_panels_are_exact() {
        transposed_panels_exact::<f32>();
        transposed_panels_exact::<f64>();
        #[cfg(target_arch = "x86_64")]
        {
            use crate::kernel::forced::{Kernel, run};
            let both = || {
                transposed_panels_exact::<f32>();
                transposed_panels_exact::<f64>();
            };
            run(Kernel::Portable, both);
            #[cfg(all(target_arch = "x86_64", not(miri)))]
            run(Kernel::Avx2, both);
        }
    }

    fn transposed_panels_exact<T: Element + PartialEq + core::fmt::Debug>() {
        let shapes: &[(usize, usize, usize)] = if cfg!(miri) {
            &[(3, 17, 20)]
        } else {
            &[
                (3, 64, 16),
                (7, 17, 48),
                (64, 64, 64),
                (13, 70, 70),
                (40, 128, 130),
                (6, 33, 300),
                (5, 9, 7),
                (11, 38, 23),
            ]
        };
        let value = |x: usize| T::from_f64(((x * 7 + 3) % 9) as f64 - 4.0);
        for &(m, n, k) in shapes {
            for pad in [0, 3, 16] {
                let ldb = k + pad;
                let ld = Strides {
                    lda: k,
                    ldb,
                    ldc: n,
                };
                let a: Vec<T> = (0..m * k).map(value).collect();
                let b: Vec<T> = (0..n * ldb).map(|x| value(x * 5 + 1)).collect();
                let mut got = vec![T::from_f64(f64::NAN); m * n];
                matmul_nt_ld(m, n, k, T::ONE, &a, &b, T::ZERO, &mut got, ld).unwrap();
                for i in 0..m {
                    for j in 0..n {
                        let want = (0..k).fold(T::ZERO, |s, p| s + a[i * k + p] * b[j * ldb + p]);
                        assert_eq!(got[i * n + j], want, "{m}x{n}x{k} ldb {ldb} at ({i}, {j})");
                    }
                }
            }
        }
    }

    /// The strided entry points against a triple loop over the stored layouts: rows of `A`
    /// overlapping (`lda < k`, a convolution's windows) or spread out, `B` in place or packed,
    /// `C` with gaps between its rows, both `β` cases; a short `ldc` or slice is refused.
    #[test]
    fn strided_products_match_a_direct_sum() {
        let dims: &[(usize, usize, usize)] = if cfg!(miri) {
            &[(13, 5, 7)]
        } else {
            &[
                (1, 1, 1),
                (5, 3, 2),
                (13, 16, 48),
                (37, 32, 9),
                (210, 32, 48),
                (48, 32, 70),
            ]
        };
        for &(m, n, k) in dims {
            for (lda, ldb, ldc) in [(2, n + 1, n), (k + 3, n, n + 2), (1, n, n + 5)] {
                for beta in [0.0f64, 0.5] {
                    let ld = Strides { lda, ldb, ldc };
                    let what = format!("{m}x{n}x{k} {ld:?} beta {beta}");
                    let c0 = fill::<f64>((m - 1) * ldc + n, 9);
                    // nt: A(i, p) = a[i·lda + p], B(j, p) = b[j·ldb + p] (ldb ≥ k here).
                    let (a, b) = (
                        fill::<f64>((m - 1) * lda + k, 1),
                        fill::<f64>(n * (ldb + k), 2),
                    );
                    let bt = |j: usize, p: usize| b[j * (ldb + k) + p];
                    let ldt = Strides { ldb: ldb + k, ..ld };
                    let mut got = c0.clone();
                    matmul_nt_ld(m, n, k, 1.5, &a, &b, beta, &mut got, ldt).unwrap();
                    let want = direct(m, n, k, &c0, ldc, beta, |i, p| a[i * lda + p], bt);
                    close(&format!("nt_ld {what}"), &got, &want, k);
                    // nn: B(p, j) = b[p·ldb + j].
                    let b = fill::<f64>((k - 1) * ldb + n, 3);
                    let mut got = c0.clone();
                    matmul_nn_ld(m, n, k, 1.5, &a, &b, beta, &mut got, ld).unwrap();
                    let want = direct(
                        m,
                        n,
                        k,
                        &c0,
                        ldc,
                        beta,
                        |i, p| a[i * lda + p],
                        |j, p| b[p * ldb + j],
                    );
                    close(&format!("nn_ld {what}"), &got, &want, k);
                    // tn: A(i, p) = a[p·lda + i].
                    let a = fill::<f64>((k - 1) * lda + m, 4);
                    let mut got = c0.clone();
                    matmul_tn_ld(m, n, k, 1.5, &a, &b, beta, &mut got, ld).unwrap();
                    let want = direct(
                        m,
                        n,
                        k,
                        &c0,
                        ldc,
                        beta,
                        |i, p| a[p * lda + i],
                        |j, p| b[p * ldb + j],
                    );
                    close(&format!("tn_ld {what}"), &got, &want, k);
                    if m > 1 && n > 1 {
                        let short = Strides { ldc: n - 1, ..ld };
                        assert!(matmul_nn_ld(m, n, k, 1.0, &a, &b, 0.0, &mut got, short).is_err());
                        let mut c = vec![0.0; (m - 1) * ldc + n - 1];
                        assert!(matmul_tn_ld(m, n, k, 1.0, &a, &b, 0.0, &mut c, ld).is_err());
                    }
                }
            }
        }
    }

    /// `C ← 1.5 · Σ_p A(i, p) B(j, p) + β · C` entry by entry, rows of `C` `ldc` apart (the
    /// gaps between them kept).
    #[allow(clippy::too_many_arguments)]
    fn direct(
        m: usize,
        n: usize,
        k: usize,
        c0: &[f64],
        ldc: usize,
        beta: f64,
        a: impl Fn(usize, usize) -> f64,
        b: impl Fn(usize, usize) -> f64,
    ) -> Vec<f64> {
        let mut c = c0.to_vec();
        for i in 0..m {
            for j in 0..n {
                let s: f64 = (0..k).map(|p| a(i, p) * b(j, p)).sum();
                c[i * ldc + j] = 1.5 * s + beta * c0[i * ldc + j];
            }
        }
        c
    }

    /// [`blocked`] with kernel `K`.
    #[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
    #[allow(clippy::too_many_arguments)]
    fn run_blocked<T: Element, K: Microkernel<T>>(
        m: usize,
        n: usize,
        k: usize,
        alpha: T,
        a: OpA<'_, T>,
        b: OpB<'_, T>,
        beta: T,
        c: &mut [T],
        ldc: usize,
        sum_sq: Option<&mut T>,
    ) {
        let job = Blocked::new(m, n, k, alpha, a, b, beta, c, ldc, sum_sq, true);
        // SAFETY: the sweeps size every operand for its shape; the callers run `K` only on a
        // CPU that has its instructions.
        unsafe { K::enter(job) }
    }

    #[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
    fn blocked_with<T: Element, K: Microkernel<T>>() {
        let dims: &[usize] = if cfg!(miri) {
            &[3, 13]
        } else {
            &[3, 5, 12, 13, 17, 33, 63]
        };
        sweep::<T>(
            "blocked nt",
            |m, n, k, al, a, b, be, c| {
                let (a, b) = (OpA::Rows(a, k), OpB::Cols(b, k));
                run_blocked::<T, K>(m, n, k, al, a, b, be, c, n, None)
            },
            |m, n, k, al, a, b, be, c| naive::matmul_nt(m, n, k, al, a, b, be, c),
            dims,
            &DEPTHS[1..],
        );
        sweep::<T>(
            "blocked nn",
            |m, n, k, al, a, b, be, c| {
                let (a, b) = (OpA::Rows(a, k), OpB::Rows(b, n));
                run_blocked::<T, K>(m, n, k, al, a, b, be, c, n, None)
            },
            |m, n, k, al, a, b, be, c| naive::matmul_nn(m, n, k, al, a, b, be, c),
            dims,
            &DEPTHS[1..],
        );
        sweep::<T>(
            "blocked tn",
            |m, n, k, al, a, b, be, c| {
                let mut s = T::ZERO;
                let (a, b) = (OpA::Cols(a, m), OpB::Rows(b, n));
                run_blocked::<T, K>(m, n, k, al, a, b, be, c, n, Some(&mut s));
                check_sum_sq(&format!("blocked tn {m}x{n}x{k}"), s, c);
            },
            |m, n, k, al, a, b, be, c| naive::matmul_tn(m, n, k, al, a, b, be, c),
            dims,
            &DEPTHS[1..],
        );
        sweep::<T>(
            "blocked tn, A copied",
            |m, n, k, al, a, b, be, c| {
                let mut s = T::ZERO;
                let (a, b) = (OpA::Cols(a, m), OpB::Rows(b, n));
                let job = Blocked::new(m, n, k, al, a, b, be, c, n, Some(&mut s), true);
                // SAFETY: as in `run_blocked`; `A` is transposed.
                unsafe { K::enter(CopiedA(job)) };
                check_sum_sq(&format!("blocked tn, A copied, {m}x{n}x{k}"), s, c);
            },
            |m, n, k, al, a, b, be, c| naive::matmul_tn(m, n, k, al, a, b, be, c),
            dims,
            &DEPTHS[1..],
        );
    }

    /// The portable kernel, which [`crate::kernel::dispatch`] passes over on a CPU with
    /// AVX-512F, against the naive products.
    #[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
    #[test]
    fn the_portable_kernel_matches_naive() {
        blocked_with::<f32, crate::kernel::portable::Portable>();
        blocked_with::<f64, crate::kernel::portable::Portable>();
    }

    /// The AVX-512 kernel, entered directly, on a CPU that has it (on any other this test
    /// checks nothing and says so).
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    #[test]
    fn the_avx512_kernel_matches_naive() {
        if !crate::kernel::avx512::available() {
            std::eprintln!("this CPU has no AVX-512F: the AVX-512 kernel is not checked");
            return;
        }
        blocked_with::<f32, crate::kernel::avx512::Avx512>();
        blocked_with::<f64, crate::kernel::avx512::Avx512>();
    }
}
