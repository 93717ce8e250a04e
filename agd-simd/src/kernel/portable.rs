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
// transposes (8 x 8 `f32`, 4 x 4 `f64`); without it, one value at a time (the trait's
// default), since `wide`'s fallback transposes through memory anyway.
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
    #[cfg(target_feature = "avx")] transpose_blocks);
microkernel!(Portable, f64, f64x4, mr 6, nv 2, max_rows 6, kc KC, lanes 4;
    #[cfg(target_feature = "avx")] transpose_blocks);
