//! One core's floating-point peak, measured: independent chains of vector FMAs, as many as the
//! host's widest vectors and two FMA ports can overlap. `agd bench` runs it in the same
//! interleaved rounds as each matrix product, so that a kernel's GFLOP/s can be read as a
//! fraction of what the core delivered at that moment: on this shared VM the products' speed
//! moves by up to 2x between runs, and a fixed peak figure would mislead. (Measured this way
//! the peak itself held steady while the products slowed: the slow spells are on the memory
//! side, not the clock.)

/// A peak measurement for this CPU: the widest FMA it has.
#[derive(Debug, Clone, Copy)]
pub struct FmaPeak {
    /// The instruction set used, `avx512f` or `avx2+fma`.
    pub isa: &'static str,
    lanes: usize,
    chains: usize,
    run: fn(usize) -> f32,
}

/// Independent accumulator chains with AVX-512: the 6 x 4 tile's 24, enough to hide a 4-cycle
/// FMA latency on two ports (8 would do), and 24 of the 32 `zmm` registers.
const CHAINS_512: usize = 24;

/// Independent accumulator chains with AVX2: 12 of the 16 `ymm` registers, leaving room for the
/// two constants. 24 would not fit: the chains would spill to the stack every round, and the
/// "peak" would time the loads and stores instead (it measured 38 GFLOP/s on an AMD EPYC whose
/// products ran at 95).
const CHAINS_256: usize = 12;

impl FmaPeak {
    /// The widest FMA this CPU has (`None` without AVX2 and FMA, or off x86-64).
    pub fn detect() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Some(FmaPeak {
                    isa: "avx512f",
                    lanes: 16,
                    chains: CHAINS_512,
                    run: |n| {
                        // SAFETY: AVX-512F was detected just above.
                        unsafe { x86::fma512(n) }
                    },
                });
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Some(FmaPeak {
                    isa: "avx2+fma",
                    lanes: 8,
                    chains: CHAINS_256,
                    run: |n| {
                        // SAFETY: AVX2 and FMA were detected just above.
                        unsafe { x86::fma256(n) }
                    },
                });
            }
        }
        None
    }

    /// Runs `iters` rounds of the chains; returns a value that depends on every FMA (so that
    /// none is optimised away).
    pub fn run(&self, iters: usize) -> f32 {
        (self.run)(iters)
    }

    /// Floating-point operations of [`FmaPeak::run`] over `iters` rounds (an FMA is two).
    pub fn flops(&self, iters: usize) -> f64 {
        (2 * self.chains * self.lanes * iters) as f64
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{CHAINS_256, CHAINS_512};
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU must have AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn fma512(iters: usize) -> f32 {
        let mut acc = [_mm512_set1_ps(1.0); CHAINS_512];
        let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
        for _ in 0..iters {
            for x in acc.iter_mut() {
                *x = _mm512_fmadd_ps(*x, a, b);
            }
        }
        let mut s = _mm512_setzero_ps();
        for x in acc {
            s = _mm512_add_ps(s, x);
        }
        _mm512_reduce_add_ps(s)
    }

    /// # Safety
    /// The CPU must have AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn fma256(iters: usize) -> f32 {
        let mut acc = [_mm256_set1_ps(1.0); CHAINS_256];
        let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
        for _ in 0..iters {
            for x in acc.iter_mut() {
                *x = _mm256_fmadd_ps(*x, a, b);
            }
        }
        let mut s = [0.0f32; 8];
        let mut t = _mm256_setzero_ps();
        for x in acc {
            t = _mm256_add_ps(t, x);
        }
        // SAFETY: `s` holds the 8 values one unaligned store writes.
        unsafe { _mm256_storeu_ps(s.as_mut_ptr(), t) };
        s.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chains_compute_what_they_claim() {
        // x ← 0.999999·x + 1e-7 from x = 1, `iters` times, in every lane of every chain: the
        // result is checked against the same recurrence in scalar f32 (FMA rounding once per
        // step, like `mul_add`), so the loop did run and ran `iters` rounds.
        let Some(p) = FmaPeak::detect() else {
            return;
        };
        let iters = 1000;
        let mut x = 1.0f32;
        for _ in 0..iters {
            x = x.mul_add(0.999_999, 1e-7);
        }
        let want = x * (p.chains * p.lanes) as f32;
        let got = p.run(iters);
        assert!((got - want).abs() <= 1e-4 * want, "{got} vs {want}");
        assert_eq!(p.flops(iters), (2 * p.chains * p.lanes * iters) as f64);
    }
}
