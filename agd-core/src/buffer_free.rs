//! The gradient-buffer-free AGD step for dense layers (this project's extension, AGD.md
//! "Beyond the reference").
//!
//! For a batch, layer `k`'s gradient is `g_k = Σ_n δ_n h_nᵀ`, with `h_n` the layer's input and
//! `δ_n = ∂loss/∂z_n` its back-propagated error, both already in the network's activation and
//! error buffers after the backward pass. Its Frobenius norm follows from the two `B x B` Gram
//! matrices, with no `d_out x d_in` buffer:
//!
//! ```text
//! ||g_k||_F² = Σ_{n,m} (δ_n·δ_m)(h_n·h_m)        (B = 1: ||g_k||_F = ||δ|| ||h||)
//! ```
//!
//! G and η are then formed exactly as in [`Agd::step`], and the update is applied as a
//! rank-`B` product straight into the weights: `W_k ← W_k − c_k Σ_n δ_n h_nᵀ`. Same
//! mathematics as the reference step; the RAM is the weights plus what backprop needs.
//!
//! ```
//! use agd_core::{Agd, Loss, Network};
//! agd_core::dense_network!(Small: f32 = [4, 8, 3], batch 2, buffer_free);
//!
//! let mut net = Small::new();
//! let mut v = net.view();
//! v.init_orthogonal(&mut agd_core::SplitMix64::new(3));
//! v.input_mut(2).unwrap().copy_from_slice(&[1.0, -1.0, 0.5, 2.0, 0.0, 1.0, -2.0, 0.5]);
//! let first = v.train_step_buffer_free(&Agd::new(), Loss::Xent, &[2, 0]).unwrap();
//! let second = v.train_step_buffer_free(&Agd::new(), Loss::Xent, &[2, 0]).unwrap();
//! assert!(second.loss < first.loss);
//! ```

use agd_simd::{Element, amax, matmul_nt, matmul_tn};
use heapless::Vec;

use crate::agd::{Agd, Coefficient, StepReport, summarize};
use crate::error::Error;
use crate::layout::MAX_DEPTH;
use crate::net::NetMut;

/// `||Σ_n δ_n h_nᵀ||_F` from the Gram identity `Σ_{n,m} (δ_n·δ_m)(h_n·h_m)`, without forming
/// the `d_out x d_in` product.
///
/// `deltas` is `batch x d_out` and `inputs` is `batch x d_in`, row-major (one sample per row).
/// A NaN or infinite entry gives a NaN or infinite norm, except that all-zero errors `δ` give
/// exactly 0 whatever the inputs (as the standard backward pass, which skips zero errors);
/// all-zero inputs with finite errors give exactly 0 too.
///
/// Precision: the Gram sum is off by up to about `(d + B²)·ε·κ²` relative to `||g||²`, with
/// `κ = Σ_n ||δ_n|| ||h_n|| / ||g||`: fine while the per-sample gradients do not cancel
/// much, but squared where they do. A layer with a side no wider than the batch (at most 16),
/// where that cancellation is typical, forms its gradient's rows instead (`narrow_sum`),
/// whose error grows only with `κ`, as the standard backward pass's does.
///
/// Fast path: plain Gram blocks (`gram_sum_blocked`). Only if that sum overflowed, is NaN,
/// or is so small that products may have underflowed is it redone with every entry divided by
/// the largest magnitude of its block (the scaling of LAPACK's `xLASSQ`, here on two
/// factors), so the result is right from the smallest subnormal to the largest finite
/// entries.
///
/// ```
/// // One sample: ||δ hᵀ|| = ||δ|| ||h||.
/// let d = [3.0f64, 4.0];
/// let h = [1.0f64, 0.0, 0.0];
/// assert_eq!(agd_core::buffer_free::grad_norm(1, &d, &h).unwrap(), 5.0);
/// ```
pub fn grad_norm<T: Element>(batch: usize, deltas: &[T], inputs: &[T]) -> Result<T, Error> {
    grad_norm_bounded(batch, deltas, inputs).map(|(n, _)| n)
}

/// Bounds the step needs to apply an update without an intermediate overflow, found on the
/// way to the norm at no extra pass over the data: `delta` ≥ every `|δ|`, and `sum` ≥ every
/// partial sum `Σ_b |δ_bi| |h_bj|` of a gradient entry. From the Gram diagonals (`delta =
/// ||Δ||_F`, `sum = ||Δ||_F ||H||_F` by Cauchy–Schwarz), or from the largest magnitudes on
/// the scaled path (`delta = max|δ|`, `sum = max|δ|·max|h|·B`). Infinite if they overflow.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds<T> {
    pub delta: T,
    /// ≥ every `|h|` (`||H||_F`, or `max|h|`): the kernel may fold the coefficient into
    /// either factor, so both `c·δ` and `c·h` must stay finite.
    pub input: T,
    pub sum: T,
}

