//! Where each layer's weights, activations and errors sit in the flat buffers.
//!
//! A network with widths `[d_0, …, d_L]` has `L` weight matrices; matrix `k` (from 0) is
//! `d_{k+1} x d_k`, row-major, and the matrices follow each other in one flat buffer. The
//! activation buffer holds `L + 1` blocks (`acts[0]` is the input batch), each
//! `capacity x d_k`; the error buffer holds one block per layer output. All sizes are `const
//! fn`s, so a static network's buffers are fixed at compile time.

use crate::error::Error;

/// Most layers a network may have (the step report keeps one norm per layer inline).
pub const MAX_DEPTH: usize = 16;

/// Number of weights of a network with these widths.
pub const fn param_count(widths: &[usize]) -> usize {
    let mut n = 0;
    let mut k = 0;
    while k + 1 < widths.len() {
        n += widths[k] * widths[k + 1];
        k += 1;
    }
    n
}

/// Elements of the activation buffer: `capacity x (d_0 + … + d_L)`.
pub const fn act_count(widths: &[usize], capacity: usize) -> usize {
    let mut n = 0;
    let mut k = 0;
    while k < widths.len() {
        n += widths[k];
        k += 1;
    }
    n * capacity
}

/// Elements of the error (δ) buffer: `capacity x (d_1 + … + d_L)`.
pub const fn delta_count(widths: &[usize], capacity: usize) -> usize {
    if widths.is_empty() {
        return 0;
    }
    act_count(widths, capacity) - widths[0] * capacity
}

/// The widths of a network, checked, with the offsets derived from them.
#[derive(Debug, Clone, Copy)]
pub struct Layout<'a> {
    widths: &'a [usize],
}

impl<'a> Layout<'a> {
    /// Checks that there are 2 to `MAX_DEPTH + 1` widths, all non-zero, and that the weight
    /// count and the sum of the widths (the features of one sample's activations) fit in
    /// `usize` ([`Error::TooLarge`]).
    pub fn new(widths: &'a [usize]) -> Result<Self, Error> {
        if widths.len() < 2 || widths.contains(&0) {
            return Err(Error::InvalidWidths);
        }
        if widths.len() - 1 > MAX_DEPTH {
            return Err(Error::TooDeep {
                depth: widths.len() - 1,
                max: MAX_DEPTH,
            });
        }
        let mut params = Some(0usize);
        for pair in widths.windows(2) {
            params = params.and_then(|n| n.checked_add(pair[0].checked_mul(pair[1])?));
        }
        if params.is_none() || sum(widths).is_none() {
            return Err(Error::TooLarge);
        }
        Ok(Layout { widths })
    }

    /// Widths already checked (at compile time, by `dense_network!`).
    pub(crate) fn from_checked(widths: &'a [usize]) -> Self {
        Layout { widths }
    }

    /// The widths `[d_0, …, d_L]`.
    pub fn widths(&self) -> &'a [usize] {
        self.widths
    }

    /// `L`, the number of weight matrices (the paper's depth).
    pub fn depth(&self) -> usize {
        self.widths.len() - 1
    }

    /// `(d_out, d_in)` of layer `k`.
    pub fn shape(&self, k: usize) -> (usize, usize) {
        (self.widths[k + 1], self.widths[k])
    }

    /// Input width `d_0`.
    pub fn inputs(&self) -> usize {
        self.widths[0]
    }

    /// Output width `d_L` (number of classes).
    pub fn outputs(&self) -> usize {
        self.widths[self.widths.len() - 1]
    }

    /// Total number of weights.
    pub fn param_count(&self) -> usize {
        param_count(self.widths)
    }

    /// Index range of layer `k`'s weights in the flat weight (or gradient) buffer.
    pub fn weight_range(&self, k: usize) -> core::ops::Range<usize> {
        let start = param_count(&self.widths[..=k]);
        let (o, i) = self.shape(k);
        start..start + o * i
    }

    /// Offset of activation block `k` (0 = input) in a buffer of this capacity.
    pub fn act_offset(&self, k: usize, capacity: usize) -> usize {
        act_count(&self.widths[..k], capacity)
    }

    /// Offset of layer `k`'s error block in a buffer of this capacity.
    pub fn delta_offset(&self, k: usize, capacity: usize) -> usize {
        act_count(&self.widths[1..=k], capacity)
    }

    /// `s_k = sqrt(d_out / d_in)`: every singular value of layer `k` at initialisation
    /// (paper, §3 "Architectural perturbation bounds").
    pub fn scale<T: agd_simd::Element>(&self, k: usize) -> T {
        let (o, i) = self.shape(k);
        T::from_f64(libm::sqrt(o as f64 / i as f64))
    }
}

/// The product of `xs`, if it fits in `usize`.
pub(crate) const fn product(xs: &[usize]) -> Option<usize> {
    let mut n = 1usize;
    let mut i = 0;
    while i < xs.len() {
        n = match n.checked_mul(xs[i]) {
            Some(n) => n,
            None => return None,
        };
        i += 1;
    }
    Some(n)
}

/// The sum of `xs`, if it fits in `usize`.
pub(crate) const fn sum(xs: &[usize]) -> Option<usize> {
    let mut n = 0usize;
    let mut i = 0;
    while i < xs.len() {
        n = match n.checked_add(xs[i]) {
            Some(n) => n,
            None => return None,
        };
        i += 1;
    }
    Some(n)
}
