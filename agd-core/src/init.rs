//! Orthogonal initialisation from a seedable RNG, with no heap.
//!
//! Each `d_out x d_in` matrix is drawn Gaussian, made semi-orthogonal (all singular values 1)
//! by Gram–Schmidt, and multiplied by `s_k = sqrt(d_out/d_in)`. Gram–Schmidt of a Gaussian
//! matrix is its QR factorisation with a positive diagonal in R — exactly "QR with the sign of
//! R's diagonal folded in" — so the result is uniformly (Haar) distributed. Orthogonalisation
//! runs in place in the weight buffer, twice per vector ("twice is enough", Giraud et al.
//! 2005), so it stays orthogonal to rounding even in `f32`.
//!
//! Its dot products sum in eight interleaved partial sums, in one fixed order on every target:
//! the host vectorises them and a device adds in the same order (no rounding depends on the
//! target).
//! A wide matrix's rows are contiguous and go one earlier row at a time (modified
//! Gram–Schmidt). A tall matrix's columns, and conv slices, are strided: they go 64 earlier
//! vectors at a time, in sweeps down the entries that read each matrix row once (classical
//! Gram–Schmidt within the block). On the host this takes `[784,1024,1024,1024,10]` from
//! 4.34 s to 0.82–0.93 s, and `[784,256,256,10]` from 71 ms to 22–24 ms. One sequential
//! sum per dot product was latency-bound, and a column walked one entry per cache line.

use agd_simd::Element;
use rand_core::Rng;

use crate::layout::Layout;
use crate::spec::{LayerSpec, SpecLayout};

