//! A network sized at run time (widths from the command line), owning its buffers (on huge
//! pages: [`crate::pages`]) and lending them to the same [`NetMut`] (dense) or [`ConvNetMut`]
//! (conv) the device uses. A buffer that cannot be had is [`agd_core::Error::TooLarge`], not
//! the allocator's abort (`agd train --widths 64,4000000000,10` is a one-line error).

use crate::pages::HugeBuf;
use agd_core::spec::{self, LayerSpec, SpecLayout};
use agd_core::{
    ConvBuffers, ConvNetMut, ConvNetwork, Element, Layout, NetMut, Network, act_count, delta_count,
};

/// The first `batch` samples of an input block at the start of `acts`.
fn input_block<T>(
    acts: &mut [T],
    batch: usize,
    capacity: usize,
    inputs: usize,
) -> Result<&mut [T], agd_core::Error> {
    if batch == 0 {
        Err(agd_core::Error::EmptyBatch)
    } else if batch > capacity {
        Err(agd_core::Error::BatchTooLarge { batch, capacity })
    } else {
        // Activation block 0, the input, starts the buffer (agd_core::layout, spec).
        Ok(&mut acts[..batch * inputs])
    }
}

/// The activation and error buffers' lengths for `capacity` samples, from their per-sample
/// lengths (which fit: the layout checked them); [`agd_core::Error::TooLarge`] if a product
/// does not.
fn per_batch(
    acts: usize,
    deltas: usize,
    capacity: usize,
) -> Result<(usize, usize), agd_core::Error> {
    match (acts.checked_mul(capacity), deltas.checked_mul(capacity)) {
        (Some(a), Some(d)) => Ok((a, d)),
        _ => Err(agd_core::Error::TooLarge),
    }
}

/// A dense network whose buffers are `Vec`s sized at run time.
#[derive(Debug, Clone)]
pub struct HostNet<T> {
    widths: Vec<usize>,
    capacity: usize,
    weights: HugeBuf<T>,
    grads: HugeBuf<T>,
    acts: HugeBuf<T>,
    deltas: HugeBuf<T>,
}

impl<T: Element> HostNet<T> {
    /// All-zero network for these widths and batch capacity, with a gradient buffer or
    /// without one (for the buffer-free step).
    pub fn new(
        widths: &[usize],
        capacity: usize,
        grad_buffer: bool,
    ) -> Result<Self, agd_core::Error> {
        let layout = Layout::new(widths)?;
        if capacity == 0 {
            return Err(agd_core::Error::EmptyBatch);
        }
        let params = layout.param_count();
        let (acts, deltas) = per_batch(act_count(widths, 1), delta_count(widths, 1), capacity)?;
        Ok(HostNet {
            widths: widths.to_vec(),
            capacity,
            weights: HugeBuf::zeros(params)?,
            grads: HugeBuf::zeros(if grad_buffer { params } else { 0 })?,
            acts: HugeBuf::zeros(acts)?,
            deltas: HugeBuf::zeros(deltas)?,
        })
    }

    /// The widths `[d_0, …, d_L]`.
    pub fn widths(&self) -> &[usize] {
        &self.widths
    }

    /// Most samples per batch.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// All weights.
    pub fn weights(&self) -> &[T] {
        &self.weights
    }

    /// The first `batch` samples of the input block (`batch x d_0`), to fill in place.
    pub fn input_mut(&mut self, batch: usize) -> Result<&mut [T], agd_core::Error> {
        input_block(&mut self.acts, batch, self.capacity, self.widths[0])
    }

    /// All weights, to change (e.g. copied from another network).
    pub fn weights_mut(&mut self) -> &mut [T] {
        &mut self.weights
    }

    /// The gradient buffer as the last backward pass left it (empty without one).
    pub fn grads(&self) -> &[T] {
        &self.grads
    }

    /// Bytes held by the network and its training buffers.
    pub fn ram_bytes(&self) -> usize {
        T::BYTES * (self.weights.len() + self.grads.len() + self.acts.len() + self.deltas.len())
    }
}

