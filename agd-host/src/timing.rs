//! Thread CPU time, what `agd bench` and the profiling examples time with: on a shared
//! machine it counts only the time this thread ran, not the time it waited for a core.
//!
//! Unix (Linux, macOS, the BSDs) reads `CLOCK_THREAD_CPUTIME_ID`; Windows adds the thread's
//! user and kernel times from `GetThreadTimes` (100 ns units, updated at the scheduler's
//! tick, so a figure there is only as fine as the samples are long: `agd bench`'s are
//! 5–200 ms). Anywhere else the clock reads 0.

/// The calling thread's CPU time in seconds (0 if the clock cannot be read).
pub fn thread_cpu() -> f64 {
    imp::thread_cpu().unwrap_or(0.0)
}

#[cfg(unix)]
mod imp {
    pub fn thread_cpu() -> Option<f64> {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid timespec; CLOCK_THREAD_CPUTIME_ID is a clock every Unix
        // `libc` names it for supports (an error return is handled).
        let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        (r == 0).then_some(ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9)
    }
}

#[cfg(windows)]
mod imp {
    use windows_sys::Win32::Foundation::FILETIME;
    use windows_sys::Win32::System::Threading::{GetCurrentThread, GetThreadTimes};

    /// A `FILETIME` duration in seconds.
    fn seconds(t: FILETIME) -> f64 {
        ((u64::from(t.dwHighDateTime) << 32) | u64::from(t.dwLowDateTime)) as f64 * 1e-7
    }

    pub fn thread_cpu() -> Option<f64> {
        let zero = FILETIME {
            dwLowDateTime: 0,
            dwHighDateTime: 0,
        };
        let (mut created, mut exited, mut kernel, mut user) = (zero, zero, zero, zero);
        // SAFETY: GetCurrentThread returns a pseudo-handle valid in this thread; the four
        // pointers are to live, writable FILETIMEs.
        let ok = unsafe {
            GetThreadTimes(
                GetCurrentThread(),
                &mut created,
                &mut exited,
                &mut kernel,
                &mut user,
            )
        };
        (ok != 0).then_some(seconds(kernel) + seconds(user))
    }
}

#[cfg(not(any(unix, windows)))]
mod imp {
    pub fn thread_cpu() -> Option<f64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::thread_cpu;

    #[test]
    fn the_clock_runs_while_this_thread_computes() {
        // A fresh thread may read 0 on Windows (no tick yet), so only a move is asserted (an
        // unreadable clock reads 0 throughout and fails it).
        let t0 = thread_cpu();
        let mut x = 1u64;
        let mut t1 = t0;
        // Spin until the clock moves (Windows updates it per scheduler tick, ~16 ms).
        for _ in 0..2_000 {
            for i in 0..100_000u64 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
            }
            t1 = thread_cpu();
            if t1 > t0 {
                break;
            }
        }
        std::hint::black_box(x);
        assert!(t1 > t0, "thread CPU time stood still: {t0} then {t1}");
    }
}