/// A uniform draw in `(0, 1]` with 53 random bits.
fn uniform<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    ((rng.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Two independent standard normal draws (Box–Muller).
pub fn gaussian_pair<R: Rng + ?Sized>(rng: &mut R) -> (f64, f64) {
    let r = libm::sqrt(-2.0 * libm::log(uniform(rng)));
    let t = 2.0 * core::f64::consts::PI * uniform(rng);
    (r * libm::cos(t), r * libm::sin(t))
}

/// Fills `x` with standard normal draws.
pub fn fill_gaussian<T: Element, R: Rng + ?Sized>(x: &mut [T], rng: &mut R) {
    let mut pairs = x.chunks_exact_mut(2);
    for p in &mut pairs {
        let (a, b) = gaussian_pair(rng);
        p[0] = T::from_f64(a);
        p[1] = T::from_f64(b);
    }
    if let Some(last) = pairs.into_remainder().first_mut() {
        *last = T::from_f64(gaussian_pair(rng).0);
    }
}

/// Makes a row-major `rows x cols` matrix semi-orthogonal in place: orthonormal rows if
/// `rows <= cols` (`W Wᵀ = I`), orthonormal columns otherwise (`Wᵀ W = I`). A vector that
/// comes out (numerically) dependent on the previous ones is redrawn from `rng`.
pub fn semi_orthogonalize<T: Element, R: Rng + ?Sized>(
    w: &mut [T],
    rows: usize,
    cols: usize,
    rng: &mut R,
) {
    semi_orthogonalize_strided(w, 0, cols, 1, rows, cols, rng);
}

/// [`semi_orthogonalize`] of the `rows x cols` matrix whose entry `(r, c)` is
/// `w[first + r·row_stride + c·col_stride]`, in place: a conv weight's kernel-position slice
/// `W[:, :, i, j]` is one of these, with no copy and no heap.
// Not inlined: it runs once per layer, and inlined into a firmware's setup it grew the digits
// firmware's code by 5.9 KiB, against 2.9 KiB as a function of its own.
#[inline(never)]
pub fn semi_orthogonalize_strided<T: Element, R: Rng + ?Sized>(
    w: &mut [T],
    first: usize,
    row_stride: usize,
    col_stride: usize,
    rows: usize,
    cols: usize,
    rng: &mut R,
) {
    let by_rows = rows <= cols;
    let (count, len) = if by_rows { (rows, cols) } else { (cols, rows) };
    // Vector v starts at `first + v·vs`, its entries `es` apart.
    let (vs, es) = if by_rows {
        (row_stride, col_stride)
    } else {
        (col_stride, row_stride)
    };
    for v in 0..count {
        let at_v = first + v * vs;
        loop {
            let before = dot(w, at_v, at_v, es, len).sqrt();
            for _pass in 0..2 {
                if es == 1 {
                    // Contiguous vectors (a wide matrix's rows): modified Gram–Schmidt, one
                    // vector dot product and one vector update per earlier vector.
                    for u in 0..v {
                        let at_u = first + u * vs;
                        let d = dot(w, at_v, at_u, 1, len);
                        sub_scaled(w, at_v, at_u, len, d);
                    }
                } else {
                    // Strided vectors (a tall matrix's columns, a conv slice): walked one
                    // vector at a time, every entry would be a cache line of its own. Up to
                    // `BLOCK` earlier vectors at once instead: their dot products in one sweep
                    // down the entries, then one update (classical Gram–Schmidt within the
                    // block, modified between blocks; the second pass makes it orthogonal to
                    // rounding either way).
                    let mut u0 = 0;
                    while u0 < v {
                        let nb = BLOCK.min(v - u0);
                        let mut d = [T::ZERO; BLOCK];
                        let d = &mut d[..nb];
                        // Entry e of the block's vectors, side by side (`vs` apart).
                        let row = |e: usize| first + u0 * vs + e * es;
                        for e in 0..len {
                            let x = w[at_v + e * es];
                            if vs == 1 {
                                for (d, &y) in d.iter_mut().zip(&w[row(e)..row(e) + nb]) {
                                    *d += x * y;
                                }
                            } else {
                                for (j, d) in d.iter_mut().enumerate() {
                                    *d += x * w[row(e) + j * vs];
                                }
                            }
                        }
                        for e in 0..len {
                            let s = if vs == 1 {
                                dot_slices(d, &w[row(e)..row(e) + nb])
                            } else {
                                let mut s = T::ZERO;
                                for (j, &d) in d.iter().enumerate() {
                                    s += d * w[row(e) + j * vs];
                                }
                                s
                            };
                            w[at_v + e * es] -= s;
                        }
                        u0 += nb;
                    }
                }
            }
            let n = dot(w, at_v, at_v, es, len).sqrt();
            // A residual this small means the draw was (nearly) in the span of the others.
            if n.is_finite() && n > before * T::from_f64(1e-3) && n > T::ZERO {
                let inv = T::ONE / n;
                for e in 0..len {
                    w[at_v + e * es] *= inv;
                }
                break;
            }
            for e in 0..len {
                w[at_v + e * es] = T::from_f64(gaussian_pair(rng).0);
            }
        }
    }
}

/// Partial sums of [`dot`]: enough independent chains that the additions do not wait on
/// each other (one chain is bound by the add latency, about 4 cycles per entry).
const CHAINS: usize = 8;

/// `Σ_e w[a + e·s] · w[b + e·s]` over `len` entries, summed as [`dot_slices`] sums, whatever
/// the stride.
fn dot<T: Element>(w: &[T], a: usize, b: usize, s: usize, len: usize) -> T {
    if s == 1 {
        dot_slices(&w[a..a + len], &w[b..b + len])
    } else {
        dot_by(len, |e| w[a + e * s] * w[b + e * s])
    }
}

/// `Σ_e x[e]·y[e]`: entry `e` goes to partial sum `e mod 8`, and the partial sums are added
/// in a fixed tree at the end. The same order on every target: on the host in whole chunks
/// of eight, a loop the compiler vectorises; on a microcontroller, which has no vectors, as
/// the shorter [`dot_by`].
fn dot_slices<T: Element>(x: &[T], y: &[T]) -> T {
    #[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
    {
        let mut acc = [T::ZERO; CHAINS];
        let (xs, ys) = (x.chunks_exact(CHAINS), y.chunks_exact(CHAINS));
        let (xr, yr) = (xs.remainder(), ys.remainder());
        for (xc, yc) in xs.zip(ys) {
            for q in 0..CHAINS {
                acc[q] += xc[q] * yc[q];
            }
        }
        for (q, (&x, &y)) in xr.iter().zip(yr).enumerate() {
            acc[q] += x * y;
        }
        sum_chains(acc)
    }
    #[cfg(any(target_arch = "arm", target_arch = "riscv32"))]
    dot_by(x.len().min(y.len()), |e| x[e] * y[e])
}

/// `Σ_{e < len} term(e)` in the order of [`dot_slices`], one entry at a time.
#[inline(always)]
fn dot_by<T: Element>(len: usize, term: impl Fn(usize) -> T) -> T {
    let mut acc = [T::ZERO; CHAINS];
    for e in 0..len {
        acc[e % CHAINS] += term(e);
    }
    sum_chains(acc)
}

/// The partial sums of [`dot`] in a fixed tree.
fn sum_chains<T: Element>(acc: [T; CHAINS]) -> T {
    let [a0, a1, a2, a3, a4, a5, a6, a7] = acc;
    ((a0 + a4) + (a1 + a5)) + ((a2 + a6) + (a3 + a7))
}

/// Earlier vectors a strided vector is orthogonalised against at once (their dot products
/// are kept on the stack).
const BLOCK: usize = 64;

/// `w[a..a + len] −= d · w[b..b + len]`, two vectors that do not overlap (distinct rows of
/// one matrix): a loop the compiler vectorises.
fn sub_scaled<T: Element>(w: &mut [T], a: usize, b: usize, len: usize, d: T) {
    let (x, y) = if a < b {
        let (lo, hi) = w.split_at_mut(b);
        (&mut lo[a..a + len], &hi[..len])
    } else {
        let (lo, hi) = w.split_at_mut(a);
        (&mut hi[..len], &lo[b..b + len])
    };
    for (x, &y) in x.iter_mut().zip(y) {
        *x -= d * y;
    }
}

/// Orthogonal initialisation of every layer: Gaussian, semi-orthogonal, times
/// `s_k = sqrt(d_out/d_in)`, so every singular value of `W_k` is `s_k`.
pub fn orthogonal<T: Element, R: Rng + ?Sized>(layout: Layout<'_>, weights: &mut [T], rng: &mut R) {
    for k in 0..layout.depth() {
        let (rows, cols) = layout.shape(k);
        let w = &mut weights[layout.weight_range(k)];
        fill_gaussian(w, rng);
        semi_orthogonalize(w, rows, cols, rng);
        agd_simd::scale(layout.scale::<T>(k), w);
    }
}

/// Orthogonal initialisation of a [`crate::spec`] network. A dense layer as in
/// [`orthogonal`]; a conv weight `[c_out, c_in, kh, kw]` gets an independent semi-orthogonal
/// `c_out x c_in` slice per kernel position `[:, :, i, j]` (orthogonalised in place, strided),
/// then the whole tensor is multiplied by `s_k = sqrt(c_out/c_in)/sqrt(kh·kw)` (AGD.md,
/// "Initialisation").
pub fn orthogonal_spec<T: Element, R: Rng + ?Sized>(
    layout: SpecLayout<'_>,
    weights: &mut [T],
    rng: &mut R,
) {
    for k in 0..layout.depth() {
        let w = &mut weights[layout.weight_range(k)];
        fill_gaussian(w, rng);
        match *layout.layer(k) {
            LayerSpec::Dense { inputs, outputs } => semi_orthogonalize(w, outputs, inputs, rng),
            LayerSpec::Conv(c) => {
                let positions = c.kernel_positions();
                for p in 0..positions {
                    // Entry (o, i) of slice p sits at o·(c_in·kh·kw) + i·(kh·kw) + p.
                    semi_orthogonalize_strided(
                        w,
                        p,
                        c.patch_len(),
                        positions,
                        c.c_out,
                        c.c_in,
                        rng,
                    );
                }
            }
        }
        agd_simd::scale(layout.scale::<T>(k), w);
    }
}
