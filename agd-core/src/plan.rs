//! An AGD step split in two, so that several threads can share one: [`Agd::plan`] decides
//! it from the gradient norms (G, η, each layer's update coefficient) and makes every check
//! of [`Agd::step`]; [`StepPlan::apply`] then applies it to any range of the weights. The
//! host's batch-parallel step plans once and has each thread update its own weight range of
//! every copy of the network. [`Agd::step`] itself is a plan applied to every weight.

use agd_simd::Element;
use heapless::Vec;

use crate::agd::{Agd, Coefficient, StepReport, summarize};
use crate::error::Error;
use crate::flat::check_len;
use crate::layout::{Layout, MAX_DEPTH};

impl<T: Element> Agd<T> {
    /// The step [`Agd::step`] would take, decided from each layer's gradient norm
    /// `norms[k] = ||g_k||_F` and checked, without changing any weight: G, η, and every
    /// layer's update coefficient. [`StepPlan::apply`] then applies it to any range of the
    /// weights, so several threads can update their own parts of one network, or of several
    /// identical copies, at once ([`Agd::step`] is `plan` then `apply` over every weight).
    ///
    /// Every check of [`Agd::step`] happens here: a non-finite norm, G or η, or an update that
    /// could overflow one of `weights`, is an error. The norms must be those of the gradient
    /// the plan is then applied with (for instance from [`agd_simd::sum_sq_scaled`] over each
    /// layer's part of it, [`agd_simd::SumSq::merge`]d across parts).
    pub fn plan(
        &self,
        layout: Layout<'_>,
        weights: &[T],
        norms: &[T],
    ) -> Result<StepPlan<T>, Error> {
        check_len("weights", layout.param_count(), weights.len())?;
        check_len("norms", layout.depth(), norms.len())?;
        // At most MAX_DEPTH layers (the layout guarantees it), so the copy cannot fail.
        let norms = Vec::from_slice(norms).map_err(|_| Error::TooDeep {
            depth: layout.depth(),
            max: MAX_DEPTH,
        })?;
        self.plan_from(layout, weights, norms)
    }

    /// [`Agd::plan`] with the buffers checked by the caller.
    pub(crate) fn plan_from(
        &self,
        layout: Layout<'_>,
        weights: &[T],
        norms: Vec<T, MAX_DEPTH>,
    ) -> Result<StepPlan<T>, Error> {
        let (g, eta) = summarize(layout, &norms)?;
        let range = |k| layout.weight_range(k);
        let scales = self.checked_scales(eta, &norms, |k| layout.scale(k), range, weights)?;
        let coefficients = scales
            .iter()
            .zip(&norms)
            .map(|(&s, &n)| self.coefficient_for(layout.depth(), s, eta, n))
            .collect();
        Ok(StepPlan {
            report: StepReport {
                g,
                eta,
                grad_norms: norms,
            },
            coefficients,
        })
    }
}

/// A dense network's AGD step, decided and checked ([`Agd::plan`]) but not applied yet.
#[derive(Debug, Clone, PartialEq)]
pub struct StepPlan<T> {
    report: StepReport<T>,
    /// One per layer.
    coefficients: Vec<Coefficient<T>, MAX_DEPTH>,
}

impl<T: Element> StepPlan<T> {
    /// G, η and the gradient norms of the step, as [`Agd::step`] reports them.
    pub fn report(&self) -> &StepReport<T> {
        &self.report
    }

    /// The report, once the step is applied.
    pub(crate) fn into_report(self) -> StepReport<T> {
        self.report
    }

    /// Layer `k`'s update coefficient.
    pub fn coefficient(&self, k: usize) -> Option<Coefficient<T>> {
        self.coefficients.get(k).copied()
    }

    /// Applies the step to entries `start..start + weights.len()` of the network's flat
    /// weights (`layout`'s order), with the same entries of the gradient in `grads`. Applied
    /// to disjoint ranges that cover every weight, in any order or at once, it changes every
    /// weight as [`Agd::step`] would (a range boundary may move one rounding of the few
    /// entries around it: the vector kernel fuses the multiply-add, its tail does not).
    ///
    /// Refused, with no weight changed, if `grads` is not as long as `weights`, the range
    /// runs past the layout's weights, or the layout is not as deep as the plan's.
    pub fn apply(
        &self,
        layout: Layout<'_>,
        start: usize,
        weights: &mut [T],
        grads: &[T],
    ) -> Result<(), Error> {
        check_len("layers", self.coefficients.len(), layout.depth())?;
        check_len("grads", weights.len(), grads.len())?;
        let end = start.checked_add(weights.len());
        match end {
            Some(end) if end <= layout.param_count() => {}
            _ => {
                return Err(Error::BufferSize {
                    buffer: "weights",
                    expected: layout.param_count().saturating_sub(start),
                    got: weights.len(),
                });
            }
        }
        self.apply_in(layout, start, weights, grads);
        Ok(())
    }

