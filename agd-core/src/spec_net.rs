//! A network of convolution and dense layers over borrowed buffers: forward, loss, backward
//! and the AGD step, the counterpart of [`crate::NetMut`] for [`crate::spec`] layer lists.
//!
//! Dense layers run the very kernels [`crate::NetMut`] runs; conv layers run
//! [`crate::conv::Conv2d`]; `sqrt(2)·relu` sits between every two layers.

use agd_simd::{Element, dot, matmul_nn, matmul_nt, matmul_tn_sum_sq};

use crate::agd::{Agd, StepReport};
use crate::conv::Part;
use crate::error::Error;
use crate::flat::{FlatNet, check_len};
use crate::layout::MAX_DEPTH;
use crate::loss::Loss;
use crate::net::{TrainReport, activate, activate_backward};
use crate::spec::{self, LayerSpec, SpecLayout};

/// Samples per part when a network runs its leading conv layers part by part
/// ([`ConvNetMut::forward`]): few enough that a part's activations and errors between those
/// layers are still in cache when the next layer reads them (about 170 KB per sample on the
/// issue's MNIST CNN). On that CNN (batch 128, one thread) parts of 8, 16 and 32 were each
/// faster than the whole batch, 32 by a little the fastest (`docs/benchmark-history.md`).
pub const CONV_PART: usize = 32;

/// The parts a batch's leading conv layers run in ([`ConvNetMut::forward`],
/// [`ConvNetMut::backward`]): `(first sample, samples, which part)`, [`CONV_PART`] samples
/// each but the last, in order.
fn parts(batch: usize) -> impl Iterator<Item = (usize, usize, Part)> {
    (0..batch).step_by(CONV_PART).map(move |b0| {
        let n = CONV_PART.min(batch - b0);
        let part = Part {
            first: b0 == 0,
            last: b0 + n == batch,
        };
        (b0, n, part)
    })
}

/// The buffers of a [`ConvNetMut`], each sized by the `const fn` of [`crate::spec`] named
/// after it.
#[derive(Debug)]
pub struct ConvBuffers<'a, T> {
    /// All weights, layer after layer ([`spec::param_count`]).
    pub weights: &'a mut [T],
    /// All gradients, same layout as the weights.
    pub grads: &'a mut [T],
    /// Input batch and every layer's output ([`spec::act_count`]).
    pub acts: &'a mut [T],
    /// Every layer's output error ([`spec::delta_count`]).
    pub deltas: &'a mut [T],
    /// Room for the conv layers' unfoldings: at least [`spec::scratch_count`] (one sample per
    /// product); a larger one lets them take more samples per product
    /// ([`spec::scratch_count_for`]).
    pub scratch: &'a mut [T],
    /// The gradient norms of the last step, per dense layer and per conv kernel position
    /// ([`spec::norm_count`]).
    pub norms: &'a mut [T],
}

/// A conv + dense network over borrowed buffers (see the module docs).
#[derive(Debug)]
pub struct ConvNetMut<'a, T> {
    layout: SpecLayout<'a>,
    capacity: usize,
    b: ConvBuffers<'a, T>,
}

impl<'a, T: Element> ConvNetMut<'a, T> {
    /// Checks the layers, and every buffer against them and the batch capacity.
    pub fn new(
        layers: &'a [LayerSpec],
        capacity: usize,
        buffers: ConvBuffers<'a, T>,
    ) -> Result<Self, Error> {
        let layout = SpecLayout::new(layers)?;
        if capacity == 0 {
            return Err(Error::EmptyBatch);
        }
        let b = &buffers;
        check_len("weights", layout.param_count(), b.weights.len())?;
        check_len("grads", layout.param_count(), b.grads.len())?;
        check_len(
            "activations",
            spec::act_count(layers, capacity),
            b.acts.len(),
        )?;
        check_len(
            "deltas",
            spec::delta_count(layers, capacity),
            b.deltas.len(),
        )?;
        check_len("scratch", layout.scratch_count(), b.scratch.len())?;
        check_len("norms", layout.norm_count(), b.norms.len())?;
        Ok(ConvNetMut {
            layout,
            capacity,
            b: buffers,
        })
    }

    /// For [`crate::conv_network!`]: the sizes were checked at compile time.
    #[doc(hidden)]
    pub fn __from_static(
        layers: &'a [LayerSpec],
        capacity: usize,
        buffers: ConvBuffers<'a, T>,
    ) -> Self {
        ConvNetMut {
            layout: SpecLayout::__from_checked(layers),
            capacity,
            b: buffers,
        }
    }

