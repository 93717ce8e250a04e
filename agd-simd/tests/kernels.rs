//! Every fast kernel of agd-simd held against its naive twin in `agd_simd::naive`, for `f32`
//! and `f64`, over odd shapes (see [`common::SHAPES`]) including a batch of one (`m = 1`) and
//! an inner dimension of one (`k = 1`).
//!
//! Two kinds of check:
//! * **exact**: small-integer data, where every product and partial sum is an integer well
//!   inside the mantissa, so any summation order gives the same answer and the fast kernel
//!   must equal the naive one to the last bit. Swept over *all* 17³ shape triples; this
//!   catches any indexing or blocking mistake.
//! * **rounded**: random real data (proptest chooses shapes, α, β, magnitude, sparsity and
//!   the data seed). Both sides round differently, so each entry is compared with a bound
//!   from the standard error analysis of a dot product (Higham §3.1):
//!   `|ĉ − c| ≤ γ_{k+3} (|α| Σ_p |a_ip||b_pj| + |β||c_ij|)` for each side, so the two sides
//!   differ by at most twice that.

mod common;

use agd_simd::{Element, Error, Kernel, naive};
use common::{Rng, SHAPES, gamma};
use proptest::prelude::*;
use proptest::sample::select;

/// The three product layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// `C = α A Bᵀ + β C`, `A` is `m x k`, `B` is `n x k`.
    Nt,
    /// `C = α A B + β C`, `A` is `m x k`, `B` is `k x n`.
    Nn,
    /// `C = α Aᵀ B + β C`, `A` is `k x m`, `B` is `k x n`.
    Tn,
}

impl Op {
    const ALL: [Op; 3] = [Op::Nt, Op::Nn, Op::Tn];

    /// Elements of the stored `A` and `B`.
    fn lens(self, m: usize, n: usize, k: usize) -> (usize, usize) {
        (m * k, n * k)
    }

    /// Index into the stored `A` of `op(A)[i, p]`.
    fn a_at(self, m: usize, k: usize, i: usize, p: usize) -> usize {
        match self {
            Op::Nt | Op::Nn => i * k + p,
            Op::Tn => p * m + i,
        }
    }

    /// Index into the stored `B` of `op(B)[p, j]`.
    fn b_at(self, n: usize, k: usize, p: usize, j: usize) -> usize {
        match self {
            Op::Nt => j * k + p,
            Op::Nn | Op::Tn => p * n + j,
        }
    }

