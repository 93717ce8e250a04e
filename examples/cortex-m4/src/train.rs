//! The digits firmwares' loops, written once: a batch into a network's input, an epoch of
//! training steps, a test pass, and the epochs of training with their log line. They drive a
//! dense ([`NetMut`]) or a conv ([`ConvNetMut`]) network through [`View`], and any step
//! (standard or buffer-free) through a closure.
//!
//! Errors are logged (`defmt`) where they happen and come back as `Err(())`, which the
//! binaries turn into exit code 2, as their own `run` functions do.
#![allow(clippy::result_unit_err)]

use agd_core::{ConvNetMut, Error, NetMut, SplitMix64, TrainReport};

use crate::cycles;
use crate::data::{
    DIGITS_PIXELS, DIGITS_SAMPLES, DIGITS_TRAIN, Standardize, digits, digits_batch, digits_split,
    pixel_stats, shuffle,
};

/// What the loops need of a network view: its input block and a forward pass to score.
pub trait View {
    /// The first `batch` rows of the input block.
    fn input_mut(&mut self, batch: usize) -> Result<&mut [f32], Error>;
    /// Forward pass over the first `batch` samples.
    fn forward(&mut self, batch: usize) -> Result<(), Error>;
    /// Correct predictions of the last forward pass.
    fn count_correct(&self, targets: &[usize]) -> usize;
}

impl View for NetMut<'_, f32> {
    fn input_mut(&mut self, batch: usize) -> Result<&mut [f32], Error> {
        NetMut::input_mut(self, batch)
    }
    fn forward(&mut self, batch: usize) -> Result<(), Error> {
        NetMut::forward(self, batch).map(|_| ())
    }
    fn count_correct(&self, targets: &[usize]) -> usize {
        NetMut::count_correct(self, targets)
    }
}

impl View for ConvNetMut<'_, f32> {
    fn input_mut(&mut self, batch: usize) -> Result<&mut [f32], Error> {
        ConvNetMut::input_mut(self, batch)
    }
    fn forward(&mut self, batch: usize) -> Result<(), Error> {
        ConvNetMut::forward(self, batch).map(|_| ())
    }
    fn count_correct(&self, targets: &[usize]) -> usize {
        ConvNetMut::count_correct(self, targets)
    }
}

/// The digits images and labels (in flash) with the training split's normalisation.
pub struct Digits<'a> {
    /// All images, `DIGITS_PIXELS` bytes each.
    pub images: &'a [u8],
    /// All labels.
    pub labels: &'a [u8],
    /// The standardisation of the training split's pixels.
    pub norm: Standardize,
}

/// One epoch's figures ([`Digits::epoch`]).
pub struct Epoch {
    /// Mean loss per sample.
    pub loss: f32,
    /// Mean η per step.
    pub eta: f32,
    /// Correct predictions on the training batches, before each step.
    pub correct: usize,
    /// Steps taken.
    pub steps: u64,
    /// Instructions per step over the full batches (0 if there was none).
    pub step_instructions: u64,
}

impl Digits<'static> {
    /// The digits in flash, with the host's split dealt into `split` (the first
    /// `DIGITS_TRAIN` indices train, the rest test) and each pixel ÷16 standardised with the
    /// training split's mean and std; logs the split and the statistics.
    pub fn load(split: &mut [u16; DIGITS_SAMPLES]) -> Result<Self, ()> {
        let (images, labels) = digits().map_err(|e| defmt::error!("digits: {}", e))?;
        digits_split(split);
        let (mean, std) = pixel_stats(images, DIGITS_PIXELS, &split[..DIGITS_TRAIN], 16);
        defmt::info!(
            "digits: {=usize} train / {=usize} test, pixel/16 standardised with train mean {=f64} std {=f64}",
            DIGITS_TRAIN,
            DIGITS_SAMPLES - DIGITS_TRAIN,
            mean,
            std
        );
        Ok(Digits {
            images,
            labels,
            norm: Standardize::new(16, mean, std),
        })
    }
}

