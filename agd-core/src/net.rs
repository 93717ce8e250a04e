//! A bias-free dense network over borrowed buffers: forward, loss, backward.
//!
//! [`NetMut`] is the one implementation of the maths. Whoever owns the buffers — a static
//! network declared with [`crate::dense_network!`] (arrays fixed at compile time) or a host
//! network sized at run time (`Vec`s) — hands them to a `NetMut` and gets the same code path.

use agd_simd::{Element, matmul_nn, matmul_nt, matmul_tn_sum_sq};

use crate::agd::{Agd, StepReport};
use crate::error::Error;
use crate::flat::{FlatNet, check_len};
use crate::layout::{Layout, MAX_DEPTH, act_count, delta_count};
use crate::loss::Loss;

/// `sqrt(2)`: the hidden activation is `h = sqrt(2)·relu(z)`, which keeps `E||h||² = E||z||²`.
pub(crate) fn sqrt2<T: Element>() -> T {
    T::from_f64(core::f64::consts::SQRT_2)
}

/// `h = sqrt(2)·relu(z)` in place, with relu(NaN) kept NaN so bad input is caught at the loss.
pub(crate) fn activate<T: Element>(z: &mut [T]) {
    let s2 = sqrt2::<T>();
    for v in z.iter_mut() {
        // NaN·sqrt(2) is NaN, so one select covers all three cases and the loop vectorises.
        let x = *v;
        *v = if x <= T::ZERO { T::ZERO } else { x * s2 };
    }
}

/// `δ_z = δ_h · ∂h/∂z` in place, from the layer's output `h`: `∂h/∂z = sqrt(2)·1[z > 0]`, and
/// `h > 0` exactly when `z > 0` (relu'(0) = 0, as torch).
pub(crate) fn activate_backward<T: Element>(delta: &mut [T], h: &[T]) {
    let s2 = sqrt2::<T>();
    for (d, &hv) in delta.iter_mut().zip(h) {
        *d = if hv > T::ZERO { *d * s2 } else { T::ZERO };
    }
}

/// A dense network over borrowed buffers (see the module docs).
///
/// Buffers, all flat and row-major (see [`crate::layout`]):
/// `weights` and `grads` hold the `L` matrices one after the other (`grads` may be empty for a
/// network trained with the buffer-free step); `acts` holds the input batch and every layer's
/// output for up to `capacity` samples; `deltas` holds every layer's back-propagated error.
#[derive(Debug)]
pub struct NetMut<'a, T> {
    layout: Layout<'a>,
    capacity: usize,
    weights: &'a mut [T],
    grads: &'a mut [T],
    acts: &'a mut [T],
    deltas: &'a mut [T],
}

/// What one training step did.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainReport<T> {
    /// Batch-mean loss before the step.
    pub loss: T,
    /// Correctly classified samples of the batch, before the step.
    pub correct: usize,
    /// The AGD step's report.
    pub step: StepReport<T>,
}

impl<'a, T: Element> NetMut<'a, T> {
    /// Checks every buffer against the widths and the batch capacity. `grads` must be either
    /// the size of `weights` or empty (no gradient buffer).
    pub fn new(
        widths: &'a [usize],
        capacity: usize,
        weights: &'a mut [T],
        grads: &'a mut [T],
        acts: &'a mut [T],
        deltas: &'a mut [T],
    ) -> Result<Self, Error> {
        let layout = Layout::new(widths)?;
        if capacity == 0 {
            return Err(Error::EmptyBatch);
        }
        check_len("weights", layout.param_count(), weights.len())?;
        if !grads.is_empty() {
            check_len("grads", layout.param_count(), grads.len())?;
        }
        check_len("activations", act_count(widths, capacity), acts.len())?;
        check_len("deltas", delta_count(widths, capacity), deltas.len())?;
        Ok(NetMut {
            layout,
            capacity,
            weights,
            grads,
            acts,
            deltas,
        })
    }

