//! Level-1 kernels: dot, axpy, scale, largest magnitude, and an overflow-safe norm.
//!
//! Slices of different lengths are combined over their common prefix (`zip` semantics).

use crate::element::{Element, Vector};

/// Independent accumulators per loop, so consecutive FMAs do not wait on each other.
const UNROLL: usize = 4;

/// `Σ a_i b_i`.
#[inline]
pub fn dot<T: Element>(a: &[T], b: &[T]) -> T {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let l = T::LANES;
    let mut acc = [T::V::splat(T::ZERO); UNROLL];
    let block = UNROLL * l;
    let mut ca = a.chunks_exact(block);
    let mut cb = b.chunks_exact(block);
    for (xa, xb) in (&mut ca).zip(&mut cb) {
        for (j, s) in acc.iter_mut().enumerate() {
            let r = j * l..(j + 1) * l;
            *s = T::V::load(&xa[r.clone()]).mul_add(T::V::load(&xb[r]), *s);
        }
    }
    let (ra, rb) = (ca.remainder(), cb.remainder());
    let mut va = ra.chunks_exact(l);
    let mut vb = rb.chunks_exact(l);
    for (xa, xb) in (&mut va).zip(&mut vb) {
        acc[0] = T::V::load(xa).mul_add(T::V::load(xb), acc[0]);
    }
    let mut s = ((acc[0] + acc[1]) + (acc[2] + acc[3])).reduce_add();
    for (&x, &y) in va.remainder().iter().zip(vb.remainder()) {
        s += x * y;
    }
    s
}

/// `y ← α x + y`.
#[inline]
pub fn axpy<T: Element>(alpha: T, x: &[T], y: &mut [T]) {
    let n = x.len().min(y.len());
    let (x, y) = (&x[..n], &mut y[..n]);
    let l = T::LANES;
    let va = T::V::splat(alpha);
    let mut cx = x.chunks_exact(l);
    let mut cy = y.chunks_exact_mut(l);
    for (xs, ys) in (&mut cx).zip(&mut cy) {
        va.mul_add(T::V::load(xs), T::V::load(ys)).store(ys);
    }
    for (&xs, ys) in cx.remainder().iter().zip(cy.into_remainder()) {
        *ys += alpha * xs;
    }
}

/// `x ← α x`.
#[inline]
pub fn scale<T: Element>(alpha: T, x: &mut [T]) {
    let l = T::LANES;
    let va = T::V::splat(alpha);
    let mut cx = x.chunks_exact_mut(l);
    for xs in &mut cx {
        (va * T::V::load(xs)).store(xs);
    }
    for xs in cx.into_remainder() {
        *xs *= alpha;
    }
}

/// `max_i |x_i|`: 0 for an empty slice, NaN if any entry is NaN.
#[inline]
pub fn amax<T: Element>(x: &[T]) -> T {
    let l = T::LANES;
    let zero = T::V::splat(T::ZERO);
    // Two accumulators: a NaN-propagating max is four dependent operations per vector.
    let (mut m0, mut m1) = (zero, zero);
    let mut c = x.chunks_exact(2 * l);
    for xs in &mut c {
        m0 = m0.max_nan(T::V::load(&xs[..l]).abs());
        m1 = m1.max_nan(T::V::load(&xs[l..]).abs());
    }
    let mut m = m0.max_nan(m1).reduce_max();
    for &v in c.remainder() {
        let a = v.abs();
        // Once `m` is NaN, `a > m` is false, so a NaN sticks.
        if a.partial_cmp(&a).is_none() || a > m {
            m = a;
        }
    }
    m
}

/// A sum of squares kept as `scale² · ssq`, so it neither overflows nor underflows
/// (the representation of LAPACK's `xLASSQ`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SumSq<T> {
    /// Scale factor (≥ 0).
    pub scale: T,
    /// Scaled sum of squares.
    pub ssq: T,
}

impl<T: Element> SumSq<T> {
    /// The empty sum.
    pub const fn zero() -> Self {
        SumSq {
            scale: T::ZERO,
            ssq: T::ZERO,
        }
    }

    /// `sqrt(scale² · ssq)`, the Euclidean norm this sum stands for.
    #[inline]
    pub fn norm(self) -> T {
        if self.scale == T::ZERO {
            T::ZERO
        } else {
            self.scale * self.ssq.sqrt()
        }
    }