/// [`grad_norm`] with the [`Bounds`] of the same blocks.
pub(crate) fn grad_norm_bounded<T: Element>(
    batch: usize,
    deltas: &[T],
    inputs: &[T],
) -> Result<(T, Bounds<T>), Error> {
    if batch == 0 {
        return Err(Error::EmptyBatch);
    }
    if deltas.is_empty() || !deltas.len().is_multiple_of(batch) {
        return Err(Error::BufferSize {
            buffer: "deltas",
            expected: batch,
            got: deltas.len(),
        });
    }
    if inputs.is_empty() || !inputs.len().is_multiple_of(batch) {
        return Err(Error::BufferSize {
            buffer: "activations",
            expected: batch,
            got: inputs.len(),
        });
    }
    let (d_out, d_in) = (deltas.len() / batch, inputs.len() / batch);
    let narrow = d_out.min(d_in);
    let (plain, trace_d, trace_h) = if narrow <= batch && narrow <= NARROW {
        narrow_sum(batch, deltas, d_out, inputs, d_in)
    } else {
        gram_sum_blocked(batch, deltas, d_out, inputs, d_in)?
    };
    if plain.is_finite() && plain >= T::MIN_POSITIVE / T::EPSILON {
        let (fd, fh) = (trace_d.sqrt(), trace_h.sqrt());
        let bounds = if (fd * fh).is_finite() {
            Bounds {
                delta: fd,
                input: fh,
                sum: fd * fh,
            }
        } else {
            // The traces overflowed although the Gram sum did not: bound by magnitudes.
            let (a_d, a_h) = (amax(deltas), amax(inputs));
            Bounds {
                delta: a_d,
                input: a_h,
                sum: a_d * a_h * T::from_f64(batch as f64),
            }
        };
        return Ok((plain.sqrt(), bounds));
    }
    // Overflow, underflow or NaN: scale each block by its largest magnitude.
    // The order of these checks follows the standard backward pass, whose weight gradient
    // skips samples with zero error: zero errors give a zero gradient whatever the inputs,
    // while a NaN or infinite error poisons it even against zero inputs (NaN·0 = NaN).
    let (a_d, a_h) = (amax(deltas), amax(inputs));
    let bounds = Bounds {
        delta: a_d,
        input: a_h,
        sum: a_d * a_h * T::from_f64(batch as f64),
    };
    if a_d == T::ZERO {
        return Ok((T::ZERO, bounds));
    }
    if !a_d.is_finite() || !a_h.is_finite() {
        // NaN stays NaN, infinity stays infinite (or NaN against zero); the step refuses.
        return Ok((a_d * a_h, bounds));
    }
    if a_h == T::ZERO {
        return Ok((T::ZERO, bounds));
    }
    let scaled = gram_sum(
        batch,
        deltas,
        d_out,
        inputs,
        d_in,
        |x, y| scaled_dot(x, y, a_d),
        |x, y| scaled_dot(x, y, a_h),
    );
    // The Gram sum is a norm squared; rounding can leave it a hair below 0 when g ≈ 0.
    let scaled = if scaled > T::ZERO { scaled } else { T::ZERO };
    Ok((a_d * (a_h * scaled.sqrt()), bounds))
}

/// Widest layer side [`narrow_sum`] takes (its row of the gradient lives on the stack).
const NARROW: usize = 16;

/// `||Σ_n δ_n h_nᵀ||_F²` formed a row at a time along the layer's narrow side (at most
/// [`NARROW`] wide, and no wider than the batch), with the traces `Σ_n ||δ_n||²` and
/// `Σ_n ||h_n||²`: what [`gram_sum_blocked`] returns, for a layer where the Gram identity
/// loses precision.
///
/// When a side is no wider than the batch, the per-sample gradients `δ_n h_nᵀ` live in a
/// space of few dimensions and often nearly cancel (a one-wide input with mixed signs: `g =
/// Σ_n h_n δ_n`). The Gram sum's rounding error is about `ε·(Σ_n ||δ_n|| ||h_n||)²`, so
/// relative to `||g||²` it grows with the square of that cancellation (measured in f32:
/// 1.3e-4 off on a 1 → 8 layer, batch 7, where the gradient product was 1e-5 off); forming
/// the gradient's rows keeps the error linear in it, like the standard backward pass. The
/// cost, `d_out·d_in·batch` multiply-adds, is the Gram sum's or less at these widths.
fn narrow_sum<T: Element>(
    batch: usize,
    deltas: &[T],
    d_out: usize,
    inputs: &[T],
    d_in: usize,
) -> (T, T, T) {
    // g (or gᵀ) is `wide x narrow`: row i = Σ_n w_n[i] · v_n.
    let (w, wd, v, nd) = if d_in <= d_out {
        (deltas, d_out, inputs, d_in)
    } else {
        (inputs, d_in, deltas, d_out)
    };
    let mut sum = T::ZERO;
    let mut row = [T::ZERO; NARROW];
    let row = &mut row[..nd];
    for i in 0..wd {
        row.fill(T::ZERO);
        for (wn, vn) in w.chunks_exact(wd).zip(v.chunks_exact(nd)).take(batch) {
            let a = wn[i];
            for (r, &x) in row.iter_mut().zip(vn) {
                *r += a * x;
            }
        }
        for &r in row.iter() {
            sum += r * r;
        }
    }
    let trace = |x: &[T]| x.iter().fold(T::ZERO, |s, &e| s + e * e);
    (sum, trace(deltas), trace(inputs))
}

