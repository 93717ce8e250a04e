//! The element trait: what a kernel needs from `f32` and `f64`, so every kernel is
//! written once and serves both.

use core::fmt::Debug;
use core::ops::{Add, AddAssign, Div, Mul, MulAssign, Neg, Sub, SubAssign};

/// A SIMD vector of [`Element`]s, as the kernels use it.
///
/// On the host this is a `wide` vector (`f32x8`, `f64x4`); on targets where `wide` has no
/// SIMD instructions (M-profile ARM, RISC-V) it is the scalar itself, because `wide`'s array
/// fallback costs more instructions than a plain loop there (see `EMBEDDED.md`).
pub trait Vector<T>: Copy + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self> {
    /// Every lane set to `x`.
    fn splat(x: T) -> Self;
    /// Loads the first `LANES` elements of `s`.
    fn load(s: &[T]) -> Self;
    /// Stores into the first `LANES` elements of `s`.
    fn store(self, s: &mut [T]);
    /// `self * a + b` (fused where the target has FMA).
    fn mul_add(self, a: Self, b: Self) -> Self;
    /// Sum of the lanes.
    fn reduce_add(self) -> T;
    /// Lane-wise absolute value.
    fn abs(self) -> Self;
    /// Lane-wise maximum; a NaN lane propagates.
    fn max_nan(self, other: Self) -> Self;
    /// Largest lane.
    fn reduce_max(self) -> T;
}

/// Which microkernel the blocked matrix product uses for an element type; sealed, so
/// `Element` is only `f32` and `f64`.
pub(crate) mod sealed {
    /// The element's matrix-product microkernel (see `crate::kernel`).
    pub trait Gemm: Sized + Copy + Default {
        /// The portable kernel for this element: `wide`'s vectors, whatever the build
        /// enables (`crate::kernel::dispatch` runs it where no faster kernel applies).
        #[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
        type Portable: crate::kernel::Microkernel<Self>;

        /// The AVX-512 kernel for this element, for CPUs that have AVX-512F.
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        type Avx512: crate::kernel::Microkernel<Self>;

        /// The AVX2/FMA kernel for this element, for builds without them on CPUs with them.
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        type Avx2: crate::kernel::Microkernel<Self>;

        /// Whether [`Gemm::nt_tile4`] and [`Gemm::rows_tile4`] are hand-written here (then
        /// padding an edge tile with zeros is cheaper than the plain loops).
        const HAND_TILES: bool = false;

        /// Adds `Σ_p a[r][p] · b[s][p]` to `acc[r][s]` over the longest even prefix of the
        /// rows (all of one length) with a hand-written tile, and returns how many `p` it
        /// covered: 0 where the target has none, and the caller's loops do all of it.
        #[inline(always)]
        fn nt_tile4(_a: [&[Self]; 4], _b: [&[Self]; 4], _acc: &mut [[Self; 4]; 4]) -> usize {
            0
        }

        /// Adds `Σ_q cf[r][q] · b[q][j]` to `c[r][j]` (`R` rows of `C`, 4 or 2) over the
        /// longest even prefix of the rows (all of one length) with a hand-written tile, and
        /// returns how many `j` it covered (0 where the target has none).
        #[inline(always)]
        fn rows_tile<const R: usize>(
            _cf: &[[Self; 4]; R],
            _b: [&[Self]; 4],
            _c: [&mut [Self]; R],
        ) -> usize {
            0
        }
    }

    impl Gemm for f32 {
        #[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
        type Portable = crate::kernel::portable::Portable;
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        type Avx512 = crate::kernel::avx512::Avx512;
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        type Avx2 = crate::kernel::avx2::Avx2;

        #[cfg(all(target_arch = "arm", target_abi = "eabihf", feature = "arm-vfma"))]
        const HAND_TILES: bool = true;

        #[cfg(all(target_arch = "arm", target_abi = "eabihf", feature = "arm-vfma"))]
        #[inline(always)]
        fn nt_tile4(a: [&[f32]; 4], b: [&[f32]; 4], acc: &mut [[f32; 4]; 4]) -> usize {
            let len = a[0].len();
            let pairs = len / 2;
            if pairs == 0 || a.iter().chain(&b).any(|row| row.len() != len) {
                return 0;
            }
            // SAFETY: pairs ≥ 1 and all eight rows hold `len ≥ 2·pairs` elements.
            unsafe {
                crate::gemm_scalar::m4::nt_tile(
                    a.map(<[f32]>::as_ptr),
                    b.map(<[f32]>::as_ptr),
                    pairs,
                    acc,
                );
            }
            2 * pairs
        }

