//! Microkernels: the innermost `MR x NR` tile of a matrix product, one file per instruction
//! set. The blocked loop in [`crate::gemm`] is written once over the [`Microkernel`] trait;
//! a kernel only says how wide its vectors are, how many rows and vectors a tile has (and how
//! many rows a tile of a narrower panel may take), and how deep a packed panel of `B` may be.
//!
//! A tile computes `C[0..rows, 0..cols] ← α · Σ_p A[i, p] · Bp[p, j] + β · C` where `Bp` is a
//! packed panel of `B` (`kc` rows of `NR = NV · lanes` values, zero-padded past `cols`) and
//! `A` is read in place, one broadcast scalar per row and step, so it never needs packing.
//!
//! * `avx512.rs`: 512-bit `zmm` vectors with masked edges, on every x86-64 host, chosen at
//!   run time when the CPU has AVX-512F (see [`dispatch`]).
//! * `avx2.rs`: 256-bit `ymm` vectors and FMA, for a build that does not enable AVX2 and FMA
//!   itself, on a CPU that has them and no AVX-512F.
//! * `portable.rs`: the crate's [`crate::Element::V`] (`wide` vectors: AVX2/FMA or SSE2,
//!   whatever the build enables) for every other host.
//!
//! Work that uses a kernel is a [`Job`], run through [`Microkernel::enter`]: a function of
//! its own that the AVX-512 kernel compiles with `#[target_feature(enable = "avx512f")]`
//! (the AVX2 one with `avx2` and `fma`), so a build whose flags do not enable them (any crate
//! depending on this one, by default) still gets their instructions, inlined, wherever the
//! CPU has them.
//!
//! M-profile ARM and RISC-V take neither: there the register-tiled scalar loops of
//! `gemm_scalar` are the kernel (no packing, no vectors).

use crate::element::Element;

// Miri cannot interpret most AVX-512 intrinsics: under it the portable kernel runs even on
// a CPU with AVX-512F (see CONTRIBUTING.md, "Miri").
#[cfg(all(target_arch = "x86_64", not(miri)))]
pub(crate) mod avx2;
#[cfg(all(target_arch = "x86_64", not(miri)))]
pub(crate) mod avx512;
#[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
pub(crate) mod portable;

/// The vector operations a tile needs, on raw pointers (the blocked loop has checked every
/// bound before it calls a kernel).
pub trait Lanes<T: Copy + Default>: Copy {
    /// Lanes per vector.
    const N: usize;
    /// All lanes zero.
    fn zero() -> Self;
    /// All lanes `x`.
    fn splat(x: T) -> Self;
    /// `self · a + b`, fused where the target has FMA.
    fn fmadd(self, a: Self, b: Self) -> Self;
    /// Lane-wise product.
    fn mul(self, a: Self) -> Self;
    /// Lane-wise sum.
    fn add(self, a: Self) -> Self;
    /// Sum of the lanes.
    fn reduce_add(self) -> T;
    /// Loads `N` values.
    ///
    /// # Safety
    /// `p` must be valid for reading `N` values.
    unsafe fn load(p: *const T) -> Self;
    /// Stores `N` values.
    ///
    /// # Safety
    /// `p` must be valid for writing `N` values.
    unsafe fn store(self, p: *mut T);
    /// Loads the first `n < N` values; the other lanes are zero.
    ///
    /// # Safety
    /// `p` must be valid for reading `n` values.
    #[inline(always)]
    unsafe fn load_partial(p: *const T, n: usize) -> Self {
        let mut buf = [T::default(); 16];
        // SAFETY: the caller guarantees `n` readable values; `n < N <= 16`.
        unsafe { core::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), n) };
        // SAFETY: `buf` holds 16 >= N values.
        unsafe { Self::load(buf.as_ptr()) }
    }
    /// Stores the first `n < N` lanes.
    ///
    /// # Safety
    /// `p` must be valid for writing `n` values.
    #[inline(always)]
    unsafe fn store_partial(self, p: *mut T, n: usize) {
        let mut buf = [T::default(); 16];
        // SAFETY: `buf` holds 16 >= N values.
        unsafe { self.store(buf.as_mut_ptr()) };
        // SAFETY: the caller guarantees `n` writable values.
        unsafe { core::ptr::copy_nonoverlapping(buf.as_ptr(), p, n) };
    }
}