    /// The sum of both, still scaled.
    pub fn merge(self, other: Self) -> Self {
        if !self.scale.is_finite() || !other.scale.is_finite() {
            // A NaN scale compares false with everything, so the ordering below would let a
            // NaN hide behind an infinity or a zero. The sum of the scales is NaN if either is
            // NaN and +∞ otherwise (scales are ≥ 0), which is what the norm must be.
            return SumSq {
                scale: self.scale + other.scale,
                ssq: T::ONE,
            };
        }
        let (big, small) = if other.scale > self.scale {
            (other, self)
        } else {
            (self, other)
        };
        if small.scale == T::ZERO || small.ssq == T::ZERO {
            return big;
        }
        if !big.scale.is_finite() || !big.ssq.is_finite() || !small.ssq.is_finite() {
            // Propagate non-finite sums: NaN stays NaN, infinity stays infinite.
            return SumSq {
                scale: big.scale,
                ssq: big.ssq + small.ssq,
            };
        }
        let r = small.scale / big.scale;
        let small_ssq = (small.ssq * r) * r;
        let ssq = big.ssq + small_ssq;
        if ssq.is_finite() {
            return SumSq {
                scale: big.scale,
                ssq,
            };
        }
        // Two unscaled sums (scale 1, from the fast path) can each fit while their total does
        // not: move an exact factor 2² from `ssq` into `scale`.
        let quarter = T::from_f64(0.25);
        SumSq {
            scale: big.scale * T::from_f64(2.0),
            ssq: big.ssq * quarter + small_ssq * quarter,
        }
    }
}

/// `Σ x_i²` as a [`SumSq`] that does not overflow or underflow, for entries anywhere from the
/// smallest subnormal to the largest finite number. NaN or infinite entries give a NaN or
/// infinite [`SumSq::norm`].
///
/// Fast path: one pass of plain squares ([`dot`]`(x, x)`, a multiply-add per entry). Its
/// result is exact to rounding unless it left the range where that holds: an overflow (or a
/// NaN or infinite entry) makes it infinite or NaN, and squares that underflowed can only
/// matter if the sum is below `MIN_POSITIVE / EPSILON` (a square that underflowed is off by
/// less than the subnormal spacing `MIN_POSITIVE · EPSILON`, at most `EPSILON²` of such a
/// sum). Only then is the scaled path taken: a pass for the largest magnitude, and a pass
/// scaled by it.
pub fn sum_sq_scaled<T: Element>(x: &[T]) -> SumSq<T> {
    sum_sq_checked(dot(x, x), x)
}

/// [`sum_sq_scaled`] of `x` given `plain`, a plain sum of its squares formed elsewhere (for
/// instance by [`crate::matmul_tn_sum_sq`] as it wrote `x`): `plain` is kept when it is in
/// range (finite and at least `MIN_POSITIVE / EPSILON`), else the scaled path runs over `x`.
/// As safe as [`sum_sq_scaled`] for any `plain` that is `Σ x_i²` in working-precision
/// arithmetic, in any order.
pub fn sum_sq_checked<T: Element>(plain: T, x: &[T]) -> SumSq<T> {
    if plain.is_finite() && plain >= T::MIN_POSITIVE / T::EPSILON {
        return SumSq {
            scale: T::ONE,
            ssq: plain,
        };
    }
    sum_sq_by_amax(x)
}

/// The scaled path of [`sum_sq_scaled`]: `Σ (x_i / m)²` with `m = max_i |x_i|`, kept as
/// `m² · Σ (x_i / m)²`. Out of line: training gradients never take it.
#[cold]
#[inline(never)]
fn sum_sq_by_amax<T: Element>(x: &[T]) -> SumSq<T> {
    let m = amax(x);
    if m == T::ZERO {
        return SumSq::zero();
    }
    if !m.is_finite() {
        // NaN or infinity: norm() is NaN or infinite.
        return SumSq {
            scale: m,
            ssq: T::ONE,
        };
    }
    let inv = T::ONE / m;
    let ssq = if inv.is_finite() {
        let mut acc = T::ZERO;
        for &v in x {
            let y = v * inv;
            acc += y * y;
        }
        acc
    } else {
        // m is subnormal: 1/m overflows, divide instead.
        let mut acc = T::ZERO;
        for &v in x {
            let y = v / m;
            acc += y * y;
        }
        acc
    };
    SumSq { scale: m, ssq }
}

/// Euclidean norm `sqrt(Σ x_i²)` without overflow or underflow (see [`sum_sq_scaled`]).
#[inline]
pub fn nrm2<T: Element>(x: &[T]) -> T {
    sum_sq_scaled(x).norm()
}
