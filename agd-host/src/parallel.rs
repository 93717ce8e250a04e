//! Batch-parallel training on several threads (`--threads N`): the batch is cut into one
//! slice per thread, every thread runs the core's forward and backward pass on its slice in
//! its own buffers, the per-slice gradients are combined into the batch gradient, and one
//! AGD step updates the weights, which are then copied to every thread's network.
//!
//! The loss is a batch mean, so slice `t` of `b_t` samples contributes `(b_t/B)·g_t` to the
//! batch gradient `g = Σ_t (b_t/B) g_t`. The result equals the single-threaded step up to
//! the rounding of that sum.

use agd_core::{Agd, Element, Layout, Loss, Network, SplitMix64, TrainReport};
use agd_simd::{axpy, scale};

use crate::net::HostNet;
use crate::train::{TrainNet, Update};

/// One network per thread, all with the same weights; thread 0's is the one that steps.
#[derive(Debug)]
pub struct DataParallel<T> {
    nets: Vec<HostNet<T>>,
    /// Most samples per batch, over all threads.
    capacity: usize,
    /// A whole batch's inputs, filled through [`TrainNet::input_mut`] and cut into slices.
    staging: Vec<T>,
}

impl<T: Element> DataParallel<T> {
    /// `threads` copies of a zero network; each holds up to `capacity / threads` (rounded
    /// up) samples.
    pub fn new(widths: &[usize], capacity: usize, threads: usize) -> Result<Self, agd_core::Error> {
        let threads = threads.clamp(1, capacity.max(1));
        let per = capacity.div_ceil(threads);
        let nets = (0..threads)
            .map(|_| HostNet::new(widths, per, true))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(DataParallel {
            nets,
            capacity,
            staging: Vec::new(),
        })
    }

    /// Threads in use (at most the batch capacity).
    pub fn threads(&self) -> usize {
        self.nets.len()
    }

    /// The stepping network (thread 0's), giving up the others.
    pub fn into_net(self) -> HostNet<T> {
        self.nets.into_iter().next().expect("at least one network")
    }

    /// The network that steps (thread 0's); after [`DataParallel::sync`] every copy equals it.
    pub fn net(&mut self) -> &mut HostNet<T> {
        &mut self.nets[0]
    }

    /// Copies thread 0's weights into every other thread's network (after changing them by
    /// hand, e.g. an initialisation).
    pub fn sync(&mut self) {
        let (first, rest) = self.nets.split_at_mut(1);
        for net in rest {
            net.view().weights_mut().copy_from_slice(first[0].weights());
        }
    }

    /// One AGD training step on `samples` (`batch x d_0`) with labels `targets`.
    pub fn train_step(
        &mut self,
        agd: &Agd<T>,
        loss: Loss,
        samples: &[T],
        targets: &[usize],
    ) -> Result<TrainReport<T>, agd_core::Error> {
        let (loss, correct) = self.batch_grads(loss, samples, targets)?;
        let step = self.update_all(|layout, w, g| agd.step(layout, w, g))?;
        Ok(TrainReport {
            loss,
            correct,
            step,
        })
    }

    /// Forward and backward of every slice on its own thread; leaves the batch gradient
    /// `g = Σ_t (b_t/B)·g_t` in thread 0's gradient buffer and returns the batch's mean loss
    /// and correct count. No weight changes.
    fn batch_grads(
        &mut self,
        loss: Loss,
        samples: &[T],
        targets: &[usize],
    ) -> Result<(T, usize), agd_core::Error> {
        let batch = targets.len();
        if batch == 0 {
            return Err(agd_core::Error::EmptyBatch);
        }
        let d0 = self.nets[0].widths()[0];
        if samples.len() != batch * d0 {
            return Err(agd_core::Error::BufferSize {
                buffer: "input",
                expected: batch * d0,
                got: samples.len(),
            });
        }
        let per = batch.div_ceil(self.nets.len());
        let used = batch.div_ceil(per);
        let results: Vec<Result<(T, usize), agd_core::Error>> = std::thread::scope(|s| {
            let mut handles = Vec::new();
            let mut mine = None;
            for (t, net) in self.nets.iter_mut().take(used).enumerate() {
                let (lo, hi) = (t * per, ((t + 1) * per).min(batch));
                let x = &samples[lo * d0..hi * d0];
                let y = &targets[lo..hi];
                let work = move || {
                    let mut v = net.view();
                    v.set_input(x)?;
                    v.compute_grads(loss, y)
                };
                if t == 0 {
                    mine = Some(work);
                } else {
                    handles.push(s.spawn(work));
                }
            }
            let mut out = vec![mine.expect("at least one slice")()];
            out.extend(
                handles
                    .into_iter()
                    .map(|h| h.join().expect("worker thread")),
            );
            out
        });
        let mut total = T::ZERO;
        let mut correct = 0;
        let inv_b = T::ONE / T::from_f64(batch as f64);
        let (first, rest) = self.nets.split_at_mut(1);
        let main = &mut first[0];
        for (t, r) in results.into_iter().enumerate() {
            let (l, c) = r?;
            let w = T::from_f64(((t + 1) * per).min(batch).saturating_sub(t * per) as f64) * inv_b;
            total += w * l;
            correct += c;
            // g = Σ_t (b_t/B) g_t
            if t == 0 {
                scale(w, main.grads_mut());
            } else {
                axpy(w, rest[t - 1].grads_mut(), main.grads_mut());
            }
        }
        Ok((total, correct))
    }

