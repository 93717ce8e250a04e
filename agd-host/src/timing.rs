//! Thread CPU time, what `agd bench` and the profiling examples time with: on a shared
//! machine it counts only the time this thread ran, not the time it waited for a core.

/// The calling thread's CPU time in seconds (0 if the clock cannot be read).
pub fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec; CLOCK_THREAD_CPUTIME_ID is supported on Linux.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if r == 0 {
        ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
    } else {
        0.0
    }
}
