//! # agd-core
//!
//! Automatic Gradient Descent (Bernstein et al. 2023) for bias-free dense and convolutional
//! networks, `no_std` and heap-free: the optimiser with no learning rate, no schedule and no
//! tuning, small enough to keep training on a microcontroller after it ships.
//!
//! * [`dense_network!`] declares a network whose buffers are arrays fixed at compile time
//!   (`RAM_BYTES` is a `const`); a host can size the same buffers at run time.
//! * [`NetMut`] is the one implementation of the maths over borrowed buffers: forward with
//!   `sqrt(2)·relu`, the [`Loss`]es of the reference, backward.
//! * [`init::orthogonal`] draws semi-orthogonal weights scaled by `sqrt(d_out/d_in)` from any
//!   `rand_core` RNG.
//! * [`spec`] and [`conv_network!`] add 2-D convolutions (`conv → … → flatten → dense`),
//!   run by [`ConvNetMut`] and stepped by [`Agd::step_spec`] with one norm per kernel position.
//! * [`Agd::step`] is the reference step; it returns a [`StepReport`] (G, η, norms) and
//!   refuses non-finite gradients, and updates that could overflow a weight, without
//!   touching a weight.
//! * [`Agd::step_buffer_free`] (module [`buffer_free`]) is the same step with no gradient
//!   buffer: norms from the Gram identity, then a rank-B update straight into the weights.
//! * [`checkpoint`] saves weights and progress into a caller's byte buffer (CRC-32, typed
//!   errors for every way bytes can be wrong); [`storage::AbStore`] keeps it on flash in two
//!   slots so that a power cut never loses the last good one.
//!
//! ```
//! use agd_core::{Agd, Loss, Network};
//! agd_core::dense_network!(Tiny: f64 = [4, 8, 3], batch 5);
//!
//! let mut net = Tiny::new();
//! let mut v = net.view();
//! v.init_orthogonal(&mut agd_core::SplitMix64::new(1));
//! v.input_mut(1).unwrap().copy_from_slice(&[1.0, -1.0, 0.5, 2.0]);
//! let first = v.train_step(&Agd::new(), Loss::Xent, &[2]).unwrap();
//! let second = v.train_step(&Agd::new(), Loss::Xent, &[2]).unwrap();
//! assert!(second.loss < first.loss);
//! ```
#![no_std]
#![warn(missing_docs)]

pub mod agd;
pub mod buffer_free;
pub mod checkpoint;
pub mod conv;
#[cfg(feature = "defmt")]
mod defmt_impl;
mod error;
mod flat;
pub mod init;
pub mod layout;
pub mod loss;
mod net;
pub mod plan;
mod rng;
pub mod spec;
mod spec_net;
#[doc(hidden)]
pub mod static_net;
pub mod storage;

pub use agd::{Agd, StepReport};
pub use agd_simd::Element;
pub use error::Error;
pub use layout::{Layout, MAX_DEPTH, act_count, delta_count, param_count};
pub use loss::Loss;
pub use net::{NetMut, Network, TrainReport};
pub use plan::StepPlan;
pub use rng::SplitMix64;
pub use spec_net::{CONV_PART, ConvBuffers, ConvNetMut, ConvNetwork};
