//! Helpers shared by the agd-simd integration tests: the odd shapes every kernel is tried on,
//! a tiny deterministic generator for test data, rounding-error bounds, and an accurate
//! reference norm.

// Each test binary includes this module and uses only part of it.
#![allow(dead_code)]

use agd_simd::Element;

/// Every dimension (m, n, k, vector length) is drawn from these: sizes on both sides of the
/// SIMD widths (4 lanes f64, 8 lanes f32), of the 4-row / 4-column blocking and of twice the
/// lanes, with 1 for a batch of one and for an inner dimension of one.
pub const SHAPES: [usize; 17] = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 130];

/// SplitMix64 (Steele, Lea & Flood 2014): enough randomness for test data, reproducible from
/// a seed that proptest chooses and prints on failure. Written out here because agd-simd
/// depends on no random number crate and its tests should not pull one in for eight lines.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform integer in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit(); // (0, 1], so the log is finite
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (core::f64::consts::TAU * u2).cos()
    }
}

/// Unit roundoff `u = ε/2` of `T`.
pub fn unit_roundoff<T: Element>() -> f64 {
    T::EPSILON.to_f64() / 2.0
}

/// Higham's `γ_n = n u / (1 − n u)`: a sum of `n` rounded operations (in any order, fused or
/// not) is within `γ_n · Σ|terms|` of the exact sum (Higham, *Accuracy and Stability of
/// Numerical Algorithms*, 2nd ed., §3.1).
pub fn gamma<T: Element>(n: usize) -> f64 {
    let nu = n as f64 * unit_roundoff::<T>();
    assert!(nu < 0.5, "γ_{n} is meaningless for {}", T::NAME);
    nu / (1.0 - nu)
}

/// `x` widened to `f64` entry by entry.
pub fn widen<T: Element>(x: &[T]) -> Vec<f64> {
    x.iter().map(|v| v.to_f64()).collect()
}

/// `x` rounded to `T` entry by entry.
pub fn narrow<T: Element>(x: &[f64]) -> Vec<T> {
    x.iter().map(|&v| T::from_f64(v)).collect()
}

/// `sqrt(Σ x_i²)` to within a few units in the last place of `f64`, for any finite entries:
/// each entry is first scaled by an exact power of two so the largest is in `[1, 2)`, each
/// square is formed exactly as a sum of two doubles (`fma` gives the low half), and the sum
/// is compensated (Neumaier). NaN in → NaN, infinity in → infinity.
pub fn ref_norm(x: &[f64]) -> f64 {
    if x.iter().any(|v| v.is_nan()) {
        return f64::NAN;
    }
    if x.iter().any(|v| v.is_infinite()) {
        return f64::INFINITY;
    }
    let m = x.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if m == 0.0 {
        return 0.0;
    }
    let (_, e) = libm::frexp(m); // m = f · 2^e, f in [0.5, 1)
    let (mut sum, mut comp) = (0.0f64, 0.0f64);
    let mut add = |t: f64| {
        // Neumaier's compensated summation.
        let s = sum + t;
        comp += if sum.abs() >= t.abs() {
            (sum - s) + t
        } else {
            (t - s) + sum
        };
        sum = s;
    };
    for &v in x {
        let y = libm::scalbn(v, 1 - e); // exact unless it falls below the subnormals: negligible
        let hi = y * y;
        let lo = y.mul_add(y, -hi); // y² = hi + lo exactly
        add(hi);
        add(lo);
    }
    libm::scalbn((sum + comp).sqrt(), e - 1)
}