    /// The product on the kernel the CPU picks, or on `kernel` ([`Kernel`]'s methods).
    #[allow(clippy::too_many_arguments)]
    fn fast_on<T: Element>(
        self,
        kernel: Option<Kernel>,
        m: usize,
        n: usize,
        k: usize,
        alpha: T,
        a: &[T],
        b: &[T],
        beta: T,
        c: &mut [T],
    ) -> Result<(), Error> {
        match (kernel, self) {
            (None, _) => self.fast(m, n, k, alpha, a, b, beta, c),
            (Some(kn), Op::Nt) => kn.matmul_nt(m, n, k, alpha, a, b, beta, c),
            (Some(kn), Op::Nn) => kn.matmul_nn(m, n, k, alpha, a, b, beta, c),
            (Some(kn), Op::Tn) => kn.matmul_tn(m, n, k, alpha, a, b, beta, c),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn fast<T: Element>(
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
        match self {
            Op::Nt => agd_simd::matmul_nt(m, n, k, alpha, a, b, beta, c),
            Op::Nn => agd_simd::matmul_nn(m, n, k, alpha, a, b, beta, c),
            Op::Tn => agd_simd::matmul_tn(m, n, k, alpha, a, b, beta, c),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn naive<T: Element>(
        self,
        m: usize,
        n: usize,
        k: usize,
        alpha: T,
        a: &[T],
        b: &[T],
        beta: T,
        c: &mut [T],
    ) {
        match self {
            Op::Nt => naive::matmul_nt(m, n, k, alpha, a, b, beta, c),
            Op::Nn => naive::matmul_nn(m, n, k, alpha, a, b, beta, c),
            Op::Tn => naive::matmul_tn(m, n, k, alpha, a, b, beta, c),
        }
    }
}

fn is_nan<T: Element>(x: T) -> bool {
    x.to_f64().is_nan()
}

/// Garbage a `β = 0` product must never read.
fn garbage<T: Element>() -> T {
    T::from_f64(f64::NAN)
}

/// Marks the elements past `m x n` in `C`, which no kernel may touch.
fn sentinel<T: Element>() -> T {
    T::from_f64(-12345.5)
}

// ---------------------------------------------------------------------------------------
// Exact sweep over every shape triple.

/// Integers in `-4..=4`, with whole rows of zeros now and then (ReLU zeroes whole errors,
/// and `matmul_nn`/`matmul_tn` skip zero coefficients).
fn int_matrix<T: Element>(rng: &mut Rng, rows: usize, cols: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(rows * cols);
    for _ in 0..rows {
        let zero_row = rng.below(5) == 0;
        for _ in 0..cols {
            let v = if zero_row || rng.below(3) == 0 {
                0.0
            } else {
                rng.below(9) as f64 - 4.0
            };
            out.push(T::from_f64(v));
        }
    }
    out
}

/// For every `(m, n, k)` in `SHAPES³`: fast == naive exactly, `C`'s tail untouched, and with
/// `β = 0` the NaN garbage in `C` ignored. `|Σ| ≤ 130·16·3 + 3·4` stays far below 2²⁴, so both
/// sides are exact whatever their summation order and whether or not they fuse.
fn exact_sweep<T: Element>(op: Op) {
    exact_sweep_on::<T>(op, None, &SHAPES);
}

/// [`exact_sweep`] over `shapes³`, on the kernel the CPU picks or on `kernel`.
fn exact_sweep_on<T: Element>(op: Op, kernel: Option<Kernel>, shapes: &[usize]) {
    const ALPHAS: [f64; 4] = [1.0, -1.0, 3.0, 0.0];
    const BETAS: [f64; 4] = [0.0, 1.0, -2.0, 3.0];
    let mut rng = Rng::new(0xA6D0_0000 + op as u64);
    let mut case = 0usize;
    for &m in shapes {
        for &n in shapes {
            for &k in shapes {
                case += 1;
                let alpha = T::from_f64(ALPHAS[case % 4]);
                let beta_f = BETAS[(case / 4) % 4];
                let beta = T::from_f64(beta_f);
                let (la, lb) = op.lens(m, n, k);
                let a = int_matrix::<T>(&mut rng, 1, la);
                let b = int_matrix::<T>(&mut rng, 1, lb);
                let mut c0 = if beta_f == 0.0 {
                    vec![garbage::<T>(); m * n]
                } else {
                    int_matrix::<T>(&mut rng, m, n)
                };
                c0.extend([sentinel::<T>(); 3]);
                let mut fast = c0.clone();
                let mut slow = c0.clone();
                op.fast_on(kernel, m, n, k, alpha, &a, &b, beta, &mut fast)
                    .unwrap_or_else(|e| panic!("{op:?} {kernel:?} {m}x{n}x{k}: {e}"));
                op.naive(m, n, k, alpha, &a, &b, beta, &mut slow);
                for idx in 0..m * n {
                    assert!(
                        fast[idx] == slow[idx],
                        "{op:?} {kernel:?} {} {m}x{n}x{k} α={alpha:?} β={beta:?}: C[{},{}] fast {:?} naive {:?}",
                        T::NAME,
                        idx / n,
                        idx % n,
                        fast[idx],
                        slow[idx]
                    );
                }
                assert!(
                    fast[m * n..]
                        .iter()
                        .all(|x| x.to_bits_u64() == sentinel::<T>().to_bits_u64()),
                    "{op:?} {m}x{n}x{k}: wrote past m·n"
                );
            }
        }
    }
}

/// [`agd_simd::matmul_nn_ld_add`], the adjoint of reading overlapping windows: for `(m, n, k)`
/// in `SHAPES³` (every fourth triple, with every stride below), strided `A` (windows one
/// apart, rows in place, gaps) and `B` (rows in place, gaps), and rows of `C` that overlap
/// (`ldc` of 0, 1, half a row, a row less one), just meet, or leave gaps: equal to the naive
/// twin to the last bit (integer data, so every order of the additions is exact), nothing
/// past the last row touched.
fn exact_overlapping_rows<T: Element>() {
    let mut rng = Rng::new(0xA6D0_0AD0);
    let mut case = 0usize;
    for &m in &SHAPES {
        for &n in &SHAPES {
            for &k in &SHAPES {
                case += 1;
                if !case.is_multiple_of(4) {
                    continue;
                }
                let alpha = T::from_f64([1.0, -0.5, 3.0][case % 3]);
                for lda in [1, k, k + 2] {
                    for ldb in [n, n + 1] {
                        for ldc in [0, 1, n / 2, n - 1, n, n + 3] {
                            let a = int_matrix::<T>(&mut rng, 1, (m - 1) * lda + k);
                            let b = int_matrix::<T>(&mut rng, 1, (k - 1) * ldb + n);
                            let mut c0 = int_matrix::<T>(&mut rng, 1, (m - 1) * ldc + n);
                            c0.extend([sentinel::<T>(); 3]);
                            let (mut fast, mut slow) = (c0.clone(), c0.clone());
                            let ld = agd_simd::Strides { lda, ldb, ldc };
                            agd_simd::matmul_nn_ld_add(m, n, k, alpha, &a, &b, &mut fast, ld)
                                .unwrap_or_else(|e| panic!("{m}x{n}x{k} {ld:?}: {e}"));
                            naive::matmul_nn_ld_add(
                                m,
                                n,
                                k,
                                alpha,
                                (&a, lda),
                                (&b, ldb),
                                &mut slow,
                                ldc,
                            );
                            let what = format!("{} {m}x{n}x{k} {ld:?}", T::NAME);
                            for (idx, (f, s)) in fast.iter().zip(&slow).enumerate() {
                                assert!(f == s, "{what}: c[{idx}] fast {f:?} naive {s:?}");
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn exact_overlapping_rows_f32() {
    exact_overlapping_rows::<f32>();
}

#[test]
fn exact_overlapping_rows_f64() {
    exact_overlapping_rows::<f64>();
}

/// The `_warm` forms of the strided products ask for a region to be cached while they
/// compute and must change nothing else: for a convolution's shapes (windows overlapping
/// in `A`, and in `C` for the adjoint), products too small to run in tiles, and several
/// depth blocks, each with no region, one value, an unaligned run and a region far larger
/// than the product (some of it the product's own operand), their results equal the plain
/// products' to the bit, on real data where the order of the additions shows.
fn warm_forms_are_the_plain_products<T: Element>() {
    let mut rng = Rng::new(0x3A2B_11C7);
    let real = |rng: &mut Rng, len: usize| -> Vec<T> {
        int_matrix::<f64>(rng, 1, len)
            .into_iter()
            .map(|v| T::from_f64(v * 0.1 + 0.013))
            .collect()
    };
    let region = real(&mut rng, 50_000);
    let regions: [&[T]; 4] = [&[], &region[..1], &region[3..1000], &region];
    // (m, n, k, lda, ldb, ldc) as the nn / tn / nn-add products read them.
    let shapes = [
        (210, 32, 48, 32, 32, 32),
        (48, 32, 210, 32, 32, 32),
        (3, 5, 2, 2, 5, 5),
        (13, 17, 300, 300, 17, 17),
        (64, 64, 64, 64, 64, 64),
    ];
    for (m, n, k, lda, ldb, ldc) in shapes {
        let ld = agd_simd::Strides { lda, ldb, ldc };
        for (w, warm) in regions.iter().enumerate() {
            let what = format!("{} {m}x{n}x{k} {ld:?}, region {w}", T::NAME);
            let alpha = T::from_f64(0.7);
            let beta = T::from_f64(-0.3);
            // nn: A is m rows lda apart, B k rows ldb apart.
            let a = real(&mut rng, (m - 1) * lda + k);
            let b = real(&mut rng, (k - 1) * ldb + n);
            let c0 = real(&mut rng, (m - 1) * ldc + n);
            let (mut plain, mut warmed) = (c0.clone(), c0.clone());
            agd_simd::matmul_nn_ld(m, n, k, alpha, &a, &b, beta, &mut plain, ld).unwrap();
            agd_simd::matmul_nn_ld_warm(m, n, k, alpha, &a, &b, beta, &mut warmed, ld, warm)
                .unwrap();
            assert!(plain == warmed, "nn {what}");
            // tn: A is k rows lda apart of m values.
            let a = real(&mut rng, (k - 1) * lda.max(m) + m);
            let ld_t = agd_simd::Strides {
                lda: lda.max(m),
                ..ld
            };
            let (mut plain, mut warmed) = (c0.clone(), c0.clone());
            agd_simd::matmul_tn_ld(m, n, k, alpha, &a, &b, beta, &mut plain, ld_t).unwrap();
            agd_simd::matmul_tn_ld_warm(m, n, k, alpha, &a, &b, beta, &mut warmed, ld_t, warm)
                .unwrap();
            assert!(plain == warmed, "tn {what}");
            // nn-add, rows of C overlapping (ldc shorter than a row where it can be).
            let a = real(&mut rng, (m - 1) * lda + k);
            let ld_add = agd_simd::Strides {
                ldc: (n / 2).max(1),
                ..ld
            };
            let c0 = real(&mut rng, (m - 1) * ld_add.ldc + n);
            let (mut plain, mut warmed) = (c0.clone(), c0.clone());
            agd_simd::matmul_nn_ld_add(m, n, k, alpha, &a, &b, &mut plain, ld_add).unwrap();
            agd_simd::matmul_nn_ld_add_warm(m, n, k, alpha, &a, &b, &mut warmed, ld_add, &a)
                .unwrap();
            assert!(plain == warmed, "nn-add {what}");
            agd_simd::matmul_nn_ld_add_warm(m, n, k, alpha, &a, &b, &mut warmed, ld_add, warm)
                .unwrap();
            agd_simd::matmul_nn_ld_add(m, n, k, alpha, &a, &b, &mut plain, ld_add).unwrap();
            assert!(plain == warmed, "nn-add twice {what}");
        }
    }
    // The region does not excuse a short operand.
    let ld = agd_simd::Strides {
        lda: 2,
        ldb: 2,
        ldc: 2,
    };
    let mut c = [T::ZERO; 4];
    assert!(matches!(
        agd_simd::matmul_nn_ld_warm(
            2,
            2,
            2,
            T::ONE,
            &region[..3],
            &region,
            T::ZERO,
            &mut c,
            ld,
            &region
        ),
        Err(Error::ShortSlice { operand: "a", .. })
    ));
}

#[test]
fn warm_forms_are_the_plain_products_f32() {
    warm_forms_are_the_plain_products::<f32>();
}

#[test]
fn warm_forms_are_the_plain_products_f64() {
    warm_forms_are_the_plain_products::<f64>();
}

/// The grouped products ([`agd_simd::matmul_nn_grouped`], [`agd_simd::matmul_nn_grouped_add`])
/// give each group what the plain strided product of its rows gives: to the bit on real data
/// when every group has at least 3 rows (the same tiles), exactly on small integers (any order
/// of the additions) when the last group is shorter. Shapes: the MNIST CNN's conv rows
/// (14 groups of 14 windows, 7 of 7), a short last group, one group, several column panels
/// and depth blocks, groups overlapping in `A`, and (for the add) rows of `C` overlapping
/// within and across groups.
fn grouped_products_are_their_groups_products<T: Element>() {
    let mut rng = Rng::new(0x6D1F_0A95);
    let real = |rng: &mut Rng, len: usize| -> Vec<T> {
        int_matrix::<f64>(rng, 1, len)
            .into_iter()
            .map(|v| T::from_f64(v * 0.1 + 0.013))
            .collect()
    };
    // (m, rows per group, n, k, lda, ldb, ldc, group stride in A, in C)
    let shapes = [
        (196, 14, 32, 48, 32, 32, 32, 480, 14 * 32),
        (49, 7, 32, 96, 64, 32, 32, 512, 7 * 32),
        (40, 14, 20, 9, 3, 20, 24, 50, 14 * 24 + 5),
        (30, 30, 17, 300, 300, 17, 17, 0, 0),
        (21, 5, 130, 33, 40, 130, 130, 150, 5 * 130),
        (24, 6, 9, 8, 2, 9, 9, 7, 6 * 9),
        (3, 1, 16, 16, 16, 16, 16, 16, 16),
        (10, 3, 1, 5, 5, 1, 1, 20, 4),
    ];
    for (m, rows, n, k, lda, ldb, ldc, ga, gc) in shapes {
        let groups = agd_simd::Groups { rows, a: ga, c: gc };
        let ld = agd_simd::Strides { lda, ldb, ldc };
        let starts = |stride: usize, ld: usize, len: usize| -> (Vec<(usize, usize)>, usize) {
            let mut out = Vec::new();
            let (mut g0, mut end) = (0, 0);
            while g0 < m {
                let r = rows.min(m - g0);
                let at = out.len() * stride;
                end = end.max(at + (r - 1) * ld + len);
                out.push((at, r));
                g0 += r;
            }
            (out, end)
        };
        let (ga_starts, a_len) = starts(ga, lda, k);
        let (gc_starts, c_len) = starts(gc, ldc, n);
        let exact = m % rows == 0 || m % rows >= 3;
        for ints in [true, false] {
            if !ints && !exact {
                continue;
            }
            let what = format!(
                "{} m {m} {groups:?} n {n} k {k} {ld:?} ints {ints}",
                T::NAME
            );
            let draw = |rng: &mut Rng, len: usize| -> Vec<T> {
                if ints {
                    int_matrix::<T>(rng, 1, len)
                } else {
                    real(rng, len)
                }
            };
            let (alpha, beta) = if ints {
                (T::ONE, T::from_f64(2.0))
            } else {
                (T::from_f64(0.7), T::from_f64(-0.3))
            };
            let a = draw(&mut rng, a_len);
            let b = draw(&mut rng, (k - 1) * ldb + n);
            let c0 = draw(&mut rng, c_len);
            let region = draw(&mut rng, 3000);
            let (mut want, mut got) = (c0.clone(), c0.clone());
            for (&(at, r), &(ct, _)) in ga_starts.iter().zip(&gc_starts) {
                agd_simd::matmul_nn_ld(r, n, k, alpha, &a[at..], &b, beta, &mut want[ct..], ld)
                    .unwrap();
            }
            agd_simd::matmul_nn_grouped(
                m, n, k, alpha, &a, &b, beta, &mut got, ld, groups, &region,
            )
            .unwrap();
            assert!(want == got, "grouped {what}");
            // The add, `C`'s rows overlapping within a group (`ldc` half a row), groups just
            // apart, then (integers only: the additions onto a value from several groups come
            // in another order when the product has several column panels or depth blocks)
            // overlapping too, a row and a bit apart.
            let ld_add = agd_simd::Strides {
                ldc: (n / 2).max(1),
                ..ld
            };
            let span = (rows.min(m) - 1) * ld_add.ldc + n;
            for (stride, exact) in [(span, true), (n + 1, ints)] {
                if !exact {
                    continue;
                }
                let add_groups = agd_simd::Groups {
                    c: stride,
                    ..groups
                };
                let (gc_starts, c_len) = starts(add_groups.c, ld_add.ldc, n);
                let c0 = draw(&mut rng, c_len);
                let (mut want, mut got) = (c0.clone(), c0.clone());
                for (&(at, r), &(ct, _)) in ga_starts.iter().zip(&gc_starts) {
                    let c = &mut want[ct..];
                    agd_simd::matmul_nn_ld_add(r, n, k, alpha, &a[at..], &b, c, ld_add).unwrap();
                }
                agd_simd::matmul_nn_grouped_add(
                    m, n, k, alpha, &a, &b, &mut got, ld_add, add_groups, &region,
                )
                .unwrap();
                assert!(
                    want == got,
                    "grouped add {what}, groups {stride} apart in C"
                );
            }
        }
        // Short operands, by one value, are refused and leave `C` as it was.
        let (a, b) = (vec![T::ONE; a_len], vec![T::ONE; (k - 1) * ldb + n]);
        let mut c = vec![T::ZERO; c_len];
        let short = |e: Result<(), Error>, operand: &str| {
            assert!(
                matches!(e, Err(Error::ShortSlice { operand: o, .. }) if o == operand),
                "{operand}: {e:?}"
            );
        };
        let g = groups;
        let one = T::ONE;
        short(
            agd_simd::matmul_nn_grouped(m, n, k, one, &a[1..], &b, one, &mut c, ld, g, &[]),
            "a",
        );
        short(
            agd_simd::matmul_nn_grouped(m, n, k, one, &a, &b[1..], one, &mut c, ld, g, &[]),
            "b",
        );
        short(
            agd_simd::matmul_nn_grouped(m, n, k, one, &a, &b, one, &mut c[1..], ld, g, &[]),
            "c",
        );
        short(
            agd_simd::matmul_nn_grouped_add(m, n, k, one, &a, &b, &mut c[1..], ld, g, &[]),
            "c",
        );
        assert!(c.iter().all(|&v| v == T::ZERO));
    }
    // No rows per group; groups of `C` overlapping, or rows within one, without the add.
    let (a, b) = (vec![T::ONE; 64], vec![T::ONE; 64]);
    let mut c = vec![T::ZERO; 64];
    let ld = agd_simd::Strides {
        lda: 2,
        ldb: 2,
        ldc: 2,
    };
    let g = |rows, c| agd_simd::Groups { rows, a: 4, c };
    let refused = |e: Result<(), Error>, operand: &str| {
        assert!(
            matches!(e, Err(Error::ShortSlice { operand: o, .. }) if o == operand),
            "{operand}: {e:?}"
        );
    };
    let one = T::ONE;
    refused(
        agd_simd::matmul_nn_grouped(4, 2, 2, one, &a, &b, one, &mut c, ld, g(0, 4), &[]),
        "groups.rows",
    );
    refused(
        agd_simd::matmul_nn_grouped_add(4, 2, 2, one, &a, &b, &mut c, ld, g(0, 4), &[]),
        "groups.rows",
    );
    refused(
        agd_simd::matmul_nn_grouped(4, 2, 2, one, &a, &b, one, &mut c, ld, g(2, 3), &[]),
        "groups.c",
    );
    let narrow = agd_simd::Strides { ldc: 1, ..ld };
    refused(
        agd_simd::matmul_nn_grouped(4, 2, 2, one, &a, &b, one, &mut c, narrow, g(2, 4), &[]),
        "ldc",
    );
    assert!(c.iter().all(|&v| v == T::ZERO));
    agd_simd::matmul_nn_grouped(4, 2, 2, one, &a, &b, one, &mut c, ld, g(2, 4), &[]).unwrap();
    assert_eq!(c[..8].iter().filter(|&&v| v == T::from_f64(2.0)).count(), 8);
}

#[test]
fn grouped_products_are_their_groups_products_f32() {
    grouped_products_are_their_groups_products::<f32>();
}

#[test]
fn grouped_products_are_their_groups_products_f64() {
    grouped_products_are_their_groups_products::<f64>();
}

/// [`agd_simd::matmul_nn_ld_add`] refuses operands shorter than its shape and strides.
#[test]
fn overlapping_rows_short_slices_are_refused() {
    let ld = agd_simd::Strides {
        lda: 2,
        ldb: 3,
        ldc: 1,
    };
    let (a, b) = (vec![1.0f32; 2 * 2 + 2], vec![1.0f32; 3 + 3]);
    let mut c = vec![0.0f32; 2 + 3];
    agd_simd::matmul_nn_ld_add(3, 3, 2, 1.0, &a, &b, &mut c, ld).unwrap();
    assert_eq!(c, [2.0, 4.0, 6.0, 4.0, 2.0]);
    let short = |e: Result<(), Error>, operand: &str| {
        assert!(matches!(e, Err(Error::ShortSlice { operand: o, .. }) if o == operand));
    };
    short(
        agd_simd::matmul_nn_ld_add(3, 3, 2, 1.0, &a[1..], &b, &mut c, ld),
        "a",
    );
    short(
        agd_simd::matmul_nn_ld_add(3, 3, 2, 1.0, &a, &b[1..], &mut c, ld),
        "b",
    );
    short(
        agd_simd::matmul_nn_ld_add(3, 3, 2, 1.0, &a, &b, &mut c[1..], ld),
        "c",
    );
}

#[test]
fn exact_all_shapes_nt_f32() {
    exact_sweep::<f32>(Op::Nt);
}
#[test]
fn exact_all_shapes_nn_f32() {
    exact_sweep::<f32>(Op::Nn);
}
#[test]
fn exact_all_shapes_tn_f32() {
    exact_sweep::<f32>(Op::Tn);
}
#[test]
fn exact_all_shapes_nt_f64() {
    exact_sweep::<f64>(Op::Nt);
}
#[test]
fn exact_all_shapes_nn_f64() {
    exact_sweep::<f64>(Op::Nn);
}
#[test]
fn exact_all_shapes_tn_f64() {
    exact_sweep::<f64>(Op::Tn);
}

/// Every kernel this CPU runs, named through [`Kernel`]'s methods, in every layout: exact
/// against the naive twins over every other shape of [`SHAPES`] (1 to 130: the unpacked
/// shapes, partial tiles and panels, two depth blocks).
#[test]
fn exact_every_named_kernel() {
    let shapes: Vec<usize> = SHAPES.iter().copied().step_by(2).collect();
    let kernels: Vec<Kernel> = Kernel::runnable().collect();
    assert!(kernels.contains(&Kernel::Portable), "{kernels:?}");
    for kernel in kernels {
        for op in Op::ALL {
            exact_sweep_on::<f32>(op, Some(kernel), &shapes);
            exact_sweep_on::<f64>(op, Some(kernel), &shapes);
        }
    }
}

/// A kernel this CPU cannot run is refused by name, before anything is read or written; the
/// kernel the CPU picks itself is one it runs.
#[test]
fn kernels_are_named_and_refused_where_absent() {
    let names: Vec<&str> = Kernel::ALL.iter().map(|k| k.name()).collect();
    assert_eq!(&names[..2], ["avx512", "avx2"]);
    let picked = agd_simd::kernel();
    let runs = |k: &Kernel| k.available() && k.name() == picked;
    assert!(Kernel::ALL.iter().any(runs), "{picked} among {names:?}");
    let (m, n, k) = (4, 5, 6);
    for kernel in Kernel::ALL.into_iter().filter(|k| !k.available()) {
        for op in Op::ALL {
            let (la, lb) = op.lens(m, n, k);
            let mut c = vec![sentinel::<f32>(); m * n];
            let got = op.fast_on(
                Some(kernel),
                m,
                n,
                k,
                1.0,
                &vec![1.0; la],
                &vec![1.0; lb],
                0.0,
                &mut c,
            );
            assert_eq!(
                got,
                Err(Error::KernelUnavailable {
                    kernel: kernel.name()
                })
            );
            assert!(
                c.iter().all(|&x| x == sentinel::<f32>()),
                "{op:?}: C changed"
            );
        }
    }
}

/// A named kernel checks its operands as the plain products do.
#[test]
fn named_kernels_refuse_short_slices() {
    for kernel in Kernel::runnable() {
        for op in Op::ALL {
            let mut c = vec![sentinel::<f64>(); 3 * 5];
            let got = op.fast_on(
                Some(kernel),
                3,
                5,
                7,
                1.0,
                &[1.0; 20],
                &[1.0; 35],
                0.0,
                &mut c,
            );
            let want = Err(Error::ShortSlice {
                operand: "a",
                needed: 21,
                got: 20,
            });
            assert_eq!(got, want, "{op:?} {kernel:?}");
            assert!(
                c.iter().all(|&x| x == sentinel::<f64>()),
                "{op:?}: C changed"
            );
        }
    }
}

/// The naive references themselves, against the definition through an explicit transpose:
/// `A Bᵀ` (nt) = `A (Bᵀ)` (nn) = `(Aᵀ)ᵀ (Bᵀ)` (tn). Guards against a shared mistake in
/// `naive` that the fast kernels would then copy unnoticed.
#[test]
fn naive_layouts_agree_through_transposes() {
    let mut rng = Rng::new(7);
    for (m, n, k) in [(1, 1, 1), (3, 5, 2), (7, 1, 9), (1, 17, 4), (5, 3, 1)] {
        let a = int_matrix::<f64>(&mut rng, m, k); // m x k
        let b = int_matrix::<f64>(&mut rng, n, k); // n x k
        let bt: Vec<f64> = (0..k * n).map(|x| b[(x % n) * k + x / n]).collect(); // k x n
        let at: Vec<f64> = (0..k * m).map(|x| a[(x % m) * k + x / m]).collect(); // k x m
        let mut by_def = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                by_def[i * n + j] = (0..k).map(|p| a[i * k + p] * b[j * k + p]).sum();
            }
        }
        let mut nt = vec![0.0; m * n];
        let mut nn = vec![0.0; m * n];
        let mut tn = vec![0.0; m * n];
        naive::matmul_nt(m, n, k, 1.0, &a, &b, 0.0, &mut nt);
        naive::matmul_nn(m, n, k, 1.0, &a, &bt, 0.0, &mut nn);
        naive::matmul_tn(m, n, k, 1.0, &at, &bt, 0.0, &mut tn);
        assert_eq!(nt, by_def);
        assert_eq!(nn, by_def);
        assert_eq!(tn, by_def);
    }
}

// ---------------------------------------------------------------------------------------
// Rounded data, proptest.

/// One randomly drawn product.
#[derive(Debug, Clone)]
struct MatCase {
    m: usize,
    n: usize,
    k: usize,
    alpha: f64,
    beta: f64,
    /// Entries are uniform in `±10^magnitude`.
    magnitude: i32,
    /// Probability that an entry of `A` is exactly zero.
    zeros: f64,
    /// Extra elements past what the dimensions need, in each of `A`, `B`, `C`.
    slack: usize,
    seed: u64,
}

fn mat_case() -> impl Strategy<Value = MatCase> {
    (
        (
            select(SHAPES.to_vec()),
            select(SHAPES.to_vec()),
            select(SHAPES.to_vec()),
        ),
        prop_oneof![Just(1.0), Just(-1.0), Just(0.0), -3.0..3.0f64],
        prop_oneof![Just(0.0), Just(1.0), -2.0..2.0f64],
        -3..=3i32,
        prop_oneof![Just(0.0), Just(0.5), Just(0.9)],
        0..3usize,
        any::<u64>(),
    )
        .prop_map(
            |((m, n, k), alpha, beta, magnitude, zeros, slack, seed)| MatCase {
                m,
                n,
                k,
                alpha,
                beta,
                magnitude,
                zeros,
                slack,
                seed,
            },
        )
}

fn random_vec<T: Element>(rng: &mut Rng, len: usize, bound: f64, zeros: f64) -> Vec<T> {
    (0..len)
        .map(|_| {
            if rng.unit() < zeros {
                T::ZERO
            } else {
                T::from_f64(rng.uniform(-bound, bound))
            }
        })
        .collect()
}

fn check_matmul<T: Element>(op: Op, cs: &MatCase) -> Result<(), TestCaseError> {
    let MatCase { m, n, k, .. } = *cs;
    let mut rng = Rng::new(cs.seed);
    let bound = 10f64.powi(cs.magnitude);
    let (la, lb) = op.lens(m, n, k);
    let a = random_vec::<T>(&mut rng, la + cs.slack, bound, cs.zeros);
    let b = random_vec::<T>(&mut rng, lb + cs.slack, bound, 0.0);
    let (alpha, beta) = (T::from_f64(cs.alpha), T::from_f64(cs.beta));
    let mut c0 = if beta == T::ZERO {
        vec![garbage::<T>(); m * n]
    } else {
        random_vec::<T>(&mut rng, m * n, bound, 0.0)
    };
    c0.extend(core::iter::repeat_n(sentinel::<T>(), cs.slack));
    let mut fast = c0.clone();
    let mut slow = c0.clone();
    prop_assert_eq!(op.fast(m, n, k, alpha, &a, &b, beta, &mut fast), Ok(()));
    op.naive(m, n, k, alpha, &a, &b, beta, &mut slow);

    // Each side is within γ_{k+3}·M of the exact value: k products summed, then α·s, β·c and
    // their sum (nn/tn round α·a_ip first and start the sum from β·c; the count is the same).
    // An underflowing product may add up to the smallest normal number times u per term.
    let tol = 2.0 * gamma::<T>(k + 3);
    let floor = (k + 3) as f64 * T::MIN_POSITIVE.to_f64();
    let (abs_alpha, abs_beta) = (cs.alpha.abs(), T::from_f64(cs.beta).to_f64().abs());
    for i in 0..m {
        for j in 0..n {
            let idx = i * n + j;
            let (f, s) = (fast[idx].to_f64(), slow[idx].to_f64());
            prop_assert!(f.is_finite(), "C[{i},{j}] = {f} not finite");
            let sum_abs: f64 = (0..k)
                .map(|p| (a[op.a_at(m, k, i, p)].to_f64() * b[op.b_at(n, k, p, j)].to_f64()).abs())
                .sum();
            let c_term = if beta == T::ZERO {
                0.0
            } else {
                abs_beta * c0[idx].to_f64().abs()
            };
            let allowed = tol * (T::from_f64(cs.alpha).to_f64().abs() * sum_abs + c_term) + floor;
            prop_assert!(
                (f - s).abs() <= allowed,
                "{:?} {} C[{},{}]: fast {} naive {} differ by {:e} > {:e} (α={}, β={})",
                op,
                T::NAME,
                i,
                j,
                f,
                s,
                (f - s).abs(),
                allowed,
                abs_alpha,
                abs_beta
            );
        }
    }
    for (x, y) in fast[m * n..].iter().zip(&c0[m * n..]) {
        prop_assert_eq!(x.to_bits_u64(), y.to_bits_u64(), "wrote past m·n");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn matmul_nt_f32_matches_naive(cs in mat_case()) { check_matmul::<f32>(Op::Nt, &cs)?; }
    #[test]
    fn matmul_nn_f32_matches_naive(cs in mat_case()) { check_matmul::<f32>(Op::Nn, &cs)?; }
    #[test]
    fn matmul_tn_f32_matches_naive(cs in mat_case()) { check_matmul::<f32>(Op::Tn, &cs)?; }
    #[test]
    fn matmul_nt_f64_matches_naive(cs in mat_case()) { check_matmul::<f64>(Op::Nt, &cs)?; }
    #[test]
    fn matmul_nn_f64_matches_naive(cs in mat_case()) { check_matmul::<f64>(Op::Nn, &cs)?; }
    #[test]
    fn matmul_tn_f64_matches_naive(cs in mat_case()) { check_matmul::<f64>(Op::Tn, &cs)?; }
}

// ---------------------------------------------------------------------------------------
// Degenerate dimensions and refused input.

/// `k = 0`: the product is empty, so `C = β C` (zeros for `β = 0`, garbage ignored);
/// `m = 0` or `n = 0`: nothing is written.
fn empty_dims<T: Element>() {
    for op in Op::ALL {
        let mut c = vec![garbage::<T>(); 6];
        op.fast(2, 3, 0, T::ONE, &[], &[], T::ZERO, &mut c).unwrap();
        assert!(c.iter().all(|&x| x == T::ZERO), "{op:?} k=0 β=0: {c:?}");
        let mut c: Vec<T> = (1..=6).map(|x| T::from_f64(x as f64)).collect();
        op.fast(2, 3, 0, T::ONE, &[], &[], T::from_f64(2.0), &mut c)
            .unwrap();
        let want: Vec<T> = (1..=6).map(|x| T::from_f64(2.0 * x as f64)).collect();
        assert_eq!(c, want, "{op:?} k=0 β=2");
        for (m, n) in [(0, 3), (2, 0), (0, 0)] {
            let mut c = vec![sentinel::<T>(); 4];
            let ab = vec![T::ONE; 6];
            op.fast(m, n, 2, T::ONE, &ab, &ab, T::ZERO, &mut c).unwrap();
            assert!(c.iter().all(|&x| x == sentinel::<T>()), "{op:?} {m}x{n}");
        }
    }
}

#[test]
fn empty_dimensions_f32() {
    empty_dims::<f32>();
}
#[test]
fn empty_dimensions_f64() {
    empty_dims::<f64>();
}

/// Each operand one element short gives `ShortSlice` naming it, and leaves `C` untouched.
fn short_slices<T: Element>() {
    let (m, n, k) = (3, 5, 7);
    for op in Op::ALL {
        let (la, lb) = op.lens(m, n, k);
        let full = |len: usize| vec![T::ONE; len];
        let cases = [
            ("a", la - 1, lb, m * n, la),
            ("b", la, lb - 1, m * n, lb),
            ("c", la, lb, m * n - 1, m * n),
        ];
        for (operand, len_a, len_b, len_c, needed) in cases {
            let (a, b) = (full(len_a), full(len_b));
            let mut c = vec![sentinel::<T>(); len_c];
            let got = op.fast(m, n, k, T::ONE, &a, &b, T::ZERO, &mut c);
            let want = Err(Error::ShortSlice {
                operand,
                needed,
                got: needed - 1,
            });
            assert_eq!(got, want, "{op:?} short {operand}");
            assert!(c.iter().all(|&x| x == sentinel::<T>()), "{op:?}: C changed");
        }
        // Empty slices for non-empty dimensions.
        let mut c = vec![];
        assert!(matches!(
            op.fast(1, 1, 1, T::ONE, &[], &[], T::ZERO, &mut c),
            Err(Error::ShortSlice { operand: "a", .. })
        ));
    }
}

#[test]
fn short_slices_are_refused_f32() {
    short_slices::<f32>();
}
#[test]
fn short_slices_are_refused_f64() {
    short_slices::<f64>();
}

#[test]
fn dimension_overflow_is_refused() {
    let half = usize::MAX / 2 + 1;
    for op in Op::ALL {
        let mut c = [0.0f32; 4];
        // A's dimensions overflow.
        assert_eq!(
            op.fast(usize::MAX, 1, 2, 1.0, &[], &[], 0.0, &mut c),
            Err(Error::DimensionOverflow),
            "{op:?} a"
        );
        // B's dimensions overflow.
        assert_eq!(
            op.fast(0, half, 2, 1.0, &[], &[], 0.0, &mut c),
            Err(Error::DimensionOverflow),
            "{op:?} b"
        );
        // Only C's: A and B are empty because k = 0.
        let mut c = [0.0f64; 4];
        assert_eq!(
            op.fast(2, half, 0, 1.0, &[], &[], 0.0, &mut c),
            Err(Error::DimensionOverflow),
            "{op:?} c"
        );
    }
    assert_eq!(
        agd_simd::power_iteration::<f32>(&[], usize::MAX, 2, &mut [], &mut [], 1),
        Err(Error::DimensionOverflow)
    );
}

// ---------------------------------------------------------------------------------------
// Level-1 kernels.

/// Lengths for level-1 kernels: the shapes, and empty.
fn len() -> impl Strategy<Value = usize> {
    prop_oneof![1 => Just(0usize), 8 => select(SHAPES.to_vec())]
}

fn check_dot<T: Element>(n: usize, extra: usize, seed: u64, mag: i32) -> Result<(), TestCaseError> {
    let mut rng = Rng::new(seed);
    let bound = 10f64.powi(mag);
    let a = random_vec::<T>(&mut rng, n, bound, 0.1);
    let b = random_vec::<T>(&mut rng, n + extra, bound, 0.0);
    let f = agd_simd::dot(&a, &b).to_f64();
    let s = naive::dot(&a, &b).to_f64();
    let sum_abs: f64 = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x.to_f64() * y.to_f64()).abs())
        .sum();
    let allowed = 2.0 * gamma::<T>(n) * sum_abs + n as f64 * T::MIN_POSITIVE.to_f64();
    prop_assert!(
        (f - s).abs() <= allowed,
        "dot n={n}: fast {f} naive {s}, allowed {allowed:e}"
    );
    // Unequal lengths use the common prefix, whichever side is longer.
    prop_assert_eq!(
        agd_simd::dot(&b, &a).to_bits_u64(),
        agd_simd::dot(&b[..n], &a).to_bits_u64()
    );
    Ok(())
}

fn check_axpy<T: Element>(
    n: usize,
    extra: usize,
    alpha: f64,
    seed: u64,
) -> Result<(), TestCaseError> {
    let mut rng = Rng::new(seed);
    let x = random_vec::<T>(&mut rng, n, 2.0, 0.1);
    let y0 = random_vec::<T>(&mut rng, n + extra, 2.0, 0.0);
    let alpha = T::from_f64(alpha);
    let (mut fast, mut slow) = (y0.clone(), y0.clone());
    agd_simd::axpy(alpha, &x, &mut fast);
    naive::axpy(alpha, &x, &mut slow);
    // One multiply and one add, fused or not, on each side.
    let tol = 2.0 * gamma::<T>(2);
    let close = |got: &[T]| -> Result<(), TestCaseError> {
        for (i, (&f, &s)) in got.iter().zip(&slow).enumerate() {
            let (f, s) = (f.to_f64(), s.to_f64());
            let allowed = tol * (alpha.to_f64() * x[i].to_f64()).abs()
                + tol * y0[i].to_f64().abs()
                + T::MIN_POSITIVE.to_f64();
            prop_assert!(
                (f - s).abs() <= allowed,
                "axpy y[{}]: fast {} naive {}",
                i,
                f,
                s
            );
        }
        Ok(())
    };
    close(&fast[..n])?;
    // y past the length of x is not touched.
    for i in n..n + extra {
        prop_assert_eq!(fast[i].to_bits_u64(), y0[i].to_bits_u64());
    }
    // And a longer x is cut to y's length.
    let mut short_y = y0[..n / 2].to_vec();
    agd_simd::axpy(alpha, &x, &mut short_y);
    close(&short_y)?;
    Ok(())
}

fn check_scale<T: Element>(n: usize, alpha: f64, seed: u64) -> Result<(), TestCaseError> {
    let mut rng = Rng::new(seed);
    let x0 = random_vec::<T>(&mut rng, n, 1e3, 0.1);
    let alpha = T::from_f64(alpha);
    let (mut fast, mut slow) = (x0.clone(), x0);
    agd_simd::scale(alpha, &mut fast);
    naive::scale(alpha, &mut slow);
    // One rounded multiply per entry on both sides: identical to the bit.
    let fb: Vec<u64> = fast.iter().map(|v| v.to_bits_u64()).collect();
    let sb: Vec<u64> = slow.iter().map(|v| v.to_bits_u64()).collect();
    prop_assert_eq!(fb, sb);
    Ok(())
}

/// `amax` equals the naive maximum exactly; a NaN anywhere (SIMD body or remainder) wins,
/// over infinities too; an infinity alone gives infinity.
fn check_amax<T: Element>(n: usize, seed: u64, special: usize) -> Result<(), TestCaseError> {
    let mut rng = Rng::new(seed);
    let mut x = random_vec::<T>(&mut rng, n, 1e3, 0.1);
    prop_assert_eq!(agd_simd::amax(&x), naive::amax(&x));
    if n == 0 {
        prop_assert_eq!(agd_simd::amax(&x), T::ZERO);
        return Ok(());
    }
    let at = special % n;
    x[at] = T::from_f64(f64::NEG_INFINITY);
    prop_assert_eq!(agd_simd::amax(&x).to_f64(), f64::INFINITY);
    x[rng.below(n)] = T::from_f64(f64::NAN);
    prop_assert!(is_nan(agd_simd::amax(&x)), "NaN at some index of {n} lost");
    prop_assert!(is_nan(naive::amax(&x)));
    Ok(())
}

/// `nrm2` and `sum_sq_scaled` against `naive::nrm2` (plain squares in f64) for ordinary
/// magnitudes. Each side is within `γ_{n+5}/2`-ish of the truth (squares and sum, then one
/// scaling and a square root; the scaled path adds a reciprocal and a multiply); we allow
/// `γ_{n+8}` for the kernel plus `γ_{n+2}` (f64) for the reference.
fn check_nrm2<T: Element>(n: usize, mag: i32, seed: u64) -> Result<(), TestCaseError> {
    let mut rng = Rng::new(seed);
    let x = random_vec::<T>(&mut rng, n, 10f64.powi(mag), 0.1);
    let f = agd_simd::nrm2(&x).to_f64();
    let s = naive::nrm2(&x);
    let allowed = (gamma::<T>(n + 8) + gamma::<f64>(n + 2)) * s;
    prop_assert!((f - s).abs() <= allowed, "nrm2 n={n}: fast {f} naive {s}");
    prop_assert_eq!(agd_simd::sum_sq_scaled(&x).norm().to_f64(), f);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn dot_matches_naive(n in len(), extra in 0..9usize, seed in any::<u64>(), mag in -3..=3i32) {
        check_dot::<f32>(n, extra, seed, mag)?;
        check_dot::<f64>(n, extra, seed, mag)?;
    }

    #[test]
    fn axpy_matches_naive(
        n in len(),
        extra in 0..9usize,
        alpha in prop_oneof![Just(0.0), Just(1.0), -3.0..3.0f64],
        seed in any::<u64>(),
    ) {
        check_axpy::<f32>(n, extra, alpha, seed)?;
        check_axpy::<f64>(n, extra, alpha, seed)?;
    }

    #[test]
    fn scale_matches_naive(
        n in len(),
        alpha in prop_oneof![Just(0.0), Just(-1.0), -3.0..3.0f64],
        seed in any::<u64>(),
    ) {
        check_scale::<f32>(n, alpha, seed)?;
        check_scale::<f64>(n, alpha, seed)?;
    }

    #[test]
    fn amax_matches_naive(n in len(), seed in any::<u64>(), special in any::<usize>()) {
        check_amax::<f32>(n, seed, special)?;
        check_amax::<f64>(n, seed, special)?;
    }

    #[test]
    fn nrm2_matches_naive(n in len(), mag in -6..=6i32, seed in any::<u64>()) {
        check_nrm2::<f32>(n, mag, seed)?;
        check_nrm2::<f64>(n, mag, seed)?;
    }
}