/// Work done with one kernel: the blocked loop, one tile, a gathered product. Run it through
/// [`Microkernel::enter`] (or [`dispatch`], which picks the kernel), so that it is compiled
/// with the kernel's instructions enabled.
pub trait Job<T: Copy + Default> {
    /// What the work returns.
    type Out;
    /// Does the work with kernel `K`. Implementations are `#[inline(always)]`: the body is
    /// compiled inside `K::enter`, with its target features.
    ///
    /// # Safety
    /// The CPU has `K`'s instructions, and the job's own contract (its pointers) holds.
    unsafe fn run<K: Microkernel<T>>(self) -> Self::Out;
}

/// A [`Job`] whose work is one call: `struct $name[generics][arguments] { fields } =>
/// path::<…>` defines the struct (its fields the function's arguments, in order) and a
/// `run::<K>` that calls `path` with them (`K`, the kernel, may appear in the path's
/// generics, e.g. `tile::<T, K::V, R, NVU, ACOL>`); `T` is the element.
macro_rules! job {
    ($(#[$m:meta])* $vis:vis struct $name:ident [$($gen:tt)*] [$($arg:tt)*] {
        $($fvis:vis $field:ident: $fty:ty),* $(,)?
    } => $($f:tt)*) => {
        $(#[$m])*
        $vis struct $name<$($gen)*> {
            $($fvis $field: $fty),*
        }

        impl<$($gen)*> $crate::kernel::Job<T> for $name<$($arg)*>
        where
            T: $crate::element::Element,
        {
            type Out = ();
            #[inline(always)]
            unsafe fn run<K: $crate::kernel::Microkernel<T>>(self) {
                let $name { $($field),* } = self;
                // SAFETY: the job's contract (the called function's), the caller's.
                #[allow(unused_unsafe)]
                unsafe {
                    $($f)*($($field),*)
                }
            }
        }
    };
}
pub(crate) use job;

/// Runs `job` with the fastest kernel this CPU has for `T`: the AVX-512 kernel where it has
/// AVX-512F; else, where the build does not enable AVX2 and FMA but the CPU has them, the
/// AVX2 kernel; else the portable kernel. A build that enables AVX-512F (or, on a CPU
/// without it, the portable kernel) runs the job in place, inlined into the caller; a build
/// that does not asks the CPU once (CPUID, remembered) and runs the faster kernel through
/// its `enter`. (Through `enter` in a native build too, 16³ took 1.05x as long: a call and
/// a 32 KiB frame per product.)
///
/// # Safety
/// The job's own contract holds.
#[inline(always)]
pub(crate) unsafe fn dispatch<T: Element, J: Job<T>>(job: J) -> J::Out {
    #[cfg(all(test, target_arch = "x86_64"))]
    if let Some(forced) = forced::kernel() {
        // SAFETY: `forced::run` checks that the CPU has the kernel's features.
        return unsafe { crate::choice::Dispatch::dispatch(forced, job) };
    }
    #[cfg(all(target_arch = "x86_64", target_feature = "avx512f", not(miri)))]
    {
        // SAFETY: the build enables AVX-512F; the job's contract is the caller's.
        unsafe { job.run::<T::Avx512>() }
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "avx512f", not(miri))))]
    {
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        if avx512::available() {
            // SAFETY: the CPU has AVX-512F; the job's contract is the caller's.
            return unsafe { <T::Avx512 as Microkernel<T>>::enter(job) };
        }
        #[cfg(all(
            target_arch = "x86_64",
            not(all(target_feature = "avx2", target_feature = "fma")),
            not(miri)
        ))]
        if avx2::available() {
            // SAFETY: the CPU has AVX2 and FMA; the job's contract is the caller's.
            return unsafe { <T::Avx2 as Microkernel<T>>::enter(job) };
        }
        // SAFETY: the portable kernel uses only what the build enables; the job's contract
        // is the caller's.
        unsafe { job.run::<T::Portable>() }
    }
}

