//! The Automatic Gradient Descent step (Bernstein et al. 2023, Algorithm 1).
//!
//! ```text
//! G = (1/L) Σ_k s_k ||g_k||_F
//! η = ln((1 + sqrt(1 + 4G)) / 2)
//! W_k ← W_k − (gain·η/L) · (s_k / ||g_k||_F) · g_k
//! ```
//!
//! No state is kept between steps: no momentum, no schedule, no decay.

use core::ops::Range;

use agd_simd::{Element, axpy, sum_sq_checked, sum_sq_scaled};
use heapless::Vec;

use crate::error::Error;
use crate::flat::check_len;
use crate::layout::{Layout, MAX_DEPTH};
use crate::spec::SpecLayout;

/// What a step did: the paper's `G`, `η`, and every layer's gradient norm.
#[derive(Debug, Clone, PartialEq)]
pub struct StepReport<T> {
    /// `G = (1/L) Σ_k s_k ||g_k||_F`, the gradient summary.
    pub g: T,
    /// `η = ln((1 + sqrt(1 + 4G))/2)`, the automatic step size (the gain does not enter it).
    pub eta: T,
    /// `||g_k||_F` per layer, in forward order.
    pub grad_norms: Vec<T, MAX_DEPTH>,
}

/// The AGD optimiser. Its only setting is `gain` (default 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Agd<T> {
    gain: T,
}

impl<T: Element> Default for Agd<T> {
    fn default() -> Self {
        Agd { gain: T::ONE }
    }
}

/// `η = ln((1 + sqrt(1 + 4G))/2)` (paper, Algorithm 1), accurate and finite for every finite
/// `G ≥ 0`.
///
/// Written as written, the formula cancels for small `G` (in `f32`, any `G < 3e-8` gives
/// `η = 0` and training would stop), and `4G` overflows for huge `G`. So up to `G = 1e6` it is
/// evaluated as the equal `ln_1p(2G / (1 + sqrt(1 + 4G)))`, and above as
/// `½ ln G + ln(1/(2 sqrt G) + sqrt(1 + 1/(4G)))` (`η ≈ ½ ln G` for large `G`).
pub fn eta_from_g<T: Element>(g: T) -> T {
    let one = T::ONE;
    let half = T::from_f64(0.5);
    let two = T::from_f64(2.0);
    if g <= T::from_f64(1e6) {
        // (1 + sqrt(1+4G))/2 − 1 = (sqrt(1+4G) − 1)/2 = 2G / (1 + sqrt(1+4G))
        (two * g / (one + (one + T::from_f64(4.0) * g).sqrt())).ln_1p()
    } else {
        let r = g.sqrt();
        half * g.ln() + (half / r + (one + T::from_f64(0.25) / g).sqrt()).ln()
    }
}

/// `G = (1/L) Σ_k s_k n_k` from the per-layer norms, with η; refuses non-finite values.
pub fn summarize<T: Element>(layout: Layout<'_>, norms: &[T]) -> Result<(T, T), Error> {
    summarize_terms(
        layout.depth(),
        norms
            .iter()
            .enumerate()
            .map(|(k, &n)| (layout.scale::<T>(k), n)),
    )
}

/// `G = (1/L) Σ_k s_k · Σ(n_k)` and η from one `(s_k, Σ(n_k))` pair per layer, in order
/// (`Σ(n_k)` is the layer's norm, or for a conv layer the sum of its per-position norms);
/// refuses non-finite values.
pub fn summarize_terms<T: Element>(
    depth: usize,
    terms: impl IntoIterator<Item = (T, T)>,
) -> Result<(T, T), Error> {
    let mut sum = T::ZERO;
    for (k, (s, n)) in terms.into_iter().enumerate() {
        if !n.is_finite() {
            return Err(Error::NonFiniteGradient { layer: k });
        }
        sum += s * n;
    }
    let g = sum / T::from_f64(depth as f64);
    let eta = eta_from_g(g);
    if !g.is_finite() || !eta.is_finite() {
        return Err(Error::NonFiniteStep);
    }
    Ok((g, eta))
}

/// How to scale layer `k`'s gradient in the update `W_k ← W_k − c_k g_k`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Coefficient<T> {
    /// `||g_k|| = 0`: the layer is left bit-for-bit unchanged.
    Skip,
    /// `c_k = (gain·η/L)·(s_k/n_k)`.
    Scale(T),
    /// `n_k` is so small that `s_k/n_k` overflows: update with `(gain·η/L)·s_k · (g/n_k)`,
    /// dividing entry by entry. Holds `(gain·η/L)·s_k` and `n_k`.
    Divide(T, T),
}

