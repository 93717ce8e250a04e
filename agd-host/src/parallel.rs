//! Batch-parallel training on several threads (`--threads N`), for dense and conv networks:
//! the batch is cut into one slice per thread, every thread runs the core's forward and
//! backward pass on its slice in its own copy of the network, the per-slice gradients are
//! combined into the batch gradient, and the update is applied to every copy.
//!
//! The loss is a batch mean, so slice `t` of `b_t` samples contributes `(b_t/B)·g_t` to the
//! batch gradient `g = Σ_t (b_t/B) g_t`. The result equals the single-threaded step up to
//! the rounding of that sum.
//!
//! The threads are a persistent [`Pool`] owned by the [`DataParallel`] (the calling thread
//! runs copy 0, the pool's `N - 1` threads the others), so a step costs no thread start
//! (starting threads every step measured slower than one thread on this VM: its page-table
//! changes interrupt the other core), and its workers spin between the step's phases and
//! between steps instead of sleeping (see [`crate::pool`]). The gradient sum is cut by
//! weight range across the threads too. For a dense network each thread also forms its
//! range's share of every layer's `Σ g²` while the sum is still in its cache, the AGD step is
//! decided once from them
//! ([`Agd::plan`]), and each thread applies it to its weight range of every copy
//! ([`agd_core::StepPlan::apply`]); a conv network's step runs whole on every copy at once
//! (its per-kernel-position norms do not split by range, and its weights are few). Either way
//! every copy does the same arithmetic on the same inputs, so the copies stay bit-identical
//! without copying weights. A baseline's update (which keeps state, such as Adam's moments)
//! runs on copy 0 and its weights are copied to the others.

use agd_core::spec::LayerSpec;
use agd_core::{Agd, Element, Layout, Loss, Network, SplitMix64, StepReport, TrainReport};
use agd_simd::{axpy, dot, sum_sq_checked};
use core::ops::Range;

use crate::net::{HostConvNet, HostNet};
use crate::pages::HugeBuf;
use crate::pool::Pool;
use crate::train::{TrainNet, Update};

/// A network [`DataParallel`] runs one copy of per thread.
pub trait Replica<T: Element>: TrainNet<T> + Send + Sized {
    /// An all-zero network with the same layers, holding `capacity` samples.
    fn replica(&self, capacity: usize) -> Result<Self, agd_core::Error>;
    /// Forward, loss and backward on `samples` (`targets.len()` of them): the slice's mean
    /// loss and correct count; the slice's gradient is left in the gradient buffer. (The
    /// training loop's [`TrainNet::grad_step`] with an update that changes nothing.)
    fn slice_grads(
        &mut self,
        loss: Loss,
        samples: &[T],
        targets: &[usize],
    ) -> Result<(T, usize), agd_core::Error> {
        let input = self.input_mut(targets.len())?;
        if input.len() != samples.len() {
            return Err(agd_core::Error::BufferSize {
                buffer: "input",
                expected: input.len(),
                got: samples.len(),
            });
        }
        input.copy_from_slice(samples);
        self.grad_step(loss, targets, &mut |_, _| Ok(()))
    }
    /// All weights.
    fn weights(&self) -> &[T];
    /// All weights, to change.
    fn weights_mut(&mut self) -> &mut [T];
    /// The gradient buffer, as the last [`Replica::slice_grads`] left it.
    fn grads(&self) -> &[T];
    /// The AGD step of these weights by `grads` (a gradient of this network's shape, not
    /// its own buffer's); refused with every weight left as it was.
    fn agd_update(&mut self, agd: &Agd<T>, grads: &[T]) -> Result<StepReport<T>, agd_core::Error>;
    /// The widths of a dense network, whose AGD step can be planned once and applied by
    /// weight range ([`Agd::plan`]); `None` for a network whose step runs whole on each copy.
    fn dense_widths(&self) -> Option<&[usize]> {
        None
    }
}