impl<T: Element> Network<T> for HostNet<T> {
    fn view(&mut self) -> NetMut<'_, T> {
        // Sizes were derived from checked widths in `HostNet::new`.
        NetMut::__from_static(
            &self.widths,
            self.capacity,
            &mut self.weights,
            &mut self.grads,
            &mut self.acts,
            &mut self.deltas,
        )
    }
}

/// A network of conv and dense layers ([`agd_core::spec`]) whose buffers are `Vec`s sized at
/// run time, lent to the same [`ConvNetMut`] the device uses.
#[derive(Debug, Clone)]
pub struct HostConvNet<T> {
    /// Checked by `SpecLayout::new` in [`HostConvNet::new`]; private, so it stays checked.
    layers: Vec<LayerSpec>,
    capacity: usize,
    weights: HugeBuf<T>,
    grads: HugeBuf<T>,
    acts: HugeBuf<T>,
    deltas: HugeBuf<T>,
    scratch: HugeBuf<T>,
    norms: HugeBuf<T>,
}

impl<T: Element> HostConvNet<T> {
    /// All-zero network for these (checked) layers and batch capacity.
    pub fn new(layers: &[LayerSpec], capacity: usize) -> Result<Self, agd_core::Error> {
        let layout = SpecLayout::new(layers)?;
        if capacity == 0 {
            return Err(agd_core::Error::EmptyBatch);
        }
        let (acts, deltas) = per_batch(
            spec::act_count(layers, 1),
            spec::delta_count(layers, 1),
            capacity,
        )?;
        Ok(HostConvNet {
            layers: layers.to_vec(),
            capacity,
            weights: HugeBuf::zeros(layout.param_count())?,
            grads: HugeBuf::zeros(layout.param_count())?,
            acts: HugeBuf::zeros(acts)?,
            deltas: HugeBuf::zeros(deltas)?,
            scratch: HugeBuf::zeros(layout.scratch_count())?,
            norms: HugeBuf::zeros(layout.norm_count())?,
        })
    }

    /// The layers.
    pub fn layers(&self) -> &[LayerSpec] {
        &self.layers
    }

    /// Most samples per batch.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// All weights, layer after layer.
    pub fn weights(&self) -> &[T] {
        &self.weights
    }

    /// All weights, to change (e.g. copied from another network).
    pub fn weights_mut(&mut self) -> &mut [T] {
        &mut self.weights
    }

    /// The gradient buffer as the last backward pass left it.
    pub fn grads(&self) -> &[T] {
        &self.grads
    }

    /// What an AGD step by an outside gradient needs: the layout, the weights and the
    /// per-kernel-position norm buffer. The layers were checked in [`HostConvNet::new`] and
    /// cannot change since, so every step does not check them again.
    pub(crate) fn step_buffers(&mut self) -> (SpecLayout<'_>, &mut [T], &mut [T]) {
        (
            SpecLayout::__from_checked(&self.layers),
            &mut self.weights,
            &mut self.norms,
        )
    }

    /// The first `batch` samples of the input block (`batch x f_0`), to fill in place.
    pub fn input_mut(&mut self, batch: usize) -> Result<&mut [T], agd_core::Error> {
        input_block(
            &mut self.acts,
            batch,
            self.capacity,
            self.layers[0].in_features(),
        )
    }

    /// Bytes held by the network and its training buffers.
    pub fn ram_bytes(&self) -> usize {
        T::BYTES
            * [
                &self.weights,
                &self.grads,
                &self.acts,
                &self.deltas,
                &self.scratch,
                &self.norms,
            ]
            .iter()
            .map(|v| v.len())
            .sum::<usize>()
    }
}

impl<T: Element> ConvNetwork<T> for HostConvNet<T> {
    fn view(&mut self) -> ConvNetMut<'_, T> {
        // Sizes were derived from checked layers in `HostConvNet::new`.
        ConvNetMut::__from_static(
            &self.layers,
            self.capacity,
            ConvBuffers {
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