    /// [`StepPlan::apply`] with the buffers checked by the caller.
    pub(crate) fn apply_in(
        &self,
        layout: Layout<'_>,
        start: usize,
        weights: &mut [T],
        grads: &[T],
    ) {
        let end = start + weights.len();
        for (k, &c) in self.coefficients.iter().enumerate() {
            let r = layout.weight_range(k);
            let (lo, hi) = (r.start.max(start), r.end.min(end));
            if lo >= hi {
                continue;
            }
            let (w, g) = (
                &mut weights[lo - start..hi - start],
                &grads[lo - start..hi - start],
            );
            c.apply(w, g, 0, 1);
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use agd_simd::sum_sq_scaled;
    use std::vec::Vec as StdVec;

    /// Three layers whose boundaries are whole vectors (multiples of 16 entries), their
    /// weights, and a gradient whose third layer is zero.
    fn case() -> (Layout<'static>, StdVec<f64>, StdVec<f64>) {
        let layout = Layout::new(&[16, 32, 16, 8]).unwrap();
        let n = layout.param_count();
        assert_eq!(n, 1152);
        let w = (0..n).map(|i| ((i * 37 % 11) as f64 - 5.0) * 0.1).collect();
        let mut g: StdVec<f64> = (0..n)
            .map(|i| ((i * 53 % 17) as f64 - 8.0) * 1e-2)
            .collect();
        g[layout.weight_range(2)].fill(0.0);
        (layout, w, g)
    }

    /// A plan applied range by range, in any order, is the step: bit for bit when every
    /// boundary is a whole number of vectors into its layer (as here: 16 entries), with the
    /// step's report.
    #[test]
    fn a_plan_applied_in_parts_is_the_step() {
        // The zero third layer is left as it is by both.
        let (layout, w0, g) = case();
        let agd = Agd::with_gain(1.5).unwrap();
        let mut want = w0.clone();
        let report = agd.step(layout, &mut want, &g).unwrap();
        let norms: StdVec<f64> = (0..3)
            .map(|k| sum_sq_scaled(&g[layout.weight_range(k)]).norm())
            .collect();
        let plan = agd.plan(layout, &w0, &norms).unwrap();
        assert_eq!(plan.report(), &report);
        assert_eq!(plan.coefficient(2), Some(Coefficient::Skip));
        assert_eq!(plan.coefficient(3), None);
        let mut w = w0.clone();
        for r in [800..1152, 0..256, 256..800] {
            plan.apply(layout, r.start, &mut w[r.clone()], &g[r])
                .unwrap();
        }
        assert_eq!(w, want);
        assert_eq!(w[layout.weight_range(2)], w0[layout.weight_range(2)]);
        assert_ne!(w, w0);
    }

    /// A plan is refused for what [`Agd::step`] refuses, and a range that does not fit the
    /// layout or its gradient is refused with no weight changed.
    #[test]
    fn a_plan_refuses_what_the_step_refuses() {
        let (layout, w0, g) = case();
        let n = layout.param_count();
        let agd = Agd::<f64>::new();
        let norms: StdVec<f64> = (0..3)
            .map(|k| sum_sq_scaled(&g[layout.weight_range(k)]).norm())
            .collect();
        let size = |buffer, expected, got| Error::BufferSize {
            buffer,
            expected,
            got,
        };
        assert_eq!(
            agd.plan(layout, &w0, &norms[..2]).unwrap_err(),
            size("norms", 3, 2)
        );
        assert_eq!(
            agd.plan(layout, &w0[1..], &norms).unwrap_err(),
            size("weights", n, n - 1)
        );
        assert_eq!(
            agd.plan(layout, &w0, &[1.0, f64::NAN, 1.0]).unwrap_err(),
            Error::NonFiniteGradient { layer: 1 }
        );
        // A weight at the largest finite number and a gain that moves it past.
        let mut top = w0.clone();
        top[layout.weight_range(1).start] = f64::MAX;
        let huge = Agd::with_gain(1e300).unwrap();
        assert_eq!(
            huge.plan(layout, &top, &norms).unwrap_err(),
            Error::WeightOverflow { layer: 1 }
        );
        assert!(huge.plan(layout, &w0, &norms).is_ok());
        let plan = agd.plan(layout, &w0, &norms).unwrap();
        let mut w = w0.clone();
        // Past the last weight; a gradient of another length; a layout of another depth.
        assert_eq!(
            plan.apply(layout, 10, &mut w[..n - 5], &g[..n - 5])
                .unwrap_err(),
            size("weights", n - 10, n - 5)
        );
        assert_eq!(
            plan.apply(layout, usize::MAX, &mut w[..2], &g[..2])
                .unwrap_err(),
            size("weights", 0, 2)
        );
        assert_eq!(
            plan.apply(layout, 0, &mut w[..4], &g[..3]).unwrap_err(),
            size("grads", 4, 3)
        );
        let shallow = Layout::new(&[5, 7, 6]).unwrap();
        assert_eq!(
            plan.apply(shallow, 0, &mut w[..2], &g[..2]).unwrap_err(),
            size("layers", 3, 2)
        );
        assert_eq!(w, w0);
    }
}