/// `Σ_{n,m} (δ_n·δ_m)(h_n·h_m)` from 4x4 blocks of the two Gram matrices `Δ Δᵀ` and `H Hᵀ`,
/// each a small [`matmul_nt`] (the kernels' fastest shape), blocks above the diagonal counted
/// twice by symmetry. Plain products: the caller checks the result for overflow. Also returns
/// the traces `Σ_n ||δ_n||²` and `Σ_n ||h_n||²` (the diagonal blocks' diagonals).
fn gram_sum_blocked<T: Element>(
    batch: usize,
    deltas: &[T],
    d_out: usize,
    inputs: &[T],
    d_in: usize,
) -> Result<(T, T, T), Error> {
    const BLOCK: usize = 4;
    let two = T::from_f64(2.0);
    let mut gd = [T::ZERO; BLOCK * BLOCK];
    let mut gh = [T::ZERO; BLOCK * BLOCK];
    let mut sum = T::ZERO;
    let (mut trace_d, mut trace_h) = (T::ZERO, T::ZERO);
    for n0 in (0..batch).step_by(BLOCK) {
        let bn = BLOCK.min(batch - n0);
        let (dn, hn) = (
            &deltas[n0 * d_out..(n0 + bn) * d_out],
            &inputs[n0 * d_in..(n0 + bn) * d_in],
        );
        for m0 in (n0..batch).step_by(BLOCK) {
            let bm = BLOCK.min(batch - m0);
            let (dm, hm) = (
                &deltas[m0 * d_out..(m0 + bm) * d_out],
                &inputs[m0 * d_in..(m0 + bm) * d_in],
            );
            let (gd, gh) = (&mut gd[..bn * bm], &mut gh[..bn * bm]);
            matmul_nt(bn, bm, d_out, T::ONE, dn, dm, T::ZERO, gd)?;
            matmul_nt(bn, bm, d_in, T::ONE, hn, hm, T::ZERO, gh)?;
            let mut s = T::ZERO;
            for (&x, &y) in gd.iter().zip(gh.iter()) {
                s += x * y;
            }
            if m0 == n0 {
                sum += s;
                for i in 0..bn {
                    trace_d += gd[i * bm + i];
                    trace_h += gh[i * bm + i];
                }
            } else {
                sum += two * s;
            }
        }
    }
    Ok((sum, trace_d, trace_h))
}

/// `Σ_{n,m} (δ_n·δ_m)(h_n·h_m)`, using symmetry: the diagonal once, each pair `n < m` twice.
/// A pair whose errors are orthogonal (often: ReLU zeroes many) skips its input product.
fn gram_sum<T: Element>(
    batch: usize,
    deltas: &[T],
    d_out: usize,
    inputs: &[T],
    d_in: usize,
    dot_d: impl Fn(&[T], &[T]) -> T,
    dot_h: impl Fn(&[T], &[T]) -> T,
) -> T {
    let two = T::from_f64(2.0);
    let mut sum = T::ZERO;
    for n in 0..batch {
        let dn = &deltas[n * d_out..(n + 1) * d_out];
        let hn = &inputs[n * d_in..(n + 1) * d_in];
        for m in n..batch {
            let dd = dot_d(dn, &deltas[m * d_out..(m + 1) * d_out]);
            if dd == T::ZERO {
                continue;
            }
            let hh = dot_h(hn, &inputs[m * d_in..(m + 1) * d_in]);
            let term = dd * hh;
            sum += if m == n { term } else { two * term };
        }
    }
    sum
}

/// `Σ_i (x_i/a)(y_i/a)` for the largest magnitude `a` of the block the rows come from (finite,
/// non-zero): every factor is at most 1 in magnitude, so nothing overflows, and the largest
/// entries are near 1, so the sum does not underflow to nothing.
fn scaled_dot<T: Element>(x: &[T], y: &[T], a: T) -> T {
    let inv = T::ONE / a;
    let mut s = T::ZERO;
    if inv.is_finite() {
        for (&p, &q) in x.iter().zip(y) {
            s += (p * inv) * (q * inv);
        }
    } else {
        // `a` is subnormal: 1/a overflows, divide instead.
        for (&p, &q) in x.iter().zip(y) {
            s += (p / a) * (q / a);
        }
    }
    s
}