    /// Runs `update(layout, weights, gradients)` on thread 0's network and, when it succeeds,
    /// copies the new weights to every other thread; a refused update changes no weight on
    /// any thread.
    fn update_all<R>(
        &mut self,
        update: impl FnOnce(Layout<'_>, &mut [T], &[T]) -> Result<R, agd_core::Error>,
    ) -> Result<R, agd_core::Error> {
        let r = {
            let mut v = self.nets[0].view();
            let (layout, weights, grads) = v.step_parts();
            update(layout, weights, grads)?
        };
        self.sync();
        Ok(r)
    }

    /// [`Self::batch_grads`] on the staged inputs.
    fn staged_grads(
        &mut self,
        loss: Loss,
        targets: &[usize],
    ) -> Result<(T, usize), agd_core::Error> {
        let staging = std::mem::take(&mut self.staging);
        let d0 = self.nets[0].widths()[0];
        let r = self.batch_grads(loss, &staging[..targets.len() * d0], targets);
        self.staging = staging;
        r
    }
}

/// The training loop drives a `DataParallel` like any network (`agd train --threads N`):
/// inputs are staged for the whole batch, gradients computed on every thread, and the
/// update (AGD or a baseline's) applied once to thread 0's weights, then copied to the
/// others. A refused step changes no weight on any thread.
impl<T: Element> TrainNet<T> for DataParallel<T> {
    fn capacity(&self) -> usize {
        self.capacity
    }
    fn inputs(&self) -> usize {
        self.nets[0].widths()[0]
    }
    fn param_count(&self) -> usize {
        self.nets[0].weights().len()
    }
    fn init_orthogonal(&mut self, rng: &mut SplitMix64) {
        self.nets[0].view().init_orthogonal(rng);
        self.sync();
    }
    fn input_mut(&mut self, batch: usize) -> Result<&mut [T], agd_core::Error> {
        if batch == 0 {
            return Err(agd_core::Error::EmptyBatch);
        }
        if batch > self.capacity {
            return Err(agd_core::Error::BatchTooLarge {
                batch,
                capacity: self.capacity,
            });
        }
        let d0 = self.nets[0].widths()[0];
        self.staging.resize(self.capacity * d0, T::ZERO);
        Ok(&mut self.staging[..batch * d0])
    }
    fn agd_step(
        &mut self,
        agd: &Agd<T>,
        loss: Loss,
        targets: &[usize],
    ) -> Result<(T, usize, T), agd_core::Error> {
        let (l, c) = self.staged_grads(loss, targets)?;
        let step = self.update_all(|layout, w, g| agd.step(layout, w, g))?;
        Ok((l, c, step.eta))
    }
    fn grad_step(
        &mut self,
        loss: Loss,
        targets: &[usize],
        update: &mut Update<'_, T>,
    ) -> Result<(T, usize), agd_core::Error> {
        let (l, c) = self.staged_grads(loss, targets)?;
        self.update_all(|_, w, g| update(w, g))?;
        Ok((l, c))
    }
    fn count_correct(
        &mut self,
        samples: &[T],
        targets: &[usize],
    ) -> Result<usize, agd_core::Error> {
        // Thread 0's network holds a slice of a batch: evaluate in slices of that size.
        let net = &mut self.nets[0];
        let (d0, cap) = (net.widths()[0], net.capacity());
        let mut correct = 0;
        for (xs, ys) in samples.chunks(cap * d0).zip(targets.chunks(cap)) {
            correct += TrainNet::count_correct(net, xs, ys)?;
        }
        Ok(correct)
    }
}
