//! What [`crate::NetMut`] (dense) and [`crate::ConvNetMut`] (conv + dense) do alike, written
//! once: buffer checks, batch checks, the input, activation and error blocks, the loss and
//! the prediction count, and forward–loss–backward. Both lay their activations and errors out
//! the same way (one block per layer, `capacity` samples each), so only the layout differs.
//!
//! Crate-private: each network keeps its own public methods, which call these.

use agd_simd::Element;

use crate::error::Error;
use crate::layout::{Layout, MAX_DEPTH};
use crate::loss::{Loss, argmax, loss_and_grad};
use crate::spec::SpecLayout;

/// Checks a buffer's length against the size the network needs.
pub(crate) fn check_len(buffer: &'static str, expected: usize, got: usize) -> Result<(), Error> {
    if expected == got {
        Ok(())
    } else {
        Err(Error::BufferSize {
            buffer,
            expected,
            got,
        })
    }
}

/// A layout's block sizes and offsets: [`Layout`] or [`SpecLayout`].
pub(crate) trait Blocks: Copy {
    /// `L`, the number of layers.
    fn depth(&self) -> usize;
    /// Features per sample of activation block `k` (0 = input, `L` = outputs).
    fn features(&self, k: usize) -> usize;
    /// Offset of activation block `k` in a buffer of this capacity.
    fn act_offset(&self, k: usize, capacity: usize) -> usize;
    /// Offset of layer `k`'s error block in a buffer of this capacity.
    fn delta_offset(&self, k: usize, capacity: usize) -> usize;
}

impl Blocks for Layout<'_> {
    fn depth(&self) -> usize {
        Layout::depth(self)
    }
    fn features(&self, k: usize) -> usize {
        self.widths()[k]
    }
    fn act_offset(&self, k: usize, capacity: usize) -> usize {
        Layout::act_offset(self, k, capacity)
    }
    fn delta_offset(&self, k: usize, capacity: usize) -> usize {
        Layout::delta_offset(self, k, capacity)
    }
}

impl Blocks for SpecLayout<'_> {
    fn depth(&self) -> usize {
        SpecLayout::depth(self)
    }
    fn features(&self, k: usize) -> usize {
        SpecLayout::features(self, k)
    }
    fn act_offset(&self, k: usize, capacity: usize) -> usize {
        SpecLayout::act_offset(self, k, capacity)
    }
    fn delta_offset(&self, k: usize, capacity: usize) -> usize {
        SpecLayout::delta_offset(self, k, capacity)
    }
}

/// A network over flat activation and error buffers. The provided methods are the logic
/// both networks share; the public methods of the same names call them.
pub(crate) trait FlatNet<T: Element> {
    /// [`Layout`] or [`SpecLayout`].
    type Layout: Blocks;
    /// Layout, capacity, activations and errors.
    fn blocks(&self) -> (Self::Layout, usize, &[T], &[T]);
    /// The same, the buffers mutable.
    fn blocks_mut(&mut self) -> (Self::Layout, usize, &mut [T], &mut [T]);
    /// The network's forward pass over the first `batch` samples of the input block.
    fn forward_pass(&mut self, batch: usize) -> Result<(), Error>;
    /// The network's full backward pass (errors and weight gradients); returns the plain
    /// `Σ g²` of every layer with a single norm, formed with its gradient (forward order, the
    /// first `depth` entries; zero for the others), for the AGD step's `*_with_sums`.
    fn backward_pass(&mut self, batch: usize) -> Result<[T; MAX_DEPTH], Error>;

    /// A batch of 1 ..= capacity samples.
    fn check_batch(&self, batch: usize) -> Result<(), Error> {
        let capacity = self.blocks().1;
        if batch == 0 {
            Err(Error::EmptyBatch)
        } else if batch > capacity {
            Err(Error::BatchTooLarge { batch, capacity })
        } else {
            Ok(())
        }
    }

    /// The first `batch` samples of the input block.
    fn input_mut(&mut self, batch: usize) -> Result<&mut [T], Error> {
        self.check_batch(batch)?;
        let (layout, _, acts, _) = self.blocks_mut();
        Ok(&mut acts[..batch * layout.features(0)])
    }

    /// Copies whole samples into the input block; returns the batch size.
    fn set_input(&mut self, samples: &[T]) -> Result<usize, Error> {
        let f0 = self.blocks().0.features(0);
        if samples.is_empty() || !samples.len().is_multiple_of(f0) {
            return Err(Error::BufferSize {
                buffer: "input",
                expected: f0,
                got: samples.len(),
            });
        }
        let batch = samples.len() / f0;
        self.input_mut(batch)?.copy_from_slice(samples);
        Ok(batch)
    }

    /// Activation block `k` for `batch` samples.
    fn activations(&self, k: usize, batch: usize) -> &[T] {
        let (layout, capacity, acts, _) = self.blocks();
        let off = layout.act_offset(k, capacity);
        &acts[off..off + batch * layout.features(k)]
    }

    /// Layer `k`'s error block for `batch` samples.
    fn deltas(&self, k: usize, batch: usize) -> &[T] {
        let (layout, capacity, _, deltas) = self.blocks();
        let off = layout.delta_offset(k, capacity);
        &deltas[off..off + batch * layout.features(k + 1)]
    }

    /// The last activation block for `batch` samples.
    fn outputs(&self, batch: usize) -> &[T] {
        self.activations(self.blocks().0.depth(), batch)
    }

    /// Loss of the outputs against `targets`; `∂loss/∂out` into the last error block.
    fn loss_grad(&mut self, loss: Loss, targets: &[usize]) -> Result<T, Error> {
        let batch = targets.len();
        self.check_batch(batch)?;
        let (layout, capacity, acts, deltas) = self.blocks_mut();
        let depth = layout.depth();
        let classes = layout.features(depth);
        let off = layout.act_offset(depth, capacity);
        let out = &acts[off..off + batch * classes];
        let doff = layout.delta_offset(depth - 1, capacity);
        let grad = &mut deltas[doff..doff + batch * classes];
        loss_and_grad(loss, out, targets, classes, grad)
    }

    /// Correct predictions of the outputs.
    fn count_correct(&self, targets: &[usize]) -> usize {
        let layout = self.blocks().0;
        let classes = layout.features(layout.depth());
        self.outputs(targets.len())
            .chunks_exact(classes)
            .zip(targets)
            .filter(|&(row, &y)| argmax(row) == y)
            .count()
    }

    /// Forward, loss and full backward: `(loss, correct)`.
    fn compute_grads(&mut self, loss: Loss, targets: &[usize]) -> Result<(T, usize), Error> {
        self.compute_grads_sums(loss, targets)
            .map(|(value, correct, _)| (value, correct))
    }

    /// [`FlatNet::compute_grads`] that also returns what [`FlatNet::backward_pass`] returns.
    fn compute_grads_sums(
        &mut self,
        loss: Loss,
        targets: &[usize],
    ) -> Result<(T, usize, [T; MAX_DEPTH]), Error> {
        let batch = targets.len();
        self.forward_pass(batch)?;
        let value = self.loss_grad(loss, targets)?;
        let correct = self.count_correct(targets);
        let sums = self.backward_pass(batch)?;
        Ok((value, correct, sums))
    }
}
