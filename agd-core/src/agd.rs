//! The Automatic Gradient Descent step (Bernstein et al. 2023, Algorithm 1).
//!
//! ```text
//! G = (1/L) Σ_k s_k ||g_k||_F
//! η = ln((1 + sqrt(1 + 4G)) / 2)
//! W_k ← W_k − (gain·η/L) · (s_k / ||g_k||_F) · g_k
//! ```
//!
//! No state is kept between steps: no momentum, no schedule, no decay.

use agd_simd::{Element, axpy, sum_sq_scaled};
use heapless::Vec;

use crate::error::Error;
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
        if ratio.is_finite() {
            Coefficient::Scale(c * ratio)
        } else {
            Coefficient::Divide(c * s, norm)
        }
    }

    /// One AGD step from the gradients in `grads` (same layout as `weights`).
    ///
    /// Everything is checked before any weight changes: a NaN or infinite gradient, G or η is
    /// an error and the weights are left exactly as they were. A layer whose gradient is
    /// exactly zero is left bit-for-bit unchanged; if all are zero, `G = η = 0`.
    pub fn step(
        &self,
        layout: Layout<'_>,
        weights: &mut [T],
        grads: &[T],
    ) -> Result<StepReport<T>, Error> {
        let params = layout.param_count();
        if grads.is_empty() {
            return Err(Error::NoGradientBuffer);
        }
        if weights.len() != params {
            return Err(Error::BufferSize {
                buffer: "weights",
                expected: params,
                got: weights.len(),
            });
        }
        if grads.len() != params {
            return Err(Error::BufferSize {
                buffer: "grads",
                expected: params,
                got: grads.len(),
            });
        }
        let mut norms: Vec<T, MAX_DEPTH> = Vec::new();
        for k in 0..layout.depth() {
            // Layout::new guarantees depth <= MAX_DEPTH, so the push cannot fail.
            let _ = norms.push(sum_sq_scaled(&grads[layout.weight_range(k)]).norm());
        }
        let (g, eta) = summarize(layout, &norms)?;
        for (k, &n) in norms.iter().enumerate() {
            let range = layout.weight_range(k);
            let (w, gr) = (&mut weights[range.clone()], &grads[range]);
            match self.coefficient(layout, k, eta, n) {
                Coefficient::Skip => {}
                Coefficient::Scale(c) => axpy(-c, gr, w),
                Coefficient::Divide(cs, n) => {
                    for (wi, &gi) in w.iter_mut().zip(gr) {
                        *wi -= cs * (gi / n);
                    }
                }
            }
        }
        Ok(StepReport {
            g,
            eta,
            grad_norms: norms,
        })
    }
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
    /// [`Agd::step`], a non-finite gradient, G or η is an error and no weight changes.
    pub fn step_spec(
        &self,
        layout: SpecLayout<'_>,
        weights: &mut [T],
        grads: &[T],
        norms: &mut [T],
    ) -> Result<StepReport<T>, Error> {
        let params = layout.param_count();
        if grads.is_empty() {
            return Err(Error::NoGradientBuffer);
        }
        for (buffer, expected, got) in [
            ("weights", params, weights.len()),
            ("grads", params, grads.len()),
            ("norms", layout.norm_count(), norms.len()),
        ] {
            if expected != got {
                return Err(Error::BufferSize {
                    buffer,
                    expected,
                    got,
                });
            }
        }
        let depth = layout.depth();
        let mut sums: Vec<T, MAX_DEPTH> = Vec::new();
        for k in 0..depth {
            let g = &grads[layout.weight_range(k)];
            let nk = &mut norms[layout.norm_range(k)];
            let mut sum = T::ZERO;
            if nk.len() == 1 {
                nk[0] = sum_sq_scaled(g).norm();
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
        for k in 0..depth {
            let range = layout.weight_range(k);
            let (w, gr) = (&mut weights[range.clone()], &grads[range]);
            let s = layout.scale::<T>(k);
            let nk = &norms[layout.norm_range(k)];
            let stride = nk.len();
            for (p, &n) in nk.iter().enumerate() {
                match self.coefficient_for(depth, s, eta, n) {
                    Coefficient::Skip => {}
                    Coefficient::Scale(c) if stride == 1 => axpy(-c, gr, w),
                    Coefficient::Scale(c) => {
                        for (wi, &gi) in w.iter_mut().zip(gr).skip(p).step_by(stride) {
                            *wi -= c * gi;
                        }
                    }
                    Coefficient::Divide(cs, n) => {
                        for (wi, &gi) in w.iter_mut().zip(gr).skip(p).step_by(stride) {
                            *wi -= cs * (gi / n);
                        }
                    }
                }
            }
        }
        Ok(StepReport {
            g,
            eta,
            grad_norms: sums,
        })
    }
}
