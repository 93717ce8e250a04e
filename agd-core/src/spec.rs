//! Networks that mix convolution and dense layers: the layer list, and where each layer's
//! weights, activations, errors and gradient norms sit in the flat buffers.
//!
//! A sample is always a flat vector. The network's input (and a convolution's output when it is
//! the network's output) is NCHW per sample, flattened row-major over (channel, row, column) —
//! exactly torch's `flatten` — so "flatten" needs no layer. Every other convolution output,
//! and the errors that come back to it, are channels-last (`h x w x c` per sample,
//! [`conv_io`]), which makes the next convolution's unfolding a run of copies. A dense layer
//! after a convolution keeps its weights in torch's order (`[d_out, c·h·w]`, what checkpoints
//! and the golden files hold) and runs on a copy with the columns reordered to match
//! ([`interleaved_input`]): only the values' order differs, not the maths.
//! The buffers follow [`crate::layout`] with the widths `[f_0, …, f_L]` of the features
//! between layers: activation block `k` (0 = input) is `capacity x f_k`, error block `k` is
//! layer `k`'s output error `capacity x f_{k+1}`. Weights follow each other, conv `[c_out,
//! c_in, kh, kw]` and dense `[d_out, d_in]`, row-major. Gradient norms: one per dense layer, `kh·kw` per conv.
//!
//! ```
//! use agd_core::spec::{chain, conv, dense, LayerSpec, SpecLayout};
//! // 8x8 grey images → conv 8 3x3 pad 1 → conv 16 3x3 stride 2 pad 1 → flatten → dense 10
//! const NET: [LayerSpec; 3] = chain([1, 8, 8], [conv(8, 3, 1, 1), conv(16, 3, 2, 1), dense(10)]);
//! let layout = SpecLayout::new(&NET).unwrap();
//! assert_eq!(layout.features(1), 8 * 8 * 8);
//! assert_eq!(layout.features(2), 16 * 4 * 4);
//! assert_eq!(layout.param_count(), 8 * 9 + 16 * 8 * 9 + 10 * 256);
//! ```

use agd_simd::Element;

use crate::conv::{Conv2d, Io, Order};
use crate::error::Error;
use crate::layout::{MAX_DEPTH, product, sum};

/// One layer of a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerSpec {
    /// Dense `z = W h`, `W` is `outputs x inputs`.
    Dense {
        /// Input features `d_in`.
        inputs: usize,
        /// Output features `d_out`.
        outputs: usize,
    },
    /// 2-D convolution (cross-correlation), weight `[c_out, c_in, kh, kw]`.
    Conv(Conv2d),
}

/// A convolution with `c_out` filters of `k x k`, its input shape left for [`chain`] to fill.
pub const fn conv(c_out: usize, k: usize, stride: usize, pad: usize) -> LayerSpec {
    LayerSpec::Conv(Conv2d {
        c_in: 0,
        c_out,
        kh: k,
        kw: k,
        h: 0,
        w: 0,
        stride,
        pad,
    })
}

/// A dense layer with `outputs` units, its input width left for [`chain`] to fill.
pub const fn dense(outputs: usize) -> LayerSpec {
    LayerSpec::Dense { inputs: 0, outputs }
}

impl LayerSpec {
    /// Input features per sample.
    pub const fn in_features(&self) -> usize {
        match self {
            LayerSpec::Dense { inputs, .. } => *inputs,
            LayerSpec::Conv(c) => c.in_features(),
        }
    }

    /// Output features per sample.
    pub const fn out_features(&self) -> usize {
        match self {
            LayerSpec::Dense { outputs, .. } => *outputs,
            LayerSpec::Conv(c) => c.out_features(),
        }
    }

    /// Number of weights.
    pub const fn param_count(&self) -> usize {
        match self {
            LayerSpec::Dense { inputs, outputs } => *inputs * *outputs,
            LayerSpec::Conv(c) => c.param_count(),
        }
    }

    /// Gradient norms AGD takes for this layer: 1 (dense) or `kh·kw` (conv).
    pub const fn norm_count(&self) -> usize {
        match self {
            LayerSpec::Dense { .. } => 1,
            LayerSpec::Conv(c) => c.kernel_positions(),
        }
    }

