//! # agd-simd
//!
//! `no_std` slice kernels for Automatic Gradient Descent, written once over the
//! [`Element`] trait so `f32` and `f64` share every loop:
//!
//! * matrix products in the three layouts a dense layer needs
//!   ([`matmul_nt`] forward, [`matmul_nn`] back-propagation, [`matmul_tn`] weight gradient,
//!   and [`matmul_tn_sum_sq`], which also sums the gradient's squares as it writes it);
//! * the same over strided operands whose rows may overlap, for a convolution's windows read
//!   in place ([`matmul_nt_ld`], [`matmul_nn_ld`], [`matmul_tn_ld`], and [`matmul_nn_ld_add`],
//!   which adds each row back onto overlapping windows; their `_warm` forms also bring the
//!   caller's next data into the cache while they compute; [`matmul_nn_grouped`] and
//!   [`matmul_nn_grouped_add`] take the rows in [`Groups`], a convolution's output rows,
//!   without the windows between them), and products that gather a
//!   one-channel image's windows at fixed tap offsets ([`matmul_gather`] forward,
//!   [`matmul_gather_tn`] weight gradient);
//! * level-1 kernels: [`dot`], [`axpy`], [`scale`], [`amax`], and an overflow-safe
//!   Frobenius norm [`nrm2`] / [`sum_sq_scaled`] / [`sum_sq_checked`];
//! * [`power_iteration`] for the top singular value with a caller-kept warm-start vector;
//! * [`kernel()`], the matrix kernel the products picked on this CPU, and [`Kernel`], which
//!   runs a product on a kernel you name (to race the kernels against each other);
//!   [`cache_tuning()`], what the products do beyond their tiles on this CPU's caches.
//!
//! Vectors come from the `wide` crate on the host and are plain scalars on M-profile ARM and
//! RISC-V, where `wide` has no SIMD and its array fallback is slower than a scalar loop.
//! Every kernel has a naive twin in [`naive`] that the property tests compare against.
//!
//! Nothing allocates: a product's buffers are on the stack. On the host (x86-64, aarch64)
//! a product takes up to about 35 KiB of it for a packed panel of `B`, and a weight
//! gradient whose stored rows of `A` are a multiple of 2 KiB apart (a layer 512 or 1024
//! wide) 64 KiB more, for a copy of `A` in blocks, where the L1 has 8 ways or fewer
//! ([`CacheTuning::copy_a`]). On microcontrollers the scalar loops
//! keep only a tile of accumulators.
//!
//! ```
//! use agd_simd::{dot, nrm2};
//! let x = [3.0f32, 4.0];
//! assert_eq!(dot(&x, &x), 25.0);
//! assert_eq!(nrm2(&x), 5.0);
//! ```
#![no_std]
#![warn(missing_docs)]

#[cfg(test)]
extern crate std;

mod blas1;
mod cache;
mod choice;
mod element;
mod error;
mod gather;
mod gemm;
mod gemm_scalar;
// M-profile ARM and RISC-V have no vector unit to tile for: there the register-tiled scalar
// loops of `gemm_scalar` are the kernel.
#[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
mod kernel;
pub mod naive;
mod power;
mod small;

pub use blas1::{SumSq, amax, axpy, dot, nrm2, scale, sum_sq_checked, sum_sq_scaled};
pub use cache::{CacheTuning, cache_tuning};
pub use choice::Kernel;
pub use element::{Element, Vector};
pub use error::Error;
pub use gather::{Grid, matmul_gather, matmul_gather_tn};
pub use gemm::{
    Groups, Strides, matmul_nn, matmul_nn_grouped, matmul_nn_grouped_add, matmul_nn_ld,
    matmul_nn_ld_add, matmul_nn_ld_add_warm, matmul_nn_ld_warm, matmul_nt, matmul_nt_ld, matmul_tn,
    matmul_tn_ld, matmul_tn_ld_warm, matmul_tn_sum_sq,
};
pub use power::power_iteration;

