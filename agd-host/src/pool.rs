//! A fork-join pool for the batch-parallel step ([`crate::parallel`]) whose workers wait for
//! the next job by spinning for a while before they sleep.
//!
//! Why not `rayon`'s pool, which this replaced: its idle workers go to sleep within
//! microseconds, and waking a sleeping thread on this VM (a futex wake, an interrupt to a
//! halted virtual CPU) took 30–160 µs, three times per training step (the slices, the
//! gradient sum, the update). Between two steps the training loop gathers the next batch on
//! the calling thread, long enough for every worker to fall asleep. The same is done by the
//! OpenMP runtimes PyTorch uses, whose threads spin for a while between parallel regions. No
//! well-kept crate offers a scoped fork-join with that waiting policy, so it is written here,
//! small: one job at a time, published to every worker by an epoch counter.

use std::cell::UnsafeCell;
use std::hint;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long a worker waits for the next job spinning before it sleeps, and how long the
/// calling thread spins for the workers before it yields between looks. A training step
/// takes about a millisecond or more and the gap between two is shorter, so during training
/// the workers never sleep; between runs they cost nothing.
const SPIN: Duration = Duration::from_millis(2);

/// Spins between two reads of the clock.
const LOOKS: u32 = 64;

/// The job of one [`Pool::run`], its borrows' lifetime erased while it is published.
type Job = dyn Fn(usize) + Sync + 'static;

/// What the calling thread and the workers share.
struct Shared {
    /// Bumped once per job (and once to stop); a worker runs a job when it sees a new epoch.
    epoch: AtomicU64,
    /// The current job. Written only by the calling thread while no worker runs a job (every
    /// worker has finished the previous one), read by a worker after it saw the epoch that
    /// published it.
    job: UnsafeCell<*const Job>,
    /// Workers that have not finished the current job.
    pending: AtomicUsize,
    /// A worker's job panicked.
    panicked: AtomicBool,
    /// The pool is being dropped.
    stop: AtomicBool,
    /// Per worker: it is about to sleep or sleeping, and must be woken for a new job.
    sleeping: Vec<AtomicBool>,
}

// SAFETY: `job` is only accessed under the protocol written on it; every other field is atomic.
unsafe impl Sync for Shared {}
// SAFETY: as above; the pointer is to a `Sync` closure.
unsafe impl Send for Shared {}

/// `N - 1` worker threads; the calling thread is the `N`-th.
pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("workers", &self.workers.len())
            .finish()
    }
}

impl Pool {
    /// A pool with up to `workers` threads besides the caller's, named `agd-worker-1`, …; as
    /// many as the system starts (none is a pool that runs everything on the caller).
    pub fn new(workers: usize) -> Pool {
        let shared = Arc::new(Shared {
            epoch: AtomicU64::new(0),
            job: UnsafeCell::new(std::ptr::null::<fn(usize)>() as *const Job),
            pending: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            sleeping: (0..workers).map(|_| AtomicBool::new(false)).collect(),
        });
        let mut handles = Vec::with_capacity(workers);
        for w in 0..workers {
            let s = Arc::clone(&shared);
            let started = thread::Builder::new()
                .name(format!("agd-worker-{}", w + 1))
                .spawn(move || work(&s, w));
            match started {
                Ok(h) => handles.push(h),
                Err(_) => break,
            }
        }
        Pool {
            shared,
            workers: handles,
        }
    }

