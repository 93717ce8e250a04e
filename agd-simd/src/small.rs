//! Unpacked kernels: the matrix-vector products (one row or one column of `C`) and batches
//! of one or two samples. No buffers, no packing: a loop over the operands in place. (On
//! M-profile Arm and RISC-V the products go to `gemm_scalar` instead.)

use crate::blas1::axpy;
use crate::element::{Element, Vector};

/// `c[j] ← α · x·b_j + β · c[j]` for the `n` rows `b_j` of `b` (stride `ldb`): a row vector
/// times a transposed matrix, four rows of `b` per pass over `x`.
#[cfg(any(target_arch = "arm", target_arch = "riscv32"))]
pub(crate) fn dot_rows<T: Element>(
    alpha: T,
    x: &[T],
    b: &[T],
    ldb: usize,
    n: usize,
    beta: T,
    c: &mut [T],
) {
    let k = x.len();
    let mut j = 0;
    while j + 4 <= n {
        let rows = [
            &b[j * ldb..j * ldb + k],
            &b[(j + 1) * ldb..(j + 1) * ldb + k],
            &b[(j + 2) * ldb..(j + 2) * ldb + k],
            &b[(j + 3) * ldb..(j + 3) * ldb + k],
        ];
        let d = dot4(rows, x, 0);
        for (q, dv) in d.into_iter().enumerate() {
            store(alpha, dv, beta, &mut c[j + q]);
        }
        j += 4;
    }
    while j < n {
        let dv = crate::blas1::dot(x, &b[j * ldb..j * ldb + k]);
        store(alpha, dv, beta, &mut c[j]);
        j += 1;
    }
}

/// `c[j] ← α · x·b_j + β · c[j]` for the `n` rows `b_j` of `b` (stride `ldb`): eight rows of
/// `b` per pass over `x`, in the microkernel's widest vectors (with masked tails where it
/// has them). Memory-bound: one load of `b` per multiply-add lane, `x` shared by 8 rows.
#[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
pub(crate) fn dot_rows<T: Element>(
    alpha: T,
    x: &[T],
    b: &[T],
    ldb: usize,
    n: usize,
    beta: T,
    c: &mut [T],
) {
    let job = host::DotRows {
        alpha,
        x,
        b,
        ldb,
        n,
        beta,
        c,
    };
    // SAFETY: the job checks its own bounds.
    unsafe { crate::kernel::dispatch(job) }
}

/// [`dot_rows`] as a job, so it runs with the dispatched kernel's instructions.
#[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
mod host {
    use super::store;
    use crate::element::Element;
    use crate::kernel::{Lanes, Microkernel, job};

    job! {
        /// The arguments of [`super::dot_rows`].
        pub(super) struct DotRows['a, 'c, T]['_, '_, T] {
            pub(super) alpha: T,
            pub(super) x: &'a [T],
            pub(super) b: &'a [T],
            pub(super) ldb: usize,
            pub(super) n: usize,
            pub(super) beta: T,
            pub(super) c: &'c mut [T],
        } => dot_rows::<T, K>
    }

    /// [`super::dot_rows`] with kernel `K`'s vectors (bounds asserted here).
    #[inline(always)]
    fn dot_rows<T: Element, K: Microkernel<T>>(
        alpha: T,
        x: &[T],
        b: &[T],
        ldb: usize,
        n: usize,
        beta: T,
        c: &mut [T],
    ) {
        type V<T, K> = <K as Microkernel<T>>::V;
        let k = x.len();
        let w = <V<T, K> as Lanes<T>>::N;
        let kv = k - k % w;
        // Every row this function reads is `b[j·ldb .. j·ldb + k]`, j < n.
        assert!(
            n == 0 || b.len() >= (n - 1) * ldb + k,
            "rows of b inside the slice"
        );
        let (xp, bp) = (x.as_ptr(), b.as_ptr());
        let mut j = 0;
        // Only a `b` too big for L1 is worth the prefetch instructions.
        let stream = n * ldb * core::mem::size_of::<T>() > 32 * 1024;
        macro_rules! rows {
            ($r:literal) => {{
                if stream {
                    rows!($r, true)
                } else {
                    rows!($r, false)
                }
            }};
            ($r:literal, $pf:literal) => {{
                let mut acc = [V::<T, K>::zero(); $r];
                let mut p = 0;
                // SAFETY: rows j..j+$r < n and offsets p < k lie inside `b` (asserted above),
                // and p + w <= kv <= k inside `x`; the tail reads only k - p values.
                unsafe {
                    while p < kv {
                        let xv = V::<T, K>::load(xp.add(p));
                        for (r, s) in acc.iter_mut().enumerate() {
                            let row = bp.add((j + r) * ldb + p);
                            // The rows stream from L2: ask for each one's line 512 bytes ahead
                            // (a hint; it never faults, even past the end). Not under Miri, which
                            // would see an address past the end of `b`.
                            #[cfg(all(target_arch = "x86_64", not(miri)))]
                            if $pf {
                                core::arch::x86_64::_mm_prefetch::<
                                    { core::arch::x86_64::_MM_HINT_T0 },
                                >(
                                    row.cast::<i8>().wrapping_add(PREFETCH_BYTES)
                                );
                            }
                            *s = V::<T, K>::load(row).fmadd(xv, *s);
                        }
                        p += w;
                    }
                    if p < k {
                        let xv = V::<T, K>::load_partial(xp.add(p), k - p);
                        for (r, s) in acc.iter_mut().enumerate() {
                            *s = V::<T, K>::load_partial(bp.add((j + r) * ldb + p), k - p)
                                .fmadd(xv, *s);
                        }
                    }
                }
                for (r, s) in acc.iter().enumerate() {
                    store(alpha, s.reduce_add(), beta, &mut c[j + r]);
                }
                j += $r;
            }};
        }
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        const PREFETCH_BYTES: usize = 512;
        while j + 8 <= n {
            rows!(8);
        }
        if j + 4 <= n {
            rows!(4);
        }
        while j < n {
            rows!(1);
        }
    }
}