    /// The layers and offsets.
    pub fn layout(&self) -> SpecLayout<'a> {
        self.layout
    }

    /// Most samples per batch.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// All weights, layer after layer.
    pub fn weights(&self) -> &[T] {
        self.b.weights
    }

    /// All weights, mutable (to load a checkpoint or golden start).
    pub fn weights_mut(&mut self) -> &mut [T] {
        self.b.weights
    }

    /// The weights (mutable) and the gradients of the last backward pass, for an optimiser
    /// other than AGD (the host's baselines).
    pub fn weights_and_grads(&mut self) -> (&mut [T], &[T]) {
        (self.b.weights, self.b.grads)
    }

    /// Layer `k`'s weights (`[c_out, c_in, kh, kw]` or `[d_out, d_in]`, row-major).
    pub fn layer_weights(&self, k: usize) -> &[T] {
        &self.b.weights[self.layout.weight_range(k)]
    }

    /// Layer `k`'s gradient from the last backward pass.
    pub fn layer_grads(&self, k: usize) -> &[T] {
        &self.b.grads[self.layout.weight_range(k)]
    }

    /// Layer `k`'s gradient norms from the last step: one for a dense layer, `kh·kw`
    /// (row-major `||g[:, :, i, j]||_F`) for a conv layer.
    pub fn grad_norms(&self, k: usize) -> &[T] {
        &self.b.norms[self.layout.norm_range(k)]
    }

    /// The first `batch` samples of the input block (`batch x f_0`, each sample NCHW), to fill
    /// in place.
    pub fn input_mut(&mut self, batch: usize) -> Result<&mut [T], Error> {
        FlatNet::input_mut(self, batch)
    }

    /// Copies a batch of samples into the input block and returns the batch size.
    pub fn set_input(&mut self, samples: &[T]) -> Result<usize, Error> {
        FlatNet::set_input(self, samples)
    }

    /// Block `k` of the activations for `batch` samples (0 = input, `L` = outputs).
    pub fn activations(&self, k: usize, batch: usize) -> &[T] {
        FlatNet::activations(self, k, batch)
    }

    /// Layer `k`'s back-propagated error `∂loss/∂z_k` for `batch` samples.
    pub fn deltas(&self, k: usize, batch: usize) -> &[T] {
        FlatNet::deltas(self, k, batch)
    }

    /// The network outputs (`batch x f_L`) from the last forward pass.
    pub fn outputs(&self, batch: usize) -> &[T] {
        FlatNet::outputs(self, batch)
    }

    /// Forward pass over the first `batch` samples of the input block, `sqrt(2)·relu` after
    /// every layer but the last. Returns the outputs.
    ///
    /// The leading conv layers run [`CONV_PART`] samples at a time, every one of them on a part
    /// before the next part (the results are the same: each sample's outputs are its own).
    pub fn forward(&mut self, batch: usize) -> Result<&[T], Error> {
        self.check_batch(batch)?;
        let split = self.split_layers(batch);
        if split > 0 {
            for (b0, n, _) in parts(batch) {
                for k in 0..split {
                    self.forward_layer(k, b0, n)?;
                }
            }
        }
        for k in split..self.layout.depth() {
            self.forward_layer(k, 0, batch)?;
        }
        Ok(self.outputs(batch))
    }

    /// How many leading layers run part by part: the leading conv layers, when the batch is
    /// larger than a part.
    fn split_layers(&self, batch: usize) -> usize {
        if batch <= CONV_PART {
            return 0;
        }
        self.layout
            .layers()
            .iter()
            .take_while(|l| matches!(l, LayerSpec::Conv(_)))
            .count()
    }

    /// Layer `k`'s forward pass over samples `b0 .. b0 + n`.
    fn forward_layer(&mut self, k: usize, b0: usize, n: usize) -> Result<(), Error> {
        let (layout, cap) = (self.layout, self.capacity);
        let depth = layout.depth();
        let (f_in, f_out) = (layout.features(k), layout.features(k + 1));
        let (before, after) = self.b.acts.split_at_mut(layout.act_offset(k + 1, cap));
        let h = &before[layout.act_offset(k, cap) + b0 * f_in..][..n * f_in];
        let z = &mut after[b0 * f_out..][..n * f_out];
        let w = &self.b.weights[layout.weight_range(k)];
        match layout.layer(k) {
            // z_n = W h_n for every sample: Z = H Wᵀ.
            LayerSpec::Dense { .. } => {
                let w = dense_weights(layout, k, w, self.b.scratch);
                matmul_nt(n, f_out, f_in, T::ONE, h, w, T::ZERO, z)?
            }
            LayerSpec::Conv(c) => c.forward_with(n, w, h, z, self.b.scratch, layout.conv_io(k))?,
        }
        // A convolution applies the activation itself, chunk by chunk ([`spec::conv_io`]).
        if k + 1 < depth && matches!(layout.layer(k), LayerSpec::Dense { .. }) {
            activate(z);
        }
        Ok(())
    }

    /// Loss of the last forward pass against `targets`; writes `∂loss/∂out` into the last
    /// error block.
    pub fn loss_grad(&mut self, loss: Loss, targets: &[usize]) -> Result<T, Error> {
        FlatNet::loss_grad(self, loss, targets)
    }

    /// Full backward pass: every error block, and every layer's weight gradient into the
    /// gradient buffer.
    ///
    /// The leading conv layers run part by part as in [`ConvNetMut::forward`], each layer's
    /// weight gradient summed over the parts in order: sample after sample, as over the whole
    /// batch.
    pub fn backward(&mut self, batch: usize) -> Result<(), Error> {
        self.backward_sums(batch).map(|_| ())
    }

    /// [`ConvNetMut::backward`] that also returns, for every layer with a single norm, the
    /// plain `Σ g²` of its gradient (forward order, the first `depth` entries; a dense layer's
    /// is formed as the gradient is written), for [`Agd::step_spec_with_sums`].
    fn backward_sums(&mut self, batch: usize) -> Result<[T; MAX_DEPTH], Error> {
        self.check_batch(batch)?;
        let split = self.split_layers(batch);
        let whole = Part {
            first: true,
            last: true,
        };
        let mut sums = [T::ZERO; MAX_DEPTH];
        for k in (split..self.layout.depth()).rev() {
            sums[k] = self.backward_layer(k, 0, batch, whole)?;
        }
        if split > 0 {
            for (b0, n, part) in parts(batch) {
                for k in (0..split).rev() {
                    self.backward_layer(k, b0, n, part)?;
                }
            }
        }
        for (k, sum) in sums.iter_mut().enumerate().take(self.layout.depth()) {
            if let LayerSpec::Conv(c) = self.layout.layer(k)
                && c.kernel_positions() == 1
            {
                // A 1 x 1 kernel: one norm over the whole gradient, once every part is in.
                let g = &self.b.grads[self.layout.weight_range(k)];
                *sum = dot(g, g);
            }
        }
        Ok(sums)
    }

    /// Layer `k`'s backward pass over samples `b0 .. b0 + n` (a dense layer: the whole batch);
    /// returns a dense layer's plain `Σ g²` (zero for a conv layer).
    fn backward_layer(&mut self, k: usize, b0: usize, n: usize, part: Part) -> Result<T, Error> {
        let (layout, cap) = (self.layout, self.capacity);
        let (f_in, f_out) = (layout.features(k), layout.features(k + 1));
        let h = &self.b.acts[layout.act_offset(k, cap) + b0 * f_in..][..n * f_in];
        let (before, after) = self.b.deltas.split_at_mut(layout.delta_offset(k, cap));
        let delta = &after[b0 * f_out..][..n * f_out];
        let w = &self.b.weights[layout.weight_range(k)];
        let g = &mut self.b.grads[layout.weight_range(k)];
        let mut prev = if k > 0 {
            Some(&mut before[layout.delta_offset(k - 1, cap) + b0 * f_in..][..n * f_in])
        } else {
            None
        };
        match layout.layer(k) {
            LayerSpec::Dense { .. } => {
                // g_k = Σ_n δ_n h_nᵀ, δ_prev = Wᵀ δ; after a convolution, over its
                // channels-last output, through the scratch (see `spec::interleaved_input`).
                let reorder = spec::interleaved_input(layout.layers(), k);
                let sum = match reorder {
                    Some(c) => {
                        let gi = &mut self.b.scratch[..g.len()];
                        let sum = matmul_tn_sum_sq(f_out, f_in, n, T::ONE, delta, h, T::ZERO, gi)?;
                        c.cols_to_planar(f_out, gi, g);
                        sum
                    }
                    None => matmul_tn_sum_sq(f_out, f_in, n, T::ONE, delta, h, T::ZERO, g)?,
                };
                if let Some(prev) = prev.as_deref_mut() {
                    let w = dense_weights(layout, k, w, self.b.scratch);
                    matmul_nn(n, f_in, f_out, T::ONE, delta, w, T::ZERO, prev)?;
                    activate_backward(prev, h);
                }
                Ok(sum)
            }
            LayerSpec::Conv(c) => {
                c.backward_part(
                    n,
                    w,
                    h,
                    delta,
                    Some(g),
                    prev,
                    self.b.scratch,
                    layout.conv_io(k),
                    part,
                )?;
                Ok(T::ZERO)
            }
        }
    }

    /// Correct predictions of the last forward pass.
    pub fn count_correct(&self, targets: &[usize]) -> usize {
        FlatNet::count_correct(self, targets)
    }

    /// Forward, loss and backward for a batch already in the input block: leaves the
    /// gradients in the gradient buffer and returns `(loss, correct)`.
    pub fn compute_grads(&mut self, loss: Loss, targets: &[usize]) -> Result<(T, usize), Error> {
        FlatNet::compute_grads(self, loss, targets)
    }

    /// The AGD step ([`Agd::step_spec`]) on the gradients of the last backward pass; the
    /// per-slice norms land in [`ConvNetMut::grad_norms`].
    pub fn step(&mut self, agd: &Agd<T>) -> Result<StepReport<T>, Error> {
        agd.step_spec(self.layout, self.b.weights, self.b.grads, self.b.norms)
    }

    /// One training step on a batch already in the input block. On any error the weights are
    /// exactly as before.
    pub fn train_step(
        &mut self,
        agd: &Agd<T>,
        loss: Loss,
        targets: &[usize],
    ) -> Result<TrainReport<T>, Error> {
        // compute_grads and step, with the single-norm layers' sums of squares taken with
        // their gradients.
        let (value, correct, sums) = FlatNet::compute_grads_sums(self, loss, targets)?;
        let step = agd.step_spec_with_sums(
            self.layout,
            self.b.weights,
            self.b.grads,
            self.b.norms,
            &sums[..self.layout.depth()],
        )?;
        Ok(TrainReport {
            loss: value,
            correct,
            step,
        })
    }

    /// Orthogonal initialisation of every layer (see [`crate::init::orthogonal_spec`]).
    pub fn init_orthogonal<R: rand_core::Rng + ?Sized>(&mut self, rng: &mut R) {
        crate::init::orthogonal_spec(self.layout, self.b.weights, rng);
    }
}

