//! Orthogonal initialisation from a seedable RNG, with no heap.
//!
//! Each `d_out x d_in` matrix is drawn Gaussian, made semi-orthogonal (all singular values 1)
//! by Gram–Schmidt, and multiplied by `s_k = sqrt(d_out/d_in)`. Gram–Schmidt of a Gaussian
//! matrix is its QR factorisation with a positive diagonal in R — exactly "QR with the sign of
//! R's diagonal folded in" — so the result is uniformly (Haar) distributed. Orthogonalisation
//! runs in place in the weight buffer, twice per vector ("twice is enough", Giraud et al.
//! 2005), so it stays orthogonal to rounding even in `f32`.

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
    // Element e of vector v.
    let at = |v: usize, e: usize| {
        if by_rows {
            first + v * row_stride + e * col_stride
        } else {
            first + e * row_stride + v * col_stride
        }
    };
    let dot = |w: &[T], a: usize, b: usize| {
        let mut s = T::ZERO;
        for e in 0..len {
            s += w[at(a, e)] * w[at(b, e)];
        }
        s
    };
    for v in 0..count {
        loop {
            let before = dot(w, v, v).sqrt();
            for _pass in 0..2 {
                for u in 0..v {
                    let d = dot(w, v, u);
                    for e in 0..len {
                        let x = w[at(u, e)];
                        w[at(v, e)] -= d * x;
                    }
                }
            }
            let n = dot(w, v, v).sqrt();
            // A residual this small means the draw was (nearly) in the span of the others.
            if n.is_finite() && n > before * T::from_f64(1e-3) && n > T::ZERO {
                let inv = T::ONE / n;
                for e in 0..len {
                    w[at(v, e)] *= inv;
                }
                break;
            }
            for e in 0..len {
                w[at(v, e)] = T::from_f64(gaussian_pair(rng).0);
            }
        }
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
