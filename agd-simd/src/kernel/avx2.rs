//! AVX2/FMA microkernels for builds that do not enable AVX2 and FMA themselves (a crate
//! depending on this one gets a plain SSE2 build by default) running on a CPU that has them:
//! the portable kernel's tile shape (6 rows x 2 `ymm` vectors, 12 accumulators of the 16
//! registers), here on `core::arch` intrinsics compiled inside [`Avx2`]'s `enter`, which
//! enables `avx2` and `fma`. A build that enables both runs the portable kernel, whose `wide`
//! vectors are then the same instructions. Edges use masked loads and stores.

use core::arch::x86_64::*;

use super::{Job, Lanes, Microkernel, Panel, Transpose, microkernel};

/// `f32` lanes of one `ymm`.
#[derive(Clone, Copy)]
pub struct F32x8(__m256);
/// `f64` lanes of one `ymm`.
#[derive(Clone, Copy)]
pub struct F64x4(__m256d);

// SAFETY (every `unsafe` block in this file): this code runs only inside `Avx2::enter`, which
// is compiled with AVX2 and FMA enabled and called only where the CPU has them
// ([`available`]): every function here is `#[inline(always)]`, so its intrinsics are inlined
// there, and the vector types are the crate's own, reached through nothing else. Pointer
// validity is the caller's contract, as each function's documentation states.

/// Lanes `0..n` set (all bits), the others clear: the mask of a partial load or store.
#[inline(always)]
fn first_lanes32(n: usize) -> __m256i {
    // SAFETY: see the top of the file.
    unsafe {
        _mm256_cmpgt_epi32(
            _mm256_set1_epi32(n as i32),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        )
    }
}

/// As [`first_lanes32`] for four 64-bit lanes.
#[inline(always)]
fn first_lanes64(n: usize) -> __m256i {
    // SAFETY: see the top of the file.
    unsafe { _mm256_cmpgt_epi64(_mm256_set1_epi64x(n as i64), _mm256_setr_epi64x(0, 1, 2, 3)) }
}

impl Lanes<f32> for F32x8 {
    const N: usize = 8;
    #[inline(always)]
    fn zero() -> Self {
        F32x8(unsafe { _mm256_setzero_ps() })
    }
    #[inline(always)]
    fn splat(x: f32) -> Self {
        F32x8(unsafe { _mm256_set1_ps(x) })
    }
    #[inline(always)]
    fn fmadd(self, a: Self, b: Self) -> Self {
        F32x8(unsafe { _mm256_fmadd_ps(self.0, a.0, b.0) })
    }
    #[inline(always)]
    fn mul(self, a: Self) -> Self {
        F32x8(unsafe { _mm256_mul_ps(self.0, a.0) })
    }
    #[inline(always)]
    fn add(self, a: Self) -> Self {
        F32x8(unsafe { _mm256_add_ps(self.0, a.0) })
    }
    #[inline(always)]
    fn reduce_add(self) -> f32 {
        // SAFETY: see the top of the file.
        unsafe {
            let s = _mm_add_ps(
                _mm256_castps256_ps128(self.0),
                _mm256_extractf128_ps::<1>(self.0),
            );
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
        }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        F32x8(unsafe { _mm256_loadu_ps(p) })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        unsafe { _mm256_storeu_ps(p, self.0) }
    }
    #[inline(always)]
    unsafe fn load_partial(p: *const f32, n: usize) -> Self {
        F32x8(unsafe { _mm256_maskload_ps(p, first_lanes32(n)) })
    }
    #[inline(always)]
    unsafe fn store_partial(self, p: *mut f32, n: usize) {
        unsafe { _mm256_maskstore_ps(p, first_lanes32(n), self.0) }
    }
}

impl Lanes<f64> for F64x4 {
    const N: usize = 4;
    #[inline(always)]
    fn zero() -> Self {
        F64x4(unsafe { _mm256_setzero_pd() })
    }
    #[inline(always)]
    fn splat(x: f64) -> Self {
        F64x4(unsafe { _mm256_set1_pd(x) })
    }
    #[inline(always)]
    fn fmadd(self, a: Self, b: Self) -> Self {
        F64x4(unsafe { _mm256_fmadd_pd(self.0, a.0, b.0) })
    }
    #[inline(always)]
    fn mul(self, a: Self) -> Self {
        F64x4(unsafe { _mm256_mul_pd(self.0, a.0) })
    }
    #[inline(always)]
    fn add(self, a: Self) -> Self {
        F64x4(unsafe { _mm256_add_pd(self.0, a.0) })
    }
    #[inline(always)]
    fn reduce_add(self) -> f64 {
        // SAFETY: see the top of the file.
        unsafe {
            let s = _mm_add_pd(
                _mm256_castpd256_pd128(self.0),
                _mm256_extractf128_pd::<1>(self.0),
            );
            _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)))
        }
    }
    #[inline(always)]
    unsafe fn load(p: *const f64) -> Self {
        F64x4(unsafe { _mm256_loadu_pd(p) })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f64) {
        unsafe { _mm256_storeu_pd(p, self.0) }
    }
    #[inline(always)]
    unsafe fn load_partial(p: *const f64, n: usize) -> Self {
        F64x4(unsafe { _mm256_maskload_pd(p, first_lanes64(n)) })
    }
    #[inline(always)]
    unsafe fn store_partial(self, p: *mut f64, n: usize) {
        unsafe { _mm256_maskstore_pd(p, first_lanes64(n), self.0) }
    }
}