impl<T: Element> Replica<T> for HostNet<T> {
    fn replica(&self, capacity: usize) -> Result<Self, agd_core::Error> {
        HostNet::new(self.widths(), capacity, true)
    }
    fn weights(&self) -> &[T] {
        HostNet::weights(self)
    }
    fn weights_mut(&mut self) -> &mut [T] {
        HostNet::weights_mut(self)
    }
    fn grads(&self) -> &[T] {
        HostNet::grads(self)
    }
    fn agd_update(&mut self, agd: &Agd<T>, grads: &[T]) -> Result<StepReport<T>, agd_core::Error> {
        let mut v = self.view();
        let (layout, w, _) = v.step_parts();
        agd.step(layout, w, grads)
    }
    fn dense_widths(&self) -> Option<&[usize]> {
        Some(self.widths())
    }
}

impl<T: Element> Replica<T> for HostConvNet<T> {
    fn replica(&self, capacity: usize) -> Result<Self, agd_core::Error> {
        HostConvNet::new(self.layers(), capacity)
    }
    fn weights(&self) -> &[T] {
        HostConvNet::weights(self)
    }
    fn weights_mut(&mut self) -> &mut [T] {
        HostConvNet::weights_mut(self)
    }
    fn grads(&self) -> &[T] {
        HostConvNet::grads(self)
    }
    fn agd_update(&mut self, agd: &Agd<T>, grads: &[T]) -> Result<StepReport<T>, agd_core::Error> {
        let (layout, w, norms) = self.step_buffers();
        agd.step_spec(layout, w, grads, norms)
    }
}

/// One network per thread, all with the same weights; copy 0 (the calling thread's) is the
/// one [`DataParallel::net`] shows.
#[derive(Debug)]
pub struct DataParallel<T, N = HostNet<T>> {
    nets: Vec<N>,
    /// Most samples per batch, over all threads.
    capacity: usize,
    /// A whole batch's inputs, filled through [`TrainNet::input_mut`] and cut into slices.
    staging: Vec<T>,
    /// The batch gradient `Σ_t (b_t/B) g_t` of the last step (on huge pages, like the
    /// networks' buffers).
    grads: HugeBuf<T>,
    /// A dense network's widths ([`Replica::dense_widths`]): its AGD step is split by range.
    dense: Option<Vec<usize>>,
    /// For a dense network, each layer's plain `Σ g²` of the last batch gradient.
    sums: Vec<T>,
    /// Runs copies `1..` (no workers with one copy).
    pool: Pool,
}

impl<T: Element> DataParallel<T, HostNet<T>> {
    /// `threads` copies of a zero dense network; each holds up to `capacity / threads`
    /// (rounded up) samples.
    pub fn new(widths: &[usize], capacity: usize, threads: usize) -> Result<Self, agd_core::Error> {
        Self::from_net(&HostNet::new(widths, 1, true)?, capacity, threads)
    }
}

impl<T: Element> DataParallel<T, HostConvNet<T>> {
    /// `threads` copies of a zero conv network ([`agd_core::spec`] layers); each holds up to
    /// `capacity / threads` (rounded up) samples.
    pub fn new_conv(
        layers: &[LayerSpec],
        capacity: usize,
        threads: usize,
    ) -> Result<Self, agd_core::Error> {
        Self::from_net(&HostConvNet::new(layers, 1)?, capacity, threads)
    }
}

impl<T: Element, N: Replica<T>> DataParallel<T, N> {
    /// `threads` zero copies of `net`'s layers (its weights are not copied), each holding up
    /// to `capacity / threads` (rounded up) samples.
    pub fn from_net(net: &N, capacity: usize, threads: usize) -> Result<Self, agd_core::Error> {
        if capacity == 0 {
            return Err(agd_core::Error::EmptyBatch);
        }
        let threads = threads.clamp(1, capacity);
        let per = capacity.div_ceil(threads);
        let nets = (0..threads)
            .map(|_| net.replica(per))
            .collect::<Result<Vec<_>, _>>()?;
        // Threads that cannot start leave their copies to the others (same results).
        let pool = Pool::new(threads - 1);
        Ok(DataParallel {
            grads: HugeBuf::zeros(net.param_count())?,
            dense: net.dense_widths().map(<[usize]>::to_vec),
            sums: Vec::new(),
            nets,
            capacity,
            staging: Vec::new(),
            pool,
        })
    }

    /// Threads in use (at most the batch capacity).
    pub fn threads(&self) -> usize {
        self.nets.len()
    }

    /// Every copy, copy 0 first.
    pub fn copies(&self) -> &[N] {
        &self.nets
    }