/// The name of the kernel [`dispatch`] runs on this CPU (see [`crate::kernel()`]): asked of
/// `dispatch` itself, so the choice is made in one place (`f32` and `f64` take the same
/// kernel).
pub(crate) fn name() -> &'static str {
    /// The work that only reports which kernel does it.
    struct Name;
    impl Job<f32> for Name {
        type Out = &'static str;
        #[inline(always)]
        unsafe fn run<K: Microkernel<f32>>(self) -> &'static str {
            K::NAME
        }
    }
    // SAFETY: the job touches no memory.
    unsafe { dispatch::<f32, _>(Name) }
}

/// A packed-panel buffer of `KC x NR` values, aligned for vector loads; lives on the stack
/// (agd-simd has no heap).
#[repr(C, align(64))]
pub struct Panel<const LEN: usize, T>(pub(crate) [core::mem::MaybeUninit<T>; LEN]);

impl<const LEN: usize, T> Panel<LEN, T> {
    /// An uninitialised panel: the packing routine writes every value a tile reads.
    #[inline(always)]
    pub(crate) fn new() -> Self {
        Panel([const { core::mem::MaybeUninit::uninit() }; LEN])
    }
    /// Start of the buffer.
    #[inline(always)]
    pub(crate) fn as_mut_ptr(&mut self) -> *mut T {
        self.0.as_mut_ptr().cast()
    }
}