    /// Scratch elements the layer needs for `chunk` samples per product with the orders `io`
    /// (conv: [`Conv2d::scratch_for`]; dense: none).
    pub const fn scratch_for(&self, chunk: usize, io: Io) -> usize {
        match self {
            LayerSpec::Dense { .. } => 0,
            LayerSpec::Conv(c) => c.scratch_for(chunk, io),
        }
    }

    /// Whether every size is non-zero (and a convolution fits its input).
    pub const fn is_valid(&self) -> bool {
        match self {
            LayerSpec::Dense { inputs, outputs } => *inputs > 0 && *outputs > 0,
            LayerSpec::Conv(c) => c.is_valid(),
        }
    }

    /// Whether the layer's sizes fit in `usize` (a dense layer's weight count; a
    /// convolution's, see [`Conv2d::fits`]).
    pub const fn fits(&self) -> bool {
        match self {
            LayerSpec::Dense { inputs, outputs } => inputs.checked_mul(*outputs).is_some(),
            LayerSpec::Conv(c) => c.fits(),
        }
    }

    /// `s_k`: `sqrt(d_out/d_in)` (dense) or `sqrt(c_out/c_in)/sqrt(kh·kw)` (conv).
    pub fn scale<T: Element>(&self) -> T {
        match self {
            LayerSpec::Dense { inputs, outputs } => {
                T::from_f64(libm::sqrt(*outputs as f64 / *inputs as f64))
            }
            LayerSpec::Conv(c) => c.scale(),
        }
    }
}

/// Fills in every layer's input shape from the input `[channels, height, width]`, in place.
/// A dense layer's output counts as `outputs` channels of 1x1. Fails with
/// [`Error::InvalidLayer`] on the first layer that does not fit.
pub const fn try_chain(input: [usize; 3], layers: &mut [LayerSpec]) -> Result<(), Error> {
    let [mut c, mut h, mut w] = input;
    if layers.is_empty() || layers.len() > MAX_DEPTH {
        return Err(Error::InvalidWidths);
    }
    let mut k = 0;
    while k < layers.len() {
        match &mut layers[k] {
            LayerSpec::Dense { inputs, outputs } => {
                *inputs = match product(&[c, h, w]) {
                    Some(n) => n,
                    None => return Err(Error::TooLarge),
                };
                (c, h, w) = (*outputs, 1, 1);
            }
            LayerSpec::Conv(conv) => {
                conv.c_in = c;
                conv.h = h;
                conv.w = w;
                if !conv.fits() {
                    return Err(Error::TooLarge);
                }
                (c, h, w) = (conv.c_out, conv.out_h(), conv.out_w());
            }
        }
        if !layers[k].is_valid() {
            return Err(Error::InvalidLayer { layer: k });
        }
        k += 1;
    }
    Ok(())
}

/// [`try_chain`] for a `const`: a layer that does not fit is a compile error.
pub const fn chain<const N: usize>(input: [usize; 3], layers: [LayerSpec; N]) -> [LayerSpec; N] {
    let mut layers = layers;
    if try_chain(input, &mut layers).is_err() {
        panic!("agd_core::spec::chain: a layer does not fit the shape coming into it");
    }
    layers
}

/// Number of weights of all layers.
pub const fn param_count(layers: &[LayerSpec]) -> usize {
    let mut n = 0;
    let mut k = 0;
    while k < layers.len() {
        n += layers[k].param_count();
        k += 1;
    }
    n
}

/// Features between layers summed over blocks `from..to` (block 0 = input).
const fn features_sum(layers: &[LayerSpec], from: usize, to: usize) -> usize {
    let mut n = 0;
    let mut k = from;
    while k < to {
        n += if k == 0 {
            layers[0].in_features()
        } else {
            layers[k - 1].out_features()
        };
        k += 1;
    }
    n
}

/// Elements of the activation buffer: `capacity x (f_0 + … + f_L)`.
pub const fn act_count(layers: &[LayerSpec], capacity: usize) -> usize {
    if layers.is_empty() {
        return 0;
    }
    features_sum(layers, 0, layers.len() + 1) * capacity
}

