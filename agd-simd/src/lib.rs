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