impl<T: Element> Agd<T> {
    /// AGD with gain 1, the reference setting.
    pub fn new() -> Self {
        Self::default()
    }

    /// AGD with another gain (finite and positive). Every nonzero update then has Frobenius
    /// norm `gain·η·s_k/L`.
    pub fn with_gain(gain: T) -> Result<Self, Error> {
        if gain.is_finite() && gain > T::ZERO {
            Ok(Agd { gain })
        } else {
            Err(Error::InvalidGain)
        }
    }

    /// The gain.
    pub fn gain(&self) -> T {
        self.gain
    }

    /// Layer `k`'s update coefficient for gradient norm `n_k`.
    pub fn coefficient(&self, layout: Layout<'_>, k: usize, eta: T, norm: T) -> Coefficient<T> {
        self.coefficient_for(layout.depth(), layout.scale::<T>(k), eta, norm)
    }

    /// The update coefficient of a tensor (or conv slice) of scale `s_k` and gradient norm
    /// `n` in a network of depth `L`: `(gain·η/L)·(s_k/n)`.
    pub fn coefficient_for(&self, depth: usize, s: T, eta: T, norm: T) -> Coefficient<T> {
        if norm == T::ZERO {
            return Coefficient::Skip;
        }
        // Reference order: c = (gain·η)/L, then c·(s_k/n_k).
        let c = self.gain * eta / T::from_f64(depth as f64);
        let ratio = s / norm;
        // c·ratio can overflow even when c·s does not (tiny n_k with a large gain): dividing
        // entry by entry then keeps every update entry at most c·s.
        if ratio.is_finite() && (c * ratio).is_finite() {
            Coefficient::Scale(c * ratio)
        } else {
            Coefficient::Divide(c * s, norm)
        }
    }

    /// Refuses an update that could push a weight of layer `k` past the largest finite number.
    ///
    /// Every entry of the update is at most its Frobenius norm `u = (gain·η/L)·s_k` (plus a
    /// few roundings). If `u` is below a quarter of half an ulp of `T::MAX` (`≈ 1e31` for
    /// `f32`), `w − update` rounds to at most `T::MAX` for any finite `w`: no look at the
    /// weights is needed, and that is every sane gain. Otherwise the layer's largest weight is
    /// checked against `T::MAX − u`, with a margin for the roundings.
    pub fn check_overflow(
        &self,
        layout: Layout<'_>,
        k: usize,
        eta: T,
        weights: &[T],
    ) -> Result<(), Error> {
        self.check_overflow_for(layout.depth(), layout.scale::<T>(k), k, eta, weights)
    }

    /// [`Agd::check_overflow`] for layer `k` of scale `s_k` in a network of depth `L` (a conv
    /// layer's every slice update has the same norm `(gain·η/L)·s_k`, so the same bound holds).
    pub fn check_overflow_for(
        &self,
        depth: usize,
        s: T,
        k: usize,
        eta: T,
        weights: &[T],
    ) -> Result<(), Error> {
        let c = self.gain * eta / T::from_f64(depth as f64);
        let u = c * s;
        if !u.is_finite() {
            return Err(Error::WeightOverflow { layer: k });
        }
        let eps = T::EPSILON;
        if u < T::MAX * eps * T::from_f64(0.125) {
            return Ok(());
        }
        let bound = agd_simd::amax(weights) + u * (T::ONE + T::from_f64(8.0) * eps);
        if bound.is_finite() && bound <= T::MAX * (T::ONE - T::from_f64(4.0) * eps) {
            Ok(())
        } else {
            Err(Error::WeightOverflow { layer: k })
        }
    }

    /// One AGD step from the gradients in `grads` (same layout as `weights`).
    ///
    /// Everything is checked before any weight changes: a NaN or infinite gradient, G or η, or
    /// an update that could overflow a weight ([`Agd::check_overflow`]) is an error and the
    /// weights are left exactly as they were. A layer whose gradient is
    /// exactly zero is left bit-for-bit unchanged; if all are zero, `G = η = 0`.
    pub fn step(
        &self,
        layout: Layout<'_>,
        weights: &mut [T],
        grads: &[T],
    ) -> Result<StepReport<T>, Error> {
        check_step_buffers(layout.param_count(), weights, grads)?;
        let mut norms: Vec<T, MAX_DEPTH> = Vec::new();
        for k in 0..layout.depth() {
            // Layout::new guarantees depth <= MAX_DEPTH, so the push cannot fail.
            let _ = norms.push(sum_sq_scaled(&grads[layout.weight_range(k)]).norm());
        }
        self.update(layout, weights, grads, norms)
    }

