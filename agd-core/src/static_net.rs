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

/// Declares a network of convolution and dense layers whose weights, gradients, activations,
/// errors, scratch and norms are arrays sized at compile time — no heap, `RAM_BYTES` is a
/// `const`. The input shape `[channels, height, width]` comes first; each layer is
/// `conv(c_out, kernel, stride, padding)` or `dense(outputs)` ([`crate::spec`]), with its
/// input shape inferred, and a layer that does not fit is a compile error.
///
/// ```
/// use agd_core::{Agd, ConvNetwork, Loss};
/// agd_core::conv_network!(pub Cnn: f32 = [1, 8, 8] => [conv(4, 3, 1, 1), conv(8, 3, 2, 1), dense(10)], batch 4);
///
/// assert_eq!(Cnn::PARAMS, 4 * 9 + 8 * 4 * 9 + 10 * 8 * 4 * 4);
/// let mut net = Cnn::new();
/// let mut v = net.view();
/// v.init_orthogonal(&mut agd_core::SplitMix64::new(3));
/// v.input_mut(2).unwrap().fill(0.5);
/// let report = v.train_step(&Agd::new(), Loss::Xent, &[1, 7]).unwrap();
/// assert!(report.step.eta > 0.0);
/// ```
#[macro_export]
macro_rules! conv_network {
    ($(#[$meta:meta])* $vis:vis $name:ident : $t:ty = [$c:expr, $h:expr, $w:expr] => [$($l:expr),+ $(,)?], batch $b:expr) => {
        $(#[$meta])*
        #[doc = concat!("A static conv network, input `[", stringify!($c, $h, $w), "]`, layers `", stringify!($($l),+), "`, batch capacity ", stringify!($b), ".")]
        $vis struct $name {
            weights: [$t; $crate::spec::param_count(&$name::LAYERS)],
            grads: [$t; $crate::spec::param_count(&$name::LAYERS)],
            acts: [$t; $crate::spec::act_count(&$name::LAYERS, $b)],
            deltas: [$t; $crate::spec::delta_count(&$name::LAYERS, $b)],
            scratch: [$t; $crate::spec::scratch_count(&$name::LAYERS)],
            norms: [$t; $crate::spec::norm_count(&$name::LAYERS)],
        }

        const _: () = assert!(
            $crate::spec::layers_ok(&$name::LAYERS) && $b > 0,
            "conv_network!: need 1 to MAX_DEPTH layers and a non-zero batch"
        );

        #[allow(dead_code)]
        impl $name {
            /// The layers, input shapes filled in.
            pub const LAYERS: [$crate::spec::LayerSpec; { [$(stringify!($l)),+].len() }] = {
                #[allow(unused_imports)]
                use $crate::spec::{conv, dense};
                $crate::spec::chain([$c, $h, $w], [$($l),+])
            };
            /// Most samples per batch.
            pub const BATCH: usize = $b;
            /// Number of weights.
            pub const PARAMS: usize = $crate::spec::param_count(&Self::LAYERS);
            /// Bytes of RAM the network and all its training buffers take.
            pub const RAM_BYTES: usize = core::mem::size_of::<Self>();

            /// A network with all-zero weights (initialise it before training); `const`, so it
            /// can be placed in a `static`.
            pub const fn new() -> Self {
                const Z: $t = <$t as $crate::Element>::ZERO;
                $name {
                    weights: [Z; $crate::spec::param_count(&$name::LAYERS)],
                    grads: [Z; $crate::spec::param_count(&$name::LAYERS)],
                    acts: [Z; $crate::spec::act_count(&$name::LAYERS, $b)],
                    deltas: [Z; $crate::spec::delta_count(&$name::LAYERS, $b)],
                    scratch: [Z; $crate::spec::scratch_count(&$name::LAYERS)],
                    norms: [Z; $crate::spec::norm_count(&$name::LAYERS)],
                }
            }
        }

        impl $crate::ConvNetwork<$t> for $name {
            fn view(&mut self) -> $crate::ConvNetMut<'_, $t> {
                $crate::ConvNetMut::__from_static(
                    &Self::LAYERS,
                    $b,
                    $crate::ConvBuffers {
                        weights: &mut self.weights,
                        grads: &mut self.grads,
                        acts: &mut self.acts,
                        deltas: &mut self.deltas,
                        scratch: &mut self.scratch,
                        norms: &mut self.norms,
                    },
                )
            }
        }
    };
}