/// Every public product, instantiated here for `f32` and `f64` in builds with debug
/// assertions (the dev and test profiles).
///
/// The products are generic, so each crate that calls one compiles its own copy, with the
/// blocked loop and every microkernel inlined into it: 20–60 s of a 2-core machine per test
/// binary at the test profile's `opt-level = 1`. At that level (and at 0) rustc shares
/// generic instances between crates: a dependent crate links to a copy compiled here instead
/// of compiling its own, but only to one that this crate did compile. Naming each product
/// here makes sure of that, so every test binary, example and debug build of the workspace
/// (and of a crate that depends on this one) reuses one copy. Optimised builds (`opt-level`
/// 2 and 3) never share generics: this function is not compiled there, and their code is
/// what it was.
#[cfg(debug_assertions)]
#[doc(hidden)]
#[inline(never)]
pub fn instances() -> [*const (); 34] {
    macro_rules! both {
        ($($($seg:ident)::+),* $(,)?) => {
            [$($($seg)::+::<f32> as *const (), $($seg)::+::<f64> as *const ()),*]
        };
    }
    both![
        matmul_nt,
        matmul_nn,
        matmul_tn,
        matmul_tn_sum_sq,
        matmul_nt_ld,
        matmul_nn_ld,
        matmul_tn_ld,
        matmul_nn_ld_add,
        matmul_gather,
        matmul_gather_tn,
        power_iteration,
        dot,
        axpy,
        nrm2,
        Kernel::matmul_nt,
        Kernel::matmul_nn,
        Kernel::matmul_tn,
    ]
}

/// The matrix kernel the products run on this machine.
///
/// On x86-64 it is chosen at run time, whatever flags the crate was built with: the AVX-512
/// microkernel wherever the CPU has AVX-512F; else, where the build does not enable AVX2 and
/// FMA but the CPU has them, the AVX2/FMA microkernel (the CPU is asked once, with CPUID,
/// and the answer remembered). Elsewhere the portable kernel runs on `wide`'s vectors, whose
/// instructions are chosen when the crate is compiled (a crate that depends on this one
/// builds it with its own flags; this repository's `.cargo/config.toml` does not reach it).
///
/// * `"avx512"`: the AVX-512 microkernel (6 x 64 `f32` tiles);
/// * `"avx2"`: the AVX2/FMA microkernel (6 x 16 `f32` tiles);
/// * `"portable-avx2"` (a build with AVX2 and FMA), `"portable-avx"`, `"portable-sse2"`,
///   `"portable-neon"` (aarch64), `"portable"` (any other host): `wide`'s vectors in the
///   portable microkernel;
/// * `"scalar-vfma"` (Cortex-M4F/M7 with the `arm-vfma` feature: hand-scheduled `vfma.f32`
///   tiles), `"scalar"` (other M-profile Arm and RISC-V): register-tiled scalar loops.
///
/// The level-1 kernels ([`dot`], [`axpy`], the norms) and the element-wise work of a layer
/// use `wide`'s vectors as built, whichever matrix kernel runs.
///
/// ```
/// assert!(!agd_simd::kernel().is_empty());
/// ```
pub fn kernel() -> &'static str {
    kernel_name()
}

/// The kernel [`kernel::dispatch`] picks on this CPU.
#[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
fn kernel_name() -> &'static str {
    kernel::name()
}

/// Register-tiled scalar loops, hand-scheduled `vfma.f32` ones where `f32` has them.
#[cfg(any(target_arch = "arm", target_arch = "riscv32"))]
fn kernel_name() -> &'static str {
    use element::sealed::Gemm;
    if <f32 as Gemm>::HAND_TILES {
        "scalar-vfma"
    } else {
        "scalar"
    }
}

#[cfg(test)]
mod tests {
    /// [`super::kernel`] names the microkernel the products really use: the AVX-512 one
    /// exactly where the CPU has AVX-512F (and the build is not under Miri), the AVX2 one
    /// where it has AVX2 and FMA and the build does not enable them, else a portable one.
    #[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
    #[test]
    fn the_kernel_name_is_the_kernel_in_use() {
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        let (avx512, avx2) = (
            crate::kernel::avx512::available(),
            crate::kernel::avx2::available()
                && !cfg!(all(target_feature = "avx2", target_feature = "fma")),
        );
        #[cfg(not(all(target_arch = "x86_64", not(miri))))]
        let (avx512, avx2) = (false, false);
        let name = super::kernel();
        if avx512 {
            assert_eq!(name, "avx512");
        } else if avx2 {
            assert_eq!(name, "avx2");
        } else {
            assert!(name.starts_with("portable"), "{name}");
        }
    }
}