    /// [`Agd::step`] with each layer's plain sum of squared gradients already formed, as
    /// [`agd_simd::matmul_tn_sum_sq`] returns it with the gradient ([`crate::NetMut`]'s
    /// training step): saves the step its pass over the gradients for the norms. Each sum goes
    /// through [`agd_simd::sum_sq_checked`], so a sum that overflowed, underflowed or is NaN
    /// (as it is for a gradient with a NaN or an infinity) is redone safely from the gradient,
    /// and every check of [`Agd::step`] holds.
    ///
    /// Crate-private: a sum that is not `Σ g²` of its layer would give a wrong step (a finite
    /// sum for a NaN gradient would even let the NaN through), so only code that formed the
    /// sums with the gradients calls this. `sums` holds one value per layer.
    pub(crate) fn step_with_sums(
        &self,
        layout: Layout<'_>,
        weights: &mut [T],
        grads: &[T],
        sums: &[T],
    ) -> Result<StepReport<T>, Error> {
        check_step_buffers(layout.param_count(), weights, grads)?;
        check_sums(layout.depth(), sums)?;
        let mut norms: Vec<T, MAX_DEPTH> = Vec::new();
        for (k, &s) in sums.iter().enumerate() {
            let g = &grads[layout.weight_range(k)];
            // Layout::new guarantees depth <= MAX_DEPTH, so the push cannot fail.
            let _ = norms.push(sum_sq_checked(s, g).norm());
        }
        self.update(layout, weights, grads, norms)
    }

    /// The step from the per-layer gradient norms: G, η, the overflow checks, then the
    /// update of every layer (the buffers are checked by the caller).
    fn update(
        &self,
        layout: Layout<'_>,
        weights: &mut [T],
        grads: &[T],
        norms: Vec<T, MAX_DEPTH>,
    ) -> Result<StepReport<T>, Error> {
        let plan = self.plan_from(layout, weights, norms)?;
        plan.apply_in(layout, 0, weights, grads);
        Ok(plan.into_report())
    }
}

impl<T: Element> Agd<T> {
    /// Every layer's `s_k` (computed once: on an FPU-less or `f32`-only core its `f64` sqrt
    /// is not free), after [`Agd::check_overflow_for`] has passed every layer with a nonzero
    /// norm sum `sums[k]` (weights `weights[range(k)]`).
    pub(crate) fn checked_scales(
        &self,
        eta: T,
        sums: &[T],
        scale: impl Fn(usize) -> T,
        range: impl Fn(usize) -> Range<usize>,
        weights: &[T],
    ) -> Result<Vec<T, MAX_DEPTH>, Error> {
        let mut scales: Vec<T, MAX_DEPTH> = Vec::new();
        for (k, &n) in sums.iter().enumerate() {
            let s = scale(k);
            // At most MAX_DEPTH layers (the layouts guarantee it), so the push cannot fail.
            let _ = scales.push(s);
            if n != T::ZERO {
                self.check_overflow_for(sums.len(), s, k, eta, &weights[range(k)])?;
            }
        }
        Ok(scales)
    }

    /// One layer's update `W ← W − c·g`, slice by slice: `norms` holds the norms of the
    /// layer's `norms.len()` interleaved slices (entries `p, p + len, …`; one for a dense
    /// layer, one per kernel position for a conv layer), each slice scaled by its own
    /// [`Agd::coefficient_for`] and a zero slice left as it is.
    fn apply(&self, depth: usize, s: T, eta: T, norms: &[T], w: &mut [T], gr: &[T]) {
        let stride = norms.len();
        for (p, &n) in norms.iter().enumerate() {
            self.coefficient_for(depth, s, eta, n)
                .apply(w, gr, p, stride);
        }
    }
}

