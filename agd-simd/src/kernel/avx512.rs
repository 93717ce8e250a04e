//! AVX-512F microkernels: 6 rows x 4 `zmm` vectors per tile (24 accumulators of the 32
//! registers; each step is 4 panel loads, 6 broadcasts and 24 FMAs). Measured against 12
//! rows x 2 vectors (the same 24 accumulators, but 11 broadcasts and 2 loads per 22 FMAs):
//! `f32` 64³ went from 1.54x to 1.75x `matrixmultiply` and no MLP shape got slower (`f64`
//! at (128,256,256) `nn`: 1.21x to 1.47x); panels narrower than 4 vectors take tiles of up
//! to 12 rows (`MAX_ROWS`), so `n = 10` or 16 keep the old shape. Edges use masked loads
//! and stores instead of a scalar tail.

use core::arch::x86_64::*;

use super::{Lanes, Microkernel, Panel, microkernel};

/// `f32` lanes of one `zmm`.
#[derive(Clone, Copy)]
pub struct F32x16(__m512);
/// `f64` lanes of one `zmm`.
#[derive(Clone, Copy)]
pub struct F64x8(__m512d);

// SAFETY (every `unsafe` block in this file): the module is only compiled with
// `target_feature = "avx512f"`, so every intrinsic is available; pointer validity is the
// caller's contract, as each function's documentation states.
impl Lanes<f32> for F32x16 {
    const N: usize = 16;
    #[inline(always)]
    fn zero() -> Self {
        F32x16(unsafe { _mm512_setzero_ps() })
    }
    #[inline(always)]
    fn splat(x: f32) -> Self {
        F32x16(unsafe { _mm512_set1_ps(x) })
    }
    #[inline(always)]
    fn fmadd(self, a: Self, b: Self) -> Self {
        F32x16(unsafe { _mm512_fmadd_ps(self.0, a.0, b.0) })
    }
    #[inline(always)]
    fn mul(self, a: Self) -> Self {
        F32x16(unsafe { _mm512_mul_ps(self.0, a.0) })
    }
    #[inline(always)]
    fn add(self, a: Self) -> Self {
        F32x16(unsafe { _mm512_add_ps(self.0, a.0) })
    }
    #[inline(always)]
    fn reduce_add(self) -> f32 {
        unsafe { _mm512_reduce_add_ps(self.0) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        F32x16(unsafe { _mm512_loadu_ps(p) })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        unsafe { _mm512_storeu_ps(p, self.0) }
    }
    #[inline(always)]
    unsafe fn load_partial(p: *const f32, n: usize) -> Self {
        let m: __mmask16 = ((1u32 << n) - 1) as u16;
        F32x16(unsafe { _mm512_maskz_loadu_ps(m, p) })
    }
    #[inline(always)]
    unsafe fn store_partial(self, p: *mut f32, n: usize) {
        let m: __mmask16 = ((1u32 << n) - 1) as u16;
        unsafe { _mm512_mask_storeu_ps(p, m, self.0) }
    }
}

impl Lanes<f64> for F64x8 {
    const N: usize = 8;
    #[inline(always)]
    fn zero() -> Self {
        F64x8(unsafe { _mm512_setzero_pd() })
    }
    #[inline(always)]
    fn splat(x: f64) -> Self {
        F64x8(unsafe { _mm512_set1_pd(x) })
    }
    #[inline(always)]
    fn fmadd(self, a: Self, b: Self) -> Self {
        F64x8(unsafe { _mm512_fmadd_pd(self.0, a.0, b.0) })
    }
    #[inline(always)]
    fn mul(self, a: Self) -> Self {
        F64x8(unsafe { _mm512_mul_pd(self.0, a.0) })
    }
    #[inline(always)]
    fn add(self, a: Self) -> Self {
        F64x8(unsafe { _mm512_add_pd(self.0, a.0) })
    }
    #[inline(always)]
    fn reduce_add(self) -> f64 {
        unsafe { _mm512_reduce_add_pd(self.0) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f64) -> Self {
        F64x8(unsafe { _mm512_loadu_pd(p) })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f64) {
        unsafe { _mm512_storeu_pd(p, self.0) }
    }
    #[inline(always)]
    unsafe fn load_partial(p: *const f64, n: usize) -> Self {
        let m: __mmask8 = ((1u32 << n) - 1) as u8;
        F64x8(unsafe { _mm512_maskz_loadu_pd(m, p) })
    }
    #[inline(always)]
    unsafe fn store_partial(self, p: *mut f64, n: usize) {
        let m: __mmask8 = ((1u32 << n) - 1) as u8;
        unsafe { _mm512_mask_storeu_pd(p, m, self.0) }
    }
}

/// The AVX-512 tile shapes.
pub struct Avx512;

/// Panel depth: a `KC x 64` `f32` or `KC x 32` `f64` panel is 32 KiB and stays in the 48 KiB
/// L1 while the loop runs every row block of `A` past it.
const KC: usize = 128;

microkernel!(Avx512, f32, F32x16, mr 6, nv 4, max_rows 12, kc KC, lanes 16;
    #[inline(always)]
    unsafe fn pack_b_transposed(
        b: *const f32,
        ldb: usize,
        kc: usize,
        cols: usize,
        nr: usize,
        dst: *mut f32,
    ) {
        // SAFETY: forwarded.
        unsafe { pack_transposed_f32(b, ldb, kc, cols, nr, dst) }
    }
);
microkernel!(Avx512, f64, F64x8, mr 6, nv 4, max_rows 12, kc KC, lanes 8);

/// Transposing pack of `f32` in 16 x 16 blocks held in registers: 16 row loads, a
/// four-stage shuffle network, 16 stores — about a quarter of a cycle per value instead of
/// one scalar move each.
///
/// # Safety
/// As [`Microkernel::pack_b_transposed`].
#[inline(always)]
unsafe fn pack_transposed_f32(
    b: *const f32,
    ldb: usize,
    kc: usize,
    cols: usize,
    nr: usize,
    dst: *mut f32,
) {
    let mut j = 0;
    while j < nr {
        let jn = cols.saturating_sub(j).min(16);
        let mut p = 0;
        if jn == 16 {
            while p + 16 <= kc {
                // SAFETY: rows `j..j + 16 <= cols` of `Bᵀ`, values `p..p + 16 <= kc`; panel
                // rows `p..p + 16 <= kc`, columns `j..j + 16 <= nr`.
                unsafe { transpose16_block(b.add(j * ldb + p), ldb, dst.add(p * nr + j), nr) };
                p += 16;
            }
        }
        while p + 16 <= kc {
            // SAFETY: AVX-512F is enabled for this module.
            let mut r = [unsafe { _mm512_setzero_ps() }; 16];
            for (q, rq) in r.iter_mut().enumerate().take(jn) {
                // SAFETY: row `j + q < cols` of `Bᵀ`, values `p..p + 16 <= kc`.
                *rq = unsafe { _mm512_loadu_ps(b.add((j + q) * ldb + p)) };
            }
            let t = transpose16(r);
            for (q, tq) in t.iter().enumerate() {
                // SAFETY: panel row `p + q < kc`, columns `j..j + 16 <= nr`.
                unsafe { _mm512_storeu_ps(dst.add((p + q) * nr + j), *tq) };
            }
            p += 16;
        }
        // Tail of the depth: scalar.
        for q in 0..16 {
            for pp in p..kc {
                // SAFETY: as above, one value at a time.
                unsafe {
                    *dst.add(pp * nr + j + q) = if q < jn {
                        *b.add((j + q) * ldb + pp)
                    } else {
                        0.0
                    };
                }
            }
        }
        j += 16;
    }
}

/// Transposes the 16 x 16 block at `src` (row stride `lds`) into `dst` (row stride `ldd`).
///
/// Built from 128-bit pieces so that half the work happens in the loads: register `x[c][a]`
/// gathers columns `4c..4c + 4` of rows `a`, `a + 4`, `a + 8`, `a + 12` (one plain load and
/// three `vinsertf32x4` from memory, which may issue on port 0 or 5), after which a 4 x 4
/// transpose inside each 128-bit lane (8 unpacks per 4 registers, port 5) leaves every
/// column in one register: 80 shuffle-port operations spread over two ports against 64 on
/// port 5 alone for the register-only network of [`transpose16`].
///
/// # Safety
/// `src` readable at `r·lds + q`, `dst` writable at `q·ldd + r`, for `r, q < 16`.
#[inline(always)]
unsafe fn transpose16_block(src: *const f32, lds: usize, dst: *mut f32, ldd: usize) {
    // SAFETY: AVX-512F is enabled for this module; every address is inside the block.
    unsafe {
        for c in 0..4 {
            let mut x = [_mm512_setzero_ps(); 4];
            for (a, xa) in x.iter_mut().enumerate() {
                let at = |r: usize| _mm_loadu_ps(src.add(r * lds + 4 * c));
                let v = _mm512_castps128_ps512(at(a));
                let v = _mm512_insertf32x4::<1>(v, at(a + 4));
                let v = _mm512_insertf32x4::<2>(v, at(a + 8));
                *xa = _mm512_insertf32x4::<3>(v, at(a + 12));
            }
            // Lane `l` of `x[a]`: row `a + 4l`, columns `4c..4c + 4`.
            let t0 = _mm512_unpacklo_ps(x[0], x[1]);
            let t1 = _mm512_unpackhi_ps(x[0], x[1]);
            let t2 = _mm512_unpacklo_ps(x[2], x[3]);
            let t3 = _mm512_unpackhi_ps(x[2], x[3]);
            let pd = _mm512_castps_pd;
            let y = [
                _mm512_unpacklo_pd(pd(t0), pd(t2)),
                _mm512_unpackhi_pd(pd(t0), pd(t2)),
                _mm512_unpacklo_pd(pd(t1), pd(t3)),
                _mm512_unpackhi_pd(pd(t1), pd(t3)),
            ];
            // Lane `l` of `y[q]`: column `4c + q` of rows `4l..4l + 4`, so all of column
            // `4c + q` in row order.
            for (q, yq) in y.iter().enumerate() {
                _mm512_storeu_ps(dst.add((4 * c + q) * ldd), _mm512_castpd_ps(*yq));
            }
        }
    }
}

/// 16 x 16 transpose of `f32` rows.
#[inline(always)]
fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
    // SAFETY: AVX-512F is enabled for this module (see the top of the file).
    unsafe {
        // Stage 1: interleave pairs of rows at 32-bit granularity.
        let mut t = [_mm512_setzero_ps(); 16];
        for i in 0..8 {
            t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        // Stage 2: 64-bit granularity.
        let mut u = [_mm512_setzero_ps(); 16];
        for i in 0..4 {
            let (a0, a1, b0, b1) = (t[4 * i], t[4 * i + 1], t[4 * i + 2], t[4 * i + 3]);
            u[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(
                _mm512_castps_pd(a0),
                _mm512_castps_pd(b0),
            ));
            u[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(
                _mm512_castps_pd(a0),
                _mm512_castps_pd(b0),
            ));
            u[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(
                _mm512_castps_pd(a1),
                _mm512_castps_pd(b1),
            ));
            u[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(
                _mm512_castps_pd(a1),
                _mm512_castps_pd(b1),
            ));
        }
        // Stage 3: 128-bit lanes between row groups 0-3/4-7 and 8-11/12-15.
        let mut v = [_mm512_setzero_ps(); 16];
        for i in 0..4 {
            v[i] = _mm512_shuffle_f32x4::<0b10_00_10_00>(u[i], u[i + 4]);
            v[i + 4] = _mm512_shuffle_f32x4::<0b11_01_11_01>(u[i], u[i + 4]);
            v[i + 8] = _mm512_shuffle_f32x4::<0b10_00_10_00>(u[i + 8], u[i + 12]);
            v[i + 12] = _mm512_shuffle_f32x4::<0b11_01_11_01>(u[i + 8], u[i + 12]);
        }
        // Stage 4: combine the halves.
        let mut w = [_mm512_setzero_ps(); 16];
        for i in 0..8 {
            w[i] = _mm512_shuffle_f32x4::<0b10_00_10_00>(v[i], v[i + 8]);
            w[i + 8] = _mm512_shuffle_f32x4::<0b11_01_11_01>(v[i], v[i + 8]);
        }
        // The stages above leave row-block order intact: slot c holds column c.
        w
    }
}
