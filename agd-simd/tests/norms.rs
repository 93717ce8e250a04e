//! `nrm2`, `sum_sq_scaled` and `SumSq::merge` over the whole floating-point range: entries
//! from subnormal to near the overflow threshold, NaN and infinities, zero vectors, and
//! sums merged from pieces.
//!
//! The reference is [`common::ref_norm`], accurate to a few ulps of `f64`, applied to the
//! exact values of the test vector. The kernel must be within a relative `1e-6` (`f32`) or
//! `1e-14` (`f64`) of it: for the lengths tested (≤ 130) that is about 17 and 45 units of
//! roundoff, while a plain sum of squares in the working precision would overflow, underflow
//! to zero, or lose every digit on these inputs.

mod common;

use agd_simd::{Element, SumSq, nrm2, sum_sq_scaled};
use common::{Rng, SHAPES, ref_norm, widen};
use proptest::prelude::*;
use proptest::sample::select;

/// Relative accuracy required of a norm in `T`.
fn rel_tol<T: Element>() -> f64 {
    if T::BYTES == 4 { 1e-6 } else { 1e-14 }
}

/// The spacing of `T`'s subnormals. A norm that is itself subnormal cannot be stored to a
/// relative accuracy, only to within this absolute step (rounding alone costs half of it).
fn denorm_min<T: Element>() -> f64 {
    T::MIN_POSITIVE.to_f64() * T::EPSILON.to_f64()
}

/// A class of entry magnitudes: `±m·10^e`, `m` uniform in `[1, 10)`, `e` uniform in
/// `lo..=hi`, and a share of exact zeros.
#[derive(Debug, Clone, Copy)]
struct Range {
    lo: i32,
    hi: i32,
}

/// `n` entries; each picks one of `ranges` at random (so one range gives a uniform class,
/// several give a mixed vector). Values are rounded to `T`; those too small for `T` become
/// subnormal or zero, which is part of the test.
fn vector<T: Element>(rng: &mut Rng, n: usize, ranges: &[Range], zeros: f64) -> Vec<T> {
    (0..n)
        .map(|_| {
            if rng.unit() < zeros {
                return T::ZERO;
            }
            let r = ranges[rng.below(ranges.len())];
            let e = r.lo + rng.below((r.hi - r.lo + 1) as usize) as i32;
            let mant = rng.uniform(1.0, 10.0);
            let sign = if rng.below(2) == 0 { 1.0 } else { -1.0 };
            T::from_f64(sign * mant * 10f64.powi(e))
        })
        .collect()
}

/// `nrm2`, `sum_sq_scaled(..).norm()` and merges of the two halves (split at `split % (n+1)`)
/// and of small chunks all agree with the reference.
fn check_norm<T: Element>(x: &[T], split: usize) -> Result<(), TestCaseError> {
    let want = ref_norm(&widen(x));
    prop_assume!(want.is_finite() && want <= T::MAX.to_f64());
    let tol = rel_tol::<T>();
    let close = |what: &str, got: T| -> Result<(), TestCaseError> {
        let got = got.to_f64();
        prop_assert!(
            (got - want).abs() <= tol * want + denorm_min::<T>(),
            "{} {} of {} entries: {:e}, reference {:e}, relative error {:e}",
            T::NAME,
            what,
            x.len(),
            got,
            want,
            (got - want).abs() / want
        );
        Ok(())
    };
    close("nrm2", nrm2(x))?;
    let whole = sum_sq_scaled(x);
    prop_assert!(whole.scale >= T::ZERO && whole.ssq.is_finite());
    prop_assert_eq!(whole.norm().to_bits_u64(), nrm2(x).to_bits_u64());

    let h = split % (x.len() + 1);
    let (left, right) = (sum_sq_scaled(&x[..h]), sum_sq_scaled(&x[h..]));
    let merged = left.merge(right);
    close("merge of halves", merged.norm())?;
    // The same sum whichever side is merged into which.
    prop_assert_eq!(
        merged.norm().to_bits_u64(),
        right.merge(left).norm().to_bits_u64()
    );
    let chunk = 1 + split % 7;
    let chunked = x
        .chunks(chunk)
        .map(sum_sq_scaled)
        .fold(SumSq::zero(), SumSq::merge);
    close("merge of chunks", chunked.norm())?;
    Ok(())
}

/// Lengths from the odd shapes.
fn len() -> impl Strategy<Value = usize> {
    select(SHAPES.to_vec())
}

