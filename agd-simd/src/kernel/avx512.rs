//! AVX-512F microkernels: 6 rows x 4 `zmm` vectors per tile (24 accumulators of the 32
//! registers; each step is 4 panel loads, 6 broadcasts and 24 FMAs). Measured against 12
//! rows x 2 vectors (the same 24 accumulators, but 11 broadcasts and 2 loads per 22 FMAs):
//! `f32` 64³ went from 1.54x to 1.75x `matrixmultiply` and no MLP shape got slower (`f64`
//! at (128,256,256) `nn`: 1.21x to 1.47x); panels narrower than 4 vectors take tiles of up
//! to 12 rows (`MAX_ROWS`), so `n = 10` or 16 keep the old shape. Edges use masked loads
//! and stores instead of a scalar tail.

use core::arch::x86_64::*;

use super::{Job, Lanes, Microkernel, Panel, Transpose, microkernel, pack_transposed_column};

/// `f32` lanes of one `zmm`.
#[derive(Clone, Copy)]
pub struct F32x16(__m512);
/// `f64` lanes of one `zmm`.
#[derive(Clone, Copy)]
pub struct F64x8(__m512d);

// SAFETY (every `unsafe` block in this file): this code runs only inside `Avx512::enter`,
// which is compiled with AVX-512F enabled and called only where the CPU has it ([`available`]):
// every function here is `#[inline(always)]`, so its intrinsics are inlined there, and the
// vector types are the crate's own, reached through nothing else. Pointer validity is the
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

impl Avx512 {
    /// Its name in [`crate::kernel()`].
    pub(crate) const NAME: &str = "avx512";
}

cpufeatures::new!(cpu_avx512f, "avx512f");

/// Whether this CPU runs the kernel: it has AVX-512F and the OS saves the `zmm` and mask
/// registers. Known at compile time when the build enables AVX-512F; otherwise CPUID and
/// XGETBV once, at the first call, and a cached flag after that.
#[inline(always)]
#[cfg_attr(target_feature = "avx512f", allow(dead_code))] // Then `dispatch` needs no probe.
pub(crate) fn available() -> bool {
    cpu_avx512f::get()
}

/// Panel depth: a `KC x 64` `f32` or `KC x 32` `f64` panel is 32 KiB and stays in the 48 KiB
/// L1 while the loop runs every row block of `A` past it.
const KC: usize = 128;

microkernel!(Avx512, f32, F32x16, mr 6, nv 4, max_rows 12, kc KC, lanes 16, enable ["avx512f"];
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
microkernel!(Avx512, f64, F64x8, mr 6, nv 4, max_rows 12, kc KC, lanes 8, enable ["avx512f"];
    transpose_blocks);

/// Transposing pack of `f32` in 16 x 16 blocks held in registers, about a fifth of a cycle
/// per value instead of one scalar move each: whole blocks through [`transpose16_run`], a last
/// block of fewer than 16 columns (zero-padded) through [`transpose16`], the depth's last
/// `kc % 16` values one at a time.
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
        if jn == 16 && kc >= 16 {
            // SAFETY: rows `j..j + 16 <= cols` of `Bᵀ`, values `0..kc / 16 · 16`; panel rows
            // `0..kc / 16 · 16`, columns `j..j + 16 <= nr`; at least one block.
            unsafe { transpose16_run(b.add(j * ldb), ldb, kc / 16, dst.add(j), nr) };
            p = kc / 16 * 16;
        }
        // SAFETY: the rest of block column `j` (rows `j..j + jn <= cols`, depths `p..kc`),
        // as the caller's contract allows; the base is only read through when `jn > 0`.
        unsafe {
            pack_transposed_column::<f32, F32x16, 16>(
                b.wrapping_add(j * ldb),
                ldb,
                kc,
                jn,
                nr,
                dst.add(j),
                p,
            );
        }
        j += 16;
    }
}

impl Transpose<f32, 16> for F32x16 {
    #[inline(always)]
    fn transpose(r: [Self; 16]) -> [Self; 16] {
        transpose16(r.map(|v| v.0)).map(F32x16)
    }
}

impl Transpose<f64, 8> for F64x8 {
    #[inline(always)]
    fn transpose(r: [Self; 8]) -> [Self; 8] {
        transpose8(r.map(|v| v.0)).map(F64x8)
    }
}