impl<'a, T: Element> FlatNet<T> for ConvNetMut<'a, T> {
    type Layout = SpecLayout<'a>;
    fn blocks(&self) -> (SpecLayout<'a>, usize, &[T], &[T]) {
        (self.layout, self.capacity, &*self.b.acts, &*self.b.deltas)
    }
    fn blocks_mut(&mut self) -> (SpecLayout<'a>, usize, &mut [T], &mut [T]) {
        (
            self.layout,
            self.capacity,
            &mut *self.b.acts,
            &mut *self.b.deltas,
        )
    }
    fn forward_pass(&mut self, batch: usize) -> Result<(), Error> {
        self.forward(batch).map(|_| ())
    }
    fn backward_pass(&mut self, batch: usize) -> Result<[T; MAX_DEPTH], Error> {
        self.backward_sums(batch)
    }
}

/// Dense layer `k`'s weights `w` as its products read them: `w` itself, or, after a
/// convolution whose channels-last output it reads, a copy in `scratch` with the columns in
/// that order ([`spec::interleaved_input`]).
fn dense_weights<'s, T: Element>(
    layout: SpecLayout<'_>,
    k: usize,
    w: &'s [T],
    scratch: &'s mut [T],
) -> &'s [T] {
    match spec::interleaved_input(layout.layers(), k) {
        Some(c) => {
            let wi = &mut scratch[..w.len()];
            c.cols_to_interleaved(layout.features(k + 1), w, wi);
            wi
        }
        None => w,
    }
}

/// Anything that owns a conv network's buffers and can lend them as a [`ConvNetMut`].
pub trait ConvNetwork<T: Element> {
    /// The buffers as one view; all maths goes through it.
    fn view(&mut self) -> ConvNetMut<'_, T>;
}