const fn r(lo: i32, hi: i32) -> Range {
    Range { lo, hi }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Entries spread over sixty decades, `1e-30 ..= 1e30`: squares over- and underflow `f32`.
    #[test]
    fn wide_range(n in len(), seed in any::<u64>(), split in any::<usize>(), zeros in 0.0..0.5f64) {
        let mut rng = Rng::new(seed);
        check_norm(&vector::<f32>(&mut rng, n, &[r(-30, 30)], zeros), split)?;
        check_norm(&vector::<f64>(&mut rng, n, &[r(-30, 30)], zeros), split)?;
        check_norm(&vector::<f64>(&mut rng, n, &[r(-300, 300)], zeros), split)?;
    }

    /// Everything tiny: squares underflow (`f32` down into and through the subnormals).
    #[test]
    fn all_tiny(n in len(), seed in any::<u64>(), split in any::<usize>()) {
        let mut rng = Rng::new(seed);
        check_norm(&vector::<f32>(&mut rng, n, &[r(-40, -30)], 0.0), split)?;
        check_norm(&vector::<f32>(&mut rng, n, &[r(-45, -38)], 0.0), split)?;
        check_norm(&vector::<f64>(&mut rng, n, &[r(-40, -30)], 0.0), split)?;
        check_norm(&vector::<f64>(&mut rng, n, &[r(-323, -300)], 0.0), split)?;
    }

    /// Everything huge: squares overflow, the norm does not.
    #[test]
    fn all_huge(n in len(), seed in any::<u64>(), split in any::<usize>()) {
        let mut rng = Rng::new(seed);
        check_norm(&vector::<f32>(&mut rng, n, &[r(30, 30)], 0.0), split)?;
        check_norm(&vector::<f32>(&mut rng, n, &[r(19, 36)], 0.0), split)?;
        check_norm(&vector::<f64>(&mut rng, n, &[r(30, 30)], 0.0), split)?;
        check_norm(&vector::<f64>(&mut rng, n, &[r(300, 300)], 0.0), split)?;
        check_norm(&vector::<f64>(&mut rng, n, &[r(150, 305)], 0.0), split)?;
    }

    /// Tiny, ordinary and huge entries mixed in one vector, with zeros.
    #[test]
    fn mixed(n in len(), seed in any::<u64>(), split in any::<usize>(), zeros in 0.0..0.5f64) {
        let mut rng = Rng::new(seed);
        let f32_ranges = [r(-44, -38), r(-3, 3), r(30, 36)];
        let f64_ranges = [r(-322, -300), r(-3, 3), r(30, 36), r(295, 305)];
        check_norm(&vector::<f32>(&mut rng, n, &f32_ranges, zeros), split)?;
        check_norm(&vector::<f64>(&mut rng, n, &f64_ranges, zeros), split)?;
    }

    /// Ordinary magnitudes, where the fast one-pass path is taken.
    #[test]
    fn ordinary(n in len(), seed in any::<u64>(), split in any::<usize>(), e in -6..=6i32) {
        let mut rng = Rng::new(seed);
        check_norm(&vector::<f32>(&mut rng, n, &[r(e - 1, e)], 0.2), split)?;
        check_norm(&vector::<f64>(&mut rng, n, &[r(e - 1, e)], 0.2), split)?;
    }

    /// A NaN anywhere gives NaN, also next to infinities; infinities alone give +∞.
    #[test]
    fn non_finite_entries(n in len(), seed in any::<u64>(), split in any::<usize>()) {
        non_finite::<f32>(n, seed, split)?;
        non_finite::<f64>(n, seed, split)?;
    }
}

fn is_nan<T: Element>(x: T) -> bool {
    x.to_f64().is_nan()
}

fn non_finite<T: Element>(n: usize, seed: u64, split: usize) -> Result<(), TestCaseError> {
    let mut rng = Rng::new(seed);
    let mut x = vector::<T>(&mut rng, n, &[r(-3, 3), r(-40, -38), r(30, 36)], 0.3);
    let h = split % (n + 1);
    let halves = |x: &[T]| sum_sq_scaled(&x[..h]).merge(sum_sq_scaled(&x[h..]));
    let inf = T::from_f64(if rng.below(2) == 0 {
        f64::INFINITY
    } else {
        f64::NEG_INFINITY
    });
    x[rng.below(n)] = inf;
    prop_assert_eq!(nrm2(&x).to_f64(), f64::INFINITY);
    prop_assert_eq!(halves(&x).norm().to_f64(), f64::INFINITY);
    x[rng.below(n)] = T::from_f64(f64::NAN);
    prop_assert!(is_nan(nrm2(&x)), "NaN lost in nrm2 of {n}");
    prop_assert!(is_nan(halves(&x).norm()), "NaN lost merging at {h} of {n}");
    // NaN in an otherwise zero vector.
    let mut z = vec![T::ZERO; n];
    z[rng.below(n)] = T::from_f64(f64::NAN);
    prop_assert!(is_nan(nrm2(&z)));
    prop_assert!(
        is_nan(halves(&z).norm()),
        "NaN lost merging with zeros at {h} of {n}"
    );
    Ok(())
}

