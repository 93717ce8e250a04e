//! A network sized at run time (widths from the command line), owning its buffers in `Vec`s
//! and lending them to the same [`NetMut`] the device uses.

use agd_core::{Element, Layout, NetMut, Network, act_count, delta_count};

/// A dense network whose buffers are `Vec`s sized at run time.
#[derive(Debug, Clone)]
pub struct HostNet<T> {
    widths: Vec<usize>,
    capacity: usize,
    weights: Vec<T>,
    grads: Vec<T>,
    acts: Vec<T>,
    deltas: Vec<T>,
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
        Ok(HostNet {
            widths: widths.to_vec(),
            capacity,
            weights: vec![T::ZERO; params],
            grads: if grad_buffer {
                vec![T::ZERO; params]
            } else {
                Vec::new()
            },
            acts: vec![T::ZERO; act_count(widths, capacity)],
            deltas: vec![T::ZERO; delta_count(widths, capacity)],
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

    /// The gradient buffer, for combining the gradients of several networks.
    pub(crate) fn grads_mut(&mut self) -> &mut [T] {
        &mut self.grads
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