    /// The widths and offsets.
    pub fn layout(&self) -> Layout<'a> {
        self.layout
    }

    /// Most samples per batch.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// All weights, layer after layer.
    pub fn weights(&self) -> &[T] {
        self.weights
    }

    /// All weights, mutable (to load a checkpoint or golden start).
    pub fn weights_mut(&mut self) -> &mut [T] {
        self.weights
    }

    /// All gradients from the last [`NetMut::backward`] (empty without a gradient buffer).
    pub fn grads(&self) -> &[T] {
        self.grads
    }

    /// Whether this network has a gradient buffer.
    pub fn has_grad_buffer(&self) -> bool {
        !self.grads.is_empty()
    }

    /// Layer `k`'s weights (`d_out x d_in`, row-major).
    pub fn layer_weights(&self, k: usize) -> &[T] {
        &self.weights[self.layout.weight_range(k)]
    }

    /// Layer `k`'s gradient from the last backward pass.
    pub fn layer_grads(&self, k: usize) -> &[T] {
        if self.grads.is_empty() {
            &[]
        } else {
            &self.grads[self.layout.weight_range(k)]
        }
    }

    /// The first `batch` rows of the input block, to fill in place (no copy of the data).
    pub fn input_mut(&mut self, batch: usize) -> Result<&mut [T], Error> {
        FlatNet::input_mut(self, batch)
    }

    /// Copies a batch of samples (`batch x d_0`, row-major) into the input block and returns
    /// the batch size.
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

    /// The network outputs (`batch x d_L`) from the last forward pass.
    pub fn outputs(&self, batch: usize) -> &[T] {
        FlatNet::outputs(self, batch)
    }

    /// Forward pass over the first `batch` samples of the input block: `z = W_k h`, then
    /// `h = sqrt(2)·relu(z)` after every layer but the last. Returns the outputs.
    ///
    /// A NaN or infinite input is [`Error::NonFiniteInput`]: relu could otherwise turn `-inf`
    /// into a harmless-looking 0 (if every unit of a sample gets `-inf`, the loss and all
    /// gradients come out finite and the step would silently learn from garbage).
    pub fn forward(&mut self, batch: usize) -> Result<&[T], Error> {
        self.check_batch(batch)?;
        let depth = self.layout.depth();
        for k in 0..depth {
            let (d_out, d_in) = self.layout.shape(k);
            let split = self.layout.act_offset(k + 1, self.capacity);
            let (before, after) = self.acts.split_at_mut(split);
            let h = &before[self.layout.act_offset(k, self.capacity)..][..batch * d_in];
            let z = &mut after[..batch * d_out];
            let w = &self.weights[self.layout.weight_range(k)];
            matmul_nt(batch, d_out, d_in, T::ONE, h, w, T::ZERO, z)?;
            if k == 0 {
                // z = h Wᵀ is formed by dot products over every input (matmul_nt skips no
                // zero), so a NaN or infinite input makes its whole row of z non-finite
                // (inf·0 = NaN): checking the d_1 outputs of a sample, before relu, covers its
                // d_0 inputs. Only on a hit are the inputs themselves read, to tell bad input
                // from finite input that overflowed (left to the loss to refuse).
                // The largest magnitude (NaN-propagating) is finite exactly when every
                // entry is: one vectorised pass (a scalar fold is a dependency chain).
                if !agd_simd::amax(z).is_finite()
                    && let Some(first) = z
                        .chunks_exact(d_out)
                        .position(|row| !row.iter().all(|v| v.is_finite()))
                    && let Some(sample) = h
                        .chunks_exact(d_in)
                        .enumerate()
                        .skip(first)
                        .find(|(_, row)| !row.iter().all(|v| v.is_finite()))
                        .map(|(n, _)| n)
                {
                    return Err(Error::NonFiniteInput { sample });
                }
            }
            if k + 1 < depth {
                activate(z);
            }
        }
        Ok(self.outputs(batch))
    }

    /// Loss of the last forward pass against `targets` (one label per sample); writes
    /// `∂loss/∂out` into the last error block.
    pub fn loss_grad(&mut self, loss: Loss, targets: &[usize]) -> Result<T, Error> {
        FlatNet::loss_grad(self, loss, targets)
    }

    /// Back-propagates the last error block through every layer, so that every layer's error
    /// block holds `∂loss/∂z_k` (computed with the current weights). No weight gradient is
    /// formed: this is all the buffer-free step needs.
    pub fn backprop_errors(&mut self, batch: usize) -> Result<(), Error> {
        self.backward_impl(batch, false).map(|_| ())
    }

    /// Full backward pass: every error block, and every layer's weight gradient
    /// `g_k = Σ_n δ_n h_nᵀ` into the gradient buffer.
    pub fn backward(&mut self, batch: usize) -> Result<(), Error> {
        self.backward_sums(batch).map(|_| ())
    }

    /// [`NetMut::backward`] that also returns every layer's plain `Σ g²` (forward order, the
    /// first `depth` entries), formed as the gradient is written
    /// ([`agd_simd::matmul_tn_sum_sq`]), for [`Agd::step_with_sums`].
    fn backward_sums(&mut self, batch: usize) -> Result<[T; MAX_DEPTH], Error> {
        if self.grads.is_empty() {
            return Err(Error::NoGradientBuffer);
        }
        self.backward_impl(batch, true)
    }

    fn backward_impl(&mut self, batch: usize, grads: bool) -> Result<[T; MAX_DEPTH], Error> {
        self.check_batch(batch)?;
        let cap = self.capacity;
        let mut sums = [T::ZERO; MAX_DEPTH];
        for k in (0..self.layout.depth()).rev() {
            let (d_out, d_in) = self.layout.shape(k);
            let h = &self.acts[self.layout.act_offset(k, cap)..][..batch * d_in];
            let doff = self.layout.delta_offset(k, cap);
            let (before, after) = self.deltas.split_at_mut(doff);
            let delta = &after[..batch * d_out];
            if grads {
                let g = &mut self.grads[self.layout.weight_range(k)];
                sums[k] = matmul_tn_sum_sq(d_out, d_in, batch, T::ONE, delta, h, T::ZERO, g)?;
            }
            if k > 0 {
                let prev = &mut before[self.layout.delta_offset(k - 1, cap)..][..batch * d_in];
                let w = &self.weights[self.layout.weight_range(k)];
                matmul_nn(batch, d_in, d_out, T::ONE, delta, w, T::ZERO, prev)?;
                activate_backward(prev, h);
            }
        }
        Ok(sums)
    }

    /// Forward, loss and full backward for a batch already in the input block: leaves the
    /// gradients in the gradient buffer and returns `(loss, correct)`.
    pub fn compute_grads(&mut self, loss: Loss, targets: &[usize]) -> Result<(T, usize), Error> {
        FlatNet::compute_grads(self, loss, targets)
    }

    /// Correct predictions of the last forward pass.
    pub fn count_correct(&self, targets: &[usize]) -> usize {
        FlatNet::count_correct(self, targets)
    }

    /// One training step with the standard (gradient-buffer) AGD step on a batch already in
    /// the input block. On any error the weights are exactly as before.
    pub fn train_step(
        &mut self,
        agd: &Agd<T>,
        loss: Loss,
        targets: &[usize],
    ) -> Result<TrainReport<T>, Error> {
        // compute_grads, with the gradients' sums of squares taken as they are formed.
        let (value, correct, sums) = FlatNet::compute_grads_sums(self, loss, targets)?;
        let depth = self.layout.depth();
        let step = agd.step_with_sums(self.layout, self.weights, self.grads, &sums[..depth])?;
        Ok(TrainReport {
            loss: value,
            correct,
            step,
        })
    }

    /// One training step with the gradient-buffer-free AGD step ([`Agd::step_buffer_free`])
    /// on a batch already in the input block: forward, loss, back-propagated errors, then the
    /// rank-B update straight into the weights. Works with or without a gradient buffer (the
    /// buffer is neither read nor written). On any error the weights are exactly as before.
    pub fn train_step_buffer_free(
        &mut self,
        agd: &Agd<T>,
        loss: Loss,
        targets: &[usize],
    ) -> Result<TrainReport<T>, Error> {
        let batch = targets.len();
        self.forward(batch)?;
        let value = self.loss_grad(loss, targets)?;
        let correct = self.count_correct(targets);
        self.backprop_errors(batch)?;
        let step = agd.step_buffer_free(self, batch)?;
        Ok(TrainReport {
            loss: value,
            correct,
            step,
        })
    }

    /// Splits the view into the pieces the AGD step needs: layout, weights, gradients.
    pub fn step_parts(&mut self) -> (Layout<'a>, &mut [T], &[T]) {
        (self.layout, self.weights, self.grads)
    }

    /// Splits the view into what the buffer-free step needs: layout, capacity, weights,
    /// activations, errors.
    pub fn buffer_free_parts(&mut self) -> (Layout<'a>, usize, &mut [T], &[T], &[T]) {
        (
            self.layout,
            self.capacity,
            self.weights,
            self.acts,
            self.deltas,
        )
    }

    /// Orthogonal initialisation of every layer (see [`crate::init::orthogonal`]).
    pub fn init_orthogonal<R: rand_core::Rng + ?Sized>(&mut self, rng: &mut R) {
        crate::init::orthogonal(self.layout, self.weights, rng);
    }
}

