//! The portable host microkernel over `wide` vectors (`f32x8`, `f64x4`): 6 rows x 2 vectors
//! (12 accumulators, fitting the 16 registers of AVX2 or SSE2). `wide` picks AVX2/FMA or
//! SSE2 when the crate is compiled, so this is the kernel of any host without AVX-512.

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
#[cfg_attr(all(target_feature = "avx512f", not(miri)), allow(dead_code))]
pub struct Portable;

/// Panel depth: `256 x 16` `f32` values are 16 KiB, well inside L1.
#[cfg_attr(all(target_feature = "avx512f", not(miri)), allow(dead_code))]
const KC: usize = 256;

// With AVX, `B` stored transposed is packed by whole blocks turned in registers by `wide`'s
// transposes (8 x 8 `f32`, 4 x 4 `f64`); on aarch64 by NEON `trn1`/`trn2` (module `neon`
// below), since `wide`'s transposes there go lane by lane through memory; elsewhere (SSE2)
// one value at a time (the trait's default), `wide`'s fallback being a copy through memory.
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
microkernel!(Portable, f32, f32x8, mr 6, nv 2, max_rows 6, kc KC, lanes 8;
    #[cfg(any(target_feature = "avx", all(target_arch = "aarch64", target_feature = "neon")))]
    transpose_blocks);
microkernel!(Portable, f64, f64x4, mr 6, nv 2, max_rows 6, kc KC, lanes 4;
    #[cfg(any(target_feature = "avx", all(target_arch = "aarch64", target_feature = "neon")))]
    transpose_blocks);

/// The block transposes on aarch64, from NEON's two-register transposes: `trn1`/`trn2` on
/// 32-bit lanes, then on 64-bit lanes, turn four rows of four `f32` (a 4 x 4 block: 8
/// instructions for 16 values); an `f64` 2 x 2 block is one `trn1`/`trn2` pair. `wide`'s
/// `f32x8` (`f64x4`) is two `float32x4_t` (`float64x2_t`) halves there, so an 8 x 8 (4 x 4)
/// transpose is four blocks, the off-diagonal two trading places.
#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
mod neon {
    use core::arch::aarch64::{
        float32x4_t, float64x2_t, vld1q_f32, vld1q_f64, vreinterpretq_f32_f64,
        vreinterpretq_f64_f32, vst1q_f32, vst1q_f64, vtrn1q_f32, vtrn1q_f64, vtrn2q_f32,
        vtrn2q_f64,
    };
    use wide::{f32x8, f64x4};

    use super::super::Transpose;

    /// The transpose of four rows of four (`out[c][q] = r[q][c]`).
    #[inline(always)]
    fn transpose4(r: [float32x4_t; 4]) -> [float32x4_t; 4] {
        // SAFETY: NEON is enabled at compile time (the `cfg` above); these are register
        // operations.
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

    /// The two halves of a row.
    #[inline(always)]
    fn halves_f32(v: f32x8) -> [float32x4_t; 2] {
        let a = v.to_array();
        // SAFETY: NEON is enabled; `a` holds 8 values.
        unsafe { [vld1q_f32(a.as_ptr()), vld1q_f32(a.as_ptr().add(4))] }
    }

    /// A row from its two halves.
    #[inline(always)]
    fn join_f32(lo: float32x4_t, hi: float32x4_t) -> f32x8 {
        let mut a = [0.0f32; 8];
        // SAFETY: NEON is enabled; `a` has room for 8 values.
        unsafe {
            vst1q_f32(a.as_mut_ptr(), lo);
            vst1q_f32(a.as_mut_ptr().add(4), hi);
        }
        f32x8::new(a)
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
            // Output row c < 4 is column c of the left half: rows 0..4 then rows 4..8.
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

    /// The transpose of two rows of two.
    #[inline(always)]
    fn transpose2(a: float64x2_t, b: float64x2_t) -> [float64x2_t; 2] {
        // SAFETY: NEON is enabled; register operations.
        unsafe { [vtrn1q_f64(a, b), vtrn2q_f64(a, b)] }
    }

    /// The two halves of a row.
    #[inline(always)]
    fn halves_f64(v: f64x4) -> [float64x2_t; 2] {
        let a = v.to_array();
        // SAFETY: NEON is enabled; `a` holds 4 values.
        unsafe { [vld1q_f64(a.as_ptr()), vld1q_f64(a.as_ptr().add(2))] }
    }

    /// A row from its two halves.
    #[inline(always)]
    fn join_f64(lo: float64x2_t, hi: float64x2_t) -> f64x4 {
        let mut a = [0.0f64; 4];
        // SAFETY: NEON is enabled; `a` has room for 4 values.
        unsafe {
            vst1q_f64(a.as_mut_ptr(), lo);
            vst1q_f64(a.as_mut_ptr().add(2), hi);
        }
        f64x4::new(a)
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