impl<T: Element> Coefficient<T> {
    /// `W ← W − c·g` on the entries `first, first + stride, …` of `w` (one slice of a layer;
    /// `first = 0, stride = 1` for all of it), a [`Coefficient::Skip`] leaving them as they
    /// are. Always inlined: called out of line, the M4 digits CNN's AGD step took 1,600
    /// more instructions (121,880 against 120,280).
    #[inline(always)]
    pub(crate) fn apply(self, w: &mut [T], g: &[T], first: usize, stride: usize) {
        match self {
            Coefficient::Skip => {}
            Coefficient::Scale(c) if stride == 1 => axpy(-c, g, w),
            Coefficient::Scale(c) => {
                for (wi, &gi) in w.iter_mut().zip(g).skip(first).step_by(stride) {
                    *wi -= c * gi;
                }
            }
            Coefficient::Divide(cs, n) => {
                for (wi, &gi) in w.iter_mut().zip(g).skip(first).step_by(stride) {
                    *wi -= cs * (gi / n);
                }
            }
        }
    }
}

/// The weight and gradient buffers of a step ([`Agd::step`], [`Agd::step_spec`]) against the
/// layout's parameter count. Checked before any weight changes, so a refused step leaves
/// them as they were.
fn check_step_buffers<T>(params: usize, weights: &[T], grads: &[T]) -> Result<(), Error> {
    if grads.is_empty() {
        return Err(Error::NoGradientBuffer);
    }
    check_len("weights", params, weights.len())?;
    check_len("grads", params, grads.len())
}

/// One plain sum of squares per layer for the `*_with_sums` steps.
fn check_sums<T>(depth: usize, sums: &[T]) -> Result<(), Error> {
    check_len("sums", depth, sums.len())
}

/// `sqrt(Σ_j x[first + j·stride]²)` without overflow or underflow: the Frobenius norm of one
/// kernel-position slice `g[:, :, i, j]` of a conv gradient, read in place. NaN or infinite
/// entries give a NaN or infinite norm.
pub fn strided_norm<T: Element>(x: &[T], first: usize, stride: usize) -> T {
    let mut m = T::ZERO;
    for &v in x.iter().skip(first).step_by(stride) {
        let a = v.abs();
        if !a.is_finite() {
            return a + a;
        }
        if a > m {
            m = a;
        }
    }
    if m == T::ZERO {
        return T::ZERO;
    }
    // Scaled by the largest entry (LAPACK xNRM2's idea), so the squares stay in range.
    let inv = T::ONE / m;
    let mut acc = T::ZERO;
    if inv.is_finite() {
        for &v in x.iter().skip(first).step_by(stride) {
            let y = v * inv;
            acc += y * y;
        }
    } else {
        for &v in x.iter().skip(first).step_by(stride) {
            let y = v / m;
            acc += y * y;
        }
    }
    m * acc.sqrt()
}

impl<T: Element> Agd<T> {
    /// One AGD step for a network of [`crate::spec`] layers (dense and conv).
    ///
    /// A conv weight `[c_out, c_in, kh, kw]` is `kh·kw` matrices `W[:, :, i, j]` of
    /// `c_out x c_in` (golden README, "Convolution case"):
    ///
    /// ```text
    /// n_k[i,j] = ||g_k[:, :, i, j]||_F
    /// G = (1/L) Σ_k s_k · Σ_ij n_k[i,j]          (a dense layer has one n_k)
    /// W_k[:, :, i, j] ← W_k[:, :, i, j] − (gain·η/L) · (s_k / n_k[i,j]) · g_k[:, :, i, j]
    /// ```
    ///
    /// so every nonzero slice update has Frobenius norm `gain·η·s_k/L`, and a slice whose
    /// gradient is exactly zero is left bit-for-bit unchanged. `norms` (length
    /// [`SpecLayout::norm_count`]) receives every `n_k[i,j]`, row-major per layer; the report's
    /// `grad_norms` holds each layer's `Σ_ij n_k[i,j]` (its `n_k` for a dense layer). As with
    /// [`Agd::step`], a non-finite gradient, G or η, or an update that could overflow a weight
    /// ([`Agd::check_overflow_for`]), is an error and no weight changes.
    pub fn step_spec(
        &self,
        layout: SpecLayout<'_>,
        weights: &mut [T],
        grads: &[T],
        norms: &mut [T],
    ) -> Result<StepReport<T>, Error> {
        self.step_spec_impl(layout, weights, grads, norms, None)
    }

