//! Choosing the matrix kernel: by the CPU ([`Auto`], what every product does) or by the
//! caller ([`Kernel`], for racing the kernels against each other on one machine).

use crate::element::Element;
use crate::error::Error;
use crate::gemm::{nn, nt, tn};

/// How a product picks the kernel for its blocked loop. `Auto` asks the CPU; a [`Kernel`]
/// runs itself. A zero-sized `Auto` compiles to exactly the code a plain call to
/// `kernel::dispatch` would.
pub(crate) trait Dispatch: Copy {
    /// Runs `job` with the chosen kernel.
    ///
    /// # Safety
    /// The job's own contract holds, and the CPU runs the chosen kernel.
    #[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
    unsafe fn dispatch<T: Element, J: crate::kernel::Job<T>>(self, job: J) -> J::Out;
}

/// The fastest kernel this CPU has ([`crate::kernel()`] names it).
#[derive(Clone, Copy)]
pub(crate) struct Auto;

impl Dispatch for Auto {
    #[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
    #[inline(always)]
    unsafe fn dispatch<T: Element, J: crate::kernel::Job<T>>(self, job: J) -> J::Out {
        // SAFETY: the caller's contract; `dispatch` picks a kernel the CPU has.
        unsafe { crate::kernel::dispatch(job) }
    }
}

/// A matrix kernel, chosen by the caller instead of by the CPU: for benchmarks that race
/// the kernels against each other on one machine (`agd bench` does), and for checking one
/// kernel's results against another's.
///
/// The plain products ([`crate::matmul_nt`] and the rest) always take the fastest kernel the
/// CPU has; these methods take the one you name, with the same arguments, checks and
/// results up to rounding. The kernel is the blocked loop's: the shapes that skip it (fewer
/// than three rows of `C`, one column, a depth of 0) run the same unpacked code whichever
/// kernel is named. A named x86 kernel is always entered through a call compiled with its
/// target features, as a build without them runs it; a build that enables AVX-512F runs
/// its automatic choice inlined instead, so at the smallest shapes the two can differ by
/// that call.
///
/// ```
/// use agd_simd::Kernel;
/// let (a, b) = ([1.0f32; 4 * 8], [2.0f32; 5 * 8]);
/// for kernel in Kernel::runnable() {
///     let mut c = [0.0f32; 4 * 5];
///     kernel.matmul_nt(4, 5, 8, 1.0, &a, &b, 0.0, &mut c).unwrap();
///     assert!(c.iter().all(|&x| x == 16.0), "{}", kernel.name());
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// The AVX-512 microkernel: x86-64 CPUs with AVX-512F.
    Avx512,
    /// The AVX2/FMA microkernel: x86-64 CPUs with AVX2 and FMA.
    Avx2,
    /// The portable microkernel over `wide`'s vectors, with the instructions the crate was
    /// built for (SSE2 in a default x86-64 build, NEON on aarch64); on M-profile Arm and
    /// RISC-V, the register-tiled scalar loops. Available everywhere.
    Portable,
}

impl Kernel {
    /// Every kernel, fastest first; [`Kernel::available`] says which this CPU runs.
    pub const ALL: [Kernel; 3] = [Kernel::Avx512, Kernel::Avx2, Kernel::Portable];

    /// Every kernel this CPU (and build) runs, fastest first: [`Kernel::ALL`] filtered by
    /// [`Kernel::available`]. Never empty: [`Kernel::Portable`] runs everywhere.
    pub fn runnable() -> impl Iterator<Item = Kernel> {
        Kernel::ALL.into_iter().filter(|k| k.available())
    }

    /// Whether this CPU (and build) can run the kernel.
    pub fn available(self) -> bool {
        match self {
            #[cfg(all(target_arch = "x86_64", not(miri)))]
            Kernel::Avx512 => crate::kernel::avx512::available(),
            #[cfg(all(target_arch = "x86_64", not(miri)))]
            Kernel::Avx2 => crate::kernel::avx2::available(),
            #[cfg(not(all(target_arch = "x86_64", not(miri))))]
            Kernel::Avx512 | Kernel::Avx2 => false,
            Kernel::Portable => true,
        }
    }