impl<T: Element> Agd<T> {
    /// One AGD step with no gradient buffer, from the errors and activations the last
    /// backward pass left in `net` (after [`NetMut::forward`], [`NetMut::loss_grad`] and
    /// [`NetMut::backprop_errors`] on the same `batch`).
    ///
    /// Every layer's norm `||g_k||_F` comes from the Gram identity (see [`grad_norm`]) and is
    /// computed from the errors and inputs of the *old* weights before anything moves; then
    /// `W_k ← W_k − (gain·η/L)·(s_k/||g_k||_F)·Σ_n δ_n h_nᵀ` is applied as a rank-`batch`
    /// update. As in [`Agd::step`]: a NaN or infinite norm, G or η, or an update that could
    /// overflow a weight, is an error and no weight changes; a layer whose gradient is exactly
    /// zero stays bit-for-bit unchanged.
    pub fn step_buffer_free(
        &self,
        net: &mut NetMut<'_, T>,
        batch: usize,
    ) -> Result<StepReport<T>, Error> {
        let (layout, capacity, weights, acts, deltas) = net.buffer_free_parts();
        if batch == 0 {
            return Err(Error::EmptyBatch);
        }
        if batch > capacity {
            return Err(Error::BatchTooLarge { batch, capacity });
        }
        let block = |k: usize| {
            let (d_out, d_in) = layout.shape(k);
            let h = &acts[layout.act_offset(k, capacity)..][..batch * d_in];
            let d = &deltas[layout.delta_offset(k, capacity)..][..batch * d_out];
            (d, h)
        };
        let mut norms: Vec<T, MAX_DEPTH> = Vec::new();
        let mut bounds: Vec<Bounds<T>, MAX_DEPTH> = Vec::new();
        for k in 0..layout.depth() {
            let (d, h) = block(k);
            let (n, b) = grad_norm_bounded(batch, d, h)?;
            // Layout guarantees depth <= MAX_DEPTH, so the pushes cannot fail.
            let _ = norms.push(n);
            let _ = bounds.push(b);
        }
        let (g, eta) = summarize(layout, &norms)?;
        // s_k once per layer: on an FPU-less or f32-only core its f64 sqrt is not free.
        let mut scales: Vec<T, MAX_DEPTH> = Vec::new();
        for (k, &n) in norms.iter().enumerate() {
            let s = layout.scale::<T>(k);
            let _ = scales.push(s);
            if n != T::ZERO {
                if !bounds[k].sum.is_finite() {
                    // Even forming a gradient entry could overflow.
                    return Err(Error::WeightOverflow { layer: k });
                }
                // The Gram-identity norm is computed, not measured on the update itself: allow
                // the update twice its nominal norm (s_k doubled) before calling it safe.
                let s2 = T::from_f64(2.0) * s;
                let w = &weights[layout.weight_range(k)];
                self.check_overflow_for(layout.depth(), s2, k, eta, w)?;
            }
        }
        // Below this, adding a partial sum to any finite weight cannot round to infinity
        // (a quarter of half an ulp of T::MAX, as in `Agd::check_overflow`).
        let tiny_vs_max = T::MAX * T::EPSILON * T::from_f64(0.125);
        // With an absurd gain an update entry can come near T::MAX, where the Gram-identity
        // norm's rounding matters: then every layer goes entry by entry, and a dry run of that
        // exact arithmetic proves every new weight finite before any weight is written.
        let depth_t = T::from_f64(layout.depth() as f64);
        let absurd = scales.iter().any(|&s| {
            let u = self.gain() * eta / depth_t * T::from_f64(2.0) * s;
            u >= tiny_vs_max || !u.is_finite()
        });
        if absurd {
            for (k, &n) in norms.iter().enumerate() {
                let (d_out, d_in) = layout.shape(k);
                let (d, h) = block(k);
                let w = &weights[layout.weight_range(k)];
                let scale = |gij: T| match self.coefficient_for(layout.depth(), scales[k], eta, n) {
                    Coefficient::Skip => T::ZERO,
                    Coefficient::Scale(c) => c * gij,
                    Coefficient::Divide(cs, n) => cs * (gij / n),
                };
                for (i, row) in w.chunks_exact(d_in).enumerate() {
                    for (j, &wij) in row.iter().enumerate() {
                        let mut gij = T::ZERO;
                        for b in 0..batch {
                            gij += d[b * d_out + i] * h[b * d_in + j];
                        }
                        if !(wij - scale(gij)).is_finite() {
                            return Err(Error::WeightOverflow { layer: k });
                        }
                    }
                }
            }
        }
        for (k, &n) in norms.iter().enumerate() {
            let (d_out, d_in) = layout.shape(k);
            let (d, h) = block(k);
            let w = &mut weights[layout.weight_range(k)];
            // Entry by entry: g_ij = Σ_b δ_bi h_bj formed first, then scaled. Only for
            // vanishing gradients or absurd gains, so speed does not matter here.
            let by_entry = |w: &mut [T], scale: &dyn Fn(T) -> T| {
                for (i, row) in w.chunks_exact_mut(d_in).enumerate() {
                    for (j, wij) in row.iter_mut().enumerate() {
                        let mut gij = T::ZERO;
                        for b in 0..batch {
                            gij += d[b * d_out + i] * h[b * d_in + j];
                        }
                        *wij -= scale(gij);
                    }
                }
            };
            match self.coefficient_for(layout.depth(), scales[k], eta, n) {
                Coefficient::Skip => {}
                // W ← W − c Δᵀ H: the rank-B product accumulated straight into the weights.
                // The kernel forms (c·δ)·h and adds partial sums to W, so it is only used when
                // no such intermediate can overflow: c·max|δ| finite, and c·max|δ|·max|h|·B
                // small against T::MAX.
                Coefficient::Scale(c)
                    if !absurd
                        && (c * bounds[k].delta).is_finite()
                        && (c * bounds[k].input).is_finite()
                        && c * bounds[k].sum < tiny_vs_max =>
                {
                    matmul_tn(d_out, d_in, batch, -c, d, h, T::ONE, w)?
                }
                Coefficient::Scale(c) => by_entry(w, &|gij| c * gij),
                // s_k/n_k overflows: as in `Agd::step`, divide each gradient entry by n_k first.
                Coefficient::Divide(cs, n) => by_entry(w, &|gij| cs * (gij / n)),
            }
        }
        Ok(StepReport {
            g,
            eta,
            grad_norms: norms,
        })
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec;
    use std::vec::Vec as StdVec;

    use agd_simd::{matmul_tn, nrm2};
    use proptest::prelude::*;
    use rand_core::Rng;

    use super::grad_norm;
    use crate::init::fill_gaussian;
    use crate::{Agd, Element, Loss, NetMut, SplitMix64, act_count, delta_count, param_count};

    /// Owned buffers for one network.
    struct Bufs<T> {
        widths: StdVec<usize>,
        cap: usize,
        w: StdVec<T>,
        g: StdVec<T>,
        a: StdVec<T>,
        d: StdVec<T>,
    }

    impl<T: Element> Bufs<T> {
        fn new(widths: &[usize], cap: usize, grads: bool) -> Self {
            let p = param_count(widths);
            Bufs {
                widths: widths.to_vec(),
                cap,
                w: vec![T::ZERO; p],
                g: vec![T::ZERO; if grads { p } else { 0 }],
                a: vec![T::ZERO; act_count(widths, cap)],
                d: vec![T::ZERO; delta_count(widths, cap)],
            }
        }

        fn view(&mut self) -> NetMut<'_, T> {
            NetMut::new(
                &self.widths,
                self.cap,
                &mut self.w,
                &mut self.g,
                &mut self.a,
                &mut self.d,
            )
            .unwrap()
        }
    }

