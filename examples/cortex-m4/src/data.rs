//! The data conventions, shared with the host so results are comparable.
//!
//! * **digits** (1,797 8x8 images, pixels 0..16): pixel/16, then standardised with the
//!   training split's global mean and (population) standard deviation.
//!   Split: the indices `0..1797` shuffled by a Fisher–Yates driven by `SplitMix64::new(0)` —
//!   for `i` from 1796 down to 1, `j = next_u64() % (i + 1)`, swap `i` and `j` — then the first
//!   1,437 are the training set, the last 360 the test set ([`digits_split`]).
//! * **MNIST**: pixel/255, standardised with the training set's global mean 0.130660 and
//!   standard deviation 0.308108.
//!
//! Pixels are bytes, so standardisation is a 256-entry lookup table ([`Standardize`]),
//! applied while a batch is copied into the network's input block.

use agd_core::SplitMix64;
use rand_core::Rng;

/// Samples in the digits dataset.
pub const DIGITS_SAMPLES: usize = 1797;
/// Digits training samples (the first part of the shuffled indices).
pub const DIGITS_TRAIN: usize = 1437;
/// Digits test samples (the rest).
pub const DIGITS_TEST: usize = DIGITS_SAMPLES - DIGITS_TRAIN;

/// MNIST training-set mean of pixel/255.
pub const MNIST_MEAN: f32 = 0.130660;
/// MNIST training-set standard deviation of pixel/255.
pub const MNIST_STD: f32 = 0.308108;

/// Fisher–Yates shuffle, `i` from `len − 1` down to 1, `j = next_u64() % (i + 1)`.
pub fn shuffle(order: &mut [u16], rng: &mut SplitMix64) {
    for i in (1..order.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
}

/// The fixed digits split, written into `order`: indices `0..1797` shuffled with
/// `SplitMix64::new(0)` (see [`shuffle`]); `[..1437]` train, `[1437..]` test.
pub fn digits_split(order: &mut [u16; DIGITS_SAMPLES]) {
    for (i, o) in order.iter_mut().enumerate() {
        *o = i as u16;
    }
    shuffle(order, &mut SplitMix64::new(0));
}

/// Global mean and population standard deviation of `pixel / max` over the chosen images,
/// from exact integer sums (so the result does not depend on summation order).
pub fn pixel_stats(images: &[u8], pixels: usize, which: &[u16], max: u32) -> (f64, f64) {
    let (mut s, mut s2) = (0u64, 0u64);
    for &i in which {
        for &p in &images[i as usize * pixels..(i as usize + 1) * pixels] {
            s += p as u64;
            s2 += (p as u64) * (p as u64);
        }
    }
    let n = (which.len() * pixels) as f64;
    let m = max as f64;
    let mean = s as f64 / n / m;
    let var = s2 as f64 / n / (m * m) - mean * mean;
    (mean, libm::sqrt(var))
}

/// `(pixel / max − mean) / std` for every byte value, as `f32`.
pub struct Standardize {
    lut: [f32; 256],
}

impl Standardize {
    /// The table for pixels in `0..=max`.
    pub fn new(max: u32, mean: f64, std: f64) -> Self {
        let mut lut = [0.0f32; 256];
        for (p, v) in lut.iter_mut().enumerate() {
            *v = ((p as f64 / max as f64 - mean) / std) as f32;
        }
        Standardize { lut }
    }

    /// Writes the standardised pixels of `src` into `dst` (same length).
    pub fn apply(&self, src: &[u8], dst: &mut [f32]) {
        for (d, &p) in dst.iter_mut().zip(src) {
            *d = self.lut[p as usize];
        }
    }
}