/// `c ← α·s + β·c`, not reading `c` when `β = 0`.
#[inline(always)]
fn store<T: Element>(alpha: T, s: T, beta: T, c: &mut T) {
    *c = if beta == T::ZERO {
        alpha * s
    } else {
        alpha * s + beta * *c
    };
}

/// Four dot products of four rows against one shared vector, two accumulators per row so
/// the FMAs of a row do not wait on each other. On x86-64 each pass also asks for each row's
/// line `ahead` values on (for rows that stream from L3 or memory in order: the hardware
/// prefetchers stop at every 4 KiB page); elsewhere `ahead` is ignored.
#[inline]
pub(crate) fn dot4<T: Element>(rows: [&[T]; 4], x: &[T], ahead: usize) -> [T; 4] {
    let k = x.len();
    let l = T::LANES;
    let zero = T::V::splat(T::ZERO);
    let mut acc = [[zero; 2]; 4];
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    let _ = ahead;
    let mut p = 0;
    while p + 2 * l <= k {
        // A hint: it never faults, even past the end of a row. Not under Miri, which would
        // see the address out of bounds.
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        for row in rows {
            // SAFETY: only an address is formed (`wrapping_add`), never dereferenced.
            unsafe {
                core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                    row.as_ptr().wrapping_add(p + ahead).cast::<i8>(),
                );
            }
        }
        let x0 = T::V::load(&x[p..p + l]);
        let x1 = T::V::load(&x[p + l..p + 2 * l]);
        for (s, row) in acc.iter_mut().zip(rows) {
            s[0] = T::V::load(&row[p..p + l]).mul_add(x0, s[0]);
            s[1] = T::V::load(&row[p + l..p + 2 * l]).mul_add(x1, s[1]);
        }
        p += 2 * l;
    }
    if p + l <= k {
        let x0 = T::V::load(&x[p..p + l]);
        for (s, row) in acc.iter_mut().zip(rows) {
            s[0] = T::V::load(&row[p..p + l]).mul_add(x0, s[0]);
        }
        p += l;
    }
    let mut out = [T::ZERO; 4];
    for ((o, s), row) in out.iter_mut().zip(acc).zip(rows) {
        let mut v = (s[0] + s[1]).reduce_add();
        for q in p..k {
            v += row[q] * x[q];
        }
        *o = v;
    }
    out
}

/// `c_row ← β c_row + α Σ_p coef(p) · B[p, :]`: a row of the product as a combination of the
/// rows of `B` (`k` rows of `n`, stride `ldb`). Rows with a zero coefficient are skipped
/// (ReLU zeroes many errors).
#[inline]
#[allow(clippy::too_many_arguments)]
pub(crate) fn combine_rows<T: Element>(
    alpha: T,
    coef: impl Fn(usize) -> T,
    k: usize,
    b: &[T],
    ldb: usize,
    n: usize,
    beta: T,
    c_row: &mut [T],
) {
    let c_row = &mut c_row[..n];
    if beta == T::ZERO {
        c_row.fill(T::ZERO);
    } else if beta != T::ONE {
        crate::blas1::scale(beta, c_row);
    }
    let l = T::LANES;
    let full = n - n % l;
    let mut p = 0;
    while p + 4 <= k {
        let cs = [
            alpha * coef(p),
            alpha * coef(p + 1),
            alpha * coef(p + 2),
            alpha * coef(p + 3),
        ];
        if cs.iter().all(|&x| x == T::ZERO) {
            p += 4;
            continue;
        }
        let rows = [
            &b[p * ldb..p * ldb + n],
            &b[(p + 1) * ldb..(p + 1) * ldb + n],
            &b[(p + 2) * ldb..(p + 2) * ldb + n],
            &b[(p + 3) * ldb..(p + 3) * ldb + n],
        ];
        let vc = cs.map(T::V::splat);
        let mut q = 0;
        while q < full {
            let mut acc = T::V::load(&c_row[q..q + l]);
            for (v, row) in vc.iter().zip(rows) {
                acc = v.mul_add(T::V::load(&row[q..q + l]), acc);
            }
            acc.store(&mut c_row[q..q + l]);
            q += l;
        }
        for q in full..n {
            let mut acc = c_row[q];
            for (&cv, row) in cs.iter().zip(rows) {
                acc += cv * row[q];
            }
            c_row[q] = acc;
        }
        p += 4;
    }
    while p < k {
        let cv = alpha * coef(p);
        if cv != T::ZERO {
            axpy(cv, &b[p * ldb..p * ldb + n], c_row);
        }
        p += 1;
    }
}