        #[cfg(all(target_arch = "arm", target_abi = "eabihf", feature = "arm-vfma"))]
        #[inline(always)]
        fn rows_tile<const R: usize>(
            cf: &[[f32; 4]; R],
            b: [&[f32]; 4],
            c: [&mut [f32]; R],
        ) -> usize {
            let len = c[0].len();
            let pairs = len / 2;
            if pairs == 0
                || b.iter().any(|row| row.len() != len)
                || c.iter().any(|row| row.len() != len)
            {
                return 0;
            }
            let bp = b.map(<[f32]>::as_ptr);
            let cp = c.map(<[f32]>::as_mut_ptr);
            // SAFETY: pairs ≥ 1, every row holds `len ≥ 2·pairs` elements, and the `c` rows
            // are distinct `&mut` borrows, so they overlap neither each other nor `b`.
            unsafe {
                match R {
                    4 => crate::gemm_scalar::m4::rows_tile(
                        &core::array::from_fn(|r| cf[r]),
                        bp,
                        core::array::from_fn(|r| cp[r]),
                        pairs,
                    ),
                    2 => crate::gemm_scalar::m4::rows_tile2(
                        &core::array::from_fn(|r| cf[r]),
                        bp,
                        core::array::from_fn(|r| cp[r]),
                        pairs,
                    ),
                    _ => return 0,
                }
            }
            2 * pairs
        }
    }
    impl Gemm for f64 {
        #[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
        type Portable = crate::kernel::portable::Portable;
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        type Avx512 = crate::kernel::avx512::Avx512;
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        type Avx2 = crate::kernel::avx2::Avx2;
    }
}

/// A floating-point element type (`f32` or `f64`) with its SIMD vector.
pub trait Element:
    sealed::Gemm
    + Copy
    + Default
    + Debug
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + Send
    + Sync
    + 'static
{
    /// The vector type the kernels use.
    type V: Vector<Self>;
    /// Lanes in [`Element::V`].
    const LANES: usize;
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// Machine epsilon.
    const EPSILON: Self;
    /// Smallest positive normal number.
    const MIN_POSITIVE: Self;
    /// Largest finite number.
    const MAX: Self;
    /// Size in bytes.
    const BYTES: usize;
    /// Name as used on the command line and in files (`"f32"`, `"f64"`).
    const NAME: &'static str;

    /// Nearest value of this type.
    fn from_f64(x: f64) -> Self;
    /// Widened to `f64`.
    fn to_f64(self) -> f64;
    /// Square root (libm).
    fn sqrt(self) -> Self;
    /// Natural logarithm (libm).
    fn ln(self) -> Self;
    /// `ln(1 + x)`, accurate for small `x` (libm).
    fn ln_1p(self) -> Self;
    /// `e^x` (libm).
    fn exp(self) -> Self;
    /// Absolute value.
    fn abs(self) -> Self;
    /// Neither NaN nor infinite.
    fn is_finite(self) -> bool;
    /// The larger of two numbers (NaN-ignoring, like `f32::max`).
    fn max(self, other: Self) -> Self;
    /// The raw bits, widened, for bit-exact comparisons.
    fn to_bits_u64(self) -> u64;
}

macro_rules! scalar_common {
    ($t:ty, $name:literal, $sqrt:path, $ln:path, $ln1p:path, $exp:path) => {
        const ZERO: Self = 0.0;
        const ONE: Self = 1.0;
        const EPSILON: Self = <$t>::EPSILON;
        const MIN_POSITIVE: Self = <$t>::MIN_POSITIVE;
        const MAX: Self = <$t>::MAX;
        const BYTES: usize = core::mem::size_of::<$t>();
        const NAME: &'static str = $name;

        #[inline(always)]
        fn from_f64(x: f64) -> Self {
            x as $t
        }
        #[inline(always)]
        fn to_f64(self) -> f64 {
            self as f64
        }
        #[inline(always)]
        fn sqrt(self) -> Self {
            $sqrt(self)
        }
        #[inline(always)]
        fn ln(self) -> Self {
            $ln(self)
        }
        #[inline(always)]
        fn ln_1p(self) -> Self {
            $ln1p(self)
        }
        #[inline(always)]
        fn exp(self) -> Self {
            $exp(self)
        }
        #[inline(always)]
        fn abs(self) -> Self {
            <$t>::abs(self)
        }
        #[inline(always)]
        fn is_finite(self) -> bool {
            <$t>::is_finite(self)
        }
        #[inline(always)]
        fn max(self, other: Self) -> Self {
            <$t>::max(self, other)
        }
        #[inline(always)]
        fn to_bits_u64(self) -> u64 {
            self.to_bits() as u64
        }
    };
}

