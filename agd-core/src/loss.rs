//! The two losses of the reference, averaged over the batch, with their output gradients.

use agd_simd::Element;

use crate::error::Error;

/// Which loss to train on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Loss {
    /// Cross-entropy: `(1/B) Σ_n [logsumexp_j out[n,j] − out[n, y_n]]`.
    #[default]
    Xent,
    /// Square loss against `Y = onehot(y)·sqrt(C)`: `(1/(B·C)) Σ (out − Y)²` (no ½, as the
    /// reference code; the paper writes half of it).
    Mse,
}

impl Loss {
    /// The loss's name on the command line and in files.
    pub fn name(self) -> &'static str {
        match self {
            Loss::Xent => "xent",
            Loss::Mse => "mse",
        }
    }
}

/// Checks labels against the batch size and number of classes.
pub fn check_targets(targets: &[usize], batch: usize, classes: usize) -> Result<(), Error> {
    if targets.len() != batch {
        return Err(Error::TargetCount {
            expected: batch,
            got: targets.len(),
        });
    }
    if let Some((sample, &target)) = targets.iter().enumerate().find(|&(_, &t)| t >= classes) {
        return Err(Error::TargetOutOfRange {
            sample,
            target,
            classes,
        });
    }
    Ok(())
}

/// The batch-mean loss of `out` (`batch x classes`, row-major) against class labels, and its
/// gradient with respect to `out` written into `grad` (same shape).
///
/// `xent`: `∂loss/∂out[n] = (softmax(out[n]) − onehot(y_n)) / B`.
/// `mse`: `∂loss/∂out = 2 (out − Y) / (B·C)`.
///
/// A NaN or infinite loss is [`Error::NonFiniteLoss`].
pub fn loss_and_grad<T: Element>(
    loss: Loss,
    out: &[T],
    targets: &[usize],
    classes: usize,
    grad: &mut [T],
) -> Result<T, Error> {
    let batch = targets.len();
    if batch == 0 {
        return Err(Error::EmptyBatch);
    }
    check_targets(targets, batch, classes)?;
    let n = batch * classes;
    if out.len() < n || grad.len() < n {
        return Err(Error::BufferSize {
            buffer: "outputs",
            expected: n,
            got: out.len().min(grad.len()),
        });
    }
    let inv_b = T::ONE / T::from_f64(batch as f64);
    let mut total = T::ZERO;
    match loss {
        Loss::Xent => {
            for ((o, g), &y) in out
                .chunks_exact(classes)
                .zip(grad.chunks_exact_mut(classes))
                .zip(targets)
            {
                let m = o.iter().fold(o[0], |m, &v| if v > m { v } else { m });
                let mut sum = T::ZERO;
                for (gj, &oj) in g.iter_mut().zip(o) {
                    let e = (oj - m).exp();
                    *gj = e;
                    sum += e;
                }
                // logsumexp − out[y] = m + ln Σ exp(o − m) − o[y]
                total += m + sum.ln() - o[y];
                let inv = T::ONE / sum;
                for gj in g.iter_mut() {
                    *gj = *gj * inv * inv_b;
                }
                g[y] -= inv_b;
            }
            total *= inv_b;
        }
        Loss::Mse => {
            let target = T::from_f64(libm::sqrt(classes as f64));
            let inv_bc = T::ONE / T::from_f64(n as f64);
            let two = T::from_f64(2.0);
            for ((o, g), &y) in out
                .chunks_exact(classes)
                .zip(grad.chunks_exact_mut(classes))
                .zip(targets)
            {
                for (j, (gj, &oj)) in g.iter_mut().zip(o).enumerate() {
                    let d = if j == y { oj - target } else { oj };
                    total += d * d;
                    *gj = two * d * inv_bc;
                }
            }
            total *= inv_bc;
        }
    }
    if !total.is_finite() {
        return Err(Error::NonFiniteLoss);
    }
    Ok(total)
}

/// Index of the largest output of each row (ties to the first), for accuracy.
pub fn argmax<T: Element>(row: &[T]) -> usize {
    let mut best = 0;
    for (j, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = j;
        }
    }
    best
}
