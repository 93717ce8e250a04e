//! The portable host microkernel over `wide` vectors (`f32x8`, `f64x4`): 6 rows x 2 vectors
//! (12 accumulators, fitting the 16 registers of AVX2 or SSE2). `wide` picks AVX2/FMA or
//! SSE2 when the crate is compiled, so this is the kernel of any host CPU without AVX-512.

use wide::{f32x8, f64x4};

#[cfg(target_feature = "avx")]
use super::Transpose;
use super::{Lanes, Microkernel, Panel, microkernel};

macro_rules! wide_lanes {
    ($v:ty, $t:ty, $n:literal) => {
        impl Lanes<$t> for $v {
            const N: usize = $n;
            #[inline(always)]
            fn zero() -> Self {
                <$v>::splat(0.0)
            }
            #[inline(always)]
            fn splat(x: $t) -> Self {
                <$v>::splat(x)
            }
            #[inline(always)]
            fn fmadd(self, a: Self, b: Self) -> Self {
                <$v>::mul_add(self, a, b)
            }
            #[inline(always)]
            fn mul(self, a: Self) -> Self {
                self * a
            }
            #[inline(always)]
            fn add(self, a: Self) -> Self {
                self + a
            }
            #[inline(always)]
            fn reduce_add(self) -> $t {
                <$v>::reduce_add(self)
            }
            #[inline(always)]
            unsafe fn load(p: *const $t) -> Self {
                // SAFETY: the caller guarantees `N` readable values.
                <$v>::new(unsafe { p.cast::<[$t; $n]>().read_unaligned() })
            }
            #[inline(always)]
            unsafe fn store(self, p: *mut $t) {
                // SAFETY: the caller guarantees `N` writable values.
                unsafe { p.cast::<[$t; $n]>().write_unaligned(self.to_array()) }
            }
        }
    };
}
wide_lanes!(f32x8, f32, 8);
wide_lanes!(f64x4, f64, 4);

/// The portable tile shapes.
pub struct Portable;

impl Portable {
    /// Its name in [`crate::kernel()`]: the instructions `wide` compiled its vectors to.
    pub(crate) const NAME: &str = if cfg!(all(target_feature = "avx2", target_feature = "fma")) {
        "portable-avx2"
    } else if cfg!(target_feature = "avx") {
        "portable-avx"
    } else if cfg!(target_feature = "sse2") {
        "portable-sse2"
    } else if cfg!(all(target_arch = "aarch64", target_feature = "neon")) {
        "portable-neon"
    } else {
        "portable"
    };
}

/// Panel depth: `256 x 16` `f32` values are 16 KiB, well inside L1.
const KC: usize = 256;

// With AVX, `B` stored transposed is packed by whole blocks turned in registers by `wide`'s
// transposes (8 x 8 `f32`, 4 x 4 `f64`). With NEON (aarch64) or SSE2 alone, where `wide`'s
// vectors are two 128-bit halves and its transposes go lane by lane through memory, by four
// 128-bit blocks each (module `halves` below); anywhere else one value at a time (the
// trait's default).
#[cfg(target_feature = "avx")]
impl Transpose<f32, 8> for f32x8 {
    #[inline(always)]
    fn transpose(r: [Self; 8]) -> [Self; 8] {
        f32x8::transpose(r)
    }
}
#[cfg(target_feature = "avx")]
impl Transpose<f64, 4> for f64x4 {
    #[inline(always)]
    fn transpose(r: [Self; 4]) -> [Self; 4] {
        f64x4::transpose(r)
    }
}

/// The portable kernel for each element: the same tile shape, packing `Bᵀ` by blocks where
/// its vector type has a [`Transpose`] (with AVX, or where module `halves` is compiled).
macro_rules! portable_kernels {
    ($($t:ty, $v:ty, lanes $lanes:literal);*) => {$(
        microkernel!(Portable, $t, $v, mr 6, nv 2, max_rows 6, kc KC, lanes $lanes;
            #[cfg(any(
                target_feature = "avx",
                all(target_arch = "aarch64", target_feature = "neon"),
                all(
                    any(target_arch = "x86", target_arch = "x86_64"),
                    target_feature = "sse2",
                    not(target_feature = "avx"),
                    not(miri)
                )
            ))]
            transpose_blocks);
    )*};
}
portable_kernels!(f32, f32x8, lanes 8; f64, f64x4, lanes 4);