    fn rel_close<T: Element>(got: T, want: T, tol: f64) -> bool {
        (got.to_f64() - want.to_f64()).abs() <= tol * want.to_f64().abs()
    }

    fn max_abs<T: Element>(x: &[T]) -> f64 {
        x.iter().fold(0.0, |m: f64, v| m.max(v.to_f64().abs()))
    }

    /// `max|got − want| <= tol · max|want|`, the golden README's tensor metric.
    fn tensor_close<T: Element>(got: &[T], want: &[T], tol: f64) -> bool {
        let diff = got
            .iter()
            .zip(want)
            .fold(0.0, |m: f64, (a, b)| m.max((a.to_f64() - b.to_f64()).abs()));
        got.len() == want.len() && diff <= tol * max_abs(want)
    }

    /// Trains two copies of one random network — standard step and buffer-free step — on
    /// the same batches and checks that each step agrees. Every step starts both copies from
    /// the same weights (the standard step's): otherwise a last-bit difference in one step's
    /// update can come back a thousandfold larger a few steps later, where a layer's output
    /// is a near-cancelling sum (seen in f32: `[22, 2, 3]`, batch 1, a hidden activation of
    /// 1e-4 from weights of order 1 after three steps; both f32 runs were then 2–4e-4 off the
    /// f64 one), and the test would measure the trajectory's conditioning, not the step.
    fn same_trajectory<T: Element>(
        widths: &[usize],
        batch: usize,
        loss: Loss,
        gain: f64,
        seed: u64,
        tol: f64,
    ) -> Result<(), TestCaseError> {
        let mut rng = SplitMix64::new(seed);
        let mut std_net = Bufs::<T>::new(widths, batch + 1, true);
        let mut free_net = Bufs::<T>::new(widths, batch + 1, false);
        std_net.view().init_orthogonal(&mut rng);
        let agd = Agd::with_gain(T::from_f64(gain)).unwrap();
        let classes = *widths.last().unwrap();
        for _ in 0..4 {
            free_net.w.copy_from_slice(&std_net.w);
            let mut x = vec![T::ZERO; batch * widths[0]];
            fill_gaussian(&mut x, &mut rng);
            let targets: StdVec<usize> = (0..batch)
                .map(|_| (rng.next_u64() % classes as u64) as usize)
                .collect();
            let mut sv = std_net.view();
            sv.set_input(&x).unwrap();
            let want = sv.train_step(&agd, loss, &targets).unwrap();
            let mut fv = free_net.view();
            fv.set_input(&x).unwrap();
            let got = fv.train_step_buffer_free(&agd, loss, &targets).unwrap();
            prop_assert!(rel_close(got.loss, want.loss, tol));
            prop_assert!(rel_close(got.step.g, want.step.g, tol));
            prop_assert!(rel_close(got.step.eta, want.step.eta, tol));
            for (k, (&a, &b)) in got
                .step
                .grad_norms
                .iter()
                .zip(&want.step.grad_norms)
                .enumerate()
            {
                // The Gram sum's rounding, relative to ||g||², is at most (d + B²)·ε·κ² (the
                // worst-case bound of its dot products, `d` the longer side, and of its B²
                // terms), with κ = Σ_n ||δ_n|| ||h_n|| / ||g|| measuring how much the
                // per-sample gradients cancel; the norm, its square root, gets half of it.
                // Per-sample gradients that nearly cancel may leave it that far off.
                let sv = std_net.view();
                let (dk, hk) = (sv.deltas(k, batch), sv.activations(k, batch));
                let (d_out, d_in) = (dk.len() / batch, hk.len() / batch);
                let norm = |x: &[T]| x.iter().map(|v| v.to_f64().powi(2)).sum::<f64>().sqrt();
                let spread: f64 = (0..batch)
                    .map(|n| norm(&dk[n * d_out..][..d_out]) * norm(&hk[n * d_in..][..d_in]))
                    .sum();
                let kappa = spread / b.to_f64().max(f64::MIN_POSITIVE);
                let terms = (d_out.max(d_in) + batch * batch) as f64;
                let gram = 0.5 * terms * T::EPSILON.to_f64() * kappa * kappa;
                prop_assert!(
                    rel_close(a, b, tol + gram),
                    "layer {} norm {:?} vs {:?} (κ {})",
                    k,
                    a,
                    b,
                    kappa
                );
            }
            prop_assert!(tensor_close(&free_net.w, &std_net.w, tol));
        }
        Ok(())
    }

