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
//!   which adds each row back onto overlapping windows), and products that gather a
//!   one-channel image's windows at fixed tap offsets ([`matmul_gather`] forward,
//!   [`matmul_gather_tn`] weight gradient);
//! * level-1 kernels: [`dot`], [`axpy`], [`scale`], [`amax`], and an overflow-safe
//!   Frobenius norm [`nrm2`] / [`sum_sq_scaled`] / [`sum_sq_checked`];
//! * [`power_iteration`] for the top singular value with a caller-kept warm-start vector.
//!
//! Vectors come from the `wide` crate on the host and are plain scalars on M-profile ARM and
//! RISC-V, where `wide` has no SIMD and its array fallback is slower than a scalar loop.
//! Every kernel has a naive twin in [`naive`] that the property tests compare against.
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
pub use element::{Element, Vector};
pub use error::Error;
pub use gather::{Grid, matmul_gather, matmul_gather_tn};
pub use gemm::{
    Strides, matmul_nn, matmul_nn_ld, matmul_nn_ld_add, matmul_nt, matmul_nt_ld, matmul_tn,
    matmul_tn_ld, matmul_tn_sum_sq,
};
pub use power::power_iteration;

/// The matrix kernel and vectors this build compiled in. They are chosen when the crate is
/// compiled, from the target's features, never at run time, and a crate that depends on this
/// one builds it with its own flags (this repository's `.cargo/config.toml` does not reach
/// it): on x86-64 a default build is `"portable-sse2"`, several times slower than what
/// `-C target-cpu=native` gives a machine with AVX2 or AVX-512.
///
/// * `"avx512"`: the AVX-512 microkernel (6 x 64 `f32` tiles), `wide` at 512 bits;
/// * `"portable-avx2"` (AVX2 and FMA), `"portable-avx"`, `"portable-sse2"`, `"portable-neon"`
///   (aarch64), `"portable"` (any other host): `wide`'s vectors in the portable microkernel;
/// * `"scalar-vfma"` (Cortex-M4F/M7 with the `arm-vfma` feature: hand-scheduled `vfma.f32`
///   tiles), `"scalar"` (other M-profile Arm and RISC-V): register-tiled scalar loops.
///
/// ```
/// assert!(!agd_simd::KERNEL.is_empty());
/// ```
pub const KERNEL: &str = kernel_name();

/// The host kernel's own name.
#[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
const fn kernel_name() -> &'static str {
    element::sealed::HOST_KERNEL_NAME
}

/// Register-tiled scalar loops, hand-scheduled `vfma.f32` ones where `f32` has them.
#[cfg(any(target_arch = "arm", target_arch = "riscv32"))]
const fn kernel_name() -> &'static str {
    use element::sealed::Gemm;
    if <f32 as Gemm>::HAND_TILES {
        "scalar-vfma"
    } else {
        "scalar"
    }
}

#[cfg(test)]
mod tests {
    /// [`super::KERNEL`] names the microkernel the products really use.
    #[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
    #[test]
    fn the_kernel_name_is_the_kernel_in_use() {
        use crate::element::sealed::Gemm;
        use core::any::TypeId;
        let kernel = TypeId::of::<<f32 as Gemm>::Kernel>();
        assert_eq!(kernel, TypeId::of::<<f64 as Gemm>::Kernel>());
        let portable = TypeId::of::<crate::kernel::portable::Portable>();
        if super::KERNEL == "avx512" {
            assert_ne!(kernel, portable);
        } else {
            assert!(super::KERNEL.starts_with("portable"), "{}", super::KERNEL);
            assert_eq!(kernel, portable);
        }
    }
}