/// `impl Microkernel<$t> for $k` with the tile shape, the most rows a narrow panel's tile may
/// take, the panel depth and a panel buffer of
/// `KC · NV · lanes` values on the stack; with `enable ["feature", …]`, an `enter` compiled
/// with those target features; plus any items given after `;` (e.g. a faster `pack_b_transposed`),
/// or after `; transpose_blocks` the `pack_b_transposed` of [`pack_transposed_blocks`].
macro_rules! microkernel {
    // `; transpose_blocks` (after any attributes for it): `pack_b_transposed` is
    // `pack_transposed_blocks` over the vector type's `Transpose`.
    ($k:ty, $t:ty, $v:ty, mr $mr:literal, nv $nv:literal, max_rows $max:literal, kc $kc:ident,
     lanes $lanes:literal $(, enable [$($feature:literal),+])?;
     $(#[$m:meta])* transpose_blocks) => {
        microkernel!($k, $t, $v, mr $mr, nv $nv, max_rows $max, kc $kc, lanes $lanes
            $(, enable [$($feature),+])?;
            $(#[$m])*
            #[inline(always)]
            unsafe fn pack_b_transposed(
                b: *const $t,
                ldb: usize,
                kc: usize,
                cols: usize,
                nr: usize,
                dst: *mut $t,
            ) {
                // SAFETY: forwarded (`pack_transposed_blocks` checks at compile time that
                // `$v` has `$lanes` lanes).
                unsafe {
                    $crate::kernel::pack_transposed_blocks::<$t, $v, $lanes>(
                        b, ldb, kc, cols, nr, dst,
                    )
                }
            }
        );
    };
    ($k:ty, $t:ty, $v:ty, mr $mr:literal, nv $nv:literal, max_rows $max:literal, kc $kc:ident,
     lanes $lanes:literal $(, enable [$($feature:literal),+])? $(; $($extra:item)*)?) => {
        impl Microkernel<$t> for $k {
            const NAME: &'static str = <$k>::NAME;
            $(
                // Where the build enables the features, LLVM may inline a tile's `enter`
                // into its caller (rustc 1.95 gives a `#[target_feature]` function no
                // `noinline`, whatever its `#[inline]` says). On the AVX-512 machine it
                // inlined the gathered products' tiles, and the figures in BENCHMARKS.md
                // were measured with that code, which this form keeps.
                #[cfg(all($(target_feature = $feature),+))]
                #[inline(never)]
                $(#[target_feature(enable = $feature)])+
                unsafe fn enter<J: Job<$t>>(job: J) -> J::Out {
                    // SAFETY: the caller's contract (the CPU has the features).
                    unsafe { job.run::<Self>() }
                }
                // Where the build does not enable them (the kernel is chosen at run time),
                // that same inlining put every tile of the blocked loop into the loop's
                // `enter`: one 450 KB function per element type for the AVX-512 kernel on
                // an AVX2 machine, and the `agd` binary's release build took 323 s of one
                // core instead of 82 (BENCHMARKS.md, "Session 23"). So there
                // `enter` is a plain function, whose `#[inline(never)]` holds, and the one
                // with the features is inside it: LLVM does not inline a function into a
                // caller without its features.
                #[cfg(not(all($(target_feature = $feature),+)))]
                #[inline(never)]
                unsafe fn enter<J: Job<$t>>(job: J) -> J::Out {
                    $(#[target_feature(enable = $feature)])+
                    unsafe fn with_features<J: Job<$t>>(job: J) -> J::Out {
                        // SAFETY: the caller's contract (the CPU has the features).
                        unsafe { job.run::<$k>() }
                    }
                    // SAFETY: the caller's contract (the CPU has the features).
                    unsafe { with_features(job) }
                }
            )?
            type V = $v;
            const MR: usize = $mr;
            const NV: usize = $nv;
            const MAX_ROWS: usize = $max;
            const KC: usize = $kc;
            type Buf = Panel<{ $kc * $nv * $lanes }, $t>;
            #[inline(always)]
            fn buf() -> Self::Buf {
                Panel::new()
            }
            #[inline(always)]
            fn buf_ptr(buf: &mut Self::Buf) -> *mut $t {
                buf.as_mut_ptr()
            }
            $($($extra)*)?
        }
    };
}
pub(crate) use microkernel;

/// One instruction set's tile shape and vector type.
pub trait Microkernel<T: Copy + Default>: Sized {
    /// Its name in [`crate::kernel()`].
    const NAME: &'static str;
    /// The vector type of the tile.
    type V: Lanes<T>;
    /// Rows of `C` per tile of a full-width panel.
    const MR: usize;
    /// Vectors per panel row (at most 4); `NR = NV · lanes` columns.
    const NV: usize;
    /// Most rows per tile (at most 12) when a panel is narrower than `NR` (the last panel of
    /// a product whose `n` is not a multiple of `NR`): such a tile needs fewer vectors per
    /// row, so it takes up to `MR · NV / vectors` rows to keep as many accumulators busy.
    const MAX_ROWS: usize;
    /// Deepest packed panel of full width; the loop splits `k` into equal blocks of at most
    /// `KC` (`KC · NV / vectors` for a narrower panel, which fills the same buffer).
    const KC: usize;
    /// The stack buffer holding one packed panel of `KC x NR` values.
    type Buf;
    /// A fresh (uninitialised) panel buffer.
    fn buf() -> Self::Buf;
    /// Its start.
    fn buf_ptr(buf: &mut Self::Buf) -> *mut T;

    /// Runs `job` in a function of its own (not inlined), compiled with the target features
    /// this kernel's instructions need (the AVX-512 kernel's `enter` enables AVX-512F, the
    /// AVX2 kernel's AVX2 and FMA; the portable kernel needs nothing beyond the build's
    /// flags). Every function `job.run` reaches is `#[inline(always)]` down to the next
    /// `enter`, so all of it gets them.
    ///
    /// # Safety
    /// The CPU has those features, and the job's own contract holds.
    #[inline(never)]
    unsafe fn enter<J: Job<T>>(job: J) -> J::Out {
        // SAFETY: the caller's contract.
        unsafe { job.run::<Self>() }
    }

    /// Packs `kc x cols` of a `B` stored transposed (entry `(p, j)` at `b[j·ldb + p]`) into
    /// `dst` (`kc` rows of `nr`; columns `cols..nr` zeroed). Kernels with a faster transpose
    /// override it.
    ///
    /// # Safety
    /// `b` must be readable at every `(j, p)`, `j < cols`, `p < kc`; `dst` writable for
    /// `kc · nr` values.
    #[inline(always)]
    unsafe fn pack_b_transposed(
        b: *const T,
        ldb: usize,
        kc: usize,
        cols: usize,
        nr: usize,
        dst: *mut T,
    ) {
        for j in 0..cols {
            // SAFETY: row `j` of `Bᵀ` holds `kc` readable values; `dst` has `kc · nr`.
            unsafe {
                let src = b.add(j * ldb);
                for p in 0..kc {
                    *dst.add(p * nr + j) = *src.add(p);
                }
            }
        }
        for p in 0..kc {
            for j in cols..nr {
                // SAFETY: `p < kc`, `j < nr`.
                unsafe { *dst.add(p * nr + j) = T::default() };
            }
        }
    }
}

/// An `L x L` transpose of `L` vectors of `L` lanes each, in registers: what
/// [`pack_transposed_blocks`] needs of a vector type.
pub trait Transpose<T: Copy + Default, const L: usize>: Lanes<T> {
    /// Column `c` of the block whose rows are `r` (lane `q` of the result `c` is lane `c` of
    /// `r[q]`).
    fn transpose(r: [Self; L]) -> [Self; L];
}

/// [`Microkernel::pack_b_transposed`] by `L x L` blocks turned in registers by `V`'s
/// [`Transpose`] (`L` the lanes of `V`): rows `j..j + L` of the stored `Bᵀ` loaded as `L`
/// vectors (missing rows past `cols` as zeros), transposed, and stored as `L` panel rows.
///
/// # Safety
/// As [`Microkernel::pack_b_transposed`]. (`L == V::N` is checked at compile time.)
#[allow(dead_code)] // Not every host kernel has a block transpose.
#[inline(always)]
pub(crate) unsafe fn pack_transposed_blocks<
    T: Copy + Default,
    V: Transpose<T, L>,
    const L: usize,
>(
    b: *const T,
    ldb: usize,
    kc: usize,
    cols: usize,
    nr: usize,
    dst: *mut T,
) {
    let mut j = 0;
    while j < nr {
        // SAFETY: forwarded for block column `j`: rows `j..j + jn <= cols` of `Bᵀ` (the base
        // is only read through when `jn > 0`), panel columns `j..j + L <= nr`.
        unsafe {
            pack_transposed_column::<T, V, L>(
                b.wrapping_add(j * ldb),
                ldb,
                kc,
                cols.saturating_sub(j).min(L),
                nr,
                dst.add(j),
                0,
            );
        }
        j += L;
    }
}

/// One block column of [`pack_transposed_blocks`]: rows `0..jn` of `Bᵀ` at `b` (`jn <= L`,
/// the rest zero) into panel columns `0..L` at `dst`, depths `p0..kc`: whole `L x L` blocks,
/// then the last `(kc - p0) % L` depths one value at a time.
///
/// # Safety
/// `b` readable at `q·ldb + p` for `q < jn`, `p0 <= p < kc`; `dst` writable at `p·nr + q`
/// for `p0 <= p < kc`, `q < L`. (`L == V::N` is checked at compile time.)
#[allow(dead_code)] // Not every host kernel has a block transpose.
#[inline(always)]
pub(crate) unsafe fn pack_transposed_column<
    T: Copy + Default,
    V: Transpose<T, L>,
    const L: usize,
>(
    b: *const T,
    ldb: usize,
    kc: usize,
    jn: usize,
    nr: usize,
    dst: *mut T,
    p0: usize,
) {
    const { assert!(L == V::N, "a block is as wide as a vector") };
    debug_assert!(jn <= L);
    let mut p = p0;
    while p + L <= kc {
        let mut r = [V::zero(); L];
        for (q, rq) in r.iter_mut().enumerate().take(jn) {
            // SAFETY: row `q < jn` of `Bᵀ`, values `p..p + L <= kc`.
            *rq = unsafe { V::load(b.add(q * ldb + p)) };
        }
        for (q, tq) in V::transpose(r).iter().enumerate() {
            // SAFETY: panel row `p + q < kc`, columns `0..L`.
            unsafe { tq.store(dst.add((p + q) * nr)) };
        }
        p += L;
    }
    for q in 0..L {
        for pp in p..kc {
            // SAFETY: as above, one value at a time.
            unsafe {
                *dst.add(pp * nr + q) = if q < jn {
                    *b.add(q * ldb + pp)
                } else {
                    T::default()
                };
            }
        }
    }
}

/// One `R x (NVU · lanes)` tile, `R` and `NVU` known at compile time so the accumulators live
/// in registers. `ACOL`: `A` is stored column-major (entry `(i, p)` at `a[p·lda + i]`, the
/// weight-gradient layout) rather than row-major (`a[i·lda + p]`). `bp` is a packed panel
/// (`nr` its width) or a row-major `B` read in place (`nr` its row stride).
///
/// Run as a [`Tile`] job, each shape in a function of its own ([`Microkernel::enter`]):
/// inside the blocked loop (about 40 tile shapes per layout) LLVM ran out of integer
/// registers and reloaded the row stride from the stack in the hot loop of the small tiles
/// (16³ went from 1.48x to 2.05x `matrixmultiply` with the tile on its own). A call per tile
/// costs nothing measurable.
///
/// # Safety
/// `a` readable at every `(i, p)`, `i < R`, `p < kc`; `bp` readable at `p·nr + j`, `p < kc`,
/// `j < NVU · lanes`; `c` readable (if `β ≠ 0`) and writable at `c[i·ldc + j]`, `i < R`,
/// `j < cols`; `cols <= NVU · lanes`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn tile<
    T: Element,
    V: Lanes<T>,
    const R: usize,
    const NVU: usize,
    const ACOL: bool,
>(
    kc: usize,
    alpha: T,
    a: *const T,
    lda: usize,
    bp: *const T,
    nr: usize,
    beta: T,
    c: *mut T,
    ldc: usize,
    cols: usize,
) {
    let mut acc = [[V::zero(); NVU]; R];
    let mut bp = bp;
    let mut ap = a;
    let a_step = if ACOL { lda } else { 1 };
    // Four steps of depth per iteration: their loads and broadcasts address the same base
    // registers with constant offsets, so the integer work that competes with the FMAs for
    // ports (pointer updates, the loop test) is paid once per four steps. Against one step
    // per iteration, in `agd bench` (three alternating runs each): (128,256,10) 1.60x →
    // 1.78–1.79x `matrixmultiply`, 16³ 2.12–2.16x → 2.17–2.24x, 64³ 1.454–1.461x →
    // 1.454–1.476x, the large MLP shapes, the steps and the CNN step unchanged. Not for the
    // tall tiles of two or three vectors over a row-major `A` (12 x 2, 8 x 3): in the 12 x 2
    // tile LLVM hoists the four steps' broadcasts ahead of the FMAs and spills them, and
    // (1568,144,32) fell from 195 to 127 GFLOP/s (the CNN epoch took 1.1x); 8 x 3 gained
    // nothing. Each accumulator still sums `p = 0, 1, …` in order: the same values.
    let unroll = if R <= 6 || NVU == 1 || ACOL { 4 } else { 1 };
    // One step: the panel row at `bp + u·nr`, `A`'s column at `ap + u·a_step`. A function,
    // not a closure: a closure is compiled as a function of its own, without the target
    // features of the `enter` it runs in, and its intrinsics would be calls.
    /// # Safety
    /// As [`tile`], at depth `u` from `bp` and `ap`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn step<T: Element, V: Lanes<T>, const R: usize, const NVU: usize, const ACOL: bool>(
        acc: &mut [[V; NVU]; R],
        bp: *const T,
        ap: *const T,
        u: usize,
        nr: usize,
        a_step: usize,
        lda: usize,
    ) {
        let mut b = [V::zero(); NVU];
        for (v, bv) in b.iter_mut().enumerate() {
            // SAFETY: panel row `p` holds `NVU · lanes` readable values (caller).
            *bv = unsafe { V::load(bp.add(u * nr + v * V::N)) };
        }
        for (i, row) in acc.iter_mut().enumerate() {
            // SAFETY: `(i, p)` is inside `A` (caller).
            let x = V::splat(unsafe { *ap.add(u * a_step + if ACOL { i } else { i * lda }) });
            for (s, &bv) in row.iter_mut().zip(&b) {
                *s = x.fmadd(bv, *s);
            }
        }
    }
    for _ in 0..kc / unroll {
        for u in 0..unroll {
            // SAFETY: depth `p + u < kc` (caller).
            unsafe { step::<T, V, R, NVU, ACOL>(&mut acc, bp, ap, u, nr, a_step, lda) };
        }
        // After the last step these point past the data (for a column-major `A`, a whole
        // row of `A` past, beyond one-past-the-end, which `add` may not do: found by Miri);
        // `wrapping_add` may, and they are never dereferenced there.
        bp = bp.wrapping_add(unroll * nr);
        ap = ap.wrapping_add(unroll * a_step);
    }
    for _ in 0..kc % unroll {
        // SAFETY: depth `p < kc` (caller).
        unsafe { step::<T, V, R, NVU, ACOL>(&mut acc, bp, ap, 0, nr, a_step, lda) };
        bp = bp.wrapping_add(nr);
        ap = ap.wrapping_add(a_step);
    }
    // Every loop below runs over the constants `R` and `NVU` with a short, branch-free body,
    // so it unrolls and the accumulators stay in registers. (One data-dependent index into
    // `acc` anywhere, such as a `break` at the last column, makes LLVM keep the whole array
    // on the stack: zeroed by a `memset` call per tile and reloaded in the hot loop.)
    let va = V::splat(alpha);
    let vb = V::splat(beta);
    if cols == NVU * V::N {
        // Whole tile.
        macro_rules! each {
            (|$s:ident, $p:ident| $e:expr) => {
                for (i, row) in acc.iter().enumerate() {
                    for (v, &$s) in row.iter().enumerate() {
                        // SAFETY: row `i < R`, columns `v·N .. v·N + N <= cols` of the tile.
                        unsafe {
                            let $p = c.add(i * ldc + v * V::N);
                            $e.store($p);
                        }
                    }
                }
            };
        }
        match (alpha == T::ONE, beta == T::ZERO) {
            // `C` only written.
            (true, true) => each!(|s, _p| s),
            (false, true) => each!(|s, _p| s.mul(va)),
            // A later depth block adding to `C`.
            (true, false) if beta == T::ONE => each!(|s, p| V::load(p).add(s)),
            _ => each!(|s, p| V::load(p).fmadd(vb, s.mul(va))),
        }
        return;
    }
    // A partial tile (the last columns of a product): each row goes through a buffer, so
    // only the buffer, not `acc`, is indexed by the column count.
    // Through a copy: this loop does not unroll for 12 rows, and indexing `acc` itself would
    // keep the accumulators of every tile on the stack (a `memset` before the hot loop, a
    // spill after it; seen in the 12 x 1 and 12 x 2 tiles).
    // Each row is read where `black_box` left it, in whole vectors: copying a row out first
    // made LLVM move it in 256-bit halves, and the 512-bit loads of `finish_row` then waited
    // on those two stores (a failed store-to-load forwarding per row; `(128,256,10)` went
    // from 1.80x to 1.63x `matrixmultiply` when the kernel moved into `enter`).
    let rows = core::hint::black_box(acc);
    for (i, row) in rows.iter().enumerate() {
        // SAFETY: `row` holds NVU · N >= cols values; row `i < R` of the `C` tile, `cols`
        // columns (caller).
        unsafe { finish_row(row.as_ptr().cast::<T>(), cols, va, beta, vb, c.add(i * ldc)) };
    }
}

job! {
    /// The arguments of one [`tile`] call: the job [`run_tile`] gives the kernel's `enter`.
    struct Tile[T, const R: usize, const NVU: usize, const ACOL: bool][T, R, NVU, ACOL] {
        kc: usize,
        alpha: T,
        a: *const T,
        lda: usize,
        bp: *const T,
        nr: usize,
        beta: T,
        c: *mut T,
        ldc: usize,
        cols: usize,
    } => tile::<T, K::V, R, NVU, ACOL>
}

/// `c[0..cols] ← α · row + β · c` (`c` not read when `β = 0`) for a row of a partial tile.
///
/// # Safety
/// `row` readable for `cols` values, rounded up to a whole vector; `c` readable (if
/// `β ≠ 0`) and writable for `cols` values.
#[inline(always)]
pub(crate) unsafe fn finish_row<T: Element, V: Lanes<T>>(
    row: *const T,
    cols: usize,
    va: V,
    beta: T,
    vb: V,
    c: *mut T,
) {
    let mut col = 0;
    while col < cols {
        let n = (cols - col).min(V::N);
        // SAFETY: a whole vector of `row` and `n` values of `c` (caller).
        unsafe {
            let r = V::load(row.add(col)).mul(va);
            let p = c.add(col);
            if n == V::N {
                let r = if beta == T::ZERO {
                    r
                } else {
                    V::load(p).fmadd(vb, r)
                };
                r.store(p);
            } else {
                let r = if beta == T::ZERO {
                    r
                } else {
                    V::load_partial(p, n).fmadd(vb, r)
                };
                r.store_partial(p, n);
            }
        }
        col += V::N;
    }
}

/// Rows per tile for a panel of `nv` vectors: as many as keep the kernel's `MR · NV`
/// accumulators busy, at most `K::MAX_ROWS` (and never more than `run_tile` dispatches:
/// 12 rows of one or two vectors, 8 of three, 6 of four).
#[inline(always)]
pub(crate) fn rows_per_tile<T: Copy + Default, K: Microkernel<T>>(nv: usize) -> usize {
    let cap = match nv {
        1 | 2 => 12,
        3 => 8,
        _ => 6,
    };
    (K::MR * K::NV / nv).min(K::MAX_ROWS).min(cap)
}

/// Calls the tile for `rows` rows and `nv` vectors per row (`rows <= rows_per_tile(nv)`,
/// `nv <= K::NV`), `cols` of whose columns are stored.
///
/// # Safety
/// As [`tile`], with `nr` the panel's row stride and `cols <= nv · lanes`; the caller runs
/// inside `K::enter`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn run_tile<T: Element, K: Microkernel<T>, const ACOL: bool>(
    rows: usize,
    nv: usize,
    cols: usize,
    kc: usize,
    alpha: T,
    a: *const T,
    lda: usize,
    bp: *const T,
    nr: usize,
    beta: T,
    c: *mut T,
    ldc: usize,
) {
    macro_rules! go {
        ($nv:literal: $($r:literal)*) => {
            match rows {
                // SAFETY: forwarded from the caller (who runs inside `K::enter`).
                $($r => unsafe {
                    K::enter(Tile::<T, $r, $nv, ACOL> {
                        kc, alpha, a, lda, bp, nr, beta, c, ldc, cols,
                    })
                },)*
                _ => unreachable!("rows_per_tile bounds the rows"),
            }
        };
    }
    // The `K::NV` tests are constants: a two-vector kernel instantiates no three- or
    // four-vector tile.
    match nv {
        1 => go!(1: 1 2 3 4 5 6 7 8 9 10 11 12),
        2 => go!(2: 1 2 3 4 5 6 7 8 9 10 11 12),
        3 if K::NV >= 3 => go!(3: 1 2 3 4 5 6 7 8),
        4 if K::NV >= 4 => go!(4: 1 2 3 4 5 6),
        _ => unreachable!("kernels have at most four vectors per row"),
    }
}

/// For the unit tests: a kernel [`dispatch`] runs on this thread, whatever it would choose,
/// so that every kernel's code paths are checked on a CPU that would otherwise take only
/// the fastest. Only on x86-64: elsewhere there is one kernel to choose. The kernels are
/// the public [`crate::Kernel`]s, entered as their own methods enter them.
#[cfg(all(test, target_arch = "x86_64"))]
pub(crate) mod forced {
    pub(crate) use crate::Kernel;
    use core::cell::Cell;

    std::thread_local! {
        static FORCED: Cell<Option<Kernel>> = const { Cell::new(None) };
    }

    /// The kernel forced on this thread, if any.
    pub(crate) fn kernel() -> Option<Kernel> {
        FORCED.with(Cell::get)
    }

    /// Runs `f` with `kernel` (on this thread), or returns `None` without running it where
    /// the CPU cannot run that kernel.
    pub(crate) fn run<R>(kernel: Kernel, f: impl FnOnce() -> R) -> Option<R> {
        if !kernel.available() {
            return None;
        }
        FORCED.with(|k| k.set(Some(kernel)));
        let r = f();
        FORCED.with(|k| k.set(None));
        Some(r)
    }
}
