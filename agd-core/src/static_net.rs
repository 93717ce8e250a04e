//! Networks whose every buffer is fixed at compile time, declared in one line.

/// Checks widths at compile time: 2 to `MAX_DEPTH + 1` widths, none zero.
#[doc(hidden)]
pub const fn widths_ok(widths: &[usize]) -> bool {
    if widths.len() < 2 || widths.len() - 1 > crate::MAX_DEPTH {
        return false;
    }
    let mut k = 0;
    while k < widths.len() {
        if widths[k] == 0 {
            return false;
        }
        k += 1;
    }
    true
}

/// Declares a dense network whose weights, gradients, activations and errors are arrays
/// sized at compile time — no heap, and `RAM_BYTES` is a `const`.
///
/// ```
/// use agd_core::{Agd, Loss, Network};
/// agd_core::dense_network!(pub Digits: f32 = [64, 32, 10], batch 8);
///
/// let mut net = Digits::new();
/// assert_eq!(Digits::PARAMS, 64 * 32 + 32 * 10);
/// // weights + gradients + activations + errors, all in the type:
/// assert_eq!(Digits::RAM_BYTES, 4 * (2 * 2368 + 8 * (64 + 32 + 10) + 8 * (32 + 10)));
///
/// let mut rng = agd_core::SplitMix64::new(7);
/// let mut v = net.view();
/// v.init_orthogonal(&mut rng);
/// v.input_mut(2).unwrap().fill(0.5);
/// let report = v.train_step(&Agd::new(), Loss::Xent, &[3, 4]).unwrap();
/// assert!(report.step.eta > 0.0);
/// ```
///
/// Add `, buffer_free` after the batch to leave out the gradient buffer (for the
/// buffer-free step); `RAM_BYTES` then shrinks by the size of the weights.
#[macro_export]
macro_rules! dense_network {
    ($(#[$meta:meta])* $vis:vis $name:ident : $t:ty = [$($w:expr),+ $(,)?], batch $b:expr) => {
        $crate::dense_network!(@impl [$(#[$meta])*] $vis $name, $t, [$($w),+], $b, true);
    };
    ($(#[$meta:meta])* $vis:vis $name:ident : $t:ty = [$($w:expr),+ $(,)?], batch $b:expr, buffer_free) => {
        $crate::dense_network!(@impl [$(#[$meta])*] $vis $name, $t, [$($w),+], $b, false);
    };
    (@impl [$(#[$meta:meta])*] $vis:vis $name:ident, $t:ty, [$($w:expr),+], $b:expr, $grads:expr) => {
        $(#[$meta])*
        #[doc = concat!("A static dense network of widths `[", stringify!($($w),+), "]`, batch capacity ", stringify!($b), ".")]
        $vis struct $name {
            weights: [$t; $crate::param_count(&[$($w),+])],
            grads: [$t; $crate::param_count(&[$($w),+]) * ($grads as usize)],
            acts: [$t; $crate::act_count(&[$($w),+], $b)],
            deltas: [$t; $crate::delta_count(&[$($w),+], $b)],
        }

        const _: () = assert!(
            $crate::static_net::widths_ok(&[$($w),+]) && $b > 0,
            "dense_network!: need 2 to MAX_DEPTH + 1 non-zero widths and a non-zero batch"
        );

        #[allow(dead_code)]
        impl $name {
            /// The widths `[d_0, …, d_L]`.
            pub const WIDTHS: &'static [usize] = &[$($w),+];
            /// Most samples per batch.
            pub const BATCH: usize = $b;
            /// Number of weights.
            pub const PARAMS: usize = $crate::param_count(&[$($w),+]);
            /// Whether the type holds a gradient buffer.
            pub const HAS_GRAD_BUFFER: bool = $grads;
            /// Bytes of RAM the network and all its training buffers take.
            pub const RAM_BYTES: usize = core::mem::size_of::<Self>();

            /// A network with all-zero weights (initialise it before training); `const`, so it
            /// can be placed in a `static`.
            pub const fn new() -> Self {
                const Z: $t = <$t as $crate::Element>::ZERO;
                $name {
                    weights: [Z; $crate::param_count(&[$($w),+])],
                    grads: [Z; $crate::param_count(&[$($w),+]) * ($grads as usize)],
                    acts: [Z; $crate::act_count(&[$($w),+], $b)],
                    deltas: [Z; $crate::delta_count(&[$($w),+], $b)],
                }
            }
        }

        impl $crate::Network<$t> for $name {
            fn view(&mut self) -> $crate::NetMut<'_, $t> {
                $crate::NetMut::__from_static(
                    Self::WIDTHS,
                    $b,
                    &mut self.weights,
                    &mut self.grads,
                    &mut self.acts,
                    &mut self.deltas,
                )
            }
        }
    };
}