    /// Threads that run jobs, the caller's included.
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Runs `job(t, items[t])` for every item and returns the results in order: thread `i`
    /// (the caller is thread 0) takes items `i`, `i + N`, … of the `N` threads. Returns when
    /// every item is done; a panic in any job is raised again here once all are done.
    pub fn run<I: Send, R: Send>(
        &mut self,
        items: Vec<I>,
        job: impl Fn(usize, I) -> R + Sync,
    ) -> Vec<R> {
        let n = items.len();
        let threads = self.threads();
        let slots: Vec<Mutex<(Option<I>, Option<R>)>> = items
            .into_iter()
            .map(|i| Mutex::new((Some(i), None)))
            .collect();
        let take = |t: usize| slots[t].lock().unwrap_or_else(|e| e.into_inner()).0.take();
        let task = |first: usize| {
            for t in (first..n).step_by(threads) {
                if let Some(item) = take(t) {
                    let r = job(t, item);
                    slots[t].lock().unwrap_or_else(|e| e.into_inner()).1 = Some(r);
                }
            }
        };
        if n <= 1 || self.workers.is_empty() {
            for i in 0..threads {
                task(i);
            }
        } else {
            self.fork_join(&task);
        }
        slots
            .into_iter()
            .map(|m| {
                let (_, r) = m.into_inner().unwrap_or_else(|e| e.into_inner());
                r.expect("every item ran")
            })
            .collect()
    }