/// Block transposes from 128-bit ones, for targets whose `wide` `f32x8` (`f64x4`) is two
/// 128-bit halves: NEON on aarch64, and x86 with SSE2 but not AVX (not under Miri, which
/// emulates only some of these intrinsics). Each ISA gives a 4 x 4 `f32` transpose (NEON:
/// `trn1`/`trn2` on 32-bit lanes, then on 64-bit lanes; SSE: `unpcklps`/`unpckhps`, then
/// `movlhps`/`movhlps`; 8 instructions for 16 values) and a 2 x 2 `f64` one (one pair); an
/// 8 x 8 (4 x 4) transpose is four such blocks, the off-diagonal two trading places.
#[cfg(any(
    all(target_arch = "aarch64", target_feature = "neon"),
    all(
        any(target_arch = "x86", target_arch = "x86_64"),
        target_feature = "sse2",
        not(target_feature = "avx"),
        not(miri)
    )
))]
mod halves {
    use wide::{f32x8, f64x4};

    use super::super::Transpose;

    /// `load4`/`store4` (`f32`) and `load2`/`store2` (`f64`) between an array and a register,
    /// from the ISA's unaligned 128-bit load and store.
    macro_rules! io {
        ($f4:ty = $ld4:ident, $st4:ident; $d2:ty = $ld2:ident, $st2:ident) => {
            #[inline(always)]
            pub fn load4(a: &[f32; 4]) -> $f4 {
                // SAFETY: the ISA is enabled (the module's `cfg`); `a` holds 4 values.
                unsafe { $ld4(a.as_ptr()) }
            }
            #[inline(always)]
            pub fn store4(v: $f4, a: &mut [f32; 4]) {
                // SAFETY: the ISA is enabled; `a` has room for 4 values.
                unsafe { $st4(a.as_mut_ptr(), v) }
            }
            #[inline(always)]
            pub fn load2(a: &[f64; 2]) -> $d2 {
                // SAFETY: the ISA is enabled; `a` holds 2 values.
                unsafe { $ld2(a.as_ptr()) }
            }
            #[inline(always)]
            pub fn store2(v: $d2, a: &mut [f64; 2]) {
                // SAFETY: the ISA is enabled; `a` has room for 2 values.
                unsafe { $st2(a.as_mut_ptr(), v) }
            }
        };
    }

    #[cfg(target_arch = "aarch64")]
    mod isa {
        use core::arch::aarch64::{
            float32x4_t, float64x2_t, vld1q_f32, vld1q_f64, vreinterpretq_f32_f64,
            vreinterpretq_f64_f32, vst1q_f32, vst1q_f64, vtrn1q_f32, vtrn1q_f64, vtrn2q_f32,
            vtrn2q_f64,
        };

        pub type F4 = float32x4_t;
        pub type D2 = float64x2_t;

        io!(F4 = vld1q_f32, vst1q_f32; D2 = vld1q_f64, vst1q_f64);
        /// `out[c][q] = r[q][c]`.
        #[inline(always)]
        pub fn transpose4(r: [F4; 4]) -> [F4; 4] {
            // SAFETY: NEON is enabled; register operations.
            unsafe {
                // [a0 b0 a2 b2], [a1 b1 a3 b3], [c0 d0 c2 d2], [c1 d1 c3 d3]
                let t0 = vreinterpretq_f64_f32(vtrn1q_f32(r[0], r[1]));
                let t1 = vreinterpretq_f64_f32(vtrn2q_f32(r[0], r[1]));
                let t2 = vreinterpretq_f64_f32(vtrn1q_f32(r[2], r[3]));
                let t3 = vreinterpretq_f64_f32(vtrn2q_f32(r[2], r[3]));
                [
                    vreinterpretq_f32_f64(vtrn1q_f64(t0, t2)),
                    vreinterpretq_f32_f64(vtrn1q_f64(t1, t3)),
                    vreinterpretq_f32_f64(vtrn2q_f64(t0, t2)),
                    vreinterpretq_f32_f64(vtrn2q_f64(t1, t3)),
                ]
            }
        }
        /// `[[a0, b0], [a1, b1]]`.
        #[inline(always)]
        pub fn transpose2(a: D2, b: D2) -> [D2; 2] {
            // SAFETY: NEON is enabled; register operations.
            unsafe { [vtrn1q_f64(a, b), vtrn2q_f64(a, b)] }
        }
    }

    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    mod isa {
        use arch::{
            __m128, __m128d, _mm_loadu_pd, _mm_loadu_ps, _mm_movehl_ps, _mm_movelh_ps,
            _mm_storeu_pd, _mm_storeu_ps, _mm_unpackhi_pd, _mm_unpackhi_ps, _mm_unpacklo_pd,
            _mm_unpacklo_ps,
        };
        #[cfg(target_arch = "x86")]
        use core::arch::x86 as arch;
        #[cfg(target_arch = "x86_64")]
        use core::arch::x86_64 as arch;

        pub type F4 = __m128;
        pub type D2 = __m128d;

        io!(F4 = _mm_loadu_ps, _mm_storeu_ps; D2 = _mm_loadu_pd, _mm_storeu_pd);
        /// `out[c][q] = r[q][c]` (`_MM_TRANSPOSE4_PS`).
        #[inline(always)]
        pub fn transpose4(r: [F4; 4]) -> [F4; 4] {
            // SAFETY: SSE2 is enabled; register operations.
            unsafe {
                // [a0 b0 a1 b1], [c0 d0 c1 d1], [a2 b2 a3 b3], [c2 d2 c3 d3]
                let t0 = _mm_unpacklo_ps(r[0], r[1]);
                let t1 = _mm_unpacklo_ps(r[2], r[3]);
                let t2 = _mm_unpackhi_ps(r[0], r[1]);
                let t3 = _mm_unpackhi_ps(r[2], r[3]);
                [
                    _mm_movelh_ps(t0, t1),
                    _mm_movehl_ps(t1, t0),
                    _mm_movelh_ps(t2, t3),
                    _mm_movehl_ps(t3, t2),
                ]
            }
        }
        /// `[[a0, b0], [a1, b1]]`.
        #[inline(always)]
        pub fn transpose2(a: D2, b: D2) -> [D2; 2] {
            // SAFETY: SSE2 is enabled; register operations.
            unsafe { [_mm_unpacklo_pd(a, b), _mm_unpackhi_pd(a, b)] }
        }
    }