/// Scalars are their own one-lane vector: the kernel variant for targets without SIMD.
macro_rules! scalar_vector {
    ($t:ty, $mul_add:path) => {
        impl Vector<$t> for $t {
            #[inline(always)]
            fn splat(x: $t) -> Self {
                x
            }
            #[inline(always)]
            fn load(s: &[$t]) -> Self {
                s[0]
            }
            #[inline(always)]
            fn store(self, s: &mut [$t]) {
                s[0] = self;
            }
            #[inline(always)]
            fn mul_add(self, a: Self, b: Self) -> Self {
                $mul_add(self, a, b)
            }
            #[inline(always)]
            fn reduce_add(self) -> $t {
                self
            }
            #[inline(always)]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline(always)]
            fn max_nan(self, other: Self) -> Self {
                if self.is_nan() || other.is_nan() {
                    <$t>::NAN
                } else if self > other {
                    self
                } else {
                    other
                }
            }
            #[inline(always)]
            fn reduce_max(self) -> $t {
                self
            }
        }
    };
}

/// Plain multiply-add: on targets without FMA a fused call is a libm routine.
#[inline(always)]
fn plain_mul_add<T: Copy + Add<Output = T> + Mul<Output = T>>(x: T, a: T, b: T) -> T {
    x * a + b
}

/// `x·a + b` as one `vfma.f32` (feature `arm-vfma`): one instruction instead of `vmul` +
/// `vadd`, and one rounding instead of two. Stable Rust has no fused multiply-add for `no_std`
/// Arm and does not fuse `x * a + b` itself, so the instruction is written out.
#[cfg(all(target_arch = "arm", target_abi = "eabihf", feature = "arm-vfma"))]
#[inline(always)]
fn f32_mul_add(x: f32, a: f32, b: f32) -> f32 {
    let mut acc = b;
    // SAFETY: register-only arithmetic on single-precision registers; no memory, no stack.
    unsafe {
        core::arch::asm!(
            "vfma.f32 {acc}, {x}, {a}",
            acc = inout(sreg) acc,
            x = in(sreg) x,
            a = in(sreg) a,
            options(pure, nomem, nostack),
        );
    }
    acc
}

#[cfg(not(all(target_arch = "arm", target_abi = "eabihf", feature = "arm-vfma")))]
use plain_mul_add as f32_mul_add;

scalar_vector!(f32, f32_mul_add);
scalar_vector!(f64, plain_mul_add);

#[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
mod wide_impl {
    use super::Vector;
    use wide::{f32x8, f64x4};

    macro_rules! wide_vector {
        ($v:ty, $t:ty, $n:literal) => {
            impl Vector<$t> for $v {
                #[inline(always)]
                fn splat(x: $t) -> Self {
                    <$v>::splat(x)
                }
                #[inline(always)]
                fn load(s: &[$t]) -> Self {
                    let a: &[$t; $n] = s[..$n].try_into().expect("slice of LANES elements");
                    <$v>::new(*a)
                }
                #[inline(always)]
                fn store(self, s: &mut [$t]) {
                    s[..$n].copy_from_slice(self.as_array());
                }
                #[inline(always)]
                fn mul_add(self, a: Self, b: Self) -> Self {
                    <$v>::mul_add(self, a, b)
                }
                #[inline(always)]
                fn reduce_add(self) -> $t {
                    <$v>::reduce_add(self)
                }
                #[inline(always)]
                fn abs(self) -> Self {
                    <$v>::abs(self)
                }
                #[inline(always)]
                fn max_nan(self, other: Self) -> Self {
                    let nan = self.is_nan() | other.is_nan();
                    nan.bitselect(<$v>::splat(<$t>::NAN), <$v>::max(self, other))
                }
                #[inline(always)]
                fn reduce_max(self) -> $t {
                    self.as_array().iter().fold(<$t>::NEG_INFINITY, |m, &x| {
                        if x.is_nan() || m.is_nan() {
                            <$t>::NAN
                        } else if x > m {
                            x
                        } else {
                            m
                        }
                    })
                }
            }
        };
    }
    wide_vector!(f32x8, f32, 8);
    wide_vector!(f64x4, f64, 4);
}

#[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
impl Element for f32 {
    type V = wide::f32x8;
    const LANES: usize = 8;
    scalar_common!(
        f32,
        "f32",
        libm::sqrtf,
        libm::logf,
        libm::log1pf,
        libm::expf
    );
}

#[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
impl Element for f64 {
    type V = wide::f64x4;
    const LANES: usize = 4;
    scalar_common!(f64, "f64", libm::sqrt, libm::log, libm::log1p, libm::exp);
}

#[cfg(any(target_arch = "arm", target_arch = "riscv32"))]
impl Element for f32 {
    type V = f32;
    const LANES: usize = 1;
    scalar_common!(
        f32,
        "f32",
        libm::sqrtf,
        libm::logf,
        libm::log1pf,
        libm::expf
    );
}

#[cfg(any(target_arch = "arm", target_arch = "riscv32"))]
impl Element for f64 {
    type V = f64;
    const LANES: usize = 1;
    scalar_common!(f64, "f64", libm::sqrt, libm::log, libm::log1p, libm::exp);
}
