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

/// The digits IDX files, `include_bytes!`-ed into flash (only the binaries that call
/// [`digits`] keep them).
static DIGITS_IMAGES: &[u8] = include_bytes!("../../../data/digits/digits-images-idx3-ubyte");
static DIGITS_LABELS: &[u8] = include_bytes!("../../../data/digits/digits-labels-idx1-ubyte");

/// Pixels per digits image (8x8).
pub const DIGITS_PIXELS: usize = 64;

/// The digits images (1797 x 64 bytes, pixels 0..16) and labels, from the IDX files in flash,
/// their headers and shapes checked.
pub fn digits() -> Result<(&'static [u8], &'static [u8]), crate::idx_file::IdxError> {
    use crate::idx_file::{IdxError, IdxHeader};
    let hi = IdxHeader::parse(DIGITS_IMAGES, 3)?;
    let hl = IdxHeader::parse(DIGITS_LABELS, 1)?;
    if hi.count != DIGITS_SAMPLES || hl.count != DIGITS_SAMPLES || hi.record != DIGITS_PIXELS {
        return Err(IdxError::BadHeader);
    }
    Ok((hi.data(DIGITS_IMAGES)?, hl.data(DIGITS_LABELS)?))
}

/// Writes the standardised images and the labels of the samples `which` into a batch: `input`
/// (`which.len() x 64`) and `targets` (`which.len()`).
pub fn digits_batch(
    images: &[u8],
    labels: &[u8],
    norm: &Standardize,
    which: &[u16],
    input: &mut [f32],
    targets: &mut [usize],
) {
    for ((row, &i), t) in input
        .chunks_exact_mut(DIGITS_PIXELS)
        .zip(which)
        .zip(targets.iter_mut())
    {
        let i = i as usize;
        norm.apply(&images[i * DIGITS_PIXELS..(i + 1) * DIGITS_PIXELS], row);
        *t = labels[i] as usize;
    }
}