/// `+0` and `-0` entries: the norm is exactly `+0`, also for the empty vector.
fn zero_vectors<T: Element>() {
    assert_eq!(nrm2::<T>(&[]).to_bits_u64(), 0);
    for &n in &SHAPES {
        let x: Vec<T> = (0..n)
            .map(|i| if i % 3 == 0 { -T::ZERO } else { T::ZERO })
            .collect();
        assert_eq!(nrm2(&x).to_bits_u64(), 0, "{} zeros of {n}", T::NAME);
        let s = sum_sq_scaled(&x);
        assert_eq!(s.merge(s).norm().to_bits_u64(), 0);
    }
    assert_eq!(SumSq::<T>::zero().norm().to_bits_u64(), 0);
}

#[test]
fn zero_vectors_f32() {
    zero_vectors::<f32>();
}
#[test]
fn zero_vectors_f64() {
    zero_vectors::<f64>();
}

/// Pieces each of whose plain sum of squares fits (so each takes the unscaled fast path) but
/// whose total does not: the merged norm must still be finite and right.
fn merge_near_overflow<T: Element>(entry: f64) {
    let x = [T::from_f64(entry); 4];
    let want = ref_norm(&widen(&x));
    let left = sum_sq_scaled(&x[..2]);
    let right = sum_sq_scaled(&x[2..]);
    assert!(
        left.ssq.is_finite() && (left.ssq + right.ssq).to_f64().is_infinite(),
        "test premise: halves fit, their plain sum overflows"
    );
    for got in [left.merge(right).norm(), nrm2(&x)] {
        let got = got.to_f64();
        assert!(
            (got - want).abs() <= rel_tol::<T>() * want,
            "{}: {got:e} vs {want:e}",
            T::NAME
        );
    }
    // And merged on: four such pieces.
    let four = left.merge(right).merge(left.merge(right)).norm().to_f64();
    assert!((four - want * 2f64.sqrt()).abs() <= rel_tol::<T>() * want * 2f64.sqrt());
}

#[test]
fn merge_does_not_overflow_f32() {
    // 1.3e19² · 2 ≈ 3.4e38 just fits f32; twice that does not.
    merge_near_overflow::<f32>(1.3e19);
}
#[test]
fn merge_does_not_overflow_f64() {
    merge_near_overflow::<f64>(9.0e153);
}

/// Merging non-finite sums: NaN wins over everything (infinity, zero, finite, in either
/// order); infinity wins over every finite sum.
fn merge_non_finite<T: Element>() {
    let of = |v: f64| sum_sq_scaled(&[T::from_f64(v)]);
    let (nan, inf, zero, one) = (of(f64::NAN), of(f64::INFINITY), SumSq::zero(), of(1.0));
    let (tiny, huge) = (of(1e-40), of(1e30));
    for other in [inf, zero, one, tiny, huge, nan] {
        assert!(is_nan(nan.merge(other).norm()), "NaN.merge({other:?})");
        assert!(is_nan(other.merge(nan).norm()), "{other:?}.merge(NaN)");
    }
    for other in [inf, zero, one, tiny, huge] {
        assert_eq!(inf.merge(other).norm().to_f64(), f64::INFINITY);
        assert_eq!(other.merge(inf).norm().to_f64(), f64::INFINITY);
    }
}

#[test]
fn merge_non_finite_f32() {
    merge_non_finite::<f32>();
}
#[test]
fn merge_non_finite_f64() {
    merge_non_finite::<f64>();
}

/// Single entries anywhere in the range, including the extremes: the norm is the magnitude
/// (to one rounding of the scaled path).
fn single_entries<T: Element>(values: &[f64]) {
    for &v in values {
        let x = T::from_f64(v);
        for neg in [false, true] {
            let e = if neg { -x } else { x };
            let got = nrm2(&[e]).to_f64();
            let want = x.to_f64();
            assert!(
                (got - want).abs() <= rel_tol::<T>() * want,
                "{} |{e:?}| = {got:e}",
                T::NAME
            );
        }
    }
}