impl Digits<'_> {
    /// Puts samples `which` (at most `B`) into `v`'s input; returns their labels.
    fn batch<V: View, const B: usize>(&self, v: &mut V, which: &[u16]) -> Result<[usize; B], ()> {
        let mut targets = [0usize; B];
        let input = v
            .input_mut(which.len())
            .map_err(|e| defmt::error!("{}", e))?;
        digits_batch(
            self.images,
            self.labels,
            &self.norm,
            which,
            input,
            &mut targets,
        );
        Ok(targets)
    }

    /// Correct predictions over the samples `test`, `B` at a time, forward pass only.
    pub fn evaluate<V: View, const B: usize>(&self, v: &mut V, test: &[u16]) -> Result<usize, ()> {
        let mut correct = 0;
        for chunk in test.chunks(B) {
            let targets: [usize; B] = self.batch(v, chunk)?;
            v.forward(chunk.len()).map_err(|e| defmt::error!("{}", e))?;
            correct += v.count_correct(&targets[..chunk.len()]);
        }
        Ok(correct)
    }

    /// One epoch over the samples `order`, as ordered, `B` at a time: `step(v, targets)` per
    /// batch (the last may be short), its instructions counted on the full batches.
    pub fn epoch<V: View, const B: usize>(
        &self,
        v: &mut V,
        order: &[u16],
        mut step: impl FnMut(&mut V, &[usize]) -> Result<TrainReport<f32>, Error>,
    ) -> Result<Epoch, ()> {
        let (mut loss, mut eta, mut correct, mut steps) = (0.0f32, 0.0f32, 0, 0);
        let (mut full_steps, mut full_instr) = (0u64, 0u64);
        for chunk in order.chunks(B) {
            let targets: [usize; B] = self.batch(v, chunk)?;
            let t0 = cycles::now();
            let r = step(v, &targets[..chunk.len()])
                .map_err(|e| defmt::error!("step failed: {}", e))?;
            let t1 = cycles::now();
            if chunk.len() == B {
                full_steps += 1;
                full_instr += cycles::instructions(t0, t1);
            }
            loss += r.loss * chunk.len() as f32;
            eta += r.step.eta;
            correct += r.correct;
            steps += 1;
        }
        Ok(Epoch {
            loss: loss / order.len().max(1) as f32,
            eta: eta / steps.max(1) as f32,
            correct,
            steps,
            step_instructions: full_instr / full_steps.max(1),
        })
    }

    /// `epochs` epochs, each over `train` reshuffled by `rng`, logging per epoch the mean
    /// loss and η, the training and test accuracy and the instructions per step. Returns the
    /// last test accuracy (a fraction) and instructions per step.
    pub fn train<V: View, const B: usize>(
        &self,
        v: &mut V,
        epochs: usize,
        (train, test): (&mut [u16], &[u16]),
        rng: &mut SplitMix64,
        mut step: impl FnMut(&mut V, &[usize]) -> Result<TrainReport<f32>, Error>,
    ) -> Result<(f32, u64), ()> {
        let (mut acc, mut step_instr) = (0.0, 0);
        for epoch in 1..=epochs {
            shuffle(train, rng);
            let e = self.epoch::<V, B>(v, train, &mut step)?;
            step_instr = e.step_instructions;
            let test_correct = self.evaluate::<V, B>(v, test)?;
            acc = test_correct as f32 / test.len() as f32;
            defmt::info!(
                "epoch {=usize}: loss {=f32} eta {=f32} train acc {=f32} % test acc {=f32} % ({=usize}/{=usize}); {=u64} instructions per step",
                epoch,
                e.loss,
                e.eta,
                100.0 * e.correct as f32 / train.len() as f32,
                100.0 * acc,
                test_correct,
                test.len(),
                step_instr
            );
        }
        Ok((acc, step_instr))
    }
}