    fn arb_widths() -> impl Strategy<Value = StdVec<usize>> {
        prop::collection::vec(1usize..24, 2..6)
    }

    proptest! {
        // Interpreted under Miri a case takes seconds: a few cases still walk every path.
        #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 3 } else { 48 }))]

        #[test]
        fn buffer_free_step_equals_standard_step_f64(
            widths in arb_widths(),
            batch in 1usize..10,
            mse in any::<bool>(),
            gain in prop::sample::select(vec![0.5, 1.0, 3.0]),
            seed in any::<u64>(),
        ) {
            let loss = if mse { Loss::Mse } else { Loss::Xent };
            same_trajectory::<f64>(&widths, batch, loss, gain, seed, 1e-9)?;
        }

        #[test]
        fn buffer_free_step_equals_standard_step_f32(
            widths in arb_widths(),
            batch in 1usize..10,
            mse in any::<bool>(),
            seed in any::<u64>(),
        ) {
            let loss = if mse { Loss::Mse } else { Loss::Xent };
            same_trajectory::<f32>(&widths, batch, loss, 1.0, seed, 1e-4)?;
        }

        #[test]
        fn gram_norm_equals_norm_of_formed_gradient(
            d_out in 1usize..20,
            d_in in 1usize..20,
            batch in 1usize..10,
            seed in any::<u64>(),
            // Entries from 1e-200 to 1e200: the plain Gram sum overflows or underflows at
            // the ends, the scaled path must not.
            exp in -200i32..200,
        ) {
            let mut rng = SplitMix64::new(seed);
            let mut d = vec![0.0f64; batch * d_out];
            let mut h = vec![0.0f64; batch * d_in];
            fill_gaussian(&mut d, &mut rng);
            fill_gaussian(&mut h, &mut rng);
            let s = 10f64.powi(exp / 2);
            d.iter_mut().for_each(|v| *v *= s);
            h.iter_mut().for_each(|v| *v *= s);
            let mut g = vec![0.0f64; d_out * d_in];
            matmul_tn(d_out, d_in, batch, 1.0, &d, &h, 0.0, &mut g).unwrap();
            let want = nrm2(&g);
            let got = grad_norm(batch, &d, &h).unwrap();
            // Entries of g below ~1e-292 lose precision as subnormals in `want` itself.
            let tol = if exp < -290 { 1e-6 } else { 1e-10 };
            prop_assert!(rel_close(got, want, tol), "{} vs {}", got, want);
        }
    }