#[test]
fn single_entries_f32() {
    single_entries::<f32>(&[
        f32::MAX as f64,
        3.0e38,
        1.0e30,
        1.0,
        1.0e-30,
        f32::MIN_POSITIVE as f64,
        1.0e-39,
        1.0e-40,
        1.0e-45,
    ]);
}
#[test]
fn single_entries_f64() {
    single_entries::<f64>(&[
        f64::MAX,
        1.0e308,
        1.0e300,
        1.0,
        1.0e-300,
        f64::MIN_POSITIVE,
        1.0e-310,
        1.0e-320,
        5.0e-324,
    ]);
}

/// Asserts `got` is within the norm tolerance of the reference norm of `x`.
fn assert_close<T: Element>(what: &str, x: &[T], got: T) {
    let want = ref_norm(&widen(x));
    let got = got.to_f64();
    assert!(
        (got - want).abs() <= rel_tol::<T>() * want + denorm_min::<T>(),
        "{} {what} of {} entries: {got:e}, reference {want:e}",
        T::NAME,
        x.len()
    );
}

/// The fast path's lower bound: a plain sum of squares is kept as it is (`scale` 1) when it
/// is at least `MIN_POSITIVE / EPSILON`, and below that the scaled path (`scale` = the
/// largest magnitude) takes over; the norm is right on both sides.
fn fast_path_lower_bound<T: Element>() {
    let bound = (T::MIN_POSITIVE / T::EPSILON).to_f64();
    for &n in &SHAPES {
        // n equal entries of magnitude e: Σ x² = n e² = factor · bound (up to roundings far
        // smaller than the factors' distance from 1).
        for (factor, fast) in [(1.001, true), (0.999, false), (4.0, true), (0.25, false)] {
            let e = (bound * factor / n as f64).sqrt();
            let x: Vec<T> = (0..n)
                .map(|i| T::from_f64(if i % 2 == 0 { e } else { -e }))
                .collect();
            let s = sum_sq_scaled(&x);
            assert_eq!(
                s.scale == T::ONE,
                fast,
                "{} n={n}, sum {factor} x the bound: {s:?}",
                T::NAME
            );
            assert_close("norm near the lower bound", &x, s.norm());
            assert_close("nrm2 near the lower bound", &x, nrm2(&x));
        }
    }
}

#[test]
fn fast_path_lower_bound_f32() {
    fast_path_lower_bound::<f32>();
}
#[test]
fn fast_path_lower_bound_f64() {
    fast_path_lower_bound::<f64>();
}

/// Every square finite but their sum not: the plain sum overflows only as it is added up
/// (in one accumulator, or only when the accumulators are combined), and the scaled path must
/// give the finite norm. A sum that stays below `MAX` keeps the fast path.
fn overflow_while_adding<T: Element>() {
    // Each square is a fortieth of MAX: 38 of them fit (40 may round past MAX), 42 do not.
    let e = (T::MAX.to_f64() / 40.0).sqrt();
    for (n, fast) in [
        (30, true),
        (38, true),
        (42, false),
        (64, false),
        (130, false),
    ] {
        let x: Vec<T> = (0..n)
            .map(|i| T::from_f64(if i % 3 == 0 { -e } else { e }))
            .collect();
        let s = sum_sq_scaled(&x);
        assert_eq!(s.scale == T::ONE, fast, "{} n={n}: {s:?}", T::NAME);
        assert!(s.ssq.is_finite(), "{} n={n}: {s:?}", T::NAME);
        assert_close("norm of huge entries", &x, s.norm());
        assert_close("nrm2 of huge entries", &x, nrm2(&x));
    }
    // Past 10⁴ entries (one accumulator lane alone overflows): still finite and right.
    let x = vec![T::from_f64(e); 10_000];
    assert_close("norm of 10⁴ huge entries", &x, nrm2(&x));
    // A NaN or an infinity among such entries still wins.
    let mut y = vec![T::from_f64(e); 64];
    y[17] = T::from_f64(f64::INFINITY);
    assert_eq!(nrm2(&y).to_f64(), f64::INFINITY);
    y[50] = T::from_f64(f64::NAN);
    assert!(is_nan(nrm2(&y)));
}

#[test]
fn overflow_while_adding_f32() {
    overflow_while_adding::<f32>();
}
#[test]
fn overflow_while_adding_f64() {
    overflow_while_adding::<f64>();
}