impl<'a, T: Element> FlatNet<T> for NetMut<'a, T> {
    type Layout = Layout<'a>;
    fn blocks(&self) -> (Layout<'a>, usize, &[T], &[T]) {
        (self.layout, self.capacity, &*self.acts, &*self.deltas)
    }
    fn blocks_mut(&mut self) -> (Layout<'a>, usize, &mut [T], &mut [T]) {
        (
            self.layout,
            self.capacity,
            &mut *self.acts,
            &mut *self.deltas,
        )
    }
    fn forward_pass(&mut self, batch: usize) -> Result<(), Error> {
        self.forward(batch).map(|_| ())
    }
    fn backward_pass(&mut self, batch: usize) -> Result<[T; MAX_DEPTH], Error> {
        self.backward_sums(batch)
    }
}

/// Anything that owns a network's buffers and can lend them as a [`NetMut`].
pub trait Network<T: Element> {
    /// The buffers as one view; all maths goes through it.
    fn view(&mut self) -> NetMut<'_, T>;
}

impl<'a, T: Element> NetMut<'a, T> {
    /// For [`crate::dense_network!`]: the sizes were checked at compile time.
    #[doc(hidden)]
    pub fn __from_static(
        widths: &'a [usize],
        capacity: usize,
        weights: &'a mut [T],
        grads: &'a mut [T],
        acts: &'a mut [T],
        deltas: &'a mut [T],
    ) -> Self {
        NetMut {
            layout: Layout::from_checked(widths),
            capacity,
            weights,
            grads,
            acts,
            deltas,
        }
    }
}