    use isa::{D2, F4, load2, load4, store2, store4, transpose2, transpose4};

    /// The two halves of a row.
    #[inline(always)]
    fn halves_f32(v: f32x8) -> [F4; 2] {
        let [a0, a1, a2, a3, a4, a5, a6, a7] = v.to_array();
        [load4(&[a0, a1, a2, a3]), load4(&[a4, a5, a6, a7])]
    }

    /// A row from its two halves.
    #[inline(always)]
    fn join_f32(lo: F4, hi: F4) -> f32x8 {
        let (mut l, mut h) = ([0.0f32; 4], [0.0f32; 4]);
        store4(lo, &mut l);
        store4(hi, &mut h);
        f32x8::new([l[0], l[1], l[2], l[3], h[0], h[1], h[2], h[3]])
    }

    impl Transpose<f32, 8> for f32x8 {
        #[inline(always)]
        fn transpose(r: [Self; 8]) -> [Self; 8] {
            let h = r.map(halves_f32);
            let block = |rows: usize, half: usize| {
                transpose4([
                    h[rows][half],
                    h[rows + 1][half],
                    h[rows + 2][half],
                    h[rows + 3][half],
                ])
            };
            // Output row c < 4 is column c of the left halves: rows 0..4, then rows 4..8.
            let (top_left, bottom_left) = (block(0, 0), block(4, 0));
            let (top_right, bottom_right) = (block(0, 1), block(4, 1));
            core::array::from_fn(|c| {
                if c < 4 {
                    join_f32(top_left[c], bottom_left[c])
                } else {
                    join_f32(top_right[c - 4], bottom_right[c - 4])
                }
            })
        }
    }

    /// The two halves of a row.
    #[inline(always)]
    fn halves_f64(v: f64x4) -> [D2; 2] {
        let [a0, a1, a2, a3] = v.to_array();
        [load2(&[a0, a1]), load2(&[a2, a3])]
    }

    /// A row from its two halves.
    #[inline(always)]
    fn join_f64(lo: D2, hi: D2) -> f64x4 {
        let (mut l, mut h) = ([0.0f64; 2], [0.0f64; 2]);
        store2(lo, &mut l);
        store2(hi, &mut h);
        f64x4::new([l[0], l[1], h[0], h[1]])
    }

    impl Transpose<f64, 4> for f64x4 {
        #[inline(always)]
        fn transpose(r: [Self; 4]) -> [Self; 4] {
            let h = r.map(halves_f64);
            let (top_left, bottom_left) =
                (transpose2(h[0][0], h[1][0]), transpose2(h[2][0], h[3][0]));
            let (top_right, bottom_right) =
                (transpose2(h[0][1], h[1][1]), transpose2(h[2][1], h[3][1]));
            core::array::from_fn(|c| {
                if c < 2 {
                    join_f64(top_left[c], bottom_left[c])
                } else {
                    join_f64(top_right[c - 2], bottom_right[c - 2])
                }
            })
        }
    }
}