/// Elements of the error buffer: `capacity x (f_1 + … + f_L)`.
pub const fn delta_count(layers: &[LayerSpec], capacity: usize) -> usize {
    if layers.is_empty() {
        return 0;
    }
    features_sum(layers, 1, layers.len() + 1) * capacity
}

/// How layer `k` (a convolution) meets its neighbours in a network. Its output is
/// channels-last unless it is the network's output (torch's planar order, NCHW, what
/// `flatten` means); a dense layer after it reads that order through reordered weights
/// ([`interleaved_input`]). Its input is planar at the network's input and channels-last
/// otherwise: a dense layer's output is `outputs` channels of 1x1, the same in both orders.
/// It applies the `sqrt(2)·relu` after it (unless it is the last layer) and the derivative
/// of the one before it (unless it is the first).
pub const fn conv_io(layers: &[LayerSpec], k: usize) -> Io {
    Io {
        activate_output: k + 1 < layers.len(),
        activated_input: k > 0,
        input: if k == 0 {
            Order::Planar
        } else {
            Order::Interleaved
        },
        output: if k + 1 < layers.len() {
            Order::Interleaved
        } else {
            Order::Planar
        },
    }
}

/// The convolution right before dense layer `k`, when the dense layer reads its channels-last
/// output in another order than torch's `flatten` (several channels and several positions):
/// the dense layer then runs on a copy of its weights with the columns in that order, in the
/// scratch ([`Conv2d::cols_to_interleaved`]); its stored weights and gradient keep torch's
/// order.
pub const fn interleaved_input(layers: &[LayerSpec], k: usize) -> Option<Conv2d> {
    if k == 0 || k >= layers.len() {
        return None;
    }
    match (&layers[k - 1], &layers[k]) {
        (LayerSpec::Conv(c), LayerSpec::Dense { .. }) if c.reorders_output() => Some(*c),
        _ => None,
    }
}

/// Scratch elements layer `k` needs for `chunk` samples per product: a conv layer's
/// ([`Conv2d::scratch_for`]), or a dense layer's reordered weights ([`interleaved_input`]).
const fn layer_scratch(layers: &[LayerSpec], k: usize, chunk: usize) -> usize {
    match layers[k] {
        LayerSpec::Conv(c) => c.scratch_for(chunk, conv_io(layers, k)),
        LayerSpec::Dense { .. } if interleaved_input(layers, k).is_some() => {
            layers[k].param_count()
        }
        LayerSpec::Dense { .. } => 0,
    }
}

/// Elements of the scratch buffer for `chunk` samples per product: the most any layer needs
/// (a conv layer's unfolding, [`Conv2d::scratch_for`], or a dense layer's reordered weights,
/// [`interleaved_input`]). A larger scratch only lets the conv layers take more samples per
/// product; the results are the same.
pub const fn scratch_count_for(layers: &[LayerSpec], chunk: usize) -> usize {
    let mut n = 0;
    let mut k = 0;
    while k < layers.len() {
        let s = layer_scratch(layers, k, chunk);
        if s > n {
            n = s;
        }
        k += 1;
    }
    n
}

/// Elements of the smallest scratch buffer, one sample per product: what a microcontroller
/// lends.
pub const fn scratch_count(layers: &[LayerSpec]) -> usize {
    scratch_count_for(layers, 1)
}

/// Number of gradient norms (one per dense layer, `kh·kw` per conv layer).
pub const fn norm_count(layers: &[LayerSpec]) -> usize {
    let mut n = 0;
    let mut k = 0;
    while k < layers.len() {
        n += layers[k].norm_count();
        k += 1;
    }
    n
}

/// Whether the layers are 1 to `MAX_DEPTH`, each valid, each reading what the previous writes.
pub const fn layers_ok(layers: &[LayerSpec]) -> bool {
    check_layers(layers).is_ok()
}