    /// The kernel's name, as [`crate::kernel()`] gives it when the CPU picks this kernel:
    /// `"avx512"`, `"avx2"`, or the portable kernel's (`"portable-sse2"`,
    /// `"portable-avx2"`, `"portable-neon"`, `"scalar"`, …).
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Avx512 => "avx512",
            Kernel::Avx2 => "avx2",
            #[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
            Kernel::Portable => {
                <<f32 as crate::element::sealed::Gemm>::Portable as crate::kernel::Microkernel<
                    f32,
                >>::NAME
            }
            #[cfg(any(target_arch = "arm", target_arch = "riscv32"))]
            Kernel::Portable => crate::kernel(),
        }
    }

    /// `Ok` if this CPU runs the kernel.
    fn check(self) -> Result<(), Error> {
        if self.available() {
            Ok(())
        } else {
            Err(Error::KernelUnavailable {
                kernel: self.name(),
            })
        }
    }

    /// [`crate::matmul_nt`] on this kernel: `C (m x n) ← α · A (m x k) · B (n x k)ᵀ + β · C`.
    ///
    /// # Errors
    /// As [`crate::matmul_nt`], and [`Error::KernelUnavailable`] where this CPU cannot run
    /// the kernel; `C` is then left as it was.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul_nt<T: Element>(
        self,
        m: usize,
        n: usize,
        k: usize,
        alpha: T,
        a: &[T],
        b: &[T],
        beta: T,
        c: &mut [T],
    ) -> Result<(), Error> {
        self.check()?;
        nt(self, m, n, k, alpha, a, b, beta, c)
    }

    /// [`crate::matmul_nn`] on this kernel: `C (m x n) ← α · A (m x k) · B (k x n) + β · C`.
    ///
    /// # Errors
    /// As [`Kernel::matmul_nt`].
    #[allow(clippy::too_many_arguments)]
    pub fn matmul_nn<T: Element>(
        self,
        m: usize,
        n: usize,
        k: usize,
        alpha: T,
        a: &[T],
        b: &[T],
        beta: T,
        c: &mut [T],
    ) -> Result<(), Error> {
        self.check()?;
        nn(self, m, n, k, alpha, a, b, beta, c)
    }

    /// [`crate::matmul_tn`] on this kernel: `C (m x n) ← α · A (k x m)ᵀ · B (k x n) + β · C`.
    ///
    /// # Errors
    /// As [`Kernel::matmul_nt`].
    #[allow(clippy::too_many_arguments)]
    pub fn matmul_tn<T: Element>(
        self,
        m: usize,
        n: usize,
        k: usize,
        alpha: T,
        a: &[T],
        b: &[T],
        beta: T,
        c: &mut [T],
    ) -> Result<(), Error> {
        self.check()?;
        tn(self, m, n, k, alpha, a, b, beta, c, None)
    }
}

impl Dispatch for Kernel {
    #[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
    #[inline(always)]
    unsafe fn dispatch<T: Element, J: crate::kernel::Job<T>>(self, job: J) -> J::Out {
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        use crate::kernel::Microkernel;
        match self {
            // SAFETY: the caller checked that the CPU has AVX-512F; the job's contract is
            // the caller's.
            #[cfg(all(target_arch = "x86_64", not(miri)))]
            Kernel::Avx512 => unsafe { <T::Avx512 as Microkernel<T>>::enter(job) },
            // SAFETY: the caller checked that the CPU has AVX2 and FMA; the job's contract
            // is the caller's.
            #[cfg(all(target_arch = "x86_64", not(miri)))]
            Kernel::Avx2 => unsafe { <T::Avx2 as Microkernel<T>>::enter(job) },
            // SAFETY: the portable kernel uses only what the build enables (an x86 kernel
            // off x86-64 is never available, so never gets here); the job's contract is the
            // caller's.
            _ => unsafe { job.run::<T::Portable>() },
        }
    }
}