/// 8 x 8 transpose of `f64` rows: pairs of rows interleaved (8 unpacks), then two rounds of
/// 128-bit moves between registers (8 `vshuff64x2` each). It is the `f64` kernel's
/// [`Transpose`], so that kernel's transposing pack is [`super::pack_transposed_blocks`]:
/// 24 shuffles a block, against a scalar load and store for every value in the trait's
/// default.
#[inline(always)]
fn transpose8(r: [__m512d; 8]) -> [__m512d; 8] {
    // SAFETY: AVX-512F is enabled where this runs (see the top of the file).
    unsafe {
        // t[2i] holds (r[2i][c], r[2i+1][c]) for even c, t[2i+1] for odd c, one pair per
        // 128-bit lane.
        let mut t = [_mm512_setzero_pd(); 8];
        for i in 0..4 {
            t[2 * i] = _mm512_unpacklo_pd(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_pd(r[2 * i], r[2 * i + 1]);
        }
        // u[4h + 2o + s] (h: rows 0-3 or 4-7, o: even or odd columns): lanes 0, 1 the
        // columns c (s = 0: c = o, 4 + o; s = 1: c = 2 + o, 6 + o) of the first row pair,
        // lanes 2, 3 those of the second.
        let mut u = [_mm512_setzero_pd(); 8];
        for h in 0..2 {
            for o in 0..2 {
                let (a, b) = (t[4 * h + o], t[4 * h + 2 + o]);
                u[4 * h + 2 * o] = _mm512_shuffle_f64x2::<0b10_00_10_00>(a, b);
                u[4 * h + 2 * o + 1] = _mm512_shuffle_f64x2::<0b11_01_11_01>(a, b);
            }
        }
        // Column c = o + 2s + 4e: lanes e and 2 + e of u[2o + s] (rows 0-3), then the same
        // lanes of u[4 + 2o + s] (rows 4-7).
        let mut w = [_mm512_setzero_pd(); 8];
        for o in 0..2 {
            for s in 0..2 {
                let (a, b) = (u[2 * o + s], u[4 + 2 * o + s]);
                w[o + 2 * s] = _mm512_shuffle_f64x2::<0b10_00_10_00>(a, b);
                w[o + 2 * s + 4] = _mm512_shuffle_f64x2::<0b11_01_11_01>(a, b);
            }
        }
        w
    }
}

/// Transposes `blocks` 16 x 16 blocks side by side along the rows at `src` (row stride `lds`:
/// 16 rows of `16 · blocks` values) into `dst` (row stride `ldd`: `16 · blocks` rows of 16).
///
/// Built from 128-bit pieces so that half the work happens in the loads: for each group of
/// four columns, register `x[a]` gathers rows `a`, `a + 4`, `a + 8`, `a + 12` (one plain load
/// and three `vinsertf32x4` from memory, which may issue on port 0 or 5), after which a 4 x 4
/// transpose inside each 128-bit lane (8 unpacks, port 5) leaves every column in one
/// register: 80 shuffle-port operations per block spread over two ports, against 64 on port
/// 5 alone for the register-only network of [`transpose16`].
///
/// In assembly because of the addresses. Written with intrinsics, LLVM turned the 16 row
/// addresses into 16 offsets from one base, more than the free registers, and reloaded them
/// from the stack: about 35 more instructions a block, beside 80 shuffles on two ports (with
/// the rows spelt out as four bases it folded them back). Here four bases (rows 0, 4, 8 and
/// 12, moved on 64 bytes a block) and two strides (`lds`, `3·lds`) reach all 16 rows, and two
/// more (`ldd`, `3·ldd`) the four stores of each group. In `agd bench`, alternating builds, 64³
/// `A·Bᵀ` went from 1.462–1.473x `matrixmultiply` to 1.494–1.523x (1.487–1.498x later, in a
/// slower spell of the VM); the same network with intrinsics in a function of its own, out of
/// the blocked loop's registers, gave 1.470–1.510x.
///
/// # Safety
/// `blocks >= 1`; `src` readable at `r·lds + q`, `r < 16`, `q < 16 · blocks`; `dst` writable
/// at `q·ldd + r` for the same `r` and `q`.
#[inline(always)]
unsafe fn transpose16_run(src: *const f32, lds: usize, blocks: usize, dst: *mut f32, ldd: usize) {
    // One group of four columns at byte offset `$o` of the block: `x[a]` (zmm0..3) gathers
    // rows `a, a + 4, a + 8, a + 12`, the lanes are transposed (zmm4..7, then zmm0..3 hold
    // columns `$o/4 .. $o/4 + 4`), and four panel rows are stored.
    #[rustfmt::skip]
    macro_rules! quad {
        ($o:literal) => {
            concat!(
                "vmovups xmm0, xmmword ptr [{s0} + ", $o, "]\n",
                "vinsertf32x4 zmm0, zmm0, xmmword ptr [{s4} + ", $o, "], 1\n",
                "vinsertf32x4 zmm0, zmm0, xmmword ptr [{s8} + ", $o, "], 2\n",
                "vinsertf32x4 zmm0, zmm0, xmmword ptr [{s12} + ", $o, "], 3\n",
                "vmovups xmm1, xmmword ptr [{s0} + {l1} + ", $o, "]\n",
                "vinsertf32x4 zmm1, zmm1, xmmword ptr [{s4} + {l1} + ", $o, "], 1\n",
                "vinsertf32x4 zmm1, zmm1, xmmword ptr [{s8} + {l1} + ", $o, "], 2\n",
                "vinsertf32x4 zmm1, zmm1, xmmword ptr [{s12} + {l1} + ", $o, "], 3\n",
                "vmovups xmm2, xmmword ptr [{s0} + 2*{l1} + ", $o, "]\n",
                "vinsertf32x4 zmm2, zmm2, xmmword ptr [{s4} + 2*{l1} + ", $o, "], 1\n",
                "vinsertf32x4 zmm2, zmm2, xmmword ptr [{s8} + 2*{l1} + ", $o, "], 2\n",
                "vinsertf32x4 zmm2, zmm2, xmmword ptr [{s12} + 2*{l1} + ", $o, "], 3\n",
                "vmovups xmm3, xmmword ptr [{s0} + {l3} + ", $o, "]\n",
                "vinsertf32x4 zmm3, zmm3, xmmword ptr [{s4} + {l3} + ", $o, "], 1\n",
                "vinsertf32x4 zmm3, zmm3, xmmword ptr [{s8} + {l3} + ", $o, "], 2\n",
                "vinsertf32x4 zmm3, zmm3, xmmword ptr [{s12} + {l3} + ", $o, "], 3\n",
                "vunpcklps zmm4, zmm0, zmm1\n",
                "vunpckhps zmm5, zmm0, zmm1\n",
                "vunpcklps zmm6, zmm2, zmm3\n",
                "vunpckhps zmm7, zmm2, zmm3\n",
                "vunpcklpd zmm0, zmm4, zmm6\n",
                "vunpckhpd zmm1, zmm4, zmm6\n",
                "vunpcklpd zmm2, zmm5, zmm7\n",
                "vunpckhpd zmm3, zmm5, zmm7\n",
                "vmovups zmmword ptr [{d}], zmm0\n",
                "vmovups zmmword ptr [{d} + {e1}], zmm1\n",
                "vmovups zmmword ptr [{d} + 2*{e1}], zmm2\n",
                "vmovups zmmword ptr [{d} + {e3}], zmm3\n",
                "lea {d}, [{d} + 4*{e1}]\n",
            )
        };
    }
    let (l1, e1) = (lds * 4, ldd * 4);
    // SAFETY: AVX-512F is enabled where this runs; every load is inside rows `0..16`, values
    // `0..16 · blocks` of `src` and every store inside rows `0..16 · blocks`, columns `0..16`
    // of `dst` (caller); only the named registers are written.
    unsafe {
        core::arch::asm!(
            "2:",
            quad!("0"),
            quad!("16"),
            quad!("32"),
            quad!("48"),
            "add {s0}, 64",
            "add {s4}, 64",
            "add {s8}, 64",
            "add {s12}, 64",
            "dec {n}",
            "jnz 2b",
            s0 = inout(reg) src => _,
            s4 = inout(reg) src.wrapping_add(4 * lds) => _,
            s8 = inout(reg) src.wrapping_add(8 * lds) => _,
            s12 = inout(reg) src.wrapping_add(12 * lds) => _,
            l1 = in(reg) l1,
            l3 = in(reg) 3 * l1,
            d = inout(reg) dst => _,
            e1 = in(reg) e1,
            e3 = in(reg) 3 * e1,
            n = inout(reg) blocks => _,
            out("zmm0") _,
            out("zmm1") _,
            out("zmm2") _,
            out("zmm3") _,
            out("zmm4") _,
            out("zmm5") _,
            out("zmm6") _,
            out("zmm7") _,
            options(nostack),
        );
    }
}

/// 16 x 16 transpose of `f32` rows.
#[inline(always)]
fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
    // SAFETY: AVX-512F is enabled where this runs (see the top of the file).
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