/// 8 x 8 `f32` transpose: rows interleaved in pairs (8 unpacks), then pairs of pairs (8
/// shuffles), then 128-bit halves swapped between registers (8 `vperm2f128`).
impl Transpose<f32, 8> for F32x8 {
    #[inline(always)]
    fn transpose(r: [Self; 8]) -> [Self; 8] {
        // SAFETY: see the top of the file.
        unsafe {
            let r = r.map(|v| v.0);
            let mut t = [_mm256_setzero_ps(); 8];
            for i in 0..4 {
                t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
                t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
            }
            // u[4h + q]: columns q and 4 + q of rows 4h..4h + 4 (one per 128-bit half).
            let mut u = [_mm256_setzero_ps(); 8];
            for h in 0..2 {
                let (a, b, c, d) = (t[4 * h], t[4 * h + 1], t[4 * h + 2], t[4 * h + 3]);
                u[4 * h] = _mm256_shuffle_ps::<0b01_00_01_00>(a, c);
                u[4 * h + 1] = _mm256_shuffle_ps::<0b11_10_11_10>(a, c);
                u[4 * h + 2] = _mm256_shuffle_ps::<0b01_00_01_00>(b, d);
                u[4 * h + 3] = _mm256_shuffle_ps::<0b11_10_11_10>(b, d);
            }
            let mut w = [_mm256_setzero_ps(); 8];
            for q in 0..4 {
                w[q] = _mm256_permute2f128_ps::<0x20>(u[q], u[4 + q]);
                w[4 + q] = _mm256_permute2f128_ps::<0x31>(u[q], u[4 + q]);
            }
            w.map(F32x8)
        }
    }
}

/// 4 x 4 `f64` transpose: rows interleaved in pairs, then 128-bit halves swapped.
impl Transpose<f64, 4> for F64x4 {
    #[inline(always)]
    fn transpose(r: [Self; 4]) -> [Self; 4] {
        // SAFETY: see the top of the file.
        unsafe {
            let r = r.map(|v| v.0);
            let t0 = _mm256_unpacklo_pd(r[0], r[1]);
            let t1 = _mm256_unpackhi_pd(r[0], r[1]);
            let t2 = _mm256_unpacklo_pd(r[2], r[3]);
            let t3 = _mm256_unpackhi_pd(r[2], r[3]);
            [
                _mm256_permute2f128_pd::<0x20>(t0, t2),
                _mm256_permute2f128_pd::<0x20>(t1, t3),
                _mm256_permute2f128_pd::<0x31>(t0, t2),
                _mm256_permute2f128_pd::<0x31>(t1, t3),
            ]
            .map(F64x4)
        }
    }
}

/// The AVX2/FMA tile shapes.
pub struct Avx2;

impl Avx2 {
    /// Its name in [`crate::kernel()`].
    pub(crate) const NAME: &str = "avx2";
}

cpufeatures::new!(cpu_avx2_fma, "avx2", "fma");

/// Whether this CPU runs the kernel: it has AVX2 and FMA and the OS saves the `ymm`
/// registers (CPUID and XGETBV once, at the first call; a cached flag after that).
#[inline(always)]
#[cfg_attr(all(target_feature = "avx2", target_feature = "fma"), allow(dead_code))]
pub(crate) fn available() -> bool {
    cpu_avx2_fma::get()
}

/// Panel depth: `256 x 16` `f32` values are 16 KiB, well inside L1 (as the portable kernel).
const KC: usize = 256;

microkernel!(Avx2, f32, F32x8, mr 6, nv 2, max_rows 6, kc KC, lanes 8, enable ["avx2", "fma"];
    transpose_blocks);
microkernel!(Avx2, f64, F64x4, mr 6, nv 2, max_rows 6, kc KC, lanes 4, enable ["avx2", "fma"];
    transpose_blocks);