const fn check_layers(layers: &[LayerSpec]) -> Result<(), Error> {
    if layers.is_empty() {
        return Err(Error::InvalidWidths);
    }
    if layers.len() > MAX_DEPTH {
        return Err(Error::TooDeep {
            depth: layers.len(),
            max: MAX_DEPTH,
        });
    }
    let mut k = 0;
    while k < layers.len() {
        if !layers[k].fits() {
            return Err(Error::TooLarge);
        }
        if !layers[k].is_valid()
            || (k > 0 && layers[k].in_features() != layers[k - 1].out_features())
        {
            return Err(Error::InvalidLayer { layer: k });
        }
        k += 1;
    }
    // The buffers' per-sample totals: every layer's weights, scratch and norms, every
    // block's features.
    let mut total = 0usize;
    k = 0;
    while k < layers.len() {
        let l = &layers[k];
        let sizes = [
            total,
            l.param_count(),
            l.in_features(),
            l.out_features(),
            l.norm_count(),
            layer_scratch(layers, k, 1),
        ];
        total = match sum(&sizes) {
            Some(t) => t,
            None => return Err(Error::TooLarge),
        };
        k += 1;
    }
    Ok(())
}

/// A checked layer list with the offsets derived from it (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct SpecLayout<'a> {
    layers: &'a [LayerSpec],
}

impl<'a> SpecLayout<'a> {
    /// Checks the layers: 1 to `MAX_DEPTH`, every size non-zero, every conv fitting its input,
    /// and every layer's input features equal to the previous layer's outputs.
    pub const fn new(layers: &'a [LayerSpec]) -> Result<Self, Error> {
        match check_layers(layers) {
            Ok(()) => Ok(SpecLayout { layers }),
            Err(e) => Err(e),
        }
    }

    /// Layers already checked (at compile time, by `conv_network!`).
    #[doc(hidden)]
    pub const fn __from_checked(layers: &'a [LayerSpec]) -> Self {
        SpecLayout { layers }
    }

    /// The layers.
    pub fn layers(&self) -> &'a [LayerSpec] {
        self.layers
    }

    /// Layer `k`.
    pub fn layer(&self, k: usize) -> &'a LayerSpec {
        &self.layers[k]
    }

    /// `L`, the number of weight tensors (the paper's depth).
    pub fn depth(&self) -> usize {
        self.layers.len()
    }

    /// The orders layer `k` (a convolution) reads and writes ([`conv_io`]).
    pub fn conv_io(&self, k: usize) -> Io {
        conv_io(self.layers, k)
    }

    /// Features of activation block `k`: `f_0` is the input, `f_L` the outputs.
    pub fn features(&self, k: usize) -> usize {
        features_sum(self.layers, k, k + 1)
    }

    /// Input features per sample `f_0`.
    pub fn inputs(&self) -> usize {
        self.features(0)
    }

    /// Outputs per sample `f_L` (number of classes).
    pub fn outputs(&self) -> usize {
        self.features(self.depth())
    }

    /// Total number of weights.
    pub fn param_count(&self) -> usize {
        param_count(self.layers)
    }

    /// Total number of gradient norms.
    pub fn norm_count(&self) -> usize {
        norm_count(self.layers)
    }

    /// Scratch elements needed.
    pub fn scratch_count(&self) -> usize {
        scratch_count(self.layers)
    }

    /// Index range of layer `k`'s weights in the flat weight (or gradient) buffer.
    pub fn weight_range(&self, k: usize) -> core::ops::Range<usize> {
        let start = param_count(&self.layers[..k]);
        start..start + self.layers[k].param_count()
    }

    /// Index range of layer `k`'s gradient norms in the flat norm buffer.
    pub fn norm_range(&self, k: usize) -> core::ops::Range<usize> {
        let start = norm_count(&self.layers[..k]);
        start..start + self.layers[k].norm_count()
    }

    /// Offset of activation block `k` (0 = input) in a buffer of this capacity.
    pub fn act_offset(&self, k: usize, capacity: usize) -> usize {
        features_sum(self.layers, 0, k) * capacity
    }

    /// Offset of layer `k`'s error block in a buffer of this capacity.
    pub fn delta_offset(&self, k: usize, capacity: usize) -> usize {
        features_sum(self.layers, 1, k + 1) * capacity
    }

    /// `s_k` of layer `k` (see [`LayerSpec::scale`]).
    pub fn scale<T: Element>(&self, k: usize) -> T {
        self.layers[k].scale()
    }
}
