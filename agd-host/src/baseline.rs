//! The baselines AGD is compared with: plain SGD and Adam, each with a learning rate to tune.
//!
//! Both act on the network's flat weight and gradient buffers (the same buffers the AGD step
//! gets from `NetMut::step_parts`), so they train exactly the same network from exactly the
//! same initialisation. Like the AGD step, they check the gradient before touching a weight:
//! a non-finite gradient is refused and the weights stay as they were.

use agd_core::Element;

/// SGD: `W ← W − lr·g`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sgd {
    /// The learning rate.
    pub lr: f64,
}

/// Adam (Kingma & Ba 2015, Algorithm 1) with `β1 = 0.9`, `β2 = 0.999`, `ε = 1e-8`:
///
/// ```text
/// m ← β1 m + (1 − β1) g          v ← β2 v + (1 − β2) g²
/// m̂ = m/(1 − β1^t)               v̂ = v/(1 − β2^t)
/// W ← W − lr · m̂/(sqrt(v̂) + ε)
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Adam<T> {
    lr: f64,
    t: i32,
    m: Vec<T>,
    v: Vec<T>,
}

/// `β1`.
pub const BETA1: f64 = 0.9;
/// `β2`.
pub const BETA2: f64 = 0.999;
/// `ε`.
pub const EPSILON: f64 = 1e-8;

fn check_finite<T: Element>(grads: &[T]) -> Result<(), agd_core::Error> {
    if grads.iter().all(|g| g.is_finite()) {
        Ok(())
    } else {
        // The baselines have no per-layer view; layer 0 marks "somewhere in the gradient".
        Err(agd_core::Error::NonFiniteGradient { layer: 0 })
    }
}

fn check_sizes<T>(weights: &[T], grads: &[T]) -> Result<(), agd_core::Error> {
    if weights.len() == grads.len() {
        Ok(())
    } else {
        Err(agd_core::Error::BufferSize {
            buffer: "grads",
            expected: weights.len(),
            got: grads.len(),
        })
    }
}

impl Sgd {
    /// One step.
    pub fn step<T: Element>(&self, weights: &mut [T], grads: &[T]) -> Result<(), agd_core::Error> {
        check_sizes(weights, grads)?;
        check_finite(grads)?;
        agd_simd::axpy(T::from_f64(-self.lr), grads, weights);
        Ok(())
    }
}

impl<T: Element> Adam<T> {
    /// Adam for `params` weights, moments at zero.
    pub fn new(lr: f64, params: usize) -> Self {
        Adam {
            lr,
            t: 0,
            m: vec![T::ZERO; params],
            v: vec![T::ZERO; params],
        }
    }

    /// One step.
    pub fn step(&mut self, weights: &mut [T], grads: &[T]) -> Result<(), agd_core::Error> {
        check_sizes(weights, grads)?;
        check_sizes(&self.m, grads)?;
        check_finite(grads)?;
        self.t = self.t.saturating_add(1);
        let (b1, b2) = (T::from_f64(BETA1), T::from_f64(BETA2));
        let (c1, c2) = (T::ONE - b1, T::ONE - b2);
        // Bias corrections folded into the step size, computed in f64.
        let bc1 = 1.0 - BETA1.powi(self.t);
        let bc2 = 1.0 - BETA2.powi(self.t);
        let step = T::from_f64(self.lr / bc1);
        let inv_sqrt_bc2 = T::from_f64(1.0 / bc2.sqrt());
        let eps = T::from_f64(EPSILON);
        for (((w, &g), m), v) in weights
            .iter_mut()
            .zip(grads)
            .zip(self.m.iter_mut())
            .zip(self.v.iter_mut())
        {
            *m = b1 * *m + c1 * g;
            *v = b2 * *v + c2 * g * g;
            // lr·m̂/(sqrt(v̂)+ε) with m̂ = m/bc1, sqrt(v̂) = sqrt(v)/sqrt(bc2).
            *w -= step * *m / ((*v).sqrt() * inv_sqrt_bc2 + eps);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgd_moves_against_the_gradient() {
        let mut w = [1.0f64, 2.0];
        Sgd { lr: 0.5 }.step(&mut w, &[2.0, -4.0]).unwrap();
        assert_eq!(w, [0.0, 4.0]);
    }

    #[test]
    fn adam_first_step_has_size_lr() {
        // At t = 1, m̂ = g and sqrt(v̂) = |g|, so every weight moves by lr·sign(g) (up to ε).
        let mut adam = Adam::<f64>::new(0.01, 3);
        let mut w = [0.0, 0.0, 0.0];
        adam.step(&mut w, &[3.0, -0.5, 1e-3]).unwrap();
        for (wi, s) in w.iter().zip([-1.0, 1.0, -1.0]) {
            assert!((wi - 0.01 * s).abs() < 1e-7, "{wi}");
        }
    }

    #[test]
    fn adam_matches_a_direct_evaluation() {
        let grads = [[0.3f64, -1.0], [0.1, 2.0], [-0.2, 0.5]];
        let mut adam = Adam::<f64>::new(1e-3, 2);
        let mut w = [0.5, -0.5];
        let (mut m, mut v, mut w_ref) = ([0.0; 2], [0.0; 2], w);
        for (t, g) in grads.iter().enumerate() {
            adam.step(&mut w, g).unwrap();
            for i in 0..2 {
                m[i] = 0.9 * m[i] + 0.1 * g[i];
                v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
                let mh = m[i] / (1.0 - 0.9f64.powi(t as i32 + 1));
                let vh = v[i] / (1.0 - 0.999f64.powi(t as i32 + 1));
                w_ref[i] -= 1e-3 * mh / (vh.sqrt() + 1e-8);
            }
        }
        for (a, b) in w.iter().zip(w_ref) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
    }

    #[test]
    fn non_finite_gradient_leaves_weights_untouched() {
        let mut w = [1.0f32, 2.0];
        let mut adam = Adam::<f32>::new(0.1, 2);
        assert!(adam.step(&mut w, &[f32::NAN, 1.0]).is_err());
        assert!(Sgd { lr: 0.1 }.step(&mut w, &[1.0, f32::INFINITY]).is_err());
        assert_eq!(w, [1.0, 2.0]);
    }
}