    #[test]
    fn narrow_layer_norm_keeps_its_precision_when_samples_cancel() {
        // A one-wide input (d_in = 1) with alternating signs: g = Σ_n h_n δ_n, and each δ_n is
        // one shared vector plus a 1e-3 part of its own, so the shared part cancels exactly
        // and ||g|| is about a thousandth of Σ_n ||δ_n|| |h_n| (κ ≈ 3e3). The Gram sum's
        // error would be about ε·κ² ≈ 0.5 of ||g||²; forming g's rows keeps it near ε·κ.
        let mut rng = SplitMix64::new(21);
        let (batch, d_out) = (8, 8);
        let mut shared = [0.0f32; 8];
        fill_gaussian(&mut shared, &mut rng);
        let mut own = [0.0f32; 64];
        fill_gaussian(&mut own, &mut rng);
        let d: StdVec<f32> = (0..batch * d_out)
            .map(|i| shared[i % d_out] + 1e-3 * own[i])
            .collect();
        let h: StdVec<f32> = (0..batch)
            .map(|n| if n % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        let d64: StdVec<f64> = d.iter().map(|&v| v as f64).collect();
        let h64: StdVec<f64> = h.iter().map(|&v| v as f64).collect();
        let want = grad_norm(batch, &d64, &h64).unwrap();
        let spread: f64 = (0..batch).map(|n| nrm2(&d64[n * d_out..][..d_out])).sum();
        assert!(spread / want > 1e3, "κ {}", spread / want);
        let got = grad_norm(batch, &d, &h).unwrap();
        assert!(rel_close(got as f64, want, 1e-3), "{got} vs {want}");
        // The same for the transposed layer (d_out = 1): the narrow side is the errors.
        let got = grad_norm(batch, &h, &d).unwrap();
        assert!(rel_close(got as f64, want, 1e-3), "{got} vs {want}");
    }

    #[test]
    fn gram_norm_f32_survives_overflow_and_underflow() {
        // The gradient itself is of moderate size, but plain f32 products δ·δ overflow
        // (1e40) or underflow (1e-50), and h·h underflows or overflows the other way.
        for (s, t) in [(1e20f32, 1e-20f32), (1e-25, 1e20)] {
            let d = [3.0 * s, -s, 0.5 * s, 2.0 * s];
            let h = [t, 2.0 * t, 0.0, -t, 4.0 * t, t];
            let d64: StdVec<f64> = d.iter().map(|&v| v as f64).collect();
            let h64: StdVec<f64> = h.iter().map(|&v| v as f64).collect();
            let want = grad_norm(2, &d64, &h64).unwrap();
            let got = grad_norm(2, &d, &h).unwrap();
            assert!(got.is_finite() && got > 0.0);
            assert!(rel_close(got as f64, want, 1e-6), "{got} vs {want}");
        }
    }

    #[test]
    fn gram_norm_non_finite_and_zero() {
        assert!(grad_norm(1, &[f32::NAN, 1.0], &[1.0]).unwrap().is_nan());
        assert_eq!(
            grad_norm(1, &[f32::INFINITY], &[1.0]).unwrap(),
            f32::INFINITY
        );
        assert_eq!(grad_norm(2, &[0.0f32; 4], &[1.0; 6]).unwrap(), 0.0);
        assert_eq!(grad_norm(2, &[1.0f32; 4], &[0.0; 6]).unwrap(), 0.0);
        // As the standard backward: zero errors beat a NaN input, a NaN error beats zero input.
        assert_eq!(grad_norm(1, &[0.0f32; 2], &[f32::NAN, 1.0]).unwrap(), 0.0);
        assert!(
            grad_norm(1, &[f32::NAN, 0.0], &[0.0f32; 2])
                .unwrap()
                .is_nan()
        );
        assert!(
            grad_norm(1, &[f32::INFINITY, 0.0], &[0.0f32; 2])
                .unwrap()
                .is_nan()
        );
        assert!(grad_norm(0, &[1.0f32], &[1.0]).is_err());
        assert!(grad_norm(2, &[1.0f32; 3], &[1.0; 4]).is_err());
    }

    /// A network whose errors and inputs are written by hand (no forward pass), to reach the
    /// step's refusals and edge cases directly.
    fn hand_made(widths: &[usize], batch: usize, seed: u64) -> Bufs<f64> {
        let mut b = Bufs::<f64>::new(widths, batch, false);
        let mut rng = SplitMix64::new(seed);
        b.view().init_orthogonal(&mut rng);
        fill_gaussian(&mut b.a, &mut rng);
        fill_gaussian(&mut b.d, &mut rng);
        b
    }

    #[test]
    fn non_finite_error_changes_no_weight() {
        for bad in [f64::NAN, f64::INFINITY] {
            let mut b = hand_made(&[5, 4, 3], 2, 9);
            // Last layer's error block: a NaN there would reach one norm only.
            let n = b.d.len();
            b.d[n - 1] = bad;
            let before = b.w.clone();
            let err = Agd::new().step_buffer_free(&mut b.view(), 2).unwrap_err();
            assert_eq!(err, crate::Error::NonFiniteGradient { layer: 1 });
            assert!(
                b.w.iter()
                    .zip(&before)
                    .all(|(a, c)| a.to_bits() == c.to_bits())
            );
        }
    }

    #[test]
    fn batch_is_checked() {
        let mut b = hand_made(&[5, 4, 3], 2, 1);
        let agd = Agd::new();
        assert_eq!(
            agd.step_buffer_free(&mut b.view(), 0).unwrap_err(),
            crate::Error::EmptyBatch
        );
        assert_eq!(
            agd.step_buffer_free(&mut b.view(), 3).unwrap_err(),
            crate::Error::BatchTooLarge {
                batch: 3,
                capacity: 2
            }
        );
    }

    /// The standard step on the gradients formed from the same errors and inputs.
    fn standard_on_same(b: &Bufs<f64>, batch: usize) -> (StdVec<f64>, crate::StepReport<f64>) {
        let layout = crate::Layout::new(&b.widths).unwrap();
        let mut g = vec![0.0; b.w.len()];
        for k in 0..layout.depth() {
            let (o, i) = layout.shape(k);
            let h = &b.a[layout.act_offset(k, b.cap)..][..batch * i];
            let d = &b.d[layout.delta_offset(k, b.cap)..][..batch * o];
            matmul_tn(o, i, batch, 1.0, d, h, 0.0, &mut g[layout.weight_range(k)]).unwrap();
        }
        let mut w = b.w.clone();
        let report = Agd::new().step(layout, &mut w, &g).unwrap();
        (w, report)
    }

    #[test]
    fn zero_gradient_layer_is_bit_identical() {
        let mut b = hand_made(&[5, 4, 3, 2], 3, 4);
        let layout = crate::Layout::new(&[5, 4, 3, 2]).unwrap();
        // Layer 1's errors all zero: its gradient is exactly zero.
        let off = layout.delta_offset(1, 3);
        b.d[off..off + 3 * 3].fill(0.0);
        let (want_w, want) = standard_on_same(&b, 3);
        let before = b.w.clone();
        let got = Agd::new().step_buffer_free(&mut b.view(), 3).unwrap();
        assert_eq!(got.grad_norms[1], 0.0);
        let r = layout.weight_range(1);
        assert!(
            b.w[r.clone()]
                .iter()
                .zip(&before[r])
                .all(|(a, c)| a.to_bits() == c.to_bits())
        );
        assert!(rel_close(got.eta, want.eta, 1e-12));
        assert!(tensor_close(&b.w, &want_w, 1e-12));
    }

    #[test]
    fn all_zero_gradients_move_nothing() {
        let mut b = hand_made(&[5, 4, 3], 2, 5);
        b.d.fill(0.0);
        let before = b.w.clone();
        let got = Agd::new().step_buffer_free(&mut b.view(), 2).unwrap();
        assert_eq!((got.g, got.eta), (0.0, 0.0));
        assert!(
            b.w.iter()
                .zip(&before)
                .all(|(a, c)| a.to_bits() == c.to_bits())
        );
    }

    #[test]
    fn vanishing_gradient_uses_the_divide_path_like_the_standard_step() {
        // Layer 0's gradient entries are ~1e-310, so s_0/n_0 overflows (Coefficient::Divide);
        // layer 1's ordinary gradient keeps η large, so layer 0 still moves by gain·η·s_0/L.
        let mut b = hand_made(&[6, 5, 3], 2, 6);
        let layout = crate::Layout::new(&[6, 5, 3]).unwrap();
        let a0 = layout.act_offset(0, 2);
        b.a[a0..a0 + 2 * 6].iter_mut().for_each(|v| *v *= 1e-155);
        let d0 = layout.delta_offset(0, 2);
        b.d[d0..d0 + 2 * 5].iter_mut().for_each(|v| *v *= 1e-155);
        let (want_w, want) = standard_on_same(&b, 2);
        let n0 = want.grad_norms[0];
        assert!(
            !(layout.scale::<f64>(0) / n0).is_finite(),
            "not the Divide case"
        );
        let before = b.w.clone();
        let got = Agd::new().step_buffer_free(&mut b.view(), 2).unwrap();
        assert!(rel_close(got.grad_norms[0], n0, 1e-9));
        assert!(rel_close(got.eta, want.eta, 1e-12));
        assert!(tensor_close(&b.w, &want_w, 1e-9));
        // The update of layer 0 really has norm gain·η·s_0/L.
        let r = layout.weight_range(0);
        let du: StdVec<f64> = b.w[r.clone()]
            .iter()
            .zip(&before[r])
            .map(|(a, c)| a - c)
            .collect();
        let expect = got.eta * layout.scale::<f64>(0) / 2.0;
        assert!(rel_close(nrm2(&du), expect, 1e-9));
    }

    #[test]
    fn buffer_free_network_saves_exactly_the_gradient_buffer() {
        crate::dense_network!(WithBuf: f32 = [64, 32, 10], batch 8);
        crate::dense_network!(NoBuf: f32 = [64, 32, 10], batch 8, buffer_free);
        crate::dense_network!(Mnist: f32 = [784, 64, 10], batch 8, buffer_free);
        crate::dense_network!(MnistBuf: f32 = [784, 64, 10], batch 8);
        const { assert!(WithBuf::HAS_GRAD_BUFFER && !NoBuf::HAS_GRAD_BUFFER) };
        assert_eq!(WithBuf::RAM_BYTES - NoBuf::RAM_BYTES, WithBuf::PARAMS * 4);
        assert_eq!(MnistBuf::RAM_BYTES - Mnist::RAM_BYTES, Mnist::PARAMS * 4);
        // The point of issue 4: [784, 64, 10] with its training buffers fits 256 KiB only
        // without the gradient buffer.
        const { assert!(Mnist::RAM_BYTES < 256 * 1024 && MnistBuf::RAM_BYTES > 256 * 1024) };
        // And the buffer-free step trains such a network through `view()`.
        let mut net = NoBuf::new();
        let mut v = crate::Network::view(&mut net);
        v.init_orthogonal(&mut SplitMix64::new(2));
        v.input_mut(1).unwrap().fill(0.25);
        let r = v
            .train_step_buffer_free(&Agd::new(), Loss::Xent, &[3])
            .unwrap();
        assert!(r.step.eta > 0.0);
        assert!(v.train_step(&Agd::new(), Loss::Xent, &[3]).is_err());
    }
}
