//! Thread CPU time, what `agd bench` and the profiling examples time with: on a shared
//! machine it counts only the time this thread ran, not the time it waited for a core.
//!
//! Unix (Linux, macOS, the BSDs) reads `CLOCK_THREAD_CPUTIME_ID`. Windows keeps a thread's
//! CPU time per scheduler tick (`GetThreadTimes`, about 15.6 ms), too coarse for samples of
//! half a millisecond (every product sample would read 0), so there, and on any other OS,
//! [`thread_cpu`] is the monotonic wall clock instead; [`CLOCK`] says which one a build has.

/// What [`thread_cpu`] reads on this build: `"thread_cpu"` (the thread's CPU time) or
/// `"wall"` (the monotonic wall clock, where no fine thread clock exists).
pub const CLOCK: &str = if cfg!(unix) { "thread_cpu" } else { "wall" };

/// The calling thread's CPU time in seconds (0 if the clock cannot be read); on a build
/// whose [`CLOCK`] is `"wall"`, seconds of the monotonic clock since its first reading.
pub fn thread_cpu() -> f64 {
    imp::thread_cpu()
}

#[cfg(unix)]
mod imp {
    pub fn thread_cpu() -> f64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid timespec; CLOCK_THREAD_CPUTIME_ID is a clock every Unix
        // `libc` names it for supports (an error return is handled).
        let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        if r == 0 {
            ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
        } else {
            0.0
        }
    }
}

#[cfg(not(unix))]
mod imp {
    use std::sync::OnceLock;
    use std::time::Instant;

    pub fn thread_cpu() -> f64 {
        static START: OnceLock<Instant> = OnceLock::new();
        START.get_or_init(Instant::now).elapsed().as_secs_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::thread_cpu;

    #[test]
    fn the_clock_moves_finely_while_this_thread_computes() {
        // Each reading must differ from the last after about a millisecond of work: a clock
        // that stands still (unreadable) or moves by scheduler ticks fails.
        let mut x = 1u64;
        for _ in 0..20 {
            let t0 = thread_cpu();
            for i in 0..1_000_000u64 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
            }
            std::hint::black_box(x);
            let t1 = thread_cpu();
            assert!(t1 > t0, "the clock stood still: {t0} then {t1}");
            assert!(t1 - t0 < 1.0, "a millisecond of work took {} s", t1 - t0);
        }
    }
}