    /// [`Agd::step_spec`] given, for every layer with a single norm (dense layers, `1 x 1`
    /// convolutions), the plain `Σ g²` of its gradient formed with it (entries of other layers
    /// are not read), as [`Agd::step_with_sums`] (crate-private for the same reason).
    pub(crate) fn step_spec_with_sums(
        &self,
        layout: SpecLayout<'_>,
        weights: &mut [T],
        grads: &[T],
        norms: &mut [T],
        sums: &[T],
    ) -> Result<StepReport<T>, Error> {
        check_sums(layout.depth(), sums)?;
        self.step_spec_impl(layout, weights, grads, norms, Some(sums))
    }

    fn step_spec_impl(
        &self,
        layout: SpecLayout<'_>,
        weights: &mut [T],
        grads: &[T],
        norms: &mut [T],
        plain: Option<&[T]>,
    ) -> Result<StepReport<T>, Error> {
        check_step_buffers(layout.param_count(), weights, grads)?;
        check_len("norms", layout.norm_count(), norms.len())?;
        let depth = layout.depth();
        let mut sums: Vec<T, MAX_DEPTH> = Vec::new();
        for k in 0..depth {
            let g = &grads[layout.weight_range(k)];
            let nk = &mut norms[layout.norm_range(k)];
            let mut sum = T::ZERO;
            if nk.len() == 1 {
                nk[0] = match plain {
                    Some(plain) => sum_sq_checked(plain[k], g),
                    None => sum_sq_scaled(g),
                }
                .norm();
                sum = nk[0];
            } else {
                for (p, n) in nk.iter_mut().enumerate() {
                    *n = strided_norm(g, p, layout.layer(k).norm_count());
                    if !n.is_finite() {
                        return Err(Error::NonFiniteGradient { layer: k });
                    }
                    sum += *n;
                }
            }
            // SpecLayout::new guarantees depth <= MAX_DEPTH, so the push cannot fail.
            let _ = sums.push(sum);
        }
        let (g, eta) = summarize_terms(
            depth,
            sums.iter()
                .enumerate()
                .map(|(k, &n)| (layout.scale::<T>(k), n)),
        )?;
        let range = |k| layout.weight_range(k);
        let scales = self.checked_scales(eta, &sums, |k| layout.scale(k), range, weights)?;
        for k in 0..depth {
            let (w, gr) = (&mut weights[range(k)], &grads[range(k)]);
            self.apply(depth, scales[k], eta, &norms[layout.norm_range(k)], w, gr);
        }
        Ok(StepReport {
            g,
            eta,
            grad_norms: sums,
        })
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use agd_simd::dot;
    use std::vec::Vec as StdVec;

    /// A 3-layer layout's weights and gradients (entries of about `mag`).
    fn case(mag: f64) -> (Layout<'static>, StdVec<f64>, StdVec<f64>) {
        let layout = Layout::new(&[5, 7, 6, 3]).unwrap();
        let n = layout.param_count();
        let w = (0..n).map(|i| ((i * 37 % 11) as f64 - 5.0) * 0.1).collect();
        let g = (0..n).map(|i| ((i * 53 % 17) as f64 - 8.0) * mag).collect();
        (layout, w, g)
    }

    fn plain_sums(layout: Layout<'_>, g: &[f64]) -> StdVec<f64> {
        (0..layout.depth())
            .map(|k| {
                let gk = &g[layout.weight_range(k)];
                dot(gk, gk)
            })
            .collect()
    }

    /// With the sums [`Agd::step`] forms itself (`dot(g, g)`), the two steps agree bit for
    /// bit.
    #[test]
    fn step_with_sums_is_step_given_the_same_sums() {
        let (layout, w0, g) = case(1e-2);
        let (mut w1, mut w2) = (w0.clone(), w0.clone());
        let r1 = Agd::new().step(layout, &mut w1, &g).unwrap();
        let sums = plain_sums(layout, &g);
        let r2 = Agd::new()
            .step_with_sums(layout, &mut w2, &g, &sums)
            .unwrap();
        assert_eq!(r1, r2);
        assert_eq!(w1, w2);
        assert_ne!(w1, w0);
    }

    /// Sums out of the fast path's range (overflowed, NaN, zero from underflow) are redone
    /// from the gradients by the scaled path: the step is the same up to rounding.
    #[test]
    fn out_of_range_sums_are_redone_from_the_gradients() {
        let (layout, w0, g) = case(1e-2);
        let mut want = w0.clone();
        let r = Agd::new().step(layout, &mut want, &g).unwrap();
        for bad in [f64::INFINITY, f64::NAN, 0.0, 1e-300] {
            let mut w = w0.clone();
            let got = Agd::new()
                .step_with_sums(layout, &mut w, &g, &[bad; 3])
                .unwrap();
            for (a, b) in got.grad_norms.iter().zip(&r.grad_norms) {
                assert!((a - b).abs() <= 1e-14 * b, "sum {bad}: {a} vs {b}");
            }
            for (a, b) in w.iter().zip(&want) {
                assert!((a - b).abs() <= 1e-14 * (1.0 + b.abs()), "sum {bad}");
            }
        }
    }

    /// A NaN or infinite gradient makes its plain sum NaN or infinite: the scaled path finds
    /// it, the step is refused and no weight moves.
    #[test]
    fn a_non_finite_gradient_is_refused_with_its_sum() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let (layout, w0, mut g) = case(1e-2);
            g[layout.weight_range(1).start + 4] = bad;
            let sums = plain_sums(layout, &g);
            let mut w = w0.clone();
            assert_eq!(
                Agd::new()
                    .step_with_sums(layout, &mut w, &g, &sums)
                    .unwrap_err(),
                Error::NonFiniteGradient { layer: 1 }
            );
            assert_eq!(w, w0);
        }
    }

    /// Every buffer of the four steps (dense and spec, with and without sums) is checked
    /// alike, in the same order (grads present, weights, grads, then norms or sums), and a
    /// refused step leaves the weights bit-identical.
    #[test]
    fn every_step_refuses_a_wrong_buffer_and_changes_nothing() {
        use crate::spec::{LayerSpec, chain, conv, dense};
        let size = |buffer, expected, got| Error::BufferSize {
            buffer,
            expected,
            got,
        };
        let bits = |w: &[f64]| w.iter().map(|v| v.to_bits()).collect::<StdVec<_>>();
        let agd = Agd::<f64>::new();
        let (layout, w0, g) = case(1e-2);
        let n = layout.param_count();
        let sums = plain_sums(layout, &g);
        let (w0, g, sums, none) = (&w0[..], &g[..], &sums[..], &[][..]);
        let dense_cases = [
            (w0, none, sums, Error::NoGradientBuffer),
            (&w0[..n - 1], g, sums, size("weights", n, n - 1)),
            (w0, &g[..n - 1], sums, size("grads", n, n - 1)),
            (w0, g, &sums[..2], size("sums", 3, 2)),
        ];
        for (w, g, sums, want) in dense_cases {
            let mut w1 = w.to_vec();
            if !matches!(want, Error::BufferSize { buffer: "sums", .. }) {
                assert_eq!(agd.step(layout, &mut w1, g).unwrap_err(), want);
            }
            assert_eq!(
                agd.step_with_sums(layout, &mut w1, g, sums).unwrap_err(),
                want
            );
            assert_eq!(bits(&w1), bits(w), "{want:?}");
        }

        const LAYERS: [LayerSpec; 2] = chain([2, 5, 5], [conv(3, 3, 1, 1), dense(4)]);
        let layout = SpecLayout::new(&LAYERS).unwrap();
        let (n, m) = (layout.param_count(), layout.norm_count());
        let w0: StdVec<f64> = (0..n).map(|i| (i % 7) as f64 * 0.1 - 0.3).collect();
        let g: StdVec<f64> = (0..n).map(|i| (i % 5) as f64 * 0.01 - 0.02).collect();
        let (w0, g, sums) = (&w0[..], &g[..], &[1.0; 2][..]);
        let spec_cases = [
            (w0, none, m, sums, Error::NoGradientBuffer),
            (&w0[..n - 1], g, m, sums, size("weights", n, n - 1)),
            (w0, &g[..n - 1], m, sums, size("grads", n, n - 1)),
            (w0, g, m - 1, sums, size("norms", m, m - 1)),
            (w0, g, m, &sums[..1], size("sums", 2, 1)),
        ];
        for (w, g, norm_len, sums, want) in spec_cases {
            let mut w1 = w.to_vec();
            let mut norms = std::vec![0.0; norm_len];
            if !matches!(want, Error::BufferSize { buffer: "sums", .. }) {
                assert_eq!(
                    agd.step_spec(layout, &mut w1, g, &mut norms).unwrap_err(),
                    want
                );
            }
            assert_eq!(
                agd.step_spec_with_sums(layout, &mut w1, g, &mut norms, sums)
                    .unwrap_err(),
                want
            );
            assert_eq!(bits(&w1), bits(w), "{want:?}");
        }
    }
}