    /// Runs `task(i)` on every thread `i` (the caller's is 0) and waits for all.
    fn fork_join(&mut self, task: &(dyn Fn(usize) + Sync)) {
        let s = &*self.shared;
        // SAFETY: erasing the borrow's lifetime is sound because this function does not
        // return (nor unwind) before every worker has finished with the job (`pending` is 0),
        // and no worker reads `job` again before the next epoch.
        let erased: *const Job =
            unsafe { std::mem::transmute(task as *const (dyn Fn(usize) + Sync)) };
        // SAFETY: no worker runs a job now (the previous `fork_join` waited for all), so none
        // reads `job` while it is written (`&mut self`: one caller at a time).
        unsafe { *s.job.get() = erased };
        s.pending.store(self.workers.len(), Ordering::Relaxed);
        // Publishes the job (and `pending`): SeqCst, against each worker's `sleeping` flag.
        s.epoch.fetch_add(1, Ordering::SeqCst);
        for (w, h) in self.workers.iter().enumerate() {
            if s.sleeping[w].load(Ordering::SeqCst) {
                h.thread().unpark();
            }
        }
        let mine = panic::catch_unwind(AssertUnwindSafe(|| task(0)));
        wait(|| s.pending.load(Ordering::Acquire) == 0, thread::yield_now);
        if let Err(p) = mine {
            panic::resume_unwind(p);
        }
        if s.panicked.swap(false, Ordering::Relaxed) {
            panic!("a worker thread of the batch-parallel step panicked");
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let s = &*self.shared;
        s.stop.store(true, Ordering::SeqCst);
        s.epoch.fetch_add(1, Ordering::SeqCst);
        for h in &self.workers {
            h.thread().unpark();
        }
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

/// Spins until `done()`, reading the clock every [`LOOKS`] spins; after [`SPIN`], calls
/// `idle` (yield the processor, or sleep) at every [`LOOKS`]-th look instead.
fn wait(done: impl Fn() -> bool, idle: impl Fn()) {
    let start = Instant::now();
    let mut spins = 0u32;
    while !done() {
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(LOOKS) && start.elapsed() > SPIN {
            idle();
        } else {
            hint::spin_loop();
        }
    }
}

/// Worker `w`'s loop: wait for a new epoch (spinning for [`SPIN`], then sleeping), run the
/// job as thread `w + 1`, report it done.
fn work(s: &Shared, w: usize) {
    // The epoch the pool was made with, not the one this thread starts to see: a job
    // published before the thread got going is still this thread's to run.
    let mut seen = 0;
    loop {
        // Sleep. Either the caller sees `sleeping` after its epoch bump and unparks this
        // thread, or this load sees the bump (SeqCst on both sides); an unpark that comes
        // before the park makes the park return at once.
        let sleep = || {
            s.sleeping[w].store(true, Ordering::SeqCst);
            if s.epoch.load(Ordering::SeqCst) == seen {
                thread::park();
            }
            s.sleeping[w].store(false, Ordering::SeqCst);
        };
        wait(|| s.epoch.load(Ordering::Acquire) != seen, sleep);
        seen = s.epoch.load(Ordering::Acquire);
        if s.stop.load(Ordering::Acquire) {
            return;
        }
        // SAFETY: the epoch just seen published `job`, which stays valid until `pending`
        // reaches 0 (see `Shared::job`).
        let job = unsafe { &**s.job.get() };
        if panic::catch_unwind(AssertUnwindSafe(|| job(w + 1))).is_err() {
            s.panicked.store(true, Ordering::Relaxed);
        }
        s.pending.fetch_sub(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// Runs `f` on its own thread and fails if it has not returned within 60 s: a pool that
    /// deadlocks fails its test instead of hanging the test run.
    fn within_a_minute(f: impl FnOnce() + Send + 'static) {
        let (tx, rx) = mpsc::channel();
        let h = thread::spawn(move || {
            f();
            let _ = tx.send(());
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(()) => h.join().unwrap(),
            // The job panicked: join to raise its panic.
            Err(mpsc::RecvTimeoutError::Disconnected) => h.join().unwrap(),
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("the pool did not finish: deadlock"),
        }
    }

    #[test]
    fn a_job_published_as_the_pool_starts_runs() {
        // The first job comes before the worker threads have started (the bug this catches
        // made a worker skip it and the caller wait for ever).
        within_a_minute(|| {
            for _ in 0..200 {
                let mut pool = Pool::new(2);
                assert_eq!(pool.run(vec![1, 2, 3], |_, x| x * 2), vec![2, 4, 6]);
            }
        });
    }

    #[test]
    fn every_item_runs_once_in_order_on_any_pool() {
        within_a_minute(every_item_runs_once_in_order);
    }

    fn every_item_runs_once_in_order() {
        for workers in [0, 1, 3] {
            let mut pool = Pool::new(workers);
            for n in [0, 1, 2, 5, 9] {
                for _ in 0..50 {
                    let items: Vec<usize> = (0..n).collect();
                    let out = pool.run(items, |t, x| {
                        assert_eq!(t, x);
                        x * 10
                    });
                    assert_eq!(out, (0..n).map(|x| x * 10).collect::<Vec<_>>());
                }
            }
        }
    }

    #[test]
    fn jobs_borrow_and_mutate_disjoint_parts() {
        within_a_minute(|| {
            let mut pool = Pool::new(1);
            let mut data = vec![0u32; 1000];
            for round in 1..=20u32 {
                let parts: Vec<&mut [u32]> = data.chunks_mut(250).collect();
                pool.run(parts, |t, part| {
                    for v in part.iter_mut() {
                        *v += round + t as u32;
                    }
                });
            }
            // Part t got Σ_round (round + t) = 210 + 20·t.
            for (i, v) in data.iter().enumerate() {
                assert_eq!(*v, 210 + 20 * (i / 250) as u32);
            }
        });
    }

    #[test]
    fn a_sleeping_worker_wakes_for_the_next_job() {
        within_a_minute(|| {
            let mut pool = Pool::new(1);
            assert_eq!(pool.run(vec![1, 2], |_, x| x + 1), vec![2, 3]);
            // Longer than the spin: the worker goes to sleep (on a busy machine it may take
            // a while to be scheduled again and get there, hence the wait), and is asleep
            // when the next job comes.
            thread::sleep(SPIN * 3);
            let asleep = Instant::now();
            while !pool.shared.sleeping[0].load(Ordering::SeqCst) {
                assert!(asleep.elapsed() < Duration::from_secs(30), "never slept");
                thread::sleep(Duration::from_millis(1));
            }
            assert_eq!(pool.run(vec![1, 2], |_, x| x * 3), vec![3, 6]);
        });
    }

    #[test]
    fn a_panic_in_a_worker_reaches_the_caller_and_the_pool_goes_on() {
        within_a_minute(|| {
            let mut pool = Pool::new(1);
            let r = panic::catch_unwind(AssertUnwindSafe(|| {
                pool.run(vec![0, 1], |t, _| {
                    if t == 1 {
                        panic!("worker job");
                    }
                })
            }));
            assert!(r.is_err());
            assert_eq!(pool.run(vec![5, 6], |_, x| x), vec![5, 6]);
        });
    }
}