    /// Copy 0, giving up the others.
    pub fn into_net(self) -> N {
        self.nets.into_iter().next().expect("at least one network")
    }

    /// Copy 0; after changing its weights by hand (e.g. an initialisation), call
    /// [`DataParallel::sync`].
    pub fn net(&mut self) -> &mut N {
        &mut self.nets[0]
    }

    /// Copies copy 0's weights into every other copy.
    pub fn sync(&mut self) {
        let (first, rest) = self.nets.split_at_mut(1);
        let src = first[0].weights();
        for net in rest {
            net.weights_mut().copy_from_slice(src);
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
        let (loss, correct) = self.batch_grads(loss, samples, targets, true)?;
        let step = self.agd_all(agd)?;
        Ok(TrainReport {
            loss,
            correct,
            step,
        })
    }

    /// Forward and backward of every slice on its own thread; leaves the batch gradient
    /// `g = Σ_t (b_t/B)·g_t` in `self.grads` (and, with `sums`, a dense network's per-layer
    /// `Σ g²` in `self.sums`) and returns the batch's mean loss and correct count. No weight
    /// changes.
    fn batch_grads(
        &mut self,
        loss: Loss,
        samples: &[T],
        targets: &[usize],
        sums: bool,
    ) -> Result<(T, usize), agd_core::Error> {
        let batch = targets.len();
        if batch == 0 {
            return Err(agd_core::Error::EmptyBatch);
        }
        if batch > self.capacity {
            return Err(agd_core::Error::BatchTooLarge {
                batch,
                capacity: self.capacity,
            });
        }
        let d0 = self.nets[0].inputs();
        if samples.len() != batch * d0 {
            return Err(agd_core::Error::BufferSize {
                buffer: "input",
                expected: batch * d0,
                got: samples.len(),
            });
        }
        let per = batch.div_ceil(self.nets.len());
        let used = batch.div_ceil(per);
        let nets: Vec<&mut N> = self.nets[..used].iter_mut().collect();
        let results = self.pool.run(nets, |t, net| {
            let (lo, hi) = (t * per, ((t + 1) * per).min(batch));
            net.slice_grads(loss, &samples[lo * d0..hi * d0], &targets[lo..hi])
        });
        let mut total = T::ZERO;
        let mut correct = 0;
        let mut w = Vec::with_capacity(used);
        let inv_b = T::ONE / T::from_f64(batch as f64);
        for (t, r) in results.into_iter().enumerate() {
            let (l, c) = r?;
            let b_t = ((t + 1) * per).min(batch) - t * per;
            let w_t = T::from_f64(b_t as f64) * inv_b;
            total += w_t * l;
            correct += c;
            w.push(w_t);
        }
        self.sum_grads(&w, sums);
        Ok((total, correct))
    }

    /// Entries in each thread's part of the weights and gradients: an even share, rounded up
    /// to whole 64-byte lines so that no two threads write into one line.
    fn part_len(&self) -> usize {
        let line = (64 / T::BYTES).max(1);
        self.grads
            .len()
            .div_ceil(self.nets.len())
            .next_multiple_of(line)
            .max(line)
    }

    /// `self.grads ← Σ_t w_t g_t` over the first `w.len()` copies, the weight range cut into
    /// one part per thread. With `sums` (a dense network), each thread also adds up its
    /// part's share of every layer's `Σ g²` block by block while the block is in its cache,
    /// and `self.sums` receives the layers' totals.
    fn sum_grads(&mut self, w: &[T], sums: bool) {
        /// Entries summed before their squares are added up (32 KiB of `f32`).
        const BLOCK: usize = 8192;
        let part = self.part_len();
        // The layers' weight ranges (none without `sums`); the widths are a built network's.
        let layers: Vec<Range<usize>> = match self.dense.as_deref().filter(|_| sums) {
            Some(widths) => Layout::new(widths)
                .map(|l| (0..l.depth()).map(|k| l.weight_range(k)).collect())
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let layers = &layers[..];
        let mut srcs: Vec<_> = self.nets[..w.len()]
            .iter()
            .map(|n| n.grads().chunks(part))
            .collect();
        let jobs: Vec<(&mut [T], Vec<&[T]>)> = self
            .grads
            .chunks_mut(part)
            .map(|dst| (dst, next_of_each(&mut srcs)))
            .collect();
        let partial = self.pool.run(jobs, |p, (dst, parts)| {
            let mut sums = vec![T::ZERO; layers.len()];
            let n = dst.len();
            let mut lo = 0;
            while lo < n {
                let hi = (lo + BLOCK).min(n);
                let d = &mut dst[lo..hi];
                // g = Σ_t (b_t/B) g_t, the first two terms in one pass (the sum is
                // memory-bound: copy, scale and add took 5 passes over `g` where this takes 3).
                match parts[..] {
                    [g0, g1, ..] => {
                        for ((d, &a), &b) in d.iter_mut().zip(&g0[lo..hi]).zip(&g1[lo..hi]) {
                            *d = w[0] * a + w[1] * b;
                        }
                    }
                    [g0] => {
                        for (d, &a) in d.iter_mut().zip(&g0[lo..hi]) {
                            *d = w[0] * a;
                        }
                    }
                    [] => {}
                }
                for (&w_t, src) in w.iter().zip(&parts).skip(2) {
                    axpy(w_t, &src[lo..hi], d);
                }
                // This block's entries of each layer, in the flat gradient's numbering.
                let (at, to) = (p * part + lo, p * part + hi);
                for (sum, r) in sums.iter_mut().zip(layers) {
                    let (a, b) = (r.start.max(at), r.end.min(to));
                    if a < b {
                        let seg = &d[a - at..b - at];
                        *sum += dot(seg, seg);
                    }
                }
                lo = hi;
            }
            sums
        });
        self.sums.clear();
        self.sums.resize(layers.len(), T::ZERO);
        for sums in partial {
            for (total, s) in self.sums.iter_mut().zip(sums) {
                *total += s;
            }
        }
    }

    /// The AGD step of every copy by the batch gradient. The copies do the same arithmetic
    /// on the same inputs, so they stay bit-identical, and a step refused (before any
    /// weight changes) is refused for all.
    fn agd_all(&mut self, agd: &Agd<T>) -> Result<StepReport<T>, agd_core::Error> {
        if self.dense.is_some() {
            return self.agd_split(agd);
        }
        let grads = &self.grads;
        let nets: Vec<&mut N> = self.nets.iter_mut().collect();
        let mut results = self
            .pool
            .run(nets, |_, net| net.agd_update(agd, grads))
            .into_iter();
        let first = results.next().expect("at least one copy");
        debug_assert!(results.all(|r| r.is_ok() == first.is_ok()));
        first
    }

    /// A dense network's AGD step: planned once from the per-layer sums the gradient sum
    /// formed (each checked, and redone safely from the gradient if it overflowed or
    /// underflowed, as in the single-threaded step), then applied by each thread to its
    /// part of every copy's weights.
    fn agd_split(&mut self, agd: &Agd<T>) -> Result<StepReport<T>, agd_core::Error> {
        let widths = self.dense.as_deref().unwrap_or_default();
        let layout = Layout::new(widths)?;
        let grads = &self.grads;
        let norms: Vec<T> = (self.sums.iter().enumerate())
            .map(|(k, &s)| sum_sq_checked(s, &grads[layout.weight_range(k)]).norm())
            .collect();
        let plan = agd.plan(layout, self.nets[0].weights(), &norms)?;
        // Every part's range and lengths hold by construction; checked here all the same,
        // before any weight changes, so that no copy can be left half updated.
        for net in &self.nets {
            if net.weights().len() != grads.len() {
                return Err(agd_core::Error::BufferSize {
                    buffer: "weights",
                    expected: grads.len(),
                    got: net.weights().len(),
                });
            }
        }
        let part = self.part_len();
        let mut copies: Vec<_> = self
            .nets
            .iter_mut()
            .map(|n| n.weights_mut().chunks_mut(part))
            .collect();
        let jobs: Vec<(Vec<&mut [T]>, &[T])> = grads
            .chunks(part)
            .map(|g| (next_of_each(&mut copies), g))
            .collect();
        let plan_ref = &plan;
        for r in self.pool.run(jobs, |p, (ws, g)| {
            ws.into_iter()
                .try_for_each(|w| plan_ref.apply(layout, p * part, w, g))
        }) {
            r?;
        }
        Ok(plan.report().clone())
    }

    /// Runs `update(weights, batch gradient)` on copy 0 and, when it succeeds, copies the
    /// new weights to every other copy; a refused update changes no weight on any copy.
    fn update_first(&mut self, update: &mut Update<'_, T>) -> Result<(), agd_core::Error> {
        update(self.nets[0].weights_mut(), &self.grads)?;
        self.sync();
        Ok(())
    }

    /// [`Self::batch_grads`] on the staged inputs.
    fn staged_grads(
        &mut self,
        loss: Loss,
        targets: &[usize],
        sums: bool,
    ) -> Result<(T, usize), agd_core::Error> {
        let staging = std::mem::take(&mut self.staging);
        let d0 = self.nets[0].inputs();
        let n = (targets.len() * d0).min(staging.len());
        let r = self.batch_grads(loss, &staging[..n], targets, sums);
        self.staging = staging;
        r
    }
}

/// The next item of each of `iters`, which are all as long as the iterator the caller walks
/// beside them: one part of every copy's buffer, for the thread that takes that part.
fn next_of_each<I: Iterator>(iters: &mut [I]) -> Vec<I::Item> {
    iters
        .iter_mut()
        .map(|c| c.next().expect("same length"))
        .collect()
}

/// The training loop drives a `DataParallel` like any network (`agd train --threads N`):
/// inputs are staged for the whole batch, gradients computed on every thread, and the
/// update (AGD or a baseline's) applied to every copy. A refused step changes no weight on
/// any copy.
impl<T: Element, N: Replica<T>> TrainNet<T> for DataParallel<T, N> {
    fn capacity(&self) -> usize {
        self.capacity
    }
    fn inputs(&self) -> usize {
        self.nets[0].inputs()
    }
    fn param_count(&self) -> usize {
        self.nets[0].param_count()
    }
    fn init_orthogonal(&mut self, rng: &mut SplitMix64) {
        self.nets[0].init_orthogonal(rng);
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
        let d0 = self.nets[0].inputs();
        self.staging.resize(self.capacity * d0, T::ZERO);
        Ok(&mut self.staging[..batch * d0])
    }
    fn agd_step(
        &mut self,
        agd: &Agd<T>,
        loss: Loss,
        targets: &[usize],
    ) -> Result<(T, usize, T), agd_core::Error> {
        let (l, c) = self.staged_grads(loss, targets, true)?;
        let step = self.agd_all(agd)?;
        Ok((l, c, step.eta))
    }
    fn grad_step(
        &mut self,
        loss: Loss,
        targets: &[usize],
        update: &mut Update<'_, T>,
    ) -> Result<(T, usize), agd_core::Error> {
        let (l, c) = self.staged_grads(loss, targets, false)?;
        self.update_first(update)?;
        Ok((l, c))
    }
    fn count_correct(
        &mut self,
        samples: &[T],
        targets: &[usize],
    ) -> Result<usize, agd_core::Error> {
        let mut correct = 0;
        self.on_slices(samples, targets, |net, xs, ys| {
            correct += net.count_correct(xs, ys)?;
            Ok(())
        })?;
        Ok(correct)
    }
    fn score(
        &mut self,
        samples: &[T],
        targets: &[usize],
        loss: Loss,
    ) -> Result<(usize, T), agd_core::Error> {
        let (mut correct, mut sum) = (0, 0.0);
        self.on_slices(samples, targets, |net, xs, ys| {
            let (c, l) = net.score(xs, ys, loss)?;
            correct += c;
            sum += l.to_f64() * ys.len() as f64;
            Ok(())
        })?;
        Ok((correct, T::from_f64(sum / targets.len().max(1) as f64)))
    }
}

impl<T: Element, N: Replica<T>> DataParallel<T, N> {
    /// Runs `f` on copy 0 over `samples` and their `targets` in slices of its capacity (it
    /// holds a slice of a batch), for evaluation.
    fn on_slices(
        &mut self,
        samples: &[T],
        targets: &[usize],
        mut f: impl FnMut(&mut N, &[T], &[usize]) -> Result<(), agd_core::Error>,
    ) -> Result<(), agd_core::Error> {
        let net = &mut self.nets[0];
        let (d0, cap) = (net.inputs(), net.capacity());
        for (xs, ys) in samples.chunks(cap * d0).zip(targets.chunks(cap)) {
            f(net, xs, ys)?;
        }
        Ok(())
    }
}
